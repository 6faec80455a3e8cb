"""Case dock: the open case's header and status, the radiologist's call and sign-off, and its annotations.

The panel only shows data and emits requests; the main window writes them to the case store (on the store
writer thread) and calls :meth:`CasePanel.set_case` again with what the store then holds.
"""

from __future__ import annotations

import datetime as _dt
import html

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

STATUS_STYLE = {
    "new": "background: #33404d; color: #d0d8e0;",
    "in progress": "background: #5a4a1e; color: #ffe7a0;",
    "reported": "background: #24502c; color: #b8f0c0;",
}


def _date(d: str) -> str:
    """DICOM DA -> YYYY-MM-DD, as everywhere (:func:`medviewer.io.display.format_da`)."""
    from medviewer.io.display import format_da

    return format_da(d)


def _time(t: float | None) -> str:
    return _dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t else ""


class CasePanel(QWidget):
    """Signals (each names the case it was made on): ``score_submitted(study uid, label, positive, confidence or 0,
    comment, reader)``, ``sign_off_requested(study uid, reader)``,
    ``reopen_requested()``, ``annotation_activated(uid)``, ``export_requested()``, ``history_requested()``."""

    score_submitted = Signal(str, str, bool, int, str, str)
    sign_off_requested = Signal(str, str)  # (study uid, reader)
    reopen_requested = Signal()
    annotation_activated = Signal(str)
    export_requested = Signal()
    history_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = QSettings("medviewer", "medviewer")
        self.study_uid: str | None = None
        self.header = QLabel("No case open")
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status = QLabel("")
        self.status.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.header.setTextFormat(Qt.TextFormat.RichText)
        self.ai_line = QLabel("")
        self.ai_line.setWordWrap(True)
        self.ai_line.setTextFormat(Qt.TextFormat.PlainText)

        call = QGroupBox("Radiologist's call")
        self.label_combo = QComboBox()
        self.label_combo.setEditable(True)
        self.positive = QRadioButton("Positive")
        self.negative = QRadioButton("Negative")
        self.call_group = QButtonGroup(self)
        self.call_group.addButton(self.positive)
        self.call_group.addButton(self.negative)
        self.confidence = QComboBox()
        self.confidence.addItems(["-", "1 unsure", "2", "3", "4", "5 certain"])
        self.comment = QLineEdit()
        self.comment.setPlaceholderText("comment (optional)")
        self.reader = QLineEdit(str(self.settings.value("reader", "") or ""))
        self.reader.setPlaceholderText("your name (for sign-off)")
        self.reader.editingFinished.connect(lambda: self.settings.setValue("reader", self.reader.text().strip()))
        self.record = QPushButton("Record call")
        self.record.clicked.connect(self._submit)
        self.positive.toggled.connect(self._update_enabled)
        self.negative.toggled.connect(self._update_enabled)
        calls = QHBoxLayout()
        calls.addWidget(self.positive)
        calls.addWidget(self.negative)
        form = QFormLayout(call)
        form.addRow("Finding", self.label_combo)
        form.addRow("Call", calls)
        form.addRow("Confidence", self.confidence)
        form.addRow("Comment", self.comment)
        form.addRow("Reader", self.reader)
        form.addRow(self.record)
        self.calls_line = QLabel("")
        self.calls_line.setWordWrap(True)
        self.calls_line.setTextFormat(Qt.TextFormat.PlainText)
        form.addRow(self.calls_line)

        self.sign_off = QPushButton("Sign off (reported)")
        self.sign_off.clicked.connect(self._sign_off)
        self.reopen = QPushButton("Reopen")
        self.reopen.clicked.connect(self.reopen_requested.emit)
        self.export = QPushButton("Export report...")
        self.export.clicked.connect(self.export_requested.emit)
        self.history = QPushButton("History...")
        self.history.clicked.connect(self.history_requested.emit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sign_off, 1)
        buttons.addWidget(self.reopen)
        more = QHBoxLayout()
        more.addWidget(self.export, 1)
        more.addWidget(self.history, 1)

        self.annotation_list = QListWidget()
        self.annotation_list.itemActivated.connect(
            lambda item: self.annotation_activated.emit(item.data(Qt.ItemDataRole.UserRole)))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        top = QHBoxLayout()
        top.addWidget(self.header, 1)
        top.addWidget(self.status)
        layout.addLayout(top)
        layout.addWidget(self.ai_line)
        layout.addWidget(call)
        layout.addLayout(buttons)
        layout.addLayout(more)
        layout.addWidget(QLabel("Annotations (double-click to show)"))
        layout.addWidget(self.annotation_list, 1)
        self.set_case(None)

    # ------------------------------------------------------------------------------------------------------
    def set_labels(self, labels: list[str], default: str) -> None:
        """The findings offered for a call (the image model's labels), ``default`` selected."""
        current = self.label_combo.currentText()
        self.label_combo.clear()
        self.label_combo.addItems(labels)
        self.label_combo.setCurrentText(current or default)

    def set_case(self, case=None, row=None, scores=(), annotations=()) -> None:  # noqa: ANN001
        """Show ``case`` (a :class:`medviewer.store.Case`, or None), its worklist ``row`` (AI and note summary: the
        note findings present, and on their own "Uncertain:" line those hedged in the note), radiologist ``scores``
        (oldest first) and ``annotations`` as (uid, text) pairs. Another case than the one shown empties the call
        form (a call half-entered for one patient is never recorded on another)."""
        uid = case.study_instance_uid if case is not None else None
        if uid != self.study_uid:
            self.reset_call()
        self.study_uid = uid
        enabled = case is not None
        for w in (self.record, self.sign_off, self.export, self.history, self.label_combo, self.positive,
                  self.negative, self.confidence, self.comment):
            w.setEnabled(enabled)
        self.annotation_list.clear()
        if case is None:
            self.header.setText("No case open")
            self.status.setText("")
            self.status.setStyleSheet("")
            self.ai_line.setText("")
            self.calls_line.setText("")
            self.reopen.setVisible(False)
            return
        # Header values are DICOM text: escaped, never interpreted as markup.
        from medviewer.ui.worklist import format_patient_name

        name = html.escape(format_patient_name(case.patient_name))
        lines = [f"<b>{name}</b>  {html.escape(case.patient_id)}",
                 html.escape(" - ".join(x for x in (_date(case.study_date), case.modalities.replace("\\", "/"),
                                                    case.study_description) if x))]
        if case.status == "reported":
            lines.append(f"Signed off by {html.escape(case.reported_by or '?')} at {_time(case.reported_at)}")
        self.header.setText("<br>".join(lines))
        self.status.setText(f" {case.status} ")
        self.status.setStyleSheet(STATUS_STYLE.get(case.status, "") + " border-radius: 6px; padding: 2px;")
        reported = case.status == "reported"
        self.sign_off.setEnabled(not reported)
        self.reopen.setVisible(reported)
        ai = "AI: not run"
        if row is not None and row.ai_score is not None:
            ai = (f"AI ({row.ai_model}): {row.ai_score:.2f} "
                  f"{'positive' if row.ai_positive else 'negative'} - research use only, not for diagnosis")
        present = list(row.note_findings) if row is not None else []
        uncertain = list(row.note_uncertain) if row is not None else []
        if present or uncertain:
            ai += "\nNote findings: " + (", ".join(f.replace("_", " ") for f in present) or "none present")
        if uncertain:  # hedged in the note ("possible", "cannot exclude"): listed apart, never as present
            ai += "\nUncertain: " + ", ".join(f.replace("_", " ") for f in uncertain)
        self.ai_line.setText(ai)
        if scores:
            last = scores[-1]
            conf = f", confidence {last.confidence}/5" if last.confidence else ""
            over = " - overrides the AI" if last.override else ""
            self.calls_line.setText(f"Current: {last.label} {'positive' if last.positive else 'negative'}{conf}"
                                    f" ({last.reader or 'unsigned'}, {_time(last.created_at)}){over}"
                                    f"; {len(scores)} call(s) recorded")
        else:
            self.calls_line.setText("No call recorded")
        for uid, text in annotations:
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, uid)
            self.annotation_list.addItem(item)
        self._update_enabled()

    def reset_call(self) -> None:
        """Empty the call form: no Positive/Negative, no confidence, no comment (Record disabled)."""
        self.call_group.setExclusive(False)
        self.positive.setChecked(False)
        self.negative.setChecked(False)
        self.call_group.setExclusive(True)
        self.label_combo.setCurrentText("")  # the finding typed for the previous case too (set_labels refills it)
        self.confidence.setCurrentIndex(0)
        self.comment.clear()
        self._update_enabled()

    def _update_enabled(self) -> None:
        self.record.setEnabled(self.study_uid is not None and (self.positive.isChecked() or
                                                               self.negative.isChecked()))

    def _submit(self) -> None:
        if self.study_uid is None or not (self.positive.isChecked() or self.negative.isChecked()):
            return
        reader = self.reader.text().strip()
        self.settings.setValue("reader", reader)
        conf = self.confidence.currentIndex()  # 0 = not given
        self.score_submitted.emit(self.study_uid, self.label_combo.currentText().strip(), self.positive.isChecked(),
                                  conf, self.comment.text().strip(), reader)
        self.comment.clear()

    def _sign_off(self) -> None:
        reader = self.reader.text().strip()
        if not reader:
            self.reader.setFocus()
            self.calls_line.setText("Enter your name to sign off")
            return
        self.settings.setValue("reader", reader)
        if self.study_uid is not None:
            self.sign_off_requested.emit(self.study_uid, reader)
