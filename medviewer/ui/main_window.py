"""Main window: study browser dock, viewport grid, scanning/loading/thumbnails in workers.

Scanning (and splitting series into stacks), decoding series and making thumbnails all run on a QThreadPool via
:mod:`medviewer.ui.workers`; the GUI thread only builds widgets, QImages and icons from finished results.
"""

from __future__ import annotations

import logging

import os

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QSpinBox

from medviewer.inference.scorer import DEFAULT_MODEL
from medviewer.imaging.stacks import build_stacks
from medviewer.imaging.voi import CT_PRESETS
from medviewer.imaging.volume import Volume, load_volume
from medviewer.io.model import DicomIndex
from medviewer.io.scan import scan
from medviewer.jobs import TaskState
from medviewer.ui.ai_panel import AIPanel
from medviewer.ui.browser import StackEntry, StudyBrowser, make_thumbnail
from medviewer.ui.dialogs import LogDialog, ShortcutsDialog, TagBrowser
from medviewer.ui.layouts import LAYOUTS, ViewportGrid
from medviewer.ui.viewer import ImageViewer
from medviewer.ui.workers import Job, JobRunner


def _load_style() -> str:
    """The dark reading-room stylesheet from resources/styles/dark.qss ("" if missing)."""
    from medviewer.config import resources_dir

    path = resources_dir() / "styles" / "dark.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""

log = logging.getLogger(__name__)


def _scan_and_split(path: str, state: TaskState, store=None) -> tuple[DicomIndex, dict[str, list]]:  # noqa: ANN001
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


def _open_store():  # noqa: ANN202
    """(store, message, temporary folder): the user's case store (read-only, with a message, when it fails its
    integrity check); when it cannot be opened at all, a temporary one whose folder is deleted at exit, and the
    message that tells the user (the broken file is left untouched for recovery)."""
    import tempfile

    from medviewer.store import CaseStore, open_default_store

    try:
        store = open_default_store()
        return store, (f"The case store {store.problem}. Close medviewer and restore the file from a backup, or "
                       "move it away to start a new one." if store.read_only else ""), ""
    except Exception as exc:  # noqa: BLE001 - the app still opens on a working store and the user is told
        orig = getattr(exc, "orig", None) or exc
        try:
            from medviewer.config import data_dir

            where = str(data_dir() / "cases.sqlite3")
        except OSError as dir_exc:
            where = f"the data directory ({dir_exc})"
        tmp = tempfile.mkdtemp(prefix="medviewer-temporary-store-")
        store = CaseStore(path=os.path.join(tmp, "cases.sqlite3"))
        return store, (f"The case store {where} cannot be opened ({type(orig).__name__}: {orig}). medviewer is "
                       f"using a TEMPORARY store in {tmp}: your work will NOT be kept after you quit. Close "
                       "medviewer, move the file away or fix its permissions, and start again (set "
                       "MEDVIEWER_DATA_DIR to use another folder)."), tmp


