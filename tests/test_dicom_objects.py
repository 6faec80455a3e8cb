"""AI and reading results as DICOM objects (medviewer.report.dicom_objects): a TID 1500 SR, a fractional SEG of the
heat map and an RGB Secondary Capture of the overlay, validated with dciodvfy, read back, and imported into a fresh
case store when the study is registered again.

Data: the real chest PA CR of pydicom-data (as in the bundled sample study; MONOCHROME1, no PixelSpacing, no
ImagerPixelSpacing) and three slices of the real GE head CT of ../shared/data, gathered into one study; a real AI
result with its Grad-CAM map from the bundled 28 x 28 model (no intended-use gate, so the adult CR gets a call).
Expected values are computed here with pydicom and numpy alone.
"""

from __future__ import annotations

import logging
import os
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from medviewer.imaging.annotations import Annotation

GE = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-head-ge"
READER = "Dr. Sancho Panza"

LENGTH_CT = [(120.5, 200.5), (380.5, 260.5)]
RECT_CT = [(300.0, 310.0), (200.0, 230.0)]  # drawn from the bottom-right corner: the order must survive
ELLIPSE_CT = [(100.0, 130.0), (150.0, 190.0)]  # taller than wide: the major axis is vertical
ANGLE_CT = [(100.0, 100.0), (150.0, 150.0), (200.0, 100.0)]
LENGTH_CR = [(500.5, 600.5), (900.5, 700.5)]


# ------------------------------------------------------------------------------------------------------------------
# the case
# ------------------------------------------------------------------------------------------------------------------


def _make_study(dest: Path) -> Path:
    """The sample CR and three GE head CT slices as one study (the CR's StudyInstanceUID and patient)."""
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    if not GE.is_dir():
        pytest.skip(f"real data folder {GE} is absent (../shared/data)")
    from medviewer.io.sample import build_sample_study

    src = build_sample_study(dest.parent / (dest.name + "-sample"))
    dest.mkdir(parents=True, exist_ok=True)
    cr = pydicom.dcmread(next(src.glob("*RG1*.dcm")))
    cr.save_as(dest / "cr.dcm", enforce_file_format=True)
    for name in ("10.dcm", "11.dcm", "12.dcm"):
        ds = pydicom.dcmread(GE / name)
        ds.StudyInstanceUID = cr.StudyInstanceUID
        ds.PatientName, ds.PatientID = cr.PatientName, cr.PatientID
        ds.PatientBirthDate, ds.PatientSex = cr.get("PatientBirthDate", ""), cr.get("PatientSex", "")
        ds.save_as(dest / f"ct{name}", enforce_file_format=True)
    shutil.rmtree(src)
    return dest


def _register(store, folder: Path) -> str:
    from medviewer.io.scan import scan

    [cid] = store.register_index(scan([str(folder)]), str(folder))
    return next(c.study_instance_uid for c in store.cases() if c.id == cid)


@pytest.fixture(scope="module")
def image_model():
    pytest.importorskip("torch")
    from medviewer.inference.scorer import ImageModel

    return ImageModel.load("pneumonia-cnn", device="cpu")


@pytest.fixture(scope="module")
def case(tmp_path_factory, image_model):
    """A worked case in its own store: CR scored (with heat map), a length on the CR, a length, rectangle, ellipse
    and angle on a CT slice, the reader's call, signed off; its SR, SEG and SC exported into ``out``."""
    from medviewer.report.dicom_objects import export_dicom_objects
    from medviewer.report.export import score_case_radiographs
    from medviewer.store.cases import CaseStore

    root = tmp_path_factory.mktemp("dicom-objects")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDVIEWER_DATA_DIR", str(root / "data"))
        store = CaseStore()
        folder = _make_study(root / "study")
        uid = _register(store, folder)
        images = store.case_images(uid)
        cr = next(i for i in images if i["modality"] == "CR")
        ct = next(i for i in images if i["modality"] == "CT" and i["path"].endswith("ct11.dcm"))
        anns = {
            "length": Annotation("length", LENGTH_CT, ct["sop_instance_uid"], text="midline"),
            "rect": Annotation("rect", RECT_CT, ct["sop_instance_uid"]),
            "ellipse": Annotation("ellipse", ELLIPSE_CT, ct["sop_instance_uid"]),
            "angle": Annotation("angle", ANGLE_CT, ct["sop_instance_uid"]),
            "arrow": Annotation("arrow", [(10.0, 10.0), (40.0, 40.0)], ct["sop_instance_uid"]),
            "cr_length": Annotation("length", LENGTH_CR, cr["sop_instance_uid"]),
        }
        for a in anns.values():
            store.save_annotation(uid, a, {"kind": a.kind, "mean": 999.0})  # stored values are recomputed
        n, errors = score_case_radiographs(store, uid, image_model)
        assert (n, errors) == (1, [])
        store.add_radiologist_score(uid, "pneumonia", False, 2, reader=READER)  # superseded by the next call
        store.add_radiologist_score(uid, "pneumonia", True, 4, comment="consolidation", reader=READER)
        store.sign_off(uid, READER)
        out = root / "out"
        files = export_dicom_objects(store, uid, sr=str(out) + "/", seg=str(out) + "/", sc=str(out) + "/")
        yield {"store": store, "uid": uid, "folder": folder, "cr": cr, "ct": ct, "anns": anns, "files": files,
               "root": root}
        store.close()


