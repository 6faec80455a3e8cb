"""A case's AI and reading results as DICOM objects for the PACS, and back.

Three objects, written with highdicom into the case's own study (same StudyInstanceUID and patient, one new series
each):

* a **Comprehensive 3D SR** (PS3.3 A.35.13) holding a TID 1500 Measurement Report (PS3.16), built from the
  :class:`~medviewer.report.model.Report` of :func:`medviewer.report.content.build_report`, the one model the PDF
  and the JSON are written from too:

  - one TID 1501 measurement group per AI result: TID 4019 algorithm identification (model name, version, and as
    parameters ``weights_sha256=``, ``positive_label=``, ``threshold=``, ``status=``, ``scope=``), the probability
    of the positive label as a NUM "Probability" (DCM 122157, UCUM ``{probability}``) and the call as a qualitative
    evaluation (finding -> SCT Present / Absent); an out-of-scope image gets "Not Evaluated" (SCT 373121007) and
    no probability; the scored image is the group's source image;
  - one TID 1501 group per current reader call (finding -> Present / Absent, confidence 1..5 as a NUM "Certainty of
    Finding" DCM 111012, UCUM ``{score}``); the readers are the document's person observers (TID 1002);
  - one TID 1501 group per note finding that the notes classifier called present or uncertain, or that the reader
    confirmed or rejected: the notes model as TID 4019 algorithm identification (parameters ``source=note``,
    ``model_state=``, ``decision=``, ``probability=``, ``threshold=``, ``uncertain_probability=``,
    ``findings_current=``) and the finding's state after the reader's review as a qualitative evaluation from
    CID 240 "Present-Absent": Present, Absent, or, for a finding the note only hedges ("possible", "cannot
    exclude") and the reader has not decided on, **Undetermined** (SCT 373068000), never Present. The note's
    findings come from the text, not from an image: the group references no image. The note text itself is not
    in the SR;
  - the reader's measurements: a length or an angle as a TID 1501 group whose NUM (Length SCT 410668003 in mm,
    ``{pixels}`` without PixelSpacing; Angle SCT 1483009 in degrees) is INFERRED FROM a SCOORD POLYLINE on the
    image (TID 300 / TID 320); a rectangle or ellipse as a TID 1410 planar ROI group (Image Region: closed POLYLINE,
    or ELLIPSE with the major then the minor axis end points, PS3.3 C.18.6.1.2) with Mean, Standard Deviation,
    Minimum, Maximum (modality units: ``[hnsf'U]`` for HU, ``1`` otherwise) and Area (mm2 or ``{pixels^2}``).
    Arrows and text marks have no measurement and are left out, as are the annotations' comments and the note's
    text.

  SCOORD coordinates need no conversion: DICOM puts 0.0\\0.0 at the top left corner of the top left pixel, whose
  centre is 0.5\\0.5, and Columns\\Rows at the bottom right corner of the last pixel (PS3.3 C.18.6.1.2 Graphic
  Data), which is medviewer's image pixel convention (:mod:`medviewer.imaging.annotations`), (column, row) order
  included. Frame numbers are 1-based in DICOM (only given for multi-frame images), 0-based in medviewer.

* a **Segmentation** (PS3.3 A.51, FRACTIONAL, PROBABILITY, MaxFractionalValue 255) per AI result with a heat map:
  the stored map resampled to the image's Rows x Columns as the viewer overlays it
  (:func:`medviewer.report.render.resize_heatmap`), with the algorithm identification (PS3.3 C.8.20.2).
  The values are the attribution map scaled to [0, 1], not a probability of disease.

* an **RGB Secondary Capture** (PS3.3 A.8.1) per AI result with a heat map: the image with its heat map, colour
  bar, caption and the reader's annotations, rendered by :func:`medviewer.report.render.render_key_image` (the PDF's
  picture) without any patient text; BurnedInAnnotation (0028,0301) (PS3.3 C.7.6.1 General Image) is YES only when
  the source image has it (or may have it: a burned-in-prone modality without the flag).

Every object is marked as medviewer's: Manufacturer (0008,0070) ``medviewer``. :func:`read_sr` parses our SR back;
:func:`import_dicom_results` brings the results of our SRs found in a scanned study into its case (idempotently),
and ignores foreign SRs. highdicom is imported only inside the functions that need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.sr.coding import Code

from medviewer.imaging.annotations import Measurement
from medviewer.report.model import AIResultEntry, AnnotationEntry, NoteFinding, NoteSection, ReaderCall, Report

if TYPE_CHECKING:
    from pydicom import Dataset

log = logging.getLogger(__name__)

__all__ = ["DicomObjectError", "NoHeatmapError", "MANUFACTURER", "export_dicom_objects", "write_sr", "write_seg",
           "write_sc", "build_sr", "read_sr", "is_medviewer_sr", "import_dicom_results",
           "register_index_with_results"]

#: Manufacturer (0008,0070) of every object written here: how our objects are told from foreign ones.
MANUFACTURER = "medviewer"
SR_SERIES_DESCRIPTION = "medviewer AI and reading results (SR)"
SEG_SERIES_DESCRIPTION = "medviewer AI heat map (SEG)"
SC_SERIES_DESCRIPTION = "medviewer AI heat map overlay (SC)"
#: Series numbers of the new series (high, so that they sort after the acquisition's).
SR_SERIES_NUMBER, SEG_SERIES_NUMBER, SC_SERIES_NUMBER = 9901, 9902, 9903
#: Prefixes of the TID 1501 Tracking Identifier texts; what follows is our annotation uid / AI result / label.
TRACK_ANNOTATION = "medviewer annotation "
TRACK_AI = "medviewer AI result "
TRACK_READER = "medviewer reader call "
TRACK_NOTE = "medviewer note finding "
#: The private coding scheme of finding labels that have no standard code here.
LOCAL_SCHEME = "99MEDVIEWER"
#: The event recorded in a case's history when one of our SRs was imported into it (detail: sr_sop_instance_uid).
IMPORT_EVENT = "DICOM SR imported"

# ---- codes (PS3.16)
PROBABILITY = Code("122157", "DCM", "Probability")
CERTAINTY = Code("111012", "DCM", "Certainty of Finding")
PRESENT = Code("52101004", "SCT", "Present")
ABSENT = Code("272519000", "SCT", "Absent")
NOT_EVALUATED = Code("373121007", "SCT", "Not Evaluated")
#: CID 240 "Present-Absent"'s third value: a note finding that is only hedged ("uncertain"), neither present nor absent.
UNDETERMINED = Code("373068000", "SCT", "Undetermined")
#: The qualitative evaluation of a note finding by its state after the reader's review.
NOTE_STATE_CODES = {"present": PRESENT, "absent": ABSENT, "uncertain": UNDETERMINED}
LENGTH = Code("410668003", "SCT", "Length")
ANGLE = Code("1483009", "SCT", "Angle")
MEAN = Code("373098007", "SCT", "Mean")
SD = Code("386136009", "SCT", "Standard Deviation")
MINIMUM = Code("255605001", "SCT", "Minimum")
MAXIMUM = Code("56851009", "SCT", "Maximum")
AREA = Code("42798000", "SCT", "Area")
U_PROBABILITY = Code("{probability}", "UCUM", "probability")
U_SCORE = Code("{score}", "UCUM", "score")
U_MM = Code("mm", "UCUM", "mm")
U_MM2 = Code("mm2", "UCUM", "mm2")
U_PX = Code("{pixels}", "UCUM", "pixels")
U_PX2 = Code("{pixels^2}", "UCUM", "square pixels")
U_DEG = Code("deg", "UCUM", "degree")
U_HU = Code("[hnsf'U]", "UCUM", "Hounsfield unit")
U_NONE = Code("1", "UCUM", "no units")
#: Finding labels with a standard code (lower-case label -> SNOMED CT); other labels get a LOCAL_SCHEME code.
FINDING_CODES = {"pneumonia": Code("233604007", "SCT", "Pneumonia")}
_STAT_CODES = (("mean", MEAN), ("sd", SD), ("minimum", MINIMUM), ("maximum", MAXIMUM))
_ROI_STAT_NAMES = {(c.value, c.scheme_designator): k for k, c in _STAT_CODES}


class DicomObjectError(ValueError):
    """A DICOM object cannot be made for this case (no readable image to reference...)."""


class NoHeatmapError(DicomObjectError):
    """The case has no AI result with a heat map: no Segmentation or Secondary Capture to write."""


# ------------------------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------------------------


def _finding_code(label: str) -> Code:
    """The coded concept of a finding label ("pneumonia" -> SCT 233604007; others -> LOCAL_SCHEME)."""
    code = FINDING_CODES.get(label.strip().lower())
    if code is not None:
        return code
    value = re.sub(r"[^A-Za-z0-9._-]", "_", label.strip())[:16] or "finding"
    return Code(value, LOCAL_SCHEME, label.strip()[:64] or "finding")


def _uid(*parts: object) -> str:
    """A deterministic DICOM UID (pydicom's 2.25 / pydicom root scheme) from ``parts``."""
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["medviewer"] + [str(p) for p in parts])


