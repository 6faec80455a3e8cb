"""Report export on real images: content, measurements, AI, PDF (read back with pypdf), de-identification, CSV, CLI.

Data: the pydicom-data chest CR (RG1_UNCI, MONOCHROME1) and head CT slice (693_UNCR) gathered into one study the way
the bundled sample is built, renamed to a distinctive patient; the GE head CT of ../shared/data for folder exports.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.imaging.annotations import Annotation, roi_mask

ROOT = Path(__file__).resolve().parents[1]
GE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-head-ge"

NAME = "Quixote^Alonso^Q"
PID = "QX-20240917"
BIRTH = "19580315"
ACCESSION = "ACC-771234"
NOTE = ("Patient Alonso Quixote (QX-20240917), born 1958-03-15. Right lower zone opacity, ±2 cm; "
        "angle 35°, 12 µm², ROI in the brain parenchyma.")


def _ascii_text(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    d = tmp_path / "medviewer-data"
    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(d))
    return d


@pytest.fixture
def store(data_dir):
    from medviewer.store.cases import CaseStore

    s = CaseStore()
    yield s
    s.close()


def _make_study(dest: Path, name: str = NAME, pid: str = PID, burned_in: str | None = None) -> Path:
    """The sample study's CR and CT (real pixels from pydicom-data) as one study of a distinctive patient."""
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    from medviewer.io.sample import build_sample_study

    src = build_sample_study(dest.parent / (dest.name + "-sample"))
    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(src.glob("*.dcm")):
        if "MR2" in f.name:
            continue
        ds = pydicom.dcmread(f)
        ds.PatientName = name
        ds.PatientID = pid
        ds.PatientBirthDate = BIRTH
        ds.AccessionNumber = ACCESSION
        if burned_in is not None and ds.Modality == "CR":
            ds.BurnedInAnnotation = burned_in
        ds.save_as(dest / f.name, enforce_file_format=True)
    shutil.rmtree(src)
    return dest


def _register(store, folder: Path) -> str:
    from medviewer.io.scan import scan

    [cid] = store.register_index(scan([str(folder)]), str(folder))
    return next(c.study_instance_uid for c in store.cases() if c.id == cid)


def _image(store, uid: str, modality: str) -> dict:
    return next(i for i in store.case_images(uid) if i["modality"] == modality)


@pytest.fixture(scope="module")
def image_model():
    pytest.importorskip("torch")
    from medviewer.inference.scorer import ImageModel

    # The 28 x 28 model has no image-based gate, so the adult CR gets a call and a heat map to report; the gate's
    # "no call" in the report is tested in test_scope.py.
    return ImageModel.load("pneumonia-cnn", device="cpu")


@pytest.fixture
def full_case(tmp_path, store, image_model):
    """A worked case: note + findings, length and ellipse on the CT, real AI result on the CR, a radiologist call,
    sign-off."""
    from medviewer.report.export import score_case_radiographs

    folder = _make_study(tmp_path / "study")
    uid = _register(store, folder)
    ct = _image(store, uid, "CT")
    length = Annotation("length", [(120.5, 200.5), (380.5, 260.5)], ct["sop_instance_uid"], text="Quixote midline")
    roi = Annotation("ellipse", [(200.0, 230.0), (300.0, 310.0)], ct["sop_instance_uid"], text="ROI parenchyma")
    store.save_annotation(uid, length, {"kind": "length", "length": 1.0})
    store.save_annotation(uid, roi, {"kind": "ellipse", "mean": 999.0, "sd": 0.0, "minimum": 0, "maximum": 0,
                                     "area": 1.0, "units": "HU"})  # wrong on purpose: the report recomputes
    store.save_text(uid, NOTE)
    store.save_findings(uid, [{"label": "Pneumonia", "probability": 0.81, "threshold": 0.4, "positive": True},
                              {"label": "Effusion", "probability": 0.62, "threshold": 0.5, "positive": True},
                              {"label": "Nodule", "probability": 0.05, "threshold": 0.5, "positive": False}],
                        {"Effusion": "rejected"}, "notes-minilm", "1.0.0")
    n, errors = score_case_radiographs(store, uid, image_model)
    assert (n, errors) == (1, [])
    store.add_radiologist_score(uid, "pneumonia", False, 2, comment="Quixote: probably atelectasis",
                                reader="Dr. Sancho Panza")
    store.add_radiologist_score(uid, "pneumonia", True, 4, comment="on review: consolidation",
                                reader="Dr. Sancho Panza")
    store.sign_off(uid, "Dr. Sancho Panza")
    return {"uid": uid, "folder": folder, "ct": ct, "cr": _image(store, uid, "CR"), "roi": roi, "length": length}


