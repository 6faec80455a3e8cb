"""Scan folders, DICOMDIRs and file lists into a :class:`~medviewer.io.model.DicomIndex`, from headers only.

Reading stops at the Pixel Data element (pixel data are never read during a scan). Every file that cannot be
indexed (not DICOM, truncated, unreadable, missing required UIDs, duplicate SOPInstanceUID) is recorded in
``DicomIndex.skipped`` with a reason; nothing raises out of :func:`scan` except a cancelled-and-asked-to-raise
state (it returns the partial index with ``cancelled=True`` instead).

Speed: pydicom parses each header (the library does the DICOM parsing); the scanner then converts the few
ASCII and binary values it needs straight from pydicom's raw elements (:func:`_raw_values`), which is about twice
as fast as converting them through ``Dataset.__getattr__``. Text values that depend on SpecificCharacterSet
(person names, descriptions) always go through pydicom's charset-aware conversion.
"""

from __future__ import annotations

import math
import os
import stat
import struct
import threading
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_partial

from medviewer.io.model import (
    DicomIndex,
    FrameInfo,
    Instance,
    Orientation,
    Patient,
    Series,
    SkippedFile,
    Study,
    Vec3,
)
from medviewer.io.sopclass import MEDIA_STORAGE_DIRECTORY, kind_of
from medviewer.jobs import ProgressCallback, TaskState, as_task_state

__all__ = ["scan", "expand_paths", "read_header", "NotDicomError", "dicomdir_referenced_files"]

PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
_UNDEFINED_LENGTH = 0xFFFFFFFF

_ASCII_VRS = frozenset({"UI", "CS", "DS", "IS", "DA", "TM", "DT", "AS", "AE"})
_BINARY_VRS = {"US": "H", "UL": "L", "SS": "h", "SL": "l", "FL": "f", "FD": "d", "AT": "L"}

# Tags, by number (keyword in the comment).
T_SOP_CLASS = 0x00080016  # SOPClassUID
T_SOP_INSTANCE = 0x00080018  # SOPInstanceUID
T_STUDY_DATE = 0x00080020
T_SERIES_DATE = 0x00080021
T_STUDY_TIME = 0x00080030
T_ACCESSION = 0x00080050
T_MODALITY = 0x00080060
T_MANUFACTURER = 0x00080070
T_STUDY_DESC = 0x00081030
T_SERIES_DESC = 0x0008103E
T_IMAGE_TYPE = 0x00080008
T_PATIENT_NAME = 0x00100010
T_PATIENT_ID = 0x00100020
T_BIRTH_DATE = 0x00100030
T_SEX = 0x00100040
T_BODY_PART = 0x00180015
T_SLICE_THICKNESS = 0x00180050
T_ECHO_NUMBERS = 0x00180086
T_TRIGGER_TIME = 0x00181060
T_GANTRY_TILT = 0x00181120
T_STUDY_UID = 0x0020000D
T_SERIES_UID = 0x0020000E
T_STUDY_ID = 0x00200010
T_SERIES_NUMBER = 0x00200011
T_ACQ_NUMBER = 0x00200012
T_INSTANCE_NUMBER = 0x00200013
T_IPP = 0x00200032
T_IOP = 0x00200037
T_FOR_UID = 0x00200052
T_TEMPORAL_POS_ID = 0x00200100
T_SAMPLES = 0x00280002
T_PHOTOMETRIC = 0x00280004
T_NUMBER_OF_FRAMES = 0x00280008
T_ROWS = 0x00280010
T_COLUMNS = 0x00280011
T_PIXEL_SPACING = 0x00280030
T_IMAGER_PIXEL_SPACING = 0x00181164
T_ERMF = 0x00181114  # EstimatedRadiographicMagnificationFactor
T_SPACING_CALIBRATION_TYPE = 0x00280A02  # PixelSpacingCalibrationType
T_SPACING_CALIBRATION_DESC = 0x00280A04  # PixelSpacingCalibrationDescription
T_BITS_ALLOCATED = 0x00280100
T_BITS_STORED = 0x00280101
T_PIXEL_REPRESENTATION = 0x00280103
T_WINDOW_CENTER = 0x00281050
T_WINDOW_WIDTH = 0x00281051
T_WINDOW_EXPLANATION = 0x00281055
T_PIXEL_PADDING_VALUE = 0x00280120
T_PIXEL_PADDING_RANGE_LIMIT = 0x00280121
T_RESCALE_INTERCEPT = 0x00281052
T_RESCALE_SLOPE = 0x00281053
T_VOI_LUT_FUNCTION = 0x00281056
T_MODALITY_LUT_SEQ = 0x00283000
T_VOI_LUT_SEQ = 0x00283010
T_SHARED_FG = 0x52009229
T_PER_FRAME_FG = 0x52009230


class NotDicomError(Exception):
    """The file is not a DICOM Part 10 file nor a recognisable raw DICOM dataset."""


# --------------------------------------------------------------------------------------------------------------
# Raw value conversion (fast path)
# --------------------------------------------------------------------------------------------------------------


