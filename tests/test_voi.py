"""VOI LUT maths (medviewer.imaging.voi) checked against independent computations.

Expected values come from
* the DICOM PS3.3 formulas written out here (piecewise, float64): C.11.2.1.2.1 LINEAR, C.11.2.1.3.2 LINEAR_EXACT,
  C.11.2.1.3.1 SIGMOID;
* pydicom's own ``apply_modality_lut`` / ``apply_windowing`` / ``apply_voi_lut`` on real datasets, with pydicom's
  output range rescaled to [0, 1] here;
* numpy percentiles of real CT pixel data for the automatic window.

No helper from the other test modules is used.
"""

from __future__ import annotations

import copy
import os
import warnings

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing
from pydicom.sequence import Sequence

from medviewer.imaging.voi import (
    CT_PRESETS,
    Window,
    auto_window,
    to_display,
    voi_lut_table,
    voi_window,
    windows_from_header,
)

PHILIPS_I10 = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "ct-phantom-philips", "I10")
if not os.path.exists(PHILIPS_I10):
    PHILIPS_I10 = "/work/shared/data/ct-phantom-philips/I10"

EPS32 = float(np.finfo(np.float32).eps)


# ----------------------------------------------------------------------------------------------------------------
# Helpers (independent of medviewer)
# ----------------------------------------------------------------------------------------------------------------


