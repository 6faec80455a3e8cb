"""Compressed transfer syntaxes decode to the same pixels as their uncompressed references.

References are independent of medviewer's decoding path: the uncompressed twin of each file read by pydicom's
native decoder, pydicom with a *named* plugin (pillow / gdcm), SimpleITK (ITK's own GDCM build), or zlib directly
for the deflated file. Every compressed file is decoded both with :func:`medviewer.io.pixels.decode_instance` and
through ``scan`` -> ``build_stacks`` -> ``load_volume``.

The missing-codec tests run in a subprocess that blocks the codec packages (``sys.modules[name] = None``) before
pydicom and medviewer are imported. The import names come from pydicom/pixels/decoders/: ``pylibjpeg`` (and its
plugins ``openjpeg``, ``libjpeg``, ``rle``), ``PIL`` (pillow), ``gdcm`` (python-gdcm), ``jpeg_ls`` (pyjpegls).
``pylibjpeg`` itself has to be blocked with ``openjpeg``: pylibjpeg loads its plugins through entry points and
does not survive a plugin that is installed but not importable.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import textwrap
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import uid
from pydicom.data import get_testdata_file
from pydicom.filereader import read_dataset, read_file_meta_info
from pydicom.pixels import apply_color_lut, apply_modality_lut, get_decoder, pixel_array

from medviewer.imaging.stacks import build_stacks
from medviewer.imaging.volume import load_volume
from medviewer.io.pixels import CodecUnavailableError, PixelDecodeError, decode_instance
from medviewer.io.scan import scan

REPO = Path(__file__).resolve().parents[1]
PHILIPS = REPO.parent / "shared" / "data" / "ct-phantom-philips"
if not PHILIPS.is_dir():
    PHILIPS = Path("/work/shared/data/ct-phantom-philips")


# ----------------------------------------------------------------------------------------------------------------
# Helpers (independent of medviewer)
# ----------------------------------------------------------------------------------------------------------------


def data(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"test file {name} not available (pydicom / pydicom-data)")
    return path


def frames(arr: np.ndarray, ds) -> np.ndarray:
    """(frames, rows, cols[, 3]) view of a pydicom pixel array."""
    mono = int(ds.get("SamplesPerPixel", 1)) == 1 and ds.PhotometricInterpretation != "PALETTE COLOR"
    return arr[np.newaxis] if arr.ndim == (2 if mono else 3) else arr


def reference_pixels(name: str) -> tuple[pydicom.Dataset, np.ndarray]:
    """Stored values of an uncompressed reference file, by pydicom's native decoder; PALETTE COLOR expanded
    through pydicom's apply_color_lut and reduced to its 8 high bits (16-bit LUT entries)."""
    ds = pydicom.dcmread(data(name))
    assert not ds.file_meta.TransferSyntaxUID.is_compressed
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        arr = apply_color_lut(arr, ds)
        assert arr.dtype == np.uint16 and int(ds.RedPaletteColorLookupTableDescriptor[2]) == 16
        arr = (arr // 256).astype(np.uint8)
    return ds, frames(arr, ds)


def modality_values(ds: pydicom.Dataset, stored: np.ndarray) -> np.ndarray:
    if int(ds.get("SamplesPerPixel", 1)) != 1 or ds.PhotometricInterpretation == "PALETTE COLOR":
        return stored
    return np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)


def load_single_file_volume(path: str):
    """scan -> build_stacks -> load_volume for one file that holds one stack."""
    index = scan(path)
    assert index.skipped == [], index.skipped
    series = [s for _, _, s in index.iter_series() if s.image_instances]
    assert len(series) == 1
    stacks = build_stacks(series[0])
    assert len(stacks) == 1
    return load_volume(stacks[0], workers=2)


def assert_volume_matches(vol, expected: np.ndarray, exact: bool = True, atol: float = 0.0) -> None:
    assert vol.slice_errors == []
    assert vol.array.shape == expected.shape
    if vol.array.ndim == 4:
        assert vol.array.dtype == expected.dtype  # colour keeps its stored dtype (uint8/uint16/uint32)
    if exact:
        np.testing.assert_array_equal(vol.array.astype(np.float64), expected.astype(np.float64))
    else:
        np.testing.assert_allclose(vol.array.astype(np.float64), expected.astype(np.float64), rtol=1e-6, atol=atol)


