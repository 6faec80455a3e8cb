"""The annotation layer of a viewer: its annotations (of any number of images), the undo stack, selection and
tool, and the graphics of the annotations of the image on screen."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QKeyEvent, QUndoStack
from PySide6.QtWidgets import QWidget

from medviewer.imaging.annotations import KINDS, Annotation, Measurement
from medviewer.ui.annotations.commands import AddCommand, DeleteCommand, ModifyCommand
from medviewer.ui.annotations.dialogs import ask_text
from medviewer.ui.annotations.drawing import Drafter
from medviewer.ui.annotations.formatting import describe_text, label_text
from medviewer.ui.annotations.graphics_cache import AnnotationGraphics, GraphicsCache
from medviewer.ui.annotations.label_item import MeasurementLabel
from medviewer.ui.annotations.label_layout import LabelPlacer, Layout
from medviewer.ui.annotations.marks import Mark, TextMark, make_mark
from medviewer.ui.annotations.measuring import ImageKey, Measurer
from medviewer.ui.annotations.points import BOX_KINDS, norm_box, same_points
from medviewer.ui.annotations.tools import handle_key

if TYPE_CHECKING:
    from medviewer.imaging.volume import Volume
    from medviewer.ui.viewer import ImageViewer

__all__ = ["AnnotationLayer"]


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
    an edited one); the default asks with a dialog (:func:`~medviewer.ui.annotations.dialogs.ask_text`); None or
    "" cancels.
    """

    annotation_saved = Signal(object)
    annotation_deleted = Signal(str)
    tool_changed = Signal(object)
    selection_changed = Signal(object)

    def __init__(self, viewer: ImageViewer):
        super().__init__(viewer)
        self.viewer = viewer
        self.undo_stack = QUndoStack(self)
        self.text_provider: Callable[[QWidget | None, str], str | None] = ask_text
        self._all: dict[str, Annotation] = {}
        self._on_screen: dict[str, AnnotationGraphics] = {}  # the annotations shown, in the order they were shown
        self._shown: tuple[Volume, ImageKey | None, bool] | None = None  # (volume, key, ready) of what is on screen
        self._tool: str | None = None
        self._selected: str | None = None
        self._layout_held = False  # True while sync() shows several annotations: labels are laid out once after
        self._dirty: set[str] = set()  # uids whose graphics changed while the layout was held
        self._setting = False  # True while the layer itself moves a mark (not a drag)
        self._vol: Volume | None = None  # the volume the caches are about
        self._cache = GraphicsCache(viewer.view)
        self._placer = LabelPlacer(viewer.view)
        self._measurer = Measurer(viewer)
        self._drafter = Drafter(self)
        viewer.installEventFilter(self)
        viewer.graphics.scene().sigMouseMoved.connect(self._drafter.mouse_moved)
        viewer.view.sigTransformChanged.connect(lambda *_: self._fit_labels())
        viewer.view.sigResized.connect(lambda *_: self._fit_labels())

    # The shown marks and labels by uid, and the label layouts by image (tests look at them).
    @property
    def _graphics(self) -> dict[str, Mark]:
        return {uid: it.g for uid, it in self._on_screen.items()}

    @property
    def _labels(self) -> dict[str, MeasurementLabel]:
        return {uid: it.label for uid, it in self._on_screen.items()}

    @property
    def _layouts(self) -> dict[ImageKey, Layout]:
        return self._placer.layouts

    # ------------------------------------------------------------------------------------------ public API
    @property
    def tool(self) -> str | None:
        """The active tool (an annotation kind) or None (navigation)."""
        return self._tool

    @property
    def selected_uid(self) -> str | None:
        """uid of the selected annotation (shown on screen), or None."""
        return self._selected

    @property
    def drawing(self) -> bool:
        """True while a drawing is in progress (a drag, or an angle waiting for its next click)."""
        return self._drafter.drawing

    def set_tool(self, kind: str | None) -> None:
        """Activate a drawing tool (``"length"``, ``"angle"``, ``"rect"``, ``"ellipse"``, ``"arrow"``,
        ``"text"``) or return to navigation (None). Cancels a drawing in progress. Raises ValueError for an unknown
        kind."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown annotation tool {kind!r} (one of {', '.join(KINDS)} or None)")
        self._drafter.cancel()
        changed = kind != self._tool
        self._tool = kind
        for it in self._on_screen.values():
            it.g.set_interactive(kind is None)
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
        self._drafter.cancel()
        self.undo_stack.clear()
        self._all = {a.uid: a for a in annotations}
        self._shown = None
        self._selected = None
        self._clear_graphics()
        for uid in [u for u in self._cache.items if u not in self._all]:  # keep the graphics of those still there
            self._cache.destroy(uid)
        self._measurer.clear()
        self._placer.clear()
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
        self.undo_stack.push(AddCommand(self, annotation, f"Add {annotation.kind}"))

    def update(self, annotation: Annotation) -> None:
        """Replace the annotation with the same uid (geometry and/or text; undoable; emits
        ``annotation_saved``). Raises KeyError for an unknown uid."""
        before = self._all[annotation.uid]
        self.undo_stack.push(ModifyCommand(self, before, annotation, f"Edit {annotation.kind}"))

    def remove(self, uid: str) -> None:
        """Delete an annotation (undoable; emits ``annotation_deleted``). Raises KeyError for an unknown uid."""
        ann = self._all[uid]
        self.undo_stack.push(DeleteCommand(self, ann, f"Delete {ann.kind}"))

    def apply_external(self, annotation: Annotation) -> None:
        """Add ``annotation``, or replace the one with its uid (geometry, text, image), as changed elsewhere (another
        viewport on the same series, the main window's copy): shown at once when its image is on screen, but NOT
        undoable and emitting neither ``annotation_saved`` nor ``annotation_deleted`` (no echo back to the sender).
        Undo/redo commands of this layer about that annotation keep working (see
        :mod:`~medviewer.ui.annotations.commands`)."""
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
        self._drafter.cancel()
        self.undo_stack.undo()

    def redo(self) -> None:
        """Redo the last undone annotation change (no-op when none)."""
        self._drafter.cancel()
        self.undo_stack.redo()

    def select(self, uid: str | None) -> None:
        """Select an annotation shown on screen (None: select nothing)."""
        if uid is not None and uid not in self._on_screen:
            uid = None
        if uid == self._selected:
            return
        old = self._on_screen.get(self._selected) if self._selected else None
        if old is not None:
            old.g.set_selected_look(False)
        self._selected = uid
        if uid is not None:
            self._on_screen[uid].g.set_selected_look(True)
        self.selection_changed.emit(uid)

    def edit_text(self, uid: str | None) -> bool:
        """Ask ``text_provider`` for a new text of an annotation (undoable); False when cancelled/unchanged."""
        ann = self._all.get(uid) if uid is not None else None
        if ann is None:
            return False
        text = self.text_provider(self.viewer, ann.text)
        if text is None or text == ann.text or (ann.kind == "text" and not text.strip()):
            return False
        self.update(Annotation(ann.kind, ann.points, ann.sop_instance_uid, ann.frame, text, ann.uid))
        return True

    def current_key(self) -> ImageKey | None:
        """(SOPInstanceUID, frame) of the image on screen, or None (no volume, or a volume without a stack)."""
        return self._measurer.current_key()

    def measurement(self, uid: str) -> Measurement:
        """What annotation ``uid`` measures, on the viewer's current volume (ROI statistics need the image
        decoded). An annotation of an image outside that volume is measured without image and spacing (pixels).
        Raises KeyError for an unknown uid."""
        return dataclasses.replace(self._measurer.measure(self._all[uid]))  # a copy: the layer keeps its own

    def describe(self, uid: str) -> str:
        """One line describing annotation ``uid``, for lists (the case dock): what it is and measures, then
        ``", slice K/N"`` when its image is in the viewer's volume (K 1-based in the stack of N), e.g.
        ``"Length 42.1 mm, slice 12/140"``, ``"Ellipse ROI: mean 40.2 HU, SD 3.1, area 120.5 mm², slice 3/40"``,
        ``"Angle 35.0°"``, ``"Arrow"``, ``"Text: Lesion 1"``. A comment on a measurement follows it in quotes; sizes
        without PixelSpacing read ``"... px (px: no PixelSpacing)"``, those of an image outside the viewer's volume
        (measured without its spacing) ``"... px (px: image not loaded)"``. ROI statistics need the image in the
        viewer's volume (decoded), else the area only. Raises KeyError for an unknown uid."""
        ann = self._all[uid]
        k = self._measurer.slice_of((ann.sop_instance_uid, ann.frame))
        vol = self.viewer.volume
        pos = (k, len(vol.stack.slices)) if k is not None and vol is not None and vol.stack is not None else None
        return describe_text(ann, self._measurer.measure(ann), pos)

    def image_to_view(self, x: float, y: float) -> QPointF:
        """Image pixel coordinates (x = column, y = row) to view coordinates (mm) of the current volume."""
        sc, sr = self._measurer.scale()
        return QPointF(x * sc, y * sr)

    def view_to_image(self, p: QPointF) -> tuple[float, float]:
        """View coordinates (mm) to image pixel coordinates (x = column, y = row)."""
        sc, sr = self._measurer.scale()
        return p.x() / sc, p.y() / sr

    def graphic(self, uid: str) -> Mark | None:
        """The graphics item showing annotation ``uid`` (None when its image is not on screen)."""
        it = self._on_screen.get(uid)
        return it.g if it is not None else None

    def label_text(self, uid: str) -> str:
        """The measurement label shown next to annotation ``uid`` ("" when not on screen or none)."""
        it = self._on_screen.get(uid)
        return it.label.toPlainText() if it is not None and it.label.isVisible() else ""

    # ------------------------------------------------------------------------------------------ viewer events
    def view_drag(self, ev: Any) -> bool:
        """Called by the viewer's ViewBox for every drag it gets (a pyqtgraph MouseDragEvent): draws with the active
        tool (left button only). True when the event was used (the ViewBox then must not pan)."""
        return self._drafter.drag(ev)

    def view_click(self, ev: Any) -> bool:
        """Called by the viewer's ViewBox for clicks no annotation took (a pyqtgraph MouseClickEvent): angle points
        and text placement with a tool, deselection without. True when the event was used."""
        if ev.button() != Qt.MouseButton.LeftButton:
            return False
        if self._tool is None:
            self.select(None)
            return False
        return self._drafter.click(ev)

    def eventFilter(self, obj: QObject, ev: QEvent) -> bool:  # noqa: N802 - Qt override
        """Keys on the viewer: Escape, Delete/Backspace, undo/redo and the tool letters (see
        :data:`~medviewer.ui.annotations.tools.SHORTCUTS`)."""
        if ev.type() == QEvent.Type.KeyPress and isinstance(ev, QKeyEvent) and handle_key(self, ev):
            ev.accept()
            return True
        return False

    # ------------------------------------------------------------------------------------------ syncing
    # The graphics of an annotation (its mark and its label) are made once and kept (GraphicsCache): when its image
    # leaves the screen they are parked and they come back when it returns, changed only where the annotation's
    # geometry or text changed meanwhile.
    def sync(self) -> None:
        """Show the annotations of the image on screen (called by the viewer whenever it renders or clears);
        cheap when nothing changed."""
        vol = self.viewer.volume
        key = self.current_key()
        k = int(self.viewer.state.index)
        ready = vol is not None and (vol.ready is None or (0 <= k < len(vol.ready) and bool(vol.ready[k])))
        if self._shown is not None and self._shown[0] is vol and self._shown[1:] == (key, ready):
            return
        self._drafter.cancel()
        if vol is not self._vol:  # another volume (or none): other spacing, other pixels
            self._vol = vol
            self._measurer.reset(vol)
            self._placer.clear()
        self._clear_graphics()
        self._shown = (vol, key, ready) if vol is not None else None
        if key is None:
            self._cache.evict(len(self._on_screen))
            return
        self._dirty = set()
        self._layout_held = True  # one label layout for all, not one per annotation shown
        try:
            for ann in self.annotations_for(*key):
                self._show(ann)
        finally:
            self._layout_held = False
        dirty, self._dirty = self._dirty, set()
        self._placer.show(key, vol, self._on_screen, dirty)
        self._cache.evict(len(self._on_screen))

    def _clear_graphics(self) -> None:
        """Park every shown graphic (deselecting)."""
        if self._selected is not None:
            self._selected = None
            self.selection_changed.emit(None)
        for it in self._on_screen.values():
            self._cache.park(it)
        self._on_screen = {}

    def _on_screen_now(self, ann: Annotation) -> bool:
        return self._shown is not None and self._shown[1] == (ann.sop_instance_uid, ann.frame)

    def _sig(self, ann: Annotation) -> tuple[Any, ...]:
        pts = norm_box(ann.points) if ann.kind in BOX_KINDS else ann.points
        return self._measurer.scale(), tuple(pts)

    def _create(self, ann: Annotation) -> AnnotationGraphics:
        g = make_mark(ann.kind, [self.image_to_view(x, y) for x, y in ann.points], ann.text)
        g.uid = ann.uid
        g.set_interactive(self._tool is None)
        g.sigRegionChangeStarted.connect(self._graphic_clicked)
        g.sigRegionChangeFinished.connect(self._graphic_finished)
        g.sigClicked.connect(lambda mark, ev: self._graphic_clicked(mark))
        if isinstance(g, TextMark):
            g.sigEditRequested.connect(lambda mark: self.edit_text(mark.uid))
        else:
            g.sigRegionChanged.connect(self._graphic_changed)
        return self._cache.add(ann.uid, g, self._sig(ann))

    def _show(self, ann: Annotation) -> None:
        """Show ``ann`` (of the image on screen): its graphics made, or brought back and updated."""
        uid = ann.uid
        it = self._cache.get(uid)
        if it is not None and it.g.kind != ann.kind:
            self._hide(uid)
            self._cache.destroy(uid)
            it = None
        if it is None:
            it = self._create(ann)
            changed = True
        else:
            self._cache.touch(uid)
            changed = self._set_geometry(it, ann)
            if it.parked:
                self._cache.unpark(it)
                it.g.set_interactive(self._tool is None)
        self._on_screen[uid] = it
        if changed and self._layout_held:
            self._dirty.add(uid)
        self._update_label(it, ann)

    def _set_geometry(self, it: AnnotationGraphics, ann: Annotation) -> bool:
        """Move the mark of ``it`` to ``ann`` (and a text mark to its text); True when something changed."""
        g = it.g
        changed = False
        sig = self._sig(ann)
        if it.sig != sig:
            if it.sig is not None or not same_points(self._annotation_of(g, ann), ann):
                self._setting = True  # our own change: not a drag
                try:
                    g.set_view_points([self.image_to_view(x, y) for x, y in ann.points])
                finally:
                    self._setting = False
            it.sig = sig
            changed = True
        if isinstance(g, TextMark) and g.toPlainText() != ann.text:
            g.setText(ann.text)
            changed = True
        return changed

    def _hide(self, uid: str) -> None:
        """Take ``uid`` off the screen (its graphics parked)."""
        self._on_screen.pop(uid, None)
        it = self._cache.get(uid)
        if it is not None:
            self._cache.park(it)
        if uid == self._selected:
            self._selected = None
            self.selection_changed.emit(None)

    # ------------------------------------------------------------------------------------------ store + emit
    def _put(self, ann: Annotation, emit: bool = True) -> None:
        """Insert or replace ``ann`` (no undo entry), refresh its graphic, emit ``annotation_saved`` (if ``emit``)."""
        self._all[ann.uid] = ann
        if self._on_screen_now(ann):
            self._show(ann)
        elif ann.uid in self._on_screen:  # moved to another image
            self._hide(ann.uid)
            self._relayout({ann.uid})
        if emit:
            self.annotation_saved.emit(ann)

    def _drop(self, uid: str, emit: bool = True) -> bool:
        """Remove ``uid`` (no undo entry), emit ``annotation_deleted`` (if ``emit``); False when it was unknown."""
        if self._all.pop(uid, None) is None:
            return False
        self._measurer.forget(uid)
        if uid in self._on_screen:
            self._hide(uid)  # parked, not deleted: an undo brings it back at once
            self._relayout({uid})  # the labels it kept off its own may move back
        if emit:
            self.annotation_deleted.emit(uid)
        return True

    # ------------------------------------------------------------------------------------------ labels
    def _annotation_of(self, g: Mark, ann: Annotation) -> Annotation:
        """``ann`` with the geometry graphic ``g`` shows now (image pixel coordinates)."""
        pts = [self.view_to_image(p) for p in g.view_points()]
        return Annotation(ann.kind, pts, ann.sop_instance_uid, ann.frame, ann.text, ann.uid)

    def _update_label(self, it: AnnotationGraphics, ann: Annotation) -> None:
        """Set the label of shown ``it`` for ``ann`` (its text, maybe its geometry) and place it again."""
        text = "" if ann.kind == "text" else label_text(ann, self._measurer.measure(ann))
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

    def _fit_labels(self) -> None:  # the view was zoomed, panned or resized
        if self._shown is None or self._shown[1] is None:
            return
        if self._placer.current(self._shown[1], self.viewer.volume) is None:
            self._layout_labels()

    def _layout_labels(self) -> None:
        """Lay every label of the image on screen out again (see :meth:`LabelPlacer.layout`)."""
        if self._layout_held or self._shown is None or self._shown[1] is None:
            return
        self._placer.layout(self._shown[1], self.viewer.volume, self._on_screen)

    def _relayout(self, uids: set[str]) -> None:
        """Place again the labels that annotations ``uids`` may have affected (see :meth:`LabelPlacer.relayout`)."""
        if self._layout_held or self._shown is None or self._shown[1] is None:
            return
        self._placer.relayout(self._shown[1], self.viewer.volume, self._on_screen, uids)

    # ------------------------------------------------------------------------------------------ graphics events
    def _graphic_changed(self, g: Mark) -> None:  # live: while a handle or the body is dragged
        uid = g.uid
        ann = self._all.get(uid) if uid is not None else None
        it = self._on_screen.get(uid) if uid is not None else None
        if self._setting or ann is None or it is None:
            return
        it.sig = None  # the mark is no longer where the annotation says
        self._update_label(it, self._annotation_of(g, ann))

    def _graphic_clicked(self, g: Mark) -> None:
        if g.uid is not None and g.uid in self._on_screen:
            self.select(g.uid)
            self.viewer.setFocus(Qt.FocusReason.MouseFocusReason)

    def _graphic_finished(self, g: Mark) -> None:  # a drag ended: one undo step
        ann = self._all.get(g.uid) if g.uid is not None else None
        if ann is None:
            return
        new = self._annotation_of(g, ann)
        if same_points(new, ann):
            it = self._on_screen.get(ann.uid)
            if it is not None:
                it.sig = None
                self._update_label(it, ann)
            return
        what = "Move" if all(abs((a[0] - b[0]) - (new.points[0][0] - ann.points[0][0])) < 1e-6 and
                             abs((a[1] - b[1]) - (new.points[0][1] - ann.points[0][1])) < 1e-6
                             for a, b in zip(new.points, ann.points)) else "Edit"
        self.undo_stack.push(ModifyCommand(self, ann, new, f"{what} {ann.kind}"))