def _raw_values(ds: Dataset, tag: int) -> list | None:
    """Return the values of ``tag`` as a list of str (ASCII VRs) or numbers (binary VRs); None if absent.

    Falls back to pydicom's own conversion for every other VR, for UN, and for elements already converted.
    """
    elem = ds.get_item(tag)
    if elem is None:
        return None
    if isinstance(elem, RawDataElement):
        vr = elem.VR or dictionary_VR(tag)
        raw = elem.value
        if vr in _ASCII_VRS:
            if not raw:
                return []
            return [p.strip(" \x00") for p in raw.decode("latin-1").split("\\")]
        fmt = _BINARY_VRS.get(vr)
        if fmt is not None:
            if not raw:
                return []
            size = struct.calcsize(fmt)
            n = len(raw) // size
            return list(struct.unpack(("<" if elem.is_little_endian else ">") + fmt * n, raw[: n * size]))
    value = ds[tag].value
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return list(value)
    return [value]


def _str(ds: Dataset, tag: int) -> str:
    vals = _raw_values(ds, tag)
    if not vals:
        return ""
    return "\\".join(str(v) for v in vals)


def _text(ds: Dataset, tag: int) -> str:
    """Text value decoded by pydicom with the dataset's SpecificCharacterSet (PS3.5 6.1)."""
    elem = ds.get(tag)
    if elem is None or elem.value is None:
        return ""
    value = elem.value
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return "\\".join(str(v) for v in value)
    return str(value)


def _int(ds: Dataset, tag: int) -> int | None:
    vals = _raw_values(ds, tag)
    if not vals:
        return None
    try:
        return int(vals[0]) if not isinstance(vals[0], str) else int(float(vals[0]))
    except (TypeError, ValueError):
        return None


def _float(ds: Dataset, tag: int) -> float | None:
    vals = _raw_values(ds, tag)
    if not vals:
        return None
    try:
        return float(vals[0])
    except (TypeError, ValueError):
        return None


def _floats(ds: Dataset, tag: int, n: int | None = None) -> tuple[float, ...] | None:
    vals = _raw_values(ds, tag)
    if not vals:
        return None
    try:
        out = tuple(float(v) for v in vals if v != "")
    except (TypeError, ValueError):
        return None
    if n is not None and len(out) != n:
        return None
    return out


# --------------------------------------------------------------------------------------------------------------
# Reading one header
# --------------------------------------------------------------------------------------------------------------


def _looks_like_raw_dicom(head: bytes) -> bool:
    """True when a file without the 128-byte preamble starts like a DICOM dataset (PS3.10 7.1 allows such files
    only in private exchange, but archives hold them): a group 0x0002/0x0008 element in either byte order."""
    if len(head) < 8:
        return False
    group_le = int.from_bytes(head[0:2], "little")
    group_be = int.from_bytes(head[0:2], "big")
    return group_le in (0x0002, 0x0008) or group_be in (0x0002, 0x0008)


def read_header(path: str | os.PathLike) -> tuple[Dataset, int | None, int | None]:
    """Read a file's dataset up to (not including) the Pixel Data value.

    Returns
    -------
    (dataset, pixel_data_length, pixel_data_offset): the declared byte length of Pixel Data (None if absent or
    encapsulated with undefined length) and the file offset of its value (None if absent).

    Raises
    ------
    NotDicomError: no DICM preamble and no recognisable DICOM element at the start.
    OSError: the file cannot be read.
    pydicom.errors.InvalidDicomError, EOFError, ValueError, struct.error: a damaged header.
    """
    with open(path, "rb") as fp:
        head = fp.read(132)
        has_preamble = len(head) >= 132 and head[128:132] == b"DICM"
        if not has_preamble and not _looks_like_raw_dicom(head):
            raise NotDicomError("not a DICOM file (no 'DICM' marker after a 128-byte preamble, and no DICOM element "
                                "at the start)")
        fp.seek(0)
        found: dict[str, int] = {}

        def stop(tag, vr, length) -> bool:  # noqa: ANN001 - pydicom's callback signature
            if tag in PIXEL_DATA_TAGS:
                found["tag"] = int(tag)
                found["length"] = length
                found["offset"] = fp.tell()
                return True
            # Data elements come in ascending tag order (PS3.5 7.1); one that does not means the reader has lost
            # its place (e.g. past a damaged length, in zeros): stop, instead of parsing on for millions of
            # empty "elements".
            if int(tag) < found.get("last", -1) and int(tag) >> 16 != 0x0002:
                found["disorder"] = int(tag)
                return True
            found["last"] = int(tag)
            return False

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # Values over 1 MB are not read (pydicom defers them): a damaged or hostile header declaring a
            # gigabyte-sized element before Pixel Data costs a seek, not a gigabyte of memory and minutes.
            ds = read_partial(fp, stop_when=stop, force=not has_preamble, defer_size=_DEFER_BYTES)
        found_warnings = tuple(dict.fromkeys(str(w.message) for w in caught))
        if "disorder" in found:
            t = found["disorder"]
            raise EOFError(f"element ({t >> 16:04X},{t & 0xFFFF:04X}) comes after ({found['last'] >> 16:04X},"
                           f"{found['last'] & 0xFFFF:04X}): data elements out of order (a damaged length?)")
        if "offset" not in found:
            _check_not_truncated(ds, os.fstat(fp.fileno()).st_size)
    length = found.get("length")
    if length == _UNDEFINED_LENGTH:
        length = None
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1.99":
        # Deflated dataset (PS3.5 A.5): pydicom parsed an inflated copy, so ``fp.tell()`` is not a position in the
        # file and the declared length cannot be checked against the file size.
        length = None
    if found_warnings:
        ds._medviewer_read_warnings = found_warnings  # picked up by scan(); a plain attribute, not an element
    if found.get("tag", 0x7FE00010) != 0x7FE00010:
        ds._medviewer_float_pixels = True  # Float/Double Float Pixel Data (PS3.3 C.7.6.24)
    return ds, length, found.get("offset")


