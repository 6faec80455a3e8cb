"""Send to PACS: a case's images and/or our results as DICOM objects (TID 1500 SR, heat-map SEG and SC written by
:func:`medviewer.report.dicom_objects.export_dicom_objects` into a temporary folder), stored with C-STORE or
STOW-RS in a worker with per-object progress and cancel, and one result line ("sent 29 objects to ORTHANC, 0
failed").

SEG and SC exist only for AI results with a heat map: without one, the SR alone is sent and the result line says
so; a case with nothing to report sends no SR either (also said).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from medviewer.jobs import TaskState
from medviewer.net.nodes import NetSettings, PacsNode, load_settings
from medviewer.ui.pacs_common import (
    PACS_STYLE,
    NetFailure,
    combo_node,
    fill_node_combo,
    set_status,
    start_net_job,
    status_label,
)
from medviewer.ui.workers import Job, JobRunner
from medviewer.ui.worklist import format_date, format_patient_name

log = logging.getLogger(__name__)


@dataclass
class Sent:
    """What a send did: objects sent and failed, the result objects written (by kind), and notes in words."""

    node: str
    sent: int = 0
    failed: int = 0
    total: int = 0
    images: int = 0
    results: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def line(self) -> str:
        """``sent 29 objects to ORTHANC, 0 failed``."""
        return f"sent {self.sent} object{'s' if self.sent != 1 else ''} to {self.node}, {self.failed} failed"

    def details(self) -> list[str]:
        """What was sent (images, SR, SEG, SC), what was left out and why, and the PACS's complaints."""
        what = ([f"{self.images} image{'s' if self.images != 1 else ''}"] if self.images else []) + [
            f"{n} {kind.upper()}" for kind, n in self.results.items() if n]
        head = ", ".join(what)
        notes = self.notes + self.messages[:3]
        return [head + ("; " + "; ".join(notes) if notes else "")] if head else notes


def write_results(store, study_uid: str, folder: Path) -> tuple[list[Path], dict[str, int], list[str]]:  # noqa: ANN001
    """Worker: write the case's SR, SEG and SC into ``folder``; only the SR when there is no heat map. Returns
    (files, count per kind, notes in words). Nothing is raised: what cannot be written is a note."""
    from medviewer.report.dicom_objects import DicomObjectError, NoHeatmapError, export_dicom_objects

    notes: list[str] = []
    target = str(folder) + "/"
    kinds = {"sr": target, "seg": target, "sc": target}
    out: dict = {}
    while kinds:
        try:
            out = export_dicom_objects(store, study_uid, sr=kinds.get("sr"), seg=kinds.get("seg"), sc=kinds.get("sc"))
            break
        except NoHeatmapError:
            notes.append("no heat map, so no SEG or SC")
            kinds = {"sr": target}
        except DicomObjectError as exc:  # nothing to report, no readable image
            notes.append(f"no {'SR' if len(kinds) == 1 else 'result objects'}: {exc}")
            return [], {}, notes
        except Exception as exc:  # noqa: BLE001 - the images can still go; the user is told why the results did not
            log.warning("results of case %s not written as DICOM: %s", study_uid, exc, exc_info=True)
            what = "the SR" if len(kinds) == 1 else "the result objects"
            notes.append(f"{what} could not be written ({type(exc).__name__}: {exc})")
            return [], {}, notes
    files = [Path(p) for kind in ("sr", "seg", "sc") for p in out.get(kind, [])]
    counts = {kind: len(out.get(kind, [])) for kind in ("sr", "seg", "sc") if out.get(kind)}
    notes += [f"warning: {w}" for w in out.get("warnings", [])[:2]]
    return files, counts, notes


def send_case(node: PacsNode, store, study_uid: str, images: bool, results: bool, state: TaskState,  # noqa: ANN001
              flush: Callable[[], object] | None = None) -> Sent:
    """Worker: send the case's images and/or its result objects to ``node`` with progress per object and the
    state's cancel event. Raises PacsError (nothing sent at all)."""
    from medviewer.net import service

    out = Sent(node.name)
    files: list[Path] = []
    if images:
        paths = [Path(i["path"]) for i in store.case_images(study_uid) if i.get("path")]
        present = [p for p in paths if p.is_file()]
        if len(present) < len(paths):
            out.notes.append(f"{len(paths) - len(present)} image file(s) no longer on disk")
        files += present
        out.images = len(present)
    tmp = Path(tempfile.mkdtemp(prefix="medviewer-send-"))
    try:
        if results:
            if flush is not None:
                flush()  # the results saved so far (waits here, not on the GUI thread)
            written, out.results, notes = write_results(store, study_uid, tmp)
            files += written
            out.notes += notes
        state.check()
        if not files:
            out.notes.append("nothing to send")
            return out
        t = service.send(node, files, progress=lambda d, total, m: state.progress(d, total or len(files), m),
                         cancel=state.cancel_event)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out.sent, out.failed, out.total, out.messages = len(t.files), t.failed, t.total or len(files), t.messages
    return out


