"""Main window: study browser dock, viewport grid, scanning/loading/thumbnails in workers.

Scanning (and splitting series into stacks), decoding series and making thumbnails all run on a QThreadPool via
:mod:`medviewer.ui.workers`; the GUI thread only builds widgets, QImages and icons from finished results.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QDockWidget, QFileDialog, QLabel, QMainWindow, QMessageBox, QSpinBox

from medviewer.imaging.stacks import build_stacks
from medviewer.imaging.voi import CT_PRESETS
from medviewer.imaging.volume import Volume, load_volume
from medviewer.io.model import DicomIndex
from medviewer.io.scan import scan
from medviewer.jobs import TaskState
from medviewer.ui.ai_panel import AIPanel
from medviewer.ui.browser import StackEntry, StudyBrowser, make_thumbnail
from medviewer.ui.dialogs import ShortcutsDialog, TagBrowser
from medviewer.ui.layouts import LAYOUTS, ViewportGrid
from medviewer.ui.viewer import ImageViewer
from medviewer.ui.workers import Job, JobRunner


def _load_style() -> str:
    """The dark reading-room stylesheet from resources/styles/dark.qss ("" if missing)."""
    from medviewer.config import resources_dir

    path = resources_dir() / "styles" / "dark.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


def _scan_and_split(path: str, state: TaskState) -> tuple[DicomIndex, dict[str, list]]:
    """Worker: scan ``path`` and split every series into stacks (both are too slow for the GUI thread)."""
    index = scan(path, state=state)
    stacks = {}
    for _, _, series in index.iter_series():
        state.check()
        if series.image_instances:
            stacks[series.series_instance_uid] = build_stacks(series)
    return index, stacks


class MainWindow(QMainWindow):
    """Study browser + viewport grid. ``first_image_painted`` fires once the first slice is on screen."""

    first_image_painted = Signal()
    load_finished = Signal()  # a series finished decoding into a viewport
    ai_finished = Signal()  # an AI run finished and its result is shown

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
        self.ai_panel.cancel_requested.connect(self.cancel_ai)
        self.ai_panel.overlay_changed.connect(self._apply_overlay_settings)
        ai_dock = QDockWidget("AI", self)
        ai_dock.setWidget(self.ai_panel)
        ai_dock.setObjectName("ai")
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, ai_dock)
        self.resizeDocks([ai_dock], [270], Qt.Orientation.Horizontal)
        from medviewer.notes.store import SQLiteNoteStore
        from medviewer.ui.notes_pane import NotesPane

        self.note_store = SQLiteNoteStore()
        self.notes = NotesPane(self.note_store, self.runner)
        notes_dock = QDockWidget("Notes", self)
        notes_dock.setWidget(self.notes)
        notes_dock.setObjectName("notes")
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, notes_dock)
        self.tabifyDockWidget(ai_dock, notes_dock)
        ai_dock.raise_()
        self.resizeDocks([ai_dock], [280], Qt.Orientation.Horizontal)
        self.notes_dock = notes_dock
        self.viewer_entries: dict[int, StackEntry] = {}
        self.grid.active_changed.connect(lambda v: self._sync_notes())
        self.ai_job: Job | None = None
        self.ai_cache: dict[tuple, object] = {}
        self._cards: dict[str, dict] = {}  # model name -> card JSON, read once
        for v in self.grid.viewers:
            v.changed.connect(lambda v=v: self._show_cached_result(v))
        self.settings = QSettings("medviewer", "medviewer")
        self._build_actions()
        self.setAcceptDrops(True)
        self.statusBar().showMessage("Open a folder or DICOMDIR (Ctrl+O), or drop one here")

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
            act = self._action(f"Layout {name}", lambda _=False, l=name: self.grid.set_layout(l), f"Ctrl+{n + 1}",
                               view, bar)
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
        help_menu = self.menuBar().addMenu("&Help")
        self._action("Shortcuts", lambda: ShortcutsDialog(self).exec(), "F1", help_menu)

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
        job = Job(lambda state: _scan_and_split(path, state))
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
        n_stacks = len(keys)
        self.statusBar().showMessage(
            f"{index.instance_count} objects indexed, {n_stacks} image stack{'s' if n_stacks != 1 else ''}, "
            f"{len(index.skipped)} file{'s' if len(index.skipped) != 1 else ''} skipped")
        if keys:
            # Fill the visible viewports with the first stacks, the active one first.
            for viewer, key in zip(self.grid.visible_viewers(), keys):
                self.open_stack(key, viewer)
        self._start_thumbnails(keys)

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
        msg = f"{volume.array.shape[0]} slices loaded"
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

    def run_ai(self, series: bool = False) -> None:
        """Score the active viewport's image (or every slice of its series) in a worker, with a heat map.

        Results are cached per (SOPInstanceUID, frame, model, weights SHA-256, method, class)."""
        viewer = self.grid.active
        vol = viewer.volume
        panel = self.ai_panel
        if vol is None or not panel.model_name:
            self.statusBar().showMessage("Run AI: open an image first" if vol is None else "Run AI: no model")
            return
        indices = range(vol.array.shape[0]) if series else [viewer.state.index]
        window = None
        if vol.window_presets:
            c, w, _ = vol.window_presets[0]
            window = (c, w, vol.voi_lut_function)
        mono1 = vol.photometric_interpretation == "MONOCHROME1"
        items = []
        for k in indices:
            if vol.ready is not None and not vol.ready[k]:
                continue
            key = self._cache_key(viewer, k)
            cached = self.ai_cache.get(key)
            if cached is not None:
                self._apply_result(viewer, k, cached)
                continue
            ref = vol.stack.slices[k]
            items.append((k, ref.instance.sop_instance_uid, ref.frame.index, vol.array[k], window, mono1))
        if not items:
            self.ai_finished.emit()
            return
        if self.ai_job is not None:
            self.ai_job.cancel()
        from medviewer.ui.ai_panel import ScoreRequest, run_scoring

        request = ScoreRequest(panel.model_name, tuple(items), panel.method, self._target())
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
        if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
            QMessageBox.warning(self, "medviewer", message)

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
        self.notes.shutdown()  # every keystroke is written before the window goes
        for v in self.grid.viewers:
            v.cine_timer.stop()
        self.runner.shutdown()
        super().closeEvent(event)