def _check_not_truncated(ds: Dataset, file_size: int) -> None:
    """Raise EOFError when the file ends inside the dataset's last element.

    pydicom stops silently at the end of a file, even in the middle of an element value or element header, so a
    truncated image header would otherwise be indexed as an object without Pixel Data.
    """
    meta = getattr(ds, "file_meta", None)
    if meta is not None and str(meta.get("TransferSyntaxUID", "")) == "1.2.840.10008.1.2.1.99":
        return  # deflated: positions are in the inflated stream
    tags = list(ds.keys())
    if not tags:
        return
    elem = ds.get_item(max(tags))
    if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH or elem.value is None:
        return
    end = elem.value_tell + elem.length
    if len(elem.value) < elem.length or 0 < file_size - end < 8:
        raise EOFError(f"file ends inside element {elem.tag} ({file_size} bytes, the element needs {end})")


def _frame_infos_enhanced(ds: Dataset, n_frames: int) -> list[FrameInfo]:
    """Per-frame geometry from the Shared/Per-frame Functional Groups (PS3.3 C.7.6.16)."""

    def first(item: Dataset | None, seq_kw: str) -> Dataset | None:
        if item is None:
            return None
        seq = item.get(seq_kw)
        if seq is None or len(seq) == 0:
            return None
        return seq[0]

    shared_seq = ds.get("SharedFunctionalGroupsSequence")
    shared = shared_seq[0] if shared_seq else None
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []

    def lookup(frame_item: Dataset | None, seq_kw: str) -> Dataset | None:
        return first(frame_item, seq_kw) or first(shared, seq_kw)

    def fl(item: Dataset | None, kw: str, n: int | None = None):
        if item is None or kw not in item:
            return None
        v = item.get(kw)
        if v is None or v == "":
            return None
        try:
            vals = tuple(float(x) for x in (v if isinstance(v, (list, tuple, pydicom.multival.MultiValue)) else [v]))
        except (TypeError, ValueError):
            return None
        if n is not None and len(vals) != n:
            return None
        return vals

    frames = []
    for i in range(n_frames):
        item = per_frame[i] if i < len(per_frame) else None
        pos = _valid_position(fl(lookup(item, "PlanePositionSequence"), "ImagePositionPatient", 3))
        ori = _valid_orientation(fl(lookup(item, "PlaneOrientationSequence"), "ImageOrientationPatient", 6))
        meas = lookup(item, "PixelMeasuresSequence")
        spacing = _valid_spacing(fl(meas, "PixelSpacing", 2))
        thick = fl(meas, "SliceThickness")
        pvt = lookup(item, "PixelValueTransformationSequence")
        slope = fl(pvt, "RescaleSlope")
        intercept = fl(pvt, "RescaleIntercept")
        voi = lookup(item, "FrameVOILUTSequence")
        wc = fl(voi, "WindowCenter") or ()
        ww = fl(voi, "WindowWidth") or ()
        wx = _explanations(voi.get("WindowCenterWidthExplanation") if voi is not None else None)
        content = first(item, "FrameContentSequence")
        stack_id = str(content.get("StackID")) if content is not None and content.get("StackID") else None
        in_stack = content.get("InStackPositionNumber") if content is not None else None
        temporal = content.get("TemporalPositionIndex") if content is not None else None
        frames.append(
            FrameInfo(
                index=i,
                image_position_patient=pos,
                image_orientation_patient=ori,
                pixel_spacing=spacing,
                slice_thickness=thick[0] if thick else None,
                rescale_slope=slope[0] if slope else 1.0,
                rescale_intercept=intercept[0] if intercept else 0.0,
                window_center=wc,
                window_width=ww,
                window_explanation=wx,
                stack_id=stack_id,
                in_stack_position=int(in_stack) if in_stack is not None else None,
                temporal_position=int(temporal) if temporal is not None else None,
            )
        )
    return frames


#: Header values larger than this are not read by the header scan (see :func:`read_header`).
_DEFER_BYTES = 1 << 20

#: Limits a header must respect before anything is allocated for it (a declared size is checked against the bytes
#: actually present first; these caps bound what a file that does hold the bytes can make us allocate).
MAX_FRAMES = 100_000
MAX_DECODED_BYTES = 8 << 30
_VALID_BITS_ALLOCATED = (1, 8, 16, 32, 64)


class HeaderError(ValueError):
    """A header that cannot be trusted: sizes the file cannot hold or that exceed :data:`MAX_FRAMES` /
    :data:`MAX_DECODED_BYTES`, or a Modality LUT that is not finite; its message says which, in words."""