def _expected_roi_mean(path: str, points) -> float:
    """ROI mean HU computed here with pydicom alone (rescale + pixel-centre-in-ellipse)."""
    ds = pydicom.dcmread(path)
    hu = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    (x0, y0), (x1, y1) = points
    jj, ii = np.meshgrid(np.arange(hu.shape[1]) + 0.5, np.arange(hu.shape[0]) + 0.5)
    a, b, cx, cy = (x1 - x0) / 2, (y1 - y0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    inside = ((jj - cx) / a) ** 2 + ((ii - cy) / b) ** 2 <= 1
    assert np.array_equal(inside, roi_mask("ellipse", points, hu.shape))
    return float(hu[inside].mean())


def _pdf_text(path) -> tuple[int, str]:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    return len(reader.pages), "\n".join(p.extract_text() or "" for p in reader.pages)


# ------------------------------------------------------------------------------------------------------------------
# Content
# ------------------------------------------------------------------------------------------------------------------


def test_build_report_content(store, full_case):
    from medviewer.report.content import SCHEMA, build_report
    from medviewer.report.model import Report

    uid = full_case["uid"]
    report = build_report(store, uid)
    assert isinstance(report, Report)
    c = report.to_dict()
    json.dumps(c)  # JSON-able
    assert c["schema"] == SCHEMA == "medviewer.report/1"
    h = c["header"]
    assert (h["PatientName"], h["PatientID"], h["PatientBirthDate"], h["AccessionNumber"]) == (NAME, PID, BIRTH,
                                                                                              ACCESSION)
    assert h["StudyInstanceUID"] == uid and h["ModalitiesInStudy"] == "CR\\CT"
    assert h["StudyDescription"] == "medviewer sample study (pydicom-data images)"
    # Key images: the annotated CT and the AI-scored CR, in case order.
    keys = {k["modality"]: k for k in c["key_images"]}
    assert set(keys) == {"CR", "CT"}
    ct, cr = keys["CT"], keys["CR"]
    assert ct["reason"] == "annotated" and ct["units"] == "HU" and ct["pixel_spacing_mm"]
    anns = {a["kind"]: a for a in ct["annotations"]}
    roi = anns["ellipse"]
    assert roi["measurement_source"] == "image"
    expected = _expected_roi_mean(full_case["ct"]["path"], full_case["roi"].points)
    assert roi["measurement"]["mean"] == pytest.approx(expected, abs=1e-3)
    assert roi["measurement"]["units"] == "HU" and f"mean {expected:.1f} HU" in roi["label"]
    sp = ct["pixel_spacing_mm"]
    (x0, y0), (x1, y1) = full_case["length"].points
    assert anns["length"]["measurement"]["length"] == pytest.approx(np.hypot((x1 - x0) * sp[1], (y1 - y0) * sp[0]))
    assert anns["length"]["label"].endswith(" mm")
    # AI: the real model's result with its card.
    [ai] = cr["ai_results"]
    card = json.loads((ROOT / "models" / "pneumonia-cnn" / "card.json").read_text())
    assert ai["model"] == card["name"] and ai["weights_sha256"] == card["weights_sha256"]
    assert ai["threshold"] == pytest.approx(card["threshold"]) and ai["has_heatmap"]
    assert ai["positive"] == (ai["probabilities"]["pneumonia"] >= card["threshold"])
    [model] = c["ai"]["models"]
    assert model["test_metrics"]["auc"] == pytest.approx(card["metrics"]["test"]["auc"])
    assert "not for diagnosis" in model["intended_use"] and "Not for diagnostic use" in model["not_for_diagnostic_use"]
    # Note, findings and decisions, radiologist calls, sign-off.
    assert c["note"]["text"] == NOTE and c["note"]["findings_current"] is True
    dec = {f["label"]: f["decision"] for f in c["note"]["findings"]}
    assert dec == {"Pneumonia": "", "Effusion": "rejected", "Nodule": ""}
    assert c["note"]["positives"] == ["Pneumonia"] and c["note"]["model"] == "notes-minilm"
    scores = c["radiologist_scores"]
    assert [s["current"] for s in scores] == [False, True]
    assert scores[-1]["call"] == "positive" and scores[-1]["confidence"] == 4
    assert scores[-1]["override"] == (not ai["positive"])  # overrides the AI when they disagree
    assert c["sign_off"]["status"] == "reported" and c["sign_off"]["signed"]
    assert c["sign_off"]["reader"] == "Dr. Sancho Panza"
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
    assert all(iso.match(v) for v in c["timestamps"].values() if v is not None)
    assert iso.match(c["timestamps"]["signed_off"]) and iso.match(ai["created_at"])
    assert c["events"] == len(store.events(uid))
    assert str(full_case["folder"]) not in json.dumps(c)  # no file paths in the content


def test_middle_images_when_nothing_is_marked_and_stored_measurements_when_unreadable(tmp_path, store):
    from medviewer.report.content import build_report

    if not GE.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    folder = tmp_path / "ge"
    folder.mkdir()
    for f in sorted(GE.glob("*.dcm"))[10:15]:
        shutil.copy(f, folder / f.name)
    uid = _register(store, folder)
    c = build_report(store, uid).to_dict()
    [key] = c["key_images"]
    images = store.case_images(uid)
    assert key["sop_instance_uid"] == images[len(images) // 2]["sop_instance_uid"]
    assert key["reason"] == "middle image of the series" and key["annotations"] == [] and not key["error"]
    # An annotated image whose file is gone: the stored measurement is reported, with the reason.
    img = images[0]
    ann = Annotation("rect", [(10, 10), (50, 40)], img["sop_instance_uid"])
    store.save_annotation(uid, ann, {"kind": "rect", "mean": 12.5, "sd": 1.0, "minimum": 10, "maximum": 15,
                                     "area": 300.0, "units": "HU", "n_pixels": 1200})
    os.remove(img["path"])
    c = build_report(store, uid).to_dict()
    [key] = c["key_images"]
    assert key["error"] and key["annotations"][0]["measurement_source"] == "stored"
    assert str(folder) not in json.dumps(c)  # error messages carry no folder (it may name the patient)
    assert "mean 12.5 HU" in key["annotations"][0]["label"]


# ------------------------------------------------------------------------------------------------------------------
# PDF + JSON export
# ------------------------------------------------------------------------------------------------------------------


def test_export_pdf_and_json(tmp_path, store, full_case):
    from medviewer.report.export import export_case

    uid = full_case["uid"]
    out = tmp_path / "out"
    res = export_case(store, uid, pdf=out / "report.pdf", json_path=out / "report.json")
    assert res.files["pdf"] == str(out / "report.pdf")
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert saved == res.report.to_dict()  # the JSON is the report the PDF was written from
    pages, text = _pdf_text(out / "report.pdf")
    assert pages >= 1 and (out / "report.pdf").read_bytes().startswith(b"%PDF")
    flat = _ascii_text(text)
    assert "Quixote, Alonso Q" in flat and PID in flat
    assert "medviewer sample study (pydicom-data images)" in flat
    assert "not for diagnostic use" in flat.lower()
    assert _ascii_text(NOTE) in flat  # unicode (± ° µ ²) survives into the PDF text
    roi = next(a for k in res.report.key_images for a in k.annotations if a.kind == "ellipse")
    assert f"mean {roi.measurement.mean:.1f} HU" in flat
    assert f"Page 1 of {pages}" in flat
    assert "pneumonia-cnn 1.0.0" in flat and "Intended use" in flat
    assert "Dr. Sancho Panza" in flat
    kinds = [e.kind for e in store.events(uid)]
    assert kinds[-1] == "report exported"
    assert store.events(uid)[-1].detail["deidentified"] is False


def test_deidentified_export_has_no_identifiers(tmp_path, store, full_case):
    from medviewer.report.content import build_report
    from medviewer.report.deid import REDACTED, safe_basename
    from medviewer.report.export import export_case

    uid = full_case["uid"]
    out = tmp_path / "deid"
    out.mkdir()
    res = export_case(store, uid, pdf=out, json_path=out, deidentify=True)
    pdf, js = Path(res.files["pdf"]), Path(res.files["json"])
    stem = safe_basename(res.report)
    assert pdf.name == stem + ".pdf" and js.name == stem + ".json"
    assert re.fullmatch(r"medviewer-report-ANON-[0-9A-F]{10}-[0-9a-f]{8}", stem)
    originals = [uid] + [i["sop_instance_uid"] for i in store.case_images(uid)] + \
                [i["series_instance_uid"] for i in store.case_images(uid)]
    forbidden = [NAME, "Quixote", "Alonso", PID, ACCESSION, BIRTH, "1958-03-15", "Sancho", "Panza"]
    raw = js.read_text(encoding="utf-8")
    _, text = _pdf_text(pdf)
    for blob in (raw, text, stem):
        low = blob.lower()
        for word in forbidden:
            assert word.lower() not in low, word
        for u in originals:
            assert u not in blob
    c = json.loads(raw)
    assert c["deidentified"] is True and c["deidentification"]["PatientIdentityRemoved"] == "YES"
    assert c["deidentification"]["DeidentificationMethodCodeSequence"][0]["CodeValue"] == "113100"
    assert c["header"]["PatientName"] == "" and c["header"]["PatientID"] == "" and c["header"]["StudyDate"] == ""
    assert "StudyDescription" not in c["header"]  # X in the Basic Profile
    assert c["pseudonym"] in text and "not for diagnostic use" in text.lower()
    # "Alonso Quixote" is the full name (Given Family): one token, one XXXX.
    assert c["note"]["text"].startswith(f"Patient {REDACTED} ({REDACTED}), born {REDACTED}.")
    assert "±2 cm" in c["note"]["text"]  # the clinical text is kept
    assert all(a["text"] != full_case["length"].text for k in c["key_images"] for a in k["annotations"])
    assert c["sign_off"]["reader"] == "" and all(s["reader"] == "" for s in c["radiologist_scores"])
    # UIDs: consistent inside the report and deterministic across exports.
    new_uid = c["header"]["StudyInstanceUID"]
    assert re.fullmatch(r"[0-9]+(\.[0-9]+)+", new_uid) and len(new_uid) <= 64 and new_uid != uid
    again = build_report(store, uid, deidentify=True)
    assert again.header["StudyInstanceUID"] == new_uid and again.pseudonym == c["pseudonym"]
    ct_key = next(k for k in c["key_images"] if k["modality"] == "CT")
    assert all(a["sop_instance_uid"] == ct_key["sop_instance_uid"] for a in ct_key["annotations"])
    # Times shifted by whole days, intervals kept.
    ident = build_report(store, uid).to_dict()

    def secs(t: str) -> float:
        return calendar.timegm(time.strptime(t, "%Y-%m-%dT%H:%M:%SZ"))

    d1 = secs(ident["timestamps"]["case_created"]) - secs(c["timestamps"]["case_created"])
    d2 = secs(ident["timestamps"]["signed_off"]) - secs(c["timestamps"]["signed_off"])
    assert d1 == d2 and d1 % 86400 == 0 and d1 >= 365 * 86400
    assert store.events(uid)[-1].detail["deidentified"] is True


def test_deid_rules():
    from medviewer.report.deid import (BASIC_PROFILE, REDACTED, DeidentificationError, deidentify_report,
                                       identifying_tokens, new_uid, residual_identifiers, scrub_text)
    from medviewer.report.model import Report

    for kw, action in (("PatientName", "Z"), ("PatientID", "Z"), ("PatientBirthDate", "Z"), ("PatientSex", "Z"),
                       ("AccessionNumber", "Z"), ("StudyDate", "Z"), ("StudyTime", "Z"), ("StudyID", "Z"),
                       ("ReferringPhysicianName", "Z"), ("InstitutionName", "X/Z/D"), ("OtherPatientIDs", "X"),
                       ("StudyDescription", "X"), ("StudyInstanceUID", "U"), ("SOPInstanceUID", "U")):
        assert BASIC_PROFILE[kw][1] == action, kw
    words, subs = identifying_tokens({"PatientName": "Li^Bo", "PatientID": "12345678", "PatientBirthDate": ""})
    assert set(words) == {"Li", "Bo", "12345678"} and "Li Bo" in subs and "Bo Li" in subs
    text = "Mr Li (12345678) has clinical signs; bone LI. Bo-Li. id X12345678Y"
    out = scrub_text(text, words, subs)
    assert out == f"Mr {REDACTED} ({REDACTED}) has clinical signs; bone {REDACTED}. {REDACTED}-{REDACTED}. " \
                  f"id X{REDACTED}Y"
    assert new_uid("1.2.3", "s") == new_uid("1.2.3", "s") != new_uid("1.2.3", "t")
    assert residual_identifiers({"a": ["x 12345678"]}, ["12345678"]) == ["12345678"]
    content = {"header": {"PatientName": "Li^Bo", "PatientID": "12345678", "StudyInstanceUID": "1.2.840.99",
                          "Unknown": "secret", "Manufacturer": "ACME"},
               "note": {"text": "Bo said 1.2.840.99 twice"}, "generated_at": "2024-05-01T10:00:00Z"}
    d = deidentify_report(Report.from_dict(content), "salt").to_dict()
    assert "Unknown" not in d["header"] and d["header"]["Manufacturer"] == "ACME"
    assert d["note"]["text"] == f"{REDACTED} said {d['header']['StudyInstanceUID']} twice"
    assert d["generated_at"] != content["generated_at"] and content["header"]["PatientName"] == "Li^Bo"
    # Name parts that are also words of the report's own vocabulary (keys, card text) do not block the export.
    d = deidentify_report(Report.from_dict({"header": {"PatientName": "Modality^LUT^Test"},
                                            "key_images": [{"modality": "OT"}],
                                            "ai": {"models": [{"task": "Test metrics"}]},
                                            "note": {"text": "LUT test"}}), "salt")
    assert d.note.text == f"{REDACTED} {REDACTED}" and d.ai.models[0].task == "Test metrics"
    with pytest.raises(DeidentificationError):  # an ID where it cannot be cleaned (a key) stops the export
        deidentify_report(Report.from_dict({"header": {"PatientID": "QX-1"},
                                            "ai": {"results": [{"probabilities": {"QX-1": 0.5}}]}}), "salt")


def test_burned_in_annotation_is_flagged_and_renders_carry_no_patient_text(tmp_path, store):
    from medviewer.report.content import build_report
    from medviewer.report.render import load_frame, render_key_image

    folder = _make_study(tmp_path / "burned", burned_in="YES")
    uid = _register(store, folder)
    c = build_report(store, uid).to_dict()
    assert any("BurnedInAnnotation is YES" in w for w in c["warnings"])
    cr = next(k for k in c["key_images"] if k["modality"] == "CR")
    assert cr["burned_in_annotation"] == "YES"
    fi = load_frame(_image(store, uid, "CR")["path"])
    plain = np.asarray(render_key_image(fi, max_side=512))
    marked = np.asarray(render_key_image(fi, max_side=512, patient_text="QUIXOTE ALONSO  ID QX"))
    diff = np.argwhere(np.any(plain != marked, axis=2))
    assert diff.size and diff[:, 0].max() < 60 and diff[:, 1].max() < 300  # only the corner label differs


def test_render_voi_heatmap_and_annotations(tmp_path):
    from medviewer.imaging.voi import to_display
    from medviewer.io.sample import pydicom_data_file
    from medviewer.report.render import ANNOTATION_COLOUR, load_frame, render_key_image

    pytest.importorskip("data_store")
    fi = load_frame(str(pydicom_data_file("RG1_UNCI.dcm")))
    assert fi.monochrome1 and fi.window is not None and fi.values.shape == (1955, 1841)
    disp = fi.display()
    assert np.array_equal(disp, to_display(fi.values, fi.window, invert=True))
    rows, cols = fi.values.shape
    img = render_key_image(fi, max_side=800)
    assert img.mode == "RGB" and max(img.size) == 800
    line = {"kind": "length", "points": [[100.0, 1000.0], [1700.0, 1000.0]], "text": "", "label": "160 mm"}
    img = render_key_image(fi, annotations=[line], max_side=800)
    s = 800 / rows
    px = np.asarray(img)[round(1000 * s), round(900 * s)]
    assert np.abs(px.astype(int) - ANNOTATION_COLOUR).max() < 40
    heat = np.zeros((64, 60), np.float32)
    heat[40:60, 10:30] = 1.0
    with_heat = render_key_image(fi, heatmap=heat, heat_caption="Grad-CAM, class pneumonia, model x", max_side=800)
    w, h = with_heat.size
    assert w > round(cols * s) and h > 800  # colour bar on the right, caption below
    arr = np.asarray(with_heat).astype(int)
    hot = arr[round(rows * 50 / 64 * s), round(cols * 20 / 60 * s)]
    assert hot[0] > hot[2] + 40  # red where the map is 1
    with_heat.save(tmp_path / "heat.png")


def test_pdf_unicode_and_fallback(tmp_path):
    from medviewer.report.fonts import printable
    from medviewer.report.model import Report
    from medviewer.report.pdf import register_fonts, write_pdf

    assert printable("±°µ² \N{WARNING SIGN} 中", None, "cp1252") == "±°µ² (!) ?"
    content = {"schema": "medviewer.report/1", "header": {"PatientName": "Ünïcødé^Zoë", "PatientID": "Ω-1"},
               "note": {"text": "Lesion 12 ± 2 mm, 45° angle, 3 µm², ⚠ check <b>&amp;</b>", "findings": []},
               "disclaimer": "Not for diagnostic use.", "generated_at": "2024-05-01T10:00:00Z"}
    pages = write_pdf(Report.from_dict(content), tmp_path / "u.pdf")
    n, text = _pdf_text(tmp_path / "u.pdf")
    assert pages == n == 1
    assert "12 ± 2 mm, 45° angle, 3 µm²" in text and "<b>&amp;</b>" in text and "Zoë" in text
    _regular, _bold, charset = register_fonts()
    if charset is not None and 0x26A0 in charset:
        assert "\N{WARNING SIGN}" in text


def test_page_renders_quickly(tmp_path, store, full_case):
    from medviewer.report.export import export_case

    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    res = export_case(store, full_case["uid"], pdf=tmp_path / "r.pdf")
    assert os.path.getsize(res.files["pdf"]) < 3_000_000
    for page in range(1, int(res.files["pages"]) + 1):
        t0 = time.monotonic()
        subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", str(page), "-l", str(page), res.files["pdf"],
                        str(tmp_path / f"p{page}")], check=True, timeout=60)
        assert time.monotonic() - t0 < 5


