"""Where the measurement labels of the annotations on screen go: next to their annotation, inside the view, off
each other, the text annotations and the other annotations.

A layout (:class:`Layout`) is kept per image for the view it was made for: coming back to an image in the same view
costs nothing; an added, changed or removed annotation places again only the labels that could be affected
(:meth:`LabelPlacer.relayout`); a pan, zoom or resize lays every label out again (:meth:`LabelPlacer.layout`).
Overlap tests go through uniform grids, and beyond ``AVOID_MAX`` labels in view there is no avoidance at all (each
label at its preferred place): the cost stays about linear in the number of annotations shown.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF
from PySide6.QtGui import QTransform

from medviewer.ui.annotations.label_geometry import (
    Grid,
    MarkGeom,
    Rect,
    covered,
    grow,
    hit,
    inter,
    label_candidates,
    shift_into,
)
from medviewer.ui.annotations.marks import TextMark
from medviewer.ui.annotations.points import BOX_KINDS

if TYPE_CHECKING:
    from medviewer.imaging.volume import Volume
    from medviewer.ui.annotations.graphics_cache import AnnotationGraphics

__all__ = ["AVOID_MAX", "KEEP_LAYOUTS", "REORDER_MAX", "LabelPlacer", "Layout", "Place"]

REORDER_MAX = 16  #: labels on screen up to which a crowded layout is retried in other orders
AVOID_MAX = 60  #: labels on screen beyond which they are not kept apart (each at its preferred place)
KEEP_LAYOUTS = 16  #: images whose label layout is kept for a quick return

ImageKey = tuple[str, int]
#: The annotations on screen, in the order they were shown: uid -> their graphics.
Shown = Mapping[str, "AnnotationGraphics"]


class Place:
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

    def __init__(self, shape: Rect):
        self.shape = shape
        self.zone = grow(shape, 1.0)  # never empty (a horizontal line has no height)
        self.marks: list[MarkGeom] = []
        self.fixed: Rect | None = None
        self.label = False
        self.in_view = False
        self.w = self.h = 0.0
        self.anchor: Rect = shape
        self.cands: list[tuple[float, float]] = []
        self.shifted: list[tuple[float, float]] = []
        self.reach: Rect = shape


class Layout:
    """The label layout of one image, valid for the volume, view ``area`` and view-to-scene transform ``tr`` it
    was made with: the places of the shown annotations, a grid of their marks, a grid of the placed labels (and
    the text annotations, ``("fixed", uid)``), where each label went, and which labels are laid out (``todo``).
    ``avoid``: labels are kept apart (False beyond ``AVOID_MAX`` labels: each at its preferred place)."""

    def __init__(self, key: ImageKey, vol: Volume | None, area: Rect, tr: QTransform):
        self.key, self.vol, self.area, self.tr = key, vol, area, tr
        self.inv = tr.inverted()[0]
        self.places: dict[str, Place] = {}
        self.marks = Grid(area)
        self.labels = Grid(area)
        self.placed: dict[str, Rect] = {}
        self.todo: set[str] = set()
        self.avoid = True

    def remove(self, uid: str) -> None:
        self.places.pop(uid, None)
        self.marks.remove(uid)
        self.labels.remove(uid)
        self.labels.remove(("fixed", uid))
        self.placed.pop(uid, None)
        self.todo.discard(uid)

    def set(self, uid: str, p: Place) -> None:
        self.remove(uid)
        self.places[uid] = p
        if p.marks:
            self.marks.add(uid, p.shape, p.marks)
        if p.fixed is not None:
            self.labels.add(("fixed", uid), p.fixed, p.fixed)
        if p.label and p.in_view:
            self.todo.add(uid)


class LabelPlacer:
    """Places the measurement labels of the annotations shown in ``view`` (a ViewBox), keeping a :class:`Layout`
    per image (``layouts``, the most recently shown last) for a quick return to it.

    Each method takes ``key`` (the image on screen), ``vol`` (the viewer's volume: a layout is valid for one
    volume) and ``shown`` (:data:`Shown`, in the order the annotations were shown: the order labels are placed in).
    """

    def __init__(self, view: Any):
        self.view = view
        self.layouts: dict[ImageKey, Layout] = {}

    def clear(self) -> None:
        """Forget every layout (another volume, other annotations)."""
        self.layouts.clear()

    def _context(self) -> tuple[Rect, QTransform]:
        """The view's rect and its view-to-scene transform, now."""
        view = self.view
        tr = view.childTransform() * view.sceneTransform()  # (childTransform brings the view's matrix up to date)
        a = view.sceneBoundingRect()
        return (a.left(), a.top(), a.right(), a.bottom()), tr

    def current(self, key: ImageKey, vol: Volume | None) -> Layout | None:
        """The layout of image ``key`` if it is valid for ``vol`` and the view as it is now."""
        st = self.layouts.get(key)
        if st is None or st.vol is not vol:
            return None
        area, tr = self._context()
        return st if st.area == area and st.tr == tr else None

    def show(self, key: ImageKey, vol: Volume | None, shown: Shown, changed: set[str]) -> None:
        """Place the labels of image ``key``, just shown; ``changed``: annotations whose graphics changed while it
        was off screen (what came or went is added to it). Back on an image laid out for this very view, its labels
        are where they were: only those of what changed meanwhile are placed again."""
        st = self.current(key, vol)
        if st is None:
            self.layout(key, vol, shown)
            return
        self.layouts[key] = self.layouts.pop(key)  # the most recently shown last: kept longest
        changed |= set(st.places).symmetric_difference(shown)
        if changed:
            self.relayout(key, vol, shown, changed)

    def layout(self, key: ImageKey, vol: Volume | None, shown: Shown) -> None:
        """Place every shown measurement label (greedy, one label after the other).

        Candidate positions of a label: its preferred side (under a box, beyond a length's end or an arrow's tail,
        outside an angle), then right of, left of, below and above its annotation (then those sides aligned the
        other way); each shifted into the view when it pokes out. A label takes the first candidate that needs no
        shifting, overlaps no label placed before it (nor a text annotation) and covers no annotation; failing that
        the best by: least overlap with those labels, then least annotation covered, then least shifted. When that
        leaves some label over another or over an annotation, the labels (up to ``REORDER_MAX``) are placed again
        in other orders (reversed, top to bottom, bottom to top) and the best layout is kept. A label larger than
        the view keeps its left (top) edge visible, on the side of its annotation with more room. The label of an
        annotation wholly outside the view stays on its preferred side (it is not pulled into view, and does not
        push the others). Beyond ``AVOID_MAX`` labels in view, each label simply takes its preferred place (shifted
        into the view): keeping hundreds apart is neither possible nor affordable."""
        if self.view.scene() is None:
            return
        self.layouts.pop(key, None)
        if not shown:
            return
        area, tr = self._context()
        st = Layout(key, vol, area, tr)
        for uid, it in shown.items():
            st.set(uid, self._place_of(it, st))
        self.layouts[key] = st
        while len(self.layouts) > KEEP_LAYOUTS:
            self.layouts.pop(next(iter(self.layouts)))
        self._place_all(st, shown)

    def relayout(self, key: ImageKey, vol: Volume | None, shown: Shown, uids: Collection[str]) -> None:
        """Place again the labels that annotations ``uids`` (added, changed, removed or moved off screen) may have
        affected: their own, and those that could go where they were or are now (their candidate places reach the
        old or new annotation or label). A full layout when there is no valid layout, when few labels are in view
        (cheap, and it tries other orders), or when the count crosses ``AVOID_MAX``."""
        st = self.current(key, vol)
        if st is None:
            self.layout(key, vol, shown)
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
            it = shown.get(uid)
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
        if n <= REORDER_MAX or (n <= AVOID_MAX) != st.avoid:
            self._place_all(st, shown)
            return
        for uid in uids:
            q = st.places.get(uid)
            if q is not None and q.label and not q.in_view:
                self._put_label(st, shown, uid, q.cands[0])
        if not st.avoid:
            for uid in uids:
                if uid in st.todo:
                    self._place_at(st, shown, uid, st.places[uid].shifted[0])
            return
        places = st.places
        affected = [u for u in shown if u in st.todo and
                    (u in uids or any(hit(places[u].reach, r) for r in regions))]
        for u in affected:
            st.labels.remove(u)
            st.placed.pop(u, None)
        _, where = self._greedy(st, st.labels, affected)
        for u, r in where.items():
            st.placed[u] = r
            self._put_label(st, shown, u, (r[0], r[1]))

    @staticmethod
    def _place_of(it: AnnotationGraphics, st: Layout) -> Place:
        """Where shown ``it`` is, and may have its label, in the view of layout ``st``."""
        g = it.g
        tr = st.tr
        pts = []
        for q in g.view_points():
            s = tr.map(q)
            pts.append((s.x(), s.y()))
        xs, ys = [x for x, _ in pts], [y for _, y in pts]
        shape = (min(xs), min(ys), max(xs), max(ys))
        p = Place(shape)
        if isinstance(g, TextMark):
            r = g.mapRectToScene(g.boundingRect())
            p.fixed = (r.left(), r.top(), r.right(), r.bottom())
        elif g.kind in BOX_KINDS:
            p.marks = [("box", *shape)]
        else:
            p.marks = [("seg", a[0], a[1], b[0], b[1]) for a, b in itertools.pairwise(pts)]
        if it.text and it.label_vis:
            if it.size is None:
                it.size = it.label.screen_size()
            w, h = it.size
            p.label = True
            p.w, p.h = w, h
            p.anchor, p.cands = label_candidates(g.kind, pts, shape, w, h)
            area = st.area
            if w > 0 and h > 0 and hit(p.zone, area):
                p.in_view = True
                p.shifted = [shift_into(x, y, w, h, area, p.anchor) for x, y in p.cands]
                p.reach = (min(x for x, _ in p.shifted), min(y for _, y in p.shifted),
                           max(x for x, _ in p.shifted) + w, max(y for _, y in p.shifted) + h)
        return p

    @staticmethod
    def _put_label(st: Layout, shown: Shown, uid: str, tl: tuple[float, float]) -> None:
        shown[uid].label.setPos(st.inv.map(QPointF(tl[0], tl[1])))

    def _place_at(self, st: Layout, shown: Shown, uid: str, tl: tuple[float, float]) -> None:
        p = st.places[uid]
        r = (tl[0], tl[1], tl[0] + p.w, tl[1] + p.h)
        st.placed[uid] = r
        st.labels.add(uid, r, r)
        self._put_label(st, shown, uid, tl)

    def _place_all(self, st: Layout, shown: Shown) -> None:
        """Place every label of ``st`` (see :meth:`layout`)."""
        fixed = Grid(st.area)
        for uid, p in st.places.items():
            if p.fixed is not None:
                fixed.add(("fixed", uid), p.fixed, p.fixed)
            elif p.label and not p.in_view:  # out of view: left where it would be
                self._put_label(st, shown, uid, p.cands[0])
        st.labels, st.placed = fixed, {}
        order = [u for u in shown if u in st.todo]
        st.avoid = len(order) <= AVOID_MAX
        if not order:
            return
        if not st.avoid:
            for uid in order:
                self._place_at(st, shown, uid, st.places[uid].shifted[0])
            return
        grid = fixed.copy()
        best = (*self._greedy(st, grid, order), grid)
        if best[0][:2] != (0.0, 0.0) and 1 < len(order) <= REORDER_MAX:
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
            self._put_label(st, shown, uid, (r[0], r[1]))

    @staticmethod
    def _greedy(st: Layout, grid: Grid, order: list[str]) -> tuple[tuple[float, float, float], dict[str, Rect]]:
        """Place the labels ``order`` one after the other, each at its best candidate given ``grid`` (the labels
        placed so far, and the text annotations), which gets it. Returns (total overlap, total annotation covered,
        total shift) and where each label went."""
        marks = st.marks
        total = [0.0, 0.0, 0.0]
        where: dict[str, Rect] = {}
        for uid in order:
            p = st.places[uid]
            w, h = p.w, p.h
            best: tuple[tuple[float, float, float, int], Rect] | None = None
            for n, ((cx, cy), (sx, sy)) in enumerate(zip(p.cands, p.shifted)):
                r = (sx, sy, sx + w, sy + h)
                overlap = 0.0
                for o in grid.query(r).values():
                    overlap += inter(r, o)
                near = marks.query(r)
                cover = covered(r, [m for ms in near.values() for m in ms]) if near else 0.0
                cost = (overlap, cover, math.hypot(sx - cx, sy - cy), n)
                if best is None or cost < best[0]:
                    best = (cost, r)
                if cost[:3] == (0.0, 0.0, 0.0):
                    break
            assert best is not None  # every label in view has candidates
            where[uid] = best[1]
            grid.add(uid, best[1], best[1])
            total[0] += best[0][0]
            total[1] += best[0][1]
            total[2] += best[0][2]
        return (total[0], total[1], total[2]), where
