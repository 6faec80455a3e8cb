"""Model cards: the JSON beside each model's weights (``models/<name>/card.json``).

A card says what the model is, what it expects and how good it is, following the spirit of Mitchell et al.,
"Model Cards for Model Reporting" (FAT* 2019). :func:`load_card` validates the fields the app relies on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.modelfiles import sha256_file

REQUIRED = ("name", "version", "task", "labels", "architecture", "input", "preprocessing", "attribution_layer",
            "threshold", "training_data", "metrics", "weights", "weights_sha256", "intended_use")


__all__ = ["ModelCard", "ModelCardError", "InputSpec", "load_card", "find_cards", "sha256_file"]


class ModelCardError(ValueError):
    """A card is missing, malformed, or does not match its weights."""


@dataclass(frozen=True)
class InputSpec:
    """What the network takes: ``channels`` x ``height`` x ``width`` floats, normalised as (x - mean) / std after
    the image was mapped to [0, 1]."""

    channels: int
    height: int
    width: int
    mean: float = 0.0
    std: float = 1.0


@dataclass(frozen=True)
class ModelCard:
    """A parsed ``card.json``. ``path`` is the card's own file; ``weights_path`` the weights beside it."""

    name: str
    version: str
    task: str
    labels: list[str]
    architecture: dict[str, Any]
    input: InputSpec
    preprocessing: dict[str, Any]
    attribution_layer: str
    threshold: float
    training_data: dict[str, Any]
    metrics: dict[str, Any]
    weights_sha256: str
    intended_use: str
    path: Path
    weights_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        """One line: name, version, test AUC/accuracy when recorded."""
        test = self.metrics.get("test", self.metrics)
        parts = [f"{self.name} {self.version}"]
        for key in ("auc", "accuracy"):
            if key in test:
                parts.append(f"{key} {float(test[key]):.3f}")
        return ", ".join(parts)


def load_card(path: str | Path, *, verify_sha: bool = True) -> ModelCard:
    """Read and validate a card (a ``card.json`` path or the model folder holding one).

    Raises
    ------
    ModelCardError: file missing, invalid JSON, a required field missing, or (``verify_sha``) the weights' SHA-256
        differs from ``weights_sha256``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "card.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelCardError(f"no model card at {path}") from exc
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{path} is not valid JSON: {exc}") from exc
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ModelCardError(f"{path}: missing fields {missing}")
    spec = raw["input"]
    try:
        input_spec = InputSpec(int(spec["channels"]), int(spec["height"]), int(spec["width"]),
                               float(spec.get("mean", 0.0)), float(spec.get("std", 1.0)))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCardError(f"{path}: bad input spec {spec!r}") from exc
    weights_path = path.parent / str(raw["weights"])
    if verify_sha:
        if not weights_path.is_file():
            raise ModelCardError(f"{path}: weights file {weights_path.name} not found")
        actual = sha256_file(weights_path)
        if actual != raw["weights_sha256"]:
            raise ModelCardError(f"{path}: weights SHA-256 {actual[:12]}... differs from the card's "
                                 f"{str(raw['weights_sha256'])[:12]}...")
    known = set(REQUIRED)
    return ModelCard(
        name=str(raw["name"]), version=str(raw["version"]), task=str(raw["task"]), labels=list(raw["labels"]),
        architecture=dict(raw["architecture"]), input=input_spec, preprocessing=dict(raw["preprocessing"]),
        attribution_layer=str(raw["attribution_layer"]), threshold=float(raw["threshold"]),
        training_data=dict(raw["training_data"]), metrics=dict(raw["metrics"]),
        weights_sha256=str(raw["weights_sha256"]), intended_use=str(raw["intended_use"]), path=path,
        weights_path=weights_path, extra={k: v for k, v in raw.items() if k not in known},
    )


def find_cards(models_dir: str | Path) -> list[ModelCard]:
    """Every valid card under ``models_dir`` (one sub-folder per model), sorted by name; invalid ones skipped."""
    out = []
    for card_path in sorted(Path(models_dir).glob("*/card.json")):
        try:
            out.append(load_card(card_path, verify_sha=False))
        except ModelCardError:
            continue
    return out