class SendDialog(QDialog):
    """Send one case to a PACS. ``send_ended(str)``: "finished", "cancelled" or "failed"."""

    send_ended = Signal(str)

    def __init__(self, runner: JobRunner, store, study_uid: str, parent: QWidget | None = None,  # noqa: ANN001
                 flush: Callable[[], object] | None = None, settings: NetSettings | None = None,
                 listener=None):  # noqa: ANN001 - medviewer.ui.pacs_listener.PacsListener
        super().__init__(parent)
        self.setStyleSheet(PACS_STYLE)
        self.runner, self.store, self.study_uid, self.flush = runner, store, study_uid, flush
        self.listener = listener  # the app's Storage SCP: node-editor changes to it apply at once
        self.settings = settings if settings is not None else load_settings()
        self.job: Job | None = None
        self.sent: Sent | None = None  # the last send's outcome (not "result": that is QDialog.result())
        case = store.get_case(study_uid)
        title = " - ".join(x for x in (format_patient_name(case.patient_name), case.study_description,
                                       format_date(case.study_date)) if x) if case else study_uid
        self.setWindowTitle(f"Send to PACS - {title}")
        self.resize(620, 340)
        n_images = len(store.case_images(study_uid)) if case else 0

        self.node_combo = QComboBox()
        self.node_combo.setMinimumWidth(220)
        self.node_combo.currentIndexChanged.connect(self._update_buttons)
        edit = QPushButton("Edit nodes...")
        edit.clicked.connect(self.edit_nodes)
        top = QHBoxLayout()
        top.addWidget(QLabel("To"))
        top.addWidget(self.node_combo, 1)
        top.addWidget(edit)

        header = QLabel(f"Case: {title}")
        header.setWordWrap(True)
        self.images_box = QCheckBox(f"The study's images ({n_images})")
        self.images_box.setChecked(n_images > 0)
        self.images_box.setEnabled(n_images > 0)
        self.results_box = QCheckBox("Our results: SR, and SEG + SC when there is a heat map")
        self.results_box.setToolTip("A TID 1500 Structured Report of the reading, the AI findings and the "
                                    "measurements; a Segmentation and a Secondary Capture per AI heat map")
        self.results_box.setChecked(True)
        for box in (self.images_box, self.results_box):
            box.toggled.connect(self._update_buttons)
        what = QGroupBox("What to send")
        what_layout = QVBoxLayout(what)
        what_layout.addWidget(self.images_box)
        what_layout.addWidget(self.results_box)

        self.progress = QProgressBar()
        self.progress.setFormat("%v/%m objects")
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.send_button = QPushButton("Send")
        self.send_button.setDefault(True)
        self.send_button.clicked.connect(self.send)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        buttons = QHBoxLayout()
        buttons.addWidget(self.progress, 1)
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(close)
        self.status = status_label()

        layout = QVBoxLayout(self)
        layout.addWidget(header)
        layout.addLayout(top)
        layout.addWidget(what)
        layout.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        fill_node_combo(self.node_combo, self.settings)
        self._update_buttons()
        if not self.settings.nodes:
            set_status(self.status, "No PACS configured yet: Edit nodes... to add one")

    def _nodes_saved(self, settings: NetSettings) -> None:
        self.settings = settings
        fill_node_combo(self.node_combo, settings)
        if self.listener is not None:
            self.listener.apply(settings)

    def edit_nodes(self) -> None:
        from PySide6.QtCore import Qt

        from medviewer.ui.pacs_nodes import NodeEditor

        editor = NodeEditor(self.runner, self)
        editor.saved.connect(self._nodes_saved)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.node_editor = editor
        editor.open()

    def send(self) -> None:
        """Send what is ticked to the chosen node, in a worker."""
        node = combo_node(self.node_combo)
        if node is None or self.job is not None:
            return
        images, results = self.images_box.isChecked(), self.results_box.isChecked()
        store, uid, flush = self.store, self.study_uid, self.flush
        self.progress.setRange(0, 0)
        self.progress.setValue(0)
        set_status(self.status, f"Sending to {node.describe()}..." + (" (writing the result objects first)"
                                                                      if results else ""))
        self.job = start_net_job(self.runner, lambda state: send_case(node, store, uid, images, results, state, flush),
                                 self._on_sent, what="send", on_progress=self._on_progress,
                                 on_cancelled=self._on_cancelled)
        self._update_buttons()

    def _on_progress(self, job: Job, done: int, total: int, _message: str) -> None:
        if job is self.job and total > 0:
            self.progress.setRange(0, total)
            self.progress.setValue(min(done, total))
            self.progress.setTextVisible(True)

    def _on_sent(self, job: Job, result: Sent | NetFailure) -> None:
        if job is not self.job:
            return
        self.job = None
        self._update_buttons()
        if isinstance(result, NetFailure):
            self.progress.setRange(0, 1)
            set_status(self.status, f"Send failed: {result.message}", error=True)
            self.send_ended.emit("failed")
            return
        out = result
        self.progress.setRange(0, max(out.total, 1))
        self.progress.setValue(out.sent)
        self.progress.setTextVisible(out.total > 0)
        self.sent = out
        line = out.line()
        log.info("send to PACS: %s (%s)", line, "; ".join(out.details()))
        set_status(self.status, "\n".join([line[0].upper() + line[1:], *out.details()]), error=bool(out.failed))
        self.send_ended.emit("finished")

    def _on_cancelled(self, job: Job) -> None:
        if job is not self.job:
            return
        self.job = None
        self._update_buttons()
        set_status(self.status, f"Send cancelled after {self.progress.value()} object(s)")
        self.send_ended.emit("cancelled")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            set_status(self.status, "Cancelling...")

    def _update_buttons(self, *_: object) -> None:
        busy = self.job is not None
        self.send_button.setEnabled(not busy and combo_node(self.node_combo) is not None
                                    and (self.images_box.isChecked() or self.results_box.isChecked()))
        self.cancel_button.setEnabled(busy)


__all__ = ["SendDialog", "send_case", "write_results", "Sent"]