def _frames(header, frame: int) -> list[int] | None:  # noqa: ANN001 - pydicom Dataset
    """DICOM 1-based frame numbers of a 0-based ``frame``, or None for a single-frame object (PS3.3 Table 10-3
    Image SOP Instance Reference Macro: Referenced Frame Number is Type 1C, for multi-frame images only)."""
    try:
        n = int(header.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        n = 1
    return [int(frame) + 1] if n > 1 else None


def _read_headers(store, study_uid: str, sops: set[str]) -> tuple[dict, list[str]]:  # noqa: ANN001
    """({SOPInstanceUID: header Dataset (no pixels)}, warnings) of the case's images in ``sops``."""
    import pydicom

    paths = {img["sop_instance_uid"]: img["path"] for img in store.case_images(study_uid)}
    out, warnings = {}, []
    for sop in sorted(sops):
        path = paths.get(sop)
        if not path:
            warnings.append(f"image {sop} is not in the case: its results are left out")
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - a missing/damaged file drops its references, not the object
            warnings.append(f"image {sop} cannot be read ({type(exc).__name__}): its results are left out")
            continue
        # Type 2 attributes of the Patient and General Study modules (PS3.3 C.7.1.1, C.7.2.1) that the source
        # left out are copied as empty ("unknown"), which is what they mean; highdicom needs them present.
        for kw in _TYPE2_COPIED:
            if kw not in ds:
                setattr(ds, kw, "")
        out[sop] = ds
    return out, warnings


#: Type 2 Patient / General Study attributes copied into our objects (empty when the source lacks them).
_TYPE2_COPIED = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                 "ReferringPhysicianName", "StudyID", "AccessionNumber")


def _library_view(header):  # noqa: ANN001, ANN202 - pydicom Dataset
    """``header`` as given to highdicom's Image Library (TID 1600): itself when it has what highdicom's
    modality-specific descriptors read (TID 1603 projection: ImagerPixelSpacing, PatientOrientation; TID 1604
    cross-sectional: PixelSpacing, ImageOrientationPatient, ImagePositionPatient, SliceThickness), else a minimal
    copy that gets the generic descriptors only (modality from the SOP class, Rows, Columns): those descriptors
    are optional, and highdicom fails on a CR without ImagerPixelSpacing."""
    from pydicom.dataset import Dataset

    modality = str(header.get("Modality", ""))
    need: tuple[str, ...] = ()
    if modality in ("CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA"):
        need = ("ImagerPixelSpacing", "PatientOrientation")
    elif modality in ("CT", "MR", "PT"):
        need = ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness")
    if all(header.get(k) not in (None, "") for k in need):
        return header
    view = Dataset()
    for k in ("SOPClassUID", "SOPInstanceUID", "Rows", "Columns", "FrameOfReferenceUID"):
        if k in header:
            setattr(view, k, header.get(k))
    view.Modality = "OT"  # only selects no modality-specific descriptors; the coded modality is the SOP class's
    return view


