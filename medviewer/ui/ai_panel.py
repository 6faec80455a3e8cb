"""Image AI in the GUI: the score panel (dock), the heat-map overlay controls, and the scoring worker glue.

The model is loaded and run in a worker (:mod:`medviewer.ui.workers`); torch is imported there, on first use, never
on the start-up path. Results are cached per (SOPInstanceUID, frame, weights SHA-256, method, class) so re-showing a
slice costs nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QSlider,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.config import models_dir
from medviewer.imaging.colormap import heat_lut  # noqa: F401 - re-exported

log = logging.getLogger(__name__)

METHOD_NAMES = {"gradcam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "occlusion": "Occlusion"}

@dataclass(frozen=True)
class ScoreRequest:
    """Everything a scoring worker needs, captured on the GUI thread (the arrays are read-only slices)."""

    model: str
    items: tuple  # ((slice index, ModelFrame), ...) from medviewer.inference.frames.frame_from_volume
    method: str
    target: str | None
    force: bool = False  # "score anyway": a call even outside the model's intended use


def run_scoring(request: ScoreRequest, state) -> list:  # noqa: ANN001 - TaskState; returns ScoreResult list
    """Worker thread: score the items in the model process (torch never loads in the GUI process), a few slices
    per call so progress and cancel stay responsive; returns [(slice index, ScoreResult), ...]."""
    from medviewer.inference.service import score_items
    from medviewer.jobs.process import MODEL_PROCESS

    out = []
    chunk = 8
    for start in range(0, len(request.items), chunk):
        state.check()
        part = tuple(request.items[start:start + chunk])
        out.extend(MODEL_PROCESS.call(state, score_items, request.model, part, request.method, request.target,
                                      request.force))
        state.progress(len(out), len(request.items), part[-1][1].sop_instance_uid)
    return out


def available_model_names() -> list[str]:
    """Image models under ``models/``: folders whose card has an input spec and an attribution layer (read on
    the GUI thread: JSON only, no torch). The default model comes first."""
    from medviewer.inference.scorer import DEFAULT_MODEL

    names = []
    for card_path in sorted(models_dir().glob("*/card.json")):
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            log.warning("model card %s not offered: %s", card_path, exc)
            continue
        if isinstance(card, dict) and "input" in card and "attribution_layer" in card:
            names.append(card_path.parent.name)
    return sorted(names, key=lambda n: (n != DEFAULT_MODEL, n))


class ModelCardDialog(QDialog):
    """The model card, as a summary and as the full JSON."""

    def __init__(self, name: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Model card - {name}")
        self.resize(640, 560)
        path = models_dir() / name / "card.json"
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            card = {"error": f"cannot read {path}: {exc}"}
        test = card.get("metrics", {}).get("test", {})
        lines = [
            f"{card.get('name', name)} {card.get('version', '')}",
            card.get("task", ""),
            f"Intended use: {card.get('intended_use', '')}",
            f"Training data: {card.get('training_data', {}).get('name', '')} "
            f"({card.get('training_data', {}).get('license', '')})",
            "Test split: " + ", ".join(f"{k} {test[k]:.3f}" for k in
                                       ("auc", "accuracy", "sensitivity", "specificity", "ece") if k in test),
            f"Threshold {card.get('threshold', float('nan')):.3f} ({card.get('threshold_rule', '')})",
            f"Weights SHA-256 {card.get('weights_sha256', '')}",
        ]
        scope = card.get("scope") or {}
        if scope or card.get("ood"):
            gate = "Intended-use gate: " + ", ".join(
                [f"modality {'/'.join(scope.get('modalities', []))}" if scope.get("modalities") else "",
                 f"view {'/'.join(scope.get('view_positions', []))}" if scope.get("view_positions") else "",
                 f"image OOD score <= {card['ood']['threshold']:.1f}" if card.get("ood") else ""]).strip(", ")
            lines.append(gate)
        pop = card.get("population") or {}
        if pop.get("age_years"):
            lines.append(f"Training population: age {pop['age_years'][0]}-{pop['age_years'][1]} years, "
                         f"{pop.get('site', '')} (others get a warning)")
        summary = QLabel("\n".join(lines))
        summary.setWordWrap(True)
        summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        text = QPlainTextEdit(json.dumps(card, indent=2))
        text.setReadOnly(True)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class AIPanel(QWidget):
    """Score panel: model, Run AI, per-label probabilities, threshold, heat-map controls.

    Signals: ``run_requested(series: bool)``; ``overlay_changed()`` when visibility/opacity/class/method change.
    """

    run_requested = Signal(bool)
    force_requested = Signal()  # "score anyway" on an image outside the model's intended use
    cancel_requested = Signal()
    overlay_changed = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.settings = QSettings("medviewer", "medviewer")
        self.model_combo = QComboBox()
        self.model_combo.addItems(available_model_names())
        self.card_button = QPushButton("Model card...")
        self.card_button.clicked.connect(self._show_card)
        self.run_button = QPushButton("Run AI (R)")
        self.run_button.clicked.connect(lambda: self.run_requested.emit(False))
        self.run_series_button = QPushButton("Run on series")
        self.run_series_button.clicked.connect(lambda: self.run_requested.emit(True))
        self.progress = QProgressBar()
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(["Label", "Probability"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setMaximumHeight(110)
        self.verdict = QLabel("No result yet")
        self.verdict.setWordWrap(True)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet("color: #e0a040;")
        self.warning.setVisible(False)
        self.force_button = QPushButton("Score anyway")
        self.force_button.setToolTip("Give a call although the image is outside the model's intended use; the "
                                     "result is recorded as scored anyway")
        self.force_button.setVisible(False)
        self.force_button.clicked.connect(self.force_requested)
        self.model_label = QLabel("")
        self.model_label.setWordWrap(True)
        self.show_overlay = QCheckBox("Show heat map (H)")
        self.show_overlay.setChecked(True)
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.setValue(45)
        self.class_combo = QComboBox()
        self.method_combo = QComboBox()
        for key, name in METHOD_NAMES.items():
            self.method_combo.addItem(name, key)
        self.auto_run = QCheckBox("Run automatically when a radiograph opens")
        self.auto_run.setChecked(bool(self.settings.value("ai/auto_run", False, type=bool)))
        self.auto_run.toggled.connect(lambda on: self.settings.setValue("ai/auto_run", bool(on)))
        for w in (self.show_overlay,):
            w.toggled.connect(self.overlay_changed)
        self.opacity.valueChanged.connect(self.overlay_changed)
        self.class_combo.currentIndexChanged.connect(self.overlay_changed)
        self.method_combo.currentIndexChanged.connect(self.overlay_changed)

        top = QHBoxLayout()
        top.addWidget(self.model_combo, 1)
        top.addWidget(self.card_button)
        runs = QHBoxLayout()
        runs.addWidget(self.run_button)
        runs.addWidget(self.run_series_button)
        form = QFormLayout()
        form.addRow("Opacity", self.opacity)
        form.addRow("Class", self.class_combo)
        form.addRow("Method", self.method_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addLayout(runs)
        layout.addWidget(self.progress)
        layout.addWidget(self.cancel_button)
        layout.addWidget(self.table)
        layout.addWidget(self.verdict)
        layout.addWidget(self.warning)
        layout.addWidget(self.force_button)
        layout.addWidget(self.model_label)
        layout.addWidget(self.show_overlay)
        layout.addLayout(form)
        layout.addWidget(self.auto_run)
        note = QLabel("Research use only - not for diagnosis.")
        note.setStyleSheet("color: #d0a040;")
        layout.addWidget(note)
        layout.addStretch(1)
        if self.model_combo.count() == 0:
            self.run_button.setEnabled(False)
            self.run_series_button.setEnabled(False)
            self.verdict.setText(f"No model found in {models_dir()}")

    @property
    def model_name(self) -> str:
        return self.model_combo.currentText()

    @property
    def method(self) -> str:
        return str(self.method_combo.currentData())

    @property
    def target(self) -> str | None:
        return self.class_combo.currentText() or None

    def set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.run_button.setEnabled(not busy and self.model_combo.count() > 0)
        if busy:
            self.progress.setRange(0, 0)

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def show_result(self, result) -> None:  # noqa: ANN001 - ScoreResult
        """Fill the table and verdict from a ScoreResult (out of scope: no probability, the reason, and "Score
        anyway")."""
        notes = ([result.scope_text()] if result.scope_text() else []) + list(result.warnings)
        self.warning.setText("\n".join(notes))
        self.warning.setVisible(bool(notes))
        if not result.has_call:
            self.table.setRowCount(0)
            self.verdict.setText("No call: outside the model's intended use")
            self.warning.setText(result.scope_reason + ("\n" + "\n".join(result.warnings) if result.warnings else ""))
            self.force_button.setVisible(True)
            self.model_label.setText(f"{result.model} {result.version}  (weights {result.weights_sha256[:12]})")
            return
        self.force_button.setVisible(False)
        labels = list(result.probabilities)
        if [self.class_combo.itemText(i) for i in range(self.class_combo.count())] != labels:
            self.class_combo.blockSignals(True)
            self.class_combo.clear()
            self.class_combo.addItems(labels)
            self.class_combo.setCurrentText(result.heatmap_label or result.positive_label)
            self.class_combo.blockSignals(False)
        self.table.setRowCount(len(labels))
        for r, (label, p) in enumerate(result.probabilities.items()):
            self.table.setItem(r, 0, QTableWidgetItem(label))
            self.table.setItem(r, 1, QTableWidgetItem(f"{p:.3f}"))
        p_pos = result.probabilities[result.positive_label]
        call = "above" if result.positive else "below"
        self.verdict.setText(f"P({result.positive_label}) = {p_pos:.3f}, {call} threshold {result.threshold:.3f}")
        self.model_label.setText(f"{result.model} {result.version}  (weights {result.weights_sha256[:12]})\n"
                                 f"Heat map: {METHOD_NAMES.get(result.heatmap_method, result.heatmap_method)} "
                                 f"for '{result.heatmap_label}'")

    def clear_result(self, message: str = "No result yet") -> None:
        self.table.setRowCount(0)
        self.verdict.setText(message)
        self.model_label.setText("")
        self.warning.setText("")
        self.warning.setVisible(False)
        self.force_button.setVisible(False)

    def _show_card(self) -> None:
        if self.model_name:
            ModelCardDialog(self.model_name, self).exec()
