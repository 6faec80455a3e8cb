"""The content of a case report: one typed :class:`~medviewer.report.model.Report` (JSON schema
``medviewer.report/1``) built from the case store.

:func:`build_report` gathers, for one study: the patient/study header, the key images with their annotations
(measurements recomputed from the pixels where the image can be read, so ROI statistics are in modality units such
as HU), the latest AI result per image and model with the model card's summary, the latest note and its classified
findings with the radiologist's decisions, the radiologist's calls and the sign-off, and the times of all of these.

Conventions: header values keep their DICOM formats (names with ``^``, dates ``YYYYMMDD``, times ``HHMMSS``),
keyed by DICOM keyword; every time the report adds is ISO 8601 UTC (``2024-05-01T12:34:56Z``); probabilities are
in [0, 1]; lengths in mm (px when the image has no PixelSpacing), areas in mm2, ROI statistics in the image's
modality units. Image file paths and the case's source path are never part of the content.

The PDF, the JSON (:meth:`Report.to_dict <medviewer.report.model.Report.to_dict>`) and the DICOM SR are all
written from the :class:`~medviewer.report.model.Report` returned here; :mod:`medviewer.report.model` documents
every field.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
from dataclasses import fields as _fields

from medviewer import __version__
from medviewer.imaging.annotations import Annotation, Measurement, measure
from medviewer.notes.states import PRESENT, finding_state
from medviewer.report.model import (NOT_FOR_DIAGNOSTIC_USE, SCHEMA, AIResultEntry, AISection, AnnotationEntry,
                                    CaseSummary, Generator, KeyImage, ModelSummary, NoteFinding, NoteSection,
                                    ReaderCall, Report, SignOff, Timestamps, WindowSetting)

log = logging.getLogger(__name__)

#: Header attributes copied from the first image's DICOM header when present (besides the case's own).
DICOM_HEADER_EXTRAS = (
    "PatientAge", "OtherPatientIDs", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName",
    "PatientAddress", "PatientTelephoneNumbers", "MedicalRecordLocator", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "OperatorsName", "PhysiciansOfRecord", "RequestingPhysician", "VerifyingObserverName", "StationName",
    "DeviceSerialNumber", "Manufacturer", "ManufacturerModelName", "BodyPartExamined",
)

#: Modalities whose pixels often carry burned-in text (ultrasound, secondary capture, endoscopy, photos...).
BURNED_IN_PRONE = ("US", "SC", "OT", "XC", "ES", "GM", "SM", "DOC")


class ReportError(ValueError):
    """The report cannot be built (unknown StudyInstanceUID)."""


def iso_utc(t: float | None) -> str | None:
    """UTC epoch seconds -> ISO 8601 ``YYYY-MM-DDTHH:MM:SSZ`` (None stays None)."""
    if t is None:
        return None
    return _dt.datetime.fromtimestamp(float(t), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def case_pseudonym(patient_id: str, patient_name: str, study_instance_uid: str, salt: str) -> str:
    """A stable pseudonym ``ANON-XXXXXXXXXX`` of a patient: keyed SHA-256 (HMAC) of the patient ID and name with
    the installation's secret ``salt`` (falls back on the StudyInstanceUID when both are empty). It cannot be
    reversed or recomputed without the salt."""
    import hmac

    key = f"patient|{patient_id.strip()}|{patient_name.strip().upper()}" if (patient_id or patient_name) \
        else f"study|{study_instance_uid}"
    digest = hmac.new(salt.encode("utf-8"), key.encode("utf-8"), hashlib.sha256).hexdigest()
    return "ANON-" + digest[:10].upper()


def measurement_from_dict(d: dict) -> Measurement | None:
    """A :class:`~medviewer.imaging.annotations.Measurement` from its stored dict (unknown keys ignored), or
    None when the dict is empty or malformed."""
    if not d:
        return None
    known = {f.name for f in _fields(Measurement)}
    try:
        return Measurement(**{k: v for k, v in d.items() if k in known})
    except TypeError as exc:
        log.warning("stored measurement not readable (%s): the report recomputes it or leaves it out", exc)
        return None


def _without_paths(text: str, path: str) -> str:
    """``text`` (an error message) with the image's path and file name removed: both may name the patient."""
    import os

    if not path:
        return text
    folder = os.path.dirname(path)
    name = os.path.basename(path)
    text = text.replace(path, "the image file")
    text = text.replace(folder + os.sep, "").replace(folder, "") if folder else text
    return text.replace(name, "the image file") if name else text


