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


def test_float_pixel_data_loads_as_float32_not_reinterpreted(tmp_path):
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from medviewer.imaging.volume import load_volume

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.30"  # Parametric Map
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = generate_uid(), generate_uid(), "OT"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 2, 3, 1, 32
    ds.PhotometricInterpretation = "MONOCHROME2"
    values = np.array([[0.5, -1.25, 3.0], [4.0, 5.0, 6000.0]], dtype=np.float32)
    ds.FloatPixelData = values.tobytes()
    ds.save_as(tmp_path / "f.dcm", enforce_file_format=True)
    idx = scan(tmp_path)
    (_, _, series), = list(idx.iter_series())
    vol = load_volume(build_stacks(series)[0])
    assert vol.array.dtype == np.float32
    np.testing.assert_array_equal(vol.array[0], values)