def ts_of(path: str) -> str:
    return str(read_file_meta_info(path).TransferSyntaxUID)


# ----------------------------------------------------------------------------------------------------------------
# Lossless: bit-exact against the uncompressed twin
# ----------------------------------------------------------------------------------------------------------------

LOSSLESS = [
    ("MR_small.dcm", "MR_small_RLE.dcm", uid.RLELossless),
    ("MR_small.dcm", "MR_small_jpeg_ls_lossless.dcm", uid.JPEGLSLossless),
    ("MR_small.dcm", "MR_small_jp2klossless.dcm", uid.JPEG2000Lossless),
    ("MR_small.dcm", "MR_small_bigendian.dcm", uid.ExplicitVRBigEndian),
    ("emri_small.dcm", "emri_small_RLE.dcm", uid.RLELossless),
    ("emri_small.dcm", "emri_small_jpeg_ls_lossless.dcm", uid.JPEGLSLossless),
    ("emri_small.dcm", "emri_small_jpeg_2k_lossless.dcm", uid.JPEG2000Lossless),
    ("emri_small.dcm", "emri_small_big_endian.dcm", uid.ExplicitVRBigEndian),
    ("RG1_UNCR.dcm", "RG1_J2KR.dcm", uid.JPEG2000Lossless),  # chest CR, MONOCHROME1, 15 bits
    ("RG3_UNCR.dcm", "RG3_J2KR.dcm", uid.JPEG2000Lossless),
    ("MR2_UNCR.dcm", "MR2_J2KR.dcm", uid.JPEG2000Lossless),  # RescaleSlope 3.77: float32 volume
    ("US1_UNCR.dcm", "US1_J2KR.dcm", uid.JPEG2000Lossless),  # YBR_RCT -> RGB
    ("SC_rgb.dcm", "SC_rgb_rle.dcm", uid.RLELossless),
    ("SC_rgb_16bit.dcm", "SC_rgb_rle_16bit.dcm", uid.RLELossless),
    ("SC_rgb_32bit.dcm", "SC_rgb_rle_32bit.dcm", uid.RLELossless),
    ("SC_rgb.dcm", "SC_rgb_jpeg_gdcm.dcm", uid.JPEGLosslessSV1),  # RGB JPEG lossless
    ("OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", uid.RLELossless),  # PALETTE COLOR, 16-bit LUT entries
    ("OBXXXX1A_2frame.dcm", "OBXXXX1A_rle_2frame.dcm", uid.RLELossless),
]


@pytest.mark.parametrize("ref_name,name,ts", LOSSLESS, ids=[p[1] for p in LOSSLESS])
def test_lossless_decode_instance_exact(ref_name, name, ts):
    ref_ds, ref = reference_pixels(ref_name)
    path = data(name)
    assert ts_of(path) == ts
    ds, got = decode_instance(path)
    assert got.dtype.isnative, got.dtype  # big endian data come back in machine order
    assert got.shape == ref.shape
    assert got.dtype == ref.dtype.newbyteorder("=")
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("ref_name,name,ts", LOSSLESS, ids=[p[1] for p in LOSSLESS])
def test_lossless_through_scan_and_load_volume(ref_name, name, ts):
    ref_ds, ref = reference_pixels(ref_name)
    vol = load_single_file_volume(data(name))
    assert_volume_matches(vol, modality_values(ref_ds, ref), exact=float(ref_ds.get("RescaleSlope", 1)) == 1)


@pytest.mark.parametrize("name", ["JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEG-LL.dcm", "MR_small_jpeg_ls_lossless.dcm",
                                  "MR_small_jp2klossless.dcm", "SC_rgb_jpeg_gdcm.dcm"])
def test_lossless_matches_simpleitk(name):
    """JPEG lossless files without an uncompressed twin: SimpleITK (ITK's GDCM) is the reference."""
    sitk = pytest.importorskip("SimpleITK")
    path = data(name)
    assert uid.UID(ts_of(path)).is_compressed
    expected = sitk.GetArrayFromImage(sitk.ReadImage(path))
    ds, got = decode_instance(path)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.astype(np.int64), expected.astype(np.int64))
    vol = load_single_file_volume(path)
    assert_volume_matches(vol, modality_values(ds, expected))


