"""Behaviour found in review: header-only image objects, pydicom read warnings, unique sibling stack labels."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pydicom
import pydicom.data

from medviewer.imaging.stacks import build_stacks
from medviewer.io.scan import scan

TEST_FILES = Path(os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm")))


def test_image_sop_class_without_pixel_data_is_no_pixels_not_image():
    tiny = next((TEST_FILES / "dicomdirtests").rglob("IM000000"))
    ds = pydicom.dcmread(tiny)
    assert "PixelData" not in ds and "Image Storage" in ds.SOPClassUID.name
    idx = scan(tiny)
    (inst,) = list(idx.iter_instances())
    assert inst.kind == "NO_PIXELS" and not inst.is_image


def test_pydicom_read_warnings_are_recorded_not_printed(recwarn):
    path = TEST_FILES / "SC_rgb_jpeg.dcm"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pydicom.dcmread(path, stop_before_pixels=True)
    expected = [str(w.message) for w in caught]
    assert expected, "pydicom no longer warns on this file; pick another"
    idx = scan(path)
    assert len(recwarn) == 0
    (inst,) = list(idx.iter_instances())
    assert expected[0] in inst.read_warnings
    (_, _, series), = list(idx.iter_series())
    assert any(expected[0] in w for s in build_stacks(series) for w in s.warnings)


def test_sibling_stack_labels_are_unique_across_pydicom_test_files():
    idx = scan(TEST_FILES)
    multi = 0
    for _, _, series in idx.iter_series():
        stacks = build_stacks(series) if series.image_instances else []
        labels = [s.label for s in stacks]
        if len(stacks) > 1:
            multi += 1
            assert len(set(labels)) == len(labels), labels
    assert multi >= 1
