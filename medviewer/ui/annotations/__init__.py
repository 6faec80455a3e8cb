"""Annotation tools in the image viewport: draw, select, move, edit, delete, undo/redo measurements and marks.

The data model and the measurement maths live in :mod:`medviewer.imaging.annotations` (headless); this module shows
them over an :class:`~medviewer.ui.viewer.ImageViewer` and lets the user edit them.

Coordinates
-----------
Annotations are stored in **image pixel coordinates** ``(x, y) = (column, row)``, continuous: pixel ``(i, j)``
covers ``[j, j+1) x [i, i+1)``. The viewer's ImageItem is scaled by the pixel spacing, so its ViewBox (the
"view") is in millimetres: ``view (x, y) = (column * spacing[2], row * spacing[1])`` with ``spacing`` the
volume's ``(slice, row, column)`` spacing (1 mm per pixel when the image has no PixelSpacing). The graphics items
live in view coordinates; :meth:`AnnotationLayer.image_to_view` / :meth:`AnnotationLayer.view_to_image` convert.

Interaction
-----------
* No tool (``set_tool(None)``, key N): the normal navigation mode (left-drag pans, right-drag window/level, wheel
  slices). A click on an annotation selects it, dragging its body moves it, dragging a handle edits it; each
  finished drag is ONE undo step.
* A tool (``set_tool("length")``...): left-drag on the image draws a length, arrow, rectangle or ellipse; an angle
  is three clicks (first end, vertex, second end) or a drag along the first arm (first end to vertex) and a click
  for the second end; a text is a click, the text then comes from ``text_provider``. The tool stays active (draw
  several in a row) until N or Escape. Existing annotations keep their handles editable but their bodies let the
  drag through (so one can draw over a large ROI). Escape cancels a drawing in progress and returns to no tool.
* Delete / Backspace delete the selected annotation; Ctrl+Z undoes, Ctrl+Shift+Z or Ctrl+Y redoes (through the
  layer's :class:`QUndoStack`). A double-click on a text annotation edits its text.

Each viewer owns one :class:`AnnotationLayer` (``viewer.annotations``) that knows the annotations of any number
of images (keyed by SOPInstanceUID and frame) and shows those of the image on screen.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg  # type: ignore[import-untyped]
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QAction,
    QActionGroup,
    QBrush,
    QColor,
    QFont,
    QKeySequence,
    QPainter,
    QPainterPath,
    QPainterPathStroker,
    QPen,
    QPixmap,
    QPolygonF,
    QTransform,
    QUndoCommand,
    QUndoStack,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QGraphicsItem,
    QGraphicsObject,
    QInputDialog,
    QStyleOptionGraphicsItem,
    QWidget,
)

from medviewer.imaging.annotations import (
    KINDS,
    NO_SPACING_WARNING,
    Annotation,
    Measurement,
    measure,
)
from medviewer.ui.annotations.pg_adapter import quiet_children, set_handle_radius, text_child, view_group

if TYPE_CHECKING:
    from medviewer.ui.viewer import ImageViewer

__all__ = ["AnnotationLayer", "build_annotation_actions", "sync_tool_actions", "ask_text", "SHORTCUTS", "TOOLS"]

#: The tools: (kind or None, menu text, shortcut). None is the navigation mode (no tool).
TOOLS: list[tuple[str | None, str, str]] = [
    (None, "Navigate (no tool)", "N"),
    ("length", "Length", "L"),
    ("angle", "Angle", "G"),
    ("rect", "Rectangle ROI", "B"),
    ("ellipse", "Ellipse ROI", "E"),
    ("arrow", "Arrow", "W"),
    ("text", "Text", "X"),
]

#: Keys and mouse gestures of the annotation tools, for the shortcuts dialog: (keys, description).
SHORTCUTS: list[tuple[str, str]] = [
    ("N / Esc", "navigate (no annotation tool); Esc also cancels a drawing in progress"),
    ("L", "length tool: left-drag from one end to the other"),
    ("G", "angle tool: click first end, vertex, second end (or drag the first arm, then click)"),
    ("B", "rectangle ROI tool: left-drag a box (mean/SD/min/max/area)"),
    ("E", "ellipse ROI tool: left-drag the bounding box"),
    ("W", "arrow tool: left-drag from tail to head"),
    ("X", "text tool: click where the text goes"),
    ("Click / drag annotation", "select / move it; drag a handle to edit; double-click a text to edit it"),
    ("Delete / Backspace", "delete the selected annotation"),
    ("Ctrl+Z", "undo annotation change"),
    ("Ctrl+Shift+Z / Ctrl+Y", "redo annotation change"),
]

#: What :meth:`AnnotationLayer.describe` calls each kind.
_KIND_NAMES = {kind: text for kind, text, _ in TOOLS if kind is not None}

_TOOL_KEYS = {Qt.Key.Key_N: None, Qt.Key.Key_L: "length", Qt.Key.Key_G: "angle", Qt.Key.Key_B: "rect",
              Qt.Key.Key_E: "ellipse", Qt.Key.Key_W: "arrow", Qt.Key.Key_X: "text"}

# Colours: saturated yellow / cyan stay visible on any grey level; labels sit on a dark translucent box.
_NORMAL = (255, 214, 0)
_HOVER = (255, 255, 150)
_SELECTED = (0, 225, 255)
_HANDLE = (245, 245, 245)
_LABEL_TEXT = (255, 236, 140)
_LABEL_FILL = (0, 0, 0, 165)
_Z = 20.0
_HANDLE_RADIUS = 4  # screen pixels
_MIN_DRAG_PX = 3.0  # a drag shorter than this (screen pixels) draws nothing
_LABEL_FONT = ("DejaVu Sans", 9)  # family, points (the QFont is made when needed: after the QApplication)
_LABEL_GAP = 3.0  # screen pixels between an annotation and its measurement label
_LABEL_MARGIN = 2.0  # screen pixels kept between a label and the edge of the view (when it fits)
_LABEL_REORDER_MAX = 16  # labels on screen up to which a crowded layout is retried in other orders
_LABEL_AVOID_MAX = 60  # labels on screen beyond which they are not kept apart (each at its preferred place)
_KEEP_PARKED = 1000  # graphics of annotations off screen kept for a quick return (the least recently shown go first)
_KEEP_LAYOUTS = 16  # images whose label layout is kept for a quick return


def _pen(color, width: float = 2.0):  # noqa: ANN001
    return pg.mkPen(color, width=width)  # cosmetic: width in screen pixels


def _shadow(pen: QPen) -> QPen:
    """A translucent black pen 2 px wider than ``pen``, drawn under it."""
    out = QPen(pen)
    out.setColor(QColor(0, 0, 0, 150))
    out.setWidthF(pen.widthF() + 2.0)
    return out


@functools.cache
def _mark_pens(look: str) -> tuple[QPen, QPen]:
    """(the dark outline, the pen) of a mark's ``look``: ``"normal"``, ``"hover"`` or ``"selected"``."""
    pen = _pen({"normal": _NORMAL, "hover": _HOVER, "selected": _SELECTED}[look])
    return _shadow(pen), pen


def ask_text(parent: QWidget | None, current: str = "") -> str | None:
    """Default ``text_provider``: ask for an annotation's text with a dialog; None when cancelled."""
    text, ok = QInputDialog.getText(parent, "Text annotation", "Text:", text=current)
    return text if ok else None


def _same_points(a: Annotation, b: Annotation, tol: float = 1e-6) -> bool:
    """Same geometry (boxes compared as normalised corners)."""
    pa, pb = a.points, b.points
    if a.kind in ("rect", "ellipse"):
        pa, pb = _norm_box(pa), _norm_box(pb)
    return len(pa) == len(pb) and all(abs(x0 - x1) <= tol and abs(y0 - y1) <= tol
                                      for (x0, y0), (x1, y1) in zip(pa, pb))


def _norm_box(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    (x0, y0), (x1, y1) = points
    return [(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))]


# Label layout geometry works on plain (left, top, right, bottom) float tuples in scene coordinates (screen pixels):
# much cheaper than QRectF in the inner loops.
def _hit(a: tuple, b: tuple) -> bool:
    """Rects ``a`` and ``b`` share some area (like QRectF.intersects: never for an empty rect)."""
    return (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            and a[0] < a[2] and a[1] < a[3] and b[0] < b[2] and b[1] < b[3])