# ----------------------------------------------------------------------------------------------------------------
# Lossy: against the decoded twin, and against pydicom with named plugins
# ----------------------------------------------------------------------------------------------------------------

LOSSY_J2K = [("RG1_UNCI.dcm", "RG1_J2KI.dcm"), ("MR2_UNCI.dcm", "MR2_J2KI.dcm")]


@pytest.mark.parametrize("ref_name,name", LOSSY_J2K, ids=[p[1] for p in LOSSY_J2K])
def test_lossy_j2k_matches_published_decoding(ref_name, name):
    """The *_UNCI files are the publisher's decoding of the irreversible J2K stream: equal within 1."""
    ref_ds, ref = reference_pixels(ref_name)
    path = data(name)
    assert ts_of(path) == uid.JPEG2000
    _, got = decode_instance(path)
    assert got.shape == ref.shape and got.dtype == ref.dtype
    diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= 1 and diff.mean() < 0.01
    vol = load_single_file_volume(path)
    assert_volume_matches(vol, modality_values(ref_ds, ref), exact=False,
                          atol=1.0 * float(ref_ds.get("RescaleSlope", 1)) + 1e-3)


LOSSY_JPEG = [
    ("SC_rgb.dcm", "SC_rgb_jpeg_dcmtk.dcm", 10, 1.0),
    ("SC_rgb_small_odd.dcm", "SC_rgb_small_odd_jpeg.dcm", 10, 3.0),
    ("SC_rgb.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm", 255, 4.0),  # 4:2:2 chroma: big errors at colour edges
]


@pytest.mark.parametrize("ref_name,name,max_err,mean_err", LOSSY_JPEG, ids=[p[1] for p in LOSSY_JPEG])
def test_jpeg_baseline_lossy(ref_name, name, max_err, mean_err):
    _, ref = reference_pixels(ref_name)
    path = data(name)
    assert ts_of(path) == uid.JPEGBaseline8Bit
    ds, got = decode_instance(path)
    assert got.shape == ref.shape and got.dtype == np.uint8  # YBR_FULL converted to RGB
    diff = np.abs(got.astype(np.int64) - ref.astype(np.int64))
    assert diff.max() <= max_err and diff.mean() <= mean_err
    # Same as pydicom decoding with each named plugin (pillow = libjpeg-turbo, gdcm = IJG), within 2.
    for plugin in ("pillow", "gdcm"):
        other = frames(pixel_array(path, decoding_plugin=plugin), ds)
        assert np.abs(got.astype(np.int64) - other.astype(np.int64)).max() <= 2, plugin
    vol = load_single_file_volume(path)
    assert vol.is_color and vol.array.dtype == np.uint8
    np.testing.assert_array_equal(vol.array, got)


def test_jpeg_rgb_without_colour_transform():
    """An RGB JPEG without the YCbCr transform (Adobe APP14): pillow and gdcm agree with medviewer."""
    path = data("SC_jpeg_no_color_transform.dcm")
    ds, got = decode_instance(path)
    for plugin in ("pillow", "gdcm"):
        other = frames(pixel_array(path, decoding_plugin=plugin), ds)
        assert np.abs(got.astype(np.int64) - other.astype(np.int64)).max() <= 2, plugin


def test_jpeg_12bit_extended_names_the_gpl_codec():
    """12-bit JPEG Extended is decoded only by pylibjpeg-libjpeg (GPL): without it the error says so."""
    if importlib.util.find_spec("libjpeg") is not None:
        pytest.skip("pylibjpeg-libjpeg is installed")
    path = data("JPEG-lossy.dcm")
    assert ts_of(path) == uid.JPEGExtended12Bit
    with pytest.raises(CodecUnavailableError) as info:
        decode_instance(path)
    msg = str(info.value)
    assert "JPEG Extended" in msg and "pylibjpeg-libjpeg" in msg
    assert isinstance(info.value, PixelDecodeError)  # load_volume's per-slice handling catches it
    assert info.value.transfer_syntax_uid == uid.JPEGExtended12Bit
    assert [p.split()[0] for p in info.value.packages] == ["pylibjpeg-libjpeg"]


