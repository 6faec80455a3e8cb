"""The graphics item of each annotation kind, in a viewer's ViewBox (view coordinates, mm): :class:`PolyMark`
(length, arrow, angle), :class:`BoxMark` (rectangle, ellipse) and :class:`TextMark` (text).

Every mark has ``kind``, ``uid``, ``selected``, ``view_points()`` / ``set_view_points(points)`` (the annotation's
points in view coordinates), ``set_selected_look``, ``set_hovered`` and ``set_interactive`` (not interactive:
its body lets hover, clicks and drags through to the view, while the handles of a ROI mark stay editable); and the
signals ``sigClicked(mark, event)``, ``sigRegionChangeStarted(mark)`` / ``sigRegionChangeFinished(mark)`` (a drag
of its body or a handle starts / ends), ROI marks also ``sigRegionChanged(mark)`` (live, while dragged) and
the text mark ``sigEditRequested(mark)`` (a double click). Sizes are in screen pixels whatever the zoom.
"""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QPainter, QPainterPath, QPainterPathStroker, QPen, QPolygonF

from medviewer.ui.annotations import style
from medviewer.ui.annotations.pg_adapter import set_handle_radius
from medviewer.ui.annotations.points import BOX_KINDS

__all__ = ["BoxMark", "Mark", "PolyMark", "TextMark", "make_mark"]


class RoiMark(pg.ROI):
    """What the ROI marks share. Their sizes are in screen pixels: the length of one screen pixel is kept until
    the view transform changes (it was computed a few times per item and paint).

    The mark draws itself (``paint``) with the pen of its look: hovered, else selected, else normal. Hover and
    interactivity are its own (``hoverEvent`` / ``mouseDragEvent``): not interactive, its body takes neither
    hover, clicks nor drags (they go to the view), while its handles stay editable."""

    _px_cache: float | None = None  # (a class default: Qt may ask for the geometry while pg.ROI initialises)

    def __init__(self, kind: str, pos: tuple[float, float], size: tuple[float, float], **kwargs: Any):
        super().__init__(pos, size, movable=True, rotatable=False, resizable=False, pen=style.pen(style.NORMAL),
                         hoverPen=style.pen(style.HOVER), handlePen=style.pen(style.HANDLE, 1.5),
                         handleHoverPen=style.pen(style.HOVER, 1.5), **kwargs)
        self.kind = kind
        self.uid: str | None = None
        self.selected = False
        self.hovered = False
        self.interactive = True
        set_handle_radius(self, style.HANDLE_RADIUS)

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
        return style.mark_pens("hover" if self.hovered else "selected" if self.selected else "normal")

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


class PolyMark(RoiMark):
    """Length, arrow (head at points[1]) or angle (vertex at points[1]): a polyline through free handles.

    Geometry is in the ROI's parent coordinates = view coordinates (mm); the ROI itself stays at (0, 0) until
    its body is dragged (then ``pos()`` is the translation)."""

    def __init__(self, kind: str, points: list[QPointF]):
        super().__init__(kind, (0, 0), (1, 1))
        for p in points:
            self.addFreeHandle(p)
        self.setZValue(style.Z)

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

    def paint(self, p: QPainter, *args: Any) -> None:  # noqa: D102 - Qt override
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


class BoxMark(RoiMark):
    """Rectangle or ellipse ROI, axis-aligned: ``pos()`` is the top-left corner and ``size()`` the extent, in view
    coordinates (mm); a scale handle at each corner (the opposite corner stays put)."""

    def __init__(self, kind: str, p0: QPointF, p1: QPointF):
        x0, x1 = sorted((p0.x(), p1.x()))
        y0, y1 = sorted((p0.y(), p1.y()))
        super().__init__(kind, (x0, y0), (x1 - x0, y1 - y0), invertible=False)
        for hx, hy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            self.addScaleHandle((hx, hy), (1 - hx, 1 - hy))
        self.setZValue(style.Z)

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

    def paint(self, p: QPainter, *args: Any) -> None:  # noqa: D102 - Qt override
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(Qt.BrushStyle.NoBrush)
        for pen in self._pens():
            p.setPen(pen)
            if self.kind == "ellipse":
                p.drawEllipse(self._rect())
            else:
                p.drawRect(self._rect())


class TextMark(pg.TextItem):
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
        super().__init__(text, color=style.NORMAL, anchor=(0, 0), fill=pg.mkBrush(*style.LABEL_FILL), border=None)
        self.setFont(style.text_font())
        self.setPos(point)
        self.setZValue(style.TEXT_Z)
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
        self.setColor(pg.mkColor(style.SELECTED if selected else style.NORMAL))
        self.update()

    def set_hovered(self, hovered: bool) -> None:
        pass

    def set_interactive(self, interactive: bool) -> None:
        self.interactive = interactive

    def paint(self, p: QPainter, *args: Any) -> None:  # noqa: D102 - Qt override
        super().paint(p, *args)  # the box under the text (the text is a child item: painted after)
        if self.selected:
            p.setPen(style.pen(style.SELECTED, style.SELECTED_BORDER_WIDTH))
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


#: Any annotation mark.
Mark = PolyMark | BoxMark | TextMark


def make_mark(kind: str, points: list[QPointF], text: str = "") -> Mark:
    """The mark of an annotation of ``kind`` through ``points`` (view coordinates); ``text`` for a text mark."""
    if kind in ("length", "arrow", "angle"):
        return PolyMark(kind, points)
    if kind in BOX_KINDS:
        return BoxMark(kind, points[0], points[1])
    return TextMark(text, points[0])
