"""Pixel decoding through pydicom's pixel backends and the pylibjpeg/pyjpegls/gdcm plugins.

:func:`decode_instance` returns *stored values* (before the Modality LUT), with signed data and BitsStored <
BitsAllocated handled (pydicom masks the unused high bits and sign-extends, PS3.5 8.1.1), and colour converted to
RGB (YBR_* via pydicom, PALETTE COLOR through its Palette Color
LUT, PS3.3 C.7.6.3.1.5/C.7.9). A missing codec raises :class:`CodecUnavailableError` naming the transfer syntax
and the package to install.
"""

from __future__ import annotations

import os

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from medviewer.jobs.process import main_module_hidden

__all__ = ["PixelDecodeError", "CodecUnavailableError", "decode_instance", "codec_packages", "decode_dataset"]


class PixelDecodeError(Exception):
    """The pixel data of a file could not be decoded (damaged, truncated or unsupported)."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{os.path.basename(path) or path}: {message}")
        self.path = path
        self.reason = message

    def __reduce__(self):  # noqa: ANN204 - crosses the decoder-process boundary intact
        return (type(self), (self.path, self.reason))


class CodecUnavailableError(PixelDecodeError):
    """No installed plugin can decode this transfer syntax. ``packages`` lists what to ``pip install``."""

    def __init__(self, path: str, transfer_syntax_uid: str, packages: list[str], detail: str = ""):
        name = UID(transfer_syntax_uid).name or "unknown transfer syntax"
        pkgs = " or ".join(packages) if packages else "a pydicom pixel-data plugin"
        msg = (f"no decoder available for {name} ({transfer_syntax_uid}); install {pkgs} "
               f"(pip install {packages[0].split()[0] if packages else 'pylibjpeg'})")
        if detail:
            msg += f" [{detail}]"
        super().__init__(path, msg)
        self.transfer_syntax_uid = transfer_syntax_uid
        self.packages = packages
        self.detail = detail

    def __reduce__(self):  # noqa: ANN204
        return (type(self), (self.path, self.transfer_syntax_uid, self.packages, self.detail))


# The PyPI packages that give pydicom a decoder for each compressed transfer syntax, permissive licences first.
# pylibjpeg-libjpeg is GPL-3 and offered as medviewer's optional extra "gpl-codecs".
_CODEC_PACKAGES: dict[str, list[str]] = {
    "1.2.840.10008.1.2.4.50": ["pillow", "python-gdcm", "pylibjpeg-libjpeg (GPL-3, medviewer[gpl-codecs])"],
    "1.2.840.10008.1.2.4.51": ["python-gdcm", "pillow", "pylibjpeg-libjpeg (GPL-3, medviewer[gpl-codecs])"],
    "1.2.840.10008.1.2.4.57": ["python-gdcm", "pylibjpeg-libjpeg (GPL-3, medviewer[gpl-codecs])"],
    "1.2.840.10008.1.2.4.70": ["python-gdcm", "pylibjpeg-libjpeg (GPL-3, medviewer[gpl-codecs])"],
    "1.2.840.10008.1.2.4.80": ["pyjpegls", "python-gdcm", "pylibjpeg-libjpeg (GPL-3, medviewer[gpl-codecs])"],
    "1.2.840.10008.1.2.4.81": ["pyjpegls", "python-gdcm", "pylibjpeg-libjpeg (GPL-3, medviewer[gpl-codecs])"],
    "1.2.840.10008.1.2.4.90": ["pylibjpeg-openjpeg", "pillow", "python-gdcm"],
    "1.2.840.10008.1.2.4.91": ["pylibjpeg-openjpeg", "pillow", "python-gdcm"],
    "1.2.840.10008.1.2.4.201": ["pylibjpeg-openjpeg"],
    "1.2.840.10008.1.2.4.202": ["pylibjpeg-openjpeg"],
    "1.2.840.10008.1.2.4.203": ["pylibjpeg-openjpeg"],
    "1.2.840.10008.1.2.5": ["pylibjpeg-rle", "numpy"],
}


def codec_packages(transfer_syntax_uid: str) -> list[str]:
    """PyPI packages that decode ``transfer_syntax_uid`` (empty for native syntaxes and unknown UIDs)."""
    return list(_CODEC_PACKAGES.get(str(transfer_syntax_uid), []))


def decodable_transfer_syntaxes() -> list[str]:
    """Transfer syntax UIDs whose pixel data this installation can decode (pydicom decoders with their codec
    plugins available), native syntaxes first. Used to keep compressed transfer syntaxes when a PACS offers them."""
    from pydicom.pixels.decoders.base import _PIXEL_DATA_DECODERS

    native = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"]
    out = [ts for ts in native if ts in _PIXEL_DATA_DECODERS]
    for ts, decoder in _PIXEL_DATA_DECODERS.items():
        if ts not in out and decoder[0].is_available:
            out.append(str(ts))
    return out


def _check_decoder(path: str, ts: str) -> None:
    from pydicom.pixels import get_decoder

    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        name = UID(ts).name or ts
        raise PixelDecodeError(path, f"pixel data in {name} ({ts}) cannot be decoded by pydicom (unsupported "
                                     "transfer syntax, e.g. MPEG/HEVC video or JPIP)") from None
    if not decoder.is_available:
        raise CodecUnavailableError(path, ts, codec_packages(ts), "; ".join(decoder.missing_dependencies))


def decode_dataset(ds: Dataset, path: str = "") -> np.ndarray:
    """Decode all frames of a dataset that holds Pixel Data.

    Returns
    -------
    ndarray (frames, rows, columns) for monochrome data, in the stored-value dtype (uint8/uint16/int16/int32/
    float32 for Float Pixel Data), or (frames, rows, columns, 3) uint8/uint16 RGB for colour (YBR_* converted,
    PALETTE COLOR expanded through its LUT).

    Raises
    ------
    CodecUnavailableError: no installed plugin decodes the transfer syntax.
    PixelDecodeError: damaged, truncated or otherwise undecodable pixel data.
    """
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "") if meta is not None else "") or "1.2.840.10008.1.2"
    if meta is None or "TransferSyntaxUID" not in meta:
        # A dataset stored without File Meta Information (no preamble, no group 0002): pydicom's pixel decoders
        # need a TransferSyntaxUID, so give them the (uncompressed) encoding pydicom detected when reading it.
        implicit, little = getattr(ds, "original_encoding", (True, True))
        ts = ("1.2.840.10008.1.2" if implicit is not False else
              "1.2.840.10008.1.2.1" if little is not False else "1.2.840.10008.1.2.2")
        if meta is None:
            from pydicom.dataset import FileMetaDataset

            ds.file_meta = meta = FileMetaDataset()
        meta.TransferSyntaxUID = ts
    if UID(ts).is_compressed:
        _check_decoder(path, ts)
    try:
        arr = ds.pixel_array
    except MemoryError:
        raise PixelDecodeError(path, f"not enough memory to decode {ds.get('Rows', '?')}x{ds.get('Columns', '?')} "
                                     f"x {ds.get('NumberOfFrames', 1)} frames at {ds.get('BitsAllocated', '?')} "
                                     "bits") from None
    except (RuntimeError, ValueError, NotImplementedError, AttributeError, TypeError, EOFError, OSError) as exc:
        text = str(exc)
        if "less than expected" in text or "truncated" in text.lower() or "buffer" in text.lower():
            raise PixelDecodeError(path, f"truncated pixel data: {text.splitlines()[0]}") from exc
        if UID(ts).is_compressed and "does not support" in text:
            # The installed plugins all refuse this variant (e.g. 12-bit JPEG Extended, which only
            # pylibjpeg-libjpeg decodes): name the package(s) whose plugin is missing.
            from pydicom.pixels import get_decoder

            missing = " ".join(get_decoder(ts).missing_dependencies)
            pkgs = [p for p in codec_packages(ts) if p.split()[0] in missing] or codec_packages(ts)
            reasons = "; ".join(line.strip() for line in text.splitlines()[1:] if line.strip())
            raise CodecUnavailableError(path, ts, pkgs, reasons) from exc
        if UID(ts).is_compressed and ("plugin" in text or "decode" in text.lower()):
            detail = text.splitlines()[0]
            raise PixelDecodeError(path, f"cannot decode {UID(ts).name} ({ts}): {detail}") from exc
        first = text.splitlines()[0] if text else type(exc).__name__
        raise PixelDecodeError(path, f"cannot read pixel data: {first}") from exc
    if not arr.dtype.isnative:  # big endian transfer syntax: callers (Qt buffers, torch) need native order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    photometric = str(ds.get("PhotometricInterpretation", "") or "").upper()
    if samples == 1 and photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        if arr.dtype != np.uint8:
            # 16-bit LUT entries span the full 16-bit range (PS3.3 C.7.6.3.1.5): keep the 8 high bits, so that
            # PALETTE COLOR is always uint8 RGB (load_volume allocates uint8 for it).
            depth = int(ds.RedPaletteColorLookupTableDescriptor[2])
            arr = (arr >> 8).astype(np.uint8) if depth == 16 else arr.astype(np.uint8)
        samples = 3
    # Normalise to (frames, rows, cols[, 3]).
    mono_ndim = 2 if samples == 1 else 3
    if arr.ndim == mono_ndim:
        arr = arr[np.newaxis]
    if arr.shape[0] != n_frames and n_frames > 1 and arr.ndim == mono_ndim + 1:
        raise PixelDecodeError(path, f"decoded {arr.shape[0]} frames, NumberOfFrames says {n_frames}")
    return arr


def _read(path: str) -> Dataset:
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception as exc:  # noqa: BLE001 - any read failure is a decode failure for this file
        raise PixelDecodeError(path, f"cannot read file: {exc}") from exc
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise PixelDecodeError(path, "no Pixel Data in this object")
    return ds


def _decode_in_worker(path: str) -> np.ndarray:
    """Runs in a decoder process: read ``path`` and decode every frame (see :func:`decode_dataset`)."""
    return decode_dataset(_read(path), path)


class _DecoderPool:
    """Native codecs (OpenJPEG, CharLS, libjpeg, GDCM) run in a small pool of separate processes, so that an
    abort, segmentation fault or endless loop inside one of them on damaged data costs that file only, never the
    app (issue #12). A crashed or hung pool is replaced by a fresh one for the next file. The pool starts on the
    first compressed file (spawned processes: safe beside Qt and threads)."""

    def __init__(self, workers: int = 2, timeout_s: float = 60.0):
        import threading

        self.workers = workers
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._pool = None

    def _get(self):  # noqa: ANN202 - ProcessPoolExecutor
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                                 mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def _discard(self, pool) -> None:  # noqa: ANN001
        with self._lock:
            if self._pool is pool:
                self._pool = None
        for proc in list(getattr(pool, "_processes", {}).values()):  # a hung worker must not outlive its pool
            if proc.is_alive():
                proc.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def decode(self, path: str, transfer_syntax_uid: str) -> np.ndarray:
        """Decode ``path`` in a decoder process.

        Raises
        ------
        PixelDecodeError: the decoder failed, crashed (naming the transfer syntax) or ran past ``timeout_s``.
        """
        return self.call(path, f"{UID(transfer_syntax_uid).name or 'compressed'} ({transfer_syntax_uid})",
                         _decode_in_worker, path)

    def call(self, path: str, name: str, fn, *args):  # noqa: ANN001, ANN201 - a picklable function and its result
        """Run ``fn(*args)`` in a decoder process on behalf of ``path``, whose codec is called ``name`` in the
        errors (see :meth:`decode`)."""
        from concurrent.futures import TimeoutError as FutureTimeout
        from concurrent.futures.process import BrokenProcessPool

        for attempt in (1, 2):
            pool = self._get()
            try:
                with self._lock, main_module_hidden():
                    future = pool.submit(fn, *args)  # may start a worker process
                return future.result(timeout=self.timeout_s)
            except BrokenProcessPool:
                self._discard(pool)
                if attempt == 1:  # another file decoded at the same time may have broken the pool: try once more
                    continue
                raise PixelDecodeError(path, f"the {name} decoder crashed on this file's pixel data (damaged data "
                                             "aborted the native codec); the image is left out") from None
            except FutureTimeout:
                self._discard(pool)
                raise PixelDecodeError(path, f"the {name} decoder did not finish within {self.timeout_s:.0f} s; "
                                             "the image is left out") from None
        raise AssertionError("unreachable")

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


#: The process-wide decoder pool (``MEDVIEWER_DECODE_IN_PROCESS=1`` decodes in the calling process instead, for
#: debugging a codec).
DECODER_POOL = _DecoderPool()


_JPEG_FAMILY = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")
_J2K_FAMILY = ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
               "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203")


def _codestream_size(frame: bytes, ts: str) -> tuple[int, int] | None:
    """(rows, columns) that a compressed frame declares: the JPEG / JPEG-LS SOF segment (ISO/IEC 10918-1 B.2.2,
    14495-1 C.2.2) or the JPEG 2000 SIZ segment (ISO/IEC 15444-1 A.5.1); None when it cannot be read."""
    if ts in _JPEG_FAMILY:
        try:
            from pydicom.pixels.utils import _get_jpg_parameters  # pydicom's own SOF parser
        except ImportError:
            return None
        info = _get_jpg_parameters(frame)
        h, w = info.get("height"), info.get("width")
        return (int(h), int(w)) if h and w else None
    if ts in _J2K_FAMILY:
        start = frame.find(b"\xff\x4f\xff\x51")  # SOC then SIZ (a JP2 wrapper may come first)
        if start < 0 or len(frame) < start + 4 + 2 + 2 + 16:
            return None
        p = start + 4 + 2 + 2  # marker pair, Lsiz, Rsiz
        xs, ys, xo, yo = (int.from_bytes(frame[p + 4 * i:p + 4 * i + 4], "big") for i in range(4))
        return (ys - yo, xs - xo) if ys > yo and xs > xo else None
    return None


def _check_codestream(ds: Dataset, path: str, ts: str) -> None:
    """Refuse compressed data whose first frame declares another size than Rows/Columns before any decoder sees
    it: a decoder given a buffer for the header's size and a codestream of another may abort the process."""
    try:
        from pydicom.encaps import generate_frames

        first = next(generate_frames(ds.PixelData, number_of_frames=int(ds.get("NumberOfFrames", 1) or 1)))
        size = _codestream_size(first, ts)
    except Exception:  # noqa: BLE001 - an unparsable stream is the decoder's to refuse (in its own process)
        return
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if size is not None and size != (rows, cols):
        raise PixelDecodeError(path, f"the compressed data hold {size[0]}x{size[1]} images but the header says "
                                     f"{rows}x{cols} (Rows/Columns): not decoded")


def decode_instance(path: str | os.PathLike) -> tuple[Dataset, np.ndarray]:
    """Read a file and decode all its frames; see :func:`decode_dataset` for the array layout. Compressed pixel
    data are decoded in :data:`DECODER_POOL` (a native codec crash loses this file only).

    Raises
    ------
    CodecUnavailableError, PixelDecodeError: as :func:`decode_dataset`; also for files pydicom cannot read and for
    a decoder that crashed or hung (the message names the transfer syntax).
    """
    path = os.fspath(path)
    ds = _read(path)
    meta = getattr(ds, "file_meta", None)
    ts = str(meta.get("TransferSyntaxUID", "") or "") if meta is not None else ""
    if ts and UID(ts).is_compressed and os.environ.get("MEDVIEWER_DECODE_IN_PROCESS") != "1":
        _check_decoder(path, ts)  # a missing codec is named here, without a round trip
        _check_codestream(ds, path, ts)
        return ds, DECODER_POOL.decode(path, ts)
    return ds, decode_dataset(ds, path)


_NATIVE_LE = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1")


def can_decode_native_fast(inst) -> bool:  # noqa: ANN001 - medviewer.io.model.Instance
    """True when :func:`decode_native` can read this instance's frames straight from the file offset found by
    the header scan: little-endian native Pixel Data of a monochrome image with a declared length."""
    return (
        inst.transfer_syntax_uid in _NATIVE_LE
        and inst.samples_per_pixel == 1
        and inst.photometric_interpretation in ("MONOCHROME1", "MONOCHROME2")
        and inst.pixel_data_offset is not None
        and inst.pixel_data_length is not None
        and inst.bits_allocated in (8, 16, 32)
        and not inst.has_modality_lut_sequence
        and not getattr(inst, "float_pixel_data", False)
    )


def decode_native(inst) -> np.ndarray:  # noqa: ANN001 - medviewer.io.model.Instance
    """Decode a native monochrome instance from its Pixel Data offset without re-parsing the header.

    pydicom's native decoder does the decoding (masking of unused bits, sign extension); only the header
    parse is skipped, which makes series loading about twice as fast. Only valid when
    :func:`can_decode_native_fast` is True.

    Returns
    -------
    (frames, rows, columns) array of stored values.

    Raises
    ------
    PixelDecodeError: the file changed since the scan or its pixel data are short.
    """
    from pydicom.pixels import get_decoder

    decoder = get_decoder(inst.transfer_syntax_uid)
    try:
        with open(inst.path, "rb") as fp:
            # The Pixel Data element header (tag, [VR, reserved,] 4-byte length) must still end at the offset
            # found by the scan; otherwise the file changed since the scan and the offset means nothing.
            start = max(0, inst.pixel_data_offset - 12)
            fp.seek(start)
            head = fp.read(inst.pixel_data_offset - start)
            tag = b"\xe0\x7f\x10\x00"
            if (len(head) < 8 or int.from_bytes(head[-4:], "little") != inst.pixel_data_length
                    or tag not in (head[-8:-4], head[-12:-8])):
                raise PixelDecodeError(inst.path, "the file changed since it was scanned (no Pixel Data element "
                                                  "at the scanned offset): scan it again")
            fp.seek(inst.pixel_data_offset)
            # pydicom annotates as_array's options as ``**kwargs: DecodeOptions`` (meaning Unpack[DecodeOptions]),
            # so mypy wants each value to be a DecodeOptions dict: the two ignores below are for that.
            arr, _ = decoder.as_array(
                fp,
                rows=inst.rows,
                columns=inst.columns,
                samples_per_pixel=1,  # type: ignore[arg-type]  # pydicom's **kwargs annotation, see above
                bits_allocated=inst.bits_allocated,
                bits_stored=inst.bits_stored or inst.bits_allocated,
                pixel_representation=inst.pixel_representation,
                photometric_interpretation=inst.photometric_interpretation,
                number_of_frames=inst.number_of_frames,
                pixel_keyword="PixelData",  # type: ignore[arg-type]  # pydicom's **kwargs annotation, see above
            )
    except (OSError, ValueError, RuntimeError, EOFError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "less than expected" in text or "bytes" in text:
            raise PixelDecodeError(inst.path, f"truncated pixel data: {text}") from exc
        raise PixelDecodeError(inst.path, f"cannot read pixel data: {text}") from exc
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    return arr