# ------------------------------------------------------------------------------------------------------------------
# Worklist CSV
# ------------------------------------------------------------------------------------------------------------------


def test_uncertain_note_findings_in_json_pdf_csv_and_deidentified_report(tmp_path, store, note_finding):
    """Findings hedged in the note are "uncertain" in the JSON (state, P(hedged), the note's uncertain list, never
    positive), printed as uncertain in the PDF, in their own CSV column, and kept in the de-identified report even
    when a finding's name is also a part of the patient's name. A hedged finding the reader confirmed is
    positive."""
    from medviewer.report.content import build_report
    from medviewer.report.export import export_case, export_worklist_csv

    uid = _register(store, _make_study(tmp_path / "study", name="Mass^Pleura"))
    store.save_text(uid, "Small effusion. Cannot exclude pneumothorax. Possible mass. ? atelectasis.")
    store.save_findings(uid, [note_finding("Effusion", "present", 0.91, 0.03),
                              note_finding("Pneumothorax", "uncertain", 0.12, 0.77),
                              note_finding("Mass", "uncertain", 0.2, 0.61),
                              note_finding("Atelectasis", "uncertain", 0.3, 0.7),
                              note_finding("Nodule", "absent", 0.02, 0.01)],
                        {"Atelectasis": "confirmed"}, "notes-minilm", "2.0.0")
    out = tmp_path / "out"
    res = export_case(store, uid, pdf=out / "r.pdf", json_path=out / "r.json")
    note = json.loads((out / "r.json").read_text(encoding="utf-8"))["note"]
    assert note["positives"] == ["Effusion", "Atelectasis"]
    assert note["uncertain"] == ["Pneumothorax", "Mass"]
    by_label = {f["label"]: f for f in note["findings"]}
    assert {k: f["state"] for k, f in by_label.items()} == {
        "Effusion": "present", "Pneumothorax": "uncertain", "Mass": "uncertain", "Atelectasis": "uncertain",
        "Nodule": "absent"}
    assert by_label["Pneumothorax"]["positive"] is False and by_label["Pneumothorax"]["uncertain_probability"] == 0.77
    assert by_label["Atelectasis"]["decision"] == "confirmed"
    assert [f.reviewed_state for f in res.report.note.findings if f.label == "Atelectasis"] == ["present"]

    _, text = _pdf_text(out / "r.pdf")
    flat = _ascii_text(text)
    assert "P(hedged)" in flat
    assert re.search(r"Pneumothorax 0\.120 0\.500 0\.770 uncertain", flat), flat
    assert re.search(r"Effusion 0\.910 0\.500 0\.030 positive", flat)
    assert "Positives after the radiologist's review: Effusion, Atelectasis." in flat
    assert "Uncertain (hedged in the note, not counted as positive): Pneumothorax, Mass." in flat

    export_worklist_csv(store, tmp_path / "w.csv")
    with open(tmp_path / "w.csv", newline="", encoding="utf-8") as fp:
        [row] = list(csv.DictReader(fp))
    assert row["note findings"] == "Effusion; Atelectasis"
    assert row["note uncertain findings"] == "Pneumothorax; Mass"

    deid = build_report(store, uid, deidentify=True, salt="s").to_dict()
    assert "Pleura" not in json.dumps(deid)
    assert deid["note"]["uncertain"] == ["Pneumothorax", "Mass"]  # a label, not the patient's name
    assert [f["state"] for f in deid["note"]["findings"]] == [f["state"] for f in note["findings"]]