def _check_declared_sizes(inst: Instance, pixel_length: int | None, pixel_offset: int | None,
                          file_size: int | None) -> None:
    """Check Rows, Columns, SamplesPerPixel, BitsAllocated/Stored and NumberOfFrames before any per-frame record
    or pixel buffer is made (PS3.3 C.7.6.3: Rows/Columns are US, BitsStored <= BitsAllocated; PS3.5 8.2 for the
    byte count of native Pixel Data; an encapsulated frame needs at least one 8-byte item, PS3.5 A.4).

    Raises
    ------
    HeaderError: the reason in words.
    """
    if not 0 < inst.rows <= 65535 or not 0 < inst.columns <= 65535:
        raise HeaderError(f"image size {inst.rows}x{inst.columns} is out of range (Rows/Columns 1-65535)")
    if inst.samples_per_pixel not in (1, 3, 4):
        raise HeaderError(f"SamplesPerPixel {inst.samples_per_pixel} is not 1, 3 or 4")
    if inst.bits_allocated not in _VALID_BITS_ALLOCATED:
        raise HeaderError(f"BitsAllocated {inst.bits_allocated} is not one of {_VALID_BITS_ALLOCATED}")
    if not 0 < inst.bits_stored <= inst.bits_allocated:
        raise HeaderError(f"BitsStored {inst.bits_stored} does not fit BitsAllocated {inst.bits_allocated}")
    frames = inst.number_of_frames
    frame_bytes = (inst.rows * inst.columns * inst.samples_per_pixel * inst.bits_allocated + 7) // 8
    if frames > MAX_FRAMES:
        raise HeaderError(f"NumberOfFrames {frames} is more than this viewer opens ({MAX_FRAMES})")
    if frames * frame_bytes > MAX_DECODED_BYTES:
        raise HeaderError(f"{frames} frames of {inst.rows}x{inst.columns} would need "
                              f"{frames * frame_bytes / 2 ** 30:.1f} GiB decoded, over the "
                              f"{MAX_DECODED_BYTES / 2 ** 30:.0f} GiB limit")
    if pixel_offset is not None and file_size is not None and frames > 1:
        available = max(file_size - pixel_offset, 0)
        if pixel_length is not None and _is_native(inst.transfer_syntax_uid):
            if frames * frame_bytes > min(pixel_length, available) and frame_bytes > 0:
                raise HeaderError(
                    f"NumberOfFrames {frames} of {inst.rows}x{inst.columns} needs {frames * frame_bytes} bytes; the "
                    f"Pixel Data holds {min(pixel_length, available)}")
        elif frames * 8 > available:
            raise HeaderError(f"NumberOfFrames {frames} cannot fit in the {available} bytes of encapsulated "
                                  "Pixel Data left in the file")


def _instance_from_header(path: str, ds: Dataset, pixel_length: int | None, has_pixels: bool,
                          pixel_offset: int | None = None) -> Instance:
    meta = getattr(ds, "file_meta", None)
    sop_class = _str(ds, T_SOP_CLASS)
    sop_instance = _str(ds, T_SOP_INSTANCE)
    ts = ""
    if meta is not None:
        ts = str(meta.get("TransferSyntaxUID", "") or "")
        if not sop_class:
            sop_class = str(meta.get("MediaStorageSOPClassUID", "") or "")
        if not sop_instance:
            sop_instance = str(meta.get("MediaStorageSOPInstanceUID", "") or "")
    kind = kind_of(sop_class, has_pixels)
    inst = Instance(path=path, sop_instance_uid=sop_instance, sop_class_uid=sop_class, kind=kind,
                    transfer_syntax_uid=ts, modality=_str(ds, T_MODALITY))
    inst.instance_number = _int(ds, T_INSTANCE_NUMBER)
    if kind != "image":
        return inst
    inst.rows = _int(ds, T_ROWS) or 0
    inst.columns = _int(ds, T_COLUMNS) or 0
    inst.number_of_frames = max(1, _int(ds, T_NUMBER_OF_FRAMES) or 1)
    inst.samples_per_pixel = _int(ds, T_SAMPLES) or 1
    inst.photometric_interpretation = _str(ds, T_PHOTOMETRIC).upper()
    inst.bits_allocated = _int(ds, T_BITS_ALLOCATED) or 0
    inst.bits_stored = _int(ds, T_BITS_STORED) or inst.bits_allocated
    inst.pixel_representation = _int(ds, T_PIXEL_REPRESENTATION) or 0
    inst.acquisition_number = _int(ds, T_ACQ_NUMBER)
    echo = _raw_values(ds, T_ECHO_NUMBERS)
    inst.echo_numbers = "\\".join(str(e) for e in echo) if echo else None
    inst.temporal_position_identifier = _int(ds, T_TEMPORAL_POS_ID)
    inst.trigger_time = _float(ds, T_TRIGGER_TIME)
    inst.gantry_detector_tilt = _float(ds, T_GANTRY_TILT)
    inst.image_type = tuple(str(v) for v in (_raw_values(ds, T_IMAGE_TYPE) or ()))
    inst.frame_of_reference_uid = _str(ds, T_FOR_UID)
    inst.patient_orientation = tuple(str(v) for v in (_raw_values(ds, 0x00200020) or ()) if v)
    inst.voi_lut_function = _str(ds, T_VOI_LUT_FUNCTION).upper()
    inst.has_voi_lut_sequence = ds.get_item(T_VOI_LUT_SEQ) is not None
    inst.has_modality_lut_sequence = ds.get_item(T_MODALITY_LUT_SEQ) is not None
    inst.pixel_data_length = pixel_length
    inst.pixel_padding = _padding(ds, inst.pixel_representation == 1, inst.bits_stored or inst.bits_allocated)
    if inst.modality == "US" or ds.get_item(0x00186011) is not None:
        inst.us_regions = _us_regions(ds)
    inst.is_enhanced = ds.get_item(T_PER_FRAME_FG) is not None or ds.get_item(T_SHARED_FG) is not None
    if has_pixels:
        try:
            size = os.path.getsize(path)
        except OSError:
            size = None
        _check_declared_sizes(inst, pixel_length, pixel_offset, size)

    if inst.is_enhanced:
        inst.frames = _frame_infos_enhanced(ds, inst.number_of_frames)
        # Enhanced objects may still carry top-level VOI values; fill frames that have none.
        return inst

    spacing, spacing_note = projection_spacing(ds)
    slope = _float(ds, T_RESCALE_SLOPE)
    intercept = _float(ds, T_RESCALE_INTERCEPT)
    raw_iop, raw_ipp = _floats(ds, T_IOP, 6), _floats(ds, T_IPP, 3)
    ignored = []
    if raw_iop is not None and _valid_orientation(raw_iop) is None:
        ignored.append(f"ImageOrientationPatient {list(raw_iop)} is not two orthogonal unit vectors: ignored, the "
                       "image is set apart from the series' spatial stack")
    if raw_ipp is not None and _valid_position(raw_ipp) is None:
        ignored.append(f"ImagePositionPatient {list(raw_ipp)} is not finite: ignored")
    inst.read_warnings = tuple(ignored)
    for name, v in (("RescaleSlope", slope), ("RescaleIntercept", intercept)):
        if v is not None and not (math.isfinite(v) and abs(v) < 1e30):
            raise HeaderError(f"{name} {v} is not a finite number: the pixel values cannot be computed")
    base = FrameInfo(
        index=0,
        image_position_patient=_valid_position(_floats(ds, T_IPP, 3)),
        image_orientation_patient=_valid_orientation(_floats(ds, T_IOP, 6)),
        pixel_spacing=spacing,
        slice_thickness=_float(ds, T_SLICE_THICKNESS),
        rescale_slope=slope if slope is not None and slope != 0 else 1.0,
        rescale_intercept=intercept if intercept is not None else 0.0,
        window_center=_floats(ds, T_WINDOW_CENTER) or (),
        window_explanation=_explanations(_raw_values(ds, T_WINDOW_EXPLANATION)),
        spacing_note=spacing_note,
        window_width=_floats(ds, T_WINDOW_WIDTH) or (),
    )
    if inst.number_of_frames == 1:
        inst.frames = [base]
    else:
        # Legacy multi-frame (US cine, XA, NM...): all frames share the top-level geometry.
        inst.frames = [
            FrameInfo(index=i, image_position_patient=base.image_position_patient,
                      image_orientation_patient=base.image_orientation_patient, pixel_spacing=spacing,
                      slice_thickness=base.slice_thickness, rescale_slope=base.rescale_slope,
                      rescale_intercept=base.rescale_intercept, window_center=base.window_center,
                      window_explanation=base.window_explanation, spacing_note=spacing_note,
                      window_width=base.window_width)
            for i in range(inst.number_of_frames)
        ]
    return inst


