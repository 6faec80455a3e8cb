"""Loading stacks into volumes: modality values, dtypes, geometry, colour, broken files, cancellation.

Reference values come from numpy on the pixels the test wrote, from pydicom's own decoding
(``pydicom.dcmread(f).pixel_array`` and its colour functions) and from SimpleITK.
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, convert_color_space

import dicomfactory as fac
from medviewer.imaging import build_stacks, load_volume
from medviewer.io import scan
from medviewer.io.pixels import PixelDecodeError
from medviewer.jobs import Cancelled


def _normal(iop) -> np.ndarray:
    o = np.asarray(iop, dtype=np.float64)
    n = np.cross(o[:3], o[3:])
    return n / np.linalg.norm(n)


def _order(positions, iop=fac.AXIAL) -> list[int]:
    return [int(i) for i in np.argsort(np.asarray(positions, dtype=np.float64) @ _normal(iop), kind="stable")]


def _one_stack(folder):
    index = scan(folder)
    assert index.skipped == []
    (series,) = [s for _, _, s in index.iter_series() if s.image_instances]
    (stack,) = build_stacks(series)
    return stack


def _rescaled(ds: pydicom.Dataset) -> np.ndarray:
    """pydicom's stored values through the linear Modality LUT, in float64."""
    return (ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1))
            + float(ds.get("RescaleIntercept", 0)))


# ----------------------------------------------------------------------------------------------------------------
# Real CT series against pydicom and SimpleITK
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def philips_volume(philips_index):
    (series,) = [s for _, _, s in philips_index.iter_series() if s.image_instances]
    (stack,) = build_stacks(series)
    return load_volume(stack)


@pytest.fixture(scope="module")
def ge_volume(ge_index):
    (series,) = [s for _, _, s in ge_index.iter_series() if s.image_instances]
    (stack,) = build_stacks(series)
    return load_volume(stack)


@pytest.mark.parametrize("which", ["philips", "ge"])
def test_real_ct_hu_equals_pydicom_per_slice(request, which):
    vol = request.getfixturevalue(f"{which}_volume")
    reference = request.getfixturevalue(f"{which}_reference")
    assert vol.shape == (len(reference), int(reference[0][1].Rows), int(reference[0][1].Columns))
    assert vol.array.dtype != np.float64
    assert vol.slice_errors == []
    for k, (path, ds) in enumerate(reference):
        assert os.path.realpath(vol.stack.slices[k].instance.path) == os.path.realpath(path)
        assert np.array_equal(vol.array[k], _rescaled(ds)), f"slice {k} ({os.path.basename(path)})"
    assert vol.units == "HU"
    assert vol.modality == "CT"