class MainWindow(QMainWindow):
    """Study browser + viewport grid. ``first_image_painted`` fires once the first slice is on screen."""

    first_image_painted = Signal()
    load_finished = Signal()  # a series finished decoding into a viewport
    nothing_to_show = Signal(str)  # a scan found no image (or failed): why, in words
    ai_finished = Signal()  # an AI run finished and its result is shown
    worklist_refreshed = Signal()
    rescore_finished = Signal(object)  # summary dict
    export_finished = Signal(str)  # the PDF path

    def __init__(self):
        super().__init__()
        self.setWindowTitle("medviewer")
        self.resize(1280, 820)
        self.setStyleSheet(_load_style())
        self.runner = JobRunner(self, max_threads=3)
        self.index: DicomIndex | None = None
        self.scan_job: Job | None = None
        self.thumb_job: Job | None = None
        self.load_jobs: dict[int, Job] = {}
        self._painted_once = False

        self.grid = ViewportGrid(self)
        self.setCentralWidget(self.grid)
        for v in self.grid.viewers:
            v.painted.connect(self._on_painted)
        self.grid.stack_dropped.connect(lambda viewer, key: self.open_stack(key, viewer))

        self.browser = StudyBrowser()
        self.browser.stack_activated.connect(lambda key: self.open_stack(key))
        self.browser.cancel_requested.connect(self.cancel_jobs)
        dock = QDockWidget("Studies", self)
        dock.setWidget(self.browser)
        dock.setObjectName("studies")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.resizeDocks([dock], [340], Qt.Orientation.Horizontal)
        self.ai_panel = AIPanel()
        self.ai_panel.run_requested.connect(self.run_ai)
        self.ai_panel.force_requested.connect(lambda: self.run_ai(False, force=True))
        self.ai_panel.cancel_requested.connect(self.cancel_ai)
        self.ai_panel.overlay_changed.connect(self._apply_overlay_settings)
        ai_dock = QDockWidget("AI", self)
        ai_dock.setWidget(self.ai_panel)
        ai_dock.setObjectName("ai")
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, ai_dock)
        self.resizeDocks([ai_dock], [270], Qt.Orientation.Horizontal)
        from medviewer.ui.case_panel import CasePanel
        from medviewer.ui.notes_pane import NotesPane
        from medviewer.ui.workers import StoreWriter

        self.store, store_error, self.temporary_store_dir = _open_store()
        self.note_store = self.store  # the notes pane's NoteStore
        self.writer = StoreWriter(self)
        self.writer.failed.connect(self._on_store_failed)
        self.writer.written.connect(self._on_store_written)
        self.writer.conflict.connect(self._on_store_conflict)
        self.notes = NotesPane(self.store, self.runner, writer=self.writer)
        self.writer.recovered.connect(lambda: self.statusBar().showMessage("Saving works again: everything is saved"))
        notes_dock = QDockWidget("Notes", self)
        notes_dock.setWidget(self.notes)
        notes_dock.setObjectName("notes")
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, notes_dock)
        self.tabifyDockWidget(ai_dock, notes_dock)
        ai_dock.raise_()
        self.resizeDocks([ai_dock], [280], Qt.Orientation.Horizontal)
        self.notes_dock = notes_dock
        self.case_panel = CasePanel()
        case_dock = QDockWidget("Case", self)
        case_dock.setWidget(self.case_panel)
        case_dock.setObjectName("case")
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, case_dock)
        self.tabifyDockWidget(notes_dock, case_dock)
        ai_dock.raise_()
        self.case_dock = case_dock
        self.case_panel.score_submitted.connect(self._record_call)
        self.case_panel.sign_off_requested.connect(self._sign_off)
        self.case_panel.reopen_requested.connect(self._reopen)
        self.case_panel.annotation_activated.connect(self.show_annotation)
        self.case_panel.export_requested.connect(lambda: self.export_report())
        self.case_panel.history_requested.connect(lambda: self.show_history())
        from medviewer.ui.worklist import WorklistWidget

        self.worklist = WorklistWidget()
        self.worklist.case_activated.connect(self.open_case)
        self.worklist.rescore_requested.connect(self.rescore)
        self.worklist.cancel_requested.connect(self.cancel_rescore)
        self.worklist.history_requested.connect(self.show_history)
        self.worklist.export_requested.connect(self.export_report)
        self.worklist.send_requested.connect(self.send_to_pacs)
        wl_dock = QDockWidget("Worklist", self)
        wl_dock.setWidget(self.worklist)
        wl_dock.setObjectName("worklist")
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, wl_dock)
        self.resizeDocks([wl_dock], [200], Qt.Orientation.Vertical)
        self.worklist_dock = wl_dock
        self.rescore_job: Job | None = None
        self.export_job: Job | None = None
        self.pacs_dialog = None  # the Query/Retrieve dialog, made on first use and kept (a retrieval outlives it)
        self.send_dialog = None
        self._pending_case: str | None = None
        self.closed = False
        self._case_panel_timer = QTimer(self)
        self._case_panel_timer.setSingleShot(True)
        self._case_panel_timer.setInterval(250)
        self._case_panel_timer.timeout.connect(self.refresh_case_panel)
        self.case_annotations: dict[str, dict] = {}  # study uid -> {annotation uid: Annotation}
        self._shown_status: dict[str, str] = {}  # study uid -> status last shown in the Case dock
        self.case_uid: str | None = None
        from medviewer.ui.presence import CasePresence

        # several workstations on one store: who else reads the open case, refresh on their changes
        self.presence = CasePresence(self.store, self.writer, self.runner, self)
        self.presence.others_reading.connect(self._on_others_reading)
        self.presence.changed_elsewhere.connect(self._on_changed_elsewhere)
        self.presence.store_changed.connect(self.refresh_worklist)
        from medviewer.net.nodes import load_settings
        from medviewer.ui.pacs_listener import PacsListener

        # studies pushed to us (when the PACS settings say so) become cases in the worklist
        self.pacs_listener = PacsListener(self.store, self)
        self.pacs_listener.received.connect(lambda _uid, _n, msg: (self.statusBar().showMessage(msg),
                                                                   self.refresh_worklist()))
        self.pacs_listener.failed.connect(self.statusBar().showMessage)
        if not self.store.read_only:
            self.pacs_listener.apply(load_settings())
        for v in self.grid.viewers:
            v.annotations.annotation_saved.connect(lambda a, v=v: self._annotation_saved(v, a))
            v.annotations.annotation_deleted.connect(lambda uid, v=v: self._annotation_deleted(v, uid))
        self.viewer_entries: dict[int, StackEntry] = {}
        self.grid.active_changed.connect(lambda v: self._sync_notes())
        self.grid.active_changed.connect(self._sync_tool_actions)
        self.ai_job: Job | None = None
        self.ai_cache: dict[tuple, object] = {}
        self._cards: dict[str, dict] = {}  # model name -> card JSON, read once
        for v in self.grid.viewers:
            v.changed.connect(lambda v=v: self._show_cached_result(v))
        self.settings = QSettings("medviewer", "medviewer")
        self._build_actions()
        self.setAcceptDrops(True)
        self.statusBar().showMessage(store_error or "Open a folder or DICOMDIR (Ctrl+O), or drop one here")
        if store_error:
            log.error("%s", store_error)
            QTimer.singleShot(0, lambda: self._tell(QMessageBox.Icon.Critical, store_error))
        QTimer.singleShot(0, self.refresh_worklist)
        QTimer.singleShot(0, self._check_stale_models)

    # Compatibility: the active viewport.
    @property
    def viewer(self) -> ImageViewer:
        return self.grid.active

    # ---------------------------------------------------------------------------------------------- actions
    def _action(self, text: str, slot, shortcut=None, menu=None, bar=None) -> QAction:  # noqa: ANN001
        act = QAction(text, self)
        if shortcut is not None:
            act.setShortcut(shortcut)
        act.triggered.connect(slot)
        if menu is not None:
            menu.addAction(act)
        if bar is not None:
            bar.addAction(act)
        return act

    def _build_actions(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        file_menu = self.menuBar().addMenu("&File")
        self._action("&Open folder...", self._choose_folder, QKeySequence.StandardKey.Open, file_menu, bar)
        self._action("Open &DICOMDIR or file...", self._choose_file, "Ctrl+Shift+O", file_menu)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._refresh_recent()
        file_menu.addSeparator()
        self._action("&Query/Retrieve from PACS...", self.show_pacs, "Ctrl+Shift+Q", file_menu)
        file_menu.addSeparator()
        self._action("&Export report (PDF)...", lambda: self.export_report(), "Ctrl+E", file_menu)
        self._action("Export report, de-&identified...", lambda: self.export_report(deidentify=True),
                     "Ctrl+Shift+E", file_menu)
        self._action("Export worklist (&CSV)...", self.export_worklist_csv, None, file_menu)
        file_menu.addSeparator()
        self._action("&Quit", self.close, QKeySequence.StandardKey.Quit, file_menu)

        wl = self.menuBar().addMenu("&Window/Level")
        for i, name in enumerate(CT_PRESETS, 1):
            c, w = CT_PRESETS[name]
            self._action(f"{name} ({c:g}/{w:g})", lambda _=False, n=name: self.viewer.set_preset(n), str(i), wl)
        wl.addSeparator()
        self._action("Auto window", lambda: self.viewer.auto_window(), "A", wl, bar)
        self._action("Invert", lambda: self.viewer.toggle_invert(), "I", wl, bar)

        view = self.menuBar().addMenu("&View")
        group = QActionGroup(self)
        for n, name in enumerate(LAYOUTS):
            act = self._action(f"Layout {name}", lambda _=False, layout=name: self.grid.set_layout(layout),
                               f"Ctrl+{n + 1}", view, bar)
            act.setCheckable(True)
            act.setChecked(name == "1x1")
            group.addAction(act)
        view.addSeparator()
        self._action("Fit", lambda: self.viewer.view.autoRange(padding=0.0), "F", view)
        self._action("1:1 pixels", lambda: self.viewer.one_to_one(), "0", view)
        self._action("Cine play/stop", lambda: self.viewer.toggle_cine(), "C", view, bar)
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setValue(10)
        self.fps.setSuffix(" fps")
        self.fps.valueChanged.connect(lambda v: [x.set_cine_fps(v) for x in self.grid.viewers])
        bar.addWidget(QLabel(" Cine "))
        bar.addWidget(self.fps)
        self._action("DICOM tags...", self.show_tags, "T", view, bar)
        ai = self.menuBar().addMenu("&AI")
        self._action("Run AI on image", lambda: self.run_ai(False), "R", ai, bar)
        self._action("Run AI on series", lambda: self.run_ai(True), "Shift+R", ai)
        self._action("Show/hide heat map", lambda: self.ai_panel.show_overlay.toggle(), "H", ai)
        self._action("Model card...", self.ai_panel._show_card, None, ai)
        ai.addSeparator()
        self._action("Re-score selected cases", lambda: self.rescore(self.worklist.selected_uids() or None), None, ai)
        self._action("Re-score all cases", lambda: self.rescore(None), None, ai)
        self.auto_rescore = QAction("Re-score automatically when a model changes", self)
        self.auto_rescore.setCheckable(True)
        self.auto_rescore.setChecked(self.settings.value("auto_rescore", "true") in ("true", True))
        self.auto_rescore.toggled.connect(lambda on: self.settings.setValue("auto_rescore", "true" if on else "false"))
        ai.addAction(self.auto_rescore)
        cases = self.menuBar().addMenu("&Case")
        self._action("Next case", self.next_case, "Alt+Down", cases)
        self._action("Previous case", self.previous_case, "Alt+Up", cases)
        self._action("Show worklist", lambda: (self.worklist_dock.show(), self.worklist_dock.raise_()), "Ctrl+L",
                     cases)
        self._action("Case history...", lambda: self.show_history(), None, cases)
        self._action("&Send to PACS...", lambda: self.send_to_pacs(), None, cases)
        from medviewer.ui.annotations import build_annotation_actions

        annotate = self.menuBar().addMenu("A&nnotate")
        self.addToolBarBreak()
        tools = self.addToolBar("Annotate")
        tools.setObjectName("annotate-toolbar")
        self.annotation_actions = build_annotation_actions(self, annotate, tools, lambda: self.grid.active)
        help_menu = self.menuBar().addMenu("&Help")
        self._action("Shortcuts", lambda: ShortcutsDialog(self).exec(), "F1", help_menu)
        self._action("Show log", lambda: LogDialog(self).exec(), None, help_menu)

    # ---------------------------------------------------------------------------------------------- dialogs
    def show_tags(self) -> TagBrowser | None:
        """Open the tag browser for the active viewport's current image file."""
        vol = self.viewer.volume
        if vol is None or vol.stack is None:
            return None
        path = vol.stack.slices[self.viewer.state.index].instance.path
        dialog = TagBrowser(path, self)
        dialog.show()
        return dialog

    # ---------------------------------------------------------------------------------------------- recent, drop
    def _recent(self) -> list[str]:
        value = self.settings.value("recent", [])
        if isinstance(value, str):
            value = [value]
        return [v for v in (value or []) if isinstance(v, str)]

    def _remember(self, path: str) -> None:
        recent = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("recent", recent[:10])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        for path in self._recent():
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(self._recent()))

    def dragEnterEvent(self, event):  # noqa: N802, ANN001 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802, ANN001 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            event.acceptProposedAction()

    # ---------------------------------------------------------------------------------------------- scanning
    def _choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open DICOM folder")
        if path:
            self.open_path(path)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open DICOMDIR or DICOM file")
        if path:
            self.open_path(path)

    def open_path(self, path: str) -> None:
        """Scan ``path`` (folder, DICOMDIR or file) in a worker; the first stack opens when it finishes."""
        self.cancel_jobs()
        self._remember(os.path.abspath(path))
        self.statusBar().showMessage(f"Scanning {path}...")
        job = Job(lambda state: _scan_and_split(path, state, self.store))
        job.signals.progress.connect(lambda d, t, _m: self.browser.set_progress(d, t))
        # A result still queued when the scan was cancelled (window closed, another path opened) is dropped: it
        # would fill the browser with a stale scan and start loads on a closed window.
        job.signals.finished.connect(lambda result: None if job.state.cancelled else self._on_scanned(result))
        job.signals.failed.connect(self._on_failed)
        job.signals.cancelled.connect(lambda: self._done_busy("Scan cancelled"))
        self.scan_job = self.runner.start(job)
        self.browser.set_busy(True)

    def _on_scanned(self, result: tuple[DicomIndex, dict]) -> None:
        index, stacks = result
        self.browser.set_busy(False)
        self.index = index
        keys = self.browser.populate(index, stacks)
        if not keys:
            self.nothing_to_show.emit(f"no image to show ({index.files_seen} file"
                                      f"{'s' if index.files_seen != 1 else ''} read, {len(index.skipped)} skipped)")
        n_stacks = len(keys)
        self.statusBar().showMessage(
            f"{index.instance_count} objects indexed, {n_stacks} image stack{'s' if n_stacks != 1 else ''}, "
            f"{len(index.skipped)} file{'s' if len(index.skipped) != 1 else ''} skipped")
        pending, self._pending_case = self._pending_case, None
        case_keys = [k for k in keys if self.browser.entries[k].study.study_instance_uid == pending]
        # Opened from the worklist: that case's stacks; else the first stacks of the scan.
        self._show_case_stacks(case_keys or keys)
        self._start_thumbnails(keys)
        self.refresh_worklist()

    def _start_thumbnails(self, keys: list[str]) -> None:
        entries = [self.browser.entries[k] for k in keys]

        def work(state: TaskState) -> int:
            for n, entry in enumerate(entries):
                state.check()
                try:
                    job.signals.partial.emit((entry.key, make_thumbnail(entry.stack)))
                except Exception:  # noqa: BLE001 - no thumbnail for an undecodable image; the load reports it
                    pass
                state.progress(n + 1, len(entries), entry.key)
            return len(entries)

        job = Job(work)
        job.signals.partial.connect(lambda kv: self.browser.set_thumbnail(*kv))
        self.thumb_job = self.runner.start(job)

    # ---------------------------------------------------------------------------------------------- loading
    def open_stack(self, key: str, viewer: ImageViewer | None = None) -> None:
        """Decode the browser's stack ``key`` in a worker into ``viewer`` (default: the active one)."""
        entry = self.browser.entries.get(key)
        if entry is None:
            return
        viewer = viewer or self.grid.active
        self.load_stack(entry, viewer)

    def load_stack(self, entry: StackEntry, viewer: ImageViewer) -> None:
        slot = self.grid.viewers.index(viewer)
        self.viewer_entries[slot] = entry
        previous = self.load_jobs.get(slot)
        if previous is not None:
            previous.cancel()
        info = entry.overlay_info()

        def work(state: TaskState) -> Volume:
            return load_volume(entry.stack, state=state, on_allocated=job.signals.partial.emit,
                               on_slice=job.signals.item.emit)

        job = Job(work)
        job.signals.partial.connect(lambda vol: self._on_allocated(job, viewer, vol, info))
        job.signals.item.connect(lambda k: self._on_slice(job, viewer, k))
        job.signals.progress.connect(lambda d, t, _m: self._on_load_progress(job, d, t))
        job.signals.finished.connect(lambda vol: self._on_loaded(job, viewer, vol))
        job.signals.failed.connect(self._on_failed)
        job.signals.cancelled.connect(lambda: None)
        self.load_jobs[slot] = self.runner.start(job)
        self.browser.set_busy(True)
        self.statusBar().showMessage(f"Loading {entry.stack.n_slices} images...")

    def _current(self, job: Job) -> bool:
        return job in self.load_jobs.values() and not job.state.cancelled

    def _on_allocated(self, job: Job, viewer: ImageViewer, volume: Volume, info: dict[str, str]) -> None:
        if self._current(job):
            viewer.set_volume(volume, info)
            study_uid = self._viewer_study(viewer)
            if study_uid:
                viewer.annotations.set_annotations(self._annotations_of(study_uid))
                self._sync_notes()

    def _on_slice(self, job: Job, viewer: ImageViewer, k: int) -> None:
        if self._current(job) and viewer.volume is not None:
            viewer.slice_ready(k)

    def _on_load_progress(self, job: Job, done: int, total: int) -> None:
        if self._current(job):
            self.browser.set_progress(done, total)

    def _on_loaded(self, job: Job, viewer: ImageViewer, volume: Volume) -> None:
        if not self._current(job):
            return
        if viewer.volume is not volume:
            viewer.set_volume(volume)
        viewer.load_finished()
        if not any(not j.done for j in self.load_jobs.values() if j is not job):
            self.browser.set_busy(False)
        n = volume.array.shape[0]
        msg = f"{n} slice{'s' if n != 1 else ''} loaded"
        if volume.warnings:
            msg += " - " + volume.warnings[0]
        self.statusBar().showMessage(msg)
        self._sync_notes()
        self.load_finished.emit()
        if (self.ai_panel.auto_run.isChecked() and viewer is self.grid.active and volume.modality in ("CR", "DX")
                and not volume.is_color):
            self.run_ai(False)

    # ---------------------------------------------------------------------------------------------- notes
    def _sync_notes(self) -> None:
        """Point the notes pane at the study shown in the active viewport."""
        entry = self.viewer_entries.get(self.grid.viewers.index(self.grid.active))
        if entry is None:
            return
        title = " - ".join(x for x in (entry.patient.patient_name, entry.study.study_description,
                                        entry.study.study_date) if x)
        self.notes.set_study(entry.study.study_instance_uid, title)
        if entry.study.study_instance_uid != self.case_uid:
            self.case_uid = entry.study.study_instance_uid
            if not self.store.read_only:  # a read-only (damaged) store is never written; its banner says so
                self.writer.submit(self.store.log_event, self.case_uid, "case opened")
            self.presence.open(self.case_uid, self.case_panel.reader.text().strip())
            # Follow the open case in the worklist (on the next refresh if it is not listed yet).
            self._select_case_on_refresh = not self.worklist.select_uid(self.case_uid)
        self.refresh_case_panel()

    # ---------------------------------------------------------------------------------------------- cases
    def _sync_tool_actions(self, viewer: ImageViewer) -> None:
        from medviewer.ui.annotations import sync_tool_actions

        if hasattr(self, "annotation_actions"):
            sync_tool_actions(self.annotation_actions, viewer)

    def _viewer_study(self, viewer: ImageViewer) -> str | None:
        """StudyInstanceUID of what ``viewer`` shows (None when empty)."""
        entry = self.viewer_entries.get(self.grid.viewers.index(viewer))
        return entry.study.study_instance_uid if entry is not None else None

    def _annotations_of(self, study_uid: str) -> list:
        """The case's annotations as this session knows them: read from the store once per case, then kept up
        to date from the viewers' edits (so a reload never misses a write still queued for the store)."""
        if study_uid not in self.case_annotations:
            self.case_annotations[study_uid] = {a.uid: a for a in self.store.annotations(study_uid)}
        return list(self.case_annotations[study_uid].values())

    def _annotation_saved(self, viewer: ImageViewer, annotation) -> None:  # noqa: ANN001 - Annotation
        study_uid = self._viewer_study(viewer)
        if study_uid is None:
            return
        self._annotations_of(study_uid)
        self.case_annotations[study_uid][annotation.uid] = annotation
        for other in self.grid.viewers:  # another viewport on the same study shows the change too
            if other is not viewer and self._viewer_study(other) == study_uid:
                other.annotations.apply_external(annotation)
        try:
            measurement = viewer.annotations.measurement(annotation.uid).to_dict()
        except Exception:  # noqa: BLE001 - the geometry is what matters; the report recomputes the numbers
            measurement = {}
        self.writer.submit(self.store.save_annotation, study_uid, annotation, measurement, label=f"case:{study_uid}")

    def _annotation_deleted(self, viewer: ImageViewer, uid: str) -> None:
        study_uid = self._viewer_study(viewer)
        if study_uid in self.case_annotations:
            self.case_annotations[study_uid].pop(uid, None)
        for other in self.grid.viewers:
            if other is not viewer and self._viewer_study(other) == study_uid:
                other.annotations.remove_external(uid)
        self.writer.submit(self.store.delete_annotation, uid, label=f"case:{study_uid}")

    def _on_store_failed(self, message: str) -> None:
        self.statusBar().showMessage(message + " - kept in memory and retried")
        log.warning("%s", message)
        if not getattr(self, "_store_warned", False):
            self._store_warned = True  # once per session: the status bar tracks the rest
            self._tell(QMessageBox.Icon.Warning, message + "\n\nYour change is kept and saving is retried; "
                       "do not quit until the status bar says saving works again.")

    def _on_store_written(self, label: str) -> None:
        if self.closed:
            return
        if label == f"case:{self.case_uid}":
            self._case_panel_timer.start()  # coalesce: one refresh per burst of writes (typing saves per key)
        self._worklist_dirty = True
        if not getattr(self, "_worklist_timer_on", False):  # coalesce bursts of writes into one refresh
            self._worklist_timer_on = True
            QTimer.singleShot(300, self._refresh_worklist_if_dirty)

    def _refresh_worklist_if_dirty(self) -> None:
        self._worklist_timer_on = False
        if getattr(self, "_worklist_dirty", False):
            self._worklist_dirty = False
            self.refresh_worklist()

    def refresh_worklist(self) -> None:
        """Reload the worklist and the model/radiologist agreement from the store in a worker."""
        if self.closed:
            return
        store, model = self.store, self.ai_panel.model_name or DEFAULT_MODEL
        label = str(self._card_json(model).get("positive_label", "pneumonia"))

        def work(state: TaskState):  # noqa: ANN202
            from medviewer.store.agreement import agreement

            return store.worklist(), agreement(store, model, label)

        job = Job(work)
        job.signals.finished.connect(self._on_worklist)
        job.signals.failed.connect(lambda msg: self.statusBar().showMessage("Worklist: " + msg.splitlines()[0]))
        self.runner.start(job)

    def _on_worklist(self, result) -> None:  # noqa: ANN001
        rows, agree = result
        self.worklist_rows = {r.case.study_instance_uid: r for r in rows}
        self.worklist.set_rows(rows)
        self.worklist.set_agreement(agree)
        if self.case_uid and (getattr(self, "_select_case_on_refresh", False) or not self.worklist.selected_uids()):
            self._select_case_on_refresh = not self.worklist.select_uid(self.case_uid)
        self.refresh_case_panel()
        self.worklist_refreshed.emit()

    def refresh_case_panel(self) -> None:
        """Show the current case (the active viewport's study) in the Case dock, from the store."""
        if self.closed:
            return
        uid = self.case_uid
        case = self.store.get_case(uid) if uid else None
        if case is None:
            self.case_panel.set_case(None)
            return
        previous = self._shown_status.get(uid)
        self._shown_status[uid] = case.status
        if previous == "reported" and case.status == "in progress":
            self.statusBar().showMessage("The case was edited after sign-off: the sign-off is withdrawn - sign off "
                                         "again when the report is final")
        row = getattr(self, "worklist_rows", {}).get(uid)
        card = self._card_json(self.ai_panel.model_name or DEFAULT_MODEL)
        labels = [str(x) for x in card.get("labels", [])]
        self.case_panel.set_labels([x for x in labels if x != "normal"] or labels,
                                   str(card.get("positive_label", labels[-1] if labels else "")))
        items = []
        viewer = self.grid.active
        for a in self._annotations_of(uid):
            try:
                text = viewer.annotations.describe(a.uid)
            except Exception:  # noqa: BLE001 - not in this viewport: kind and text only
                text = a.kind + (f": {a.text}" if a.text else "") + f" (frame {a.frame + 1})"
            items.append((a.uid, text))
        self.case_panel.set_case(case, row, self.store.radiologist_scores(uid), items)

    def _record_call(self, label: str, positive: bool, confidence: int, comment: str, reader: str) -> None:
        if self.case_uid is None or not label:
            return
        self.writer.submit(self.store.add_radiologist_score, self.case_uid, label, positive, confidence or None,
                           comment, reader, label=f"case:{self.case_uid}")
        self.statusBar().showMessage(f"Recorded: {label} {'positive' if positive else 'negative'}")

    def _sign_off(self, reader: str) -> None:
        if self.case_uid is None:
            return
        # refused (ConflictError -> _on_store_conflict) if another workstation changed the case after the reader
        # was shown it, or signed it already
        self.writer.submit(self.store.sign_off, self.case_uid, reader, None, self.presence.shown_since,
                           label=f"case:{self.case_uid}")
        self.statusBar().showMessage(f"Case signed off by {reader}")

    def _on_store_conflict(self, label: str, message: str) -> None:
        """A write refused because another workstation changed the case: say so; show the case as it is now."""
        log.warning("%s", message)
        self.statusBar().showMessage(message)
        self._tell(QMessageBox.Icon.Warning, message)
        self.presence.seen()
        self.refresh_case_panel()
        self.refresh_worklist()

    def _on_others_reading(self, uid: str, others: list) -> None:
        if uid == self.case_uid:
            msg = f"This case is also open on another workstation: {', '.join(others)}"
            self.statusBar().showMessage(msg)
            self._tell(QMessageBox.Icon.Information, msg + ". Changes are kept for both; a sign-off made on a case "
                       "changed elsewhere since you opened it is refused.")

    def _on_changed_elsewhere(self, uid: str, changes: list) -> None:
        if uid == self.case_uid:
            self.statusBar().showMessage("Changed on another workstation: " + ", ".join(changes[:4]))
            self.presence.seen()
            self.refresh_case_panel()

    def _reopen(self) -> None:
        if self.case_uid is not None:
            self.writer.submit(self.store.set_status, self.case_uid, "in progress", label=f"case:{self.case_uid}")

    def show_annotation(self, uid: str) -> None:
        """Bring the image of annotation ``uid`` on screen in the viewport that shows its series, and select it."""
        for viewer in self.grid.viewers:
            vol = viewer.volume
            ann = next((a for a in viewer.annotations.annotations() if a.uid == uid), None)
            if vol is None or vol.stack is None or ann is None:
                continue
            for k, ref in enumerate(vol.stack.slices):
                if ref.instance.sop_instance_uid == ann.sop_instance_uid and ref.frame.index == ann.frame:
                    self.grid.set_active(viewer)
                    viewer.set_slice(k)
                    viewer.annotations.select(uid)
                    return
        self.statusBar().showMessage("That annotation's series is not on screen: open it from the browser")

    def open_case(self, study_uid: str) -> None:
        """Open a worklist case: its stacks when the study is in the current scan, else scan its source path."""
        keys = [k for k, e in self.browser.entries.items() if e.study.study_instance_uid == study_uid]
        if keys:
            self._show_case_stacks(keys)
            return
        case = self.store.get_case(study_uid)
        if case is None or not case.source_path or not os.path.exists(case.source_path):
            self.statusBar().showMessage("The case's images are not available"
                                         + (f" at {case.source_path}" if case and case.source_path else ""))
            return
        self.open_path(case.source_path)
        self._pending_case = study_uid

    def _show_case_stacks(self, keys: list[str]) -> None:
        """Fill the visible viewports with ``keys``, the active viewport first, so the case shown there (the one
        the Case dock, notes and sign-off act on) is the one just opened."""
        if not keys:
            return
        from medviewer.imaging.stacks import primary_first

        by_stack = {id(self.browser.entries[k].stack): k for k in keys}
        keys = [by_stack[id(st)] for st in primary_first([self.browser.entries[k].stack for k in keys])]
        active = self.grid.active
        viewers = [active] + [v for v in self.grid.visible_viewers() if v is not active]
        for viewer, key in zip(viewers, keys):
            self.open_stack(key, viewer)

    def next_case(self) -> None:
        uid = self.worklist.select_next()
        if uid:
            self.open_case(uid)

    def previous_case(self) -> None:
        uid = self.worklist.select_previous()
        if uid:
            self.open_case(uid)

    def show_history(self, study_uid: str | None = None) -> None:
        """The case's AI and notes history per run, calls that flipped highlighted."""
        from medviewer.store.rescore import case_history
        from medviewer.ui.worklist import CaseHistoryDialog

        uid = study_uid or self.case_uid or (self.worklist.selected_uids() or [None])[0]
        if uid is None:
            self.statusBar().showMessage("History: select a case first")
            return
        model = self.ai_panel.model_name or DEFAULT_MODEL
        case = self.store.get_case(uid)
        title = f"History: {case.patient_name.replace('^', ' ')} {case.study_description}" if case else "History"
        dialog = CaseHistoryDialog(case_history(self.store, uid, model), title=title, parent=self)
        dialog.show()
        self.history_dialog = dialog

    # ---------------------------------------------------------------------------------------------- PACS
    def show_pacs(self):  # noqa: ANN201 - QueryRetrieveDialog
        """Show the Query/Retrieve dialog (one per window, kept: its retrieval goes on while it is hidden)."""
        from medviewer.ui.pacs_dialog import QueryRetrieveDialog

        if self.pacs_dialog is None:
            self.pacs_dialog = QueryRetrieveDialog(self.runner, self.store, self, listener=self.pacs_listener)
            self.pacs_dialog.study_retrieved.connect(self.open_retrieved)
        self.pacs_dialog.show()
        self.pacs_dialog.raise_()
        self.pacs_dialog.activateWindow()
        return self.pacs_dialog

    def open_retrieved(self, study_uid: str, folder: str) -> None:
        """Open a study retrieved from a PACS (registered as a case already) like any folder, its case first."""
        self.open_path(folder)
        self._pending_case = study_uid

    def send_to_pacs(self, study_uid: str | None = None):  # noqa: ANN201 - SendDialog | None
        """The Send to PACS dialog for a case (default: the open case, else the worklist's selection)."""
        from medviewer.ui.pacs_send import SendDialog

        uid = study_uid or self.case_uid or (self.worklist.selected_uids() or [None])[0]
        if uid is None or self.store.get_case(uid) is None:
            self.statusBar().showMessage("Send to PACS: open or select a case first")
            return None
        if self.send_dialog is not None and self.send_dialog.job is not None:
            self.send_dialog.show()  # one send at a time: show the one running
            self.send_dialog.raise_()
            return self.send_dialog
        if self.send_dialog is not None:
            self.send_dialog.deleteLater()
        self.send_dialog = SendDialog(self.runner, self.store, uid, self, flush=self.writer.flush,
                                      listener=self.pacs_listener)
        self.send_dialog.show()
        return self.send_dialog

    # ---------------------------------------------------------------------------------------------- re-score
    def _check_stale_models(self) -> None:
        """In a worker: find cases scored with other weights than the bundled models now have; show a banner and,
        when enabled, re-score them."""
        store = self.store

        def work(state: TaskState):  # noqa: ANN202
            from medviewer.store.rescore import stale_models

            return stale_models(store)

        job = Job(work)
        job.signals.finished.connect(self._on_stale)
        job.signals.failed.connect(lambda msg: self.statusBar().showMessage("Model check: " + msg.splitlines()[0]))
        self.runner.start(job)

    def _on_stale(self, stale: dict) -> None:
        uids = sorted({u for v in stale.values() for u in v})
        if not uids:
            self.worklist.set_stale("")
            return
        names = ", ".join(f"{m} ({len(v)})" for m, v in stale.items() if v)
        self.worklist.set_stale(f"Model changed: {len(uids)} case(s) scored with older weights: {names}", uids)
        if self.auto_rescore.isChecked():
            self.rescore(uids, reason="weights changed: " + ", ".join(m for m, v in stale.items() if v))

    def rescore(self, study_uids=None, reason: str = "on demand") -> None:  # noqa: ANN001 - list[str] | None
        """Re-run the image model and the notes classifier over ``study_uids`` (None: all cases) in the model
        process, one case at a time, with progress and cancel; every result is kept."""
        if self.rescore_job is not None and not self.rescore_job.done:
            self.statusBar().showMessage("A re-score is already running")
            return
        store, url = self.store, self.store.url
        model = self.ai_panel.model_name or DEFAULT_MODEL
        uids = list(study_uids) if study_uids else [c.study_instance_uid for c in store.cases()]
        if not uids:
            self.statusBar().showMessage("No cases to re-score")
            return
        writer = self.writer

        def work(state: TaskState) -> dict:
            from medviewer.jobs.process import MODEL_PROCESS
            from medviewer.store.rescore import rescore, rescore_case_in_process

            writer.flush()  # re-score the notes and results saved so far (waits here, not on the GUI thread)
            summaries: list[dict] = []

            def on_case(summary: dict) -> None:
                summaries.append(summary)
                job.signals.item.emit(len(summaries))

            run_id = rescore(store, uids, image_model_name=model, notes=True, reason=reason, state=state,
                             run_case=lambda uid, run: MODEL_PROCESS.call(state, rescore_case_in_process, url, uid,
                                                                          model, True, run),
                             on_case=on_case)
            errors = [e for s in summaries for e in s.get("errors", [])]
            return {"run_id": run_id, "cases": len(summaries), "flipped": sum(bool(s.get("flipped"))
                                                                             for s in summaries),
                    "errors": [f"{e.get('path', '')}: {e.get('error', '')}" for e in errors]}

        job = Job(work)
        job.signals.progress.connect(lambda d, t, _m: self.worklist.set_progress(d, t))
        job.signals.item.connect(lambda _n: self.refresh_worklist())
        job.signals.finished.connect(self._on_rescored)
        job.signals.failed.connect(lambda msg: (self.worklist.set_busy(False),
                                                self.statusBar().showMessage("Re-score failed: "
                                                                             + msg.splitlines()[0])))
        job.signals.cancelled.connect(lambda: (self.worklist.set_busy(False), self.refresh_worklist(),
                                               self.statusBar().showMessage("Re-score cancelled (done cases kept)")))
        self.rescore_job = self.runner.start(job)
        self.worklist.set_busy(True)
        self.statusBar().showMessage(f"Re-scoring {len(uids)} case(s) with {model} ({reason})...")

    def cancel_rescore(self) -> None:
        if self.rescore_job is not None:
            self.rescore_job.cancel()

    def _on_rescored(self, summary: dict) -> None:
        self.worklist.set_busy(False)
        self.worklist.set_stale("")
        msg = f"Re-scored {summary['cases']} case(s): {summary['flipped']} call(s) flipped"
        if summary["errors"]:
            msg += f"; {len(summary['errors'])} image(s) could not be read ({summary['errors'][0]})"
        self.statusBar().showMessage(msg)
        self.ai_cache.clear()
        self.refresh_worklist()
        self.rescore_finished.emit(summary)

    # ---------------------------------------------------------------------------------------------- export
    def export_report(self, study_uid: str | None = None, path: str | None = None, deidentify: bool = False,
                      json_path: str | None = None) -> None:
        """Write the case's PDF report (and JSON) in a worker; asks for the file when ``path`` is None."""
        uid = study_uid or self.case_uid
        if uid is None:
            self.statusBar().showMessage("Export: open a case first")
            return
        if path is None:
            case = self.store.get_case(uid)
            default = os.path.join(os.path.expanduser("~"), f"medviewer-report-{case.id if case else 'case'}.pdf")
            path, _ = QFileDialog.getSaveFileName(self, "Export report" + (" (de-identified)" if deidentify else ""),
                                                  default, "PDF (*.pdf)")
            if not path:
                return
            json_path = os.path.splitext(path)[0] + ".json"
        store, writer = self.store, self.writer

        def work(state: TaskState):  # noqa: ANN202
            from medviewer.report.export import export_case

            writer.flush()  # the report shows everything saved so far (waits here, not on the GUI thread)
            return export_case(store, uid, pdf=path, json_path=json_path, deidentify=deidentify)

        job = Job(work)
        written = path + (f" and {json_path}" if json_path else "")
        job.signals.finished.connect(lambda _r: (self.statusBar().showMessage(f"Report written: {written}"),
                                                 self.export_finished.emit(path)))
        job.signals.failed.connect(lambda msg: self._on_failed("Export failed: " + msg))
        self.export_job = self.runner.start(job)
        self.statusBar().showMessage("Writing report...")

    def export_worklist_csv(self, path: str | None = None, deidentify: bool = False) -> None:
        """Write the worklist as CSV in a worker."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self, "Export worklist", os.path.expanduser("~/worklist.csv"),
                                                  "CSV (*.csv)")
            if not path:
                return
        store = self.store

        def work(state: TaskState):  # noqa: ANN202
            from medviewer.report.export import export_worklist_csv

            return export_worklist_csv(store, path, deidentify=deidentify)

        job = Job(work)
        job.signals.finished.connect(lambda _r: self.statusBar().showMessage(f"Worklist written: {path}"))
        job.signals.failed.connect(lambda msg: self._on_failed("Export failed: " + msg))
        self.runner.start(job)

    # ---------------------------------------------------------------------------------------------- AI
    def _card_json(self, name: str) -> dict:
        """The card of model ``name`` as JSON, {} when unreadable. Read once per model and kept: this runs on
        every slice change (cache lookups), which must not touch the disk."""
        cache = self._cards
        if name not in cache:
            import json

            from medviewer.config import models_dir

            try:
                cache[name] = json.loads((models_dir() / name / "card.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return {}
        return cache[name]

    def _card_sha(self, name: str) -> str:
        return str(self._card_json(name).get("weights_sha256", ""))

    def _target(self) -> str | None:
        """The class the heat map explains: the panel's choice, else the model's positive label."""
        if self.ai_panel.target:
            return self.ai_panel.target
        card = self._card_json(self.ai_panel.model_name)
        labels = card.get("labels") or [None]
        return card.get("positive_label", labels[-1])

    def _cache_key(self, viewer: ImageViewer, k: int) -> tuple | None:
        vol = viewer.volume
        if vol is None or vol.stack is None:
            return None
        ref = vol.stack.slices[k]
        panel = self.ai_panel
        return (ref.instance.sop_instance_uid, ref.frame.index, panel.model_name,
                self._card_sha(panel.model_name), panel.method, self._target())

    def run_ai(self, series: bool = False, force: bool = False) -> None:
        """Score the active viewport's image (or every slice of its series) in a worker, with a heat map, through
        the intended-use gate (``force``: "score anyway", recorded as such).

        Results are cached per (SOPInstanceUID, frame, model, weights SHA-256, method, class)."""
        from medviewer.inference.frames import frame_from_volume

        viewer = self.grid.active
        vol = viewer.volume
        panel = self.ai_panel
        if vol is None or not panel.model_name:
            self.statusBar().showMessage("Run AI: open an image first" if vol is None else "Run AI: no model")
            return
        indices = range(vol.array.shape[0]) if series else [viewer.state.index]
        items = []
        for k in indices:
            if vol.ready is not None and not vol.ready[k]:
                continue
            key = self._cache_key(viewer, k)
            cached = None if force else self.ai_cache.get(key)
            if cached is not None:
                self._apply_result(viewer, k, cached)
                continue
            items.append((k, frame_from_volume(vol, k)))
        if not items:
            self.ai_finished.emit()
            return
        if self.ai_job is not None:
            self.ai_job.cancel()
        from medviewer.ui.ai_panel import ScoreRequest, run_scoring

        request = ScoreRequest(panel.model_name, tuple(items), panel.method, self._target(), force)
        job = Job(lambda state: run_scoring(request, state))
        job.signals.progress.connect(lambda d, t, _m: panel.set_progress(d, t))
        job.signals.finished.connect(lambda results: self._on_scored(job, viewer, request, results))
        job.signals.failed.connect(lambda msg: (panel.set_busy(False), panel.clear_result("AI failed: "
                                                                                          + msg.splitlines()[0])))
        job.signals.cancelled.connect(lambda: (panel.set_busy(False), panel.clear_result("AI run cancelled")))
        self.ai_job = self.runner.start(job)
        panel.set_busy(True)
        self.statusBar().showMessage(f"Scoring {len(items)} image{'s' if len(items) != 1 else ''} with "
                                     f"{panel.model_name}...")

    def cancel_ai(self) -> None:
        if self.ai_job is not None:
            self.ai_job.cancel()

    def _on_scored(self, job: Job, viewer: ImageViewer, request, results) -> None:  # noqa: ANN001
        self.ai_panel.set_busy(False)
        if job is not self.ai_job or job.state.cancelled or viewer.volume is None:
            return
        for k, res in results:
            key = self._cache_key(viewer, k)
            if key is not None:
                key = key[:4] + (request.method, request.target)
                self.ai_cache[key] = res
            self._apply_result(viewer, k, res)
        study_uid = self._viewer_study(viewer)
        if study_uid:
            for _k, res in results:
                self.writer.submit(self.store.add_ai_result, study_uid, res, label=f"case:{study_uid}")
        self.statusBar().showMessage(f"AI: {len(results)} image{'s' if len(results) != 1 else ''} scored "
                                     "(research use only, not for diagnosis)")
        self.ai_finished.emit()

    def _apply_result(self, viewer: ImageViewer, k: int, res) -> None:  # noqa: ANN001 - ScoreResult
        from medviewer.ui.ai_panel import METHOD_NAMES

        if res.heatmap is not None and viewer.volume is not None:
            caption = (f"{METHOD_NAMES.get(res.heatmap_method, res.heatmap_method)}: {res.heatmap_label} "
                       f"({res.model} {res.version})")
            viewer.set_heatmap(k, res.heatmap, caption)
        if viewer is self.grid.active and k == viewer.state.index:
            self.ai_panel.show_result(res)

    def _show_cached_result(self, viewer: ImageViewer) -> None:
        if viewer is not self.grid.active or viewer.volume is None:
            return
        key = self._cache_key(viewer, viewer.state.index)
        res = self.ai_cache.get(key) if key else None
        if res is not None:
            self.ai_panel.show_result(res)

    def _apply_overlay_settings(self) -> None:
        panel = self.ai_panel
        for v in self.grid.viewers:
            v.set_overlay_opacity(panel.opacity.value() / 100.0)
            v.set_overlay_visible(panel.show_overlay.isChecked())
        viewer = self.grid.active
        if viewer.volume is None:
            return
        # A new class or method for the image on screen: show it from the cache or compute it.
        key = self._cache_key(viewer, viewer.state.index)
        if viewer.heatmaps and key is not None and key not in self.ai_cache:
            self.run_ai(False)
        elif key in self.ai_cache:
            self._apply_result(viewer, viewer.state.index, self.ai_cache[key])

    # ---------------------------------------------------------------------------------------------- status
    def _done_busy(self, message: str) -> None:
        self.browser.set_busy(False)
        self.statusBar().showMessage(message)

    def _on_failed(self, message: str) -> None:
        self.browser.set_busy(False)
        self.statusBar().showMessage(message.splitlines()[0])
        log.warning("%s", message)
        self._tell(QMessageBox.Icon.Warning, message)

    def _tell(self, icon: QMessageBox.Icon, message: str) -> None:
        """A window-modal message box that does not block the event loop (``open()``, not ``exec()``): the same
        code path with or without a display; a later message replaces an earlier one still shown."""
        old = getattr(self, "_message_box", None)
        if old is not None:
            old.close()
        box = QMessageBox(icon, "medviewer", message, QMessageBox.StandardButton.Ok, self)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _r: setattr(self, "_message_box", None))
        self._message_box = box
        box.open()

    def _on_painted(self) -> None:
        if not self._painted_once:
            self._painted_once = True
            QTimer.singleShot(0, self.first_image_painted.emit)

    def cancel_jobs(self) -> None:
        """Cancel scanning, thumbnails, scoring and every load in progress."""
        for job in [self.scan_job, self.thumb_job, getattr(self, "ai_job", None), *self.load_jobs.values()]:
            if job is not None:
                job.cancel()
        self.browser.set_busy(False)

    def closeEvent(self, event):  # noqa: N802, ANN001 - Qt override
        if self.closed:
            super().closeEvent(event)
            return
        self.closed = True  # signals still queued (store writes, worklist jobs) are ignored from here on
        self.presence.close()  # this workstation reads no case any more (queued before the final flush)
        self.pacs_listener.stop()
        self.notes.shutdown()  # every keystroke is written before the window goes
        self.writer.close()  # and every annotation, score and AI result
        if self.writer.lost:
            path = self._save_recovery(self.writer.lost)
            msg = (f"{len(self.writer.lost)} change(s) could not be saved to the case store "
                   f"({self.writer.errors[-1] if self.writer.errors else 'unknown error'}). They were written to "
                   f"{path} so they can be recovered.")
            self.statusBar().showMessage(msg)
            log.error("%s", msg)
            # A top-level box (no parent): it outlives this window, and the application keeps running until the
            # reader has closed it (it is the last window); nothing blocks here.
            box = QMessageBox(QMessageBox.Icon.Critical, "medviewer", msg)
            box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            box.show()
            self._closing_box = box
        for v in self.grid.viewers:
            v.cine_timer.stop()
        self.runner.shutdown()
        self.store.close()  # the last connection checkpoints the WAL into cases.sqlite3
        if self.temporary_store_dir:  # patient data must not stay behind in /tmp
            import shutil

            shutil.rmtree(self.temporary_store_dir, ignore_errors=True)
        super().closeEvent(event)

    def _save_recovery(self, lost: list[tuple]) -> str:
        """Write the writes that could not reach the store (note texts, annotations, calls...) as JSON next to
        the store (or in the temp dir), so nothing typed is gone for good; returns the file's path."""
        import json
        import tempfile
        import time as _time

        items = []
        for fn, args in lost:
            name = getattr(fn, "__name__", str(fn))
            items.append({"write": name, "args": [a.to_dict() if hasattr(a, "to_dict") else
                                                  (a if isinstance(a, (str, int, float, bool, list, dict, type(None)))
                                                   else repr(a)) for a in args]})
        from medviewer.store.cases import display_url

        stamp = _time.strftime("%Y%m%d-%H%M%S")
        for folder in (self._data_dir_or_none(), tempfile.gettempdir()):
            if folder is None:
                continue
            path = os.path.join(folder, f"unsaved-changes-{stamp}.json")
            try:
                with open(path, "w", encoding="utf-8") as f:
                    json.dump({"store": display_url(self.store.url), "changes": items}, f, indent=1, default=repr)
                return path
            except OSError as exc:
                log.warning("unsaved changes not written to %s: %s", path, exc)
                continue
        log.error("unsaved changes could not be written anywhere")
        return "(nowhere: no writable folder)"

    @staticmethod
    def _data_dir_or_none() -> str | None:
        try:
            from medviewer.config import data_dir

            return str(data_dir())
        except OSError as exc:
            log.warning("data directory not usable for the recovery file: %s", exc)
            return None
