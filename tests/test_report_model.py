"""The report as one typed model (medviewer.report.model.Report): the JSON it writes is the JSON the dict-based
report code wrote (same keys, in the same order, same value types), it reads its JSON back, and the PDF, the JSON
and the DICOM SR are all written from one Report instance.

Data: the sample study's real chest CR and head CT (pydicom-data), renamed to a distinctive patient, with a real AI
result of the bundled 28 x 28 model on the CR (no intended-use gate, so the adult CR gets a call and a heat map),
an out-of-scope result of a model this installation has no card for, measurements, a note with classified findings,
two reader calls and a sign-off.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import fields
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.imaging.annotations import Annotation

NAME = "Quixote^Alonso^Q"
PID = "QX-20240917"
READER = "Dr. Sancho Panza"
NOW = 1_700_000_000.0  # the generation time of the reports built here (UTC epoch seconds)
SALT = "report-model-test-salt"

# ------------------------------------------------------------------------------------------------------------------
# The JSON of the dict-based report code (commit c206529), captured before the model replaced it: the keys of every
# object, in their order, and the JSON types of their values. The model must write exactly these. Keys added since
# are appended after them, never renamed: the three note states (note "uncertain"; note_finding "state",
# "uncertain_probability", "uncertain_threshold").
# ------------------------------------------------------------------------------------------------------------------

KEYS = {
    "report": ["schema", "generator", "generated_at", "disclaimer", "pseudonym", "header", "case", "sign_off",
               "key_images", "other_annotations", "ai", "note", "radiologist_scores", "timestamps", "events",
               "warnings", "deidentified"],
    "report_deidentified": ["schema", "generator", "generated_at", "disclaimer", "pseudonym", "header", "case",
                            "sign_off", "key_images", "other_annotations", "ai", "note", "radiologist_scores",
                            "timestamps", "events", "warnings", "deidentified", "deidentification"],
    "generator": ["name", "version"],
    "case": ["status", "created_at", "updated_at", "n_images", "n_annotations", "n_events"],
    "sign_off": ["status", "reader", "signed_at", "signed"],
    "key_image": ["sop_instance_uid", "frame", "reason", "image", "series_instance_uid", "series_description",
                  "modality", "instance_number", "number_of_frames", "rows", "columns", "pixel_spacing_mm", "units",
                  "window", "burned_in_annotation", "error", "photometric_interpretation", "annotations",
                  "ai_results"],
    "key_image_unreadable": ["sop_instance_uid", "frame", "reason", "image", "series_instance_uid",
                             "series_description", "modality", "instance_number", "number_of_frames", "rows",
                             "columns", "pixel_spacing_mm", "units", "window", "burned_in_annotation", "error",
                             "annotations", "ai_results"],
    "window": ["center", "width", "function"],
    "annotation": ["uid", "kind", "points", "sop_instance_uid", "frame", "text", "measurement", "label",
                   "measurement_source"],
    "annotation_unreadable": ["uid", "kind", "points", "sop_instance_uid", "frame", "text", "measurement", "label",
                              "measurement_source", "measurement_note"],
    "other_annotation": ["uid", "kind", "points", "sop_instance_uid", "frame", "text", "measurement", "label",
                         "measurement_source", "image"],
    "ai": ["results", "models", "disclaimer"],
    "ai_result": ["id", "sop_instance_uid", "frame", "image", "model", "version", "weights_sha256", "probabilities",
                  "positive_label", "score", "threshold", "positive", "status", "scope", "warnings",
                  "heatmap_method", "heatmap_label", "has_heatmap", "created_at"],
    "model": ["name", "version", "available", "task", "labels", "positive_label", "threshold", "threshold_rule",
              "intended_use", "training_data", "test_metrics", "weights_sha256", "summary",
              "results_match_card_weights", "not_for_diagnostic_use"],
    "model_missing": ["name", "available", "note"],
    "note": ["text", "saved_at", "versions", "findings", "positives", "model", "model_version", "classified_at",
             "findings_current", "uncertain"],
    "note_finding": ["label", "probability", "threshold", "positive", "decision", "state", "uncertain_probability",
                     "uncertain_threshold"],
    "reader_call": ["id", "label", "positive", "call", "confidence", "override", "ai_result_id", "comment", "reader",
                    "created_at", "current"],
    "timestamps": ["case_created", "case_updated", "note_saved", "findings_classified", "last_ai_result",
                   "last_radiologist_score", "signed_off", "report_generated"],
    "deidentification": ["profile", "PatientIdentityRemoved", "DeidentificationMethod",
                         "DeidentificationMethodCodeSequence", "pseudonym", "actions", "uids_replaced",
                         "pixels_cleaned"],
    "code": ["CodeValue", "CodingSchemeDesignator", "CodeMeaning"],
}

#: JSON types of the scalar values (None: null), as the dict-based code wrote them.
S, INT, F, B, N = str, int, float, bool, type(None)
TYPES = {
    "report": {"schema": S, "generated_at": S, "disclaimer": S, "pseudonym": S, "events": INT, "deidentified": B},
    "generator": {"name": S, "version": S},
    "case": {"status": S, "created_at": S, "updated_at": S, "n_images": INT, "n_annotations": INT, "n_events": INT},
    "sign_off": {"status": S, "reader": S, "signed_at": (S, N), "signed": B},
    "key_image": {"sop_instance_uid": S, "frame": INT, "reason": S, "image": S, "series_instance_uid": S,
                  "series_description": S, "modality": S, "instance_number": (INT, N), "number_of_frames": INT,
                  "rows": INT, "columns": INT, "units": S, "burned_in_annotation": S, "error": S,
                  "photometric_interpretation": S},
    "annotation": {"uid": S, "kind": S, "sop_instance_uid": S, "frame": INT, "text": S, "label": S,
                   "measurement_source": S, "measurement_note": S, "image": S},
    "ai_result": {"id": INT, "sop_instance_uid": S, "frame": INT, "image": S, "model": S, "version": S,
                  "weights_sha256": S, "positive_label": S, "score": (F, N), "threshold": F, "positive": (B, N),
                  "status": S, "scope": S, "heatmap_method": S, "heatmap_label": S, "has_heatmap": B,
                  "created_at": S},
    "note": {"text": S, "saved_at": (S, N), "versions": INT, "model": S, "model_version": S, "classified_at": (S, N),
             "findings_current": (B, N)},
    "note_finding": {"label": S, "probability": F, "threshold": F, "positive": B, "decision": S, "state": S,
                     "uncertain_probability": (F, N), "uncertain_threshold": (F, N)},
    "reader_call": {"id": INT, "label": S, "positive": B, "call": S, "confidence": (INT, N), "override": B,
                    "ai_result_id": (INT, N), "comment": S, "reader": S, "created_at": S, "current": B},
    "timestamps": {k: (S, N) for k in KEYS["timestamps"]},
}


def _check(kind: str, d: dict, keys: str | None = None) -> None:
    assert list(d) == KEYS[keys or kind], kind
    for k, tp in TYPES.get(kind, {}).items():
        if k in d:
            assert isinstance(d[k], tp) and not (tp is INT and isinstance(d[k], bool)), (kind, k, d[k])


def _check_report(c: dict) -> set[str]:
    """Check every object of report JSON ``c``; returns the variants seen."""
    seen = set()
    _check("report", c, "report_deidentified" if c["deidentified"] else "report")
    for k in ("generator", "case", "sign_off", "ai", "note", "timestamps"):
        _check(k, c[k])
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in c["header"].items())
    for key in c["key_images"]:
        unreadable = "photometric_interpretation" not in key
        _check("key_image", key, "key_image_unreadable" if unreadable else "key_image")
        seen.add("key_image_unreadable" if unreadable else "key_image")
        if key["window"] is not None:
            _check("window", key["window"])
        for a in key["annotations"]:
            variant = "annotation_unreadable" if "measurement_note" in a else "annotation"
            _check("annotation", a, variant)
            seen.add(variant)
        for r in key["ai_results"]:
            _check("ai_result", r)
    for a in c["other_annotations"]:
        _check("annotation", a, "other_annotation")
        seen.add("other_annotation")
    for r in c["ai"]["results"]:
        _check("ai_result", r)
    for m in c["ai"]["models"]:
        _check("model", m, "model" if m["available"] else "model_missing")
        seen.add("model" if m["available"] else "model_missing")
    for f in c["note"]["findings"]:
        _check("note_finding", f)
    for s in c["radiologist_scores"]:
        _check("reader_call", s)
    if c["deidentified"]:
        _check("deidentification", c["deidentification"])
        for code in c["deidentification"]["DeidentificationMethodCodeSequence"]:
            _check("code", code)
    return seen


# ------------------------------------------------------------------------------------------------------------------
# the case
# ------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image_model():
    pytest.importorskip("torch")
    from medviewer.inference.scorer import ImageModel

    return ImageModel.load("pneumonia-cnn", device="cpu")


@pytest.fixture
def case(tmp_path, monkeypatch, image_model):
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    from medviewer.inference.scorer import ScoreResult
    from medviewer.io.sample import build_sample_study
    from medviewer.io.scan import scan
    from medviewer.report.export import score_case_radiographs
    from medviewer.store.cases import CaseStore

    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "data"))
    src = build_sample_study(tmp_path / "sample")
    folder = tmp_path / "study"
    folder.mkdir()
    for f in sorted(src.glob("*.dcm")):
        if "MR2" in f.name:
            continue
        ds = pydicom.dcmread(f)
        ds.PatientName, ds.PatientID = NAME, PID
        ds.save_as(folder / f.name, enforce_file_format=True)
    shutil.rmtree(src)
    store = CaseStore()
    [cid] = store.register_index(scan([str(folder)]), str(folder))
    uid = next(c.study_instance_uid for c in store.cases() if c.id == cid)
    ct = next(i for i in store.case_images(uid) if i["modality"] == "CT")
    cr = next(i for i in store.case_images(uid) if i["modality"] == "CR")
    # both images annotated: with one key image, the other one's annotation is listed apart (other_annotations)
    store.save_annotation(uid, Annotation("text", [(20.0, 20.0)], cr["sop_instance_uid"], text="marker"),
                          {"kind": "text"})
    store.save_annotation(uid, Annotation("length", [(120.5, 200.5), (380.5, 260.5)], ct["sop_instance_uid"],
                                          text="Quixote midline"), {"kind": "length", "length": 1.0})
    store.save_annotation(uid, Annotation("ellipse", [(200.0, 230.0), (300.0, 310.0)], ct["sop_instance_uid"]),
                          {"kind": "ellipse", "mean": 999.0, "sd": 0.0, "minimum": 0, "maximum": 0, "area": 1.0,
                           "units": "HU"})
    store.save_text(uid, "Right lower zone opacity, ±2 cm.")
    store.save_findings(uid, [{"label": "Pneumonia", "probability": 0.81, "threshold": 0.4, "positive": True},
                              {"label": "Effusion", "probability": 0.62, "threshold": 0.5, "positive": True}],
                        {"Effusion": "rejected"}, "notes-minilm", "1.0.0")
    store.save_text(uid, "Right lower zone opacity, ±2 cm. Addendum.")  # the findings are now of an older note
    # a model this installation has no card for, outside its intended use on the CT: no probability, no call
    store.add_ai_result(uid, ScoreResult(ct["sop_instance_uid"], "ghost-model", "0.1", "cd" * 32, {}, 0.5,
                                         "nodule", False, status="out_of_scope", scope_reason="modality CT"))
    assert score_case_radiographs(store, uid, image_model) == (1, [])
    store.add_radiologist_score(uid, "pneumonia", False, 2, comment="probably atelectasis", reader=READER)
    store.add_radiologist_score(uid, "pneumonia", True, 4, comment="on review: consolidation", reader=READER)
    store.sign_off(uid, READER)
    yield {"store": store, "uid": uid, "folder": folder, "ct": ct}
    store.close()


def _build(case, **kw):  # noqa: ANN001, ANN202
    from medviewer.report.content import build_report

    return build_report(case["store"], case["uid"], salt=SALT, now=NOW, **kw)


# ------------------------------------------------------------------------------------------------------------------
# the JSON
# ------------------------------------------------------------------------------------------------------------------


def test_to_dict_writes_the_json_of_the_dict_based_code(case):
    """Every object of the JSON has the keys (in order) and value types the dict-based code wrote, in every
    variant: identified and de-identified, images read and unreadable, annotations on key and other images,
    model cards found and missing."""
    from medviewer.report.model import Report

    seen: set[str] = set()
    ident = _build(case)
    assert isinstance(ident, Report)
    seen |= _check_report(ident.to_dict())
    seen |= _check_report(_build(case, deidentify=True).to_dict())
    seen |= _check_report(_build(case, max_key_images=1).to_dict())
    os.remove(case["ct"]["path"])  # the annotated CT cannot be read any more: stored measurements, with the reason
    unreadable = _build(case).to_dict()
    seen |= _check_report(unreadable)
    assert seen == {"key_image", "key_image_unreadable", "annotation", "annotation_unreadable", "other_annotation",
                    "model", "model_missing"}
    c = ident.to_dict()
    assert c["generated_at"] == "2023-11-14T22:13:20Z" and c["timestamps"]["report_generated"] == c["generated_at"]
    assert c["note"]["findings_current"] is False and any("earlier version" in w for w in c["warnings"])
    assert c["header"]["PatientName"] == NAME and c["header"]["ModalitiesInStudy"] == "CR\\CT"
    # a measurement without pixels is {} in the JSON (the ellipse on the unreadable CT keeps its stored one)
    ct = next(k for k in unreadable["key_images"] if k["modality"] == "CT")
    assert {a["kind"]: a["measurement_source"] for a in ct["annotations"]} == {"length": "stored",
                                                                               "ellipse": "stored"}


def test_to_dict_keys_are_the_model_fields_and_the_documented_schema(case):
    """The JSON is the model field by field: the keys are the dataclass fields in their declaration order, the
    optional keys (left out when None) are the documented ones, and the module docstring of
    medviewer.report.content names the schema."""
    from medviewer.report import content, model

    report = _build(case, deidentify=True)
    assert [f.name for f in fields(model.Report)] == list(report.to_dict()) == KEYS["report_deidentified"]
    classes = {"generator": model.Generator, "case": model.CaseSummary, "sign_off": model.SignOff,
               "key_image": model.KeyImage, "window": model.WindowSetting, "other_annotation": model.AnnotationEntry,
               "ai": model.AISection, "ai_result": model.AIResultEntry, "model": model.ModelSummary,
               "note": model.NoteSection, "note_finding": model.NoteFinding, "reader_call": model.ReaderCall,
               "timestamps": model.Timestamps, "deidentification": model.Deidentification,
               "code": model.CodedConcept}
    optional = {}
    for kind, cls in classes.items():
        names = [f.name for f in fields(cls)]
        assert [n for n in names if n in KEYS[kind]] == KEYS[kind], kind  # same order
        optional[kind] = [f.name for f in fields(cls) if f.metadata.get("optional_key")]
        assert set(names) - set(KEYS[kind]) == set(optional[kind]) - set(KEYS[kind]), kind
    assert optional["key_image"] == ["photometric_interpretation"]
    assert optional["other_annotation"] == ["measurement_note", "image"]
    assert set(optional["model"]) == set(KEYS["model"]) - set(KEYS["model_missing"]) | {"note"}
    assert model.Report.__dataclass_fields__["deidentification"].metadata.get("optional_key")
    assert content.SCHEMA == model.SCHEMA == report.schema == "medviewer.report/1"
    assert "medviewer.report/1" in content.__doc__ and "Report" in content.__doc__


def test_from_dict_round_trip_and_partial_dicts(case):
    from medviewer.imaging.annotations import Measurement
    from medviewer.report.model import SCHEMA, AnnotationEntry, KeyImage, Report

    for report in (_build(case), _build(case, deidentify=True), _build(case, max_key_images=1)):
        d = report.to_dict()
        assert Report.from_dict(d) == report
        assert Report.from_dict(json.loads(json.dumps(d))) == report  # through the JSON text too
        assert Report.from_dict(d).to_dict() == d
        d["key_images"][0]["annotations"].clear()  # to_dict returns a copy: the model is not changed
        assert report.to_dict() != d
    ident = _build(case)
    ellipse = next(a for a in ident.all_annotations() if a.kind == "ellipse")
    assert isinstance(ellipse.measurement, Measurement) and ellipse.measurement.units == "HU"
    assert ident.study_instance_uid == case["uid"]
    # missing keys take the defaults, unknown keys are ignored, null lists and sections are tolerated
    partial = Report.from_dict({"header": {"PatientName": "Li^Bo"}, "note": {"text": "x"}, "future_key": 1,
                                "key_images": [{"sop_instance_uid": "1.2", "annotations": [{"kind": "arrow"}]}],
                                "ai": None})
    assert partial.schema == SCHEMA and partial.note.text == "x" and partial.header == {"PatientName": "Li^Bo"}
    assert partial.key_images == [KeyImage(sop_instance_uid="1.2", annotations=[AnnotationEntry(kind="arrow")])]
    assert partial.ai.results == [] and partial.deidentification is None and not partial.deidentified
    assert list(partial.to_dict()) == KEYS["report"]
    assert partial.to_dict()["key_images"][0]["annotations"][0]["measurement"] == {}
    assert Report.from_dict(None) == Report() and Report.from_dict(partial.to_dict()) == partial


# ------------------------------------------------------------------------------------------------------------------
# the three writers, one report
# ------------------------------------------------------------------------------------------------------------------


def test_pdf_json_and_sr_are_written_from_one_report(case, tmp_path):
    """One Report instance feeds the PDF, the JSON and the SR: each shows the same AI probability and the same
    reader call, and none of them changes the report."""
    from pypdf import PdfReader

    from medviewer.report.dicom_objects import build_sr, read_sr
    from medviewer.report.export import render_key_images, report_json
    from medviewer.report.pdf import write_pdf

    store, uid = case["store"], case["uid"]
    report = _build(case)
    before = report.to_dict()
    [ai] = [r for r in report.ai.results if r.model == "pneumonia-cnn"]
    [call] = report.current_reader_calls()
    assert ai.score is not None and 0.0 <= ai.score <= 1.0 and (call.label, call.positive) == ("pneumonia", True)

    pdf = tmp_path / "r.pdf"
    write_pdf(report, pdf, render_key_images(store, report))
    (tmp_path / "r.json").write_text(report_json(report), encoding="utf-8")
    headers = {i["sop_instance_uid"]: pydicom.dcmread(i["path"], stop_before_pixels=True)
               for i in store.case_images(uid)}
    sr = build_sr(report, headers)
    assert report.to_dict() == before  # no writer changed the report

    # PDF: the probability (3 decimals), the AI call and the reader's current call
    text = " ".join("\n".join(p.extract_text() or "" for p in PdfReader(str(pdf)).pages).split())
    ai_call = "POSITIVE" if ai.positive else "negative"
    assert f"{ai.score:.3f} ({ai.positive_label})" in text and ai_call in text
    assert f"P({ai.positive_label}) = {ai.score:.3f}" in text
    assert "pneumonia positive 4/5" in text and READER in text
    # JSON: the same numbers
    js = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    [jai] = [r for r in js["ai"]["results"] if r["model"] == "pneumonia-cnn"]
    assert jai["score"] == ai.score and jai["positive"] == ai.positive
    [jcall] = [s for s in js["radiologist_scores"] if s["current"]]
    assert (jcall["label"], jcall["call"], jcall["confidence"]) == ("pneumonia", "positive", 4)
    # SR: the probability at full precision, the call, the reader; the out-of-scope result has no probability
    parsed = read_sr(sr)
    by_model = {r["model"]: r for r in parsed["ai_results"]}
    assert by_model["pneumonia-cnn"]["probability"] == pytest.approx(ai.score, abs=1e-12)
    assert by_model["pneumonia-cnn"]["positive"] == ai.positive
    assert by_model["ghost-model"]["probability"] is None and by_model["ghost-model"]["call"] == "not evaluated"
    [rc] = parsed["reader_calls"]
    assert (rc["label"], rc["positive"], rc["confidence"], rc["reader"]) == ("pneumonia", True, 4, READER)
    # and the measurements the PDF and JSON show (recomputed from the pixels) are the SR's
    length = next(a for a in report.all_annotations() if a.kind == "length")
    [m] = [m for m in parsed["measurements"] if m["kind"] == "length" and m["annotation_uid"] == length.uid]
    assert m["value"] == pytest.approx(length.measurement.length) and m["unit"] == "mm"
    assert np.allclose(m["points"], length.points)


def test_export_case_writes_the_json_of_its_report(case, tmp_path):
    from medviewer.report.export import ExportResult, export_case, report_json

    res = export_case(case["store"], case["uid"], json_path=tmp_path / "r.json", deidentify=True, salt=SALT)
    assert isinstance(res, ExportResult) and res.report.deidentified and set(res.files) == {"json"}
    raw = Path(res.files["json"]).read_text(encoding="utf-8")
    assert raw == report_json(res.report)
    assert list(json.loads(raw)) == KEYS["report_deidentified"]


def test_note_finding_states_read_from_older_json_and_round_trip():
    """A note finding of an older report (no "state") reads as present when positive, else absent; a three-state
    one keeps its state through the JSON; the reader's decision gives the reviewed state."""
    from medviewer.report.model import NoteFinding, NoteSection, Report

    old = Report.from_dict({"note": {"findings": [
        {"label": "Effusion", "probability": 0.9, "threshold": 0.5, "positive": True, "decision": ""},
        {"label": "Nodule", "probability": 0.1, "threshold": 0.5, "positive": False, "decision": "confirmed"}]}})
    assert [(f.state, f.reviewed_state) for f in old.note.findings] == [("present", "present"), ("absent", "present")]
    assert [f.uncertain_probability for f in old.note.findings] == [None, None] and old.note.uncertain == []
    hedged = NoteFinding(label="Pneumothorax", probability=0.1, threshold=0.5, positive=False, state="uncertain",
                         uncertain_probability=0.8, uncertain_threshold=0.5)
    report = Report(note=NoteSection(findings=[hedged], uncertain=["Pneumothorax"]))
    d = json.loads(json.dumps(report.to_dict()))
    assert d["note"]["findings"][0]["state"] == "uncertain" and d["note"]["uncertain"] == ["Pneumothorax"]
    again = Report.from_dict(d)
    assert again == report and again.note.findings[0].reviewed_state == "uncertain"
    assert NoteFinding(label="x", state="uncertain", decision="rejected").reviewed_state == "absent"
