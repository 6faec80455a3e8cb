"""The intended-use gate: is this image one the model was made for?

Before a probability is shown as a call (issue #10), an image passes two checks:

1. **Header** (the card's ``scope``; defaults for a chest-radiograph model): Modality CR or DX (PS3.3 C.7.3.1.1.1),
   BodyPartExamined chest or absent (PS3.16 CID 4031 "CHEST"; an empty value is allowed since many CR writers
   leave it blank), ViewPosition PA/AP or absent (PS3.3 C.8.11.5; lateral and decubitus views are refused, as is a
   series or protocol description naming a lateral view), one greyscale frame (SamplesPerPixel 1, MONOCHROME1/2,
   NumberOfFrames 1).
2. **Image**: a blank film (no contrast after VOI) is refused; then the model's out-of-distribution score (the
   card's ``ood``: Mahalanobis distance of its penultimate features from the training films) must not exceed the
   threshold set on validation films.

Out-of-scope images get no call unless the reader asks to "score anyway" (recorded as such). Patients outside the
training population (the card's ``population``, e.g. children aged 1-5) get a visible warning, not a refusal.
No torch here: the OOD score is computed by the caller (:class:`medviewer.inference.scorer.ImageModel`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date

import numpy as np

__all__ = ["HeaderFacts", "ScopeDecision", "read_header_facts", "header_reasons", "population_warnings",
           "is_blank", "DEFAULT_SCOPE"]

#: The gate for a frontal chest-radiograph model when its card has no ``scope``.
DEFAULT_SCOPE = {
    "modalities": ["CR", "DX"],
    "body_parts": ["CHEST", "THORAX", "LUNG", "CHEST_LAT", "PORT CHEST", "TORAX", "THORAX AP", "THORAX PA"],
    "view_positions": ["PA", "AP"],
}
_LATERAL_WORDS = re.compile(r"\b(LAT|LATERAL|LL|RL|LLD|RLD|DECUB\w*|SEITLICH\w*)\b", re.IGNORECASE)


@dataclass(frozen=True)
class HeaderFacts:
    """What the gate reads from a header (strings as stored, upper-cased; "" when absent)."""

    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    photometric_interpretation: str = ""
    samples_per_pixel: int = 1
    number_of_frames: int = 1
    patient_age_years: float | None = None
    descriptions: str = ""  # SeriesDescription, ProtocolName, StudyDescription, ViewCodeSequence meaning


@dataclass
class ScopeDecision:
    """``in_scope`` False with ``reason`` (words for the reader) when the image is outside the intended use;
    ``warnings`` (e.g. patient outside the training population) shown either way; ``ood_score`` and
    ``ood_threshold`` when the image check ran."""

    in_scope: bool = True
    reason: str = ""
    warnings: list[str] = field(default_factory=list)
    ood_score: float | None = None
    ood_threshold: float | None = None


def _age_years(age: str, birth: str, study: str) -> float | None:
    """PatientAge (PS3.5 AS: nnnD/W/M/Y) or StudyDate - PatientBirthDate, in years; None when unknown."""
    m = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY])\s*", age or "", re.IGNORECASE)
    if m:
        n, unit = int(m.group(1)), m.group(2).upper()
        return {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12, "Y": float(n)}[unit]
    try:
        b = date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
        s = date(int(study[:4]), int(study[4:6]), int(study[6:8]))
        return (s - b).days / 365.25 if s >= b else None
    except (ValueError, TypeError, IndexError):
        return None


def read_header_facts(path: str | os.PathLike) -> HeaderFacts:
    """Read the gate's attributes from a DICOM header (pixel data not read).

    Raises
    ------
    OSError, pydicom.errors.InvalidDicomError: the file cannot be read.
    """
    import pydicom

    ds = pydicom.dcmread(os.fspath(path), stop_before_pixels=True, force=True)

    def s(kw: str) -> str:
        v = ds.get(kw, "")
        return str(v).strip().upper() if v is not None else ""

    def i(kw: str, default: int = 1) -> int:
        try:
            return int(ds.get(kw, default) or default)
        except (TypeError, ValueError):
            return default

    desc = [s("SeriesDescription"), s("ProtocolName"), s("StudyDescription")]
    try:
        for item in ds.get("ViewCodeSequence", []) or []:
            desc.append(str(item.get("CodeMeaning", "")).upper())
    except Exception:  # noqa: BLE001 - a malformed sequence is no reason to fail the gate
        pass
    return HeaderFacts(modality=s("Modality"), body_part=s("BodyPartExamined"), view_position=s("ViewPosition"),
                       photometric_interpretation=s("PhotometricInterpretation"),
                       samples_per_pixel=i("SamplesPerPixel"), number_of_frames=i("NumberOfFrames"),
                       patient_age_years=_age_years(s("PatientAge"), s("PatientBirthDate"),
                                                    s("StudyDate") or s("AcquisitionDate")),
                       descriptions=" | ".join(d for d in desc if d))


def header_reasons(facts: HeaderFacts, scope: dict | None = None) -> list[str]:
    """Why the header puts the image outside the intended use (empty list: in scope)."""
    scope = scope or DEFAULT_SCOPE
    reasons = []
    modalities = [m.upper() for m in scope.get("modalities", DEFAULT_SCOPE["modalities"])]
    if facts.modality not in modalities:
        reasons.append(f"modality {facts.modality or 'missing'}, not {'/'.join(modalities)}")
    parts = [p.upper() for p in scope.get("body_parts", DEFAULT_SCOPE["body_parts"])]
    if facts.body_part and facts.body_part not in parts:
        reasons.append(f"body part {facts.body_part}, not chest")
    views = [v.upper() for v in scope.get("view_positions", DEFAULT_SCOPE["view_positions"])]
    if facts.view_position and facts.view_position not in views:
        reasons.append(f"view {facts.view_position}, not a frontal {'/'.join(views)} film")
    elif not facts.view_position and _LATERAL_WORDS.search(facts.descriptions or ""):
        reasons.append(f"lateral view ({facts.descriptions[:60]})")
    if facts.samples_per_pixel != 1 or facts.photometric_interpretation not in ("MONOCHROME1", "MONOCHROME2", ""):
        reasons.append(f"colour image ({facts.photometric_interpretation or 'SamplesPerPixel '}"
                       f"{'' if facts.photometric_interpretation else facts.samples_per_pixel}), not greyscale")
    if facts.number_of_frames > 1:
        reasons.append(f"multi-frame object ({facts.number_of_frames} frames), not a single radiograph")
    return reasons


def population_warnings(facts: HeaderFacts, population: dict | None) -> list[str]:
    """Warnings for a patient outside the training population (``population`` from the card: ``age_years`` [lo,
    hi]); no warning when the age is unknown or inside."""
    if not population or facts.patient_age_years is None:
        return []
    lo, hi = population.get("age_years", [None, None])
    age = facts.patient_age_years
    if (lo is not None and age < float(lo)) or (hi is not None and age > float(hi) + 1):
        shown = f"{age:.0f} years" if age >= 2 else f"{age * 12:.0f} months"
        return [f"patient aged {shown}: the model was trained on children aged {lo}-{hi}; "
                "its output is less reliable"]
    return []


def is_blank(unit: np.ndarray, min_std: float = 0.01) -> bool:
    """True when a [0, 1] image (after VOI) has (almost) no contrast: standard deviation below ``min_std``, or
    non-finite values."""
    u = np.asarray(unit, dtype=np.float32)
    if not np.isfinite(u).all():
        return True
    return float(u[:: max(1, u.shape[0] // 256), :: max(1, u.shape[1] // 256)].std()) < min_std