def test_worklist_csv_round_trip(tmp_path, store, full_case):
    from medviewer.io.model import Patient, Study
    from medviewer.report.content import build_report
    from medviewer.report.export import WORKLIST_COLUMNS, export_worklist_csv

    store.register_study(Patient("=1+2", 'O\'Brien, "Pat"\n=HYPERLINK("x")'), Study("1.2.3.4.5", "20240102"))
    path = tmp_path / "w.csv"
    assert export_worklist_csv(store, path) == 2
    raw = path.read_bytes()
    assert raw.count(b"\r\n") >= 3  # CRLF records (one field holds a quoted newline)
    with open(path, newline="", encoding="utf-8") as fp:
        rows = list(csv.DictReader(fp))
    assert tuple(rows[0].keys()) == WORKLIST_COLUMNS
    by_uid = {r["StudyInstanceUID"]: r for r in rows}
    r = by_uid[full_case["uid"]]
    assert (r["patient"], r["patient ID"]) == (NAME, PID)
    assert r["modality"] == "CR CT" and r["status"] == "reported" and r["AI model"] == "pneumonia-cnn"
    assert 0 <= float(r["AI score"]) <= 1 and r["AI positive"] in ("yes", "no")
    assert r["note findings"] == "Pneumonia" and r["radiologist call"] == "pneumonia: positive"
    assert (r["confidence"], r["n annotations"]) == ("4", "2")
    odd = by_uid["1.2.3.4.5"]
    assert odd["patient"] == 'O\'Brien, "Pat"\n=HYPERLINK("x")'  # quotes and newline survive the round trip
    assert odd["patient ID"] == "'=1+2"  # a formula-like cell is defused
    # De-identified: pseudonyms, no IDs or dates, the same new UIDs as the de-identified report.
    dpath = tmp_path / "wd.csv"
    export_worklist_csv(store, dpath, deidentify=True)
    text = dpath.read_text(encoding="utf-8")
    for word in ("Quixote", PID, "20240102", full_case["uid"], "Brien"):
        assert word not in text
    with open(dpath, newline="", encoding="utf-8") as fp:
        drows = list(csv.DictReader(fp))
    report = build_report(store, full_case["uid"], deidentify=True)
    mine = next(r for r in drows if r["StudyInstanceUID"] == report.header["StudyInstanceUID"])
    assert mine["patient"] == report.pseudonym and mine["patient ID"] == "" and mine["study date"] == ""


