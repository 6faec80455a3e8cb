"""Opening studies: scan a folder/DICOMDIR/file, fill the browser, make thumbnails, decode series into viewports.

All of it runs as jobs of :class:`~medviewer.ui.workers.JobRunner` (kinds "scan", "thumbnails", "load:<slot>");
the GUI thread only builds widgets from finished results. A viewport's session image changes when its load
starts, so the docks clear at once and nothing of the previous series stays beside the one being loaded.
"""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QObject, Signal

from medviewer.imaging.stacks import build_stacks, primary_first
from medviewer.imaging.volume import Volume, load_volume
from medviewer.io.model import DicomIndex
from medviewer.io.scan import scan
from medviewer.jobs import TaskState
from medviewer.session import Session
from medviewer.ui.browser import StackEntry, StudyBrowser, make_thumbnail
from medviewer.ui.viewer import ImageViewer
from medviewer.ui.viewports import ViewportBinding
from medviewer.ui.workers import JobRunner

log = logging.getLogger(__name__)


def scan_and_split(path: str, state: TaskState, store=None) -> tuple[DicomIndex, dict[str, list]]:  # noqa: ANN001
    """Worker: scan ``path``, split every series into stacks (both are too slow for the GUI thread) and register
    each study with images as a case in ``store`` (a :class:`medviewer.store.CaseStore`)."""
    index = scan(path, state=state)
    stacks = {}
    for _, _, series in index.iter_series():
        state.check()
        if series.image_instances:
            stacks[series.series_instance_uid] = build_stacks(series)
    if store is not None and not index.cancelled:
        try:
            from medviewer.report.dicom_objects import register_index_with_results

            register_index_with_results(store, index, os.path.abspath(path))  # our SRs' results come back too
        except Exception as exc:  # noqa: BLE001 - a store that cannot be written must not stop the reading
            from medviewer.store.cases import describe_store_error

            log.warning("the study was not registered as a case: %s", describe_store_error(exc))
    return index, stacks


