"""Main window: thin wiring of the session model (:mod:`medviewer.session`), the viewport grid and the controllers.

The session holds what is shown (case, series, image, frame and each viewport's view); the docks are rebuilt from
it by their controllers: :class:`~medviewer.ui.loading.StudyLoader` (scan, browser, loads),
:class:`~medviewer.ui.ai_controller.AIController` (AI dock, heat maps), :class:`~medviewer.ui.case_controller.
CaseController` (notes, Case dock, annotations, presence) and :class:`~medviewer.ui.worklist_controller.
WorklistController` (worklist, re-score, export). Every background task is a job of the one
:class:`~medviewer.ui.workers.JobRunner`.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from PySide6.QtCore import QByteArray, QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QDockWidget, QMainWindow, QMessageBox, QWidget

from medviewer.inference.scorer import DEFAULT_MODEL
from medviewer.io.display import window_title
from medviewer.session import Change, Session
from medviewer.ui.ai_controller import AIController
from medviewer.ui.ai_panel import AIPanel
from medviewer.ui.browser import StudyBrowser
from medviewer.ui.case_controller import CaseController
from medviewer.ui.case_panel import CasePanel
from medviewer.ui.dialogs import TagBrowser
from medviewer.ui.layouts import ViewportGrid
from medviewer.ui.loading import StudyLoader
from medviewer.ui.menus import Menus, build_menus
from medviewer.ui.notes_pane import NotesPane
from medviewer.ui.pacs_listener import PacsListener
from medviewer.ui.store_access import open_store, save_recovery
from medviewer.ui.viewer import ImageViewer
from medviewer.ui.viewports import ViewportBinding
from medviewer.ui.workers import JobRunner, StoreWriter
from medviewer.ui.worklist import WorklistWidget
from medviewer.ui.worklist_controller import WorklistController

if TYPE_CHECKING:  # imported when first used: the network stack is not loaded at start-up
    from medviewer.ui.pacs_dialog import QueryRetrieveDialog
    from medviewer.ui.pacs_send import SendDialog

log = logging.getLogger(__name__)


def _load_style() -> str:
    """The dark reading-room stylesheet from resources/styles/dark.qss ("" if missing)."""
    from medviewer.config import resources_dir

    path = resources_dir() / "styles" / "dark.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""


class MainWindow(QMainWindow):
    """Study browser + viewport grid + AI, Notes, Case and Worklist docks. ``first_image_painted`` fires once the
    first slice is on screen."""

    first_image_painted = Signal()
    load_finished = Signal()  # a series finished decoding into a viewport
    nothing_to_show = Signal(str)  # a scan found no image (or failed): why, in words
    ai_finished = Signal()  # an AI run finished and its result is shown
    worklist_refreshed = Signal()
    rescore_finished = Signal(object)  # summary dict
    export_finished = Signal(str)  # the PDF path

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle(window_title())
        self.resize(1280, 820)
        self.setStyleSheet(_load_style())
        self.settings = QSettings("medviewer", "medviewer")
        self.session = Session()
        self.runner = JobRunner(self, max_threads=3, still_shown=self.session.is_shown)
        self.closed = False
        self._painted_once = False
        self.pacs_dialog: QueryRetrieveDialog | None = None  # made on first use, kept (a retrieval outlives it)
        self.send_dialog: SendDialog | None = None
        self.history_dialog: QWidget | None = None
        self.store, store_error, self.temporary_store_dir = open_store()
        self.writer = StoreWriter(self)

        self.grid = ViewportGrid(self)
        self.setCentralWidget(self.grid)
        self.binding = ViewportBinding(self.session, self.grid)
        self.browser = StudyBrowser()
        self.ai_panel = AIPanel()
        self.notes = NotesPane(self.store, self.runner, writer=self.writer)
        self.note_store = self.store  # the notes pane's NoteStore
        self.case_panel = CasePanel()
        self.worklist = WorklistWidget()
        self._docks()

        self.loader = StudyLoader(self.session, self.binding, self.browser, self.runner, self.store, self)
        self.ai = AIController(self.session, self.binding, self.ai_panel, self.runner, self.store, self.writer, self)
        self.case = CaseController(self.session, self.binding, self.case_panel, self.notes, self.store, self.writer,
                                   self.runner, self._call_labels, self)
        self.cases_list = WorklistController(self.session, self.worklist, self.store, self.writer, self.runner,
                                             self._model, lambda: self.menus.auto_rescore.isChecked(), self)
        self.presence = self.case.presence
        self.pacs_listener = PacsListener(self.store, self)  # studies pushed to us become cases
        self._wire(store_error)
        self.menus: Menus = build_menus(self)
        self.session.subscribe(self._session_changed)
        self.setAcceptDrops(True)
        self._restore_window()
        QTimer.singleShot(0, self.refresh_worklist)
        QTimer.singleShot(0, self.cases_list.check_stale_models)

    def _docks(self) -> None:
        def dock(title: str, widget: QWidget, name: str, area: Qt.DockWidgetArea) -> QDockWidget:
            d = QDockWidget(title, self)
            d.setWidget(widget)
            d.setObjectName(name)
            self.addDockWidget(area, d)
            return d

        right = Qt.DockWidgetArea.RightDockWidgetArea
        studies = dock("Studies", self.browser, "studies", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.resizeDocks([studies], [340], Qt.Orientation.Horizontal)
        ai_dock = dock("AI", self.ai_panel, "ai", right)
        self.notes_dock = dock("Notes", self.notes, "notes", right)
        self.case_dock = dock("Case", self.case_panel, "case", right)
        self.tabifyDockWidget(ai_dock, self.notes_dock)
        self.tabifyDockWidget(self.notes_dock, self.case_dock)
        ai_dock.raise_()
        self.resizeDocks([ai_dock], [280], Qt.Orientation.Horizontal)
        self.worklist_dock = dock("Worklist", self.worklist, "worklist", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.resizeDocks([self.worklist_dock], [200], Qt.Orientation.Vertical)

    def _wire(self, store_error: str) -> None:
        say = self.statusBar().showMessage
        for v in self.grid.viewers:
            v.painted.connect(self._on_painted)
        self.loader.status.connect(say)
        self.loader.failed.connect(self._on_failed)
        self.loader.failed.connect(lambda _msg: self.cases_list.follow_case())  # back to the case on screen
        self.loader.shared_study.connect(self.case.block)
        self.ai.blocked = lambda: self.case.blocked
        self.loader.nothing_to_show.connect(self.nothing_to_show)
        self.loader.scanned.connect(lambda _index: self.refresh_worklist())
        self.loader.allocated.connect(self.case.volume_shown)
        self.loader.allocated.connect(self.ai.volume_shown)
        self.loader.loaded.connect(self._on_loaded)
        self.ai.status.connect(say)
        self.ai.finished.connect(self.ai_finished)
        self.case.status.connect(say)
        self.case.alert.connect(say)
        self.case.alert.connect(lambda msg: self._tell(QMessageBox.Icon.Warning, msg))
        self.case_panel.export_requested.connect(lambda: self.cases_list.export_report())
        self.case_panel.history_requested.connect(lambda: self.show_history())
        self.cases_list.status.connect(say)
        self.cases_list.failed.connect(self._on_failed)
        self.cases_list.refreshed.connect(self.worklist_refreshed)
        self.cases_list.rows_changed.connect(self.case.set_rows)
        self.cases_list.rescored.connect(lambda _summary: self.ai.clear())
        self.cases_list.rescored.connect(self.rescore_finished)
        self.cases_list.exported.connect(self.export_finished)
        self.worklist.case_activated.connect(self.open_case)
        self.worklist.history_requested.connect(self.show_history)
        self.worklist.export_requested.connect(self.cases_list.export_report)
        self.worklist.send_requested.connect(self.send_to_pacs)
        self.presence.store_changed.connect(self.refresh_worklist)
        self.writer.failed.connect(self._on_store_failed)
        self.writer.recovered.connect(lambda: say("Saving works again: everything is saved"))
        self.pacs_listener.received.connect(lambda _uid, _n, msg: say(msg))
        self.pacs_listener.received.connect(lambda *_: self.refresh_worklist())
        self.pacs_listener.failed.connect(say)
        if not self.store.read_only:
            from medviewer.net.nodes import load_settings

            self.pacs_listener.apply(load_settings())
        say(store_error or "Open a folder or DICOMDIR (Ctrl+O), or drop one here")
        if store_error:
            log.error("%s", store_error)
            QTimer.singleShot(0, lambda: self._tell(QMessageBox.Icon.Critical, store_error))

    # ------------------------------------------------------------------------------------------------ session
    @property
    def viewer(self) -> ImageViewer:
        """The focused viewport."""
        return self.grid.viewers[self.session.active_slot]

    @property
    def case_uid(self) -> str | None:
        return self.session.case_uid

    def _session_changed(self, change: Change) -> None:
        """The window's own parts that follow the focus: title, status bar, tool actions, layout menu."""
        if change.what == "layout":
            self.menus.layouts[self.session.layout].setChecked(True)
        if not change.focus_level:
            return
        entry = self.binding.entry(self.session.active_slot)
        self.setWindowTitle(window_title(entry.patient.patient_name, entry.patient.patient_id,
                                         entry.study.study_description, entry.study.study_date)
                            if entry is not None else window_title())
        self.statusBar().clearMessage()  # "AI: 1 image scored", "140 slices loaded" were about the previous image
        from medviewer.ui.annotations import sync_tool_actions

        sync_tool_actions(self.menus.annotation_actions, self.viewer)

    def _call_labels(self) -> tuple[list[str], str]:
        card = self.ai.card()
        labels = [str(x) for x in card.get("labels", [])]
        return labels, str(card.get("positive_label", labels[-1] if labels else ""))

    def _model(self) -> tuple[str, str]:
        return self.ai_panel.model_name or DEFAULT_MODEL, self.ai.positive_label()

    def _on_loaded(self, slot: int, volume) -> None:  # noqa: ANN001 - Volume
        self.load_finished.emit()
        if (self.ai_panel.auto_run.isChecked() and slot == self.session.active_slot
                and volume.modality in ("CR", "DX") and not volume.is_color):
            self.ai.run(False)

    # ------------------------------------------------------------------------------------------------ opening
    def open_path(self, path: str) -> None:
        """Scan ``path`` (folder, DICOMDIR or file) in a worker; its first stacks open when it finishes."""
        self.menus.recent.remember(os.path.abspath(path))
        self.loader.open_path(path)

    def open_case(self, study_uid: str) -> None:
        """Open a worklist case: its stacks when the study is in the current scan, else scan its source path."""
        if self.loader.open_case(study_uid):
            return
        case = self.store.get_case(study_uid)
        if not self.loader.open_case(study_uid, case.source_path if case else ""):
            self.cases_list.follow_case()  # the worklist shows the case that is on screen, not the one asked for
            self.statusBar().showMessage("The case's images are not available"
                                         + (f" at {case.source_path}" if case and case.source_path else ""))

    def open_retrieved(self, study_uid: str, folder: str) -> None:
        """Open a study retrieved from a PACS (registered as a case already) like any folder, its case first."""
        self.loader.open_path(folder, case_uid=study_uid)

    def open_stack(self, key: str, viewer: ImageViewer | None = None) -> None:
        self.loader.open_stack(key, viewer)

    def next_case(self) -> None:
        uid = self.worklist.select_next()
        if uid:
            self.open_case(uid)

    def previous_case(self) -> None:
        uid = self.worklist.select_previous()
        if uid:
            self.open_case(uid)

    def dragEnterEvent(self, event):  # noqa: N802, ANN001 - Qt override
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event):  # noqa: N802, ANN001 - Qt override
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_path(paths[0])
            event.acceptProposedAction()

    # ------------------------------------------------------------------------------------------------ dialogs
    def run_ai(self, series: bool = False, force: bool = False) -> None:
        self.ai.run(series, force)

    def refresh_worklist(self) -> None:
        if not self.closed:
            self.cases_list.refresh()

    def show_tags(self) -> TagBrowser | None:
        """The tag browser for the focused viewport's current image file."""
        vol = self.viewer.volume
        if vol is None or vol.stack is None:
            return None
        dialog = TagBrowser(vol.stack.slices[self.viewer.state.index].instance.path, self)
        dialog.show()
        return dialog

    def show_history(self, study_uid: str | None = None) -> None:
        self.history_dialog = self.cases_list.show_history(study_uid)

    def show_pacs(self) -> QueryRetrieveDialog:
        """The Query/Retrieve dialog (one per window, kept: its retrieval goes on while it is hidden)."""
        from medviewer.ui.pacs_dialog import QueryRetrieveDialog

        if self.pacs_dialog is None:
            self.pacs_dialog = QueryRetrieveDialog(self.runner, self.store, self, listener=self.pacs_listener)
            self.pacs_dialog.study_retrieved.connect(self.open_retrieved)
        self.pacs_dialog.show()
        self.pacs_dialog.raise_()
        self.pacs_dialog.activateWindow()
        return self.pacs_dialog

    def send_to_pacs(self, study_uid: str | None = None) -> SendDialog | None:
        """The Send to PACS dialog for a case (default: the focused case, else the worklist's selection)."""
        from medviewer.ui.pacs_send import SendDialog

        uid = self.cases_list.selected_or_open(study_uid)
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

    # ------------------------------------------------------------------------------------------------ messages
    def _on_store_failed(self, message: str) -> None:
        self.statusBar().showMessage(message + " - kept in memory and retried")
        log.warning("%s", message)
        if not getattr(self, "_store_warned", False):
            self._store_warned = True  # once per session: the status bar tracks the rest
            self._tell(QMessageBox.Icon.Warning, message + "\n\nYour change is kept and saving is retried; "
                       "do not quit until the status bar says saving works again.")

    def _on_failed(self, message: str) -> None:
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

    # ------------------------------------------------------------------------------------------------ window
    def _restore_window(self) -> None:
        """Geometry, docks and layout as the reader left them (QSettings)."""
        geometry, state = self.settings.value("window/geometry"), self.settings.value("window/state")
        if isinstance(geometry, QByteArray) and not self.restoreGeometry(geometry):
            log.info("stored window geometry not usable")
        if isinstance(state, QByteArray) and not self.restoreState(state):
            log.info("stored dock layout not usable")
        layout = self.settings.value("window/layout", "1x1")
        try:
            self.session.set_layout(str(layout))
        except ValueError:
            log.warning("stored layout %r unknown; 1x1 used", layout)

    def _save_window(self) -> None:
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("window/layout", self.session.layout)

    def closeEvent(self, event):  # noqa: N802, ANN001 - Qt override
        if self.closed:
            super().closeEvent(event)
            return
        self.closed = True  # signals still queued (store writes, worklist jobs) are ignored from here on
        self.cases_list.closed = True
        self._save_window()
        self.presence.close()  # this workstation reads no case any more (queued before the final flush)
        self.pacs_listener.stop()
        self.notes.shutdown()  # every keystroke is written before the window goes
        self.writer.close()  # and every annotation, score and AI result
        if self.writer.lost:
            path = save_recovery(self.writer.lost, self.store.url)
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