# ----------------------------------------------------------------------------------------------------------------
# Deflate, big endian
# ----------------------------------------------------------------------------------------------------------------


def test_deflate_matches_manual_inflate():
    path = data("image_dfl.dcm")
    assert ts_of(path) == uid.DeflatedExplicitVRLittleEndian
    raw = Path(path).read_bytes()
    meta = read_file_meta_info(path)
    start = 132 + 12 + int(meta.FileMetaInformationGroupLength)  # preamble + DICM + group length element
    inflated = zlib.decompress(raw[start:], -zlib.MAX_WBITS)
    ds_ref = read_dataset(BytesIO(inflated), is_implicit_VR=False, is_little_endian=True)
    expected = np.frombuffer(ds_ref.PixelData, dtype=np.uint8).reshape(1, ds_ref.Rows, ds_ref.Columns)
    assert expected.std() > 10  # a real picture, not a blank
    _, got = decode_instance(path)
    np.testing.assert_array_equal(got, expected)
    vol = load_single_file_volume(path)
    assert_volume_matches(vol, expected)


@pytest.mark.parametrize("ref_name,name", [("MR_small.dcm", "MR_small_bigendian.dcm"),
                                           ("emri_small.dcm", "emri_small_big_endian.dcm")])
def test_big_endian_native_order(ref_name, name):
    _, ref = reference_pixels(ref_name)
    _, got = decode_instance(data(name))
    assert got.dtype.isnative and got.dtype == ref.dtype
    assert got.tobytes() == ref.tobytes()  # same bytes in machine order, not just equal values


# ----------------------------------------------------------------------------------------------------------------
# No GPL codec needed
# ----------------------------------------------------------------------------------------------------------------


def test_no_gpl_codec_needed():
    """Every compressed syntax above decodes without pylibjpeg-libjpeg (GPL-3)."""
    if importlib.util.find_spec("libjpeg") is not None:
        pytest.skip("pylibjpeg-libjpeg is installed; this environment cannot show it is not needed")
    for ts in (uid.JPEGBaseline8Bit, uid.JPEGLosslessSV1, uid.JPEGLossless, uid.JPEGLSLossless,
               uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEG2000, uid.RLELossless):
        assert get_decoder(ts).is_available, ts
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm", "JPEG-LL.dcm",
                 "MR_small_jpeg_ls_lossless.dcm", "MR_small_jp2klossless.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"):
        _, arr = decode_instance(data(name))
        assert arr.size > 0 and arr.std() > 0, name


# ----------------------------------------------------------------------------------------------------------------
# Missing codec: subprocess with the codec packages blocked
# ----------------------------------------------------------------------------------------------------------------

BLOCKED = ("pylibjpeg", "openjpeg", "libjpeg", "gdcm", "PIL")

PRELUDE = textwrap.dedent(f"""
    import sys
    for _name in {BLOCKED!r}:
        sys.modules[_name] = None  # 'import _name' now raises ImportError, as if not installed
    import json
    import numpy as np
    from pydicom import uid
    from pydicom.pixels import get_decoder
    import medviewer.io.pixels as px
    from medviewer.io.scan import scan
    from medviewer.imaging.stacks import build_stacks
    from medviewer.imaging.volume import load_volume
    assert not get_decoder(uid.JPEG2000Lossless).is_available, "codec block did not take effect"
""")