def _us_regions(ds: Dataset) -> tuple[tuple[int, int, int, int, float, float], ...]:
    """The SequenceOfUltrasoundRegions items calibrated in cm along both axes (PhysicalUnitsX/YDirection 3,
    PS3.3 C.8.5.5.1.15) as (x0, y0, x1, y1, mm per pixel along x, along y); others (seconds, cm/s, none) and
    malformed items are left out."""
    out = []
    try:
        for item in ds.get("SequenceOfUltrasoundRegions") or []:
            try:
                if int(item.PhysicalUnitsXDirection) != 3 or int(item.PhysicalUnitsYDirection) != 3:
                    continue
                dx, dy = abs(float(item.PhysicalDeltaX)) * 10.0, abs(float(item.PhysicalDeltaY)) * 10.0
                box = (int(item.RegionLocationMinX0), int(item.RegionLocationMinY0),
                       int(item.RegionLocationMaxX1), int(item.RegionLocationMaxY1))
            except (AttributeError, TypeError, ValueError):
                continue
            if 0 < dx < 1e3 and 0 < dy < 1e3 and box[2] >= box[0] and box[3] >= box[1]:
                out.append((*box, dx, dy))
    except Exception:  # noqa: BLE001 - a damaged sequence: no calibration
        return ()
    return tuple(out)


def _padding(ds: Dataset, signed: bool, bits: int) -> tuple[float, float] | None:
    """(lowest, highest) stored value of the padding (PS3.3 C.7.5.1.1.2: PixelPaddingValue alone, or with
    PixelPaddingRangeLimit the range between both, either order); None without PixelPaddingValue. A value read as
    unsigned in a file of signed pixels (US/SS is ambiguous in implicit VR) is taken in two's complement."""
    def value(tag: int) -> float | None:
        v = _int(ds, tag)
        if v is None:
            return None
        if signed and 0 < bits <= 16 and v >= 1 << 15:
            v -= 1 << 16
        return float(v)

    a = value(T_PIXEL_PADDING_VALUE)
    if a is None:
        return None
    b = value(T_PIXEL_PADDING_RANGE_LIMIT)
    return (min(a, b), max(a, b)) if b is not None else (a, a)