# ------------------------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------------------------


def _main(*argv: str) -> tuple[int, str, str]:
    import contextlib

    from medviewer.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def test_cli_export_folder_end_to_end_then_by_uid(tmp_path, data_dir):
    pytest.importorskip("torch")
    from medviewer.io.sample import pydicom_data_file

    pytest.importorskip("data_store")
    folder = tmp_path / "cr"
    folder.mkdir()
    shutil.copy(pydicom_data_file("RG1_UNCI.dcm"), folder / "chest.dcm")
    (folder / "readme.txt").write_text("not dicom")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "MEDVIEWER_DATA_DIR": str(data_dir)}
    res = subprocess.run([sys.executable, "-m", "medviewer", "export", str(folder), "--pdf", str(out / "r.pdf"),
                          "--json", str(out / "r.json")], capture_output=True, text=True, timeout=300, cwd=ROOT,
                         env=env, check=False)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(out / "r.pdf"), str(out / "r.json")]
    c = json.loads((out / "r.json").read_text(encoding="utf-8"))
    uid = pydicom.dcmread(folder / "chest.dcm", stop_before_pixels=True).StudyInstanceUID
    assert c["header"]["StudyInstanceUID"] == uid
    [ai] = c["ai"]["results"]  # scored on the fly with the bundled default model, through its gate
    from medviewer.inference.scorer import DEFAULT_MODEL

    assert ai["model"] == DEFAULT_MODEL and ai["status"] in ("scored", "out_of_scope")
    assert ai["has_heatmap"] == (ai["status"] == "scored")
    pages, text = _pdf_text(out / "r.pdf")
    assert pages >= 1 and "CompressedSamples, RG1" in _ascii_text(text)
    from medviewer.store.cases import CaseStore

    s = CaseStore()
    try:
        assert s.get_case(uid).status == "new"  # automatic scoring is not a reader's work
        assert s.events(uid)[-1].kind == "report exported"
    finally:
        s.close()
    # Now by StudyInstanceUID from the store, de-identified, into a folder.
    rc, stdout, err = _main("export", uid, "--pdf", str(out), "--deidentify", "--no-ai")
    assert rc == 0, err
    [written] = stdout.split()
    assert Path(written).parent == out and Path(written).name.startswith("medviewer-report-ANON-")
    _, text = _pdf_text(written)
    assert "CompressedSamples" not in text and "9RG1" not in text and uid not in text


def test_cli_errors(tmp_path, data_dir):
    pytest.importorskip("data_store")
    from medviewer.io.sample import pydicom_data_file

    if not GE.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    two = tmp_path / "two"
    two.mkdir()
    shutil.copy(pydicom_data_file("RG1_UNCI.dcm"), two / "cr.dcm")
    for f in sorted(GE.glob("*.dcm"))[:3]:
        shutil.copy(f, two / f.name)
    out = tmp_path / "o.pdf"
    rc, _, err = _main("export", str(two), "--pdf", str(out), "--no-ai")
    ge_uid = pydicom.dcmread(min(GE.glob("*.dcm")), stop_before_pixels=True).StudyInstanceUID
    cr_uid = pydicom.dcmread(two / "cr.dcm", stop_before_pixels=True).StudyInstanceUID
    assert rc == 2 and "2 studies" in err and ge_uid in err and cr_uid in err and not out.exists()
    rc, _, err = _main("export", str(two), "--study", ge_uid, "--pdf", str(out), "--no-ai")
    assert rc == 0 and out.exists(), err
    rc, _, err = _main("export", str(two), "--study", "1.2.3", "--pdf", str(out), "--no-ai")
    assert rc == 2 and "1.2.3" in err
    rc, _, err = _main("export", "1.2.826.0.1.999999.1", "--pdf", str(tmp_path / "x.pdf"))
    assert rc == 2 and "no case with StudyInstanceUID 1.2.826.0.1.999999.1" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    rc, _, err = _main("export", str(empty), "--pdf", str(tmp_path / "y.pdf"))
    assert rc == 2 and "no DICOM images" in err
    rc, _, err = _main("export", "not-a-path-or-uid", "--pdf", str(tmp_path / "y.pdf"))
    assert rc == 2 and "no such file or folder: not-a-path-or-uid (and not a StudyInstanceUID in the case store)" \
        in err
    rc, _, err = _main("export", str(two), "--study", ge_uid)
    assert rc == 2 and "--pdf" in err
    rc, _, err = _main("worklist", "--csv", str(tmp_path / "w.csv"), "--deidentify")
    assert rc == 0 and "1 case" in err
    text = (tmp_path / "w.csv").read_text(encoding="utf-8")
    assert ge_uid not in text and "ANON-" in text



# ------------------------------------------------------------------------------------------------------------------
# Regressions: PDF metadata, free-text cleaning, kept values, short numbers, CJK, CLI edges
# ------------------------------------------------------------------------------------------------------------------