@contextlib.contextmanager
def _source_names_copied_as_is(what: str) -> Iterator[None]:
    """Around a highdicom constructor that copies the patient module from the source image: a person name there
    with a single component (e.g. PatientName "ward") is valid DICOM (PS3.5 6.2.1.2) and is copied as it is;
    highdicom's UserWarning about it is logged instead of printed, without the name (no identifiers in logs)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.filterwarnings("always", message=r"The string .* unlikely to represent the intended person name",
                                category=UserWarning)
        yield
    for w in caught:
        if issubclass(w.category, UserWarning) and "intended person name" in str(w.message):
            log.info("%s: a person name copied from the source image has a single component; kept as it is", what)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _person_name(name: str) -> str:
    """A reader's free-text name as a DICOM PN (PS3.5 6.2.1.2): kept whole as the family name component (a
    trailing ``^`` marks a single-component name), at most 64 characters; ``^`` already there is kept."""
    name = " ".join(str(name).split())[:63]
    return name if "^" in name else name + "^"


def _report(store, study_uid: str) -> Report:  # noqa: ANN001
    """The identified report with every annotated or scored image as a key image, so that every measurement is
    recomputed from the pixels (as in the PDF)."""
    from medviewer.report.content import build_report

    return build_report(store, study_uid, max_key_images=100_000)


def _targets(path, report: Report, suffix: str, n: int) -> list[Path]:  # noqa: ANN001 - str | PathLike
    """``n`` output files for ``path``: a folder (existing, or ending with a separator) gets
    ``<safe basename><suffix>`` (``-2``, ``-3``... before the extension for the 2nd, 3rd object); a file gets
    itself, then ``<stem>-2<ext>``... Each is checked with :func:`check_output_target`."""
    from medviewer.report.export import check_output_target, resolve_output

    first = resolve_output(path, report, suffix)
    out = []
    for i in range(n):
        p = first if i == 0 else first.with_name(f"{first.stem}-{i + 1}{first.suffix}")
        out.append(check_output_target(p))
    return out


def _write_all(items: list[tuple[Any, Path]]) -> list[Path]:
    """Write pydicom datasets to their targets atomically, all or none: each to a temporary file beside its
    target (``.NAME.PID.tmp``, removed by :func:`remove_stale_temporaries` when a killed export left it), then
    all renamed. Raises OSError / ValueError (two objects to one file)."""
    from medviewer.report.export import remove_stale_temporaries

    targets = [os.path.abspath(t) for _, t in items]
    if len(set(targets)) != len(targets):
        raise ValueError("two DICOM objects would be written to the same file")
    tmps: list[Path] = []
    try:
        for ds, target in items:
            target.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_temporaries(target.parent)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            tmps.append(tmp)
            ds.save_as(tmp, enforce_file_format=True)
        for (_, target), tmp in zip(items, tmps, strict=True):
            os.replace(tmp, target)
    finally:
        for t in tmps:
            if t.exists():
                t.unlink()
    return [t for _, t in items]


def _repair_copied_patient(ds) -> None:  # noqa: ANN001 - pydicom Dataset
    """Repair what the objects inherit from a defective source: PatientIdentityRemoved YES with an empty
    DeidentificationMethod and no DeidentificationMethodCodeSequence (Type 1C, PS3.3 C.7.1.1) gets a value saying
    that the source did not state the method."""
    if str(ds.get("PatientIdentityRemoved", "")).upper() == "YES" and not ds.get("DeidentificationMethod") \
            and not ds.get("DeidentificationMethodCodeSequence"):
        ds.DeidentificationMethod = "not stated in the source images"


def _equipment() -> dict:
    from medviewer import __version__

    return {"manufacturer": MANUFACTURER, "manufacturer_model_name": "medviewer", "software_versions": __version__}


# ------------------------------------------------------------------------------------------------------------------
# SR (TID 1500)
# ------------------------------------------------------------------------------------------------------------------


def _algorithm(r: AIResultEntry):  # noqa: ANN202 - highdicom.sr.AlgorithmIdentification
    import highdicom as hd

    params = [f"weights_sha256={r.weights_sha256}", f"positive_label={r.positive_label}",
              f"threshold={float(r.threshold)!r}", f"status={r.status}"]
    if r.scope:
        params.append(f"scope={r.scope}")
    if r.heatmap_method:
        params.append(f"heatmap_method={r.heatmap_method}")
    return hd.sr.AlgorithmIdentification(name=r.model, version=r.version or "unknown", parameters=params)


def _ai_group(r: AIResultEntry, header):  # noqa: ANN001, ANN202 - highdicom group
    import highdicom as hd

    cls, sop, frames = header.SOPClassUID, r.sop_instance_uid, _frames(header, r.frame)
    algo = _algorithm(r)
    finding = _finding_code(r.positive_label)
    track = hd.sr.TrackingIdentifier(
        uid=_uid("ai", sop, r.frame, r.model, r.weights_sha256, r.created_at, r.id),
        identifier=f"{TRACK_AI}{r.model} {r.version} {r.positive_label}")
    measurements, evaluation = [], hd.sr.QualitativeEvaluation(finding, NOT_EVALUATED)
    if r.score is not None:  # a call (scored, or scored anyway at the reader's request)
        measurements.append(hd.sr.Measurement(
            name=PROBABILITY, value=float(r.score), unit=U_PROBABILITY,
            referenced_images=[hd.sr.SourceImageForMeasurement(cls, sop, frames)]))
        evaluation = hd.sr.QualitativeEvaluation(finding, PRESENT if r.positive else ABSENT)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=track, algorithm_id=algo, measurements=measurements or None,
        qualitative_evaluations=[evaluation],
        source_images=[hd.sr.SourceImageForMeasurementGroup(cls, sop, frames)])


def _reader_group(s: ReaderCall, source):  # noqa: ANN001, ANN202 - (SOP class, SOP instance, frames) or None
    import highdicom as hd

    track = hd.sr.TrackingIdentifier(uid=_uid("reader", s.id, s.label, s.created_at),
                                     identifier=f"{TRACK_READER}{s.label}")
    measurements = None
    if s.confidence is not None:
        measurements = [hd.sr.Measurement(name=CERTAINTY, value=float(s.confidence), unit=U_SCORE)]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=track, measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(_finding_code(s.label),
                                                             PRESENT if s.positive else ABSENT)],
        source_images=[hd.sr.SourceImageForMeasurementGroup(*source)] if source else None)


def _note_findings_for_sr(note: NoteSection) -> list[NoteFinding]:
    """The note findings the SR reports: called present or uncertain by the model, or decided on by the reader
    (the other labels are absent and unreviewed: left out, as the PDF's and JSON's full lists keep them)."""
    return [f for f in note.findings if f.state in ("present", "uncertain") or f.decision]


def _note_group(note: NoteSection, f: NoteFinding):  # noqa: ANN202 - highdicom group
    """The TID 1501 group of one note finding: the notes model, and finding -> Present / Absent / Undetermined
    (uncertain: hedged in the note and not decided by the reader) after the reader's review."""
    import highdicom as hd

    params = ["source=note", f"model_state={f.state}", f"probability={float(f.probability)!r}",
              f"threshold={float(f.threshold)!r}"]
    if f.uncertain_probability is not None:
        params.append(f"uncertain_probability={float(f.uncertain_probability)!r}")
    if f.decision:
        params.append(f"decision={f.decision}")
    if note.findings_current is False:
        params.append("findings_current=no")  # classified on an earlier version of the note
    algo = hd.sr.AlgorithmIdentification(name=note.model or "notes classifier", version=note.model_version or "unknown",
                                         parameters=params)
    track = hd.sr.TrackingIdentifier(uid=_uid("note", note.model, note.model_version, note.classified_at, f.label),
                                     identifier=f"{TRACK_NOTE}{f.label}")
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=track, algorithm_id=algo,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(_finding_code(f.label),
                                                             NOTE_STATE_CODES[f.reviewed_state])])


def _roi_graphic(kind: str, points: list) -> tuple[str, np.ndarray]:
    """(GraphicType, (n, 2) float (column, row)) of a rect (closed POLYLINE, 5 points, drawn corner first) or an
    ellipse (ELLIPSE: major axis end points, then minor axis end points, PS3.3 C.18.6.1.2)."""
    (x0, y0), (x1, y1) = points
    if kind == "rect":
        return "POLYLINE", np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)], dtype=np.float64)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    h = [(x0, cy), (x1, cy)]
    v = [(cx, y0), (cx, y1)]
    major, minor = (h, v) if abs(x1 - x0) >= abs(y1 - y0) else (v, h)
    return "ELLIPSE", np.array(major + minor, dtype=np.float64)


def _annotation_group(a: AnnotationEntry, header):  # noqa: ANN001, ANN202 - highdicom group, or None
    """The TID 1501 / 1410 group of one annotation of the report, or None (no measurement)."""
    import highdicom as hd

    m = a.measurement or Measurement(a.kind)
    kind = a.kind
    cls, sop, frames = header.SOPClassUID, a.sop_instance_uid, _frames(header, a.frame)
    track = hd.sr.TrackingIdentifier(uid=_uid("annotation", a.uid), identifier=f"{TRACK_ANNOTATION}{a.uid}")
    calibrated = bool(m.calibrated)
    points = np.array(a.points, dtype=np.float64)
    if kind in ("length", "angle"):
        value = m.length if kind == "length" else m.angle_deg
        if value is None:
            return None
        unit = (U_MM if calibrated else U_PX) if kind == "length" else U_DEG
        coords = hd.sr.CoordinatesForMeasurement(graphic_type="POLYLINE", graphic_data=points,
                                                 source_image=hd.sr.SourceImageForRegion(cls, sop, frames))
        meas = hd.sr.Measurement(name=LENGTH if kind == "length" else ANGLE, value=float(value), unit=unit,
                                 referenced_coordinates=[coords])
        return hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=track, measurements=[meas],
            source_images=[hd.sr.SourceImageForMeasurementGroup(cls, sop, frames)])
    if kind in ("rect", "ellipse"):
        graphic_type, data = _roi_graphic(kind, a.points)
        units = m.units or ""
        unit = U_HU if units == "HU" else U_NONE if not units else Code(units, "UCUM", units)
        measurements = [hd.sr.Measurement(name=code, value=float(getattr(m, key)), unit=unit)
                        for key, code in _STAT_CODES if getattr(m, key) is not None]
        if m.area is not None:
            measurements.append(hd.sr.Measurement(name=AREA, value=float(m.area),
                                                  unit=U_MM2 if calibrated else U_PX2))
        region = hd.sr.ImageRegion(graphic_type=graphic_type, graphic_data=data,
                                   source_image=hd.sr.SourceImageForRegion(cls, sop, frames))
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=track, referenced_region=region, measurements=measurements or None)
    return None  # arrow, text: no measurement in TID 1500