def _hu(path: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def _dciodvfy(path: str) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("dciodvfy is not installed (.ci/run installs dicom3tools)", pytrace=False)
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    run = subprocess.run([exe, path], capture_output=True, text=True, timeout=120)
    lines = [line for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    for line in lines:
        print(f"dciodvfy {Path(path).name}: {line}")
    return lines


# ------------------------------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------------------------------


def test_objects_pass_dciodvfy(case):
    files = case["files"]
    assert len(files["sr"]) == len(files["seg"]) == len(files["sc"]) == 1
    for kind in ("sr", "seg", "sc"):
        lines = _dciodvfy(files[kind][0])
        assert lines, "dciodvfy printed nothing (it names the IOD it validated)"
        errors = [line for line in lines if "Error" in line]
        assert errors == [], f"{kind}: {errors}"


def test_objects_belong_to_the_case_and_reference_the_image(case):
    from medviewer.report.render import resize_heatmap

    store, uid, cr = case["store"], case["uid"], case["cr"]
    src = pydicom.dcmread(cr["path"], stop_before_pixels=True)
    sr = pydicom.dcmread(case["files"]["sr"][0])
    seg = pydicom.dcmread(case["files"]["seg"][0])
    sc = pydicom.dcmread(case["files"]["sc"][0])
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4"  # Segmentation
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture
    series = {src.SeriesInstanceUID}
    for ds in (sr, seg, sc):
        assert ds.StudyInstanceUID == uid
        assert ds.PatientID == src.PatientID and str(ds.PatientName) == str(src.PatientName)
        assert ds.Manufacturer == "medviewer"
        assert ds.SeriesInstanceUID not in series  # a new series each
        series.add(ds.SeriesInstanceUID)
    # the signed-off case: a verified, complete SR naming the reader
    assert sr.VerificationFlag == "VERIFIED" and sr.CompletionFlag == "COMPLETE"
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName).rstrip("^") == READER

    # SEG: the stored map at the image's size, bilinearly (as the overlay), 0..255, on the CR
    assert (seg.Rows, seg.Columns) == (src.Rows, src.Columns) == (cr["rows"], cr["columns"])
    assert seg.SegmentationType == "FRACTIONAL" and seg.MaximumFractionalValue == 255
    [ai] = store.latest_ai_results(uid)
    heat = ai.heatmap()
    assert heat.shape != (src.Rows, src.Columns)  # really resampled
    # bilinear, computed here with Pillow on the stored 8-bit map (the viewer's and the PDF's overlay)
    small = Image.fromarray(np.rint(heat * 255).astype(np.uint8), mode="L")
    expected = np.asarray(small.resize((src.Columns, src.Rows), Image.Resampling.BILINEAR))
    assert np.array_equal(np.rint(resize_heatmap(heat, src.Rows, src.Columns) * 255), expected)
    got = seg.pixel_array.reshape(src.Rows, src.Columns)
    assert np.array_equal(got, expected)
    assert got.max() > 200 and got.min() < 20  # a real map, not a constant
    algo = seg.SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0]
    assert algo.AlgorithmName == "pneumonia-cnn" and algo.AlgorithmVersion == ai.model_version
    assert ai.weights_sha256 in algo.AlgorithmParameters
    assert seg.SourceImageSequence[0].ReferencedSOPInstanceUID == cr["sop_instance_uid"]

    # SC: RGB, the source referenced, no patient text burned in (the CR has no BurnedInAnnotation: CR is not prone)
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    px = sc.pixel_array
    assert px.ndim == 3 and px.shape[2] == 3 and px.shape[0] >= src.Rows and px.shape[1] >= src.Columns
    assert np.abs(px[..., 0].astype(int) - px[..., 2].astype(int)).max() > 100  # the colour overlay is there
    assert sc.BurnedInAnnotation == "NO"
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == cr["sop_instance_uid"]


