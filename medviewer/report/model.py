"""The report of one case as one typed model: the PDF, the JSON and the DICOM SR are all written from a
:class:`Report`.

:func:`medviewer.report.content.build_report` builds it from the case store,
:func:`medviewer.report.deid.deidentify_report` returns a de-identified copy, and the writers read it by attribute:
:func:`medviewer.report.pdf.write_pdf` (PDF), :meth:`Report.to_dict` (the JSON, schema ``medviewer.report/1``,
written by :func:`medviewer.report.export.export_case`) and :func:`medviewer.report.dicom_objects.build_sr`
(TID 1500 SR).

Field names are the JSON keys, and :meth:`Report.to_dict` writes the fields in their declaration order, so the
JSON is the model field by field. A few keys are optional: they are left out of the JSON when the field is None
(marked "optional key" below); every other None is written as ``null``. :meth:`Report.from_dict` reads such a
dict back (``Report.from_dict(r.to_dict()) == r``); keys it does not know are ignored and missing keys take the
field's default, so a partial dict (a test's, an older export's) is read too.

Units and formats (as in the module docstring of :mod:`medviewer.report.content`):

* times the report adds: ISO 8601 UTC strings ``YYYY-MM-DDTHH:MM:SSZ`` (None when the event did not happen);
* header values: DICOM formats (names ``Family^Given``, dates ``YYYYMMDD``, times ``HHMMSS``), keyed by DICOM
  keyword;
* probabilities and thresholds: floats in [0, 1];
* lengths in mm (pixels when the image has no pixel spacing), areas in mm2 (pixels2), angles in degrees, ROI
  statistics in the image's modality units (``HU`` for CT, ``""`` when the image has none);
* image coordinates: ``[x, y]`` = (column, row) in image pixels, 0.0 at the top left corner of the top left pixel
  (:mod:`medviewer.imaging.annotations`); frames 0-based.
"""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any

from medviewer.imaging.annotations import Measurement

__all__ = ["SCHEMA", "NOT_FOR_DIAGNOSTIC_USE", "Report", "Generator", "CaseSummary", "SignOff", "WindowSetting",
           "AnnotationEntry", "AIResultEntry", "KeyImage", "ModelSummary", "AISection", "NoteFinding", "NoteSection",
           "ReaderCall", "Timestamps", "CodedConcept", "Deidentification"]

#: The report's schema name (the JSON's ``schema``).
SCHEMA = "medviewer.report/1"

#: The "not for diagnostic use" statement printed on every report.
NOT_FOR_DIAGNOSTIC_USE = (
    "Not for diagnostic use. medviewer is research and teaching software: its AI results and automatic note "
    "findings are decision support only, are not a diagnosis, and must be checked by a qualified reader."
)

_OPTIONAL = "optional_key"  # field metadata: the key is left out of the JSON when the value is None
_EMPTY_DICT = "empty_dict_when_none"  # field metadata: None is written as {} (a measurement that is absent)


def _optional(default: Any = None) -> Any:
    """An optional key: absent from the JSON when the field is None."""
    return field(default=default, metadata={_OPTIONAL: True})


def _to_json(value: Any) -> Any:
    """A JSON-able copy of a field value (nested models through their ``to_dict``; lists and dicts copied)."""
    if isinstance(value, (_Node, Measurement)):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a model class (cached per class)."""
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    return hints


def _from_json(tp: Any, value: Any) -> Any:
    """``value`` (from JSON) as type ``tp``: models through their ``from_dict``, lists and dicts item by item,
    measurements by :func:`medviewer.report.content.measurement_from_dict`; other values as they are."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return _from_json(inner[0], value) if len(inner) == 1 else copy.deepcopy(value)
    if origin is list:
        (item,) = typing.get_args(tp)
        return [_from_json(item, v) for v in value or []]
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _from_json(item, v) for k, v in (value or {}).items()}
    if tp is Measurement:
        from medviewer.report.content import measurement_from_dict

        return measurement_from_dict(value) if isinstance(value, dict) else None
    if isinstance(tp, type) and issubclass(tp, _Node):
        return tp.from_dict(value)
    return copy.deepcopy(value)