def _ge_case(store, folder: Path, n: int = 3, charset: str | None = None, **attrs) -> str:
    """The first ``n`` slices of the real GE head CT, rewritten with ``attrs`` (pydicom keywords), registered."""
    if not GE.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    folder.mkdir(parents=True)
    for f in sorted(GE.glob("*.dcm"))[:n]:
        ds = pydicom.dcmread(f)
        if charset:
            ds.SpecificCharacterSet = charset
        for kw, value in attrs.items():
            setattr(ds, kw, value)
        ds.save_as(folder / f.name)
    return _register(store, folder)


def _pdf_date(value: str) -> float:
    """PDF date ``D:YYYYMMDDHHmmSS+00'00'`` (UTC) -> epoch seconds."""
    m = re.match(r"D:(\d{14})", value)
    return calendar.timegm(time.strptime(m.group(1), "%Y%m%d%H%M%S"))


def test_deidentified_pdf_metadata_has_the_shifted_time_and_no_identifiers(tmp_path, store):
    from pypdf import PdfReader

    from medviewer.report.export import export_case

    uid = _ge_case(store, tmp_path / "ge", PatientName="Quixote^Alonso", PatientID=PID)
    store.sign_off(uid, "Dr. Sancho Panza")
    now = time.time()
    res = export_case(store, uid, pdf=tmp_path / "d.pdf", json_path=tmp_path / "d.json", deidentify=True)
    shifted = calendar.timegm(time.strptime(res.report.generated_at, "%Y-%m-%dT%H:%M:%SZ"))
    assert now - shifted >= 365 * 86400  # the content's time is shifted...
    info = PdfReader(str(tmp_path / "d.pdf")).metadata
    for key in ("/CreationDate", "/ModDate"):  # ... and so are the PDF's own dates (they gave the shift away)
        assert _pdf_date(info[key]) == shifted, key
    meta = " ".join(str(info.get(k, "")) for k in ("/Title", "/Author", "/Subject", "/Creator", "/Producer",
                                                     "/Keywords")).lower()
    for word in ("quixote", "alonso", PID.lower(), "sancho", "panza", uid):
        assert word not in meta, word
    assert str(info["/Title"]) == f"medviewer report {res.report.pseudonym}"
    raw = (tmp_path / "d.pdf").read_bytes()
    assert time.strftime("%Y%m%d", time.gmtime(now)).encode() not in raw  # the real date is nowhere in the file
    # An identified report keeps the real time.
    export_case(store, uid, pdf=tmp_path / "i.pdf")
    assert abs(_pdf_date(PdfReader(str(tmp_path / "i.pdf")).metadata["/CreationDate"]) - time.time()) < 3600 * 14


def test_free_text_loses_readers_header_people_places_unicode_and_glued_names(tmp_path, store):
    import unicodedata

    from medviewer.report.content import build_report
    from medviewer.report.deid import REDACTED, identifying_tokens, residual_identifiers

    uid = _ge_case(store, tmp_path / "ge", charset="ISO_IR 192", PatientName="Müller^Jürgen=ミュラー^ユルゲン",
                   PatientID="MJ-556677", ReferringPhysicianName="Watson^John", OperatorsName="Hudson^Martha",
                   InstitutionName="St Elsewhere Hospital", PerformingPhysicianName="Groß^Anna")
    ct = store.case_images(uid)[0]
    store.save_annotation(uid, Annotation("length", [(10.0, 10.0), (60.0, 40.0)], ct["sop_instance_uid"],
                                          text="MüllerROI for Hudson"), {})
    store.save_text(uid, "JürgenMüller seen; MÜLLERS file; " + unicodedata.normalize("NFD", "Müller") +
                    " (NFD); ミュラーさん. Referred by Dr Watson, scanned by HUDSON at Elsewhere, GROSS read it. "
                    "Nodule 8 mm in the left lobe.")
    store.add_radiologist_score(uid, "nodule", True, 4, comment="Called Dr Watson and Moriartys team",
                                reader="Dr. James Moriarty")
    store.sign_off(uid, "Dr. James Moriarty")
    c = build_report(store, uid).to_dict()
    assert c["header"]["InstitutionName"] == "St Elsewhere Hospital"  # read from the image header
    d = build_report(store, uid, deidentify=True).to_dict()
    values: list[str] = []

    def collect(v) -> None:  # noqa: ANN001 - every string value (keys such as "ReferringPhysicianName" hold "anna")
        if isinstance(v, dict):
            for x in v.values():
                collect(x)
        elif isinstance(v, list):
            for x in v:
                collect(x)
        elif isinstance(v, str):
            values.append(v)

    collect(d)
    blob = unicodedata.normalize("NFC", "\n".join(values)).casefold()
    for word in ("Müller", "Jürgen", "ミュラー", "ユルゲン", "Watson", "John", "Hudson", "Martha", "Elsewhere",
                 "Groß", "gross", "Anna", "Moriarty", "James", "MJ-556677"):
        i = blob.find(unicodedata.normalize("NFC", word).casefold())
        assert i < 0, (word, blob[max(0, i - 80):i + 40])
    note = d["note"]["text"]
    assert note.startswith(f"{REDACTED} seen; {REDACTED}S file; {REDACTED} (NFD); {REDACTED}さん. Referred by Dr "
                           f"{REDACTED}, scanned by {REDACTED} at {REDACTED}, {REDACTED} read it.")
    assert note.endswith("Nodule 8 mm in the left lobe.")  # titles and clinical text stay
    [score] = d["radiologist_scores"]
    assert score["comment"] == f"Called Dr {REDACTED} and {REDACTED}s team" and score["reader"] == ""
    assert [a["text"] for k in d["key_images"] for a in k["annotations"]] == [f"{REDACTED}ROI for {REDACTED}"]
    assert d["header"]["Manufacturer"] == "GE MEDICAL SYSTEMS" and "InstitutionName" not in d["header"]
    # The fail-closed check uses the same rules: glued, case-folded, decomposed leftovers are all caught.
    words, subs = tokens = identifying_tokens(c["header"], ["Dr. James Moriarty"])
    for leftover in ("xJÜRGENmüllerx", unicodedata.normalize("NFD", "müller"), "ﾐｭﾗｰ", "Mr MORIARTY's",
                     "at ELSEWHERE"):
        assert residual_identifiers({"text": leftover}, tokens.strong, words, subs=subs), leftover
    assert residual_identifiers({"text": "Dr Mr 8 mm nodule, hospital"}, tokens.strong, words, subs=subs) == []