class StudyLoader(QObject):
    """Scan, browse and load. Signals: ``scanned(index)`` after the browser is filled; ``allocated(slot)`` when a
    viewport got its new volume (pixels still arriving); ``loaded(slot, volume)``
    when a viewport's series is fully decoded; ``nothing_to_show(why)``; ``status(text)``; ``failed(message)``."""

    scanned = Signal(object)
    shared_study = Signal(str, str)  # (StudyInstanceUID, why): several patients under one study
    allocated = Signal(int)  # a viewport got its new volume (pixels still arriving)
    loaded = Signal(int, object)
    nothing_to_show = Signal(str)
    status = Signal(str)
    failed = Signal(str)

    def __init__(self, session: Session, binding: ViewportBinding, browser: StudyBrowser, runner: JobRunner,
                 store=None, parent: QObject | None = None):  # noqa: ANN001 - CaseStore
        super().__init__(parent)
        self.session, self.binding, self.browser, self.runner, self.store = session, binding, browser, runner, store
        self.index: DicomIndex | None = None
        self.pending_case: str | None = None  # a worklist case whose folder is being scanned: show it first
        self._loads = 0  # loads started; a scan shows its stacks only if the reader opened nothing meanwhile
        self._loads_at_scan = 0
        self._scan_path = ""
        browser.stack_activated.connect(lambda key: self.open_stack(key))
        browser.cancel_requested.connect(self.cancel)
        binding.grid.stack_dropped.connect(lambda viewer, key: self.open_stack(key, viewer))
        session.subscribe(lambda change: self._follow_focus() if change.focus_level else None)

    # ------------------------------------------------------------------------------------------------ scanning
    def open_path(self, path: str, case_uid: str | None = None) -> None:
        """Scan ``path`` (folder, DICOMDIR or file); then show ``case_uid``'s stacks, else the first ones."""
        self.cancel()
        self.pending_case = case_uid
        self._loads_at_scan = self._loads
        self._scan_path = path
        self.status.emit(f"Scanning {path}...")
        store = self.store
        self.runner.submit("scan", lambda state: scan_and_split(path, state, store),
                           on_progress=lambda d, t, _m: self.browser.set_progress(d, t),
                           on_result=self._on_scanned, on_failed=self._failed,
                           on_cancelled=lambda: self._done("Scan cancelled"))
        self.browser.set_busy(True)

    def _on_scanned(self, result: tuple[DicomIndex, dict]) -> None:
        index, stacks = result
        self.browser.set_busy(False)
        self.index = index
        keys = self.browser.populate(index, stacks)
        if not keys:
            self.nothing_to_show.emit(f"no image to show ({index.files_seen} file"
                                      f"{'s' if index.files_seen != 1 else ''} read, {len(index.skipped)} skipped)")
        n = len(keys)
        self.status.emit(f"{index.instance_count} objects indexed, {n} image stack{'s' if n != 1 else ''}, "
                         f"{len(index.skipped)} file{'s' if len(index.skipped) != 1 else ''} skipped")
        self._check_shared_studies(keys)
        pending, self.pending_case = self.pending_case, None
        case_keys = [k for k in keys if self.browser.entries[k].study.study_instance_uid == pending]
        if self._loads != self._loads_at_scan:
            pass  # the reader opened something while the scan ran: the scan fills the browser, not the viewports
        elif pending is not None and not case_keys:
            self.failed.emit(f"The case's images are not in {self._scan_path} any more (it holds other "
                             "studies now): nothing of another study is shown in its place")
        else:
            self.show_stacks(case_keys or keys)  # from the worklist: that case's stacks; else the first ones
        self._start_thumbnails(keys)
        self.scanned.emit(index)

    def _check_shared_studies(self, keys: list[str]) -> None:
        """Warn when one StudyInstanceUID belongs to several patients (damaged or merged data, e.g. pydicom-data's
        CR and MR samples): the case store keeps one case per study, so its notes, calls and sign-off would be
        shared by those patients."""
        patients: dict[str, set[tuple[str, str]]] = {}
        for key in keys:
            e = self.browser.entries[key]
            patients.setdefault(e.study.study_instance_uid, set()).add((e.patient.patient_id, e.patient.patient_name))
        for uid, who in patients.items():
            if len(who) > 1:
                from medviewer.io.display import format_person_name

                names = "; ".join(sorted(f"{format_person_name(n) or '(no name)'} ({i or 'no ID'})" for i, n in who))
                msg = (f"One StudyInstanceUID ({uid}) is used by {len(who)} different patients: {names}. medviewer "
                       "keeps one case per study and cannot keep their reports apart, so nothing is recorded for "
                       "it (notes, calls, annotations, AI results); the images can be viewed. Fix the data (new "
                       "StudyInstanceUIDs) before reporting.")
                log.warning("%s", msg)
                self.shared_study.emit(uid, msg)
                self.failed.emit(msg)

    def _start_thumbnails(self, keys: list[str]) -> None:
        entries = [self.browser.entries[k] for k in keys]

        def work(state: TaskState) -> int:
            for n, entry in enumerate(entries):
                state.check()
                try:
                    state.partial((entry.key, make_thumbnail(entry.stack)))
                except Exception as exc:  # noqa: BLE001 - no thumbnail for an undecodable image; the load says why
                    log.info("no thumbnail for %s: %s", entry.key, exc)
                state.progress(n + 1, len(entries), entry.key)
            return len(entries)

        self.runner.submit("thumbnails", work, on_partial=lambda kv: self.browser.set_thumbnail(*kv))

    # ------------------------------------------------------------------------------------------------ loading
    def open_case(self, study_uid: str, source_path: str = "") -> bool:
        """Show a case: its stacks when the study is in the current scan, else scan ``source_path``. False when
        neither is possible."""
        keys = [k for k, e in self.browser.entries.items() if e.study.study_instance_uid == study_uid]
        if keys:
            self.show_stacks(keys)
            return True
        if not source_path or not os.path.exists(source_path):
            return False
        self.open_path(source_path, case_uid=study_uid)
        return True

    def show_stacks(self, keys: list[str]) -> None:
        """Fill the visible viewports with ``keys`` (primary images first), the focused viewport first, so the
        case shown there (the one the Case dock, notes and sign-off act on) is the one just opened."""
        if not keys:
            return
        by_stack = {id(self.browser.entries[k].stack): k for k in keys}
        keys = [by_stack[id(st)] for st in primary_first([self.browser.entries[k].stack for k in keys])]
        active = self.session.active_slot
        slots = [active] + [s for s in self.session.visible_slots() if s != active]
        for slot, key in zip(slots, keys):
            self.load(self.browser.entries[key], slot)

    def open_stack(self, key: str, viewer: ImageViewer | None = None) -> None:
        """Decode the browser's stack ``key`` into ``viewer`` (default: the focused viewport)."""
        entry = self.browser.entries.get(key)
        if entry is not None:
            self.load(entry, self.binding.slot(viewer) if viewer is not None else self.session.active_slot)

    def load(self, entry: StackEntry, slot: int) -> None:
        """Decode ``entry`` in a worker into viewport ``slot`` (job kind "load:<slot>": a new load of the same
        viewport cancels the old one)."""
        self._loads += 1
        self.binding.show_entry(slot, entry)
        viewer = self.binding.viewer(slot)
        info = entry.overlay_info()

        def allocated(vol: Volume) -> None:
            viewer.set_volume(vol, info)
            self.allocated.emit(slot)

        def work(state: TaskState) -> Volume:
            return load_volume(entry.stack, state=state, on_allocated=state.partial, on_slice=state.item)

        self.runner.submit(f"load:{slot}", work, on_partial=allocated,
                           on_item=lambda k: viewer.slice_ready(k) if viewer.volume is not None else None,
                           on_progress=lambda d, t, _m: self.browser.set_progress(d, t),
                           on_result=lambda vol: self._on_loaded(slot, viewer, vol), on_failed=self._failed,
                           on_cancelled=lambda: viewer.show_message("Loading cancelled: open the series again")
                           if viewer.volume is None else None)
        self.browser.set_busy(True)
        self.status.emit(f"Loading {entry.stack.n_slices} images...")

    def _on_loaded(self, slot: int, viewer: ImageViewer, volume: Volume) -> None:
        if viewer.volume is not volume:
            viewer.set_volume(volume)
        viewer.load_finished()
        if not any(self.runner.running(f"load:{s}") for s in range(len(self.session.viewports)) if s != slot):
            self.browser.set_busy(False)
        n = volume.array.shape[0]
        if slot == self.session.active_slot:  # the status bar speaks of the focused viewport only
            self.status.emit(f"{n} slice{'s' if n != 1 else ''} loaded"
                             + (" - " + volume.warnings[0] if volume.warnings else ""))
        self.loaded.emit(slot, volume)

    def _follow_focus(self) -> None:
        """The browser selects the focused viewport's stack."""
        image = self.session.image
        self.browser.select_key(image.stack_key if image is not None else None)

    # ------------------------------------------------------------------------------------------------ status
    def cancel(self) -> None:
        """Cancel scanning, thumbnails and every load in progress."""
        self.runner.cancel("scan", "thumbnails", prefix="load:")
        self.browser.set_busy(False)

    def _done(self, message: str) -> None:
        self.browser.set_busy(False)
        self.status.emit(message)

    def _failed(self, message: str) -> None:
        self.browser.set_busy(False)
        self.failed.emit(message)
