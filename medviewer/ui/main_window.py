"""Main window: study browser dock, image viewer, scanning and loading in workers."""

from __future__ import annotations

import os

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QFileDialog,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QDockWidget,
    QLabel,
    QSpinBox,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.imaging.stacks import Stack, build_stacks
from medviewer.imaging.voi import CT_PRESETS
from medviewer.imaging.volume import load_volume
from medviewer.io.model import DicomIndex
from medviewer.io.scan import scan
from medviewer.ui.dialogs import ShortcutsDialog, TagBrowser
from medviewer.ui.viewer import ImageViewer
from medviewer.ui.workers import Job, JobRunner

STACK_ROLE = Qt.ItemDataRole.UserRole + 1
INFO_ROLE = Qt.ItemDataRole.UserRole + 2


def _overlay_info(patient, study, series) -> dict[str, str]:  # noqa: ANN001 - medviewer.io.model types
    """Corner overlay text for a series: patient (top left), study and series (top right)."""
    born = " ".join(x for x in (patient.patient_birth_date, patient.patient_sex) if x)
    return {
        "patient": "\n".join(x for x in (patient.patient_name, f"ID {patient.patient_id}" if patient.patient_id
                                         else "", born) if x),
        "study": " ".join(x for x in (study.study_date, study.study_description) if x),
        "series": " ".join(x for x in (f"Se {series.series_number}" if series.series_number is not None else "",
                                       series.modality, series.series_description) if x),
    }

def _load_style() -> str:
    """The dark reading-room stylesheet from resources/styles/dark.qss ("" if missing)."""
    from medviewer.config import resources_dir

    path = resources_dir() / "styles" / "dark.qss"
    return path.read_text(encoding="utf-8") if path.is_file() else ""