def projection_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str]:
    """(row, column) spacing in mm for measuring, and what plane it refers to.

    Rules (PS3.3 10.7.1.3 Pixel Spacing Calibration Macro, C.8.11.7 DX Positioning, C.16.2.1 Imager Pixel Spacing):

    * PixelSpacing with a PixelSpacingCalibrationType: calibrated, say so ("calibrated (GEOMETRY)");
    * PixelSpacing equal to ImagerPixelSpacing: the detector plane ("at the detector");
    * PixelSpacing alone: as written (for CT/MR, in the patient);
    * ImagerPixelSpacing with EstimatedRadiographicMagnificationFactor and no PixelSpacing: divided by the factor,
      "estimated at the patient (ERMF 1.10)";
    * ImagerPixelSpacing alone: the detector plane, magnified ("at the detector").
    """
    ps = _valid_spacing(_floats(ds, T_PIXEL_SPACING, 2))
    ips = _valid_spacing(_floats(ds, T_IMAGER_PIXEL_SPACING, 2))
    if ps is not None:
        cal = _str(ds, T_SPACING_CALIBRATION_TYPE).upper()
        if cal:
            return ps, f"calibrated ({cal})"
        if ips is not None and all(abs(a - b) < 1e-6 for a, b in zip(ps, ips)):
            return ps, "at the detector"
        return ps, ""
    if ips is None:
        return None, ""
    ermf = _float(ds, T_ERMF)
    if ermf is not None and math.isfinite(ermf) and 0.5 <= ermf <= 5.0:
        return (ips[0] / ermf, ips[1] / ermf), f"estimated at the patient (ERMF {ermf:.2f})"
    return ips, "at the detector"


def _explanations(value) -> tuple[str, ...]:  # noqa: ANN001 - str, bytes, MultiValue or None
    """WindowCenterWidthExplanation values (LO, VM 1-n) as stripped strings."""
    if value is None or value == "":
        return ()
    values = value if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]
    out = []
    for v in values:
        if isinstance(v, bytes):
            v = v.decode("latin-1", "replace")
        out.append(" ".join(str(v).split()))
    return tuple(out)


def _valid_position(ipp: tuple[float, ...] | None) -> Vec3 | None:
    """ImagePositionPatient with a non-finite value is treated as absent (the image then has no spatial place and
    goes into a stack of its own, with the others unaffected)."""
    if ipp is None or len(ipp) != 3 or not all(math.isfinite(v) for v in ipp):
        return None
    return ipp[0], ipp[1], ipp[2]


def _valid_orientation(iop: tuple[float, ...] | None) -> Orientation | None:
    """ImageOrientationPatient as unit row and column cosines, or None (treated as absent) when a value is not
    finite, a vector is (nearly) zero, or the two are (nearly) parallel (PS3.3 C.7.6.2.1.1: two orthogonal unit
    vectors). Slightly unnormalised vectors, which real scanners write, are normalised."""
    if iop is None or len(iop) != 6 or not all(math.isfinite(v) and abs(v) <= 2.0 for v in iop):
        return None  # direction cosines lie in [-1, 1]; a little slack for unnormalised writers
    nr, nc = math.sqrt(sum(v * v for v in iop[:3])), math.sqrt(sum(v * v for v in iop[3:]))
    if nr < 0.5 or nc < 0.5:
        return None
    r = (iop[0] / nr, iop[1] / nr, iop[2] / nr)
    c = (iop[3] / nc, iop[4] / nc, iop[5] / nc)
    if abs(sum(a * b for a, b in zip(r, c))) > 0.1:  # more than ~6 degrees from orthogonal
        return None
    return (*r, *c)


def _valid_spacing(spacing: tuple[float, ...] | None) -> tuple[float, float] | None:
    """PixelSpacing with a zero, negative or non-finite value is treated as absent (seen on real CRs: 0\\0)."""
    if spacing is None or len(spacing) != 2 or not all(math.isfinite(v) and 0 < v < 1e6 for v in spacing):
        return None
    return spacing[0], spacing[1]


def _expected_native_bytes(inst: Instance) -> int | None:
    if not inst.rows or not inst.columns or not inst.bits_allocated:
        return None
    bits = inst.rows * inst.columns * inst.samples_per_pixel * inst.number_of_frames * inst.bits_allocated
    if inst.photometric_interpretation == "YBR_FULL_422" and inst.samples_per_pixel == 3:
        bits = bits * 2 // 3
    return (bits + 7) // 8


# --------------------------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------------------------


def dicomdir_referenced_files(path: str | os.PathLike) -> tuple[list[str], list[SkippedFile]]:
    """List the files a DICOMDIR references (ReferencedFileID of its directory records, PS3.3 F.3.2.2).

    Returns the existing files (absolute paths, in record order) and a skipped entry for each referenced file
    that does not exist.

    Raises
    ------
    NotDicomError, InvalidDicomError, OSError: the DICOMDIR itself cannot be read.
    """
    path = Path(path)
    ds = pydicom.dcmread(path, force=False)
    root = path.parent
    files: list[str] = []
    missing: list[SkippedFile] = []
    seen: set[str] = set()
    for record in ds.get("DirectoryRecordSequence") or []:
        ref = record.get("ReferencedFileID")
        if not ref:
            continue
        parts = [str(p) for p in ref] if isinstance(ref, (list, tuple, pydicom.multival.MultiValue)) else [str(ref)]
        candidate = root.joinpath(*parts)
        if not candidate.exists():
            # Media written on case-insensitive systems: try a case-insensitive match.
            candidate = _case_insensitive(root, parts) or candidate
        key = str(candidate)
        if key in seen:
            continue
        seen.add(key)
        if candidate.is_file():
            files.append(key)
        else:
            missing.append(SkippedFile(key, f"referenced by DICOMDIR {path.name} but missing"))
    return files, missing


