"""Drawing a new annotation with the active tool: the drag or clicks on the view, the preview that follows the
mouse, and the annotation made at the end.

A length, arrow, rectangle or ellipse is a left-drag; an angle three clicks (first end, vertex, second end) or a
drag along the first arm and a click for the second end; a text a click (its text then comes from the layer's
``text_provider``). Points are clamped to the image.
"""

from __future__ import annotations

import dataclasses
import math
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QPointF, QRectF, Qt

from medviewer.imaging.annotations import Annotation
from medviewer.ui.annotations.marks import BoxMark, PolyMark
from medviewer.ui.annotations.points import BOX_KINDS, norm_box

if TYPE_CHECKING:
    from medviewer.ui.annotations.layer import AnnotationLayer

__all__ = ["MIN_DRAG_PX", "Drafter"]

MIN_DRAG_PX = 3.0  #: a drag shorter than this (screen pixels) draws nothing


@dataclasses.dataclass
class Draft:
    """A drawing in progress: its kind, the points placed so far (view coordinates), the preview on screen."""

    kind: str
    points: list[QPointF]
    preview: BoxMark | PolyMark | None = None


class Drafter:
    """Draws new annotations on ``layer``'s viewer with the layer's active tool; the layer passes it the drags and
    clicks its viewer's ViewBox gets (:meth:`drag`, :meth:`click`) and the mouse moves (:meth:`mouse_moved`)."""

    def __init__(self, layer: AnnotationLayer):
        self.layer = layer
        self.draft: Draft | None = None

    @property
    def drawing(self) -> bool:
        """True while a drawing is in progress (a drag, or an angle waiting for its next click)."""
        return self.draft is not None

    def cancel(self) -> None:
        """Drop the drawing in progress (if any) and its preview."""
        d, self.draft = self.draft, None
        if d is not None and d.preview is not None:
            self.layer.viewer.view.removeItem(d.preview)

    def drag(self, ev: Any) -> bool:
        """A pyqtgraph MouseDragEvent on the view: draws with the active tool (left button only). True when the
        event was used (the view then must not pan)."""
        layer = self.layer
        kind = layer.tool
        if kind is None or ev.button() != Qt.MouseButton.LeftButton or layer.current_key() is None:
            return False
        ev.accept()
        if kind == "text":
            return True
        start = self._scene_to_view(ev.buttonDownScenePos())
        here = self._scene_to_view(ev.scenePos())
        if kind == "angle":
            if ev.isStart() and self.draft is None:
                self.draft = Draft("angle", [start])
            if self.draft is None:
                return True
            pts = self.draft.points
            if ev.isFinish():
                self._angle_point(here)
            else:
                self._set_preview("length" if len(pts) == 1 else "angle", pts + [here])
            return True
        if ev.isStart():
            self.cancel()
            self.draft = Draft(kind, [start])
        if self.draft is None:
            return True
        self._set_preview(kind, [start, here])
        if ev.isFinish():
            self.cancel()
            if self._screen_distance(start, here) >= MIN_DRAG_PX:
                self._commit(kind, [start, here])
        return True

    def click(self, ev: Any) -> bool:
        """A pyqtgraph MouseClickEvent (left button) on the view that no annotation took, with a tool active:
        places an angle's point or a text. True when the event was used."""
        layer = self.layer
        if layer.current_key() is None:
            return False
        ev.accept()
        here = self._scene_to_view(ev.scenePos())
        if layer.tool == "angle":
            if self.draft is None:
                self.draft = Draft("angle", [])
            self._angle_point(here)
        elif layer.tool == "text":
            text = layer.text_provider(layer.viewer, "")
            if text and text.strip():
                self._commit("text", [here], text)
        return True

    def mouse_moved(self, scene_pos: QPointF) -> None:
        """The mouse moved over the scene: an angle's preview follows it."""
        d = self.draft
        if d is None or d.kind != "angle" or not d.points:
            return
        here = self._scene_to_view(scene_pos)
        pts = d.points
        self._set_preview("length" if len(pts) == 1 else "angle", pts + [here])

    def _angle_point(self, p: QPointF) -> None:
        assert self.draft is not None
        pts = self.draft.points
        if pts and self._screen_distance(pts[-1], p) < MIN_DRAG_PX:
            return  # a double click or a click on the last point: ignore
        pts.append(p)
        if len(pts) == 3:
            self.cancel()
            self._commit("angle", pts)
        elif len(pts) == 2:
            self._set_preview("angle", pts + [p])
        else:
            self._set_preview("length", pts + [p])

    def _set_preview(self, kind: str, points: list[QPointF]) -> None:
        d = self.draft
        assert d is not None
        view = self.layer.viewer.view
        old = d.preview
        if old is not None and old.kind == kind and len(old.view_points()) == len(points):
            old.set_view_points(points)
            return
        if old is not None:
            view.removeItem(old)
        item: BoxMark | PolyMark = BoxMark(kind, points[0], points[1]) if kind in BOX_KINDS else PolyMark(kind, points)
        item.set_interactive(False)
        for h in item.getHandles():
            h.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        item.set_selected_look(True)
        view.addItem(item, ignoreBounds=True)
        d.preview = item

    def _commit(self, kind: str, view_points: list[QPointF], text: str = "") -> None:
        """Add the annotation drawn (undoable) and select it."""
        layer = self.layer
        key = layer.current_key()
        if key is None:
            return
        pts = [layer.view_to_image(p) for p in view_points]
        if kind in BOX_KINDS:
            pts = norm_box(pts)
        ann = Annotation(kind, pts, key[0], key[1], text)
        layer.add(ann)
        layer.select(ann.uid)

    def _image_bounds(self) -> QRectF | None:
        vol = self.layer.viewer.volume
        if vol is None:
            return None
        rows, cols = vol.array.shape[1:3]
        return QRectF(QPointF(0, 0), self.layer.image_to_view(cols, rows))

    def _scene_to_view(self, scene_pos: QPointF) -> QPointF:
        """The view point under ``scene_pos``, clamped to the image."""
        p = self.layer.viewer.view.mapSceneToView(scene_pos)
        r = self._image_bounds()
        if r is None:
            return p
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def _screen_distance(self, a: QPointF, b: QPointF) -> float:
        view = self.layer.viewer.view
        d = view.mapViewToScene(a) - view.mapViewToScene(b)
        return math.hypot(d.x(), d.y())