def _image_label(img: dict | None, frame: int = 0) -> str:
    """A short name of an image (modality and InstanceNumber, no descriptions: nothing to de-identify)."""
    if img is None:
        return "image not in the case"
    desc = img.get("modality") or "image"
    num = img.get("instance_number")
    text = f"{desc} #{num}" if num is not None else desc
    if int(img.get("number_of_frames") or 1) > 1:
        text += f" frame {frame + 1}/{img['number_of_frames']}"
    return text


def _ai_entry(r, img: dict | None) -> AIResultEntry:  # noqa: ANN001 - medviewer.store.cases.AIResult
    return AIResultEntry(
        id=r.id, sop_instance_uid=r.sop_instance_uid, frame=r.frame, image=_image_label(img, r.frame),
        model=r.model, version=r.model_version, weights_sha256=r.weights_sha256,
        probabilities={k: float(v) for k, v in r.probabilities.items()}, positive_label=r.positive_label,
        score=float(r.score) if r.has_call else None, threshold=float(r.threshold),
        positive=bool(r.positive) if r.has_call else None,
        status=r.status, scope=r.scope_text(), warnings=list(r.warnings),
        heatmap_method=r.heatmap_method, heatmap_label=r.heatmap_label, has_heatmap=bool(r.heatmap_png),
        created_at=iso_utc(r.created_at),
    )


def _card_summary(name: str, results: list[AIResultEntry]) -> ModelSummary:
    """The model card's summary for the report (name, version, intended use, test metrics)."""
    from medviewer.config import models_dir
    from medviewer.inference.card import ModelCardError, load_card

    try:
        card = load_card(models_dir() / name, verify_sha=False)
    except (ModelCardError, OSError):
        return ModelSummary(name=name, available=False, note="model card not found on this installation")
    test = card.metrics.get("test", {}) if isinstance(card.metrics.get("test"), dict) else {}
    metrics = {k: test[k] for k in ("auc", "accuracy", "sensitivity", "specificity", "balanced_accuracy", "n",
                                    "n_positive") if k in test}
    shas = {r.weights_sha256 for r in results if r.model == name}
    return ModelSummary(
        name=card.name, version=card.version, available=True, task=card.task,
        labels=list(card.labels), positive_label=str(card.extra.get("positive_label", card.labels[-1])),
        threshold=float(card.threshold), threshold_rule=str(card.extra.get("threshold_rule", "")),
        intended_use=card.intended_use, training_data=str(card.training_data.get("name", "")),
        test_metrics=metrics, weights_sha256=card.weights_sha256, summary=card.summary(),
        results_match_card_weights=shas <= {card.weights_sha256},
        not_for_diagnostic_use=NOT_FOR_DIAGNOSTIC_USE,
    )