@pytest.mark.parametrize("which", ["philips", "ge"])
def test_real_ct_positions_and_affine(request, which):
    vol = request.getfixturevalue(f"{which}_volume")
    reference = request.getfixturevalue(f"{which}_reference")
    ipp = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in reference])
    assert np.allclose(vol.positions, ipp, atol=1e-6)
    assert np.allclose(vol.origin, ipp[0], atol=1e-6)
    ps = [float(v) for v in reference[0][1].PixelSpacing]
    assert vol.spacing[1:] == pytest.approx(ps)
    iop = np.array([float(v) for v in reference[0][1].ImageOrientationPatient])
    assert np.allclose(vol.direction[:, 2], iop[:3]) and np.allclose(vol.direction[:, 1], iop[3:])
    assert np.allclose(vol.direction[:, 0], _normal(iop))
    # exact per-slice positions through index_to_lps (uneven spacing and tilt included)
    for k in (0, len(ipp) // 2, len(ipp) - 1):
        expected = ipp[k] + 7 * ps[0] * iop[3:] + 11 * ps[1] * iop[:3]
        assert np.allclose(vol.index_to_lps(k, 7, 11), expected, atol=1e-6)
    if which == "philips":  # evenly spaced: the affine hits every slice
        idx = np.column_stack([np.arange(len(ipp)), np.zeros(len(ipp)), np.zeros(len(ipp)), np.ones(len(ipp))])
        assert np.allclose((vol.affine @ idx.T).T[:, :3], ipp, atol=1e-4)


def test_philips_volume_equals_simpleitk(philips_dir, philips_volume):
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    names = reader.GetGDCMSeriesFileNames(str(philips_dir))
    assert len(names) == 140
    reader.SetFileNames(names)
    image = reader.Execute()
    expected = sitk.GetArrayFromImage(image)  # (z, y, x)
    vol = philips_volume
    assert expected.shape == vol.shape
    assert np.array_equal(expected, vol.array)
    assert np.allclose(image.GetOrigin(), vol.origin, atol=1e-4)
    sx, sy, sz = image.GetSpacing()
    assert (sz, sy, sx) == pytest.approx(tuple(vol.spacing), abs=1e-4)
    d = np.array(image.GetDirection()).reshape(3, 3)  # columns: x (row dir), y (column dir), z (slice dir)
    assert np.allclose(d[:, 0], vol.direction[:, 2], atol=1e-6)
    assert np.allclose(d[:, 1], vol.direction[:, 1], atol=1e-6)
    assert np.allclose(d[:, 2], vol.direction[:, 0], atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# Modality LUT and dtypes
# ----------------------------------------------------------------------------------------------------------------


def _write_rescaled_series(folder, params, rng, *, rows=6, cols=5):
    """One slice per (slope, intercept); positions shuffled. Returns (positions, stored pixels)."""
    n = len(params)
    z = [float(v) for v in rng.permutation(n) * 2.0]
    positions = [(0.0, 0.0, v) for v in z]
    stored = [rng.integers(-600, 1600, size=(rows, cols)).astype(np.int16) for _ in range(n)]
    ids = fac.SeriesIds()
    for k in range(n):
        fac.image_slice(folder / f"IM{k}", ids, ipp=positions[k], pixels=stored[k],
                        slope=params[k][0], intercept=params[k][1], instance_number=k + 1)
    return positions, stored


def test_per_slice_integer_rescale(tmp_path):
    rng = np.random.default_rng(1)
    params = [(1, -1024), (2, -1000), (1, 0), (3, 5), (1, -1024)]
    positions, stored = _write_rescaled_series(tmp_path, params, rng)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.array.dtype.kind == "i"  # integral rescales stay integers
    for k, i in enumerate(_order(positions)):
        expected = stored[i].astype(np.int64) * params[i][0] + params[i][1]
        assert np.array_equal(vol.array[k], expected), k


def test_per_slice_float_rescale_is_float32(tmp_path):
    rng = np.random.default_rng(2)
    params = [(0.5, -3.5), (1.25, 10.0), (1.0, -1024.0), (0.001, 0.25)]
    positions, stored = _write_rescaled_series(tmp_path, params, rng)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.array.dtype == np.float32
    for k, i in enumerate(_order(positions)):
        expected = stored[i].astype(np.float64) * params[i][0] + params[i][1]
        assert np.allclose(vol.array[k], expected, rtol=1e-6, atol=1e-4), k


def test_enhanced_ct_per_frame_rescale(tmp_path):
    rng = np.random.default_rng(3)
    z = [4.0, 0.0, 2.0, 6.0]
    positions = [(0.0, 0.0, v) for v in z]
    frames = rng.integers(0, 2000, size=(4, 5, 5)).astype(np.int16)
    rescale = [(1.0, -1024.0), (2.0, 0.0), (0.5, 3.0), (1.0, 0.0)]
    fac.enhanced_ct(tmp_path / "e", positions=positions, frames=frames, per_frame_rescale=rescale)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.array.dtype == np.float32
    for k, i in enumerate(_order(positions)):
        expected = frames[i].astype(np.float64) * rescale[i][0] + rescale[i][1]
        assert np.allclose(vol.array[k], expected, atol=1e-4), k


@pytest.mark.parametrize("encoding", ["explicit", "implicit", "no-preamble", "no-meta"])
@pytest.mark.parametrize("signed", [True, False])
def test_bits_stored_12_with_garbage_in_high_bits(tmp_path, encoding, signed):
    rng = np.random.default_rng(5)
    n = 3
    raw = [rng.integers(0, 65536, size=(7, 6), dtype=np.uint16) for _ in range(n)]  # high 4 bits random
    assert any(((r >> 12) != 0).any() for r in raw)
    ids = fac.SeriesIds()
    kwargs = {"explicit": {}, "implicit": {"transfer_syntax": fac.IMPLICIT_VR_LE},
              "no-preamble": {"preamble": False}, "no-meta": {"meta": False}}[encoding]
    for k in range(n):
        fac.image_slice(tmp_path / f"IM{k}", ids, ipp=(0.0, 0.0, float(k)), pixels=raw[k], bits_stored=12,
                        pixel_representation=1 if signed else 0, slope=1, intercept=-1024, instance_number=k + 1,
                        **kwargs)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.slice_errors == []
    for k in range(n):
        v = (raw[k] & 0x0FFF).astype(np.int32)
        if signed:
            v = np.where(v >= 2048, v - 4096, v)
        assert np.array_equal(vol.array[k], v - 1024), k
    assert vol.array.dtype == np.int16  # -3072..3071 fits


def test_no_rescale_keeps_stored_values(tmp_path):
    ids = fac.SeriesIds()
    rng = np.random.default_rng(8)
    px = [rng.integers(0, 4096, size=(4, 4)).astype(np.uint16) for _ in range(2)]
    for k in range(2):
        fac.image_slice(tmp_path / f"IM{k}", ids, ipp=(0, 0, k), pixels=px[k], slope=None, intercept=None,
                        modality="MR", sop_class=fac.MR_IMAGE, instance_number=k + 1)
    vol = load_volume(_one_stack(tmp_path))
    assert np.array_equal(vol.array, np.stack(px))
    assert vol.units == ""


def test_monochrome1_is_flagged_not_inverted(tmp_path):
    ids = fac.SeriesIds()
    rng = np.random.default_rng(6)
    px = rng.integers(0, 4096, size=(9, 7)).astype(np.uint16)
    fac.image_slice(tmp_path / "cr", ids, ipp=None, iop=None, pixel_spacing=None, pixels=px, bits_stored=12,
                    photometric="MONOCHROME1", slope=None, intercept=None, modality="CR", sop_class=fac.CR_IMAGE,
                    window=(2000, 3000), extra={"ImagerPixelSpacing": ["0.2", "0.3"]})
    vol = load_volume(_one_stack(tmp_path))
    assert vol.photometric_interpretation == "MONOCHROME1"
    assert vol.shape == (1, 9, 7)
    assert np.array_equal(vol.array[0], px)
    assert [p[:2] for p in vol.window_presets] == [(2000.0, 3000.0)]
    assert vol.spacing[1:] == pytest.approx((0.2, 0.3))


# ----------------------------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------------------------


def _check_affine(vol, positions_sorted, iop, ps):
    row, col = np.asarray(iop[:3]), np.asarray(iop[3:])
    rows, cols = vol.shape[1], vol.shape[2]
    for k, p in enumerate(positions_sorted):
        for i, j in ((0, 0), (rows - 1, 0), (0, cols - 1), (2, 3), (rows - 1, cols - 1)):
            expected = np.asarray(p) + i * ps[0] * col + j * ps[1] * row
            got = vol.affine @ np.array([k, i, j, 1.0])
            assert np.allclose(got[:3], expected, atol=1e-5), (k, i, j)
            assert got[3] == pytest.approx(1.0)
            assert np.allclose(vol.index_to_lps(k, i, j), expected, atol=1e-5)


def test_affine_of_an_evenly_spaced_oblique_stack(tmp_path):
    r = np.array([[0.8, -0.6, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0]]) @ np.array(
        [[1.0, 0.0, 0.0], [0.0, 0.6, -0.8], [0.0, 0.8, 0.6]])
    iop = tuple(float(v) for v in (*r[:, 0], *r[:, 1]))
    n = _normal(iop)
    origin = np.array([-20.0, 15.5, 300.25])
    ks = [3, 0, 4, 1, 2]
    positions = [tuple(origin + 2.5 * k * n) for k in ks]
    ps = (0.7, 0.4)
    fac.write_series(tmp_path, positions, iop=iop, pixel_spacing=ps, rows=6, cols=9)
    vol = load_volume(_one_stack(tmp_path))
    sorted_pos = [positions[i] for i in _order(positions, iop)]
    assert np.allclose(vol.positions, sorted_pos, atol=1e-5)
    assert vol.spacing == pytest.approx((2.5, 0.7, 0.4), abs=1e-5)
    _check_affine(vol, sorted_pos, iop, ps)


def test_affine_of_a_tilted_stack(tmp_path):
    t = math.radians(20.0)
    positions = [(1.0, -3.0 + 1.5 * k * math.tan(t), 1.5 * k) for k in (2, 0, 3, 1, 5, 4)]
    ps = (0.5, 0.6)
    fac.write_series(tmp_path, positions, pixel_spacing=ps, rows=5, cols=8)
    stack = _one_stack(tmp_path)
    assert stack.tilt_deg == pytest.approx(20.0, abs=1e-3)
    vol = load_volume(stack)
    sorted_pos = [positions[i] for i in _order(positions)]
    _check_affine(vol, sorted_pos, fac.AXIAL, ps)
    assert vol.spacing[0] == pytest.approx(1.5, abs=1e-6)  # slice spacing along the normal, not the step


def test_index_to_lps_of_an_unevenly_spaced_stack(tmp_path):
    z = [0.0, 1.0, 2.0, 5.0, 6.0]
    positions = [(0.0, 0.0, v) for v in z]
    fac.write_series(tmp_path, positions, pixel_spacing=(0.5, 0.25))
    vol = load_volume(_one_stack(tmp_path))
    for k, v in enumerate(z):
        assert np.allclose(vol.index_to_lps(k, 2, 4), (4 * 0.25, 2 * 0.5, v))


# ----------------------------------------------------------------------------------------------------------------
# Colour
# ----------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("planar", [0, 1])
def test_rgb_volume(tmp_path, planar):
    rng = np.random.default_rng(10)
    ids = fac.SeriesIds()
    z = [2.0, 0.0, 1.0]
    rgb = [rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8) for _ in z]
    for k, v in enumerate(z):
        fac.color_image(tmp_path / f"C{k}", ids, pixels=rgb[k], planar_configuration=planar, ipp=(0, 0, v),
                        iop=fac.AXIAL, pixel_spacing=(1, 1), instance_number=k + 1)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.array.dtype == np.uint8
    assert vol.shape == (3, 5, 7, 3)
    assert vol.is_color
    expected = np.stack([rgb[i] for i in _order([(0, 0, v) for v in z])])
    assert np.array_equal(vol.array, expected)


def test_ybr_full_volume_is_converted_to_rgb(tmp_path):
    rng = np.random.default_rng(11)
    ybr = rng.integers(0, 256, size=(6, 4, 3), dtype=np.uint8)
    fac.color_image(tmp_path / "ybr", pixels=ybr, photometric="YBR_FULL")
    vol = load_volume(_one_stack(tmp_path))
    expected = convert_color_space(ybr, "YBR_FULL", "RGB")
    assert vol.array.dtype == np.uint8
    assert vol.shape == (1, 6, 4, 3)
    assert np.array_equal(vol.array[0], expected)


def _palette_luts(rng):
    red, green, blue = (rng.integers(0, 256, size=256) for _ in range(3))
    return red, green, blue


def test_palette_color_8bit_lut(tmp_path):
    rng = np.random.default_rng(12)
    idx = rng.integers(0, 256, size=(5, 6))
    red, green, blue = _palette_luts(rng)
    path = fac.palette_image(tmp_path / "pal", indices=idx, red=red, green=green, blue=blue, lut_bits=8)
    ds = pydicom.dcmread(path)
    expected = apply_color_lut(ds.pixel_array, ds)
    assert np.array_equal(expected, np.stack([red, green, blue], axis=-1)[idx])  # pydicom agrees with numpy
    vol = load_volume(_one_stack(tmp_path))
    assert vol.array.dtype == np.uint8
    assert vol.shape == (1, 5, 6, 3)
    assert np.array_equal(vol.array[0], expected)


def test_palette_color_16bit_lut_becomes_8bit_rgb(tmp_path):
    rng = np.random.default_rng(13)
    idx = rng.integers(0, 256, size=(5, 6))
    red, green, blue = (lut * 257 for lut in _palette_luts(rng))  # full 16-bit range
    path = fac.palette_image(tmp_path / "pal", indices=idx, red=red, green=green, blue=blue, lut_bits=16)
    ds = pydicom.dcmread(path)
    expected16 = apply_color_lut(ds.pixel_array, ds)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.array.dtype == np.uint8
    diff = np.abs(vol.array[0].astype(np.int32) - np.round(expected16 / 257.0).astype(np.int32))
    assert diff.max() <= 1


def test_real_palette_color_ultrasound(testfile):
    path = testfile("OBXXXX1A_2frame.dcm")
    ds = pydicom.dcmread(path)
    expected16 = apply_color_lut(ds.pixel_array, ds)  # (2, 600, 800, 3), 16-bit entries
    vol = load_volume(_one_stack(path))
    assert vol.shape == (2, 600, 800, 3)
    assert vol.array.dtype == np.uint8
    diff = np.abs(vol.array.astype(np.int32) - np.round(expected16 / 257.0).astype(np.int32))
    assert diff.max() <= 1
    assert vol.array.max() > 200  # not wrapped to black


# ----------------------------------------------------------------------------------------------------------------
# pydicom-data objects
# ----------------------------------------------------------------------------------------------------------------


def test_pydicom_enhanced_ct(testfile):
    path = testfile("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    shared = ds.SharedFunctionalGroupsSequence[0]
    iop = [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient]
    positions = [[float(v) for v in f.PlanePositionSequence[0].ImagePositionPatient]
                 for f in ds.PerFrameFunctionalGroupsSequence]
    pvt = shared.PixelValueTransformationSequence[0]
    order = _order(positions, iop)
    expected = ds.pixel_array[order].astype(np.float64) * float(pvt.RescaleSlope) + float(pvt.RescaleIntercept)

    vol = load_volume(_one_stack(path))

    assert vol.shape == (int(ds.NumberOfFrames), 512, 512) == (2, 512, 512)
    assert np.array_equal(vol.array, expected)
    assert np.allclose(vol.positions, [positions[i] for i in order])
    assert vol.array.dtype != np.float64


def test_pydicom_multiframe_ultrasound(testfile):
    path = testfile("examples_ybr_color.dcm")  # 30-frame JPEG baseline YBR_FULL_422 cine
    ds = pydicom.dcmread(path)
    stack = _one_stack(path)
    assert stack.kind == "frames"
    vol = load_volume(stack)
    assert vol.shape == (30, 240, 320, 3)
    assert vol.array.dtype == np.uint8
    assert np.array_equal(vol.array, ds.pixel_array)  # pydicom's own decoding, converted to RGB


def test_synthetic_multiframe_ultrasound(tmp_path):
    rng = np.random.default_rng(14)
    frames = rng.integers(0, 256, size=(5, 4, 6)).astype(np.uint8)
    fac.legacy_multiframe(tmp_path / "us", frames=frames)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.shape == (5, 4, 6)
    assert np.array_equal(vol.array, frames)
    assert np.isnan(vol.positions).all()


def test_pydicom_chest_cr_monochrome1(testfile):
    path = testfile("RG1_UNCI.dcm")
    ds = pydicom.dcmread(path)
    vol = load_volume(_one_stack(path))
    assert vol.shape == (1, 1955, 1841)
    assert vol.photometric_interpretation == "MONOCHROME1" == ds.PhotometricInterpretation
    assert np.array_equal(vol.array[0], _rescaled(ds))


# ----------------------------------------------------------------------------------------------------------------
# Broken files, cancellation, callbacks
# ----------------------------------------------------------------------------------------------------------------


def _series_for_damage(folder, n=5):
    rng = np.random.default_rng(15)
    ids = fac.SeriesIds()
    z = [float(v) for v in rng.permutation(n)]
    stored = [rng.integers(0, 1000, size=(6, 6)).astype(np.int16) for _ in range(n)]
    files = [fac.image_slice(folder / f"IM{k}", ids, ipp=(0.0, 0.0, z[k]), pixels=stored[k], intercept=-1024,
                             instance_number=k + 1) for k in range(n)]
    return files, z, stored


@pytest.mark.parametrize("damage", ["truncated", "garbage-same-size", "garbage-header", "garbage-short", "deleted",
                                    "replaced-by-other-dicom"])
def test_broken_file_after_scan_is_a_slice_error(tmp_path, damage):
    files, z, stored = _series_for_damage(tmp_path)
    stack = _one_stack(tmp_path)
    victim = 2
    if damage == "truncated":
        fac.truncate(files[victim], drop=30)
    elif damage == "garbage-header":  # header overwritten, pixel bytes intact: the scanned offset is stale
        data = bytearray(files[victim].read_bytes())
        pixel_offset = len(data) - stored[victim].nbytes
        data[:pixel_offset] = np.random.default_rng(1).integers(0, 256, pixel_offset, dtype=np.uint8).tobytes()
        files[victim].write_bytes(bytes(data))
    elif damage == "replaced-by-other-dicom":  # another file written in its place, with a longer header
        fac.image_slice(files[victim], fac.SeriesIds(), pixels=stored[victim], study_description="x" * 64,
                        series_description="y" * 64)
    elif damage == "garbage-same-size":
        files[victim].write_bytes(np.random.default_rng(0).integers(0, 256, files[victim].stat().st_size,
                                                                     dtype=np.uint8).tobytes())
    elif damage == "garbage-short":
        files[victim].write_bytes(b"this is not DICOM any more")
    else:
        files[victim].unlink()

    vol = load_volume(stack)

    order = _order([(0, 0, v) for v in z])
    k_bad = order.index(victim)
    assert [e.index for e in vol.slice_errors] == [k_bad]
    assert os.path.realpath(vol.slice_errors[0].path) == os.path.realpath(files[victim])
    assert vol.slice_errors[0].reason
    assert any(os.path.basename(files[victim]) in w for w in vol.warnings)
    good = [k for k in range(len(files)) if k != k_bad]
    for k in good:
        assert np.array_equal(vol.array[k], stored[order[k]].astype(np.int32) - 1024)
    lowest = min(int(vol.array[k].min()) for k in good)
    assert np.all(vol.array[k_bad] == lowest)
    assert vol.fill_value == lowest


def test_every_file_broken_raises(tmp_path):
    files, _, _ = _series_for_damage(tmp_path, n=3)
    stack = _one_stack(tmp_path)
    for f in files:
        fac.truncate(f, drop=40)
    with pytest.raises(PixelDecodeError):
        load_volume(stack)


def test_cancel_before_start_raises(tmp_path):
    _series_for_damage(tmp_path)
    stack = _one_stack(tmp_path)
    event = threading.Event()
    event.set()
    with pytest.raises(Cancelled):
        load_volume(stack, cancel=event)


def test_cancel_during_load_raises_and_stops(tmp_path):
    fac.write_series(tmp_path, [(0.0, 0.0, float(z)) for z in range(10)])
    stack = _one_stack(tmp_path)
    seen = []
    with pytest.raises(Cancelled):
        load_volume(stack, workers=1, on_slice=seen.append, cancel=lambda: len(seen) >= 2)
    assert 2 <= len(seen) < 10


@pytest.mark.parametrize("workers", [1, 3])
def test_on_slice_fires_once_per_slice_and_progress_counts_files(tmp_path, workers):
    fac.write_series(tmp_path, [(0.0, 0.0, float(z)) for z in range(9)])
    stack = _one_stack(tmp_path)
    seen, progress, lock = [], [], threading.Lock()

    def on_slice(k):
        with lock:
            seen.append(k)

    def on_progress(done, total, path):
        with lock:
            progress.append((done, total))

    load_volume(stack, workers=workers, on_slice=on_slice, progress=on_progress)
    assert Counter(seen) == Counter(range(9))
    assert sorted(d for d, _ in progress) == list(range(1, 10))
    assert {t for _, t in progress} == {9}


def test_on_slice_for_every_frame_of_a_multiframe_file(tmp_path):
    rng = np.random.default_rng(16)
    frames = rng.integers(0, 1000, size=(4, 3, 3)).astype(np.int16)
    fac.enhanced_ct(tmp_path / "e", positions=[(0, 0, z) for z in (3, 1, 0, 2)], frames=frames)
    stack = _one_stack(tmp_path)
    seen = []
    load_volume(stack, on_slice=seen.append)
    assert sorted(seen) == [0, 1, 2, 3]


@pytest.mark.parametrize("variant", ["no-preamble", "no-meta"])
def test_files_without_preamble_load(tmp_path, variant):
    rng = np.random.default_rng(17)
    ids = fac.SeriesIds()
    stored = [rng.integers(-100, 900, size=(4, 5)).astype(np.int16) for _ in range(3)]
    kwargs = {"preamble": False} if variant == "no-preamble" else {"meta": False}
    for k in range(3):
        fac.image_slice(tmp_path / f"IM{k}", ids, ipp=(0, 0, 2 - k), pixels=stored[k], intercept=-1024,
                        instance_number=k + 1, **kwargs)
    vol = load_volume(_one_stack(tmp_path))
    assert vol.slice_errors == []
    assert np.array_equal(vol.array, np.stack(stored[::-1]).astype(np.int32) - 1024)


def test_every_dicom_window_is_offered_with_its_explanation(tmp_path):
    from pydicom.data import get_testdata_file

    from medviewer.imaging import build_stacks
    from medviewer.io.scan import scan

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.WindowCenter = ["40", "-600", "nan"]
    ds.WindowWidth = ["400", "1500", "100"]
    ds.WindowCenterWidthExplanation = ["SOFT TISSUE", "LUNG", "BROKEN"]
    ds.save_as(tmp_path / "ct.dcm")
    [(_, _, series)] = list(scan(str(tmp_path)).iter_series())
    vol = load_volume(build_stacks(series)[0])
    assert vol.window_presets == [(40.0, 400.0, "SOFT TISSUE"), (-600.0, 1500.0, "LUNG")]


def test_implicit_vr_modality_lut_with_a_signed_first_value_matches_pydicom(tmp_path):
    """A Modality LUT Sequence in an implicit-VR file: LUTDescriptor's first mapped value is SS for signed pixels
    and LUTData comes as OW bytes; the volume (and so the viewer, ROI statistics and the model) use the table with
    its declared bit depth (PS3.3 C.11.1.1.1), as pydicom's own modality LUT does."""
    import warnings

    from pydicom.data import get_testdata_file
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut
    from pydicom.sequence import Sequence
    from pydicom.uid import ImplicitVRLittleEndian

    from medviewer.imaging import build_stacks
    from medviewer.io.scan import scan

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # signed 16-bit stored values
    for kw in ("RescaleSlope", "RescaleIntercept"):
        del ds[kw]
    item = Dataset()
    item.LUTDescriptor = [4096, -2048, 16]
    item.LUTData = (np.arange(4096) * 3).astype("<u2").tobytes()
    ds.ModalityLUTSequence = Sequence([item])
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(tmp_path / "mlut.dcm", implicit_vr=True, little_endian=True)
    back = pydicom.dcmread(tmp_path / "mlut.dcm")
    expected = apply_modality_lut(back.pixel_array, back)
    [(_, _, series)] = list(scan(str(tmp_path)).iter_series())
    vol = load_volume(build_stacks(series)[0])
    np.testing.assert_array_equal(vol.array[0], expected.astype(np.float32))
    assert vol.array.min() > 3 * (back.pixel_array.min() + 2048) - 1  # the signed offset was honoured


def test_pixel_padding_is_kept_out_of_roi_statistics_readout_windows_and_the_model_input(tmp_path):
    """PixelPaddingValue / PixelPaddingRangeLimit (PS3.3 C.7.5.1.1.2) mark pixels that are not image."""
    from pydicom.data import get_testdata_file

    from medviewer.imaging import build_stacks
    from medviewer.imaging.annotations import Annotation, measure
    from medviewer.imaging.voi import auto_window
    from medviewer.inference.frames import frame_from_volume
    from medviewer.inference.preprocess import to_unit_range
    from medviewer.io.scan import scan

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    arr = ds.pixel_array.copy()
    arr[:, :32] = -2000  # a padded band, stored values
    ds.PixelData = arr.tobytes()
    ds.PixelPaddingValue = -2000
    ds.save_as(tmp_path / "pad.dcm")
    [(_, _, series)] = list(scan(str(tmp_path)).iter_series())
    vol = load_volume(build_stacks(series)[0])
    slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
    pad_value = -2000 * slope + intercept
    assert vol.padding == (pad_value, pad_value)
    img = vol.array[0]
    roi = Annotation("rect", [(0.0, 0.0), (64.0, 64.0)], ds.SOPInstanceUID)
    with_pad = measure(roi, img, (1.0, 1.0), "HU")
    without = measure(roi, img, (1.0, 1.0), "HU", padding=vol.padding)
    real = img[:64, :64][img[:64, :64] != pad_value].astype(np.float64)
    assert without.n_pixels == real.size < with_pad.n_pixels
    assert without.mean == pytest.approx(real.mean()) and without.minimum == real.min()
    w = auto_window(img, exclude=vol.padding)
    assert w.center - w.width / 2 >= img[img != pad_value].min() - 1  # it starts at the image, not the padding
    frame = frame_from_volume(vol, 0)
    assert frame.padding == vol.padding
    unit = to_unit_range(frame.values, None, False, exclude=frame.padding)
    assert unit[:, 32:].std() > 0.1  # the image keeps its contrast