class _Node:
    """JSON conversion shared by the models: one key per field, in field order."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able dict of this model (a copy: changing it does not change the model)."""
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            if value is None and f.metadata.get(_OPTIONAL):
                continue
            if value is None and f.metadata.get(_EMPTY_DICT):
                out[f.name] = {}
                continue
            out[f.name] = _to_json(value)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None):  # noqa: ANN206 - the class itself
        """The model of a dict written by :meth:`to_dict`; missing keys take the field's default, unknown keys
        are ignored."""
        d = d or {}
        hints = _hints(cls)
        kwargs = {f.name: _from_json(hints[f.name], d[f.name]) for f in fields(cls) if f.name in d}  # type: ignore[arg-type]
        return cls(**kwargs)


# ------------------------------------------------------------------------------------------------------------------
# parts
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class Generator(_Node):
    """The software that wrote the report."""

    name: str = "medviewer"
    version: str = ""


@dataclass
class CaseSummary(_Node):
    """The case: workflow status (new, in progress, reported), its times (ISO 8601 UTC) and counts."""

    status: str = ""
    created_at: str | None = None
    updated_at: str | None = None
    n_images: int = 0
    n_annotations: int = 0
    n_events: int = 0


@dataclass
class SignOff(_Node):
    """The sign-off: ``signed`` when the case's status is "reported", with the reader's name (free text, "" when
    not signed or de-identified) and time (ISO 8601 UTC)."""

    status: str = ""
    reader: str = ""
    signed_at: str | None = None
    signed: bool = False


@dataclass
class WindowSetting(_Node):
    """The VOI window a key image is shown with: centre and width in modality units (HU for CT), VOILUTFunction
    (LINEAR, LINEAR_EXACT, SIGMOID)."""

    center: float = 0.0
    width: float = 0.0
    function: str = "LINEAR"


@dataclass
class AnnotationEntry(_Node):
    """A reader's annotation with its measurement.

    uid: the annotation's id (hex; keyed by the secret in a de-identified report). kind: length, angle, rect,
    ellipse, arrow, text. points: ``[[x, y], ...]`` image pixel coordinates (column, row). frame: 0-based.
    text: the reader's text (free text, cleaned in a de-identified report). measurement: lengths in mm (px without
    pixel spacing), angles in degrees, ROI mean/SD/min/max in modality units, areas in mm2; None (JSON ``{}``) when
    there is none. label: the measurement as printed. measurement_source: "image" (recomputed from the pixels),
    "stored" (as the viewer saved it) or "none". measurement_note (optional key): why the stored measurement is
    shown. image (optional key, annotations on images that are not key images): the image's short name.
    """

    uid: str = ""
    kind: str = ""
    points: list[list[float]] = field(default_factory=list)
    sop_instance_uid: str = ""
    frame: int = 0
    text: str = ""
    measurement: Measurement | None = field(default=None, metadata={_EMPTY_DICT: True})
    label: str = ""
    measurement_source: str = "none"
    measurement_note: str | None = _optional()
    image: str | None = _optional()


@dataclass
class AIResultEntry(_Node):
    """The latest result of one AI model on one image (frame).

    probabilities: {label: P} in [0, 1]. score: P(positive_label) in [0, 1], None when the image is outside the
    model's intended use (no call; ``scope`` says why). threshold: in [0, 1]. positive: score >= threshold (None
    without a call). status: scored, out_of_scope or scored_anyway. created_at: ISO 8601 UTC.
    """

    id: int = 0
    sop_instance_uid: str = ""
    frame: int = 0
    image: str = ""
    model: str = ""
    version: str = ""
    weights_sha256: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)
    positive_label: str = ""
    score: float | None = None
    threshold: float = 0.5
    positive: bool | None = None
    status: str = "scored"
    scope: str = ""
    warnings: list[str] = field(default_factory=list)
    heatmap_method: str = ""
    heatmap_label: str = ""
    has_heatmap: bool = False
    created_at: str | None = None