def _dicom_extras(path: str) -> dict[str, str]:
    """Header attributes of :data:`DICOM_HEADER_EXTRAS` present in a file, as strings, plus
    ``PersonNamesElsewhere``: every other person name (VR PN) in the header, nested sequences and private
    elements included, and ``AddressesElsewhere``: every other address, telephone number and residence attribute
    ({} when unreadable)."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # noqa: BLE001 - a missing or damaged file only loses the extras
        return {}
    out = {}
    for kw in DICOM_HEADER_EXTRAS:
        try:
            v = ds.get(kw)
        except Exception:  # noqa: BLE001 - a value that cannot be decoded is no extra
            continue
        if v is None or v == "":
            continue
        if type(v).__name__ == "MultiValue" or isinstance(v, (list, tuple)):
            v = "\\".join(str(x) for x in v)
        out[kw] = str(v)
    named = set(DICOM_HEADER_EXTRAS) | {"PatientName"}
    others: list[str] = []
    places: list[str] = []

    def visit(dataset, elem) -> None:  # noqa: ANN001 - pydicom's walk callback
        try:
            if elem.keyword in named or elem.value in (None, "") or elem.VR == "SQ":
                return
            kw = elem.keyword or ""
            values = elem.value if type(elem.value).__name__ == "MultiValue" else [elem.value]
            if elem.VR == "PN":
                others.extend(str(v) for v in values if str(v).strip())
            elif kw.endswith(("Address", "TelephoneNumbers", "Residence")) or kw in ("PersonTelecomInformation",):
                places.extend(str(v) for v in values if str(v).strip())
        except Exception:  # noqa: BLE001 - an undecodable element names nobody we can read
            pass

    try:
        ds.walk(visit)
    except Exception:  # noqa: BLE001 - a damaged sequence stops the walk; what was found is kept
        pass
    if others:
        out["PersonNamesElsewhere"] = "\\".join(dict.fromkeys(others))
    if places:
        out["AddressesElsewhere"] = "\\".join(dict.fromkeys(places))
    return out


def _case_header_extras(images: list[dict]) -> dict[str, str]:
    """:func:`_dicom_extras` of every image of the case, merged: each attribute lists the distinct values of all
    instances (an identifier written in the 30th slice only is an identifier too)."""
    merged: dict[str, list[str]] = {}
    seen_paths: set[str] = set()
    for img in images:
        path = img.get("path") or ""
        if not path or path in seen_paths:
            continue
        seen_paths.add(path)
        for k, v in _dicom_extras(path).items():
            vals = merged.setdefault(k, [])
            for part in str(v).split("\\"):
                if part and part not in vals:
                    vals.append(part)
    return {k: "\\".join(v) for k, v in merged.items()}


def _select_key_images(images: list[dict], marked: dict[tuple[str, int], int], max_key_images: int
                       ) -> list[tuple[dict | None, str, int, str]]:
    """(image dict, sop, frame, reason) of the key images, in case order.

    marked: {(sop, frame): priority} (0 annotated, 1 AI positive, 2 AI result). Without marks, the middle image of
    each series (the middle frame of a single multi-frame image).
    """
    order = {img["sop_instance_uid"]: n for n, img in enumerate(images)}
    by_sop = {img["sop_instance_uid"]: img for img in images}
    reasons = {0: "annotated", 1: "AI positive", 2: "AI result"}
    if marked:
        chosen = sorted(marked, key=lambda k: (marked[k], order.get(k[0], len(order)), k[1]))[:max_key_images]
        chosen.sort(key=lambda k: (order.get(k[0], len(order)), k[1]))
        return [(by_sop.get(s), s, f, reasons[marked[(s, f)]]) for s, f in chosen]
    series: dict[str, list[dict]] = {}
    for img in images:
        series.setdefault(img["series_instance_uid"], []).append(img)
    out: list[tuple[dict | None, str, int, str]] = []
    for imgs in series.values():
        if len(out) >= max_key_images:
            break
        if len(imgs) == 1:
            img = imgs[0]
            frame = int(img.get("number_of_frames") or 1) // 2
        else:
            img, frame = imgs[len(imgs) // 2], 0
        out.append((img, img["sop_instance_uid"], frame, "middle image of the series"))
    return out


def _annotation_entry(ann: Annotation, stored: dict, frame_image, read_error: str  # noqa: ANN001
                      ) -> AnnotationEntry:
    """An annotation with its measurement: recomputed on ``frame_image`` when given (for ROIs on colour images the
    stored one, which the viewer measured), else the stored one."""
    m: Measurement | None = None
    source = "stored"
    colour_roi = frame_image is not None and frame_image.is_color and ann.kind in ("rect", "ellipse")
    if frame_image is not None and not (colour_roi and measurement_from_dict(stored) is not None):
        try:
            values = None if frame_image.is_color else frame_image.values
            m = measure(ann, values, frame_image.pixel_spacing, "" if frame_image.is_color else frame_image.units,
                        frame_image.spacing_note, frame_image.padding, frame_image.us_regions)
            source = "image"
        except ValueError:
            m = None
    if m is None:
        m = measurement_from_dict(stored)
        source = "stored" if m is not None else "none"
    label = m.label() if m is not None else ""
    if colour_roi and source == "image":  # no modality values in a colour image: geometry only
        label = label.replace("(no pixels inside)", "(colour image: no statistics)")
    return AnnotationEntry(
        uid=ann.uid, kind=ann.kind, points=[list(p) for p in ann.points], sop_instance_uid=ann.sop_instance_uid,
        frame=ann.frame, text=ann.text, measurement=m, label=label, measurement_source=source,
        measurement_note=f"image not readable ({read_error}): stored measurement shown"
        if source != "image" and read_error else None)


def build_report(store, study_instance_uid: str, *, deidentify: bool = False, max_key_images: int = 6,  # noqa: ANN001
                 salt: str | None = None, now: float | None = None) -> Report:
    """The report of one case (:class:`~medviewer.report.model.Report`; its :meth:`~Report.to_dict` is the JSON,
    schema ``medviewer.report/1``; see the module docstring).

    store: a :class:`medviewer.store.cases.CaseStore`. deidentify: apply
    :func:`medviewer.report.deid.deidentify_report` (PS3.15 Annex E Basic Application Level Confidentiality
    Profile) before returning. max_key_images: at most this many key images (images with annotations or AI results,
    annotated ones first; else the middle image of each series). salt: the secret for pseudonyms and new UIDs
    (default :func:`medviewer.report.deid.installation_salt`). now: the generation time (UTC epoch seconds; default
    the current time).

    Key images are decoded to recompute measurements; an image that cannot be read gets an ``error`` and its
    stored measurements. Raises ReportError for an unknown StudyInstanceUID.
    """
    import time

    from medviewer.report.deid import deidentify_report, installation_salt
    from medviewer.report.render import load_frame

    case = store.get_case(study_instance_uid)
    if case is None:
        raise ReportError(f"no case for StudyInstanceUID {study_instance_uid}")
    salt = salt if salt is not None else installation_salt()
    generated = time.time() if now is None else float(now)
    uid = study_instance_uid
    images = store.case_images(uid)
    by_sop = {img["sop_instance_uid"]: img for img in images}
    annotations = store.annotations(uid)
    stored_meas = store.annotation_measurements(uid) if annotations else {}
    latest_ai = store.latest_ai_results(uid)
    warnings: list[str] = []

    # ---- header
    header = {
        "PatientName": case.patient_name, "PatientID": case.patient_id, "PatientBirthDate": case.patient_birth_date,
        "PatientSex": case.patient_sex, "StudyDate": case.study_date, "StudyTime": case.study_time,
        "StudyDescription": case.study_description, "AccessionNumber": case.accession_number,
        "StudyID": case.study_id, "ModalitiesInStudy": case.modalities, "StudyInstanceUID": case.study_instance_uid,
    }
    if images:
        for k, v in _case_header_extras(images).items():
            header.setdefault(k, v)

    # ---- key images
    marked: dict[tuple[str, int], int] = {}
    for a in annotations:
        marked[(a.sop_instance_uid, a.frame)] = 0
    for r in latest_ai:
        key = (r.sop_instance_uid, r.frame)
        marked[key] = min(marked.get(key, 9), 1 if r.positive and r.has_call else 2)
    selected = _select_key_images(images, marked, max(0, int(max_key_images)))
    key_images: list[KeyImage] = []
    shown: set[tuple[str, int]] = set()
    for img, sop, frame, reason in selected:
        shown.add((sop, frame))
        entry = KeyImage(
            sop_instance_uid=sop, frame=frame, reason=reason, image=_image_label(img, frame),
            series_instance_uid=img["series_instance_uid"] if img else "",
            series_description=img["series_description"] if img else "",
            modality=img["modality"] if img else "", instance_number=img["instance_number"] if img else None,
            number_of_frames=int(img["number_of_frames"] or 1) if img else 1,
            rows=img["rows"] if img else 0, columns=img["columns"] if img else 0,
        )
        fi, err = None, ""
        if img is None:
            err = "the image is not part of the case's image list"
        else:
            try:
                fi = load_frame(img["path"], frame)
            except Exception as exc:  # noqa: BLE001 - PixelDecodeError, missing file...: report, do not fail
                err = _without_paths(getattr(exc, "reason", None) or str(exc) or type(exc).__name__, img["path"])
        if fi is not None:
            entry.pixel_spacing_mm = list(fi.pixel_spacing) if fi.pixel_spacing else None
            entry.units = fi.units
            if fi.window is not None:
                entry.window = WindowSetting(center=fi.window.center, width=fi.window.width,
                                             function=fi.window.function)
            entry.burned_in_annotation = fi.burned_in_annotation
            entry.photometric_interpretation = fi.photometric
            if fi.burned_in_annotation == "YES":
                warnings.append(f"{entry.image}: BurnedInAnnotation is YES: the pixels may show identifying "
                                "text; check the image before sharing it.")
            elif not fi.burned_in_annotation and fi.modality in BURNED_IN_PRONE:
                warnings.append(f"{entry.image}: {fi.modality} image without BurnedInAnnotation: the pixels "
                                "may show identifying text.")
        entry.error = err
        entry.annotations = [_annotation_entry(a, stored_meas.get(a.uid, {}), fi, err)
                             for a in annotations if a.sop_instance_uid == sop and a.frame == frame]
        entry.ai_results = [_ai_entry(r, img) for r in latest_ai if r.sop_instance_uid == sop and r.frame == frame]
        key_images.append(entry)
    other_annotations = [_annotation_entry(a, stored_meas.get(a.uid, {}), None, "")
                         for a in annotations if (a.sop_instance_uid, a.frame) not in shown]
    for other in other_annotations:
        other.image = _image_label(by_sop.get(other.sop_instance_uid), other.frame)

    # ---- AI
    ai_results = [_ai_entry(r, by_sop.get(r.sop_instance_uid)) for r in latest_ai]
    models = sorted({r.model for r in ai_results})
    ai = AISection(results=ai_results, models=[_card_summary(m, ai_results) for m in models],
                   disclaimer=NOT_FOR_DIAGNOSTIC_USE)
    for card in ai.models:
        if card.available and not card.results_match_card_weights:
            warnings.append(f"Some {card.name} results were made with other weights than the installed model "
                            f"card's ({(card.weights_sha256 or '')[:12]}...).")

    # ---- note and findings
    versions = store.note_versions(uid)
    note_results = store.note_results(uid)
    latest_version = versions[-1] if versions else None
    note = NoteSection(text=latest_version[1] if latest_version else "",
                       saved_at=iso_utc(latest_version[2]) if latest_version else None, versions=len(versions))
    if note_results:
        nr = note_results[-1]
        note.model, note.model_version = nr.model, nr.model_version
        note.classified_at = iso_utc(nr.created_at)
        note.positives = nr.positives
        note.uncertain = nr.uncertain
        note.findings_current = bool(latest_version is not None and nr.note_version_id == latest_version[0])
        for f in sorted(nr.findings, key=lambda f: -float(f.get("probability", 0.0))):
            state = finding_state(f)
            up, ut = f.get("uncertain_probability"), f.get("uncertain_threshold")
            note.findings.append(NoteFinding(
                label=f["label"], probability=float(f.get("probability", 0.0)),
                threshold=float(f.get("threshold", 0.5)), positive=state == PRESENT,
                decision=nr.decisions.get(f["label"], ""), state=state,
                uncertain_probability=float(up) if up is not None else None,
                uncertain_threshold=float(ut) if ut is not None else None,
            ))
        if note.findings_current is False:
            warnings.append("The note findings were classified on an earlier version of the note.")

    # ---- radiologist
    scores = store.radiologist_scores(uid)
    last_per_label = {s.label: s.id for s in scores}
    radiologist = [ReaderCall(
        id=s.id, label=s.label, positive=s.positive, call="positive" if s.positive else "negative",
        confidence=s.confidence, override=s.override, ai_result_id=s.ai_result_id, comment=s.comment,
        reader=s.reader, created_at=iso_utc(s.created_at), current=last_per_label[s.label] == s.id,
    ) for s in scores]
    sign_off = SignOff(status=case.status, reader=case.reported_by if case.status == "reported" else "",
                       signed_at=iso_utc(case.reported_at) if case.status == "reported" else None,
                       signed=case.status == "reported")
    n_events = len(store.events(uid))
    last_ai = max((r.created_at for r in latest_ai), default=None)
    timestamps = Timestamps(
        case_created=iso_utc(case.created_at), case_updated=iso_utc(case.updated_at),
        note_saved=note.saved_at, findings_classified=note.classified_at,
        last_ai_result=iso_utc(last_ai),
        last_radiologist_score=radiologist[-1].created_at if radiologist else None,
        signed_off=sign_off.signed_at, report_generated=iso_utc(generated),
    )
    report = Report(
        schema=SCHEMA,
        generator=Generator(name="medviewer", version=__version__),
        generated_at=iso_utc(generated),
        disclaimer=NOT_FOR_DIAGNOSTIC_USE,
        pseudonym=case_pseudonym(case.patient_id, case.patient_name, case.study_instance_uid, salt),
        header=header,
        case=CaseSummary(status=case.status, created_at=iso_utc(case.created_at),
                         updated_at=iso_utc(case.updated_at), n_images=len(images),
                         n_annotations=len(annotations), n_events=n_events),
        sign_off=sign_off,
        key_images=key_images,
        other_annotations=other_annotations,
        ai=ai,
        note=note,
        radiologist_scores=radiologist,
        timestamps=timestamps,
        events=n_events,
        warnings=warnings,
        deidentified=False,
    )
    return deidentify_report(report, salt=salt) if deidentify else report


__all__ = ["SCHEMA", "NOT_FOR_DIAGNOSTIC_USE", "ReportError", "Report", "build_report", "iso_utc",
           "case_pseudonym", "measurement_from_dict"]
