"""Scoring images with a bundled model: load, preprocess DICOM, predict in batches, explain.

:class:`ImageModel` is Qt-free; the GUI runs it in a worker, ``medviewer score`` runs it in a terminal. torch is
imported on first use, never at import time of this module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer.config import models_dir
from medviewer.inference.card import ModelCard, find_cards, load_card
from medviewer.inference.preprocess import FitTransform, Prepared, prepare

DEFAULT_MODEL = "pneumonia-cnn"


def choose_device(preference: str | None = None) -> str:
    """``"cuda"`` -> ``"mps"`` -> ``"cpu"``, or the user's choice (``preference`` or ``MEDVIEWER_DEVICE``).

    Raises
    ------
    ValueError: the requested device is not available.
    """
    import torch

    want = (preference or os.environ.get("MEDVIEWER_DEVICE") or "auto").lower()
    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if want == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if has_mps else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("CUDA requested but torch sees no CUDA device")
    if want == "mps" and not has_mps:
        raise ValueError("MPS requested but it is not available")
    if want not in ("cpu", "mps") and not want.startswith("cuda"):
        raise ValueError(f"unknown device {want!r}; use auto, cpu, cuda[:N] or mps")
    return want


@dataclass
class ScoreResult:
    """One image's scores. ``probabilities`` maps every label to P(label); ``positive`` is P(positive label) >=
    threshold. ``heatmap`` (rows, cols) float32 in [0, 1] on the original pixel grid when requested."""

    sop_instance_uid: str
    model: str
    version: str
    weights_sha256: str
    probabilities: dict[str, float]
    threshold: float
    positive_label: str
    positive: bool
    frame: int = 0
    path: str = ""
    heatmap: np.ndarray | None = field(default=None, repr=False)
    heatmap_label: str = ""
    heatmap_method: str = ""

    def to_dict(self) -> dict:
        """JSON form (no heat map): SOPInstanceUID, model, version, weights sha and per-label probability."""
        return {
            "SOPInstanceUID": self.sop_instance_uid,
            "sop_instance_uid": self.sop_instance_uid,
            "path": self.path,
            "frame": self.frame,
            "model": self.model,
            "version": self.version,
            "weights_sha256": self.weights_sha256,
            "threshold": self.threshold,
            "positive_label": self.positive_label,
            "positive": self.positive,
            "labels": [{"label": k, "probability": float(v)} for k, v in self.probabilities.items()],
            "probability": {k: float(v) for k, v in self.probabilities.items()},
        }


def available_models(directory: str | Path | None = None) -> list[ModelCard]:
    """Cards of the bundled models (``models/*/card.json``)."""
    return find_cards(directory or models_dir())


class ImageModel:
    """A loaded image model: its card, network and device.

    Raises (from :meth:`load`): ModelCardError (card missing/invalid, weights SHA mismatch), UnsafeWeightsError
    (pickled weights), ValueError (unknown architecture or device).
    """

    def __init__(self, card: ModelCard, network, device: str):  # noqa: ANN001 - torch module
        self.card = card
        self.network = network
        self.device = device

    @classmethod
    def load(cls, name_or_path: str | Path = DEFAULT_MODEL, *, device: str | None = None,
             directory: str | Path | None = None) -> "ImageModel":
        """Load a model by name (a folder under ``models/``) or by the path of its folder/card."""
        import torch

        from medviewer.inference.model import build_model
        from medviewer.inference.weights import load_state_dict

        path = Path(name_or_path)
        if not path.exists():
            path = Path(directory or models_dir()) / str(name_or_path)
        card = load_card(path, verify_sha=True)
        network = build_model(card.architecture)
        network.load_state_dict(load_state_dict(card.weights_path))
        dev = choose_device(device)
        network.to(dev).eval()
        torch.set_grad_enabled(True)
        return cls(card, network, dev)

    # ------------------------------------------------------------------------------------------------------
    def prepare(self, values: np.ndarray, window: tuple[float, float, str] | None = None,
                monochrome1: bool = False) -> Prepared:
        """Preprocess modality values (rows, cols) for this model (see :mod:`medviewer.inference.preprocess`)."""
        spec = self.card.input
        return prepare(values, input_shape=(spec.channels, spec.height, spec.width), mean=spec.mean, std=spec.std,
                       window=window, monochrome1=monochrome1)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_labels) float64 for model inputs (N, C, H, W); autocast on GPU."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.bfloat16):
                    logits = self.network(x)
            else:
                logits = self.network(x)
            return torch.softmax(logits.float(), 1).cpu().numpy().astype(np.float64)

    def explain(self, batch: np.ndarray, target: int, method: str = "gradcam") -> np.ndarray:
        """Attribution maps (N, H, W) in [0, 1] on the input grid for class ``target``."""
        import torch

        from medviewer.inference.attribution import attribution_maps

        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        return attribution_maps(self.network, x, target, method=method, layer=self.card.attribution_layer)

    def result(self, probs: np.ndarray, sop_instance_uid: str, path: str = "", frame: int = 0) -> ScoreResult:
        labels = self.card.labels
        positive_label = str(self.card.extra.get("positive_label", labels[-1]))
        p_pos = float(probs[labels.index(positive_label)])
        return ScoreResult(
            sop_instance_uid=sop_instance_uid, model=self.card.name, version=self.card.version,
            weights_sha256=self.card.weights_sha256,
            probabilities={lab: float(p) for lab, p in zip(labels, probs)}, threshold=self.card.threshold,
            positive_label=positive_label, positive=p_pos >= self.card.threshold, frame=frame, path=path,
        )

    def score_image(self, values: np.ndarray, *, sop_instance_uid: str = "", window=None,  # noqa: ANN001
                    monochrome1: bool = False, explain: str | None = "gradcam", target: str | None = None,
                    path: str = "", frame: int = 0) -> ScoreResult:
        """Score one image of modality values (rows, cols); with ``explain`` also return its heat map on the
        original pixel grid for class ``target`` (default: the positive label)."""
        prepared = self.prepare(values, window, monochrome1)
        probs = self.predict(prepared.array[None])[0]
        res = self.result(probs, sop_instance_uid, path, frame)
        if explain:
            label = target or res.positive_label
            heat = self.explain(prepared.array[None], self.card.labels.index(label), explain)[0]
            res.heatmap = prepared.transform.to_original(heat)
            res.heatmap_label = label
            res.heatmap_method = explain
        return res


def _first(value) -> float | None:  # noqa: ANN001 - DS or MultiValue
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return float(value[0]) if len(value) else None
    return float(value)


def dicom_image_for_scoring(path: str, frame: int = 0) -> tuple[np.ndarray, tuple | None, bool, str]:
    """Read one frame of a DICOM file as modality values plus its first window and MONOCHROME1 flag.

    Returns (values (rows, cols) or (rows, cols, 3), (center, width, function) or None, monochrome1,
    SOPInstanceUID).

    Raises
    ------
    medviewer.io.pixels.PixelDecodeError: the pixels cannot be decoded.
    """
    from medviewer.imaging.lut import apply_rescale
    from medviewer.io.pixels import decode_instance

    ds, pixels = decode_instance(path)
    arr = pixels[min(frame, pixels.shape[0] - 1)]
    photometric = str(ds.get("PhotometricInterpretation", "")).upper()
    if arr.ndim == 3:
        return arr, None, False, str(ds.get("SOPInstanceUID", ""))
    slope = float(ds.get("RescaleSlope", 1) or 1)
    intercept = float(ds.get("RescaleIntercept", 0) or 0)
    values = apply_rescale(arr, slope, intercept)
    window = None
    c, w = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if c is not None and w is not None and w > 0:
        window = (c, w, str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR"))
    return values, window, photometric == "MONOCHROME1", str(ds.get("SOPInstanceUID", ""))


__all__ = ["ImageModel", "ScoreResult", "choose_device", "available_models", "dicom_image_for_scoring",
           "FitTransform", "DEFAULT_MODEL"]