def build_sr(report: Report, headers: dict, *, series_instance_uid: str | None = None,
             sop_instance_uid: str | None = None):  # noqa: ANN201 - highdicom.sr.Comprehensive3DSR
    """The Comprehensive 3D SR (TID 1500) of ``report`` (:func:`~medviewer.report.content.build_report`,
    identified), read from the same :class:`~medviewer.report.model.Report` fields the PDF and the JSON show: the
    AI results (``report.ai.results``), the current reader calls, the note findings (present, uncertain or decided
    on; an uncertain one is Undetermined, never Present) and the annotations' measurements.

    headers: {SOPInstanceUID: pydicom Dataset} of the referenced images (at least their header); results on images
    missing here are left out. The first header gives the patient and study modules (highdicom copies them from the
    evidence, PS3.3 C.17.2). Raises DicomObjectError when no image of the case can be referenced or there is
    nothing to report (no AI result, reader call, note finding or measurement: TID 1500 needs one measurement
    group).
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    if not headers:
        raise DicomObjectError("no image of the case can be read: the SR would reference nothing")
    groups: list = []
    used: dict[str, Any] = {}
    ai_source: dict[int, tuple] = {}
    for r in report.ai.results:
        h = headers.get(r.sop_instance_uid)
        if h is None:
            continue
        used[r.sop_instance_uid] = h
        ai_source[r.id] = (h.SOPClassUID, r.sop_instance_uid, _frames(h, r.frame))
        groups.append(_ai_group(r, h))
    current = report.current_reader_calls()
    for s in current:
        groups.append(_reader_group(s, ai_source.get(s.ai_result_id) if s.ai_result_id is not None else None))
    for f in _note_findings_for_sr(report.note):
        groups.append(_note_group(report.note, f))
    for a in report.all_annotations():
        h = headers.get(a.sop_instance_uid)
        if h is None:
            continue
        g = _annotation_group(a, h)
        if g is not None:
            used[a.sop_instance_uid] = h
            groups.append(g)
    if not groups:
        raise DicomObjectError("the case has no AI result, reader call, note finding or measurement: there is no "
                               "SR to write")
    evidence = list(used.values()) or [next(iter(headers.values()))]

    readers = list(dict.fromkeys(s.reader for s in current if s.reader))
    sign_off = report.sign_off
    if not readers and sign_off.reader:
        readers = [sign_off.reader]
    from medviewer import __version__

    device = hd.sr.ObserverContext(
        observer_type=codes.cid270.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_uid("device", __version__), name="medviewer", manufacturer_name=MANUFACTURER,
            model_name="medviewer", serial_number=__version__))
    person = None
    if readers:
        person = hd.sr.ObserverContext(
            observer_type=codes.cid270.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(readers[0])))
    context = hd.sr.ObservationContext(observer_person_context=person, observer_device_context=device)
    for extra in readers[1:]:  # TID 1001 allows several observers (TID 1002, 1-n)
        context.extend(hd.sr.ObserverContext(
            observer_type=codes.cid270.Person,
            observer_identifying_attributes=hd.sr.PersonObserverIdentifyingAttributes(name=_person_name(extra))))
    tid1500 = hd.sr.MeasurementReport(observation_context=context, procedure_reported=codes.SCT.ImagingProcedure,
                                      imaging_measurements=groups,
                                      referenced_images=[_library_view(h) for h in evidence])
    signed = bool(sign_off.signed)
    first = evidence[0]
    eq = _equipment()
    with _source_names_copied_as_is("SR"):
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence, content=tid1500[0],
            series_instance_uid=series_instance_uid or hd.UID(), series_number=SR_SERIES_NUMBER,
            sop_instance_uid=sop_instance_uid or hd.UID(), instance_number=1, manufacturer=MANUFACTURER,
            is_complete=signed, is_final=signed, is_verified=signed,
            verifying_observer_name=_person_name(sign_off.reader or "unknown") if signed else None,
            verifying_organization=(str(first.get("InstitutionName") or "") or "medviewer") if signed else None,
            institution_name=first.get("InstitutionName") or None,
            series_description=SR_SERIES_DESCRIPTION)
    sr.ManufacturerModelName = eq["manufacturer_model_name"]
    sr.SoftwareVersions = eq["software_versions"]
    _repair_copied_patient(sr)
    if any(g for g in sr.iterall() if g.keyword == "CodingSchemeDesignator" and g.value == LOCAL_SCHEME):
        from pydicom.dataset import Dataset

        item = Dataset()  # not type(first)(): a header read from a file is a FileDataset, which needs a file
        item.CodingSchemeDesignator = LOCAL_SCHEME
        item.CodingSchemeName = "medviewer finding labels"
        item.CodingSchemeResponsibleOrganization = "medviewer"
        sr.CodingSchemeIdentificationSequence = [item]
    return sr


# ------------------------------------------------------------------------------------------------------------------
# SEG and SC
# ------------------------------------------------------------------------------------------------------------------


def _heat_results(store, report: Report) -> list:  # noqa: ANN001
    """The report's AI results that have a stored heat map, as store AIResults (report order)."""
    uid = report.header["StudyInstanceUID"]
    by_id = {r.id: r for r in store.latest_ai_results(uid)}
    out = []
    for r in report.ai.results:
        res = by_id.get(r.id)
        if res is not None and res.heatmap_png:
            out.append(res)
    if not out:
        raise NoHeatmapError(f"no heat map for this case ({uid}): only AI results on chest radiographs within the "
                             "model's intended use have one (export scores the case's CR/DX images when it has no AI "
                             "result yet, unless --no-ai; in the app: R on the image)")
    return out


