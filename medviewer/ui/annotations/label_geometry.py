"""Geometry of the label layout, Qt-free: rects are plain ``(left, top, right, bottom)`` float tuples in scene
coordinates (screen pixels), much cheaper than QRectF in the layout's inner loops; a uniform grid finds the rects
near a rect; and where a label may go around its annotation."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from medviewer.ui.annotations.points import BOX_KINDS

__all__ = [
    "LABEL_GAP",
    "LABEL_MARGIN",
    "Grid",
    "MarkGeom",
    "Rect",
    "covered",
    "grow",
    "hit",
    "inter",
    "label_candidates",
    "length_inside",
    "shift_into",
]

Rect = tuple[float, float, float, float]
#: A mark of an annotation, for "how much does a label cover": ``("box", left, top, right, bottom)`` or
#: ``("seg", x0, y0, x1, y1)`` (a line segment).
MarkGeom = tuple[str, float, float, float, float]

LABEL_GAP = 3.0  #: screen pixels between an annotation and its measurement label
LABEL_MARGIN = 2.0  #: screen pixels kept between a label and the edge of the view (when it fits)


def hit(a: Rect, b: Rect) -> bool:
    """Rects ``a`` and ``b`` share some area (like QRectF.intersects: never for an empty rect)."""
    return (a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
            and a[0] < a[2] and a[1] < a[3] and b[0] < b[2] and b[1] < b[3])


def inter(a: Rect, b: Rect) -> float:
    """Area of the intersection of rects ``a`` and ``b``."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def grow(r: Rect, d: float) -> Rect:
    return r[0] - d, r[1] - d, r[2] + d, r[3] + d


def covered(r: Rect, marks: Iterable[MarkGeom]) -> float:
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
            total += 10.0 * length_inside(x0, y0, x1, y1, left, top, right, bottom)
    return total


class Grid:
    """A uniform grid (spatial hash) of rects over the view: which stored rects may meet a query rect, without
    scanning them all. Cells outside the view are clamped to its border cells, so far-away rects still land
    somewhere (the answer is a superset; callers test the exact geometry)."""

    __slots__ = ("cell", "cells", "keys", "ni", "nj", "x0", "y0")

    def __init__(self, area: Rect, n: int = 12):
        left, top, right, bottom = area
        self.x0, self.y0 = left, top
        self.cell = max(right - left, bottom - top, 16.0) / n
        self.ni = int((right - left) / self.cell) + 1
        self.nj = int((bottom - top) / self.cell) + 1
        self.cells: dict[tuple[int, int], dict[Any, Any]] = {}
        self.keys: dict[object, list[tuple[int, int]]] = {}

    def _span(self, r: Rect) -> tuple[range, range]:
        c, ni, nj = self.cell, self.ni, self.nj
        i0 = min(max(int((r[0] - self.x0) // c), -1), ni)
        i1 = min(max(int((r[2] - self.x0) // c), -1), ni)
        j0 = min(max(int((r[1] - self.y0) // c), -1), nj)
        j1 = min(max(int((r[3] - self.y0) // c), -1), nj)
        return range(i0, i1 + 1), range(j0, j1 + 1)

    def add(self, key: Any, r: Rect, value: Any) -> None:
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

    def remove(self, key: Any) -> None:
        for cell in self.keys.pop(key, ()):
            self.cells[cell].pop(key, None)

    def query(self, r: Rect) -> dict[Any, Any]:
        """``{key: value}`` of the stored rects that may meet ``r``."""
        out: dict[Any, Any] = {}
        si, sj = self._span(r)
        cells = self.cells
        for i in si:
            for j in sj:
                d = cells.get((i, j))
                if d:
                    out.update(d)
        return out

    def copy(self) -> Grid:
        g = Grid.__new__(Grid)
        g.x0, g.y0, g.cell, g.ni, g.nj = self.x0, self.y0, self.cell, self.ni, self.nj
        g.cells = {c: dict(d) for c, d in self.cells.items()}
        g.keys = dict(self.keys)
        return g


def label_candidates(kind: str, pts: list[tuple[float, float]], shape: Rect, w: float,
                     h: float) -> tuple[Rect, list[tuple[float, float]]]:
    """``(anchor, candidates)`` of a ``w`` x ``h`` label of an annotation of ``kind`` with scene points ``pts``
    and bounding rect ``shape``: the rect it goes around (a box, or an annotation's end point) and the label's
    candidate top-left corners, preferred first (see
    :meth:`~medviewer.ui.annotations.label_layout.LabelPlacer.layout`)."""
    gap = LABEL_GAP
    if kind in BOX_KINDS:
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


def shift_into(x: float, y: float, w: float, h: float, area: Rect, anchor: Rect) -> tuple[float, float]:
    """Top-left ``(x, y)`` of a ``w`` x ``h`` label moved the least to lie inside ``area`` (``LABEL_MARGIN`` from
    its edges when it fits with them). Along an axis where the label is larger than ``area``: next to ``anchor``
    on the side with more room, its left / top edge inside ``area``."""

    def axis(v: float, size: float, lo: float, hi: float, near: float, far: float) -> float:
        if lo <= v and v + size <= hi:
            return v
        if size + 2 * LABEL_MARGIN <= hi - lo:
            return min(max(v, lo + LABEL_MARGIN), hi - LABEL_MARGIN - size)
        if size <= hi - lo:
            return min(max(v, lo), hi - size)
        v = far + LABEL_GAP if hi - far >= near - lo else near - LABEL_GAP - size
        return min(max(v, lo), hi - 1.0)

    return (axis(x, w, area[0], area[2], anchor[0], anchor[2]),
            axis(y, h, area[1], area[3], anchor[1], anchor[3]))


def length_inside(x0: float, y0: float, x1: float, y1: float, left: float, top: float, right: float,
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