def test_short_name_parts_and_kept_header_values_do_not_block_deidentification(tmp_path, store, data_dir):
    uid = _ge_case(store, tmp_path / "ge", PatientName="Ge^Wei", PatientID="GW-1")
    store.save_text(uid, "Ge Wei, follow-up on the GE scanner; Weis note. Geometry normal.")
    out = tmp_path / "out"
    out.mkdir()
    rc, stdout, err = _main("export", uid, "--pdf", str(out), "--json", str(out), "--deidentify", "--no-ai")
    assert rc == 0, err
    pdf, js = stdout.split()
    c = json.loads(Path(js).read_text(encoding="utf-8"))
    assert c["header"]["Manufacturer"] == "GE MEDICAL SYSTEMS"  # kept by the profile: not a leak
    assert c["header"]["ManufacturerModelName"] == "HiSpeed Dual" and c["header"]["PatientName"] == ""
    # "Ge" (2 characters) only as a whole word; "Wei" (3) also inside words.
    assert c["note"]["text"] == "XXXX, follow-up on the XXXX scanner; XXXXs note. Geometry normal."
    _, text = _pdf_text(pdf)
    assert "GE MEDICAL SYSTEMS" in text and "Wei" not in text


def test_short_numeric_ids_stay_in_the_clinical_text(tmp_path, store):
    from medviewer.report.content import build_report
    from medviewer.report.deid import REDACTED, deidentify_report
    from medviewer.report.model import Report

    uid = _ge_case(store, tmp_path / "ge", PatientName="Roe^Richard", PatientID="4711", StudyID="10",
                   AccessionNumber="20231")
    text = "Nodule 10 mm in the left lobe, stable since 10/2023 (CT #10, acc. 20231, id 4711); Richard Roe."
    store.save_text(uid, text)
    d = build_report(store, uid, deidentify=True).to_dict()
    assert d["note"]["text"] == text.replace("Richard Roe", REDACTED)
    assert (d["header"]["StudyID"], d["header"]["AccessionNumber"], d["header"]["PatientID"]) == ("", "", "")
    # Longer numbers still are identifiers.
    d = deidentify_report(Report.from_dict({"header": {"PatientID": "123456", "AccessionNumber": "987654",
                                                       "StudyID": "10"},
                                            "note": {"text": "ID 123456, acc 987654, nodule 10 mm"}}), "salt")
    assert d.note.text == f"ID {REDACTED}, acc {REDACTED}, nodule 10 mm"


CJK_NOTE = "患者 王伟, ミュラーさん: 右肺結節 8 mm."