def run_blocked(script: str, *args: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(script), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_blocked_codec_raises_codec_unavailable(tmp_path):
    assert get_decoder(uid.JPEG2000Lossless).is_available  # here, in the test process, it is
    names = {"lossless": "MR_small_jp2klossless.dcm", "lossy": "JPEG2000.dcm", "rle": "MR_small_RLE.dcm",
             "native": "MR_small.dcm", "deflate": "image_dfl.dcm", "big_endian": "MR_small_bigendian.dcm"}
    paths = {k: data(v) for k, v in names.items()}
    script = """
        paths = json.loads(sys.argv[1]); out = {}
        for key in ("lossless", "lossy"):
            try:
                px.decode_instance(paths[key])
                out[key] = {"error": None}
            except Exception as exc:
                out[key] = {"error": type(exc).__name__, "message": str(exc),
                            "is_codec_error": isinstance(exc, px.CodecUnavailableError),
                            "is_decode_error": isinstance(exc, px.PixelDecodeError),
                            "packages": getattr(exc, "packages", None),
                            "ts": getattr(exc, "transfer_syntax_uid", None)}
        arrays = {k: px.decode_instance(paths[k])[1] for k in ("rle", "native", "deflate", "big_endian")}
        np.savez(sys.argv[2], **arrays)
        print(json.dumps(out))
    """
    npz = tmp_path / "arrays.npz"
    out = run_blocked(script, json.dumps(paths), str(npz))
    for key, ts in (("lossless", uid.JPEG2000Lossless), ("lossy", uid.JPEG2000)):
        res = out[key]
        assert res["error"] == "CodecUnavailableError", res
        assert res["is_codec_error"] and res["is_decode_error"]
        assert res["ts"] == ts
        assert "JPEG 2000" in res["message"], res["message"]
        assert "pylibjpeg-openjpeg" in res["message"], res["message"]
        assert res["packages"][0] == "pylibjpeg-openjpeg"
        assert not any("libjpeg (GPL" in p for p in res["packages"])  # J2K never needs the GPL package
    # Syntaxes that need no plugin still decode, and correctly.
    arrays = np.load(npz)
    _, mr = reference_pixels("MR_small.dcm")
    for key in ("rle", "native", "big_endian"):
        np.testing.assert_array_equal(arrays[key], mr)
    np.testing.assert_array_equal(arrays["deflate"], decode_instance(paths["deflate"])[1])


@pytest.fixture
def series_with_one_j2k_slice(tmp_path):
    """Five Philips CT slices, one of them re-encoded as JPEG 2000 lossless (same UIDs and geometry)."""
    names = ["I10", "I20", "I30", "I40", "I50"]
    if not all((PHILIPS / n).is_file() for n in names):
        pytest.skip("shared Philips CT series not available")
    from pydicom.pixels import get_encoder

    if not get_encoder(uid.JPEG2000Lossless).is_available:
        pytest.skip("no JPEG 2000 encoder (pylibjpeg-openjpeg) to build the test series")
    folder = tmp_path / "series"
    folder.mkdir()
    for n in names:
        shutil.copy(PHILIPS / n, folder / n)
    ds = pydicom.dcmread(folder / "I30")
    ds.compress(uid.JPEG2000Lossless)
    ds.save_as(folder / "I30")
    expected = {}
    for n in names:
        ref = pydicom.dcmread(PHILIPS / n)
        expected[n] = np.asarray(apply_modality_lut(ref.pixel_array, ref), dtype=np.float64)
    return folder, "I30", expected


def _load_folder(folder: Path):
    index = scan(folder)
    series = [s for _, _, s in index.iter_series() if s.image_instances]
    assert len(series) == 1
    stacks = build_stacks(series[0])
    assert len(stacks) == 1
    return load_volume(stacks[0], workers=2)


def test_series_with_one_j2k_slice_with_codec(series_with_one_j2k_slice):
    folder, j2k, expected = series_with_one_j2k_slice
    assert ts_of(str(folder / j2k)) == uid.JPEG2000Lossless
    vol = _load_folder(folder)
    assert vol.slice_errors == []
    names = [Path(s.instance.path).name for s in vol.stack.slices]
    assert sorted(names) == sorted(expected)
    for k, n in enumerate(names):
        np.testing.assert_array_equal(vol.array[k].astype(np.float64), expected[n])


def test_series_with_one_j2k_slice_without_codec(series_with_one_j2k_slice, tmp_path):
    folder, j2k, expected = series_with_one_j2k_slice
    script = """
        index = scan(sys.argv[1])
        series = [s for _, _, s in index.iter_series() if s.image_instances]
        stacks = build_stacks(series[0])
        vol = load_volume(stacks[0], workers=2)
        np.save(sys.argv[2], vol.array)
        print(json.dumps({
            "n_series": len(series), "n_stacks": len(stacks),
            "names": [s.instance.path for s in vol.stack.slices],
            "errors": [[e.index, e.path, e.reason] for e in vol.slice_errors],
            "fill": vol.fill_value, "warnings": vol.warnings,
        }))
    """
    npy = tmp_path / "vol.npy"
    out = run_blocked(script, str(folder), str(npy))
    assert out["n_series"] == 1 and out["n_stacks"] == 1
    array = np.load(npy)
    names = [Path(p).name for p in out["names"]]
    assert sorted(names) == sorted(expected)
    k_bad = names.index(j2k)
    assert len(out["errors"]) == 1
    index, path, reason = out["errors"][0]
    assert index == k_bad and Path(path).name == j2k
    assert "JPEG 2000" in reason and "pylibjpeg-openjpeg" in reason
    assert any(j2k in w and "JPEG 2000" in w for w in out["warnings"])
    # The other slices are intact; the missing one is filled with the lowest decoded value.
    for k, n in enumerate(names):
        if k != k_bad:
            np.testing.assert_array_equal(array[k].astype(np.float64), expected[n])
    good_min = min(expected[n].min() for n in names if n != j2k)
    assert out["fill"] == good_min
    assert np.all(array[k_bad] == good_min)


# ---------------------------------------------------------------------------------------------- codec isolation
def test_a_crashing_or_hanging_decoder_loses_that_file_only(tmp_path):
    """Compressed pixel data are decoded in separate processes: an abort (as a native codec does on some damaged
    JPEG 2000 / JPEG-LS data) or an endless loop in one costs that file, and the next file decodes normally."""
    import os
    import time

    from medviewer.io.pixels import _DecoderPool, decode_instance

    pool = _DecoderPool(workers=1, timeout_s=3)
    try:
        with pytest.raises(PixelDecodeError, match="JPEG 2000 .* decoder crashed"):
            pool.call("x.dcm", "JPEG 2000 (1.2.840.10008.1.2.4.90)", os.abort)
        with pytest.raises(PixelDecodeError, match="did not finish within 3 s"):
            pool.call("y.dcm", "JPEG-LS", time.sleep, 30)
        path = get_testdata_file("MR_small_jp2klossless.dcm")
        arr = pool.decode(path, "1.2.840.10008.1.2.4.90")
        np.testing.assert_array_equal(arr[0], pydicom.dcmread(get_testdata_file("MR_small.dcm")).pixel_array)
    finally:
        pool.shutdown()
    # decode_instance goes through the process-wide pool and gives the same pixels as pydicom in-process
    ds, arr = decode_instance(get_testdata_file("MR_small_jp2klossless.dcm"))
    np.testing.assert_array_equal(arr[0], ds.pixel_array)


@pytest.mark.parametrize("fragments", [1, 3])
def test_encapsulated_multiframe_with_an_empty_offset_table(tmp_path, fragments):
    """JPEG 2000 multi-frame data with an empty Basic Offset Table and each frame in one or several fragments
    (PS3.5 A.4: both allowed) decode to every frame, identical to the original."""
    from pydicom.encaps import encapsulate, generate_frames

    ds = pydicom.dcmread(get_testdata_file("emri_small.dcm"))
    original = ds.pixel_array.copy()
    ds.compress(uid.JPEG2000Lossless)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    ds.PixelData = encapsulate(frames, fragments_per_frame=fragments, has_bot=False)
    path = tmp_path / "mf.dcm"
    ds.save_as(path)
    _, arr = decode_instance(path)
    np.testing.assert_array_equal(arr, original)


def test_decoding_works_from_an_unguarded_script(tmp_path):
    """The decoder processes do not re-run the caller's ``__main__`` (a script without a main guard)."""
    script = tmp_path / "unguarded.py"
    script.write_text("from medviewer.io.pixels import decode_instance\n"
                      "from pydicom.data import get_testdata_file\n"
                      "print(decode_instance(get_testdata_file('MR_small_jp2klossless.dcm'))[1].shape)\n")
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                         cwd=str(Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr[-500:]
    assert out.stdout.strip() == "(1, 64, 64)"