def _datafile(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not available")
    return path


def std_linear(x: np.ndarray, c: float, w: float, y_min: float = 0.0, y_max: float = 1.0) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1, literally:
    if (x <= c - 0.5 - (w-1)/2), then y = ymin
    else if (x > c - 0.5 + (w-1)/2), then y = ymax
    else y = ((x - (c - 0.5)) / (w-1) + 0.5) * (ymax - ymin) + ymin
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    for i, xi in np.ndenumerate(x):
        if xi <= c - 0.5 - (w - 1) / 2:
            y[i] = y_min
        elif xi > c - 0.5 + (w - 1) / 2:
            y[i] = y_max
        else:
            y[i] = ((xi - (c - 0.5)) / (w - 1) + 0.5) * (y_max - y_min) + y_min
    return y


def std_linear_exact(x: np.ndarray, c: float, w: float, y_min: float = 0.0, y_max: float = 1.0) -> np.ndarray:
    """PS3.3 C.11.2.1.3.2:
    if (x <= c - w/2), then y = ymin
    else if (x > c + w/2), then y = ymax
    else y = ((x - c) / w + 0.5) * (ymax - ymin) + ymin
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.empty_like(x)
    for i, xi in np.ndenumerate(x):
        if xi <= c - w / 2:
            y[i] = y_min
        elif xi > c + w / 2:
            y[i] = y_max
        else:
            y[i] = ((xi - c) / w + 0.5) * (y_max - y_min) + y_min
    return y


def std_sigmoid(x: np.ndarray, c: float, w: float, y_min: float = 0.0, y_max: float = 1.0) -> np.ndarray:
    """PS3.3 C.11.2.1.3.1: y = (ymax - ymin) / (1 + exp(-4 (x - c) / w)) + ymin."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over="ignore"):
        return (y_max - y_min) / (1.0 + np.exp(-4.0 * (x - c) / w)) + y_min


STD = {"LINEAR": std_linear, "LINEAR_EXACT": std_linear_exact, "SIGMOID": std_sigmoid}


def breakpoints(c: float, w: float, function: str) -> list[float]:
    if function == "LINEAR":
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    else:
        lo, hi = c - w / 2, c + w / 2
    out = []
    for b in (lo, hi, c, c - 0.5):
        out += [b, b - 0.25, b + 0.25, b - 1, b + 1]
    return out


def sample_values(c: float, w: float, function: str) -> np.ndarray:
    """float32-representable inputs (so that the float64 reference sees exactly what medviewer sees)."""
    span = max(4 * w, 50.0)
    vals = list(np.linspace(c - span, c + span, 201)) + breakpoints(c, w, function) + [-3024, -2000, -1024, 0, 3071]
    return np.asarray(vals, dtype=np.float32)


def tolerance(x: np.ndarray, c: float, w: float, y_span: float = 1.0) -> np.ndarray:
    """Per-element bound on float32 rounding of (x - c) / w: a few ulps of the operands, relative to the width."""
    scale = np.maximum(np.abs(x.astype(np.float64)), abs(c)) + abs(w)
    return (2e-6 + 8 * EPS32 * scale / w) * abs(y_span)


def pydicom_range(ds: Dataset) -> tuple[float, float]:
    """The output range pydicom's apply_windowing uses (PS3.3 C.11.2.1.2: the range of the Modality LUT output)."""
    bits = int(ds.BitsStored)
    if int(ds.PixelRepresentation) == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        s, b = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * s + b, hi * s + b
    return lo, hi


def pydicom_windowed_01(ds: Dataset, index: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(modality values, pydicom's windowing result scaled to [0, 1]), both float64."""
    ds = copy.deepcopy(ds)
    mod = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    with np.errstate(over="ignore"):  # pydicom's SIGMOID overflows exp() far from the centre (result still right)
        out = apply_windowing(mod.copy(), ds, index=index)
    lo, hi = pydicom_range(ds)
    return mod, (out - lo) / (hi - lo)


# ----------------------------------------------------------------------------------------------------------------
# (a) the standard's formulas
# ----------------------------------------------------------------------------------------------------------------

WINDOWS = [
    (40.0, 80.0), (40.0, 1.0), (40.0, 2.0), (75.0, 215.0), (-600.0, 1500.0), (480.0, 2500.0), (0.5, 3.75),
    (1000.25, 2000.5), (-1000.0, 7.0), (127.0, 254.0),
]


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("c,w", WINDOWS)
def test_voi_window_matches_standard_formula(function, c, w):
    x = sample_values(c, w, function)
    expected = STD[function](x, c, w)
    got = voi_window(x, c, w, function)
    assert got.dtype == np.float32
    assert got.shape == x.shape
    err = np.abs(got.astype(np.float64) - expected)
    tol = tolerance(x, c, w)
    bad = np.flatnonzero(err > tol)
    assert bad.size == 0, f"{function} c={c} w={w}: x={x[bad][:5]} got={got[bad][:5]} expected={expected[bad][:5]}"


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT"])
@pytest.mark.parametrize("c,w", [(40.0, 80.0), (40.0, 1.0), (-600.0, 1500.0), (75.0, 215.0)])
def test_breakpoints_exact(function, c, w):
    """At and just around the breakpoints the output is exactly y_min / y_max (the '<=' and '>' tests)."""
    if function == "LINEAR":
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2
    else:
        lo, hi = c - w / 2, c + w / 2
    x = np.array([lo - 1, lo, hi + 0.25, hi + 1], dtype=np.float32)
    got = voi_window(x, c, w, function)
    np.testing.assert_array_equal(got, np.array([0, 0, 1, 1], dtype=np.float32))
    if w > 1:
        # Inside the window, strictly between the bounds.
        inner = voi_window(np.array([lo + 0.25, hi - 0.25], dtype=np.float32), c, w, function)
        assert 0 < inner[0] < inner[1] < 1


def test_linear_differs_from_linear_exact():
    """LINEAR's -0.5 / (w-1) offsets are really applied: the two functions differ by a measurable amount."""
    x = np.array([30.0, 40.0, 50.0], dtype=np.float32)
    lin = voi_window(x, 40, 80, "LINEAR").astype(np.float64)
    exact = voi_window(x, 40, 80, "LINEAR_EXACT").astype(np.float64)
    np.testing.assert_allclose(lin, std_linear(x, 40, 80), atol=1e-6)
    np.testing.assert_allclose(exact, std_linear_exact(x, 40, 80), atol=1e-6)
    assert np.all(np.abs(lin - exact) > 1e-3)


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_output_range_y_min_y_max(function):
    c, w, y_min, y_max = 40.0, 400.0, -5.0, 250.0
    x = sample_values(c, w, function)
    expected = STD[function](x, c, w, y_min, y_max)
    got = voi_window(x, c, w, function, y_min=y_min, y_max=y_max)
    assert got.dtype == np.float32
    assert np.all(np.abs(got - expected) <= tolerance(x, c, w, y_max - y_min))
    assert got.min() >= y_min and got.max() <= y_max


def test_default_function_is_linear():
    x = sample_values(40, 80, "LINEAR")
    np.testing.assert_array_equal(voi_window(x, 40, 80), voi_window(x, 40, 80, "LINEAR"))
    np.testing.assert_array_equal(voi_window(x, 40, 80, ""), voi_window(x, 40, 80, "LINEAR"))
    np.testing.assert_array_equal(voi_window(x, 40, 80, "linear_exact"), voi_window(x, 40, 80, "LINEAR_EXACT"))


def test_sigmoid_extremes_finite_without_warnings():
    x = np.array([-32768, -3024, 0, 3071, 32767], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = voi_window(x, 0.0, 1.0, "SIGMOID")
    assert np.all(np.isfinite(y))
    np.testing.assert_allclose(y, std_sigmoid(x, 0.0, 1.0), atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# (b) pydicom's windowing and VOI LUT on real datasets
# ----------------------------------------------------------------------------------------------------------------


def _with_window(ds: Dataset, c, w, function: str | None) -> Dataset:
    ds = copy.deepcopy(ds)
    ds.WindowCenter = c
    ds.WindowWidth = w
    if function is None:
        if "VOILUTFunction" in ds:
            del ds.VOILUTFunction
    else:
        ds.VOILUTFunction = function
    return ds


@pytest.mark.parametrize("function", [None, "LINEAR", "LINEAR_EXACT", "SIGMOID"])
@pytest.mark.parametrize("name,c,w", [
    ("CT_small.dcm", 40, 400), ("CT_small.dcm", 1000, 2), ("CT_small.dcm", -600, 1500),
    ("MR_small.dcm", None, None), ("MR_small.dcm", 1100, 300),
])
def test_matches_pydicom_apply_windowing(name, c, w, function):
    ds = pydicom.dcmread(_datafile(name))
    if c is None:  # the file's own window (MR_small: 600/1600)
        c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    ds = _with_window(ds, c, w, function)
    mod, ref01 = pydicom_windowed_01(ds)
    got = voi_window(mod, c, w, function or "LINEAR")
    assert got.dtype == np.float32
    assert np.all(np.abs(got - ref01) <= tolerance(mod.astype(np.float32), c, w) + 1e-6)
    # 8-bit display: pydicom's [0, 1] rounded to 0..255 (half-up), within one grey level.
    disp = to_display(mod, Window(c, w, function or "LINEAR"))
    assert disp.dtype == np.uint8
    ref_disp = np.floor(ref01 * 255 + 0.5)
    assert np.max(np.abs(disp.astype(np.int32) - ref_disp)) <= 1


def test_matches_pydicom_on_philips_ct_both_header_windows():
    if not os.path.exists(PHILIPS_I10):
        pytest.skip("shared Philips CT not available")
    ds = pydicom.dcmread(PHILIPS_I10)
    windows = windows_from_header(ds.WindowCenter, ds.WindowWidth, ds.get("VOILUTFunction", "LINEAR"))
    assert [(wd.center, wd.width) for wd in windows] == [(40.0, 80.0), (40.0, 80.0)]
    for i, wd in enumerate(windows):
        mod, ref01 = pydicom_windowed_01(ds, index=i)
        got = voi_window(mod, wd.center, wd.width, wd.function)
        assert got.dtype == np.float32
        assert np.max(np.abs(got - ref01)) <= 1e-5


def _voi_lut_dataset(bits: int, first: int, n_entries: int) -> tuple[Dataset, list[int], list[int]]:
    """MR_small (signed 16-bit, values 127..2145) plus a VOI LUT Sequence with a non-linear (gamma) table."""
    ds = pydicom.dcmread(_datafile("MR_small.dcm"))
    for kw in ("WindowCenter", "WindowWidth"):
        if kw in ds:
            delattr(ds, kw)
    top = 2**bits - 1
    t = np.linspace(0, 1, n_entries)
    data = [int(round(v)) for v in (t**0.6) * top]
    item = Dataset()
    desc = [n_entries if n_entries < 65536 else 0, first, bits]
    item.add_new("LUTDescriptor", "US" if first >= 0 else "SS", desc)
    item.add_new("LUTData", "US", data)
    item.LUTExplanation = "gamma 0.6"
    ds.VOILUTSequence = Sequence([item])
    return ds, desc, data


@pytest.mark.parametrize("bits,first,n_entries", [(12, 400, 1200), (16, 0, 4096), (8, 1000, 256), (16, -100, 3000)])
def test_voi_lut_sequence_matches_pydicom(bits, first, n_entries):
    ds, desc, data = _voi_lut_dataset(bits, first, n_entries)
    stored = ds.pixel_array
    mod = apply_modality_lut(stored, ds)
    # pydicom 3.0 computes the table index in the LUT entry dtype, so with 8-bit entries an input more than 255
    # above the first mapped value wraps around; the standard's clipping (C.11.2.1.1: inputs below the first
    # mapped value take the first entry, above the last take the last) is therefore applied here before pydicom.
    clipped = np.clip(mod, first, first + n_entries - 1)
    ref = apply_voi_lut(clipped, copy.deepcopy(ds)).astype(np.float64) / (2**bits - 1)
    # An independent numpy lookup of the unclipped values agrees with pydicom.
    idx = np.rint(mod).astype(np.int64) - first
    own = np.asarray(data, dtype=np.float64)[np.clip(idx, 0, n_entries - 1)] / (2**bits - 1)
    np.testing.assert_allclose(own, ref, atol=1e-12)
    # The table is really exercised: clipped values below and above it, and values mapped in between.
    assert (idx < 0).any() or first <= int(mod.min())
    assert (idx >= n_entries).any() or first + n_entries > int(mod.max())
    assert bits != 8 or ((idx < 0).any() and (idx >= n_entries).any())
    got = voi_lut_table(mod, desc, data)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ref, atol=1e-6)
    disp = to_display(mod, lut=(desc, data))
    assert disp.dtype == np.uint8
    assert np.max(np.abs(disp.astype(np.int32) - np.floor(ref * 255 + 0.5))) <= 1
    # The LUT wins over any window given alongside it.
    np.testing.assert_array_equal(to_display(mod, Window(0, 1), lut=(desc, data)), disp)


def test_voi_lut_descriptor_mismatch_raises():
    with pytest.raises(ValueError):
        voi_lut_table(np.zeros(4), [10, 0, 12], list(range(5)))
    with pytest.raises(ValueError):
        voi_lut_table(np.zeros(4), [10, 0], list(range(10)))


# ----------------------------------------------------------------------------------------------------------------
# (c) several window values = several presets
# ----------------------------------------------------------------------------------------------------------------


def test_windows_from_header_presets_match_pydicom_per_index():
    ds = pydicom.dcmread(_datafile("CT_small.dcm"))
    ds.WindowCenter = [40, -600, 480]
    ds.WindowWidth = [80, 1500, 2500]
    ds.WindowCenterWidthExplanation = ["BRAIN", "LUNG", "BONE"]
    wins = windows_from_header(ds.WindowCenter, ds.WindowWidth, "LINEAR", ds.WindowCenterWidthExplanation)
    assert [(w.center, w.width, w.function, w.name) for w in wins] == [
        (40.0, 80.0, "LINEAR", "BRAIN"), (-600.0, 1500.0, "LINEAR", "LUNG"), (480.0, 2500.0, "LINEAR", "BONE")]
    outputs = []
    for i, w in enumerate(wins):
        mod, ref01 = pydicom_windowed_01(ds, index=i)
        got = voi_window(mod, w.center, w.width, w.function)
        assert np.max(np.abs(got - ref01)) <= 1e-5
        outputs.append(got)
    # Three different presets give three different images.
    assert not np.allclose(outputs[0], outputs[1]) and not np.allclose(outputs[1], outputs[2])


def test_windows_from_header_drops_invalid_and_pairs_shorter():
    wins = windows_from_header([40, 50, 60], [80, 0, -5])
    assert [(w.center, w.width) for w in wins] == [(40.0, 80.0)]
    wins = windows_from_header([40], [80, 400])
    assert [(w.center, w.width) for w in wins] == [(40.0, 80.0)]
    wins = windows_from_header(["40", "-600"], ["80", "1500"], "sigmoid", ["", "LUNG"])
    assert [(w.center, w.width, w.function) for w in wins] == [(40.0, 80.0, "SIGMOID"), (-600.0, 1500.0, "SIGMOID")]
    assert wins[1].name == "LUNG" and wins[0].name  # a default name when the explanation is empty
    assert windows_from_header([], []) == []


# ----------------------------------------------------------------------------------------------------------------
# (d) MONOCHROME1 inversion after VOI
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cr_monochrome1():
    ds = pydicom.dcmread(_datafile("RG1_UNCR.dcm"))
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    mod = apply_modality_lut(ds.pixel_array, ds)[::3, ::3]  # subsample: fast, still a real CR
    return ds, np.ascontiguousarray(mod)


def test_monochrome1_inversion_after_voi(cr_monochrome1):
    ds, mod = cr_monochrome1
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)  # 15000 / 30000
    win = Window(c, w, "LINEAR")
    normal = to_display(mod, win)
    inverted = to_display(mod, win, invert=True)
    assert normal.dtype == inverted.dtype == np.uint8
    assert np.max(np.abs(inverted.astype(np.int32) - (255 - normal.astype(np.int32)))) <= 1
    # Reference: pydicom's VOI, then inversion (PS3.3 C.7.6.3.1.2 / PS3.4 N.2).
    sub = copy.deepcopy(ds)
    _, ref01 = pydicom_windowed_01(sub)
    ref_inv = np.floor((1.0 - ref01[::3, ::3]) * 255 + 0.5)
    assert np.max(np.abs(inverted.astype(np.int32) - ref_inv)) <= 1


def test_monochrome1_minimum_is_white_and_order_matters(cr_monochrome1):
    _, mod = cr_monochrome1
    lo, hi = float(mod.min()), float(mod.max())
    # A window over the lower half of the data: inverting before the VOI would give a different picture.
    win = Window(lo + (hi - lo) / 4, (hi - lo) / 2, "LINEAR_EXACT")
    inverted = to_display(mod, win, invert=True)
    assert inverted[mod == lo].min() == 255  # minimum value displayed white
    assert inverted[mod == hi].max() == 0
    ref = np.floor((1.0 - std_linear_exact(mod, win.center, win.width)) * 255 + 0.5)
    assert np.max(np.abs(inverted.astype(np.int32) - ref)) <= 1
    wrong = np.floor(std_linear_exact(lo + hi - mod, win.center, win.width) * 255 + 0.5)  # inverted first
    assert np.mean(np.abs(inverted.astype(np.int32) - wrong)) > 20


def test_invert_with_voi_lut_table():
    ds, desc, data = _voi_lut_dataset(12, 400, 1200)
    mod = apply_modality_lut(ds.pixel_array, ds)
    a = to_display(mod, lut=(desc, data)).astype(np.int32)
    b = to_display(mod, lut=(desc, data), invert=True).astype(np.int32)
    assert np.max(np.abs(b - (255 - a))) <= 1
    assert b[mod == mod.min()].min() == 255


# ----------------------------------------------------------------------------------------------------------------
# (e) CT presets
# ----------------------------------------------------------------------------------------------------------------


def test_ct_presets_exact_values():
    expected = {
        "brain": (40, 80), "subdural": (75, 215), "stroke": (40, 40), "soft tissue": (40, 400),
        "mediastinum": (50, 350), "lung": (-600, 1500), "bone": (480, 2500), "liver": (60, 160),
    }
    got = {k.lower(): tuple(v) for k, v in CT_PRESETS.items()}
    assert got == expected
    for c, w in CT_PRESETS.values():
        y = voi_window(np.array([c - w / 2, c, c + w / 2 + 1]), c, w, "LINEAR_EXACT")
        np.testing.assert_allclose(y, [0.0, 0.5, 1.0], atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------
# (f) automatic window, invalid widths, dtypes
# ----------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def philips_hu():
    if not os.path.exists(PHILIPS_I10):
        pytest.skip("shared Philips CT not available")
    ds = pydicom.dcmread(PHILIPS_I10)
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def _covers(win: Window, lo: float, hi: float, tol: float) -> None:
    w_lo, w_hi = win.center - win.width / 2, win.center + win.width / 2
    assert w_lo <= lo + tol, (w_lo, lo)
    assert w_hi >= hi - tol, (w_hi, hi)
    assert win.width <= (hi - lo) * 1.05 + 2 * tol, (win.width, hi - lo)  # not much wider


def test_auto_window_real_ct(philips_hu):
    p1, p99 = np.percentile(philips_hu.astype(np.float64), [1, 99])
    win = auto_window(philips_hu)
    assert isinstance(win.center, float) and isinstance(win.width, float)
    assert win.width >= 1 and win.function in ("LINEAR", "LINEAR_EXACT", "SIGMOID")
    _covers(win, p1, p99, tol=2.0)
    # Tissue (phantom, > -500 HU) is not crushed: its median is displayed mid-grey-ish, not black or white.
    disp = to_display(philips_hu, win)
    tissue = philips_hu > -500
    assert 10 < np.median(disp[tissue]) < 245


def test_auto_window_ignores_heavy_padding(philips_hu):
    canvas = np.full((720, 720), -2000, dtype=np.float32)  # 49% padding, > max_samples pixels
    canvas[100:612, 150:662] = philips_hu
    tissue = philips_hu.astype(np.float64)
    p1, p99 = np.percentile(tissue, [1, 99])
    win = auto_window(canvas)
    _covers(win, p1, p99, tol=3.0)
    assert win.center - win.width / 2 > -1100  # the -2000 padding is not in the window
    disp = to_display(canvas, win)
    assert disp.dtype == np.uint8 and disp.shape == canvas.shape
    assert np.all(disp[canvas == -2000] == 0)
    # int16 input (how load_volume holds CT) gives the same window.
    win16 = auto_window(canvas.astype(np.int16))
    assert abs(win16.center - win.center) <= 1 and abs(win16.width - win.width) <= 2


def test_auto_window_constant_and_empty():
    win = auto_window(np.full((8, 8), 100, dtype=np.int16))
    assert win.width >= 1
    assert abs(win.center - 100) <= 1
    win = auto_window(np.array([np.nan, np.inf, 5.0, 5.0], dtype=np.float32))
    assert np.isfinite(win.center) and win.width >= 1


@pytest.mark.parametrize("function,width", [
    ("LINEAR", 0.5), ("LINEAR", 0), ("LINEAR", -10), ("LINEAR_EXACT", 0), ("LINEAR_EXACT", -1), ("SIGMOID", 0),
    ("SIGMOID", -40),
])
def test_invalid_width_raises(function, width):
    with pytest.raises(ValueError):
        voi_window(np.arange(10), 40, width, function)
    with pytest.raises(ValueError):
        to_display(np.arange(10).reshape(2, 5), Window(40, width, function))


def test_width_limits_accepted():
    # Width 1: a threshold, x <= c - 0.5 -> y_min, else y_max.
    assert voi_window(np.arange(3), 1.5, 1, "LINEAR").tolist() == [0.0, 0.0, 1.0]
    assert voi_window(np.arange(3), 1, 1, "LINEAR").tolist() == [0.0, 1.0, 1.0]
    voi_window(np.arange(3), 1, 0.001, "LINEAR_EXACT")
    voi_window(np.arange(3), 1, 0.001, "SIGMOID")


def test_unknown_function_raises():
    with pytest.raises(ValueError):
        voi_window(np.arange(3), 1, 10, "LOG")


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_output_dtypes_and_no_input_mutation(dtype):
    rng = np.random.default_rng(0)
    big = rng.integers(-1024, 3000, size=(512, 512)).astype(dtype)
    before = big.copy()
    for fn in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        y = voi_window(big, 40, 400, fn)
        assert y.dtype == np.float32 and y.shape == big.shape
    assert voi_window(big, 40, 1, "LINEAR").dtype == np.float32
    assert voi_lut_table(big, [4096, -1024, 12], np.arange(4096)).dtype == np.float32
    for kwargs in ({"window": Window(40, 400)}, {"window": None}, {"lut": ([4096, -1024, 12], np.arange(4096))},
                   {"window": Window(40, 400), "invert": True}):
        d = to_display(big, **kwargs)
        assert d.dtype == np.uint8 and d.shape == big.shape
    np.testing.assert_array_equal(big, before)


# ---------------------------------------------------------------------------------------------- drawing never raises
@pytest.mark.parametrize("window, lut, words", [
    (Window(40.0, 0.5, "LINEAR"), None, "width must be >= 1"),
    (Window(40.0, 400.0, "CUBIC"), None, "unknown VOILUTFunction"),
    (Window(float("nan"), 400.0, "LINEAR"), None, "not finite"),
    (Window(40.0, float("inf"), "LINEAR"), None, "not finite"),
    (None, ((4096, 0, 12), np.arange(10)), "LUTData has 10 entries"),
])
def test_bad_windows_and_tables_fall_back_to_an_automatic_window_with_a_note(window, lut, words):
    from medviewer.imaging.voi import display_safe

    values = np.linspace(-1000, 1000, 64 * 64, dtype=np.float32).reshape(64, 64)
    shown, note = display_safe(values, window, lut=lut)
    assert shown.dtype == np.uint8 and shown.shape == values.shape
    assert words in note and "automatic window" in note
    np.testing.assert_array_equal(shown, to_display(values, auto_window(values)))
    good, note = display_safe(values, Window(0.0, 2000.0, "LINEAR"))
    assert note == "" and good.min() == 0 and good.max() == 255