def test_cjk_without_a_font_warns_in_the_pdf_and_keeps_the_json(tmp_path, store, monkeypatch):
    from medviewer.report import fonts
    from medviewer.report.export import export_case

    monkeypatch.setattr(fonts, "find_cjk_font", lambda: None)
    uid = _ge_case(store, tmp_path / "ge")
    store.save_text(uid, CJK_NOTE)
    res = export_case(store, uid, pdf=tmp_path / "r.pdf", json_path=tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["note"]["text"] == CJK_NOTE
    _, text = _pdf_text(res.files["pdf"])
    flat = _ascii_text(text)
    assert "some characters could not be printed: font missing" in flat.lower()
    assert "?? ??, ??????: ???? 8 mm." in flat
    # Nothing missing, no warning.
    store.save_text(uid, "Nodule 8 mm, ±1 mm.")
    res = export_case(store, uid, pdf=tmp_path / "s.pdf")
    assert "font missing" not in _pdf_text(res.files["pdf"])[1]


def test_cjk_with_a_font_is_printed(tmp_path, monkeypatch):
    from medviewer.report import fonts
    from medviewer.report.model import Report
    from medviewer.report.pdf import write_pdf

    path = fonts.find_cjk_font()
    if path is None:
        pytest.skip("no CJK font reportlab can embed is installed (e.g. apt-get install fonts-droid-fallback)")
    monkeypatch.setattr(fonts, "find_cjk_font", lambda: path)
    content = {"schema": "medviewer.report/1", "header": {"PatientName": "王^伟"},
               "disclaimer": "Not for diagnostic use.", "note": {"text": CJK_NOTE, "findings": []},
               "generated_at": "2024-05-01T10:00:00Z"}
    write_pdf(Report.from_dict(content), tmp_path / "c.pdf")
    from pypdf import PdfReader

    reader = PdfReader(str(tmp_path / "c.pdf"))
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert CJK_NOTE in text and "font missing" not in text and "王, 伟" in text
    from reportlab.pdfbase import pdfmetrics

    from medviewer.report.pdf import register_fallback_font

    face = pdfmetrics.getFont(register_fallback_font()[0]).face.name  # the PostScript name, as in /BaseFont
    face = face.decode() if isinstance(face, bytes) else str(face)
    fonts_used = {str(f["/BaseFont"]) for p in reader.pages for f in p["/Resources"]["/Font"].values()}
    assert any(face in f for f in fonts_used), (face, fonts_used)


def test_cli_export_and_worklist_edges(tmp_path, store, data_dir):
    uid = _ge_case(store, tmp_path / "ge")
    out = tmp_path / "out"
    out.mkdir()
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder is needed")
    # The PDF cannot be written: exit 1 and no JSON left behind (nor temporary files).
    rc, _, err = _main("export", uid, "--pdf", str(blocker / "r.pdf"), "--json", str(out / "r.json"), "--no-ai")
    assert rc == 1 and "nothing was written" in err
    assert list(out.iterdir()) == []
    # One file for both.
    rc, _, err = _main("export", uid, "--pdf", str(out / "r.x"), "--json", str(out / "r.x"), "--no-ai")
    assert rc == 2 and "--pdf and --json name the same file" in err and list(out.iterdir()) == []
    # --study with a UID.
    rc, _, err = _main("export", uid, "--study", uid, "--pdf", str(out / "r.pdf"), "--no-ai")
    assert rc == 2 and "--study only applies to a PATH" in err
    # --max-key-images must be >= 1 (argparse: exit 2).
    with pytest.raises(SystemExit) as exc:
        _main("export", uid, "--pdf", str(out / "r.pdf"), "--max-key-images", "0")
    assert exc.value.code == 2
    rc, _, err = _main("export", uid, "--pdf", str(out / "r.pdf"), "--json", str(out / "r.json"), "--no-ai",
                       "--max-key-images", "1")
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["r.json", "r.pdf"]
    # worklist --csv FOLDER -> FOLDER/worklist.csv
    rc, _, err = _main("worklist", "--csv", str(out))
    assert rc == 0 and (out / "worklist.csv").is_file() and str(out / "worklist.csv") in err
    assert uid in (out / "worklist.csv").read_text(encoding="utf-8")


def test_max_key_images_message(capsys):
    from medviewer.__main__ import main

    for bad in ("0", "-2", "two"):
        with pytest.raises(SystemExit):
            main(["export", "1.2.3", "--pdf", "x.pdf", "--max-key-images", bad])
        assert "--max-key-images" in capsys.readouterr().err


def test_transliterated_names_are_scrubbed():
    from medviewer.report.deid import identifying_tokens, scrub_text

    tokens = identifying_tokens({"PatientName": "Müller^Jürgen", "PatientID": "XJ-449812"})
    text = "Mr MUELLER (Mr Muller) was seen; Juergen reports no pain. José unrelated."
    out = scrub_text(text, tokens.words, tokens.subs)
    for leaked in ("MUELLER", "Muller", "Juergen"):
        assert leaked not in out
    assert "José unrelated" in out


def test_outputs_refuse_fifos_and_devices(tmp_path, store, full_case):
    """Writing goes to a temporary file renamed over the target: over a device or FIFO that would replace it (or
    block), so such targets are refused and left as they were."""
    import os
    import stat

    from medviewer.report.export import export_case, export_worklist_csv

    fifo = tmp_path / "out.pdf"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="FIFO"):
        export_case(store, full_case["uid"], pdf=fifo)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(ValueError, match="/dev/null"):
        export_worklist_csv(store, "/dev/null")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    res = subprocess.run([sys.executable, "-m", "medviewer", "--sample", "--screenshot", str(fifo)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "FIFO" in res.stderr


# ------------------------------------------------------------------------------------------------------------------
# De-identification: a planting test
# ------------------------------------------------------------------------------------------------------------------
def test_planted_identifiers_do_not_leak_from_a_deidentified_export(tmp_path, store):
    """Identifiers planted in header fields of different instances (not the first one only), in nested sequences,
    private elements, free text (with zero-width characters, phone numbers, an age over 89, dates) and file names
    must not appear in the de-identified JSON, PDF or file names (issue #12: 0 leaks)."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    from medviewer.report.export import export_case

    planted = {
        "patient": ["Quinteros", "Maribel"], "id": ["PID-884422"], "accession": ["ACC77310"],
        "referring": ["Okonkwo", "Chidi"], "performing": ["Lindqvist"], "operator": ["Haraldsen", "Ylva"],
        "reading": ["Abernathy"], "nested": ["Corwin", "Thistlewood"], "private": ["Vasquez"],
        "institution": ["Thornbury"], "address": ["Ashfordleigh"], "phone": ["555-867-5309", "8675309"],
        "birth": ["19210704", "1921-07-04"], "other id": ["MRN99812"], "nested address": ["Quillfeather"],
    }
    src = pydicom.dcmread(pydicom.data.get_testdata_file("CT_small.dcm"))
    folder = tmp_path / "Quinteros_Maribel"
    folder.mkdir()
    study, series = generate_uid(), generate_uid()
    for k in range(4):
        ds = src.copy()
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [0, 0, float(k)]
        ds.PatientName = "Quinteros^Maribel"
        ds.PatientID = "PID-884422"
        ds.PatientBirthDate = "19210704"
        ds.AccessionNumber = "ACC77310"
        if k == 1:
            ds.ReferringPhysicianName = "Okonkwo^Chidi"
            ds.InstitutionName = "Thornbury General"
            ds.OtherPatientIDs = "MRN99812"
        if k == 2:
            ds.PerformingPhysicianName = "Lindqvist^Sven"
            ds.OperatorsName = "Haraldsen^Ylva"
            ds.InstitutionAddress = "12 Ashfordleigh Road"
            ds.PatientTelephoneNumbers = "555-867-5309"
        if k == 3:
            ds.NameOfPhysiciansReadingStudy = "Abernathy^Rowan"
            item = Dataset()
            item.ScheduledPerformingPhysicianName = "Thistlewood^Corwin"
            person = Dataset()
            person.PersonAddress = "7 Quillfeather Lane"
            item.PersonIdentificationCodeSequence = Sequence([])
            ds.RequestAttributesSequence = Sequence([item])
            ds.ContentSequence = Sequence([person])
            block = ds.private_block(0x0099, "MEDVIEWER TEST", create=True)
            block.add_new(0x10, "PN", "Vasquez^Ines")
        ds.save_as(folder / f"PID-884422_{k}.dcm", enforce_file_format=True)
    uid = _register(store, folder)
    ct = store.case_images(uid)[0]
    store.save_annotation(uid, Annotation("text", [(10.0, 10.0)], ct["sop_instance_uid"],
                                          text="per Dr Okonkwo, call 555-867-5309"), {"kind": "text"})
    store.save_text(uid, "Maribel Quin\u200bteros, 103-year-old, MRN99812. Discussed with Dr. Thistlewood and "
                         "Lindqvist on 2023-11-02 (tel +1 (555) 867-5309). Seen at Thornbury. Ylva Haraldsen "
                         "positioned. Abernathy read. Vasquez consulted. Lives on Quillfeather Lane. Born 04/07/1921. "
                         "Small effusion.")
    # one key image whose file is gone: its error must not name the file
    os.remove(folder / "PID-884422_0.dcm")
    out = tmp_path / "out"
    out.mkdir()
    result = export_case(store, uid, pdf=out, json_path=out, deidentify=True, salt="test-salt")
    files = result.files
    raw = Path(files["json"]).read_text(encoding="utf-8")
    _, text = _pdf_text(files["pdf"])
    blobs = {"json": raw, "pdf": text, "file names": files["json"] + files["pdf"]}
    leaks = [(where, what, word) for where, blob in blobs.items() for what, words in planted.items()
             for word in words if word.lower() in blob.lower().replace("\u200b", "")]
    assert leaks == []
    assert "PID-884422_0" not in raw and "Quinteros_Maribel" not in raw
    note = json.loads(raw)["note"]["text"]
    assert "Small effusion" in note and "90+" in note and "2023-11-02" not in note


def test_temporary_files_of_a_killed_export_are_removed(tmp_path):
    """An export killed between writing its temporary file and the rename leaves ``.NAME.PID.tmp`` behind; the
    next export into that folder removes it (the process is gone), and nothing else."""
    import signal

    from medviewer.report.export import remove_stale_temporaries

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stale = tmp_path / f".report.pdf.{proc.pid}.pdf.tmp"
    stale.write_bytes(b"partial")
    alive = tmp_path / f".other.json.{os.getpid()}.json.tmp"
    alive.write_bytes(b"mine")
    keep = tmp_path / "report.pdf"
    keep.write_bytes(b"%PDF")
    assert remove_stale_temporaries(tmp_path) == 0  # its process still runs
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert remove_stale_temporaries(tmp_path) == 1
    assert not stale.exists() and alive.exists() and keep.exists()


def test_outputs_never_replace_a_symbolic_link(tmp_path, store, full_case):
    """A link to a regular file is written through (the link stays a link); a link into /dev (/dev/stdout and
    the like) is refused."""
    from medviewer.report.export import check_output_target, export_case

    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    export_case(store, full_case["uid"], json_path=link)
    assert link.is_symlink() and json.loads(target.read_text(encoding="utf-8"))["header"]
    dev_link = tmp_path / "out.json"
    dev_link.symlink_to("/dev/null")
    with pytest.raises(ValueError, match="/dev/null"):
        check_output_target(dev_link)
    with pytest.raises(ValueError):
        check_output_target("/dev/stdout")
    assert os.path.islink("/dev/stdout") or not os.path.exists("/dev/stdout") or \
        not os.path.isfile("/dev/stdout")
