"""Binds the viewport grid's :class:`~medviewer.ui.viewer.ImageViewer` widgets to the session model.

Each viewer renders the :class:`medviewer.session.ViewState` of its session viewport (the same object: the
viewer keeps no copy); this binding reports what the viewer did (slice, window, invert) to the session, follows
the grid's focus and layout, and clears a viewer that the session says shows nothing.
"""

from __future__ import annotations

from medviewer.session import Change, ImageRef, Session
from medviewer.ui.browser import StackEntry
from medviewer.ui.layouts import ViewportGrid
from medviewer.ui.viewer import ImageViewer


def image_ref(entry: StackEntry, index: int) -> ImageRef:
    """The :class:`ImageRef` of position ``index`` of the browser stack ``entry``."""
    ref = entry.stack.slices[index]
    return ImageRef(study_uid=entry.study.study_instance_uid, series_uid=entry.series.series_instance_uid,
                    stack_key=entry.key, sop_instance_uid=ref.instance.sop_instance_uid, frame=ref.frame.index,
                    index=index, patient_name=entry.patient.patient_name, patient_id=entry.patient.patient_id)


class ViewportBinding:
    """The grid's viewers <-> the session's viewports (slot n = ``grid.viewers[n]``)."""

    def __init__(self, session: Session, grid: ViewportGrid):
        self.session, self.grid = session, grid
        self.entries: dict[int, StackEntry] = {}  # slot -> the browser stack it shows (the session has its key)
        for slot, viewer in enumerate(grid.viewers):
            viewer.state = session.viewports[slot].view  # the viewer renders the session's view state
            viewer.changed.connect(lambda v=viewer: self._viewer_changed(v))
            viewer.view.sigRangeChanged.connect(lambda *_, v=viewer: self._range_changed(v))
            viewer.annotations.tool_changed.connect(lambda kind, v=viewer: self._tool_changed(v, kind))
        grid.active_changed.connect(lambda v: session.set_active(self.slot(v)))
        grid.layout_changed.connect(session.set_layout)
        session.set_layout(grid.layout_name)
        session.subscribe(self._session_changed)

    def _session_changed(self, change: Change) -> None:
        """The grid follows the session's layout and focus (menus and tests set them on the session)."""
        if change.what == "layout" and self.grid.layout_name != self.session.layout:
            self.grid.set_layout(self.session.layout)
        if change.what in ("layout", "active") and self.grid.active is not self.viewer(self.session.active_slot):
            self.grid.set_active(self.viewer(self.session.active_slot))

    def slot(self, viewer: ImageViewer) -> int:
        return self.grid.viewers.index(viewer)

    def viewer(self, slot: int) -> ImageViewer:
        return self.grid.viewers[slot]

    def entry(self, slot: int) -> StackEntry | None:
        """The stack shown in ``slot`` (while the session says it shows one)."""
        return self.entries.get(slot) if self.session.viewports[slot].image is not None else None

    def show_entry(self, slot: int, entry: StackEntry) -> None:
        """``slot`` shows ``entry`` from now on (its middle image, as the viewer opens it); the viewer is
        cleared until the new series' pixels arrive, so nothing of the previous series stays on screen (a reload
        of the stack already shown keeps it until the new pixels come)."""
        viewer = self.viewer(slot)
        shown = self.entry(slot)
        if shown is not None and shown.key == entry.key and viewer.volume is not None:
            return
        self.entries[slot] = entry
        viewer.clear()
        viewer.show_message("Loading...")
        self.session.show(slot, image_ref(entry, entry.stack.n_slices // 2), reset_view=True)

    def _range_changed(self, viewer: ImageViewer) -> None:
        """Zoom/pan as the renderer (pyqtgraph's ViewBox) now has them, into the session's view state."""
        slot = self.slot(viewer)
        view = self.session.viewports[slot].view
        if viewer.volume is None:
            view.zoom = view.pan = None
            return
        (x0, x1), (y0, y1) = viewer.view.viewRange()
        view.zoom, view.pan = viewer.zoom_factor(), ((x0 + x1) / 2.0, (y0 + y1) / 2.0)
        self.session.view_changed(slot)

    def _tool_changed(self, viewer: ImageViewer, kind: str | None) -> None:
        slot = self.slot(viewer)
        self.session.viewports[slot].view.tool = kind or "navigate"
        self.session.view_changed(slot)

    def _viewer_changed(self, viewer: ImageViewer) -> None:
        slot = self.slot(viewer)
        entry, vol = self.entries.get(slot), viewer.volume
        if entry is None or vol is None or vol.stack is not entry.stack:
            self.session.view_changed(slot)
            return
        k = viewer.state.index
        ref = entry.stack.slices[k]
        before = self.session.viewports[slot].image
        self.session.set_index(slot, k, ref.instance.sop_instance_uid, ref.frame.index)
        if self.session.viewports[slot].image == before:
            self.session.view_changed(slot)