def _inter(a: tuple, b: tuple) -> float:
    """Area of the intersection of rects ``a`` and ``b``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _grow(r: tuple, d: float) -> tuple:
    return r[0] - d, r[1] - d, r[2] + d, r[3] + d


def _covered(r: tuple, marks) -> float:  # noqa: ANN001
    """How much of the annotations ``marks`` (``("box", l, t, r, b)`` and ``("seg", x0, y0, x1, y1)``) the rect
    ``r`` covers: the area of each box inside ``r``, and for each line segment its length inside ``r`` times 10 px
    (a band along the line)."""
    left, top, right, bottom = r
    total = 0.0
    for kind, x0, y0, x1, y1 in marks:
        if max(x0, x1) <= left or min(x0, x1) >= right or max(y0, y1) <= top or min(y0, y1) >= bottom:
            continue
        if kind == "box":
            total += (min(x1, right) - max(x0, left)) * (min(y1, bottom) - max(y0, top))
        else:
            total += 10.0 * _length_inside(x0, y0, x1, y1, left, top, right, bottom)
    return total


class _Grid:
    """A uniform grid (spatial hash) of rects over the view: which stored rects may meet a query rect, without
    scanning them all. Cells outside the view are clamped to its border cells, so far-away rects still land
    somewhere (the answer is a superset; callers test the exact geometry)."""

    __slots__ = ("cell", "cells", "keys", "ni", "nj", "x0", "y0")

    def __init__(self, area: tuple, n: int = 12):
        left, top, right, bottom = area
        self.x0, self.y0 = left, top
        self.cell = max(right - left, bottom - top, 16.0) / n
        self.ni = int((right - left) / self.cell) + 1
        self.nj = int((bottom - top) / self.cell) + 1
        self.cells: dict[tuple[int, int], dict] = {}
        self.keys: dict[object, list[tuple[int, int]]] = {}

    def _span(self, r: tuple) -> tuple[range, range]:
        c, ni, nj = self.cell, self.ni, self.nj
        i0 = min(max(int((r[0] - self.x0) // c), -1), ni)
        i1 = min(max(int((r[2] - self.x0) // c), -1), ni)
        j0 = min(max(int((r[1] - self.y0) // c), -1), nj)
        j1 = min(max(int((r[3] - self.y0) // c), -1), nj)
        return range(i0, i1 + 1), range(j0, j1 + 1)

    def add(self, key, r: tuple, value) -> None:  # noqa: ANN001
        """Store ``value`` under ``key`` for rect ``r`` (replacing what ``key`` had)."""
        self.remove(key)
        si, sj = self._span(r)
        cells = [(i, j) for i in si for j in sj]
        for cell in cells:
            d = self.cells.get(cell)
            if d is None:
                self.cells[cell] = d = {}
            d[key] = value
        self.keys[key] = cells

    def remove(self, key) -> None:  # noqa: ANN001
        for cell in self.keys.pop(key, ()):
            self.cells[cell].pop(key, None)

    def query(self, r: tuple) -> dict:
        """``{key: value}`` of the stored rects that may meet ``r``."""
        out: dict = {}
        si, sj = self._span(r)
        cells = self.cells
        for i in si:
            for j in sj:
                d = cells.get((i, j))
                if d:
                    out.update(d)
        return out

    def copy(self) -> _Grid:
        g = _Grid.__new__(_Grid)
        g.x0, g.y0, g.cell, g.ni, g.nj = self.x0, self.y0, self.cell, self.ni, self.nj
        g.cells = {c: dict(d) for c, d in self.cells.items()}
        g.keys = dict(self.keys)
        return g


def _label_candidates(kind: str, pts: list[tuple[float, float]], shape: tuple, w: float, h: float) -> tuple:
    """``(anchor, candidates)`` of a ``w`` x ``h`` label of an annotation of ``kind`` with scene points ``pts``
    and bounding rect ``shape``: the rect it goes around (a box, or an annotation's end point) and the label's
    candidate top-left corners, preferred first (see :meth:`AnnotationLayer._layout_labels`)."""
    gap = _LABEL_GAP
    if kind in ("rect", "ellipse"):
        anchor = shape
        left, top, right, bottom = shape
        preferred = (left, bottom + gap)  # under the box, left-aligned
        ys = (top, bottom - h)  # beside the box: top-aligned, else bottom-aligned
        xs = (left, right - w)  # under / over it: left-aligned, else right-aligned
    else:
        if kind == "angle":  # opposite the bisector of the two arms: outside the angle
            (ax, ay), (px, py), (cx, cy) = pts[:3]
            na = math.hypot(ax - px, ay - py) or 1.0
            nc = math.hypot(cx - px, cy - py) or 1.0
            bx = (ax - px) / na + (cx - px) / nc
            by = (ay - py) / na + (cy - py) / nc
            right, down = bx <= 0, by <= 0
        else:  # length: beyond its end point; arrow: beyond its tail; away from the line
            (px, py), (nx, ny) = (pts[1], pts[0]) if kind == "length" else (pts[0], pts[1])
            right, down = px >= nx, py >= ny
        anchor = (px, py, px, py)
        x_right, x_left = px + gap, px - gap - w
        y_down, y_up = py + gap, py - gap - h
        preferred = (x_right if right else x_left, y_down if down else y_up)
        ys = (y_down, y_up) if down else (y_up, y_down)  # the preferred quadrant first
        xs = (x_right, x_left) if right else (x_left, x_right)
    candidates = [preferred]
    for x, y in zip(xs, ys):  # right, left, below, above; then the same, aligned the other way
        candidates += [(anchor[2] + gap, y), (anchor[0] - gap - w, y), (x, anchor[3] + gap), (x, anchor[1] - gap - h)]
    return anchor, candidates


def _shift_into(x: float, y: float, w: float, h: float, area: tuple, anchor: tuple) -> tuple[float, float]:
    """Top-left ``(x, y)`` of a ``w`` x ``h`` label moved the least to lie inside ``area`` (``_LABEL_MARGIN`` from
    its edges when it fits with them). Along an axis where the label is larger than ``area``: next to ``anchor``
    on the side with more room, its left / top edge inside ``area``."""

    def axis(v: float, size: float, lo: float, hi: float, near: float, far: float) -> float:
        if lo <= v and v + size <= hi:
            return v
        if size + 2 * _LABEL_MARGIN <= hi - lo:
            return min(max(v, lo + _LABEL_MARGIN), hi - _LABEL_MARGIN - size)
        if size <= hi - lo:
            return min(max(v, lo), hi - size)
        v = far + _LABEL_GAP if hi - far >= near - lo else near - _LABEL_GAP - size
        return min(max(v, lo), hi - 1.0)

    return (axis(x, w, area[0], area[2], anchor[0], anchor[2]),
            axis(y, h, area[1], area[3], anchor[1], anchor[3]))


def _length_inside(x0: float, y0: float, x1: float, y1: float, left: float, top: float, right: float,
                   bottom: float) -> float:
    """Length of the segment (x0, y0)-(x1, y1) inside the rectangle (Liang-Barsky clipping)."""
    dx, dy = x1 - x0, y1 - y0
    t0, t1 = 0.0, 1.0
    for p, q in ((-dx, x0 - left), (dx, right - x0), (-dy, y0 - top), (dy, bottom - y0)):
        if p == 0:
            if q < 0:
                return 0.0
            continue
        t = q / p
        if p < 0:
            t0 = max(t0, t)
        else:
            t1 = min(t1, t)
        if t0 >= t1:
            return 0.0
    return (t1 - t0) * math.hypot(dx, dy)


# ==================================================================================================== graphics
class _Mark(pg.ROI):
    """What the ROI marks share. Their sizes are in screen pixels: the length of one screen pixel is kept until
    the view transform changes (it was computed a few times per item and paint).

    The mark draws itself (``paint``) with the pen of its look: hovered, else selected, else normal. Hover and
    interactivity are its own (``hoverEvent`` / ``mouseDragEvent``): not interactive, its body takes neither
    hover, clicks nor drags (they go to the view), while its handles stay editable."""

    def __init__(self, kind: str, pos: tuple[float, float], size: tuple[float, float], **kwargs: object):
        super().__init__(pos, size, movable=True, rotatable=False, resizable=False, pen=_pen(_NORMAL),
                         hoverPen=_pen(_HOVER), handlePen=_pen(_HANDLE, 1.5), handleHoverPen=_pen(_HOVER, 1.5),
                         **kwargs)
        self.kind = kind
        self.uid: str | None = None
        self.selected = False
        self.hovered = False
        self.interactive = True
        self._px_cache: float | None = None
        set_handle_radius(self, _HANDLE_RADIUS)

    def _px(self) -> float:
        px = self._px_cache
        if px is None:
            v = self.pixelLength(QPointF(1, 0))
            px = float(v) if v else 0.0
            if px:
                self._px_cache = px
        return px

    def _pens(self) -> tuple[QPen, QPen]:
        """(the dark outline, the pen) to draw with now."""
        return _mark_pens("hover" if self.hovered else "selected" if self.selected else "normal")

    def set_selected_look(self, selected: bool) -> None:
        self.selected = selected
        self.update()

    def set_hovered(self, hovered: bool) -> None:
        if hovered != self.hovered:
            self.hovered = hovered
            self.update()

    def set_interactive(self, interactive: bool) -> None:
        self.interactive = interactive
        self.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if interactive else Qt.MouseButton.NoButton)

    def hoverEvent(self, ev) -> None:  # noqa: N802, ANN001, D102 - pyqtgraph hook
        # As pg.ROI's, for a mark that only takes the left button: under the mouse, it takes the drag or the click;
        # then (highlighted) every click, so that a click on it goes nowhere else.
        hover = False
        if self.interactive and not ev.isExit():
            drags = ev.acceptDrags(Qt.MouseButton.LeftButton)
            clicks = ev.acceptClicks(Qt.MouseButton.LeftButton)
            hover = drags or clicks
        if hover:
            ev.acceptClicks(Qt.MouseButton.RightButton)
            ev.acceptClicks(Qt.MouseButton.MiddleButton)
            self.sigHoverEvent.emit(self)
        self.set_hovered(hover)

    def mouseDragEvent(self, ev) -> None:  # noqa: N802, ANN001, D102 - pyqtgraph hook
        if not self.interactive:
            ev.ignore()  # the view draws or pans
            return
        super().mouseDragEvent(ev)

    def viewTransformChanged(self) -> None:  # noqa: N802, D102 - pyqtgraph override: sizes are in screen px
        self._px_cache = None
        self.prepareGeometryChange()
        super().viewTransformChanged()
        self.update()


class _PolyMark(_Mark):
    """Length, arrow (head at points[1]) or angle (vertex at points[1]): a polyline through free handles.

    Geometry is in the ROI's parent coordinates = view coordinates (mm); the ROI itself stays at (0, 0) until
    its body is dragged (then ``pos()`` is the translation)."""

    def __init__(self, kind: str, points: list[QPointF]):
        super().__init__(kind, (0, 0), (1, 1))
        for p in points:
            self.addFreeHandle(p)
        self.setZValue(_Z)

    # geometry
    def view_points(self) -> list[QPointF]:
        return [self.mapToParent(h.pos()) for h in self.getHandles()]

    def set_view_points(self, points: list[QPointF]) -> None:
        self.setPos(QPointF(0, 0), update=False, finish=False)
        for handle, p in zip(self.getHandles(), points):
            self.movePoint(handle, p, finish=False)  # (parent coordinates = ROI coordinates at pos (0, 0))
        self.update()

    def _local(self) -> list[QPointF]:
        return [h.pos() for h in self.getHandles()]

    def _head(self, px: float) -> QPolygonF | None:
        a, b = self._local()[:2]
        d = b - a
        n = math.hypot(d.x(), d.y())
        if n == 0 or px == 0:
            return None
        ux, uy = d.x() / n, d.y() / n
        length, half = min(14 * px, 0.6 * n), 5 * px
        bx, by = b.x() - ux * length, b.y() - uy * length
        return QPolygonF([b, QPointF(bx - uy * half, by + ux * half), QPointF(bx + uy * half, by - ux * half)])

    def _arc(self, px: float) -> QPolygonF | None:
        a, v, c = self._local()
        ta, tc = math.atan2(a.y() - v.y(), a.x() - v.x()), math.atan2(c.y() - v.y(), c.x() - v.x())
        da, dc = math.hypot(a.x() - v.x(), a.y() - v.y()), math.hypot(c.x() - v.x(), c.y() - v.y())
        if px == 0 or da == 0 or dc == 0:
            return None
        r = min(22 * px, 0.45 * min(da, dc))
        span = (tc - ta + math.pi) % (2 * math.pi) - math.pi  # the smaller angle, signed
        steps = max(2, int(abs(span) / math.radians(6)))
        return QPolygonF([QPointF(v.x() + r * math.cos(ta + span * s / steps),
                                  v.y() + r * math.sin(ta + span * s / steps))
                          for s in range(steps + 1)])

    def _line_path(self) -> QPainterPath:
        pts = self._local()
        path = QPainterPath(pts[0])
        for p in pts[1:]:
            path.lineTo(p)
        return path

    def shape(self) -> QPainterPath:  # noqa: D102 - Qt override: what a click hits (10 screen px wide)
        px = self._px()
        stroker = QPainterPathStroker()
        stroker.setWidth(max(10 * px, 1e-6))
        path = stroker.createStroke(self._line_path())
        if self.kind == "arrow":
            head = self._head(px)
            if head is not None:
                path.addPolygon(head)
        return path

    def boundingRect(self) -> QRectF:  # noqa: N802, D102 - Qt override
        px = self._px()
        rect = self._line_path().boundingRect()
        margin = max(24 * px, 1e-6)  # arrow head / angle arc / pen, whatever the zoom
        return rect.adjusted(-margin, -margin, margin, margin)

    def paint(self, p: QPainter, *args) -> None:  # noqa: D102 - Qt override
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        px = self._px()
        head = self._head(px) if self.kind == "arrow" else None
        arc = self._arc(px) if self.kind == "angle" and len(self.getHandles()) == 3 else None
        # A dark outline under the colour keeps the mark visible over bright (bone, contrast) pixels too.
        for pen in self._pens():
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawPolyline(QPolygonF(self._local()))
            if head is not None:
                p.setBrush(QBrush(pen.color()))
                p.drawPolygon(head)
            if arc is not None:
                thin = QPen(pen)
                thin.setWidthF(pen.widthF() - 0.5)
                p.setPen(thin)
                p.drawPolyline(arc)


class _BoxMark(_Mark):
    """Rectangle or ellipse ROI, axis-aligned: ``pos()`` is the top-left corner and ``size()`` the extent, in view
    coordinates (mm); a scale handle at each corner (the opposite corner stays put)."""

    def __init__(self, kind: str, p0: QPointF, p1: QPointF):
        x0, x1 = sorted((p0.x(), p1.x()))
        y0, y1 = sorted((p0.y(), p1.y()))
        super().__init__(kind, (x0, y0), (x1 - x0, y1 - y0), invertible=False)
        for hx, hy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            self.addScaleHandle((hx, hy), (1 - hx, 1 - hy))
        self.setZValue(_Z)

    def view_points(self) -> list[QPointF]:
        pos, size = self.pos(), self.size()
        return [QPointF(pos.x(), pos.y()), QPointF(pos.x() + size.x(), pos.y() + size.y())]

    def set_view_points(self, points: list[QPointF]) -> None:
        x0, x1 = sorted((points[0].x(), points[1].x()))
        y0, y1 = sorted((points[0].y(), points[1].y()))
        self.setPos(QPointF(x0, y0), update=False, finish=False)
        self.setSize((x1 - x0, y1 - y0), update=True, finish=False)
        self.update()

    def _rect(self) -> QRectF:
        s = self.size()
        return QRectF(0, 0, s[0], s[1]).normalized()

    def _outline(self) -> QPainterPath:
        path = QPainterPath()
        if self.kind == "ellipse":
            path.addEllipse(self._rect())
        else:
            path.addRect(self._rect())
        return path

    def shape(self) -> QPainterPath:  # noqa: D102 - Qt override: the inside plus a few screen px around the outline
        px = self._px()
        stroker = QPainterPathStroker()
        stroker.setWidth(max(8 * px, 1e-6))
        return stroker.createStroke(self._outline()).united(self._outline())

    def boundingRect(self) -> QRectF:  # noqa: N802, D102 - Qt override
        m = max(6 * self._px(), 1e-6)
        return self._rect().adjusted(-m, -m, m, m)

    def paint(self, p: QPainter, *args) -> None:  # noqa: D102 - Qt override
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for pen in self._pens():
            p.setPen(pen)
            if self.kind == "ellipse":
                p.drawEllipse(self._rect())
            else:
                p.drawRect(self._rect())


class _TextMark(pg.TextItem):
    """A text annotation: the text itself, its top-left corner at the anchor point; drag to move, double-click to
    edit. Stays the same size on screen whatever the zoom.

    Signals, named as those of the ROI marks: ``sigClicked(mark, event)``, ``sigRegionChangeStarted(mark)`` and
    ``sigRegionChangeFinished(mark)`` when a drag starts and ends, and ``sigEditRequested(mark)`` on a double
    click."""

    sigClicked = Signal(object, object)
    sigRegionChangeStarted = Signal(object)
    sigRegionChangeFinished = Signal(object)
    sigEditRequested = Signal(object)

    def __init__(self, text: str, point: QPointF):
        super().__init__(text, color=_NORMAL, anchor=(0, 0), fill=pg.mkBrush(*_LABEL_FILL), border=None)
        self.setFont(QFont("DejaVu Sans", 10, QFont.Weight.Bold))
        self.setPos(point)
        self.setZValue(_Z + 1)
        self.kind = "text"
        self.uid: str | None = None
        self.interactive = True
        self.selected = False
        self.hovered = False  # (no hover look)
        self._offset = QPointF()

    def view_points(self) -> list[QPointF]:
        return [QPointF(self.pos())]

    def set_view_points(self, points: list[QPointF]) -> None:
        self.setPos(points[0])

    def set_selected_look(self, selected: bool) -> None:
        self.selected = selected
        self.setColor(pg.mkColor(_SELECTED if selected else _NORMAL))
        self.update()

    def set_hovered(self, hovered: bool) -> None:
        pass

    def set_interactive(self, interactive: bool) -> None:
        self.interactive = interactive

    def paint(self, p: QPainter, *args) -> None:  # noqa: D102 - Qt override
        super().paint(p, *args)  # the box under the text (the text is a child item: painted after)
        if self.selected:
            p.setPen(_pen(_SELECTED, 1.5))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawPolygon(QPolygonF(self.boundingRect()))

    def hoverEvent(self, ev) -> None:  # noqa: N802, ANN001, D102 - pyqtgraph hook
        if self.interactive and not ev.isExit():
            ev.acceptDrags(Qt.MouseButton.LeftButton)
            ev.acceptClicks(Qt.MouseButton.LeftButton)

    def _parent_pos(self, scene_pos: QPointF) -> QPointF:
        parent = self.parentItem()
        return parent.mapFromScene(scene_pos) if parent is not None else scene_pos

    def mouseDragEvent(self, ev) -> None:  # noqa: N802, ANN001, D102 - pyqtgraph hook
        if not self.interactive or ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        if ev.isStart():
            self._offset = self.pos() - self._parent_pos(ev.buttonDownScenePos())
            self.sigRegionChangeStarted.emit(self)
        self.setPos(self._parent_pos(ev.scenePos()) + self._offset)
        if ev.isFinish():
            self.sigRegionChangeFinished.emit(self)

    def mouseClickEvent(self, ev) -> None:  # noqa: N802, ANN001, D102 - pyqtgraph hook
        if not self.interactive or ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        self.sigClicked.emit(self, ev)
        if ev.double():
            self.sigEditRequested.emit(self)


class _Label(pg.TextItem):
    """A measurement label: a pyqtgraph TextItem (same size on screen whatever the zoom, same geometry and text
    API) that paints a pixmap of its box and text, made once per text, instead of laying out and drawing its text
    on every repaint (with hundreds of labels on screen that was half of each repaint)."""

    def __init__(self):
        super().__init__("", color=_LABEL_TEXT, anchor=(0, 0))  # no fill or border: they are in the pixmap
        self.setFont(QFont(*_LABEL_FONT))
        self.setZValue(_Z + 2)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        text_child(self).setVisible(False)  # drawn into the pixmap instead
        self._pix: tuple[float, QPixmap, QPointF] | None = None  # (device pixel ratio, pixmap, where)

    def setText(self, text: str, color=None) -> None:  # noqa: N802, ANN001, D102 - pyqtgraph override
        self.prepareGeometryChange()  # the text item is hidden: this item repaints where the old text was
        super().setText(text, color)
        self._pix = None
        self.update()

    def _render(self, dpr: float) -> tuple[float, QPixmap, QPointF]:
        br = self.boundingRect()
        pix = QPixmap(max(1, math.ceil(br.width() * dpr)), max(1, math.ceil(br.height() * dpr)))
        pix.setDevicePixelRatio(dpr)
        pix.fill(Qt.GlobalColor.transparent)
        text = text_child(self)
        p = QPainter(pix)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            p.translate(-br.topLeft())
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(pg.mkBrush(*_LABEL_FILL))
            p.drawPolygon(text.mapToParent(text.boundingRect()))
            p.translate(text.pos())
            opt = QStyleOptionGraphicsItem()
            opt.exposedRect = text.boundingRect()
            text.paint(p, opt, None)
        finally:
            p.end()
        return dpr, pix, br.topLeft()

    def paint(self, p: QPainter, opt=None, widget=None) -> None:  # noqa: ANN001, D102 - Qt override
        super().paint(p, opt, widget)  # TextItem's: follows the view's transform (draws nothing: no fill, border)
        dpr = widget.devicePixelRatioF() if widget is not None else p.device().devicePixelRatioF()
        if self._pix is None or self._pix[0] != dpr:
            self._pix = self._render(dpr)
        p.drawPixmap(self._pix[2], self._pix[1])


def _make_label() -> _Label:
    return _Label()


class _Parking(QGraphicsObject):
    """An empty, fully transparent item of the view: the marks of annotations whose image is not on screen wait
    under it (not drawn, not hit, still in the scene) until their image comes back. Transparent rather than
    hidden: moving an item under a hidden parent changes the visibility of each of its handles (a Python call
    each, several times slower); Qt skips a fully transparent subtree when drawing and when finding items."""

    def __init__(self):
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)
        self.setOpacity(0.0)

    def boundingRect(self) -> QRectF:  # noqa: N802, D102 - Qt override
        return QRectF()

    def paint(self, *args) -> None:  # noqa: D102 - Qt override
        pass


class _Item:
    """The graphics of one annotation: its mark and its measurement label, made once and kept (parked while its
    image is off screen). ``sig`` is the geometry the mark was last set to (None: changed by a drag since),
    ``text`` / ``size`` the label's text and its size on screen (None: not measured yet)."""

    __slots__ = ("g", "label", "label_vis", "parked", "sig", "size", "text", "uid")

    def __init__(self, uid: str, g, label: pg.TextItem, sig: tuple):  # noqa: ANN001
        self.uid, self.g, self.label, self.sig = uid, g, label, sig
        self.text = ""
        self.label_vis = True
        self.size: tuple[float, float] | None = None
        self.parked = False


class _Place:
    """Where one shown annotation is on screen and where its label may go (scene coordinates, for one view
    transform): ``shape`` its bounding rect, ``marks`` its geometry for "covers", ``fixed`` the rect of a text
    annotation (no label may cover it); for a label (``label``): its size, ``anchor``, candidate top-left corners
    (preferred first), whether it is laid out (``in_view``: its annotation is in the view) and then the candidates
    shifted into the view and ``reach``, the rect they span."""

    __slots__ = (
        "anchor",
        "cands",
        "fixed",
        "h",
        "in_view",
        "label",
        "marks",
        "reach",
        "shape",
        "shifted",
        "w",
        "zone",
    )

    def __init__(self, shape: tuple):
        self.shape = shape
        self.zone = _grow(shape, 1.0)  # never empty (a horizontal line has no height)
        self.marks: list[tuple] = []
        self.fixed: tuple | None = None
        self.label = False
        self.in_view = False
        self.w = self.h = 0.0
        self.anchor: tuple = shape
        self.cands: list[tuple[float, float]] = []
        self.shifted: list[tuple[float, float]] = []
        self.reach: tuple = shape


class _Layout:
    """The label layout of one image, valid for the volume, view ``area`` and view-to-scene transform ``tr`` it
    was made with: the places of the shown annotations, a grid of their marks, a grid of the placed labels (and
    the text annotations, ``("fixed", uid)``), where each label went, and which labels are laid out (``todo``).
    ``avoid``: labels are kept apart (False beyond ``_LABEL_AVOID_MAX`` labels: each at its preferred place)."""

    def __init__(self, key: tuple, vol, area: tuple, tr: QTransform):  # noqa: ANN001
        self.key, self.vol, self.area, self.tr = key, vol, area, tr
        self.inv = tr.inverted()[0]
        self.places: dict[str, _Place] = {}
        self.marks = _Grid(area)
        self.labels = _Grid(area)
        self.placed: dict[str, tuple] = {}
        self.todo: set[str] = set()
        self.avoid = True

    def remove(self, uid: str) -> None:
        self.places.pop(uid, None)
        self.marks.remove(uid)
        self.labels.remove(uid)
        self.labels.remove(("fixed", uid))
        self.placed.pop(uid, None)
        self.todo.discard(uid)

    def set(self, uid: str, p: _Place) -> None:
        self.remove(uid)
        self.places[uid] = p
        if p.marks:
            self.marks.add(uid, p.shape, p.marks)
        if p.fixed is not None:
            self.labels.add(("fixed", uid), p.fixed, p.fixed)
        if p.label and p.in_view:
            self.todo.add(uid)


# ==================================================================================================== commands
# The layer's annotations can change outside the undo stack (AnnotationLayer.apply_external / remove_external: another
# viewport on the same series, the main window's copy). So a command never assumes the state it left: undoing an add
# removes whatever version is there now (and a redo restores that version), undoing/redoing a modify of an annotation
# removed meanwhile does nothing, and nothing raises.
class _AddCommand(QUndoCommand):
    def __init__(self, layer: "AnnotationLayer", ann: Annotation, text: str):
        super().__init__(text)
        self.layer, self.ann = layer, ann

    def redo(self) -> None:  # noqa: D102
        self.layer._put(self.ann)

    def undo(self) -> None:  # noqa: D102
        current = self.layer._all.get(self.ann.uid)
        if current is not None:
            self.ann = current  # changed externally since: a redo brings back what this undo removed
        self.layer._drop(self.ann.uid)  # emits annotation_deleted only when something was removed


class _DeleteCommand(QUndoCommand):
    def __init__(self, layer: "AnnotationLayer", ann: Annotation, text: str):
        super().__init__(text)
        self.layer, self.ann = layer, ann

    def redo(self) -> None:  # noqa: D102
        current = self.layer._all.get(self.ann.uid)
        if current is not None:
            self.ann = current
        self.layer._drop(self.ann.uid)

    def undo(self) -> None:  # noqa: D102
        self.layer._put(self.ann)


class _ModifyCommand(QUndoCommand):
    def __init__(self, layer: "AnnotationLayer", before: Annotation, after: Annotation, text: str):
        super().__init__(text)
        self.layer, self.before, self.after = layer, before, after

    def redo(self) -> None:  # noqa: D102
        if self.after.uid in self.layer._all:  # removed externally meanwhile: nothing to modify
            self.layer._put(self.after)

    def undo(self) -> None:  # noqa: D102
        if self.before.uid in self.layer._all:
            self.layer._put(self.before)


# ==================================================================================================== layer
class AnnotationLayer(QObject):
    """The annotations of one :class:`~medviewer.ui.viewer.ImageViewer` and their tools.

    Knows annotations of any number of images (``(SOPInstanceUID, frame)``, frame 0-based) and shows, in the
    viewer's ViewBox, those of the image on screen. Points of an :class:`Annotation` are image pixel coordinates
    (x = column, y = row, pixel (i, j) covering [j, j+1) x [i, i+1)); the graphics are in view coordinates (mm).

    Measurements use the slice's modality values (HU for CT; for colour images the mean of R, G, B), the stack's
    PixelSpacing ((row, column) mm; None when absent: sizes in pixels, the label shows the warning) and the volume's
    units.

    Signals: ``annotation_saved(Annotation)`` after an add or a change (including by undo/redo);
    ``annotation_deleted(uid)`` after a removal (including an undone add); ``tool_changed(kind or None)``;
    ``selection_changed(uid or None)``. :meth:`set_annotations`, :meth:`apply_external` and :meth:`remove_external`
    emit none of them and leave the undo stack alone (changes made elsewhere: another viewport on the same series,
    the main window's copy); undo/redo steps about an annotation changed or removed that way never raise (undoing
    a change of a removed annotation does nothing).

    ``text_provider(parent widget, current text) -> str | None`` gives the text of a new text annotation (and of
    an edited one); the default asks with a dialog (:func:`ask_text`); None or "" cancels.
    """

    annotation_saved = Signal(object)
    annotation_deleted = Signal(str)
    tool_changed = Signal(object)
    selection_changed = Signal(object)

    def __init__(self, viewer: "ImageViewer"):
        super().__init__(viewer)
        self.viewer = viewer
        self.undo_stack = QUndoStack(self)
        self.text_provider: Callable[[QWidget | None, str], str | None] = ask_text
        self._all: dict[str, Annotation] = {}
        self._graphics: dict[str, object] = {}
        self._labels: dict[str, pg.TextItem] = {}
        self._shown: tuple | None = None  # (volume, key, ready) of what is on screen
        self._tool: str | None = None
        self._selected: str | None = None
        self._draft: dict | None = None  # drawing in progress: kind, points (view), preview item
        self._layout_held = False  # True while sync() shows several annotations: labels are laid out once after
        self._dirty: set[str] = set()  # uids whose graphics changed while the layout was held
        self._items: dict[str, _Item] = {}  # the graphics made, shown or parked, the most recently shown last
        self._park_item: _Parking | None = None
        self._setting = False  # True while the layer itself moves a mark (not a drag)
        self._layouts: dict[tuple, _Layout] = {}  # label layouts per image (the most recently shown last)
        self._vol = None  # the volume the caches below are about
        self._mcache: dict[str, tuple] = {}  # uid -> (what was measured, Measurement)
        self._mcache_vol = None
        self._slice_index: tuple | None = None  # (volume, n slices, {(SOPInstanceUID, frame): slice})
        viewer.installEventFilter(self)
        viewer.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        viewer.view.sigTransformChanged.connect(lambda *_: self._fit_labels())
        viewer.view.sigResized.connect(lambda *_: self._fit_labels())

    # ------------------------------------------------------------------------------------------ public API
    @property
    def tool(self) -> str | None:
        """The active tool (an annotation kind) or None (navigation)."""
        return self._tool

    @property
    def selected_uid(self) -> str | None:
        """uid of the selected annotation (shown on screen), or None."""
        return self._selected

    def set_tool(self, kind: str | None) -> None:
        """Activate a drawing tool (``"length"``, ``"angle"``, ``"rect"``, ``"ellipse"``, ``"arrow"``,
        ``"text"``) or return to navigation (None). Cancels a drawing in progress. Raises ValueError for an unknown
        kind."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown annotation tool {kind!r} (one of {', '.join(KINDS)} or None)")
        self._cancel_draft()
        changed = kind != self._tool
        self._tool = kind
        for g in self._graphics.values():
            g.set_interactive(kind is None)
        vp = self.viewer.graphics.viewport()
        if kind is None:
            vp.unsetCursor()
        else:
            vp.setCursor(Qt.CursorShape.CrossCursor)
        if changed:
            self.tool_changed.emit(kind)

    def set_annotations(self, annotations: list[Annotation]) -> None:
        """Replace every known annotation (of any image) without emitting signals, e.g. those a case store holds
        when a case opens. Clears the undo history and the selection."""
        self._cancel_draft()
        self.undo_stack.clear()
        self._all = {a.uid: a for a in annotations}
        self._shown = None
        self._selected = None
        self._clear_graphics()
        for uid in [u for u in self._items if u not in self._all]:  # keep the graphics of those still there
            self._destroy(uid)
        self._mcache.clear()
        self._layouts.clear()
        self.sync()

    def annotations(self) -> list[Annotation]:
        """Every known annotation, of all images."""
        return list(self._all.values())

    def annotations_for(self, sop_instance_uid: str, frame: int = 0) -> list[Annotation]:
        """The annotations of one image (frame: 0-based frame index)."""
        return [a for a in self._all.values() if a.sop_instance_uid == sop_instance_uid and a.frame == int(frame)]

    def get(self, uid: str) -> Annotation | None:
        """The annotation with this uid, or None."""
        return self._all.get(uid)

    def add(self, annotation: Annotation) -> None:
        """Add an annotation (undoable; emits ``annotation_saved``). Raises ValueError when its uid exists."""
        if annotation.uid in self._all:
            raise ValueError(f"annotation {annotation.uid} exists already (use update)")
        self.undo_stack.push(_AddCommand(self, annotation, f"Add {annotation.kind}"))

    def update(self, annotation: Annotation) -> None:
        """Replace the annotation with the same uid (geometry and/or text; undoable; emits
        ``annotation_saved``). Raises KeyError for an unknown uid."""
        before = self._all[annotation.uid]
        self.undo_stack.push(_ModifyCommand(self, before, annotation, f"Edit {annotation.kind}"))

    def remove(self, uid: str) -> None:
        """Delete an annotation (undoable; emits ``annotation_deleted``). Raises KeyError for an unknown uid."""
        ann = self._all[uid]
        self.undo_stack.push(_DeleteCommand(self, ann, f"Delete {ann.kind}"))

    def apply_external(self, annotation: Annotation) -> None:
        """Add ``annotation``, or replace the one with its uid (geometry, text, image), as changed elsewhere (another
        viewport on the same series, the main window's copy): shown at once when its image is on screen, but NOT
        undoable and emitting neither ``annotation_saved`` nor ``annotation_deleted`` (no echo back to the sender).
        Undo/redo commands of this layer about that annotation keep working (see the commands above)."""
        self._put(annotation, emit=False)

    def remove_external(self, uid: str) -> None:
        """Forget annotation ``uid``, removed elsewhere: like :meth:`apply_external`, not undoable and without
        signals. No-op for an unknown uid."""
        self._drop(uid, emit=False)

    def delete_selected(self) -> bool:
        """Delete the selected annotation; False when none is selected."""
        if self._selected is None or self._selected not in self._all:
            return False
        self.remove(self._selected)
        return True

    def undo(self) -> None:
        """Undo the last annotation change (no-op when none)."""
        self._cancel_draft()
        self.undo_stack.undo()

    def redo(self) -> None:
        """Redo the last undone annotation change (no-op when none)."""
        self._cancel_draft()
        self.undo_stack.redo()

    def select(self, uid: str | None) -> None:
        """Select an annotation shown on screen (None: select nothing)."""
        if uid is not None and uid not in self._graphics:
            uid = None
        if uid == self._selected:
            return
        old = self._graphics.get(self._selected) if self._selected else None
        if old is not None:
            old.set_selected_look(False)
        self._selected = uid
        if uid is not None:
            self._graphics[uid].set_selected_look(True)
        self.selection_changed.emit(uid)

    def edit_text(self, uid: str) -> bool:
        """Ask ``text_provider`` for a new text of an annotation (undoable); False when cancelled/unchanged."""
        ann = self._all.get(uid)
        if ann is None:
            return False
        text = self.text_provider(self.viewer, ann.text)
        if text is None or text == ann.text or (ann.kind == "text" and not text.strip()):
            return False
        self.update(Annotation(ann.kind, ann.points, ann.sop_instance_uid, ann.frame, text, ann.uid))
        return True

    def current_key(self) -> tuple[str, int] | None:
        """(SOPInstanceUID, frame) of the image on screen, or None (no volume, or a volume without a stack)."""
        vol = self.viewer.volume
        if vol is None or vol.stack is None:
            return None
        k = int(self.viewer.state.index)
        if not 0 <= k < len(vol.stack.slices):
            return None
        ref = vol.stack.slices[k]
        return ref.instance.sop_instance_uid, int(ref.frame.index)

    def measurement(self, uid: str) -> Measurement:
        """What annotation ``uid`` measures, on the viewer's current volume (ROI statistics need the image
        decoded). An annotation of an image outside that volume is measured without image and spacing (pixels).
        Raises KeyError for an unknown uid."""
        return dataclasses.replace(self._measure(self._all[uid]))  # a copy: the layer keeps its own

    def describe(self, uid: str) -> str:
        """One line describing annotation ``uid``, for lists (the case dock): what it is and measures, then
        ``", slice K/N"`` when its image is in the viewer's volume (K 1-based in the stack of N), e.g.
        ``"Length 42.1 mm, slice 12/140"``, ``"Ellipse ROI: mean 40.2 HU, SD 3.1, area 120.5 mm², slice 3/40"``,
        ``"Angle 35.0°"``, ``"Arrow"``, ``"Text: Lesion 1"``. A comment on a measurement follows it in quotes; sizes
        without PixelSpacing read ``"... px (px: no PixelSpacing)"``, those of an image outside the viewer's volume
        (measured without its spacing) ``"... px (px: image not loaded)"``. ROI statistics need the image in the
        viewer's volume (decoded), else the area only. Raises KeyError for an unknown uid."""
        ann = self._all[uid]
        m = self._measure(ann)
        lu = "mm" if m.calibrated else "px"
        u = f" {m.units}" if m.units else ""
        comment = " ".join(ann.text.split())  # one line
        if ann.kind == "text":
            text = f"Text: {comment}"
            comment = ""
        elif ann.kind == "length":
            text = f"Length {m.length:.1f} {lu}"
        elif ann.kind == "angle":
            text = "Angle" + (f" {m.angle_deg:.1f}\N{DEGREE SIGN}" if m.angle_deg is not None else "")
        elif ann.kind in ("rect", "ellipse"):
            area = f"area {m.area:.1f} {lu}\N{SUPERSCRIPT TWO}"
            if m.mean is not None:
                stats = f"mean {m.mean:.1f}{u}, SD {m.sd:.1f}, {area}"
            elif m.n_pixels == 0:
                stats = f"{area} (no pixels inside)"
            else:
                stats = area
            text = f"{_KIND_NAMES[ann.kind]}: {stats}"
        else:
            text = _KIND_NAMES.get(ann.kind, ann.kind.capitalize())
        if comment:
            text += f' "{comment}"'
        vol = self.viewer.volume
        k = self._slice_of((ann.sop_instance_uid, ann.frame))
        if m.warning == NO_SPACING_WARNING:
            text += " (px: no PixelSpacing)" if k is not None else " (px: image not loaded)"
        elif m.warning:
            text += f" ({m.warning})"
        if k is not None and vol is not None and vol.stack is not None:
            text += f", slice {k + 1}/{len(vol.stack.slices)}"
        return text

    def image_to_view(self, x: float, y: float) -> QPointF:
        """Image pixel coordinates (x = column, y = row) to view coordinates (mm) of the current volume."""
        sc, sr = self._scale()
        return QPointF(x * sc, y * sr)

    def view_to_image(self, p: QPointF) -> tuple[float, float]:
        """View coordinates (mm) to image pixel coordinates (x = column, y = row)."""
        sc, sr = self._scale()
        return p.x() / sc, p.y() / sr

    def graphic(self, uid: str):  # noqa: ANN201 - the pyqtgraph item showing ``uid``, or None
        """The graphics item showing annotation ``uid`` (None when its image is not on screen)."""
        return self._graphics.get(uid)

    def label_text(self, uid: str) -> str:
        """The measurement label shown next to annotation ``uid`` ("" when not on screen or none)."""
        label = self._labels.get(uid)
        return label.toPlainText() if label is not None and label.isVisible() else ""

    # ------------------------------------------------------------------------------------------ syncing
    # The graphics of an annotation (an _Item: its mark and its label) are made once and kept: when its image leaves
    # the screen they are parked (moved under a hidden item of the view) and they come back when it returns,
    # changed only where the annotation's geometry or text changed meanwhile. Those of images off screen are kept
    # for up to _KEEP_PARKED annotations (beyond, the least recently shown are dropped, and made again if needed).
    def sync(self) -> None:
        """Show the annotations of the image on screen (called by the viewer whenever it renders or clears);
        cheap when nothing changed."""
        vol = self.viewer.volume
        key = self.current_key()
        k = int(self.viewer.state.index)
        ready = vol is not None and (vol.ready is None or (0 <= k < len(vol.ready) and bool(vol.ready[k])))
        if self._shown is not None and self._shown[0] is vol and self._shown[1:] == (key, ready):
            return
        self._cancel_draft()
        if vol is not self._vol:  # another volume (or none): other spacing, other pixels
            self._vol = vol
            self._mcache.clear()
            self._mcache_vol = vol  # (keeping no reference to a volume the viewer dropped)
            self._slice_index = None
            self._layouts.clear()
        self._clear_graphics()
        self._shown = (vol, key, ready) if vol is not None else None
        if key is None:
            self._evict()
            return
        self._dirty = set()
        self._layout_held = True  # one label layout for all, not one per annotation shown
        try:
            for ann in self.annotations_for(*key):
                self._show(ann)
        finally:
            self._layout_held = False
        dirty, self._dirty = self._dirty, set()
        st = self._layouts.get(key)
        if st is not None and self._layout_valid(st):
            # Back on an image laid out for this very view: its labels are where they were; only what changed
            # meanwhile (or came / went) is placed again.
            self._layouts[key] = self._layouts.pop(key)
            dirty |= set(st.places).symmetric_difference(self._graphics)
            if dirty:
                self._relayout(dirty)
        else:
            self._layout_labels()
        self._evict()

    def _clear_graphics(self) -> None:
        """Park every shown graphic (deselecting)."""
        if self._selected is not None:
            self._selected = None
            self.selection_changed.emit(None)
        for uid in self._graphics:
            self._park(self._items[uid])
        self._graphics = {}
        self._labels = {}

    def _on_screen(self, ann: Annotation) -> bool:
        return self._shown is not None and self._shown[1] == (ann.sop_instance_uid, ann.frame)

    def _parking(self) -> _Parking:
        view = self.viewer.view
        p = self._park_item
        if p is None or p.parentItem() is not view_group(view):
            p = _Parking()
            self._add_to_view(p)
            self._park_item = p
        return p

    def _park(self, it: _Item) -> None:
        """Take the graphics of ``it`` off the screen, kept: the mark under the hidden parking item (so that the
        view's children are what is on screen), the label hidden (cheaper, and not a mark)."""
        if it.parked:
            return
        g = it.g
        if g.selected:
            g.set_selected_look(False)
        g.set_hovered(False)  # hovered when its image went: not hovered when it returns
        park = self._parking()
        # Qt repaints neither where an item was when it goes under a transparent parent, nor where it appears when
        # it comes back: the view repaints that area (in the same pass as any other change: one paint).
        view = self.viewer.view
        view.update(g.mapRectToItem(view, g.boundingRect()))
        with quiet_children(view):
            g.setParentItem(park)
        it.label.setVisible(False)
        it.parked = True

    def _unpark(self, it: _Item) -> None:
        if not it.parked:
            return
        g = it.g
        view = self.viewer.view
        with quiet_children(view):
            g.setParentItem(view_group(view))
        g.update()
        g.set_interactive(self._tool is None)
        it.label.setVisible(it.label_vis)
        it.parked = False

    def _add_to_view(self, item) -> None:  # noqa: ANN001
        """``view.addItem(item, ignoreBounds=True)`` without repainting the whole view (see
        :func:`~medviewer.ui.annotations.pg_adapter.quiet_children`)."""
        view = self.viewer.view
        scene = view.scene()
        if scene is not None and item.scene() is not scene:
            scene.addItem(item)  # first, as ViewBox.addItem does (QTBUG-18616)
        with quiet_children(view):
            item.setParentItem(view_group(view))

    def _sig(self, ann: Annotation) -> tuple:
        pts = _norm_box(ann.points) if ann.kind in ("rect", "ellipse") else ann.points
        return self._scale(), tuple(pts)

    def _create(self, ann: Annotation) -> _Item:
        g = self._make_graphic(ann)
        g.uid = ann.uid
        g.set_interactive(self._tool is None)
        self._add_to_view(g)
        label = _make_label()
        self._add_to_view(label)
        g.sigRegionChangeStarted.connect(self._graphic_clicked)
        g.sigRegionChangeFinished.connect(self._graphic_finished)
        g.sigClicked.connect(lambda mark, ev: self._graphic_clicked(mark))
        if isinstance(g, _TextMark):
            g.sigEditRequested.connect(lambda mark: self.edit_text(mark.uid))
        else:
            g.sigRegionChanged.connect(self._graphic_changed)
        it = _Item(ann.uid, g, label, self._sig(ann))
        self._items[ann.uid] = it
        return it

    def _destroy(self, uid: str) -> None:
        """Delete the graphics of ``uid`` (they must not be shown)."""
        it = self._items.pop(uid, None)
        if it is None:
            return
        view = self.viewer.view
        for item in (it.g, it.label):
            view.removeItem(item)

    def _evict(self) -> None:
        """Drop the least recently shown parked graphics beyond ``_KEEP_PARKED``."""
        extra = len(self._items) - len(self._graphics) - _KEEP_PARKED
        if extra <= 0:
            return
        for uid in [u for u, it in self._items.items() if it.parked][:extra]:
            self._destroy(uid)

    def _show(self, ann: Annotation) -> None:
        """Show ``ann`` (of the image on screen): its graphics made, or brought back and updated."""
        uid = ann.uid
        it = self._items.get(uid)
        if it is not None and it.g.kind != ann.kind:
            self._hide(uid)
            self._destroy(uid)
            it = None
        if it is None:
            it = self._create(ann)
            changed = True
        else:
            self._items[uid] = self._items.pop(uid)  # the most recently shown last: kept longest
            changed = self._set_geometry(it, ann)
            self._unpark(it)
        self._graphics[uid] = it.g
        self._labels[uid] = it.label
        if changed and self._layout_held:
            self._dirty.add(uid)
        self._update_label(it, ann)

    def _set_geometry(self, it: _Item, ann: Annotation) -> bool:
        """Move the mark of ``it`` to ``ann`` (and a text mark to its text); True when something changed."""
        g = it.g
        changed = False
        sig = self._sig(ann)
        if it.sig != sig:
            if it.sig is not None or not _same_points(self._annotation_of(g, ann), ann):
                self._setting = True  # our own change: not a drag
                try:
                    g.set_view_points([self.image_to_view(x, y) for x, y in ann.points])
                finally:
                    self._setting = False
            it.sig = sig
            changed = True
        if isinstance(g, _TextMark) and g.toPlainText() != ann.text:
            g.setText(ann.text)
            changed = True
        return changed

    def _hide(self, uid: str) -> None:
        """Take ``uid`` off the screen (its graphics parked)."""
        self._graphics.pop(uid, None)
        self._labels.pop(uid, None)
        it = self._items.get(uid)
        if it is not None:
            self._park(it)
        if uid == self._selected:
            self._selected = None
            self.selection_changed.emit(None)

    def _make_graphic(self, ann: Annotation):  # noqa: ANN202
        pts = [self.image_to_view(x, y) for x, y in ann.points]
        if ann.kind in ("length", "arrow", "angle"):
            return _PolyMark(ann.kind, pts)
        if ann.kind in ("rect", "ellipse"):
            return _BoxMark(ann.kind, pts[0], pts[1])
        return _TextMark(ann.text, pts[0])

    # ------------------------------------------------------------------------------------------ store + emit
    def _put(self, ann: Annotation, emit: bool = True) -> None:
        """Insert or replace ``ann`` (no undo entry), refresh its graphic, emit ``annotation_saved`` (if ``emit``)."""
        self._all[ann.uid] = ann
        if self._on_screen(ann):
            self._show(ann)
        elif ann.uid in self._graphics:  # moved to another image
            self._hide(ann.uid)
            self._relayout({ann.uid})
        if emit:
            self.annotation_saved.emit(ann)

    def _drop(self, uid: str, emit: bool = True) -> bool:
        """Remove ``uid`` (no undo entry), emit ``annotation_deleted`` (if ``emit``); False when it was unknown."""
        if self._all.pop(uid, None) is None:
            return False
        self._mcache.pop(uid, None)
        if uid in self._graphics:
            self._hide(uid)  # parked, not deleted: an undo brings it back at once
            self._relayout({uid})  # the labels it kept off its own may move back
        if emit:
            self.annotation_deleted.emit(uid)
        return True

    # ------------------------------------------------------------------------------------------ measuring
    def _scale(self) -> tuple[float, float]:
        vol = self.viewer.volume
        if vol is None:
            return 1.0, 1.0
        return float(vol.spacing[2]) or 1.0, float(vol.spacing[1]) or 1.0

    def _slice_of(self, key: tuple[str, int]) -> int | None:
        vol = self.viewer.volume
        if vol is None or vol.stack is None:
            return None
        k = int(self.viewer.state.index)
        if self.current_key() == key:
            return k
        slices = vol.stack.slices
        cached = self._slice_index
        if cached is None or cached[0] is not vol or cached[1] != len(slices):
            index: dict[tuple[str, int], int] = {}
            for n, ref in enumerate(slices):
                index.setdefault((ref.instance.sop_instance_uid, int(ref.frame.index)), n)
            self._slice_index = cached = (vol, len(slices), index)
        return cached[2].get(key)

    def _measure(self, ann: Annotation) -> Measurement:
        """What ``ann`` measures (cached per annotation: the same geometry on the same, equally decoded, slice of
        the same volume measures the same). The result is shared: do not modify it."""
        vol = self.viewer.volume
        k = self._slice_of((ann.sop_instance_uid, ann.frame))
        if vol is None or k is None:
            return measure(ann)
        ready = vol.ready is None or bool(vol.ready[k])
        if self._mcache_vol is not vol:
            self._mcache.clear()
            self._mcache_vol = vol
        ck = (ann.kind, tuple(ann.points), ann.sop_instance_uid, ann.frame, k, vol.ready is None, ready)
        hit = self._mcache.get(ann.uid)
        if hit is not None and hit[0] == ck:
            return hit[1]
        image = None
        if ann.kind in ("rect", "ellipse") and ready:
            image = vol.array[k]
            if image.ndim == 3:  # colour: mean of the channels
                image = image.astype(np.float32).mean(axis=-1)
        spacing = vol.stack.pixel_spacing if vol.stack is not None else None
        plane = vol.stack.spacing_note if vol.stack is not None else ""
        units = "" if vol.is_color else vol.units
        inst = vol.stack.slices[k].instance if vol.stack is not None else None
        m = measure(ann, image, spacing, units, plane, vol.padding, inst.us_regions if inst is not None else ())
        self._mcache[ann.uid] = (ck, m)
        return m

    def _annotation_of(self, g, ann: Annotation) -> Annotation:  # noqa: ANN001
        """``ann`` with the geometry graphic ``g`` shows now (image pixel coordinates)."""
        pts = [self.view_to_image(p) for p in g.view_points()]
        return Annotation(ann.kind, pts, ann.sop_instance_uid, ann.frame, ann.text, ann.uid)

    def _label_for(self, ann: Annotation) -> str:
        if ann.kind == "text":
            return ""
        m = self._measure(ann)
        text = m.label()
        if ann.kind in ("rect", "ellipse") and m.mean is None and m.n_pixels is None and m.area is not None:
            lu = "mm" if m.calibrated else "px"
            text = f"area {m.area:.1f} {lu}\N{SUPERSCRIPT TWO}" + (
                f"\n\N{WARNING SIGN} {m.warning}" if m.warning else "")
        if ann.text:
            text = ann.text + ("\n" + text if text else "")
        return text

    def _update_label(self, it: _Item, ann: Annotation) -> None:
        """Set the label of shown ``it`` for ``ann`` (its text, maybe its geometry) and place it again."""
        text = self._label_for(ann)
        if text != it.text:
            it.label.setText(text)
            it.text = text
            it.size = None
            if self._layout_held:
                self._dirty.add(it.uid)
        visible = bool(text)
        if visible != it.label_vis:
            it.label_vis = visible
            if not it.parked:
                it.label.setVisible(visible)
        self._relayout({it.uid})

    # ------------------------------------------------------------------------------------------ label layout
    # A layout (_Layout) is kept per image for the view it was made for: coming back to an image in the same view
    # costs nothing; an added, changed or removed annotation places again only the labels that could be affected
    # (_relayout); a pan, zoom or resize lays every label out again (_layout_labels). Overlap tests go through
    # uniform grids, and beyond _LABEL_AVOID_MAX labels in view there is no avoidance at all (each label at its
    # preferred place): the cost stays about linear in the number of annotations shown.
    def _fit_labels(self) -> None:  # the view was zoomed, panned or resized
        if self._shown is None:
            return
        st = self._layouts.get(self._shown[1])
        if st is None or not self._layout_valid(st):
            self._layout_labels()

    def _context(self) -> tuple[tuple, QTransform]:
        """The view's rect and its view-to-scene transform, now."""
        view = self.viewer.view
        tr = view.childTransform() * view.sceneTransform()  # (childTransform brings the view's matrix up to date)
        a = view.sceneBoundingRect()
        return (a.left(), a.top(), a.right(), a.bottom()), tr

    def _layout_valid(self, st: _Layout) -> bool:
        if st.vol is not self.viewer.volume:
            return False
        area, tr = self._context()
        return st.area == area and st.tr == tr

    def _layout_labels(self) -> None:
        """Place every shown measurement label (greedy, one label after the other).

        Candidate positions of a label: its preferred side (under a box, beyond a length's end or an arrow's tail,
        outside an angle), then right of, left of, below and above its annotation (then those sides aligned the
        other way); each shifted into the view when it pokes out. A label takes the first candidate that needs no
        shifting, overlaps no label placed before it (nor a text annotation) and covers no annotation; failing that
        the best by: least overlap with those labels, then least annotation covered, then least shifted. When that
        leaves some label over another or over an annotation, the labels (up to ``_LABEL_REORDER_MAX``) are placed
        again in other orders (reversed, top to bottom, bottom to top) and the best layout is kept. A label larger
        than the view keeps its left (top) edge visible, on the side of its annotation with more room. The label of
        an annotation wholly outside the view stays on its preferred side (it is not pulled into view, and does not
        push the others). Beyond ``_LABEL_AVOID_MAX`` labels in view, each label simply takes its preferred place
        (shifted into the view): keeping hundreds apart is neither possible nor affordable."""
        view = self.viewer.view
        if self._layout_held or view.scene() is None or self._shown is None:
            return
        key = self._shown[1]
        self._layouts.pop(key, None)
        if not self._labels:
            return
        area, tr = self._context()
        st = _Layout(key, self.viewer.volume, area, tr)
        for uid in self._graphics:
            st.set(uid, self._place_of(self._items[uid], st))
        self._layouts[key] = st
        while len(self._layouts) > _KEEP_LAYOUTS:
            self._layouts.pop(next(iter(self._layouts)))
        self._place_all(st)

    def _relayout(self, uids) -> None:  # noqa: ANN001
        """Place again the labels that annotations ``uids`` (added, changed, removed or moved off screen) may have
        affected: their own, and those that could go where they were or are now (their candidate places reach the
        old or new annotation or label). A full layout when there is no valid layout, when few labels are in view
        (cheap, and it tries other orders), or when the count crosses ``_LABEL_AVOID_MAX``."""
        if self._layout_held or self._shown is None:
            return
        st = self._layouts.get(self._shown[1])
        if st is None or not self._layout_valid(st):
            self._layout_labels()
            return
        regions = []
        for uid in uids:
            old = st.places.get(uid)
            if old is not None:
                regions.append(old.zone)
                if old.fixed is not None:
                    regions.append(old.fixed)
                if old.in_view:
                    regions.append(old.reach)
            it = self._items.get(uid) if uid in self._graphics else None
            if it is None:
                st.remove(uid)
                continue
            p = self._place_of(it, st)
            st.set(uid, p)
            regions.append(p.zone)
            if p.fixed is not None:
                regions.append(p.fixed)
            if p.in_view:
                regions.append(p.reach)
        n = len(st.todo)
        if n <= _LABEL_REORDER_MAX or (n <= _LABEL_AVOID_MAX) != st.avoid:
            self._place_all(st)
            return
        for uid in uids:
            p = st.places.get(uid)
            if p is not None and p.label and not p.in_view:
                self._put_label(st, uid, p.cands[0])
        if not st.avoid:
            for uid in uids:
                if uid in st.todo:
                    p = st.places[uid]
                    self._place_at(st, uid, p.shifted[0])
            return
        places = st.places
        affected = [u for u in self._labels if u in st.todo and
                    (u in uids or any(_hit(places[u].reach, r) for r in regions))]
        for u in affected:
            st.labels.remove(u)
            st.placed.pop(u, None)
        _, where = self._greedy(st, st.labels, affected)
        for u, r in where.items():
            st.placed[u] = r
            self._put_label(st, u, (r[0], r[1]))

    def _place_of(self, it: _Item, st: _Layout) -> _Place:
        """Where shown ``it`` is, and may have its label, in the view of layout ``st``."""
        g = it.g
        tr = st.tr
        pts = []
        for q in g.view_points():
            s = tr.map(q)
            pts.append((s.x(), s.y()))
        xs, ys = [x for x, _ in pts], [y for _, y in pts]
        shape = (min(xs), min(ys), max(xs), max(ys))
        p = _Place(shape)
        if isinstance(g, _TextMark):
            r = g.mapRectToScene(g.boundingRect())
            p.fixed = (r.left(), r.top(), r.right(), r.bottom())
        elif g.kind in ("rect", "ellipse"):
            p.marks = [("box", *shape)]
        else:
            p.marks = [("seg", a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(pts)]
        if it.text and it.label_vis:
            w, h = self._label_size(it)
            p.label = True
            p.w, p.h = w, h
            p.anchor, p.cands = _label_candidates(g.kind, pts, shape, w, h)
            area = st.area
            if w > 0 and h > 0 and _hit(p.zone, area):
                p.in_view = True
                p.shifted = [_shift_into(x, y, w, h, area, p.anchor) for x, y in p.cands]
                p.reach = (min(x for x, _ in p.shifted), min(y for _, y in p.shifted),
                           max(x for x, _ in p.shifted) + w, max(y for _, y in p.shifted) + h)
        return p

    @staticmethod
    def _label_size(it: _Item) -> tuple[float, float]:
        """The size of the (shown) label of ``it`` on screen: its text's, whatever the zoom."""
        if it.size is None:
            label = it.label
            label.updateTransform(force=True)
            r = label.mapRectToScene(label.boundingRect())
            it.size = (r.width(), r.height())
        return it.size

    def _put_label(self, st: _Layout, uid: str, tl: tuple[float, float]) -> None:
        self._labels[uid].setPos(st.inv.map(QPointF(tl[0], tl[1])))

    def _place_at(self, st: _Layout, uid: str, tl: tuple[float, float]) -> None:
        p = st.places[uid]
        r = (tl[0], tl[1], tl[0] + p.w, tl[1] + p.h)
        st.placed[uid] = r
        st.labels.add(uid, r, r)
        self._put_label(st, uid, tl)

    def _place_all(self, st: _Layout) -> None:
        """Place every label of ``st`` (see :meth:`_layout_labels`)."""
        fixed = _Grid(st.area)
        for uid, p in st.places.items():
            if p.fixed is not None:
                fixed.add(("fixed", uid), p.fixed, p.fixed)
            elif p.label and not p.in_view:  # out of view: left where it would be
                self._put_label(st, uid, p.cands[0])
        st.labels, st.placed = fixed, {}
        order = [u for u in self._labels if u in st.todo]
        st.avoid = len(order) <= _LABEL_AVOID_MAX
        if not order:
            return
        if not st.avoid:
            for uid in order:
                self._place_at(st, uid, st.places[uid].shifted[0])
            return
        grid = fixed.copy()
        best = (*self._greedy(st, grid, order), grid)
        if best[0][:2] != (0.0, 0.0) and 1 < len(order) <= _LABEL_REORDER_MAX:
            top = {u: st.places[u].anchor[1] for u in order}
            for other in (order[::-1], sorted(order, key=lambda u: top[u]), sorted(order, key=lambda u: -top[u])):
                grid = fixed.copy()
                result = (*self._greedy(st, grid, other), grid)
                if result[0] < best[0]:
                    best = result
                if best[0][:2] == (0.0, 0.0):
                    break
        st.labels, st.placed = best[2], best[1]
        for uid, r in st.placed.items():
            self._put_label(st, uid, (r[0], r[1]))

    @staticmethod
    def _greedy(st: _Layout, grid: _Grid, order: list[str]) -> tuple[tuple[float, float, float], dict[str, tuple]]:
        """Place the labels ``order`` one after the other, each at its best candidate given ``grid`` (the labels
        placed so far, and the text annotations), which gets it. Returns (total overlap, total annotation covered,
        total shift) and where each label went."""
        marks = st.marks
        total = [0.0, 0.0, 0.0]
        where = {}
        for uid in order:
            p = st.places[uid]
            w, h = p.w, p.h
            best = None
            for n, ((cx, cy), (sx, sy)) in enumerate(zip(p.cands, p.shifted)):
                r = (sx, sy, sx + w, sy + h)
                overlap = 0.0
                for o in grid.query(r).values():
                    overlap += _inter(r, o)
                near = marks.query(r)
                covered = _covered(r, [m for ms in near.values() for m in ms]) if near else 0.0
                cost = (overlap, covered, math.hypot(sx - cx, sy - cy), n)
                if best is None or cost < best[0]:
                    best = (cost, r)
                if cost[:3] == (0.0, 0.0, 0.0):
                    break
            where[uid] = best[1]
            grid.add(uid, best[1], best[1])
            total[0] += best[0][0]
            total[1] += best[0][1]
            total[2] += best[0][2]
        return (total[0], total[1], total[2]), where

    # ------------------------------------------------------------------------------------------ graphics events
    def _graphic_changed(self, g) -> None:  # noqa: ANN001 - live: while a handle or the body is dragged
        uid = getattr(g, "uid", None)
        ann = self._all.get(uid)
        if self._setting or ann is None or uid not in self._graphics:
            return
        it = self._items[uid]
        it.sig = None  # the mark is no longer where the annotation says
        self._update_label(it, self._annotation_of(g, ann))

    def _graphic_clicked(self, g) -> None:  # noqa: ANN001
        if getattr(g, "uid", None) in self._graphics:
            self.select(g.uid)
            self.viewer.setFocus(Qt.FocusReason.MouseFocusReason)

    def _graphic_finished(self, g) -> None:  # noqa: ANN001 - a drag ended: one undo step
        ann = self._all.get(getattr(g, "uid", None))
        if ann is None:
            return
        new = self._annotation_of(g, ann)
        if _same_points(new, ann):
            it = self._items.get(ann.uid)
            if it is not None and ann.uid in self._graphics:
                it.sig = None
                self._update_label(it, ann)
            return
        what = "Move" if all(abs((a[0] - b[0]) - (new.points[0][0] - ann.points[0][0])) < 1e-6 and
                             abs((a[1] - b[1]) - (new.points[0][1] - ann.points[0][1])) < 1e-6
                             for a, b in zip(new.points, ann.points)) else "Edit"
        self.undo_stack.push(_ModifyCommand(self, ann, new, f"{what} {ann.kind}"))
    # ------------------------------------------------------------------------------------------ drawing
    def _image_bounds(self) -> QRectF | None:
        vol = self.viewer.volume
        if vol is None:
            return None
        sc, sr = self._scale()
        rows, cols = vol.array.shape[1:3]
        return QRectF(0, 0, cols * sc, rows * sr)

    def _clamp(self, p: QPointF) -> QPointF:
        r = self._image_bounds()
        if r is None:
            return p
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def _scene_to_view(self, scene_pos: QPointF) -> QPointF:
        return self._clamp(self.viewer.view.mapSceneToView(scene_pos))

    def _screen_distance(self, a: QPointF, b: QPointF) -> float:
        view = self.viewer.view
        d = view.mapViewToScene(a) - view.mapViewToScene(b)
        return math.hypot(d.x(), d.y())

    def _set_preview(self, kind: str, points: list[QPointF]) -> None:
        d = self._draft
        old = d.get("preview")
        if old is not None and old.kind == kind and len(old.view_points()) == len(points):
            old.set_view_points(points)
            return
        if old is not None:
            self.viewer.view.removeItem(old)
        if kind in ("rect", "ellipse"):
            item = _BoxMark(kind, points[0], points[1])
        else:
            item = _PolyMark(kind, points)
        item.set_interactive(False)
        for h in item.getHandles():
            h.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        item.set_selected_look(True)
        self.viewer.view.addItem(item, ignoreBounds=True)
        d["preview"] = item

    def _cancel_draft(self) -> None:
        d, self._draft = self._draft, None
        if d is not None and d.get("preview") is not None:
            self.viewer.view.removeItem(d["preview"])

    @property
    def drawing(self) -> bool:
        """True while a drawing is in progress (a drag, or an angle waiting for its next click)."""
        return self._draft is not None

    def view_drag(self, ev) -> bool:  # noqa: ANN001 - a pyqtgraph MouseDragEvent on the ViewBox
        """Called by the viewer's ViewBox for every drag it gets: draws with the active tool (left button only).
        True when the event was used (the ViewBox then must not pan)."""
        if self._tool is None or ev.button() != Qt.MouseButton.LeftButton or self.current_key() is None:
            return False
        ev.accept()
        kind = self._tool
        if kind == "text":
            return True
        start = self._scene_to_view(ev.buttonDownScenePos())
        here = self._scene_to_view(ev.scenePos())
        if kind == "angle":
            if ev.isStart() and self._draft is None:
                self._draft = {"kind": "angle", "points": [start]}
            if self._draft is None:
                return True
            pts = self._draft["points"]
            if ev.isFinish():
                self._angle_point(here)
            else:
                self._set_preview("length" if len(pts) == 1 else "angle", pts + [here])
            return True
        if ev.isStart():
            self._cancel_draft()
            self._draft = {"kind": kind, "points": [start]}
        if self._draft is None:
            return True
        self._set_preview(kind, [start, here])
        if ev.isFinish():
            self._cancel_draft()
            if self._screen_distance(start, here) >= _MIN_DRAG_PX:
                self._commit_new(kind, [start, here])
        return True

    def view_click(self, ev) -> bool:  # noqa: ANN001 - a pyqtgraph MouseClickEvent on the ViewBox
        """Called by the viewer's ViewBox for clicks no annotation took: angle points and text placement with a
        tool, deselection without. True when the event was used."""
        if ev.button() != Qt.MouseButton.LeftButton:
            return False
        if self._tool is None:
            self.select(None)
            return False
        if self.current_key() is None:
            return False
        ev.accept()
        here = self._scene_to_view(ev.scenePos())
        if self._tool == "angle":
            if self._draft is None:
                self._draft = {"kind": "angle", "points": []}
            self._angle_point(here)
        elif self._tool == "text":
            text = self.text_provider(self.viewer, "")
            if text and text.strip():
                self._commit_new("text", [here], text)
        return True

    def _angle_point(self, p: QPointF) -> None:
        d = self._draft
        pts = d["points"]
        if pts and self._screen_distance(pts[-1], p) < _MIN_DRAG_PX:
            return  # a double click or a click on the last point: ignore
        pts.append(p)
        if len(pts) == 3:
            self._cancel_draft()
            self._commit_new("angle", pts)
        elif len(pts) == 2:
            self._set_preview("angle", pts + [p])
        else:
            self._set_preview("length", pts + [p])

    def _mouse_moved(self, scene_pos: QPointF) -> None:
        d = self._draft
        if d is None or d["kind"] != "angle" or not d["points"]:
            return
        here = self._scene_to_view(scene_pos)
        pts = d["points"]
        self._set_preview("length" if len(pts) == 1 else "angle", pts + [here])

    def _commit_new(self, kind: str, view_points: list[QPointF], text: str = "") -> None:
        key = self.current_key()
        if key is None:
            return
        pts = [self.view_to_image(p) for p in view_points]
        if kind in ("rect", "ellipse"):
            pts = _norm_box(pts)
        ann = Annotation(kind, pts, key[0], key[1], text)
        self.add(ann)
        self.select(ann.uid)

    # ------------------------------------------------------------------------------------------ keys
    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt override
        """Keys on the viewer: Escape, Delete/Backspace, undo/redo and the tool letters (see :data:`SHORTCUTS`)."""
        if ev.type() == QEvent.Type.KeyPress and self._key(ev):
            ev.accept()
            return True
        return False

    def _key(self, ev) -> bool:  # noqa: ANN001
        key = ev.key()
        mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ctrl = Qt.KeyboardModifier.ControlModifier
        shift = Qt.KeyboardModifier.ShiftModifier
        if ev.matches(QKeySequence.StandardKey.Undo) or (key == Qt.Key.Key_Z and mods == ctrl):
            self.undo()
            return True
        if ev.matches(QKeySequence.StandardKey.Redo) or (key == Qt.Key.Key_Y and mods == ctrl) or \
                (key == Qt.Key.Key_Z and mods == ctrl | shift):
            self.redo()
            return True
        if key == Qt.Key.Key_Escape:
            if self._draft is not None or self._tool is not None:
                self.set_tool(None)
                return True
            if self._selected is not None:
                self.select(None)
                return True
            return False
        if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and mods == Qt.KeyboardModifier.NoModifier:
            return self.delete_selected()
        if mods == Qt.KeyboardModifier.NoModifier and key in _TOOL_KEYS:
            self.set_tool(_TOOL_KEYS[key])
            return True
        return False


# ==================================================================================================== actions
def sync_tool_actions(actions: dict[str, QAction], viewer: "ImageViewer | None") -> None:
    """Check the tool action matching ``viewer``'s active tool (call when the active viewport changes)."""
    tool = viewer.annotations.tool if viewer is not None else None
    name = tool if tool is not None else "navigate"
    if name in actions:
        actions[name].setChecked(True)


def build_annotation_actions(window: QWidget, menu, toolbar, get_viewer: Callable[[], "ImageViewer | None"],
                             ) -> dict[str, QAction]:  # noqa: ANN001
    """Create the annotation actions on ``window`` and add them to ``menu`` (a QMenu, or None) and ``toolbar``
    (a QToolBar, or None; tools only).

    Returns ``{"navigate", "length", "angle", "rect", "ellipse", "arrow", "text", "undo", "redo", "delete"}`` ->
    QAction. The tool actions are checkable and exclusive; every action acts on ``get_viewer()``'s layer (the
    active viewport). Keys: see :data:`TOOLS` and :data:`SHORTCUTS`. The checked tool follows the layer's
    ``tool_changed`` (e.g. Escape) for each viewer an action was used on; call :func:`sync_tool_actions` when the
    active viewport changes.
    """
    actions: dict[str, QAction] = {}
    group = QActionGroup(window)
    group.setExclusive(True)
    watched: set[int] = set()

    def layer():  # noqa: ANN202
        v = get_viewer()
        if v is None:
            return None
        if id(v.annotations) not in watched:
            watched.add(id(v.annotations))
            v.annotations.tool_changed.connect(
                lambda _kind, v=v: sync_tool_actions(actions, v) if get_viewer() is v else None)
        return v.annotations

    def use_tool(kind: str | None) -> None:
        lay = layer()
        if lay is not None:
            lay.set_tool(kind)

    for kind, text, key in TOOLS:
        name = kind or "navigate"
        act = QAction(text, window)
        act.setShortcut(QKeySequence(key))
        act.setCheckable(True)
        act.setChecked(kind is None)
        act.setToolTip(f"{text} ({key})")
        act.triggered.connect(lambda _=False, k=kind: use_tool(k))
        group.addAction(act)
        window.addAction(act)
        actions[name] = act
        if menu is not None:
            menu.addAction(act)
        if toolbar is not None:
            toolbar.addAction(act)

    def run(method: str) -> None:
        # Delete/Backspace typed in a list or tree (browser, worklist) are not meant for the annotation.
        focus = QApplication.focusWidget()
        if method == "delete_selected" and isinstance(focus, QAbstractItemView):
            return
        lay = layer()
        if lay is not None:
            getattr(lay, method)()

    extra = [("undo", "Undo annotation", ["Ctrl+Z"], "undo"),
             ("redo", "Redo annotation", ["Ctrl+Shift+Z", "Ctrl+Y"], "redo"),
             ("delete", "Delete annotation", ["Delete", "Backspace"], "delete_selected")]
    if menu is not None:
        menu.addSeparator()
    for name, text, keys, method in extra:
        act = QAction(text, window)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.triggered.connect(lambda _=False, m=method: run(m))
        window.addAction(act)
        actions[name] = act
        if menu is not None:
            menu.addAction(act)
    if menu is not None:
        menu.aboutToShow.connect(lambda: sync_tool_actions(actions, get_viewer()))
    return actions