def _case_insensitive(root: Path, parts: Sequence[str]) -> Path | None:
    current = root
    for part in parts:
        try:
            names = {n.lower(): n for n in os.listdir(current)}
        except OSError:
            return None
        match = names.get(part.lower())
        if match is None:
            return None
        current = current / match
    return current


def _file_kind(path: str) -> str:
    """"dir", "file", or what else ``path`` is ("FIFO", "socket", "device", "missing", "unreadable"), following
    symbolic links; never opens the path (opening a FIFO blocks)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "missing"  # also a dangling symbolic link
    except OSError:
        return "unreadable"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device"


def display_path(path: str) -> str:
    """``path`` printable in any encoding: bytes of a name that is not UTF-8 (kept by Python as surrogate escapes)
    are shown as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def expand_paths(paths: str | os.PathLike | Iterable[str | os.PathLike]) -> tuple[list[str], list[SkippedFile]]:
    """Turn folders (walked recursively), DICOMDIR files and plain files into a de-duplicated file list.

    A path named ``DICOMDIR`` (any case) contributes itself and the files it references. Hidden files and
    folders (names starting with '.') are ignored. Symbolic links are followed, to files and to folders; a
    folder reached twice (a link loop, or two links to one folder) is walked once. FIFOs, sockets and devices are
    skipped without being opened (opening a FIFO blocks); folders that cannot be listed are reported. Returns
    (files, skipped) where skipped holds the paths left out with the reason.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files: list[str] = []
    skipped: list[SkippedFile] = []
    seen: set[str] = set()
    walked: set[str] = set()

    def add(p: str) -> None:
        real = os.path.realpath(p)
        if real not in seen:
            seen.add(real)
            files.append(p)

    def not_a_file(p: str, kind: str) -> None:
        reason = {"missing": "no such file or folder", "unreadable": "cannot read: permission denied or I/O error"
                  }.get(kind, f"not a regular file ({kind}): skipped without reading")
        skipped.append(SkippedFile(p, reason))

    def walk_error(exc: OSError) -> None:
        skipped.append(SkippedFile(exc.filename or "", f"folder not readable: {exc.strerror or exc}"))

    for p in paths:
        p = os.fspath(p)
        kind = _file_kind(p)
        if kind == "dir":
            walked.add(os.path.realpath(p))
            for dirpath, dirnames, filenames in os.walk(p, onerror=walk_error, followlinks=True):
                keep = []
                for d in sorted(dirnames):
                    real = os.path.realpath(os.path.join(dirpath, d))
                    if d.startswith(".") or real in walked:
                        continue
                    walked.add(real)
                    keep.append(d)
                dirnames[:] = keep
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    full = os.path.join(dirpath, name)
                    k = _file_kind(full)
                    if k == "file":
                        add(full)
                    elif k != "dir":
                        not_a_file(full, k)
        elif kind == "file":
            add(p)
            if os.path.basename(p).upper() == "DICOMDIR":
                try:
                    refs, missing = dicomdir_referenced_files(p)
                except Exception as exc:  # noqa: BLE001 - reported below when the file itself is read
                    del exc
                    continue
                for r in refs:
                    if _file_kind(r) == "file":
                        add(r)
                    else:
                        not_a_file(r, _file_kind(r))
                skipped.extend(missing)
        else:
            not_a_file(p, kind)
    return files, skipped


# --------------------------------------------------------------------------------------------------------------
# The scan
# --------------------------------------------------------------------------------------------------------------


def _describe_error(exc: BaseException) -> str:
    if isinstance(exc, (NotDicomError, HeaderError)):
        return str(exc)
    if isinstance(exc, IsADirectoryError):
        return "is a folder"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, OSError):
        return f"cannot read file: {exc.strerror or exc}"
    if isinstance(exc, (EOFError, struct.error)):
        return f"truncated or damaged DICOM header ({type(exc).__name__}: {exc})"
    if isinstance(exc, InvalidDicomError):
        return f"invalid DICOM: {exc}"
    return f"unreadable DICOM header ({type(exc).__name__}: {exc})"


def scan(
    paths: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    state: TaskState | None = None,
) -> DicomIndex:
    """Index DICOM files under ``paths`` into Patient -> Study -> Series -> Instance, headers only.

    Parameters
    ----------
    paths:
        A folder (walked recursively), a DICOMDIR file, a single file, or an iterable of those. Files may have any
        extension or none.
    progress:
        ``progress(done, total, path)`` after each file.
    cancel:
        A :class:`threading.Event` or a callable; when set/true the scan stops and returns the partial index with
        ``cancelled=True``.
    state:
        Alternatively a :class:`~medviewer.jobs.TaskState` carrying both.

    Returns
    -------
    DicomIndex with every indexed instance (image and non-image objects) and ``skipped`` entries for files that
    are not DICOM, are truncated or damaged, lack SOPInstanceUID, or repeat a SOPInstanceUID already indexed.

    Never raises for bad files; raises only for programming errors.
    """
    task = as_task_state(state, progress, cancel)
    files, skipped = expand_paths(paths)
    index = DicomIndex(skipped=list(skipped))
    total = len(files)
    seen_uids: dict[str, str] = {}
    series_cache: dict = {}
    for n, path in enumerate(files):
        if task.cancelled:
            index.cancelled = True
            break
        try:
            ds, pixel_length, pixel_offset = read_header(path)
            has_pixels = pixel_offset is not None
            inst = _instance_from_header(path, ds, pixel_length, has_pixels, pixel_offset)
            inst.pixel_data_offset = pixel_offset
            inst.read_warnings = tuple(inst.read_warnings) + tuple(getattr(ds, "_medviewer_read_warnings", ()))
            inst.float_pixel_data = bool(getattr(ds, "_medviewer_float_pixels", False))
            reason = _validate(inst, path, pixel_offset)
            if reason:
                index.skipped.append(SkippedFile(path, reason))
                continue
            if inst.sop_instance_uid in seen_uids:
                index.skipped.append(
                    SkippedFile(path, f"duplicate SOPInstanceUID {inst.sop_instance_uid} (same as "
                                      f"{seen_uids[inst.sop_instance_uid]})"))
                continue
            seen_uids[inst.sop_instance_uid] = path
            _insert(index, ds, inst, series_cache)
        except Exception as exc:  # noqa: BLE001 - every bad file is reported, none stops the scan
            index.skipped.append(SkippedFile(path, _describe_error(exc)))
        finally:
            index.files_seen = n + 1
            task.progress(n + 1, total, path)
    return index


def _validate(inst: Instance, path: str, pixel_offset: int | None) -> str | None:
    if not inst.sop_instance_uid:
        if not inst.sop_class_uid:
            return "not a DICOM object (no SOPClassUID or SOPInstanceUID)"
        return "missing SOPInstanceUID (0008,0018)"
    if inst.kind != "image":
        return None
    if not inst.rows or not inst.columns:
        return "image without Rows/Columns"
    if inst.pixel_data_length is not None and pixel_offset is not None:
        file_size = os.path.getsize(path)
        available = file_size - pixel_offset
        if available < inst.pixel_data_length:
            return (f"truncated pixel data: Pixel Data declares {inst.pixel_data_length} bytes, the file holds "
                    f"{max(available, 0)}")
        expected = _expected_native_bytes(inst)
        if expected is not None and inst.pixel_data_length < expected and _is_native(inst.transfer_syntax_uid):
            return (f"truncated pixel data: {inst.rows}x{inst.columns}x{inst.number_of_frames} frames at "
                    f"{inst.bits_allocated} bits need {expected} bytes, Pixel Data holds {inst.pixel_data_length}")
    return None


def _is_native(ts: str) -> bool:
    return ts in ("", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.1.99")


def _raw_bytes(ds: Dataset, tag: int) -> bytes | str | None:
    """The undecoded value of an element (cheap cache key); the converted value if pydicom converted it."""
    elem = ds.get_item(tag)
    if elem is None:
        return None
    return elem.value if isinstance(elem, RawDataElement) else str(elem.value)


def _insert(index: DicomIndex, ds: Dataset, inst: Instance, cache: dict | None = None) -> None:
    if inst.sop_class_uid == MEDIA_STORAGE_DIRECTORY:
        # A DICOMDIR (or a vendor directory file such as Philips' DIRFILE) belongs to no patient.
        index.directory_files.append(inst)
        return
    # Most files join a series seen before: find it from raw (undecoded) UIDs and PatientID/PatientName, so the
    # charset-aware text decoding runs once per series, not once per file.
    key_raw = (_raw_bytes(ds, T_SERIES_UID), _raw_bytes(ds, T_STUDY_UID), _raw_bytes(ds, T_PATIENT_ID),
               _raw_bytes(ds, T_PATIENT_NAME), _raw_bytes(ds, 0x00080005))
    if cache is not None:
        series = cache.get(key_raw)
        if series is not None:
            series.instances.append(inst)
            return
    patient_id = _text(ds, T_PATIENT_ID)
    patient_name = _text(ds, T_PATIENT_NAME)
    key = patient_id or (f"(no PatientID) {patient_name}" if patient_name else "(no PatientID)")
    patient = index.patients.get(key)
    if patient is None:
        patient = Patient(patient_id=patient_id, patient_name=patient_name,
                          patient_birth_date=_str(ds, T_BIRTH_DATE), patient_sex=_str(ds, T_SEX))
        index.patients[key] = patient
    study_uid = _str(ds, T_STUDY_UID) or "(no StudyInstanceUID)"
    study = patient.studies.get(study_uid)
    if study is None:
        study = Study(study_instance_uid=study_uid, study_date=_str(ds, T_STUDY_DATE),
                      study_time=_str(ds, T_STUDY_TIME), study_description=_text(ds, T_STUDY_DESC),
                      accession_number=_text(ds, T_ACCESSION), study_id=_text(ds, T_STUDY_ID))
        patient.studies[study_uid] = study
    series_uid = _str(ds, T_SERIES_UID) or "(no SeriesInstanceUID)"
    series = study.series.get(series_uid)
    if series is None:
        series = Series(series_instance_uid=series_uid, modality=inst.modality,
                        series_number=_int(ds, T_SERIES_NUMBER), series_description=_text(ds, T_SERIES_DESC),
                        series_date=_str(ds, T_SERIES_DATE), body_part_examined=_str(ds, T_BODY_PART),
                        manufacturer=_text(ds, T_MANUFACTURER))
        study.series[series_uid] = series
    if cache is not None:
        cache[key_raw] = series
    series.instances.append(inst)
