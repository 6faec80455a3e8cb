"""`medviewer scan` on the shared real series, text and --json (schema in README)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
PHILIPS = SHARED / "ct-phantom-philips"
GE = SHARED / "ct-head-ge"

pytestmark = pytest.mark.skipif(not PHILIPS.is_dir(), reason="../shared/data is not beside the checkout")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medviewer", *args], capture_output=True, text=True, timeout=120)


def _stacks(doc: dict) -> list[dict]:
    return [st for p in doc["patients"] for s in p["studies"] for se in s["series"] for st in se["stacks"]]


def test_scan_json_philips_one_stack_of_140_and_dirfile_apart():
    res = _run("scan", "--json", str(PHILIPS))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["schema"] == "medviewer.scan/1"
    stacks = _stacks(doc)
    assert len(stacks) == 1
    st = stacks[0]
    assert isinstance(st["slices"], int) and st["slices"] == 140
    assert isinstance(st["warnings"], list) and st["warnings"] == []
    ds = pydicom.dcmread(PHILIPS / "I10", stop_before_pixels=True)
    row_mm, col_mm = (float(v) for v in ds.PixelSpacing)
    assert st["spacing"][0] == pytest.approx(col_mm, abs=1e-3)
    assert st["spacing"][1] == pytest.approx(row_mm, abs=1e-3)
    # Slice spacing from two neighbouring files' positions, independently.
    z = sorted(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2])
               for f in (PHILIPS / "I10", PHILIPS / "I20"))
    assert st["spacing"][2] == pytest.approx(z[1] - z[0], abs=1e-3)
    assert st["dimensions"] == [ds.Columns, ds.Rows, 140]
    dirs = [n for n in doc["non_image"] if Path(n["path"]).name == "DIRFILE"]
    assert len(dirs) == 1 and dirs[0]["kind"] == "DICOMDIR"
    assert all(Path(s["path"]).name != "DIRFILE" for s in doc["skipped"])
    skipped = {Path(s["path"]).name: s["reason"] for s in doc["skipped"]}
    assert "LICENSE" in skipped and "not a DICOM file" in skipped["LICENSE"]


def test_scan_json_ge_tilt_and_uneven_spacing_in_warnings():
    res = _run("scan", "--json", str(GE))
    assert res.returncode == 0, res.stderr
    stacks = _stacks(json.loads(res.stdout))
    assert len(stacks) == 1 and stacks[0]["slices"] == 28
    # Independent: tilt from the header and the positions/orientation.
    files = sorted(GE.glob("*.dcm"))
    dss = [pydicom.dcmread(f, stop_before_pixels=True) for f in files]
    iop = np.array(dss[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.array([d.ImagePositionPatient for d in dss], dtype=float)
    loc = np.sort(pos @ normal)
    steps = np.diff(loc)
    step = pos[np.argmax(pos @ normal)] - pos[np.argmin(pos @ normal)]
    tilt = np.degrees(np.arccos(abs(step @ normal) / np.linalg.norm(step)))
    warnings = " ".join(stacks[0]["warnings"])
    assert "tilt" in warnings and f"{tilt:.1f}" in warnings
    assert "uneven" in warnings
    assert f"{steps.min():.2f}" in warnings and f"{steps.max():.2f}" in warnings
    assert stacks[0]["tilt_degrees"] == pytest.approx(tilt, abs=0.05)


def test_scan_text_output_lists_tree_and_skipped():
    res = _run("scan", str(GE), str(PHILIPS))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "140 slices" in out and "28 slices" in out
    assert "DIRFILE" in out and "Skipped 2 files" in out
    assert "gantry tilt" in out


def test_scan_missing_path_exit_2(tmp_path):
    res = _run("scan", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert "no such file" in res.stderr


def test_scan_json_is_strict_json_with_nan_geometry_and_non_utf8_names(tmp_path):
    """Non-finite header values (NaN/inf in DS attributes) and file names that are not UTF-8 still give valid
    JSON (RFC 8259 has no NaN)."""
    import os

    src = pydicom.dcmread(PHILIPS / "I10")
    src.SliceThickness = "NaN"
    src.PixelSpacing = ["inf", "0.5"]
    name = b"bad-\xff.dcm".decode("utf-8", "surrogateescape")
    src.save_as(os.path.join(str(tmp_path), name))
    with open(os.path.join(str(tmp_path), b"notes-\xfe.txt".decode("utf-8", "surrogateescape")), "w") as fh:
        fh.write("not DICOM")  # listed under "skipped" with its name

    def no_constants(c: str):  # noqa: ANN202
        raise AssertionError(f"non-standard JSON constant {c}")

    res = _run("scan", "--json", str(tmp_path))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout, parse_constant=no_constants)
    assert any(s["path"].endswith("notes-\\xfe.txt") for s in doc["skipped"])
    assert len(_stacks(doc)) == 1
    res = _run("scan", str(tmp_path))
    assert res.returncode == 0 and "notes-\\xfe.txt" in res.stdout
