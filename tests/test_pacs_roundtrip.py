"""The whole loop from the CLI against a real Orthanc: a study is found, retrieved, read, annotated, scored and sent
back with its SR, heat-map SEG and SC; a second workstation (a fresh case store) retrieves the study from the PACS and
sees the AI finding and the measurement in the case."""

from __future__ import annotations

import json
import os

import pydicom
import pytest

from medviewer.imaging.annotations import Annotation
from tests.orthanc_server import LocalOrthanc, available

if not available():
    if os.environ.get("CI"):
        pytest.fail("Orthanc is not installed (.ci/run installs it)", pytrace=False)
    pytest.skip("Orthanc is not installed", allow_module_level=True)


def test_find_retrieve_annotate_score_send_back_and_read_back(tmp_path, monkeypatch, capsys):
    pytest.importorskip("data_store", reason="pydicom-data is not installed")
    from medviewer.__main__ import main
    from medviewer.io.sample import build_sample_study
    from medviewer.store.cases import open_default_store

    sample = build_sample_study(tmp_path / "sample")
    chest = sorted(sample.glob("01_*.dcm"))[0]
    ref = pydicom.dcmread(chest, stop_before_pixels=True)
    study_uid, sop = str(ref.StudyInstanceUID), str(ref.SOPInstanceUID)

    with LocalOrthanc(tmp_path / "orthanc") as pacs:
        pacs.upload([chest])
        spec = f"{pacs.aet}@127.0.0.1:{pacs.dicom_port}"

        # workstation 1: find, retrieve (registers the case), annotate, score + write SR/SEG/SC, send them back
        monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "ws1"))
        assert main(["pacs", "find", spec, "--patient-name", "SAMPLE*", "--json"]) == 0
        found = json.loads(capsys.readouterr().out)["results"]
        assert [r["StudyInstanceUID"] for r in found] == [study_uid]
        assert main(["pacs", "get", spec, "--study", study_uid, "--dest", str(tmp_path / "ws1-cache")]) == 0
        capsys.readouterr()
        store = open_default_store()
        assert [i["sop_instance_uid"] for i in store.case_images(study_uid)] == [sop]
        length = Annotation("length", [(400.5, 500.5), (900.5, 500.5)], sop)
        store.save_annotation(study_uid, length)
        store.close()
        out = tmp_path / "objects"
        out.mkdir()
        assert main(["export", study_uid, "--sr", str(out), "--seg", str(out), "--sc", str(out)]) == 0
        written = capsys.readouterr().out.split()
        assert len(written) == 3
        kinds = {str(pydicom.dcmread(p, stop_before_pixels=True).Modality) for p in written}
        assert kinds == {"SR", "SEG", "OT"}
        assert main(["pacs", "send", spec, *written]) == 0
        assert len(pacs.instances()) == 4

        # workstation 2: a fresh case store retrieves the study and reads our SR back into the case
        monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "ws2"))
        assert main(["pacs", "get", spec, "--study", study_uid, "--dest",
                     str(tmp_path / "ws2-cache")]) == 0
        store = open_default_store()
        try:
            ai = store.latest_ai_results(study_uid)
            assert len(ai) == 1 and ai[0].sop_instance_uid == sop and 0.0 <= ai[0].score <= 1.0
            assert ai[0].heatmap() is not None  # the SEG came back with it
            anns = store.annotations(study_uid)
            assert [(a.kind, a.uid) for a in anns] == [("length", length.uid)]
            assert anns[0].points == length.points
        finally:
            store.close()