def test_scoord_is_our_pixel_convention(case):
    """SCOORD Graphic Data puts 0.0\\0.0 at the top left corner of the top left pixel (PS3.3 C.18.6.1.2), as
    medviewer does: the coordinates are written unchanged, (column, row)."""
    sr = pydicom.dcmread(case["files"]["sr"][0])
    found = {}
    for ds in _walk(sr):
        if ds.get("ValueType") == "SCOORD":
            found.setdefault(str(ds.GraphicType), []).append([float(v) for v in ds.GraphicData])
    assert [120.5, 200.5, 380.5, 260.5] in found["POLYLINE"]  # the CT length
    (x0, y0), (x1, y1) = RECT_CT
    assert [x0, y0, x1, y0, x1, y1, x0, y1, x0, y0] in found["POLYLINE"]  # the rectangle, closed
    # ellipse: major axis (vertical here) end points, then minor axis end points
    assert found["ELLIPSE"] == [[125.0, 130.0, 125.0, 190.0, 100.0, 160.0, 150.0, 160.0]]


def _walk(ds):
    for item in ds.get("ContentSequence") or []:
        yield item
        yield from _walk(item)


# ------------------------------------------------------------------------------------------------------------------
# reading back
# ------------------------------------------------------------------------------------------------------------------


def test_read_sr_gives_back_the_results(case):
    from medviewer.report.dicom_objects import read_sr

    store, uid, ct, cr, anns = case["store"], case["uid"], case["ct"], case["cr"], case["anns"]
    parsed = read_sr(case["files"]["sr"][0])
    assert parsed["medviewer"] and parsed["verified"] and parsed["study_instance_uid"] == uid
    assert parsed["observers"] == [READER]

    [ai] = store.latest_ai_results(uid)
    [r] = parsed["ai_results"]
    assert abs(r["probability"] - ai.score) < 1e-6
    assert (r["model"], r["version"], r["weights_sha256"]) == ("pneumonia-cnn", ai.model_version, ai.weights_sha256)
    assert len(r["weights_sha256"]) == 64
    assert r["positive_label"] == ai.positive_label and abs(r["threshold"] - ai.threshold) < 1e-12
    assert r["finding"] == "Pneumonia" and r["positive"] is bool(ai.positive)
    assert r["call"] == ("present" if ai.positive else "absent")
    assert (r["sop_instance_uid"], r["frame"], r["sop_class_uid"]) == (cr["sop_instance_uid"], 0,
                                                                         "1.2.840.10008.5.1.4.1.1.1")

    # only the current call, with its confidence and reader
    assert [(c["label"], c["positive"], c["confidence"], c["reader"]) for c in parsed["reader_calls"]] == \
        [("pneumonia", True, 4, READER)]

    by_uid = {m["annotation_uid"]: m for m in parsed["measurements"]}
    assert anns["arrow"].uid not in by_uid  # no measurement, not in TID 1500
    assert set(by_uid) == {a.uid for k, a in anns.items() if k != "arrow"}

    # CT length in mm: each axis scaled by its own PixelSpacing (computed here)
    ds = pydicom.dcmread(ct["path"], stop_before_pixels=True)
    sr_, sc_ = (float(v) for v in ds.PixelSpacing)
    (xa, ya), (xb, yb) = LENGTH_CT
    length = by_uid[anns["length"].uid]
    assert length["kind"] == "length" and length["unit"] == "mm"
    assert abs(length["value"] - math.hypot((xb - xa) * sc_, (yb - ya) * sr_)) < 1e-6
    assert np.allclose(length["points"], LENGTH_CT, atol=1e-3)
    assert (length["sop_instance_uid"], length["frame"]) == (ct["sop_instance_uid"], 0)

    # CR length in pixels (no PixelSpacing)
    crl = by_uid[anns["cr_length"].uid]
    (xa, ya), (xb, yb) = LENGTH_CR
    assert crl["unit"] == "px" and crl["measurement"]["calibrated"] is False
    assert abs(crl["value"] - math.hypot(xb - xa, yb - ya)) < 1e-6
    assert np.allclose(crl["points"], LENGTH_CR, atol=1e-3)

    # rectangle: HU statistics over the pixels whose centres are inside (computed here)
    hu = _hu(ct["path"])
    (x0, y0), (x1, y1) = RECT_CT
    jj, ii = np.meshgrid(np.arange(hu.shape[1]) + 0.5, np.arange(hu.shape[0]) + 0.5)
    inside = (jj >= min(x0, x1)) & (jj <= max(x0, x1)) & (ii >= min(y0, y1)) & (ii <= max(y0, y1))
    rect = by_uid[anns["rect"].uid]
    assert rect["kind"] == "rect" and rect["unit"] == "HU"
    assert np.allclose(rect["points"], RECT_CT, atol=1e-3)
    m = rect["measurement"]
    assert abs(rect["value"] - hu[inside].mean()) < 1e-6 and abs(m["mean"] - hu[inside].mean()) < 1e-6
    assert abs(m["sd"] - hu[inside].std(ddof=1)) < 1e-6
    assert (m["minimum"], m["maximum"]) == (hu[inside].min(), hu[inside].max())
    assert abs(m["area"] - abs(x1 - x0) * abs(y1 - y0) * sr_ * sc_) < 1e-6
    assert hu[inside].mean() != 999.0  # the wrong stored value was recomputed

    ell = by_uid[anns["ellipse"].uid]
    (x0, y0), (x1, y1) = ELLIPSE_CT
    a, b, cx, cy = (x1 - x0) / 2, (y1 - y0) / 2, (x0 + x1) / 2, (y0 + y1) / 2
    inside = ((jj - cx) / a) ** 2 + ((ii - cy) / b) ** 2 <= 1
    assert ell["kind"] == "ellipse" and np.allclose(ell["points"], ELLIPSE_CT, atol=1e-3)
    assert abs(ell["value"] - hu[inside].mean()) < 1e-6

    ang = by_uid[anns["angle"].uid]
    assert ang["kind"] == "angle" and ang["unit"] == "deg" and abs(ang["value"] - 90.0) < 1e-9
    assert np.allclose(ang["points"], ANGLE_CT, atol=1e-3)


