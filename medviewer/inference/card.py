"""Model cards: the JSON beside each model's weights (``models/<name>/card.json``).

A card says what the model is, what it expects and how good it is, following the spirit of Mitchell et al.,
"Model Cards for Model Reporting" (FAT* 2019). :func:`load_card` validates the fields the app relies on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medviewer.modelfiles import sha256_file

REQUIRED = ("name", "version", "task", "labels", "architecture", "input", "preprocessing", "attribution_layer",
            "threshold", "training_data", "metrics", "weights", "weights_sha256", "intended_use")


#: Sanity limits: a card is small JSON; a bundled model's weights and input are bounded (a card cannot make the
#: app read a device, a file outside the model folder, or allocate an absurd input).
MAX_CARD_BYTES = 1 << 20
MAX_WEIGHTS_BYTES = 2 << 30
MAX_INPUT_SIDE = 4096

__all__ = ["ModelCard", "ModelCardError", "InputSpec", "load_card", "find_cards", "sha256_file"]


class ModelCardError(ValueError):
    """A card is missing, malformed, or does not match its weights."""


@dataclass(frozen=True)
class InputSpec:
    """What the network takes: ``channels`` x ``height`` x ``width`` floats, normalised as (x - mean) / std after
    the image was mapped to [0, 1]; ``fit`` is how an image is brought to that size ("pad": aspect kept, zero
    padding; "squash": the whole image resized, aspect not kept)."""

    channels: int
    height: int
    width: int
    mean: float = 0.0
    std: float = 1.0
    fit: str = "pad"


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

    @property
    def tta_views(self) -> list[str]:
        """The test-time augmentation views of the card's ``inference`` block (:mod:`medviewer.inference.tta`),
        ``["identity"]`` when it has none."""
        inference = self.extra.get("inference") or {}
        return list(inference.get("tta") or ["identity"])

    @property
    def temperature(self) -> float | None:
        """The calibration temperature the card records (the network divides its logits by it), or None."""
        t = self.extra.get("temperature")
        return None if t is None else float(t)

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
    ModelCardError: file missing, not a regular file or too large, invalid JSON, a required field missing, a
        threshold that is not a finite probability, an input spec out of range, an OOD threshold or a temperature
        that is not a positive number, an ``inference`` block with unknown test-time augmentation views, weights
        outside the model's folder (or not a regular file, or over :data:`MAX_WEIGHTS_BYTES`), or (``verify_sha``)
        the weights' SHA-256 differs from ``weights_sha256``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "card.json"
    if path.exists() and not path.is_file():
        raise ModelCardError(f"{path} is not a regular file")
    if path.is_file() and path.stat().st_size > MAX_CARD_BYTES:
        raise ModelCardError(f"{path} is {path.stat().st_size} bytes, more than a card can be ({MAX_CARD_BYTES})")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelCardError(f"no model card at {path}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelCardError(f"{path}: a card is a JSON object")
    missing = [k for k in REQUIRED if k not in raw]
    if missing:
        raise ModelCardError(f"{path}: missing fields {missing}")
    try:
        threshold = float(raw["threshold"])
    except (TypeError, ValueError) as exc:
        raise ModelCardError(f"{path}: threshold {raw['threshold']!r} is not a number") from exc
    if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
        raise ModelCardError(f"{path}: threshold {threshold} is not a probability in [0, 1]")
    spec = raw["input"]
    try:
        input_spec = InputSpec(int(spec["channels"]), int(spec["height"]), int(spec["width"]),
                               float(spec.get("mean", 0.0)), float(spec.get("std", 1.0)),
                               str(spec.get("fit", "pad")))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelCardError(f"{path}: bad input spec {spec!r}") from exc
    if not (1 <= input_spec.channels <= 4 and 1 <= input_spec.height <= MAX_INPUT_SIDE
            and 1 <= input_spec.width <= MAX_INPUT_SIDE) or not (math.isfinite(input_spec.mean)
                                                                  and math.isfinite(input_spec.std)
                                                                  and input_spec.std > 0):
        raise ModelCardError(f"{path}: input spec {spec!r} is out of range (1-4 channels, sides 1-"
                             f"{MAX_INPUT_SIDE}, finite mean, positive std)")
    if input_spec.fit not in ("pad", "squash"):
        raise ModelCardError(f"{path}: input fit {input_spec.fit!r} is neither 'pad' nor 'squash'")
    ood = raw.get("ood")
    if ood is not None:
        try:
            if not math.isfinite(float(ood["threshold"])) or float(ood["threshold"]) <= 0:
                raise ValueError
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelCardError(f"{path}: ood threshold must be a positive finite number") from exc
    if raw.get("temperature") is not None:
        try:
            t = float(raw["temperature"])
        except (TypeError, ValueError) as exc:
            raise ModelCardError(f"{path}: temperature {raw['temperature']!r} is not a number") from exc
        if not (math.isfinite(t) and t > 0):
            raise ModelCardError(f"{path}: temperature {t} is not a positive finite number")
    inference = raw.get("inference")
    if inference is not None:
        from medviewer.inference.tta import check_views

        if not isinstance(inference, dict):
            raise ModelCardError(f"{path}: inference must be a JSON object")
        try:
            views = check_views(inference.get("tta") or ["identity"])
        except ValueError as exc:
            raise ModelCardError(f"{path}: {exc}") from exc
        if any(v.startswith("gamma") for v in views) and (input_spec.mean, input_spec.std) != (0.0, 1.0):
            raise ModelCardError(f"{path}: gamma TTA views need an input in [0, 1] (mean 0, std 1)")
    weights_path = path.parent / str(raw["weights"])
    folder = path.parent.resolve()
    if weights_path.resolve().parent != folder or Path(str(raw["weights"])).is_absolute():
        raise ModelCardError(f"{path}: weights {raw['weights']!r} must be a file in the model's own folder")
    if weights_path.exists() and not weights_path.is_file():
        raise ModelCardError(f"{path}: weights {weights_path.name} is not a regular file")
    if weights_path.is_file() and weights_path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ModelCardError(f"{path}: weights {weights_path.name} is {weights_path.stat().st_size} bytes, over "
                             f"the {MAX_WEIGHTS_BYTES} a bundled model may have")
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
        attribution_layer=str(raw["attribution_layer"]), threshold=threshold,
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
