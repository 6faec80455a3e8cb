"""`medviewer score` on real files: JSON entries per image, overlay PNGs, refusal of a pickled model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medviewer.io.sample import pydicom_data_file

pytest.importorskip("torch")
ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medviewer", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_score_folder_json_and_cam_dir(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    files = {}
    for name in ("RG1_UNCI.dcm", "MR2_UNCR.dcm"):
        src = pydicom_data_file(name)
        (folder / name).write_bytes(src.read_bytes())
        files[pydicom.dcmread(src, stop_before_pixels=True).SOPInstanceUID] = src
    (folder / "notes.txt").write_text("not dicom")
    cams = tmp_path / "cams"
    # The default model would refuse the MR (and perhaps the adult CR): --score-anyway gives both a call.
    res = _run("score", str(folder), "--json", "--cam-dir", str(cams), "--score-anyway")
    assert res.returncode == 0, res.stderr
    entries = json.loads(res.stdout)
    assert {e["SOPInstanceUID"] for e in entries} == set(files)
    from medviewer.inference.scorer import DEFAULT_MODEL

    card = json.loads((ROOT / "models" / DEFAULT_MODEL / "card.json").read_text())
    by_modality = {pydicom.dcmread(files[e["SOPInstanceUID"]], stop_before_pixels=True).Modality: e for e in entries}
    assert by_modality["MR"]["status"] == "scored_anyway" and "modality MR" in by_modality["MR"]["reason"]
    for e in entries:
        assert e["model"] == DEFAULT_MODEL and e["weights_sha256"] == card["weights_sha256"]
        probs = e["probability"]
        assert set(probs) == set(card["labels"]) and abs(sum(probs.values()) - 1) < 1e-5
        assert all(np.isfinite(v) for v in probs.values())
        assert e["positive"] == (probs[card["positive_label"]] >= card["threshold"])
    pngs = sorted(cams.glob("*.png"))
    assert len(pngs) == 2
    from PIL import Image

    for png in pngs:
        uid = png.name.split("_gradcam")[0]
        ds = pydicom.dcmread(files[uid], stop_before_pixels=True)
        assert Image.open(png).size == (ds.Columns, ds.Rows)  # drawn on the original pixel grid
    assert "notes.txt" in res.stderr


def test_score_refuses_a_pickled_model(tmp_path):
    import shutil

    import torch

    bad = tmp_path / "bad-model"
    shutil.copytree(ROOT / "models" / "pneumonia-cnn", bad)
    card = json.loads((bad / "card.json").read_text())
    torch.save({"w": torch.zeros(1)}, bad / "model.pt")
    card["weights"] = "model.pt"
    from medviewer.inference.card import sha256_file

    card["weights_sha256"] = sha256_file(bad / "model.pt")
    (bad / "card.json").write_text(json.dumps(card))
    res = _run("score", str(pydicom_data_file("RG1_UNCI.dcm")), "--model", str(bad))
    assert res.returncode == 2
    assert "pickled" in res.stderr and "refused" in res.stderr
    assert os.path.exists(bad / "model.pt")


def test_cam_dir_is_checked_and_overlay_names_cannot_leave_it(tmp_path):
    """--cam-dir that is not a folder is refused (exit 2, no traceback); a SOPInstanceUID with "../" in a file
    cannot put an overlay outside the folder."""
    src = pydicom.dcmread(pydicom_data_file("RG1_UNCI.dcm"))
    src.SOPInstanceUID = "../../escaped"
    (tmp_path / "in").mkdir()
    src.save_as(tmp_path / "in" / "x.dcm")
    res = _run("score", str(tmp_path / "in"), "--cam-dir", "/dev/null", "--score-anyway")
    assert res.returncode == 2 and "not a folder" in res.stderr and "Traceback" not in res.stderr
    cams = tmp_path / "a" / "b" / "cams"
    res = _run("score", str(tmp_path / "in"), "--cam-dir", str(cams), "--score-anyway")
    assert res.returncode == 0, res.stderr
    assert not list(tmp_path.rglob("escaped*")) or all(cams in p.parents for p in tmp_path.rglob("*gradcam.png"))
    assert len(list(cams.glob("*_gradcam.png"))) == 1