# ------------------------------------------------------------------------------------------------------------------
# read-back into a case store
# ------------------------------------------------------------------------------------------------------------------


def _folder_with(case, name: str, *extra: str) -> Path:
    dest = case["root"] / name
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(case["folder"], dest)
    for f in extra:
        shutil.copy(f, dest / Path(f).name)
    return dest


def _foreign_sr(ct_path: str, out: Path) -> Path:
    """A TID 1500 SR of the same study made by another vendor (highdicom), with a length on the CT slice."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    src = pydicom.dcmread(ct_path, stop_before_pixels=True)
    coords = hd.sr.CoordinatesForMeasurement(
        graphic_type="POLYLINE", graphic_data=np.array([[10.0, 10.0], [60.0, 10.0]]),
        source_image=hd.sr.SourceImageForRegion(src.SOPClassUID, src.SOPInstanceUID))
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=hd.UID(), identifier="other vendor length"),
        measurements=[hd.sr.Measurement(name=codes.SCT.Length, value=24.4, unit=codes.UCUM.Millimeter,
                                        referenced_coordinates=[coords])])
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(), procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[group])
    sr = hd.sr.Comprehensive3DSR(evidence=[src], content=report[0], series_instance_uid=hd.UID(), series_number=77,
                                 sop_instance_uid=hd.UID(), instance_number=1, manufacturer="OtherVendor")
    sr.save_as(out, enforce_file_format=True)
    return out


def test_registering_the_study_with_our_sr_imports_its_results(case, tmp_path, caplog):
    from medviewer.io.scan import scan
    from medviewer.report.dicom_objects import IMPORT_EVENT, register_index_with_results
    from medviewer.store.cases import CaseStore

    store, uid, anns = case["store"], case["uid"], case["anns"]
    foreign = _foreign_sr(case["ct"]["path"], tmp_path / "foreign-sr.dcm")
    folder = _folder_with(case, "reimport", case["files"]["sr"][0], case["files"]["seg"][0], str(foreign))
    fresh = CaseStore(path=tmp_path / "fresh.sqlite3")
    try:
        with caplog.at_level(logging.INFO, logger="medviewer.report.dicom_objects"):
            ids = register_index_with_results(fresh, scan([str(folder)]), str(folder))
        assert len(ids) == 1 and fresh.get_case(uid) is not None
        assert any("not written by medviewer" in r.getMessage() for r in caplog.records)

        # measurements -> annotations, same uids, kinds and points (the foreign length is not among them)
        got = {a.uid: a for a in fresh.annotations(uid)}
        assert set(got) == {a.uid for k, a in anns.items() if k != "arrow"}
        for k, a in anns.items():
            if k == "arrow":
                continue
            assert got[a.uid].kind == a.kind and got[a.uid].sop_instance_uid == a.sop_instance_uid
            assert np.allclose(sorted(got[a.uid].points), sorted(a.points), atol=1e-3)
        meas = fresh.annotation_measurements(uid)
        hu = _hu(case["ct"]["path"])
        (x0, y0), (x1, y1) = RECT_CT
        assert abs(meas[anns["rect"].uid]["mean"] - hu[min(int(y0), int(y1)):max(int(y0), int(y1)),
                                                       min(int(x0), int(x1)):max(int(x0), int(x1))].mean()) < 1e-6
        assert meas[anns["rect"].uid]["units"] == "HU"

        # the AI result, with the heat map of our SEG
        [orig] = store.latest_ai_results(uid)
        [imp] = fresh.ai_results(uid)
        assert (imp.model, imp.model_version, imp.weights_sha256) == (orig.model, orig.model_version,
                                                                     orig.weights_sha256)
        assert abs(imp.score - orig.score) < 1e-6 and imp.positive == orig.positive
        assert (imp.sop_instance_uid, imp.frame, imp.status) == (orig.sop_instance_uid, 0, "scored")
        assert abs(imp.threshold - orig.threshold) < 1e-12
        h = imp.heatmap()
        assert h is not None and h.shape == orig.heatmap().shape
        assert np.abs(h - orig.heatmap()).max() <= 2 / 255  # SEG at full size, back to <= 256 px (area mean)
        assert imp.heatmap_method == "gradcam"

        # the reader's call
        [call] = fresh.radiologist_scores(uid)
        assert (call.label, call.positive, call.confidence, call.reader) == ("pneumonia", True, 4, READER)

        # the report built on the fresh store shows them (measurements recomputed from the pixels there too)
        from medviewer.report.content import build_report

        report = build_report(fresh, uid, max_key_images=10)
        assert [r.score for r in report.ai.results] == [pytest.approx(orig.score, abs=1e-6)]

        # a second registration adds nothing
        before = (len(fresh.annotations(uid, include_deleted=True)), len(fresh.ai_results(uid)),
                  len(fresh.radiologist_scores(uid)))
        register_index_with_results(fresh, scan([str(folder)]), str(folder))
        assert (len(fresh.annotations(uid, include_deleted=True)), len(fresh.ai_results(uid)),
                len(fresh.radiologist_scores(uid))) == before
        assert sum(e.kind == IMPORT_EVENT for e in fresh.events(uid)) == 1

        # a measurement deleted by the reader stays deleted on the next registration
        fresh.delete_annotation(anns["angle"].uid)
        register_index_with_results(fresh, scan([str(folder)]), str(folder))
        assert anns["angle"].uid not in {a.uid for a in fresh.annotations(uid)}
    finally:
        fresh.close()


def test_registering_into_the_store_that_wrote_it_duplicates_nothing(case):
    from medviewer.io.scan import scan
    from medviewer.report.dicom_objects import register_index_with_results

    store, uid = case["store"], case["uid"]
    folder = _folder_with(case, "same-store", case["files"]["sr"][0])
    before = (len(store.annotations(uid, include_deleted=True)), len(store.ai_results(uid)),
              len(store.radiologist_scores(uid)))
    register_index_with_results(store, scan([str(folder)]), str(folder))
    assert (len(store.annotations(uid, include_deleted=True)), len(store.ai_results(uid)),
            len(store.radiologist_scores(uid))) == before


def test_foreign_sr_alone_is_ignored(case, tmp_path, caplog):
    from medviewer.io.scan import scan
    from medviewer.report.dicom_objects import import_dicom_results, is_medviewer_sr, read_sr
    from medviewer.store.cases import CaseStore

    uid = case["uid"]
    foreign = _foreign_sr(case["ct"]["path"], tmp_path / "f.dcm")
    assert not is_medviewer_sr(pydicom.dcmread(foreign))
    assert read_sr(foreign)["medviewer"] is False
    folder = _folder_with(case, "foreign-only", str(foreign))
    fresh = CaseStore(path=tmp_path / "fresh.sqlite3")
    try:
        index = scan([str(folder)])
        fresh.register_index(index, str(folder))
        [study] = [s for p in index.patients.values() for s in p.studies.values()]
        with caplog.at_level(logging.INFO, logger="medviewer.report.dicom_objects"):
            counts = import_dicom_results(fresh, study)
        assert counts["srs"] == 0 and counts["ignored"] == [str(folder / "f.dcm")]
        assert fresh.annotations(uid) == [] and fresh.ai_results(uid) == []
        assert any("not written by medviewer" in r.getMessage() for r in caplog.records)
    finally:
        fresh.close()


# ------------------------------------------------------------------------------------------------------------------
# cases without heat maps, out-of-scope results, outputs
# ------------------------------------------------------------------------------------------------------------------


def test_case_without_ai_has_an_sr_but_no_seg_or_sc(tmp_path, monkeypatch):
    from medviewer.report.dicom_objects import DicomObjectError, NoHeatmapError, read_sr, write_sc, write_seg, write_sr
    from medviewer.store.cases import CaseStore

    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "data"))
    store = CaseStore()
    try:
        folder = _make_study(tmp_path / "study")
        uid = _register(store, folder)
        ct = next(i for i in store.case_images(uid) if i["modality"] == "CT")
        with pytest.raises(DicomObjectError, match="no SR to write"):  # nothing at all to report yet
            write_sr(store, uid, tmp_path / "x-sr.dcm")
        ann = Annotation("length", LENGTH_CT, ct["sop_instance_uid"])
        store.save_annotation(uid, ann)
        with pytest.raises(NoHeatmapError, match="no heat map"):
            write_seg(store, uid, tmp_path / "x-seg.dcm")
        with pytest.raises(NoHeatmapError, match="no heat map"):
            write_sc(store, uid, tmp_path / "x-sc.dcm")
        assert not (tmp_path / "x-seg.dcm").exists() and not (tmp_path / "x-sc.dcm").exists()
        path = write_sr(store, uid, tmp_path / "x-sr.dcm")
        assert path == tmp_path / "x-sr.dcm"
        assert [line for line in _dciodvfy(str(path)) if "Error" in line] == []
        parsed = read_sr(path)
        assert parsed["ai_results"] == [] and parsed["reader_calls"] == [] and parsed["observers"] == []
        assert [m["annotation_uid"] for m in parsed["measurements"]] == [ann.uid]
        assert pydicom.dcmread(path).VerificationFlag == "UNVERIFIED"
        assert not list(tmp_path.glob(".*.tmp"))
    finally:
        store.close()


def test_out_of_scope_result_is_a_note_not_a_call(tmp_path, monkeypatch):
    from medviewer.inference.scorer import ScoreResult
    from medviewer.report.dicom_objects import NOT_EVALUATED, read_sr, write_sr
    from medviewer.store.cases import CaseStore

    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "data"))
    store = CaseStore()
    try:
        uid = _register(store, _make_study(tmp_path / "study"))
        cr = next(i for i in store.case_images(uid) if i["modality"] == "CR")
        store.add_ai_result(uid, ScoreResult(
            sop_instance_uid=cr["sop_instance_uid"], model="pneumonia-chest224", version="2.0.0",
            weights_sha256="ab" * 32, probabilities={}, threshold=0.5, positive_label="pneumonia", positive=False,
            status="out_of_scope", scope_reason="adult chest film; trained on children"))
        path = write_sr(store, uid, tmp_path / "oos.dcm")
        [r] = read_sr(path)["ai_results"]
        assert r["probability"] is None and r["call"] == "not evaluated" and r["positive"] is None
        assert r["status"] == "out_of_scope" and "trained on children" in r["scope"]
        sr = pydicom.dcmread(path)
        values = [i.ConceptCodeSequence[0].CodeValue for i in _walk(sr) if i.get("ValueType") == "CODE"
                  and i.ConceptNameCodeSequence[0].CodeMeaning == "Pneumonia"]
        assert values == [NOT_EVALUATED.value]
        assert [line for line in _dciodvfy(str(path)) if "Error" in line] == []
    finally:
        store.close()


def test_uncertain_note_finding_is_undetermined_never_present(tmp_path, monkeypatch, note_finding):
    """Note findings go into the SR after the reader's review: present -> Present, confirmed -> Present, rejected
    -> Absent, hedged in the note and not decided -> Undetermined (CID 240), never Present; absent unreviewed ones
    are left out. A case with only note findings has an SR; it passes dciodvfy; read_sr gives the findings back
    apart from the AI results, and registering the study again imports nothing from them."""
    from medviewer.report.dicom_objects import (ABSENT, PRESENT, UNDETERMINED, import_dicom_results, read_sr,
                                                write_sr)
    from medviewer.store.cases import CaseStore

    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "data"))
    store = CaseStore()
    try:
        folder = _make_study(tmp_path / "study")
        uid = _register(store, folder)
        store.save_text(uid, "Effusion. Cannot exclude pneumothorax. Possible mass. ? atelectasis.")
        store.save_findings(uid, [note_finding("Effusion", "present", 0.9, 0.02),
                                  note_finding("Pneumothorax", "uncertain", 0.15, 0.75),
                                  note_finding("Mass", "uncertain", 0.2, 0.6),
                                  note_finding("Atelectasis", "uncertain", 0.3, 0.65),
                                  note_finding("Nodule", "absent", 0.05, 0.01)],
                            {"Mass": "rejected", "Atelectasis": "confirmed"}, "notes-minilm", "2.0.0")
        path = write_sr(store, uid, tmp_path / "notes-sr.dcm")
        assert [line for line in _dciodvfy(str(path)) if "Error" in line] == []
        sr = pydicom.dcmread(path)
        calls = {i.ConceptNameCodeSequence[0].CodeMeaning: i.ConceptCodeSequence[0].CodeValue for i in _walk(sr)
                 if i.get("ValueType") == "CODE" and i.ConceptNameCodeSequence[0].CodeMeaning in
                 ("Effusion", "Pneumothorax", "Mass", "Atelectasis", "Nodule")}
        assert calls == {"Effusion": PRESENT.value, "Pneumothorax": UNDETERMINED.value, "Mass": ABSENT.value,
                         "Atelectasis": PRESENT.value}
        assert UNDETERMINED.value == "373068000" and UNDETERMINED.scheme_designator == "SCT"
        parsed = read_sr(path)
        assert parsed["ai_results"] == [] and parsed["reader_calls"] == [] and parsed["measurements"] == []
        got = {f["label"]: f for f in parsed["note_findings"]}
        assert {k: (f["state"], f["model_state"], f["decision"]) for k, f in got.items()} == {
            "Effusion": ("present", "present", ""), "Pneumothorax": ("uncertain", "uncertain", ""),
            "Mass": ("absent", "uncertain", "rejected"), "Atelectasis": ("present", "uncertain", "confirmed")}
        assert got["Pneumothorax"]["uncertain_probability"] == 0.75 and got["Effusion"]["probability"] == 0.9
        assert {f["model"] for f in got.values()} == {"notes-minilm"}
        shutil.copy(path, folder / "notes-sr.dcm")
        from medviewer.io.scan import scan

        [study] = [st for p in scan([str(folder)]).patients.values() for st in p.studies.values()]
        counts = import_dicom_results(store, study)
        assert counts["srs"] == 1 and (counts["ai_results"], counts["reader_calls"], counts["annotations"]) == (0, 0, 0)
        assert len(store.note_results(uid)) == 1 and store.ai_results(uid) == []
    finally:
        store.close()


def test_outputs_refuse_fifos_and_name_several_objects(case, tmp_path):
    import os

    from medviewer.report.dicom_objects import _targets

    fifo = tmp_path / "pipe.dcm"
    os.mkfifo(fifo)
    from medviewer.report.dicom_objects import write_sr

    with pytest.raises(ValueError, match="FIFO"):
        write_sr(case["store"], case["uid"], fifo)
    from medviewer.report.model import Report

    report = Report(pseudonym="ANON-X", header={"StudyInstanceUID": "1.2.3"})
    assert [p.name for p in _targets(tmp_path / "a.dcm", report, "-seg.dcm", 3)] == ["a.dcm", "a-2.dcm", "a-3.dcm"]
    names = [p.name for p in _targets(str(tmp_path) + "/", report, "-seg.dcm", 2)]
    assert names[0].endswith("-seg.dcm") and names[1].endswith("-seg-2.dcm") and "ANON-X" in names[0]


def test_sr_of_a_study_whose_files_lack_type2_patient_attributes(ge_dir, tmp_path):
    """The GE head CT has no PatientBirthDate, StudyDate or StudyID: the SR still gets written (those attributes
    empty, "unknown", as PS3.3 Type 2 allows) and passes dciodvfy."""
    from medviewer.io.scan import scan
    from medviewer.report.dicom_objects import export_dicom_objects, read_sr
    from medviewer.store import CaseStore

    first = pydicom.dcmread(sorted(p for p in ge_dir.glob("*.dcm"))[0], stop_before_pixels=True)
    assert "PatientBirthDate" not in first
    store = CaseStore(path=tmp_path / "cases.sqlite3")
    try:
        store.register_index(scan([str(ge_dir)]), str(ge_dir))
        uid = store.cases()[0].study_instance_uid
        img = store.case_images(uid)[5]
        store.save_annotation(uid, Annotation("rect", [(100.0, 100.0), (200.0, 180.0)], img["sop_instance_uid"]))
        out = export_dicom_objects(store, uid, sr=tmp_path)
    finally:
        store.close()
    [path] = out["sr"]
    ds = pydicom.dcmread(path)
    assert ds.PatientBirthDate == "" and ds.StudyInstanceUID == uid
    assert not [line for line in _dciodvfy(str(path)) if "Error" in line]
    [m] = read_sr(ds)["measurements"]
    assert m["kind"] == "rect" and m["sop_instance_uid"] == img["sop_instance_uid"]


def test_sc_of_an_image_without_patient_orientation(tmp_path):
    """A scored radiograph without PatientOrientation still gets its Secondary Capture (highdicom needs a coordinate
    system; the SC's PatientOrientation is then empty, "unknown", as PS3.3 C.7.6.1 Type 2C allows) and it passes
    dciodvfy. (It used to raise ValueError: None is not a valid CoordinateSystemNames.)"""
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    from types import SimpleNamespace

    from medviewer.io.sample import build_sample_study
    from medviewer.report.dicom_objects import build_sc
    from medviewer.report.render import load_frame

    path = next(build_sample_study(tmp_path / "sample").glob("*RG1*.dcm"))
    header = pydicom.dcmread(path, stop_before_pixels=True)
    del header.PatientOrientation
    result = SimpleNamespace(heatmap=lambda: np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8),
                             heatmap_method="gradcam", heatmap_label="pneumonia", positive_label="pneumonia",
                             model="pneumonia-cnn", model_version="1", score=0.7, frame=0)
    sc = build_sc(result, header, load_frame(str(path), 0), [])
    assert "PatientOrientation" in sc and not sc.PatientOrientation
    out = tmp_path / "sc.dcm"
    sc.save_as(out, enforce_file_format=True)
    assert not [line for line in _dciodvfy(str(out)) if "Error" in line]


def test_single_component_source_names_are_logged_not_printed_and_other_warnings_pass(caplog):
    """A single-component PatientName copied from the source (valid DICOM) gives highdicom's UserWarning: it is
    logged without the name (no identifiers in logs); any other warning still reaches the caller."""
    import logging
    import warnings

    from highdicom.valuerep import check_person_name

    from medviewer.report.dicom_objects import _source_names_copied_as_is

    caplog.set_level(logging.INFO, logger="medviewer.report.dicom_objects")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with _source_names_copied_as_is("SC"):
            check_person_name("Wardname")
            warnings.warn("something else", RuntimeWarning)
    assert [str(w.message) for w in caught] == ["something else"]
    logged = [r.getMessage() for r in caplog.records if "single component" in r.getMessage()]
    assert logged and all("Wardname" not in m for m in logged)