def build_seg(result, header, rows: int, cols: int):  # noqa: ANN001, ANN201 - AIResult, Dataset -> Segmentation
    """A FRACTIONAL (PROBABILITY, MaxFractionalValue 255) Segmentation of ``result``'s heat map on the image of
    ``header`` (its Rows x Columns), one segment; on a multi-frame image only the result's frame (1-based
    frame number in the derivation references). Raises NoHeatmapError when the result has no heat map,
    DicomObjectError when highdicom cannot place it (a multi-frame image without a Frame of Reference)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    from medviewer.report.render import METHOD_NAMES, resize_heatmap

    heat = result.heatmap()
    if heat is None:
        raise NoHeatmapError("this AI result has no heat map")
    frac = resize_heatmap(heat, rows, cols)
    pixels = frac
    n_frames = int(header.get("NumberOfFrames", 1) or 1)
    if n_frames > 1:  # a frame of a multi-frame image: frames map one to one, the others are left out as empty
        if not 0 <= int(result.frame) < n_frames:
            raise DicomObjectError(f"frame {result.frame} is not in the image ({n_frames} frames)")
        pixels = np.zeros((n_frames, rows, cols), dtype=np.float32)
        pixels[int(result.frame)] = frac
    method = METHOD_NAMES.get(result.heatmap_method, result.heatmap_method or "heat map")
    label = result.heatmap_label or result.positive_label
    algo = hd.AlgorithmIdentificationSequence(
        name=result.model, family=codes.cid7162.ArtificialIntelligence, version=result.model_version or "unknown",
        parameters={"weights_sha256": result.weights_sha256, "attribution": method, "class": label})
    finding = _finding_code(label)
    desc = hd.seg.SegmentDescription(
        segment_number=1, segment_label=f"{method} {label}"[:64],
        segmented_property_category=codes.SCT.ClinicalFinding, segmented_property_type=finding,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algo)
    try:
        seg = _segmentation(hd, header, pixels, n_frames, desc, method, label, result)
    except ValueError as exc:  # e.g. a multi-frame image without a Frame of Reference (highdicom refuses it)
        raise DicomObjectError(f"no Segmentation of this heat map: {exc}") from exc
    if not _valid_spacing(header.get("PixelSpacing")):
        # highdicom copied an invalid PixelSpacing (a CR with 0\\0...): no Pixel Measures rather than wrong ones
        # (the SEG IOD's Pixel Measures macro is conditional on a Frame of Reference, PS3.3 A.51; dciodvfy agrees).
        shared = seg.SharedFunctionalGroupsSequence[0]
        if "PixelMeasuresSequence" in shared and "FrameOfReferenceUID" not in seg:
            del shared.PixelMeasuresSequence
    _copy_orientation(seg, header)
    _repair_copied_patient(seg)
    return seg


def _segmentation(hd, header, pixels, n_frames: int, desc, method: str, label: str, result):  # noqa: ANN001, ANN202
    eq = _equipment()
    with _source_names_copied_as_is("SEG"):
        return hd.seg.Segmentation(
            source_images=[header], pixel_array=pixels,
            segmentation_type=hd.seg.SegmentationTypeValues.FRACTIONAL,
            fractional_type=hd.seg.SegmentationFractionalTypeValues.PROBABILITY, max_fractional_value=255,
            segment_descriptions=[desc], series_instance_uid=hd.UID(), series_number=SEG_SERIES_NUMBER,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer=eq["manufacturer"],
            manufacturer_model_name=eq["manufacturer_model_name"], software_versions=eq["software_versions"],
            device_serial_number=eq["software_versions"], omit_empty_frames=n_frames > 1,
            content_label="HEATMAP", content_description=f"{method} attribution for {label} ({result.model})"[:64],
            series_description=SEG_SERIES_DESCRIPTION)


def _valid_spacing(value) -> bool:  # noqa: ANN001
    try:
        return value is not None and len(value) == 2 and all(float(v) > 0 for v in value)
    except (TypeError, ValueError):
        return False


def _copy_orientation(ds, header, laterality: bool = False) -> None:  # noqa: ANN001
    """PatientOrientation (Type 2C in General Image, PS3.3 C.7.6.1: required without ImageOrientationPatient)
    from the source image, empty when it has none. laterality: also Laterality (Type 2C in General Series,
    C.7.3.1: required for a paired body part without Image Laterality) from the source's Laterality or
    ImageLaterality (R or L), empty (unknown) otherwise."""
    if "ImageOrientationPatient" not in header and "PatientOrientation" not in ds:
        ds.PatientOrientation = header.get("PatientOrientation") or None
    if laterality and "Laterality" not in ds:
        value = str(header.get("Laterality") or header.get("ImageLaterality") or "").upper()
        ds.Laterality = value if value in ("R", "L") else None


def _burned_in(header, modality: str) -> str:  # noqa: ANN001
    from medviewer.report.content import BURNED_IN_PRONE

    flag = str(header.get("BurnedInAnnotation", "") or "").upper()
    if flag == "YES" or (not flag and modality.upper() in BURNED_IN_PRONE):
        return "YES"
    return "NO"


def build_sc(result, header, frame_image, annotations: list[AnnotationEntry]):  # noqa: ANN001, ANN201 - -> SCImage
    """An RGB Secondary Capture of ``result``'s heat map over ``frame_image`` (from
    :func:`medviewer.report.render.load_frame`) with ``annotations`` (the report's), rendered at the image's
    own size by :func:`render_key_image` (colour bar and caption added; no patient text). References the source
    image (SourceImageSequence, PS3.3 C.7.6.1 General Image); BurnedInAnnotation YES when the source has it or is a
    burned-in-prone modality without the flag, else NO (nothing about the patient is drawn). Raises NoHeatmapError
    when the result has no heat map."""
    import highdicom as hd
    from pydicom.dataset import Dataset

    from medviewer.report.export import heatmap_caption
    from medviewer.report.render import render_key_image

    heat = result.heatmap()
    if heat is None:
        raise NoHeatmapError("this AI result has no heat map")
    rows, cols = frame_image.values.shape[:2]
    anns = [{"kind": a.kind, "points": a.points, "text": a.text, "label": a.label} for a in annotations]
    picture = render_key_image(frame_image, annotations=anns, heatmap=heat, heat_caption=heatmap_caption(result),
                               max_side=max(rows, cols))
    pixels = np.ascontiguousarray(np.asarray(picture.convert("RGB"), dtype=np.uint8))
    orientation = [str(v) for v in (header.get("PatientOrientation") or ())]
    known = len(orientation) == 2
    eq = _equipment()
    # highdicom requires a coordinate system (coordinate_system=None raises ValueError), and "PATIENT" requires an
    # orientation: a source without PatientOrientation gets a stand-in that is removed again at once, and
    # _copy_orientation below writes what the source has (empty when nothing).
    with _source_names_copied_as_is("Secondary Capture"):
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=header, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
            coordinate_system="PATIENT", patient_orientation=(orientation[0], orientation[1]) if known else ("L", "F"),
            series_instance_uid=hd.UID(), series_number=SC_SERIES_NUMBER, sop_instance_uid=hd.UID(),
            instance_number=1, manufacturer=eq["manufacturer"], transfer_syntax_uid="1.2.840.10008.1.2.1",
            series_description=SC_SERIES_DESCRIPTION)
    if not known:
        del sc.PatientOrientation
    sc.ManufacturerModelName = eq["manufacturer_model_name"]
    sc.SoftwareVersions = eq["software_versions"]
    sc.BurnedInAnnotation = _burned_in(header, str(header.get("Modality", "")))
    sc.RecognizableVisualFeatures = "NO"
    _copy_orientation(sc, header, laterality=True)
    _repair_copied_patient(sc)
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.DerivationDescription = f"{heatmap_caption(result)}; overlay with colour bar and reader annotations"[:1024]
    src = Dataset()
    src.ReferencedSOPClassUID = header.SOPClassUID
    src.ReferencedSOPInstanceUID = header.SOPInstanceUID
    frames = _frames(header, result.frame)
    if frames:
        src.ReferencedFrameNumber = frames
    sc.SourceImageSequence = [src]
    return sc


# ------------------------------------------------------------------------------------------------------------------
# export
# ------------------------------------------------------------------------------------------------------------------


def export_dicom_objects(store, study_uid: str, *, sr=None, seg=None, sc=None,  # noqa: ANN001 - paths
                         log_event: bool = True) -> dict:
    """Write the case's SR and/or SEG and/or SC (see the module docstring); returns
    ``{"sr": [path], "seg": [paths], "sc": [paths], "warnings": [...]}`` (only the kinds asked for).

    sr / seg / sc: an output file, or a folder (existing, or ending with a separator: files named from the
    report's pseudonym, :func:`medviewer.report.deid.safe_basename`, with ``-sr.dcm``, ``-seg.dcm``, ``-sc.dcm``).
    SEG and SC write one object per AI result with a heat map; the 2nd, 3rd... get ``-2``, ``-3`` before the
    extension. Everything asked for is written to temporary files first and renamed at the end: when one object
    fails, none is written. log_event: record "DICOM objects exported" in the case's history.

    Raises ReportError (unknown case), NoHeatmapError (SEG or SC asked for and no heat map: nothing is written),
    DicomObjectError (no readable image, nothing to report in an SR), ValueError (an output is a FIFO/device/link
    into /dev, or two outputs are one file), medviewer.io.pixels.PixelDecodeError (SC: the scored image cannot be
    decoded), OSError (cannot write).
    """
    from medviewer.report.render import load_frame

    if sr is None and seg is None and sc is None:
        raise ValueError("no DICOM object asked for (sr, seg or sc)")
    report = _report(store, study_uid)
    sops = {r.sop_instance_uid for r in report.ai.results}
    sops |= {a.sop_instance_uid for a in report.all_annotations()}
    heat = _heat_results(store, report) if (seg is not None or sc is not None) else []
    headers, warnings = _read_headers(store, study_uid, sops | {r.sop_instance_uid for r in heat})
    if not headers:  # nothing referenced can be read (or nothing referenced): the first readable image
        first, _ = _read_headers(store, study_uid, {i["sop_instance_uid"] for i in store.case_images(study_uid)})
        headers = dict(list(first.items())[:1])
    heat = [r for r in heat if r.sop_instance_uid in headers]
    if (seg is not None or sc is not None) and not heat:
        raise NoHeatmapError(f"no heat map on a readable image of this case ({study_uid})")
    items: list[tuple[Any, Path]] = []
    out: dict[str, list[str]] = {}
    if sr is not None:
        [target] = _targets(sr, report, "-sr.dcm", 1)
        items.append((build_sr(report, headers), target))
        out["sr"] = [str(target)]
    if seg is not None:
        targets = _targets(seg, report, "-seg.dcm", len(heat))
        for r, target in zip(heat, targets, strict=True):
            h = headers[r.sop_instance_uid]
            items.append((build_seg(r, h, int(h.Rows), int(h.Columns)), target))
        out["seg"] = [str(t) for t in targets]
    if sc is not None:
        targets = _targets(sc, report, "-sc.dcm", len(heat))
        paths = {img["sop_instance_uid"]: img["path"] for img in store.case_images(study_uid)}
        anns = report.all_annotations()
        for r, target in zip(heat, targets, strict=True):
            fi = load_frame(paths[r.sop_instance_uid], r.frame)
            mine = [a for a in anns if a.sop_instance_uid == r.sop_instance_uid and a.frame == r.frame]
            items.append((build_sc(r, headers[r.sop_instance_uid], fi, mine), target))
        out["sc"] = [str(t) for t in targets]
    _write_all(items)
    if log_event and not getattr(store, "read_only", False):
        store.log_event(study_uid, "DICOM objects exported", **out)
    out["warnings"] = warnings
    return out


def write_sr(store, study_uid: str, path) -> Path:  # noqa: ANN001
    """Write the case's TID 1500 SR to ``path`` (file or folder); returns the file. See
    :func:`export_dicom_objects` for what is raised."""
    return Path(export_dicom_objects(store, study_uid, sr=path)["sr"][0])


def write_seg(store, study_uid: str, path) -> list[Path]:  # noqa: ANN001
    """Write one heat-map Segmentation per AI result with a heat map; returns the files. Raises NoHeatmapError
    when the case has none (see :func:`export_dicom_objects`)."""
    return [Path(p) for p in export_dicom_objects(store, study_uid, seg=path)["seg"]]


def write_sc(store, study_uid: str, path) -> list[Path]:  # noqa: ANN001
    """Write one RGB heat-map overlay Secondary Capture per AI result with a heat map; returns the files. Raises
    NoHeatmapError when the case has none (see :func:`export_dicom_objects`)."""
    return [Path(p) for p in export_dicom_objects(store, study_uid, sc=path)["sc"]]


# ------------------------------------------------------------------------------------------------------------------
# reading back
# ------------------------------------------------------------------------------------------------------------------


def _code_of(item, keyword: str = "ConceptNameCodeSequence") -> tuple[str, str, str]:  # noqa: ANN001
    seq = item.get(keyword)
    if not seq:
        return ("", "", "")
    c = seq[0]
    return (str(c.get("CodeValue", "") or c.get("LongCodeValue", "") or c.get("URNCodeValue", "")),
            str(c.get("CodingSchemeDesignator", "")), str(c.get("CodeMeaning", "")))


def _is(item, code: Code) -> bool:  # noqa: ANN001
    v, s, _ = _code_of(item)
    return v == code.value and s == code.scheme_designator


def _children(item) -> list:  # noqa: ANN001
    return list(item.get("ContentSequence") or [])


def _num(item) -> tuple[float, str]:  # noqa: ANN001
    """(value, UCUM unit code) of a NUM content item; FloatingPointValue when present (full precision)."""
    mv = item.MeasuredValueSequence[0]
    value = float(mv.FloatingPointValue) if "FloatingPointValue" in mv else float(mv.NumericValue)
    return value, _code_of(mv, "MeasurementUnitsCodeSequence")[0]


def _image_ref(item) -> dict:  # noqa: ANN001
    """{sop_class_uid, sop_instance_uid, frame (0-based)} of an IMAGE item (or of the IMAGE child of a SCOORD)."""
    if item.get("ValueType") != "IMAGE":
        for child in _children(item):
            if child.get("ValueType") == "IMAGE":
                return _image_ref(child)
        return {}
    ref = item.ReferencedSOPSequence[0]
    frames = ref.get("ReferencedFrameNumber")
    frame = 0
    if frames is not None:
        frames = list(frames) if isinstance(frames, (list, tuple)) or type(frames).__name__ == "MultiValue" \
            else [frames]
        frame = int(frames[0]) - 1 if frames else 0
    return {"sop_class_uid": str(ref.ReferencedSOPClassUID), "sop_instance_uid": str(ref.ReferencedSOPInstanceUID),
            "frame": frame}


def _scoord(item) -> tuple[str, list[list[float]], dict]:  # noqa: ANN001
    data = [float(v) for v in item.GraphicData]
    return str(item.GraphicType), [[data[i], data[i + 1]] for i in range(0, len(data) - 1, 2)], _image_ref(item)


def _roi_points(graphic_type: str, pts: list[list[float]]) -> tuple[str, list[list[float]]] | None:
    """(kind, our two corner points) of an Image Region, or None when it is no rect/ellipse of ours."""
    if graphic_type == "ELLIPSE" and len(pts) == 4:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return "ellipse", [[min(xs), min(ys)], [max(xs), max(ys)]]
    if graphic_type == "POLYLINE" and len(pts) == 5 and pts[0] == pts[4]:
        (x0, y0), (x1, y1) = pts[0], pts[2]
        if pts[1] == [x1, y0] and pts[3] == [x0, y1]:
            return "rect", [[x0, y0], [x1, y1]]
    return None


def _algorithm_item(item, algo: dict, params: dict) -> None:  # noqa: ANN001
    """Collect a TID 4019 Algorithm Version / Algorithm Parameters (``key=value``) TEXT item."""
    if _is(item, Code("111003", "DCM", "Algorithm Version")):
        algo["version"] = str(item.TextValue)
    elif _is(item, Code("111002", "DCM", "Algorithm Parameters")):
        k, _, v = str(item.TextValue).partition("=")
        params[k] = v


def is_medviewer_sr(ds) -> bool:  # noqa: ANN001 - pydicom Dataset
    """True for an SR written by :func:`build_sr`: Manufacturer ``medviewer`` and a TID 1500 root."""
    if str(ds.get("Manufacturer", "") or "") != MANUFACTURER:
        return False
    templates = ds.get("ContentTemplateSequence") or []
    return any(str(t.get("TemplateIdentifier", "")) == "1500" for t in templates)


def read_sr(source) -> dict:  # noqa: ANN001 - path or pydicom Dataset
    """Parse one of our TID 1500 SRs (:func:`build_sr`) back.

    Returns ``{"sop_instance_uid", "series_instance_uid", "study_instance_uid", "patient_id", "medviewer": bool,
    "verified": bool, "observers": [person names], "ai_results": [...], "reader_calls": [...],
    "note_findings": [...], "measurements": [...]}`` with

    * AI results: ``model``, ``version``, ``weights_sha256``, ``positive_label``, ``threshold``, ``status``,
      ``scope``, ``heatmap_method``, ``finding`` (the code meaning), ``call`` ("present", "absent" or
      "not evaluated"), ``positive`` (bool or None), ``probability`` (float or None), ``sop_class_uid``,
      ``sop_instance_uid``, ``frame`` (0-based), ``tracking_uid``;
    * reader calls: ``label``, ``positive``, ``confidence`` (int 1..5 or None), ``reader`` (the only person observer,
      "" when there are several), ``tracking_uid``;
    * note findings: ``label``, ``state`` after the reader's review ("present", "absent", "uncertain" for
      Undetermined), ``model_state``, ``decision`` ("" when none), ``model``, ``version``, ``probability``,
      ``uncertain_probability`` (floats or None), ``tracking_uid``; they are not imported into a case store (the
      note they were read from is not in the SR);
    * measurements: ``kind`` (length, angle, rect, ellipse), ``points`` ([[x, y], ...] in medviewer's image pixel
      coordinates, which are the SCOORD ones), ``value`` and ``unit`` (length mm / px, angle deg, ROI mean in its
      unit "HU" or ""), ``measurement`` (the dict the case store keeps with an annotation: calibrated, units, length
      / angle_deg / mean / sd / minimum / maximum / area), ``annotation_uid`` (ours, from the tracking
      identifier, else derived from the SR's SOPInstanceUID and the tracking UID), the image reference.

    Foreign SRs parse as far as they follow the same patterns. Raises ValueError when ``source`` is not an SR
    with a content tree (and what pydicom raises for an unreadable file).
    """
    import pydicom

    ds = source if isinstance(source, pydicom.Dataset) else pydicom.dcmread(source)
    if "ContentSequence" not in ds:
        raise ValueError("not a structured report with a content tree")
    out: dict[str, Any] = {
        "sop_instance_uid": str(ds.get("SOPInstanceUID", "")),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "study_instance_uid": str(ds.get("StudyInstanceUID", "")), "patient_id": str(ds.get("PatientID", "")),
        "medviewer": is_medviewer_sr(ds), "verified": str(ds.get("VerificationFlag", "")) == "VERIFIED",
        "observers": [], "ai_results": [], "reader_calls": [], "note_findings": [], "measurements": [],
    }
    groups: list[Dataset] = []
    for item in ds.ContentSequence:
        if item.get("ValueType") == "PNAME" and _is(item, Code("121008", "DCM", "Person Observer Name")):
            out["observers"].append(str(item.PersonName).rstrip("^"))
        if item.get("ValueType") == "CONTAINER" and _is(item, Code("126010", "DCM", "Imaging Measurements")):
            groups.extend(g for g in _children(item) if _is(g, Code("125007", "DCM", "Measurement Group")))
    only_reader = out["observers"][0] if len(out["observers"]) == 1 else ""
    for g in groups:
        track_text, track_uid = "", ""
        algo: dict[str, str] = {}
        params: dict[str, str] = {}
        nums, codes_, regions, sources = [], [], [], []
        for c in _children(g):
            vt = c.get("ValueType")
            if vt == "TEXT" and _is(c, Code("112039", "DCM", "Tracking Identifier")):
                track_text = str(c.TextValue)
            elif vt == "UIDREF" and _is(c, Code("112040", "DCM", "Tracking Unique Identifier")):
                track_uid = str(c.UID)
            elif vt == "TEXT" and _is(c, Code("111001", "DCM", "Algorithm Name")):
                # TID 4019: name, version and parameters are siblings (some writers nest them under the name)
                algo["model"] = str(c.TextValue)
                for cc in [c, *_children(c)]:
                    _algorithm_item(cc, algo, params)
            elif vt == "TEXT":
                _algorithm_item(c, algo, params)
            elif vt == "NUM":
                nums.append(c)
            elif vt == "CODE":
                codes_.append(c)
            elif vt == "SCOORD" and _is(c, Code("111030", "DCM", "Image Region")):
                regions.append(c)
            elif vt == "IMAGE":
                sources.append(_image_ref(c))
        evaluation = next(((n, _code_of(c, "ConceptCodeSequence")) for c in codes_
                           for n in [_code_of(c)]), None)
        if track_text.startswith(TRACK_NOTE):
            state = {c.value: k for k, c in NOTE_STATE_CODES.items()}.get(evaluation[1][0] if evaluation else "")
            p_text, u_text = params.get("probability"), params.get("uncertain_probability")
            out["note_findings"].append({
                "label": track_text[len(TRACK_NOTE):], "state": state or "absent",
                "model_state": params.get("model_state", ""), "decision": params.get("decision", ""),
                "model": algo.get("model", ""), "version": algo.get("version", ""),
                "probability": float(p_text) if p_text else None,
                "uncertain_probability": float(u_text) if u_text else None,
                "tracking_uid": track_uid})
            continue
        if algo:
            prob = next((_num(n)[0] for n in nums if _is(n, PROBABILITY)), None)
            ref = sources[0] if sources else {}
            call = {PRESENT.value: "present", ABSENT.value: "absent"}.get(evaluation[1][0] if evaluation else "",
                                                                          "not evaluated")
            out["ai_results"].append({
                "model": algo.get("model", ""), "version": algo.get("version", ""),
                "weights_sha256": params.get("weights_sha256", ""),
                "positive_label": params.get("positive_label", evaluation[0][2] if evaluation else ""),
                "threshold": float(params["threshold"]) if params.get("threshold") else None,
                "status": params.get("status", "scored" if prob is not None else "out_of_scope"),
                "scope": params.get("scope", ""), "heatmap_method": params.get("heatmap_method", ""),
                "finding": evaluation[0][2] if evaluation else "", "call": call,
                "positive": None if call == "not evaluated" else call == "present", "probability": prob,
                "tracking_uid": track_uid, **{k: ref.get(k) for k in ("sop_class_uid", "sop_instance_uid", "frame")}})
            continue
        if track_text.startswith(TRACK_READER) or (evaluation and not nums and not regions) or \
                (evaluation and nums and all(_is(n, CERTAINTY) for n in nums)):
            label = track_text[len(TRACK_READER):] if track_text.startswith(TRACK_READER) else \
                (evaluation[0][2] if evaluation else "")
            conf = next((_num(n)[0] for n in nums if _is(n, CERTAINTY)), None)
            out["reader_calls"].append({
                "label": label, "positive": bool(evaluation and evaluation[1][0] == PRESENT.value),
                "confidence": int(round(conf)) if conf is not None else None, "reader": only_reader,
                "tracking_uid": track_uid})
            continue
        ann_uid = track_text[len(TRACK_ANNOTATION):].strip() if track_text.startswith(TRACK_ANNOTATION) else ""
        if not re.fullmatch(r"[0-9a-f]{32}", ann_uid):
            ann_uid = hashlib.sha256(f"{out['sop_instance_uid']}|{track_uid}".encode()).hexdigest()[:32]
        entry: dict[str, Any] | None = None
        if regions:
            gt, pts, ref = _scoord(regions[0])
            shape = _roi_points(gt, pts)
            if shape is None:
                continue
            kind, points = shape
            m: dict[str, Any] = {"kind": kind, "calibrated": True, "units": ""}
            for n in nums:
                value, unit = _num(n)
                key = _ROI_STAT_NAMES.get(_code_of(n)[:2])
                if key:
                    m[key] = value
                    m["units"] = "HU" if unit == U_HU.value else "" if unit == U_NONE.value else unit
                elif _is(n, AREA):
                    m["area"] = value
                    m["calibrated"] = unit == U_MM2.value
            entry = {"kind": kind, "points": points, "value": m.get("mean"), "unit": m["units"], "measurement": m,
                     **ref}
        else:
            for n in nums:
                if not (_is(n, LENGTH) or _is(n, ANGLE)):
                    continue
                value, unit = _num(n)
                coords = [c for c in _children(n) if c.get("ValueType") == "SCOORD"]
                if not coords:
                    continue
                gt, pts, ref = _scoord(coords[0])
                if _is(n, LENGTH) and len(pts) == 2:
                    calibrated = unit == U_MM.value
                    m = {"kind": "length", "calibrated": calibrated, "length": value}
                    if not calibrated:
                        from medviewer.imaging.annotations import NO_SPACING_WARNING

                        m["warning"] = NO_SPACING_WARNING
                    entry = {"kind": "length", "points": pts, "value": value, "unit": "mm" if calibrated else "px",
                             "measurement": m, **ref}
                elif _is(n, ANGLE) and len(pts) == 3:
                    entry = {"kind": "angle", "points": pts, "value": value, "unit": "deg",
                             "measurement": {"kind": "angle", "calibrated": True, "angle_deg": value}, **ref}
                break
        if entry is not None:
            entry["annotation_uid"] = ann_uid
            entry["tracking_uid"] = track_uid
            out["measurements"].append(entry)
    return out


# ------------------------------------------------------------------------------------------------------------------
# read-back into the case store
# ------------------------------------------------------------------------------------------------------------------


def _seg_heatmaps(study) -> dict:  # noqa: ANN001 - medviewer.io.model.Study
    """{(SOPInstanceUID, frame, model, version, weights sha256): (heat (rows, cols) float32 in [0, 1], class
    label)} of medviewer's heat-map Segmentations (:func:`build_seg`) in ``study``; unreadable or foreign SEGs
    are skipped."""
    import pydicom

    out = {}
    for series in study.series.values():
        for inst in series.non_image_instances:
            if inst.kind != "SEG":
                continue
            try:
                ds = pydicom.dcmread(inst.path)
                if str(ds.get("Manufacturer", "")) != MANUFACTURER or ds.get("SegmentationType") != "FRACTIONAL":
                    continue
                algo = ds.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
                params = dict(p.partition("=")[::2] for p in str(algo.get("AlgorithmParameters", "")).split(","))
                try:  # the frame's own derivation reference (frame number of a multi-frame source)
                    src = ds.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
                except (AttributeError, IndexError):
                    src = ds.SourceImageSequence[0]
                frames = src.get("ReferencedFrameNumber")
                frame = int(frames[0] if isinstance(frames, (list, tuple)) or type(frames).__name__ == "MultiValue"
                            else frames) - 1 if frames is not None else 0
                heat = np.asarray(ds.pixel_array, dtype=np.float32).reshape(int(ds.Rows), int(ds.Columns))
                heat /= float(ds.get("MaximumFractionalValue", 255) or 255)
                key = (str(src.ReferencedSOPInstanceUID), frame, str(algo.AlgorithmName), str(algo.AlgorithmVersion),
                       params.get("weights_sha256", ""))
                out[key] = (np.clip(heat, 0.0, 1.0), params.get("class", ""))
            except Exception as exc:  # noqa: BLE001 - a damaged SEG only loses its heat map
                log.warning("SEG %s not read for its heat map: %s", inst.sop_instance_uid, exc)
    return out


def import_dicom_results(store, study) -> dict:  # noqa: ANN001 - CaseStore, medviewer.io.model.Study
    """Bring the results of medviewer's own SRs in ``study`` (a scanned :class:`medviewer.io.model.Study`: its
    series' ``non_image_instances`` of kind "SR") into the study's case: measurements as annotations (with their
    measurement dicts), AI results as AI results (with the heat map of our Segmentation of the same image, model,
    version and weights when the study holds one: :func:`build_seg`), current reader calls as radiologist
    scores.

    Only SRs for which :func:`is_medviewer_sr` holds and whose StudyInstanceUID is the study's are read; others
    are skipped with a log line. Idempotent: an SR already imported into the case (an ``IMPORT_EVENT`` event names
    its SOPInstanceUID) is skipped; an annotation whose uid the case already has (live or deleted: a deletion is
    kept), an AI result equal to one the case has (image, frame, model, version, weights, status, probability to
    1e-6) and a reader call equal to one the case has (label, call, confidence, reader) are not added again.
    Nothing happens when the case does not exist or the store is read-only.

    Returns ``{"srs": n read, "annotations": n added, "ai_results": n added, "reader_calls": n added,
    "ignored": [paths of foreign or unreadable SRs]}``.
    """
    import pydicom

    from medviewer.imaging.annotations import Annotation
    from medviewer.inference.scorer import ScoreResult

    counts: dict[str, Any] = {"srs": 0, "annotations": 0, "ai_results": 0, "reader_calls": 0, "ignored": []}
    uid = study.study_instance_uid
    srs = [i for s in study.series.values() for i in s.non_image_instances if i.kind == "SR"]
    if not srs or getattr(store, "read_only", False) or store.get_case(uid) is None:
        return counts
    done = {e.detail.get("sr_sop_instance_uid") for e in store.events(uid) if e.kind == IMPORT_EVENT}
    heatmaps = None  # read from the study's SEGs when an AI result is imported
    for inst in srs:
        if inst.sop_instance_uid in done:
            continue
        try:
            ds = pydicom.dcmread(inst.path)
        except Exception as exc:  # noqa: BLE001 - an unreadable SR is skipped, the study still opens
            log.warning("SR %s not imported: cannot read it (%s)", inst.sop_instance_uid, type(exc).__name__)
            counts["ignored"].append(inst.path)
            continue
        if not is_medviewer_sr(ds):
            log.info("SR %s ignored: not written by medviewer (Manufacturer %r)", inst.sop_instance_uid,
                     str(ds.get("Manufacturer", "")))
            counts["ignored"].append(inst.path)
            continue
        if str(ds.get("StudyInstanceUID", "")) != uid:
            log.warning("SR %s ignored: it belongs to another study", inst.sop_instance_uid)
            counts["ignored"].append(inst.path)
            continue
        try:
            parsed = read_sr(ds)
        except (ValueError, AttributeError, KeyError, IndexError, TypeError) as exc:
            log.warning("SR %s not imported: malformed content (%s)", inst.sop_instance_uid, exc)
            counts["ignored"].append(inst.path)
            continue
        counts["srs"] += 1
        before = dict(counts)
        known_anns = {a.uid for a in store.annotations(uid, include_deleted=True)}
        for m in parsed["measurements"]:
            if m["annotation_uid"] in known_anns or not m.get("sop_instance_uid"):
                continue
            ann = Annotation(m["kind"], [tuple(p) for p in m["points"]], m["sop_instance_uid"], m.get("frame") or 0,
                             "", m["annotation_uid"])
            store.save_annotation(uid, ann, m["measurement"])
            known_anns.add(ann.uid)
            counts["annotations"] += 1
        existing = store.ai_results(uid)
        for r in parsed["ai_results"]:
            if not r.get("sop_instance_uid") or r.get("threshold") is None:
                continue
            p = r["probability"]
            if any(e.sop_instance_uid == r["sop_instance_uid"] and e.frame == r["frame"] and e.model == r["model"]
                   and e.model_version == r["version"] and e.weights_sha256 == r["weights_sha256"]
                   and e.status == r["status"] and (p is None or abs(e.score - p) <= 1e-6) for e in existing):
                continue
            scope = r.get("scope") or ""
            reason = scope[scope.find("(") + 1:scope.rfind(")")] if "(" in scope else scope
            if heatmaps is None:
                heatmaps = _seg_heatmaps(study)
            heat, heat_label = heatmaps.get((r["sop_instance_uid"], r["frame"], r["model"], r["version"],
                                             r["weights_sha256"]), (None, ""))
            res = ScoreResult(
                sop_instance_uid=r["sop_instance_uid"], model=r["model"], version=r["version"],
                weights_sha256=r["weights_sha256"], probabilities={r["positive_label"]: p} if p is not None else {},
                threshold=float(r["threshold"]), positive_label=r["positive_label"], positive=bool(r["positive"]),
                frame=int(r["frame"] or 0), heatmap=heat,
                heatmap_method=r.get("heatmap_method", "") if heat is not None else "",
                heatmap_label=(heat_label or r["positive_label"]) if heat is not None else "",
                status=r["status"] if r["status"] in ("scored", "out_of_scope", "scored_anyway") else "scored",
                scope_reason=reason)
            store.add_ai_result(uid, res)
            counts["ai_results"] += 1
        scores = store.radiologist_scores(uid)
        for c in parsed["reader_calls"]:
            if any(s.label == c["label"] and s.positive == c["positive"] and s.confidence == c["confidence"]
                   and (not c["reader"] or s.reader == c["reader"]) for s in scores):
                continue
            store.add_radiologist_score(uid, c["label"], c["positive"], c["confidence"],
                                        comment="imported from a medviewer DICOM SR", reader=c["reader"])
            counts["reader_calls"] += 1
        store.log_event(uid, IMPORT_EVENT, sr_sop_instance_uid=parsed["sop_instance_uid"],
                        **{k: counts[k] - before[k] for k in ("annotations", "ai_results", "reader_calls")})
    return counts


def register_index_with_results(store, index, source_path: str = "") -> list[int]:  # noqa: ANN001
    """:meth:`CaseStore.register_index` (every study of a scan that has images becomes a case), then
    :func:`import_dicom_results` for every study of the scan whose case exists (a folder holding only our SR adds
    its results to a case registered before). Returns the case ids registered. The one call site of the
    read-back: the viewer's and the CLI's scans register through here."""
    ids = store.register_index(index, source_path)
    for patient in index.patients.values():
        for study in patient.studies.values():
            try:
                import_dicom_results(store, study)
            except Exception as exc:  # noqa: BLE001 - a failed import never stops the registration
                log.warning("results of the SRs in study %s not imported: %s", study.study_instance_uid, exc)
    return ids