class MainWindow(QMainWindow):
    """Study browser + viewer. ``first_image_painted`` fires once the first slice is on screen."""

    first_image_painted = Signal()

    def __init__(self):
        super().__init__()
        self.setWindowTitle("medviewer")
        self.resize(1280, 820)
        self.setStyleSheet(_load_style())
        self.runner = JobRunner(self)
        self.index: DicomIndex | None = None
        self.scan_job: Job | None = None
        self.load_job: Job | None = None
        self._painted_once = False

        self.viewer = ImageViewer(self)
        self.setCentralWidget(self.viewer)
        self.viewer.painted.connect(self._on_painted)

        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Patient / Study / Series", "Modality", "Images"])
        self.tree.setColumnWidth(0, 260)
        self.tree.itemActivated.connect(self._open_item)
        self.tree.itemDoubleClicked.connect(self._open_item)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter: name, ID, description, modality")
        self.filter.textChanged.connect(self._apply_filter)
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_jobs)
        panel = QWidget()
        lay = QVBoxLayout(panel)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.filter)
        lay.addWidget(self.tree)
        lay.addWidget(self.progress)
        lay.addWidget(self.cancel_button)
        dock = QDockWidget("Studies", self)
        dock.setWidget(panel)
        dock.setObjectName("studies")
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        self.settings = QSettings("medviewer", "medviewer")
        self._build_actions()
        self.setAcceptDrops(True)
        self.statusBar().showMessage("Open a folder or DICOMDIR (Ctrl+O), or drop one here")

    def _build_actions(self) -> None:
        bar = self.addToolBar("Main")
        bar.setObjectName("main-toolbar")
        menu = self.menuBar().addMenu("&File")
        open_act = QAction("&Open folder...", self, shortcut=QKeySequence.StandardKey.Open)
        open_act.triggered.connect(self._choose_folder)
        menu.addAction(open_act)
        bar.addAction(open_act)
        self.recent_menu = menu.addMenu("Open &recent")
        self._refresh_recent()
        quit_act = QAction("&Quit", self, shortcut=QKeySequence.StandardKey.Quit)
        quit_act.triggered.connect(self.close)
        menu.addAction(quit_act)
        wl = self.menuBar().addMenu("&Window/Level")
        for i, name in enumerate(CT_PRESETS, 1):
            act = QAction(f"{name} ({CT_PRESETS[name][0]:g}/{CT_PRESETS[name][1]:g})", self)
            act.setShortcut(str(i))
            act.triggered.connect(lambda _=False, n=name: self.viewer.set_preset(n))
            wl.addAction(act)
        auto = QAction("Auto window", self, shortcut="A")
        auto.triggered.connect(self.viewer.auto_window)
        wl.addAction(auto)
        inv = QAction("Invert", self, shortcut="I")
        inv.triggered.connect(self.viewer.toggle_invert)
        wl.addAction(inv)
        bar.addAction(auto)
        bar.addAction(inv)
        view = self.menuBar().addMenu("&View")
        cine = QAction("Cine play/stop", self, shortcut="C")
        cine.triggered.connect(self.viewer.toggle_cine)
        view.addAction(cine)
        bar.addAction(cine)
        self.fps = QSpinBox()
        self.fps.setRange(1, 60)
        self.fps.setValue(10)
        self.fps.setSuffix(" fps")
        self.fps.valueChanged.connect(self.viewer.set_cine_fps)
        bar.addWidget(QLabel(" Cine "))
        bar.addWidget(self.fps)
        tags = QAction("DICOM tags...", self, shortcut="T")
        tags.triggered.connect(self.show_tags)
        view.addAction(tags)
        bar.addAction(tags)
        fit = QAction("Fit", self, shortcut="F")
        fit.triggered.connect(lambda: self.viewer.view.autoRange(padding=0.0))
        view.addAction(fit)
        one = QAction("1:1", self, shortcut="0")
        one.triggered.connect(self.viewer.one_to_one)
        view.addAction(one)
        help_menu = self.menuBar().addMenu("&Help")
        keys = QAction("Shortcuts", self, shortcut="F1")
        keys.triggered.connect(lambda: ShortcutsDialog(self).exec())
        help_menu.addAction(keys)

    # ---------------------------------------------------------------------------------------------- dialogs
    def show_tags(self) -> TagBrowser | None:
        """Open the tag browser for the current slice's file."""
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

    def open_path(self, path: str) -> None:
        """Scan ``path`` in a worker; the first image stack opens when the scan finishes."""
        if self.scan_job is not None:
            self.scan_job.cancel()
        self.statusBar().showMessage(f"Scanning {path}...")
        self._remember(os.path.abspath(path))
        job = Job(lambda state: scan(path, state=state))
        job.signals.progress.connect(self._on_progress)
        job.signals.finished.connect(self._on_scanned)
        job.signals.failed.connect(self._on_failed)
        job.signals.cancelled.connect(lambda: self._done_busy("Scan cancelled"))
        self.scan_job = self.runner.start(job)
        self._busy(True)

    def _on_scanned(self, index: DicomIndex) -> None:
        self._busy(False)
        self.index = index
        self.tree.clear()
        first: QTreeWidgetItem | None = None
        for patient in index.patients.values():
            p_item = QTreeWidgetItem([f"{patient.patient_name or '(no name)'}  [{patient.patient_id}]", "", ""])
            self.tree.addTopLevelItem(p_item)
            for study in patient.studies.values():
                s_item = QTreeWidgetItem([f"{study.study_date} {study.study_description}".strip(), "", ""])
                p_item.addChild(s_item)
                for series in study.series.values():
                    for stack in build_stacks(series) if series.image_instances else []:
                        label = " ".join(str(x) for x in (series.series_number if series.series_number is not None
                                                          else "", series.series_description or series.modality,
                                                          stack.label) if x != "")
                        item = QTreeWidgetItem([label or series.series_instance_uid, series.modality,
                                                str(stack.n_slices)])
                        item.setData(0, STACK_ROLE, stack)
                        item.setData(0, INFO_ROLE, _overlay_info(patient, study, series))
                        s_item.addChild(item)
                        first = first or item
        if index.skipped:
            sk = QTreeWidgetItem([f"Skipped files ({len(index.skipped)})", "", ""])
            for s in index.skipped:
                child = QTreeWidgetItem([os.path.basename(s.path), "", ""])
                child.setToolTip(0, f"{s.path}: {s.reason}")
                sk.addChild(child)
            self.tree.addTopLevelItem(sk)
        self.tree.expandAll()
        self.statusBar().showMessage(
            f"{index.instance_count} objects indexed, {len(index.skipped)} skipped")
        if first is not None:
            self.tree.setCurrentItem(first)
            self._open_item(first)

    def _apply_filter(self, text: str) -> None:
        text = text.lower()
        for i in range(self.tree.topLevelItemCount()):
            p = self.tree.topLevelItem(i)
            any_p = False
            for j in range(p.childCount()):
                s = p.child(j)
                any_s = False
                for k in range(s.childCount()):
                    se = s.child(k)
                    hay = " ".join([p.text(0), s.text(0), se.text(0), se.text(1)]).lower()
                    match = text in hay
                    se.setHidden(not match)
                    any_s |= match
                s.setHidden(not any_s and s.childCount() > 0)
                any_p |= any_s or (text in (p.text(0) + s.text(0)).lower())
            p.setHidden(not any_p)

    # ---------------------------------------------------------------------------------------------- loading
    def _open_item(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        stack = item.data(0, STACK_ROLE)
        if isinstance(stack, Stack):
            self.load_stack(stack, item.data(0, INFO_ROLE) or {})

    def load_stack(self, stack: Stack, info: dict[str, str] | None = None) -> None:
        """Decode ``stack`` in a worker (cancelling the previous load) and show it."""
        if self.load_job is not None:
            self.load_job.cancel()
        job = Job(lambda state: load_volume(stack, state=state))
        job.signals.progress.connect(self._on_progress)
        job.signals.finished.connect(lambda vol: self._on_loaded(vol, info or {}))
        job.signals.failed.connect(self._on_failed)
        job.signals.cancelled.connect(lambda: self._done_busy("Loading cancelled"))
        self.load_job = self.runner.start(job)
        self._busy(True)
        self.statusBar().showMessage(f"Loading {stack.n_slices} images...")

    def _on_loaded(self, volume, info: dict[str, str]) -> None:  # noqa: ANN001
        self._busy(False)
        self.viewer.set_volume(volume, info)
        self.viewer.setFocus()
        msg = f"{volume.array.shape[0]} slices loaded"
        if volume.warnings:
            msg += " - " + volume.warnings[0]
        self.statusBar().showMessage(msg)

    # ---------------------------------------------------------------------------------------------- status
    def _busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def _done_busy(self, message: str) -> None:
        self._busy(False)
        self.statusBar().showMessage(message)

    def _on_progress(self, done: int, total: int, _message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_failed(self, message: str) -> None:
        self._busy(False)
        self.statusBar().showMessage(message.splitlines()[0])
        if os.environ.get("QT_QPA_PLATFORM") != "offscreen":
            QMessageBox.warning(self, "medviewer", message)

    def _on_painted(self) -> None:
        if not self._painted_once:
            self._painted_once = True
            QTimer.singleShot(0, self.first_image_painted.emit)

    def cancel_jobs(self) -> None:
        for job in (self.scan_job, self.load_job):
            if job is not None:
                job.cancel()

    def closeEvent(self, event):  # noqa: N802, ANN001 - Qt override
        self.viewer.cine_timer.stop()
        self.runner.shutdown()
        super().closeEvent(event)