@dataclass
class KeyImage(_Node):
    """One key image (frame) with its annotations and AI results.

    reason: "annotated", "AI positive", "AI result" or "middle image of the series". image: short name (modality,
    InstanceNumber, frame). pixel_spacing_mm: [row, column] mm, None without spacing. units: modality units of the
    pixels ("HU" for CT). window: the VOI window shown (None for colour or unreadable images).
    burned_in_annotation: BurnedInAnnotation (0028,0301) "YES", "NO" or "". error: why the image could not be read
    ("" when it was). photometric_interpretation (optional key): only when the image was read.
    """

    sop_instance_uid: str = ""
    frame: int = 0
    reason: str = ""
    image: str = ""
    series_instance_uid: str = ""
    series_description: str = ""
    modality: str = ""
    instance_number: int | None = None
    number_of_frames: int = 1
    rows: int = 0
    columns: int = 0
    pixel_spacing_mm: list[float] | None = None
    units: str = ""
    window: WindowSetting | None = None
    burned_in_annotation: str = ""
    error: str = ""
    photometric_interpretation: str | None = _optional()
    annotations: list[AnnotationEntry] = field(default_factory=list)
    ai_results: list[AIResultEntry] = field(default_factory=list)


@dataclass
class ModelSummary(_Node):
    """An AI model's card, summarised for the report. When the card cannot be found on this installation
    ``available`` is False, ``note`` says so and the card's keys (version ... not_for_diagnostic_use, all optional
    keys) are left out.

    threshold: on P(positive_label), in [0, 1]. test_metrics: auc, accuracy, sensitivity, specificity,
    balanced_accuracy (in [0, 1]), n, n_positive (counts). results_match_card_weights: every result of the model in
    this report was made with the card's weights.
    """

    name: str = ""
    version: str | None = _optional()
    available: bool = False
    task: str | None = _optional()
    labels: list[str] | None = _optional()
    positive_label: str | None = _optional()
    threshold: float | None = _optional()
    threshold_rule: str | None = _optional()
    intended_use: str | None = _optional()
    training_data: str | None = _optional()
    test_metrics: dict[str, float] | None = _optional()
    weights_sha256: str | None = _optional()
    summary: str | None = _optional()
    results_match_card_weights: bool | None = _optional()
    not_for_diagnostic_use: str | None = _optional()
    note: str | None = _optional()


@dataclass
class AISection(_Node):
    """Every latest AI result of the case (case order), the cards of their models (by name) and the disclaimer."""

    results: list[AIResultEntry] = field(default_factory=list)
    models: list[ModelSummary] = field(default_factory=list)
    disclaimer: str = ""


@dataclass
class NoteFinding(_Node):
    """A finding the notes classifier found in the note: probability (P(present)) and threshold in [0, 1], the
    model's call, and the radiologist's decision ("confirmed", "rejected" or "").

    state: the model's state, "present", "absent" or "uncertain" (hedged in the note: "possible", "cannot
    exclude"); ``positive`` is ``state == "present"``, so an uncertain finding is not positive (the OpenI gold
    standard's convention). Left empty it is read from ``positive`` (reports and findings from before three
    states). uncertain_probability / uncertain_threshold: P(hedged) and its threshold (None when the stored finding
    has none).
    """

    label: str = ""
    probability: float = 0.0
    threshold: float = 0.5
    positive: bool = False
    decision: str = ""
    state: str = ""
    uncertain_probability: float | None = None
    uncertain_threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.state:
            self.state = "present" if self.positive else "absent"

    @property
    def reviewed_state(self) -> str:
        """The state after the radiologist's decision: confirmed -> present, rejected -> absent, else ``state``."""
        return {"confirmed": "present", "rejected": "absent"}.get(self.decision, self.state)


@dataclass
class NoteSection(_Node):
    """The latest note (free text) and the latest classification of it.

    saved_at / classified_at: ISO 8601 UTC. versions: number of saved versions. findings: by decreasing
    probability. positives: the labels positive (present) after the radiologist's review. findings_current: the
    findings were classified on the latest version (None when never classified). uncertain: the labels the model
    found hedged in the note that the radiologist has not decided on (never among ``positives``).
    """

    text: str = ""
    saved_at: str | None = None
    versions: int = 0
    findings: list[NoteFinding] = field(default_factory=list)
    positives: list[str] = field(default_factory=list)
    model: str = ""
    model_version: str = ""
    classified_at: str | None = None
    findings_current: bool | None = None
    uncertain: list[str] = field(default_factory=list)


