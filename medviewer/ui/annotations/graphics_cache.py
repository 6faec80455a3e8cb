"""The graphics of the annotations of a view, made once and kept: shown in the view while their image is on
screen, parked while it is not (up to ``KEEP_PARKED`` annotations: beyond, the least recently shown are dropped,
and made again if needed)."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsItem, QGraphicsObject

from medviewer.ui.annotations.label_item import MeasurementLabel
from medviewer.ui.annotations.marks import Mark
from medviewer.ui.annotations.pg_adapter import quiet_children, view_group

__all__ = ["KEEP_PARKED", "AnnotationGraphics", "GraphicsCache"]

KEEP_PARKED = 1000  #: graphics of annotations off screen kept for a quick return (the least recently shown go first)


class AnnotationGraphics:
    """The graphics of one annotation: its mark ``g`` and its measurement ``label``, made once and kept (``parked``
    while its image is off screen). ``sig`` is the geometry the mark was last set to (None: changed by a drag
    since), ``text`` / ``size`` the label's text and its size on screen (None: not measured yet), ``label_vis``
    whether the label is shown (it has a text) when the annotation is."""

    __slots__ = ("g", "label", "label_vis", "parked", "sig", "size", "text", "uid")

    def __init__(self, uid: str, g: Mark, label: MeasurementLabel, sig: tuple[Any, ...]):
        self.uid, self.g, self.label = uid, g, label
        self.sig: tuple[Any, ...] | None = sig
        self.text = ""
        self.label_vis = True
        self.size: tuple[float, float] | None = None
        self.parked = False


class Parking(QGraphicsObject):
    """An empty, fully transparent item of the view: the marks of annotations whose image is not on screen wait
    under it (not drawn, not hit, still in the scene) until their image comes back. Transparent rather than
    hidden: moving an item under a hidden parent changes the visibility of each of its handles (a Python call
    each, several times slower); Qt skips a fully transparent subtree when drawing and when finding items."""

    def __init__(self) -> None:
        super().__init__()
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemHasNoContents, True)
        self.setOpacity(0.0)

    def boundingRect(self) -> QRectF:  # noqa: N802, D102 - Qt override
        return QRectF()

    def paint(self, *args: Any) -> None:  # noqa: D102 - Qt override
        pass


class GraphicsCache:
    """The :class:`AnnotationGraphics` made for the annotations of ``view`` (a ViewBox), by uid, shown or parked,
    the most recently shown last (:meth:`touch`). Items come and go with
    :func:`~medviewer.ui.annotations.pg_adapter.quiet_children`: without the ViewBox repainting all of itself."""

    def __init__(self, view: Any):
        self.view = view
        self.items: dict[str, AnnotationGraphics] = {}
        self._parking: Parking | None = None

    def get(self, uid: str) -> AnnotationGraphics | None:
        return self.items.get(uid)

    def add(self, uid: str, g: Mark, sig: tuple[Any, ...]) -> AnnotationGraphics:
        """Show mark ``g`` of annotation ``uid`` (with a new, empty label) and keep them."""
        self._attach(g)
        label = MeasurementLabel()
        self._attach(label)
        it = AnnotationGraphics(uid, g, label, sig)
        self.items[uid] = it
        return it

    def touch(self, uid: str) -> None:
        """``uid`` is shown again: the most recently shown, kept longest."""
        self.items[uid] = self.items.pop(uid)

    def park(self, it: AnnotationGraphics) -> None:
        """Take the graphics of ``it`` off the screen, kept: the mark under the transparent parking item (so that
        the view's children are what is on screen), deselected and not hovered; the label hidden (cheaper, and not
        a mark)."""
        if it.parked:
            return
        g = it.g
        if g.selected:
            g.set_selected_look(False)
        g.set_hovered(False)  # hovered when its image went: not hovered when it returns
        park = self._parking_item()
        # Qt repaints neither where an item was when it goes under a transparent parent, nor where it appears when
        # it comes back: the view repaints that area (in the same pass as any other change: one paint).
        view = self.view
        view.update(g.mapRectToItem(view, g.boundingRect()))
        with quiet_children(view):
            g.setParentItem(park)
        it.label.setVisible(False)
        it.parked = True

    def unpark(self, it: AnnotationGraphics) -> None:
        """Show the graphics of ``it`` again."""
        if not it.parked:
            return
        g = it.g
        view = self.view
        with quiet_children(view):
            g.setParentItem(view_group(view))
        g.update()
        it.label.setVisible(it.label_vis)
        it.parked = False

    def destroy(self, uid: str) -> None:
        """Delete the graphics of ``uid`` (they must not be shown)."""
        it = self.items.pop(uid, None)
        if it is None:
            return
        for item in (it.g, it.label):
            self.view.removeItem(item)

    def evict(self, n_shown: int) -> None:
        """Drop the least recently shown parked graphics beyond ``KEEP_PARKED`` (``n_shown``: how many are shown)."""
        extra = len(self.items) - n_shown - KEEP_PARKED
        if extra <= 0:
            return
        for uid in [u for u, it in self.items.items() if it.parked][:extra]:
            self.destroy(uid)

    def _parking_item(self) -> Parking:
        view = self.view
        p = self._parking
        if p is None or p.parentItem() is not view_group(view):
            p = Parking()
            self._attach(p)
            self._parking = p
        return p

    def _attach(self, item: QGraphicsItem) -> None:
        """``view.addItem(item, ignoreBounds=True)`` without repainting the whole view."""
        view = self.view
        scene = view.scene()
        if scene is not None and item.scene() is not scene:
            scene.addItem(item)  # first, as ViewBox.addItem does (QTBUG-18616)
        with quiet_children(view):
            item.setParentItem(view_group(view))
