"""Scoring images with a bundled model: load, preprocess DICOM, predict in batches, explain.

:class:`ImageModel` is Qt-free; the GUI runs it in a worker, ``medviewer score`` runs it in a terminal. torch is
imported on first use, never at import time of this module.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer.config import models_dir
from medviewer.inference.card import ModelCard, find_cards, load_card
from medviewer.inference.frames import ModelFrame
from medviewer.inference.preprocess import FitTransform, Prepared, prepare
from medviewer.inference.scope import HeaderFacts, ScopeDecision

log = logging.getLogger(__name__)

DEFAULT_MODEL = "pneumonia-chest224"


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


#: ScoreResult.status values: a call was made; the image is outside the model's intended use (no call); the
#: reader asked to score it anyway (a call, recorded as such).
SCORED, OUT_OF_SCOPE, SCORED_ANYWAY = "scored", "out_of_scope", "scored_anyway"


@dataclass
class ScoreResult:
    """One image's scores. ``probabilities`` maps every label to P(label); ``positive`` is P(positive label) >=
    threshold. ``heatmap`` (rows, cols) float32 in [0, 1] on the original pixel grid when requested.

    ``status`` is :data:`SCORED`, :data:`OUT_OF_SCOPE` (``probabilities`` empty, ``positive`` False, no call:
    ``scope_reason`` says why) or :data:`SCORED_ANYWAY` (outside the intended use, scored at the reader's request);
    ``warnings`` are shown with the call (patient outside the training population); ``ood_score`` is the image's
    out-of-distribution score when the model has one."""

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
    status: str = SCORED
    scope_reason: str = ""
    warnings: list[str] = field(default_factory=list)
    ood_score: float | None = None

    @property
    def has_call(self) -> bool:
        """True when the result carries a probability and a call (not out of scope)."""
        return self.status != OUT_OF_SCOPE

    def scope_text(self) -> str:
        """Words for the reader: "" for an in-scope call, else "outside the model's intended use (reason)", with
        "scored anyway" when the reader forced it."""
        if self.status == SCORED:
            return ""
        text = f"outside the model's intended use ({self.scope_reason})"
        return text + ", scored anyway at the reader's request" if self.status == SCORED_ANYWAY else text

    def to_dict(self) -> dict:
        """JSON form (no heat map): SOPInstanceUID, model, version, weights sha, status (with the reason when out
        of scope) and, when there is a call, the per-label probability."""
        ood = None if self.ood_score is None or not np.isfinite(self.ood_score) else float(self.ood_score)
        if not self.has_call:
            return {"SOPInstanceUID": self.sop_instance_uid, "sop_instance_uid": self.sop_instance_uid,
                    "path": self.path, "frame": self.frame, "model": self.model, "version": self.version,
                    "weights_sha256": self.weights_sha256, "status": self.status, "reason": self.scope_reason,
                    "message": self.scope_text(), "warnings": list(self.warnings), "ood_score": ood,
                    "threshold": self.threshold, "positive_label": self.positive_label, "positive": None,
                    "labels": [], "probability": {}}
        return {"status": self.status, "reason": self.scope_reason, "warnings": list(self.warnings),
                "ood_score": ood,
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
        saved_temperature = getattr(network, "temperature", None)
        if card.temperature is not None and isinstance(saved_temperature, torch.Tensor):
            # the card's inference recipe wins over the value saved with the weights (the same weights can be run
            # with a temperature chosen later; the card's version then changes, and so do the results' records)
            saved_temperature.fill_(card.temperature)
        dev = choose_device(device)
        network.to(dev).eval()
        torch.set_grad_enabled(True)
        return cls(card, network, dev)

    # ------------------------------------------------------------------------------------------------------
    def prepare(self, values: np.ndarray, window: tuple[float, float, str] | None = None,
                monochrome1: bool = False, voi_lut: tuple | None = None,
                exclude: tuple[float, float] | None = None) -> Prepared:
        """Preprocess modality values (rows, cols) for this model (see :mod:`medviewer.inference.preprocess`)."""
        spec = self.card.input
        return prepare(values, input_shape=(spec.channels, spec.height, spec.width), mean=spec.mean, std=spec.std,
                       window=window, monochrome1=monochrome1, fit=spec.fit, voi_lut=voi_lut, exclude=exclude)

    def prepare_frame(self, frame: ModelFrame) -> Prepared:
        """Preprocess a :class:`~medviewer.inference.frames.ModelFrame` (the one frame path)."""
        return self.prepare(frame.values, frame.window, frame.monochrome1, frame.voi_lut, frame.padding)

    def predict_with_ood(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(class probabilities (N, n_labels) float64, out-of-distribution scores (N,) float64 or None when the
        model has no OOD statistics (its card has no ``ood``)) for model inputs (N, C, H, W), in one pass;
        bf16 autocast on CUDA, as :meth:`predict`.

        The card's inference recipe is applied here, the one place every caller's probability comes from: the
        test-time augmentation views of :attr:`ModelCard.tta_views` (:mod:`medviewer.inference.tta`) are scored in
        the same batch and their temperature-scaled logits averaged; the OOD score is the first view's (the film
        as it is)."""
        import torch

        from medviewer.inference import tta

        views = self.card.tta_views
        with_ood = "ood" in self.card.extra and hasattr(self.network, "forward_with_ood")
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        n = x.shape[0]
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16,
                                                    enabled=self.device.startswith("cuda")):
            xs = tta.expand(x, views)
            logits, ood = self.network.forward_with_ood(xs) if with_ood else (self.network(xs), None)
            logits = tta.average(logits.float(), len(views))
            ood = None if ood is None else ood[:n]
            probs = torch.softmax(logits, 1).cpu().numpy().astype(np.float64)
            return probs, None if ood is None else ood.float().cpu().numpy().astype(np.float64)

    def check_scope(self, frame: ModelFrame, prepared: Prepared, facts: HeaderFacts | None = None,
                    ood_score: float | None = None) -> ScopeDecision:
        """The intended-use gate (:mod:`medviewer.inference.scope`) for one prepared frame: header, blank image,
        out-of-distribution score (``ood_score``, computed here when not given); plus population warnings."""
        from medviewer.inference.scope import header_reasons, is_blank, population_warnings, read_header_facts

        if facts is None:
            facts = HeaderFacts(modality=frame.modality, photometric_interpretation=frame.photometric_interpretation,
                                samples_per_pixel=frame.samples_per_pixel, number_of_frames=frame.number_of_frames)
            if frame.path:
                try:
                    facts = read_header_facts(frame.path)
                except Exception as exc:  # noqa: BLE001 - the frame was read; the gate then judges what it has
                    log.warning("intended-use gate: header of %s not re-read (%s)", os.path.basename(frame.path),
                                exc)
        decision = ScopeDecision(warnings=population_warnings(facts, self.card.extra.get("population")))
        reasons = header_reasons(facts, self.card.extra.get("scope"))
        if not reasons and is_blank(prepared.unit):
            reasons.append("blank image: no contrast after windowing")
        ood = self.card.extra.get("ood")
        if ood is not None:
            if ood_score is None:
                scores = self.predict_with_ood(prepared.array[None])[1]
                ood_score = None if scores is None else float(scores[0])
            if ood_score is not None:
                decision.ood_score = float(ood_score)
                decision.ood_threshold = float(ood["threshold"])
                if not reasons and not decision.ood_score <= decision.ood_threshold:
                    reasons.append(f"image unlike the training films (out-of-distribution score "
                                   f"{decision.ood_score:.1f} > {decision.ood_threshold:.1f})")
        if reasons:
            decision.in_scope = False
            decision.reason = "; ".join(reasons)
        return decision

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities (N, n_labels) float64 for model inputs (N, C, H, W) under the card's inference
        recipe (see :meth:`predict_with_ood`); autocast on GPU."""
        return self.predict_with_ood(batch)[0]

    def explain(self, batch: np.ndarray, target: int, method: str = "gradcam") -> np.ndarray:
        """Attribution maps (N, H, W) in [0, 1] on the input grid for class ``target``, of the film as it is (the
        first test-time augmentation view)."""
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

    def score_frame(self, frame: ModelFrame, *, explain: str | None = "gradcam", target: str | None = None,
                    force: bool = False, facts: HeaderFacts | None = None) -> ScoreResult:
        """Score one frame from the one frame path (:func:`medviewer.inference.frames.read_frame` or
        :func:`~medviewer.inference.frames.frame_from_volume`).

        The intended-use gate runs first: an out-of-scope frame gets a result with status
        :data:`OUT_OF_SCOPE` and no probability, unless ``force`` ("score anyway", status :data:`SCORED_ANYWAY`).
        With ``explain`` the heat map of class ``target`` (default: the positive label) is returned on the
        original pixel grid."""
        prepared = self.prepare_frame(frame)
        probs, ood = self.predict_with_ood(prepared.array[None])
        decision = self.check_scope(frame, prepared, facts, None if ood is None else float(ood[0]))
        labels = self.card.labels
        positive_label = str(self.card.extra.get("positive_label", labels[-1]))
        if not decision.in_scope and not force:
            return ScoreResult(
                sop_instance_uid=frame.sop_instance_uid, model=self.card.name, version=self.card.version,
                weights_sha256=self.card.weights_sha256, probabilities={}, threshold=self.card.threshold,
                positive_label=positive_label, positive=False, frame=frame.frame, path=frame.path,
                status=OUT_OF_SCOPE, scope_reason=decision.reason, warnings=decision.warnings,
                ood_score=decision.ood_score)
        if not np.isfinite(probs[0]).all():  # non-finite pixels reach the network: no number to show, forced or not
            return ScoreResult(
                sop_instance_uid=frame.sop_instance_uid, model=self.card.name, version=self.card.version,
                weights_sha256=self.card.weights_sha256, probabilities={}, threshold=self.card.threshold,
                positive_label=positive_label, positive=False, frame=frame.frame, path=frame.path,
                status=OUT_OF_SCOPE, scope_reason=decision.reason or "the image has no finite pixel values",
                warnings=decision.warnings, ood_score=None)
        res = self.result(probs[0], frame.sop_instance_uid, frame.path, frame.frame)
        res.warnings = decision.warnings
        res.ood_score = decision.ood_score
        if not decision.in_scope:
            res.status, res.scope_reason = SCORED_ANYWAY, decision.reason
        if explain:
            label = target or res.positive_label
            heat = self.explain(prepared.array[None], self.card.labels.index(label), explain)[0]
            res.heatmap = prepared.transform.to_original(heat)
            res.heatmap_label = label
            res.heatmap_method = explain
        return res


__all__ = ["ImageModel", "ScoreResult", "choose_device", "available_models", "FitTransform", "DEFAULT_MODEL",
           "SCORED", "OUT_OF_SCOPE", "SCORED_ANYWAY"]