@dataclass
class ReaderCall(_Node):
    """A radiologist's call on a finding: ``call`` is "positive" or "negative", confidence 1..5 (None when not
    given), ``override``: it disagrees with the AI result it reviewed (``ai_result_id``). current: the latest call
    on its label (earlier ones are superseded). created_at: ISO 8601 UTC."""

    id: int = 0
    label: str = ""
    positive: bool = False
    call: str = "negative"
    confidence: int | None = None
    override: bool = False
    ai_result_id: int | None = None
    comment: str = ""
    reader: str = ""
    created_at: str | None = None
    current: bool = True


@dataclass
class Timestamps(_Node):
    """The times of the case's events (ISO 8601 UTC; None when the event did not happen)."""

    case_created: str | None = None
    case_updated: str | None = None
    note_saved: str | None = None
    findings_classified: str | None = None
    last_ai_result: str | None = None
    last_radiologist_score: str | None = None
    signed_off: str | None = None
    report_generated: str | None = None


@dataclass
class CodedConcept(_Node):
    """A DICOM code (PS3.3 Code Sequence Macro attributes)."""

    CodeValue: str = ""
    CodingSchemeDesignator: str = ""
    CodeMeaning: str = ""


@dataclass
class Deidentification(_Node):
    """How a de-identified report was de-identified (PS3.15 Annex E; :mod:`medviewer.report.deid`): the profile,
    PatientIdentityRemoved (0012,0062), DeidentificationMethod (0012,0063) and its code sequence (CID 7050), the
    pseudonym, the action applied to each header attribute, the number of UIDs replaced."""

    profile: str = ""
    PatientIdentityRemoved: str = "YES"
    DeidentificationMethod: str = ""
    DeidentificationMethodCodeSequence: list[CodedConcept] = field(default_factory=list)
    pseudonym: str = ""
    actions: dict[str, str] = field(default_factory=dict)
    uids_replaced: int = 0
    pixels_cleaned: bool = False


# ------------------------------------------------------------------------------------------------------------------
# the report
# ------------------------------------------------------------------------------------------------------------------


@dataclass
class Report(_Node):
    """The report of one case (schema ``medviewer.report/1``).

    generated_at: ISO 8601 UTC. disclaimer: :data:`NOT_FOR_DIAGNOSTIC_USE`. pseudonym: ``ANON-XXXXXXXXXX``, a keyed
    hash of the patient (:func:`medviewer.report.content.case_pseudonym`). header: {DICOM keyword: value} of the
    study (DICOM formats), with the extras read from every image header (see :mod:`medviewer.report.content`).
    key_images: the key images (case order); other_annotations: annotations on the other images (stored
    measurements). events: entries in the case's history. warnings: sentences for the reader (burned-in text,
    stale findings, other weights). deidentified / deidentification (optional key): set by
    :func:`medviewer.report.deid.deidentify_report`.
    """

    schema: str = SCHEMA
    generator: Generator = field(default_factory=Generator)
    generated_at: str | None = None
    disclaimer: str = ""
    pseudonym: str = ""
    header: dict[str, str] = field(default_factory=dict)
    case: CaseSummary = field(default_factory=CaseSummary)
    sign_off: SignOff = field(default_factory=SignOff)
    key_images: list[KeyImage] = field(default_factory=list)
    other_annotations: list[AnnotationEntry] = field(default_factory=list)
    ai: AISection = field(default_factory=AISection)
    note: NoteSection = field(default_factory=NoteSection)
    radiologist_scores: list[ReaderCall] = field(default_factory=list)
    timestamps: Timestamps = field(default_factory=Timestamps)
    events: int = 0
    warnings: list[str] = field(default_factory=list)
    deidentified: bool = False
    deidentification: Deidentification | None = _optional()

    @property
    def study_instance_uid(self) -> str:
        """The header's StudyInstanceUID (a new UID in a de-identified report), "" when absent."""
        return str(self.header.get("StudyInstanceUID") or "")

    def all_annotations(self) -> list[AnnotationEntry]:
        """Every annotation of the report: the key images' (in order), then the others."""
        out = [a for k in self.key_images for a in k.annotations]
        return out + list(self.other_annotations)

    def current_reader_calls(self) -> list[ReaderCall]:
        """The radiologist's current calls (the latest one per label)."""
        return [s for s in self.radiologist_scores if s.current]
