"""Case notes pane: a plain-text editor per study with autosave, live classification into findings, and finding
chips the radiologist confirms or rejects.

* Autosave: every edit goes to a background store writer (:class:`~medviewer.ui.workers.StoreWriter`) that saves it
  in its own transaction; closing the pane or the window flushes it. The GUI thread never waits for the disk.
* Classification: 400 ms after the last keystroke the text is classified by a worker through the model process
  (:mod:`medviewer.jobs.process`: torch and transformers never load in the GUI process); a newer text cancels and
  supersedes an older request (the latest text wins).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from medviewer.notes.labels import LABELS
from medviewer.notes.store import NoteRecord, NoteStore
from medviewer.ui.workers import Job, JobRunner, StoreWriter

SNIPPETS = [
    "No acute cardiopulmonary abnormality.",
    "No pneumothorax.",
    "No pleural effusion.",
    "Small left pleural effusion.",
    "Small right pleural effusion.",
    "Cardiomegaly.",
    "Heart size is normal.",
    "Patchy right lower lobe airspace opacity, consistent with pneumonia.",
    "Bibasilar atelectasis.",
    "Pulmonary edema.",
    "Hyperinflated lungs consistent with emphysema.",
    "Calcified granuloma.",
    "Cannot exclude a small pneumothorax.",
]

class FindingChip(QToolButton):
    """A finding suggested by the model; click cycles suggested -> confirmed -> rejected -> suggested.

    ``kind`` is "present" (the note states it) or "uncertain" (the note hedges it: "possible", "?", "cannot
    exclude"): an uncertain chip has a dashed amber border and a "?" after its label; confirming it records the
    finding as present, rejecting it as absent."""

    STYLES = {
        "suggested": "QToolButton { background: #2b3a4a; border: 1px solid #4a6a8a; border-radius: 9px; "
                     "padding: 2px 8px; }",
        "confirmed": "QToolButton { background: #2f5a36; border: 1px solid #5fae6a; border-radius: 9px; "
                     "padding: 2px 8px; }",
        "rejected": "QToolButton { background: #4a2b2b; border: 1px solid #a05050; border-radius: 9px; "
                    "padding: 2px 8px; text-decoration: line-through; }",
    }
    UNCERTAIN_STYLE = ("QToolButton { background: #3d3524; border: 1px dashed #d0a040; border-radius: 9px; "
                       "padding: 2px 8px; color: #f0d8a0; }")
    ORDER = ("suggested", "confirmed", "rejected")

    def __init__(self, label: str, probability: float, state: str = "suggested", kind: str = "present"):
        super().__init__()
        self.label = label
        self.probability = probability
        self.kind = kind
        self.state = state
        self.clicked.connect(self.cycle)
        self._refresh()

    def cycle(self) -> None:
        self.state = self.ORDER[(self.ORDER.index(self.state) + 1) % 3]
        self._refresh()

    def _refresh(self) -> None:
        mark = {"suggested": "", "confirmed": " \u2713", "rejected": " \u2717"}[self.state]
        hedge = " ?" if self.kind == "uncertain" else ""
        self.setText(f"{self.label.replace('_', ' ')}{hedge} {self.probability:.2f}{mark}")
        uncertain_suggested = self.kind == "uncertain" and self.state == "suggested"
        self.setStyleSheet(self.UNCERTAIN_STYLE if uncertain_suggested else self.STYLES[self.state])
        what = "uncertain: hedged in the note, P(hedged)" if self.kind == "uncertain" else "present, P"
        self.setToolTip(f"{self.label}: {what} = {self.probability:.3f} ({self.state}); click to confirm / reject")


def _state(f: dict) -> str:
    """The state of a stored finding (findings saved before three states have only ``positive``)."""
    return f.get("state") or ("present" if f.get("positive") else "absent")


class NotesPane(QWidget):
    """The notes dock. ``classified`` fires (with the result) each time findings are shown."""

    classified = Signal(object)

    def __init__(self, store: NoteStore, runner: JobRunner, parent: QWidget | None = None, debounce_ms: int = 400,
                 writer: StoreWriter | None = None):
        super().__init__(parent)
        self.store = store
        self.runner = runner
        # The window passes its store writer, so notes, annotations and sign-off are written in one order.
        self._own_writer = writer is None
        self.autosaver = StoreWriter(self) if writer is None else writer
        self._stored: NoteRecord | None = None  # the NoteRecord loaded for the current study
        self._typed: dict[str, str] = {}  # latest text typed per study this session (ahead of the store)
        self.study_uid: str | None = None
        self.job: Job | None = None
        self.generation = 0
        self.result = None
        self.chips: list[FindingChip] = []
        self.title = QLabel("No study open")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # DICOM text, never markup
        self.title.setWordWrap(True)
        self.title.setMinimumWidth(60)
        self.editor = QPlainTextEdit()
        self.editor.setPlaceholderText("Notes for this study (saved as you type)")
        self.editor.setEnabled(False)
        self.snippets = QComboBox()
        self.snippets.addItem("Insert phrase...")
        self.snippets.addItems(SNIPPETS)
        self.snippets.activated.connect(self._insert_snippet)
        self.snippets.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.snippets.setMinimumContentsLength(12)
        self.status = QLabel("")
        self.autosaver.failed.connect(lambda msg: self.status.setText("NOT SAVED YET (retrying): " + msg))
        self.autosaver.recovered.connect(lambda: self.status.setText("Saved"))
        self.chip_box = QWidget()
        self.chip_layout = QGridLayout(self.chip_box)
        self.chip_layout.setContentsMargins(0, 0, 0, 0)
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(self.classify_now)
        self.editor.textChanged.connect(self._text_changed)
        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.snippets)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(self.editor, 1)
        layout.addWidget(QLabel("Findings (click: confirm / reject; dashed ?: uncertain)"))
        layout.addWidget(self.chip_box)
        layout.addWidget(self.status)

    # ------------------------------------------------------------------------------------------------------
    def set_study(self, study_uid: str | None, title: str = "") -> None:
        """Show the note of ``study_uid``. Never waits for the writer: text typed this session that may still be
        queued is shown from memory."""
        if study_uid == self.study_uid:
            if title:
                self.title.setText(title)
            return
        # The previous study's classification must never be saved into this one.
        self.timer.stop()
        if self.job is not None:
            self.job.cancel()
            self.job = None
        self.generation += 1
        self.result = None
        self.study_uid = study_uid
        self.title.setText(title or (study_uid or "No study open"))
        self.editor.setEnabled(study_uid is not None)
        record = self.store.load(study_uid) if study_uid else None
        self._stored = record
        text = self._typed.get(study_uid, record.text if record else "") if study_uid else ""
        self.editor.blockSignals(True)
        self.editor.setPlainText(text)
        self.editor.blockSignals(False)
        self._show_chips(record.findings if record else [], record.decisions if record else {})
        self.status.setText(f"Loaded note ({record.model} {record.model_version})" if record and record.model
                            else "")
        if text.strip() and (record is None or not record.findings or study_uid in self._typed):
            # typed this session (its classification may have been dropped by a switch) or never classified
            self.timer.start()

    def _text_changed(self) -> None:
        if self.study_uid is None:
            return
        text = self.editor.toPlainText()
        self._typed[self.study_uid] = text
        self.autosaver.submit(self._save_text, self.study_uid, text, label=f"case:{self.study_uid}")
        self.generation += 1
        self.timer.start()

    def _insert_snippet(self, index: int) -> None:
        if index <= 0:
            return
        cursor = self.editor.textCursor()
        text = self.editor.toPlainText()
        sep = "" if not text or text.endswith((" ", "\n")) else " "
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(sep + SNIPPETS[index - 1])
        self.snippets.setCurrentIndex(0)

    def classify_now(self) -> None:
        """Classify the current text in a worker (a running request is cancelled: the latest text wins)."""
        if self.study_uid is None:
            return
        text, uid, gen = self.editor.toPlainText(), self.study_uid, self.generation

        def work(state):  # noqa: ANN001, ANN202
            from medviewer.jobs.process import MODEL_PROCESS
            from medviewer.notes.service import classify_texts

            return MODEL_PROCESS.call(state, classify_texts, [text])[0]

        from medviewer.session import Context

        self.job = self.runner.submit(
            "notes", work, context=Context.of_case(uid),
            on_result=lambda res: self._on_result(uid, gen, res),
            on_failed=lambda msg: self.status.setText("Classification failed: " + msg.splitlines()[0]))
        self.status.setText("Classifying...")

    def _on_result(self, uid: str, gen: int, result) -> None:  # noqa: ANN001 - NoteResult
        if uid != self.study_uid or gen != self.generation:
            return  # superseded by newer text or another study
        self.result = result
        previous = {c.label: c.state for c in self.chips}
        findings = result.to_dict()["findings"]
        self._show_chips(findings, {k: v for k, v in previous.items() if v != "suggested"})
        self._save_findings(reader_action=False)
        if not getattr(result, "classified", True):
            self.status.setText(f"Not classified: {result.reason}")
        else:
            hedged = len(getattr(result, "uncertain", []))
            self.status.setText(f"{result.model} {result.version}: {len(result.positives)} finding(s)"
                                + (f", {hedged} uncertain" if hedged else ""))
        self.classified.emit(result)

    def _show_chips(self, findings: list[dict], decisions: dict[str, str]) -> None:
        for chip in self.chips:
            chip.setParent(None)
            chip.deleteLater()
        self.chips = []
        shown = [f for f in findings if _state(f) in ("present", "uncertain") or f["label"] in decisions]
        for n, f in enumerate(sorted(shown, key=lambda f: (_state(f) == "uncertain", LABELS.index(f["label"])))):
            kind = "uncertain" if _state(f) == "uncertain" else "present"
            p = float(f.get("uncertain_probability", 0.0) if kind == "uncertain" else f["probability"])
            chip = FindingChip(f["label"], p, decisions.get(f["label"], "suggested"), kind)
            chip.clicked.connect(lambda _=False: self._save_findings(reader_action=True))
            self.chip_layout.addWidget(chip, n // 3, n % 3)
            self.chips.append(chip)

    def decisions(self) -> dict[str, str]:
        """{label: "confirmed" | "rejected"} for chips the radiologist acted on."""
        return {c.label: c.state for c in self.chips if c.state != "suggested"}

    def _save_text(self, study_uid: str, text: str) -> None:
        """Writer thread: save one keystroke's text, one version per burst of typing (see CaseStore.save_text)."""
        self.store.save_text(study_uid, text, coalesce_s=5.0)

    def _save_findings(self, reader_action: bool) -> None:
        """Store the findings shown (this session's classification, or the stored one the chips came from) with
        the reader's decisions. Only the reader's confirm/reject counts as work on the case."""
        if self.study_uid is None:
            return
        if self.result is not None:
            findings, model, version = self.result.to_dict()["findings"], self.result.model, self.result.version
        elif self._stored is not None and self._stored.model:
            findings, model, version = self._stored.findings, self._stored.model, self._stored.model_version
        else:
            return
        self.autosaver.submit(self.store.save_findings, self.study_uid, findings, self.decisions(), model, version,
                              "", None, reader_action, label=f"case:{self.study_uid}")

    def flush(self) -> None:
        """Block until everything typed so far is written (worker threads, tests, close)."""
        self.autosaver.flush()

    def shutdown(self) -> None:
        """Stop classifying; write everything typed (the window closes a shared writer itself)."""
        self.timer.stop()
        if self.job is not None:
            self.job.cancel()
        if self._own_writer:
            self.autosaver.close()
        else:
            self.autosaver.flush(timeout=5.0)
