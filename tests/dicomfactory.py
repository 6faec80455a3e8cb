"""Synthetic DICOM files for the tests, written with pydicom.

Every writer returns the path it wrote. Geometry follows DICOM (LPS mm): ``ipp`` is ImagePositionPatient,
``iop`` ImageOrientationPatient (row cosines then column cosines), ``pixel_spacing`` (row spacing, column spacing).
Pixel arrays are written exactly as given (their dtype decides the stored bytes), so tests can put any bit pattern
in Pixel Data (e.g. garbage above BitsStored) and compute the expected values themselves.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

IMPLICIT_VR_LE = ImplicitVRLittleEndian
EXPLICIT_VR_LE = ExplicitVRLittleEndian

# SOP classes (PS3.4 Annex B)
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
ENHANCED_CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2.1"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"
GRAYSCALE_PR = "1.2.840.10008.5.1.4.1.1.11.1"
KEY_OBJECT_SELECTION = "1.2.840.10008.5.1.4.1.1.88.59"
ENCAPSULATED_PDF = "1.2.840.10008.5.1.4.1.1.104.1"
RT_STRUCTURE_SET = "1.2.840.10008.5.1.4.1.1.481.3"

#: The non-image objects :func:`non_image` writes, with the kind tag medviewer should give them.
NON_IMAGE_KINDS = {
    "SR": BASIC_TEXT_SR,
    "PR": GRAYSCALE_PR,
    "KO": KEY_OBJECT_SELECTION,
    "PDF": ENCAPSULATED_PDF,
    "RT": RT_STRUCTURE_SET,
}

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def uid() -> str:
    return generate_uid()


class SeriesIds:
    """The UIDs and patient attributes shared by the files of one synthetic series."""

    def __init__(self, patient_id: str = "PAT001", patient_name: str = "Test^Patient", *,
                 study_uid: str | None = None, series_uid: str | None = None, frame_of_reference_uid: str | None = None,
                 series_number: int = 1):
        self.patient_id = patient_id
        self.patient_name = patient_name
        self.study_uid = study_uid or uid()
        self.series_uid = series_uid or uid()
        self.frame_of_reference_uid = frame_of_reference_uid or uid()
        self.series_number = series_number


def _ds_value(v: float) -> str:
    """A DS string (at most 16 characters) for ``v``."""
    s = f"{float(v):.10g}"
    if len(s) > 16:
        s = f"{float(v):.8g}"
    return s


def _ds_values(values: Sequence[float]) -> list[str]:
    return [_ds_value(v) for v in values]


def base_dataset(sop_class: str, ids: SeriesIds | None = None, *, sop_uid: str | None = None, modality: str = "CT",
                 charset: str | Sequence[str] | None = None, patient_name: str | None = None,
                 study_description: str | None = None, series_description: str | None = None,
                 instance_number: int | None = None,
                 transfer_syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """A dataset with file meta, SOP common, patient/study/series attributes."""
    ids = ids or SeriesIds()
    sop_uid = sop_uid or uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = transfer_syntax
    ds = Dataset()
    ds.file_meta = meta
    if charset is not None:
        ds.SpecificCharacterSet = charset if isinstance(charset, str) else list(charset)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.Modality = modality
    ds.PatientName = patient_name if patient_name is not None else ids.patient_name
    ds.PatientID = ids.patient_id
    ds.StudyInstanceUID = ids.study_uid
    ds.SeriesInstanceUID = ids.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = ids.series_number
    if study_description is not None:
        ds.StudyDescription = study_description
    if series_description is not None:
        ds.SeriesDescription = series_description
    if instance_number is not None:
        ds.InstanceNumber = instance_number
    return ds


def write(ds: Dataset, path: str | os.PathLike, *, preamble: bool = True, meta: bool = True) -> Path:
    """Write ``ds`` as a DICOM Part 10 file.

    preamble=False: the same file without its 128-byte preamble and 'DICM' marker (starts with the group 0002
        File Meta Information). meta=False (implies no preamble): only the dataset, implicit VR little endian, as
        some old archives store it (starts with group 0008).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not meta:
        ds = ds.copy()
        del ds.file_meta
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=False)
        return path
    ds.save_as(path, enforce_file_format=True)
    if not preamble:
        data = path.read_bytes()
        assert data[128:132] == b"DICM"
        path.write_bytes(data[132:])
    return path


def _set_pixels(ds: Dataset, pixels: np.ndarray, *, samples: int = 1) -> None:
    arr = np.ascontiguousarray(pixels)
    bits = arr.dtype.itemsize * 8
    ds.BitsAllocated = bits
    if "BitsStored" not in ds:
        ds.BitsStored = bits
    ds.HighBit = int(ds.BitsStored) - 1
    if "PixelRepresentation" not in ds:
        ds.PixelRepresentation = 1 if arr.dtype.kind == "i" else 0
    ds.SamplesPerPixel = samples
    data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
    if len(data) % 2:
        data += b"\x00"
    ds.PixelData = data
    # OB for 8-bit data, OW otherwise (PS3.5 8.2).
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"


def default_pixels(rows: int, cols: int, seed: int, dtype=np.int16, low: int = -1000, high: int = 3000) -> np.ndarray:
    """Deterministic random pixels."""
    rng = np.random.default_rng(seed)
    return rng.integers(low, high, size=(rows, cols)).astype(dtype)


def image_slice(
    path: str | os.PathLike,
    ids: SeriesIds | None = None,
    *,
    ipp: Sequence[float] | None = (0.0, 0.0, 0.0),
    iop: Sequence[float] | None = AXIAL,
    pixel_spacing: Sequence[float] | None = (0.5, 0.5),
    pixels: np.ndarray | None = None,
    rows: int = 8,
    cols: int = 8,
    seed: int = 0,
    slope: float | None = 1.0,
    intercept: float | None = -1024.0,
    instance_number: int | None = None,
    echo_numbers: int | None = None,
    acquisition_number: int | None = None,
    bits_stored: int | None = None,
    pixel_representation: int | None = None,
    photometric: str = "MONOCHROME2",
    modality: str = "CT",
    sop_class: str = CT_IMAGE,
    sop_uid: str | None = None,
    charset: str | Sequence[str] | None = None,
    patient_name: str | None = None,
    study_description: str | None = None,
    series_description: str | None = None,
    slice_thickness: float | None = 1.0,
    gantry_tilt: float | None = None,
    window: tuple[float, float] | None = None,
    preamble: bool = True,
    meta: bool = True,
    transfer_syntax: str = ExplicitVRLittleEndian,
    extra: dict | None = None,
) -> Path:
    """One single-frame greyscale image (CT by default)."""
    ds = base_dataset(sop_class, ids, sop_uid=sop_uid, modality=modality, charset=charset,
                      patient_name=patient_name, study_description=study_description,
                      series_description=series_description, instance_number=instance_number,
                      transfer_syntax=transfer_syntax)
    if pixels is None:
        pixels = default_pixels(rows, cols, seed)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if ids is not None:
        ds.FrameOfReferenceUID = ids.frame_of_reference_uid
    if ipp is not None:
        ds.ImagePositionPatient = _ds_values(ipp)
    if iop is not None:
        ds.ImageOrientationPatient = _ds_values(iop)
    if pixel_spacing is not None:
        ds.PixelSpacing = _ds_values(pixel_spacing)
    if slice_thickness is not None:
        ds.SliceThickness = _ds_value(slice_thickness)
    if slope is not None:
        ds.RescaleSlope = _ds_value(slope)
    if intercept is not None:
        ds.RescaleIntercept = _ds_value(intercept)
    if echo_numbers is not None:
        ds.EchoNumbers = echo_numbers
    if acquisition_number is not None:
        ds.AcquisitionNumber = acquisition_number
    if gantry_tilt is not None:
        ds.GantryDetectorTilt = _ds_value(gantry_tilt)
    if window is not None:
        ds.WindowCenter = _ds_value(window[0])
        ds.WindowWidth = _ds_value(window[1])
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PhotometricInterpretation = photometric
    if bits_stored is not None:
        ds.BitsStored = bits_stored
    if pixel_representation is not None:
        ds.PixelRepresentation = pixel_representation
    _set_pixels(ds, pixels)
    for k, v in (extra or {}).items():
        setattr(ds, k, v)
    return write(ds, path, preamble=preamble, meta=meta)


def color_image(
    path: str | os.PathLike,
    ids: SeriesIds | None = None,
    *,
    pixels: np.ndarray,
    photometric: str = "RGB",
    planar_configuration: int = 0,
    ipp: Sequence[float] | None = None,
    iop: Sequence[float] | None = None,
    pixel_spacing: Sequence[float] | None = None,
    instance_number: int | None = None,
    modality: str = "OT",
    sop_class: str = SECONDARY_CAPTURE,
) -> Path:
    """A single-frame 8-bit colour image. ``pixels`` (rows, cols, 3) uint8 is written as-is in the colour space
    named by ``photometric`` (RGB or YBR_FULL), interleaved (planar_configuration 0) or by plane (1)."""
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8
    ds = base_dataset(sop_class, ids, modality=modality, instance_number=instance_number)
    if ipp is not None:
        ds.ImagePositionPatient = _ds_values(ipp)
    if iop is not None:
        ds.ImageOrientationPatient = _ds_values(iop)
    if pixel_spacing is not None:
        ds.PixelSpacing = _ds_values(pixel_spacing)
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar_configuration
    ds.PixelRepresentation = 0
    data = pixels if planar_configuration == 0 else np.moveaxis(pixels, 2, 0)
    _set_pixels(ds, data, samples=3)
    return write(ds, path)


def palette_image(
    path: str | os.PathLike,
    ids: SeriesIds | None = None,
    *,
    indices: np.ndarray,
    red: np.ndarray,
    green: np.ndarray,
    blue: np.ndarray,
    lut_bits: int = 16,
    ipp: Sequence[float] | None = None,
    iop: Sequence[float] | None = None,
    pixel_spacing: Sequence[float] | None = None,
    instance_number: int | None = None,
) -> Path:
    """A PALETTE COLOR image: 8-bit ``indices`` and three 256-entry LUTs with ``lut_bits`` (8 or 16) bits per
    entry (8-bit entries are packed two per 16-bit word, as PS3.3 C.7.6.3.1.6 allows)."""
    ds = base_dataset(SECONDARY_CAPTURE, ids, modality="OT", instance_number=instance_number)
    if ipp is not None:
        ds.ImagePositionPatient = _ds_values(ipp)
    if iop is not None:
        ds.ImageOrientationPatient = _ds_values(iop)
    if pixel_spacing is not None:
        ds.PixelSpacing = _ds_values(pixel_spacing)
    ds.Rows, ds.Columns = int(indices.shape[0]), int(indices.shape[1])
    ds.PhotometricInterpretation = "PALETTE COLOR"
    ds.PixelRepresentation = 0
    _set_pixels(ds, indices.astype(np.uint8))
    for name, lut in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [len(lut), 0, lut_bits])
        data = np.asarray(lut, dtype=np.uint16 if lut_bits == 16 else np.uint8).astype(
            "<u2" if lut_bits == 16 else "u1").tobytes()
        setattr(ds, f"{name}PaletteColorLookupTableData", data)
        ds[f"{name}PaletteColorLookupTableData"].VR = "OW"
    return write(ds, path)


def enhanced_ct(
    path: str | os.PathLike,
    ids: SeriesIds | None = None,
    *,
    positions: Sequence[Sequence[float]],
    frames: np.ndarray,
    iop: Sequence[float] = AXIAL,
    pixel_spacing: Sequence[float] = (0.5, 0.5),
    slope: float = 1.0,
    intercept: float = -1024.0,
    per_frame_rescale: Sequence[tuple[float, float]] | None = None,
    stack_id: str | None = "1",
) -> Path:
    """An Enhanced CT Image (PS3.3 A.38) with per-frame PlanePositionSequence, shared orientation, pixel measures
    and rescale (or per-frame rescale), frames in the given order. ``frames`` (n, rows, cols) int16."""
    n, rows, cols = frames.shape
    assert len(positions) == n
    ds = base_dataset(ENHANCED_CT_IMAGE, ids)
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
    if ids is not None:
        ds.FrameOfReferenceUID = ids.frame_of_reference_uid
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = rows, cols
    ds.PhotometricInterpretation = "MONOCHROME2"

    shared = Dataset()
    po = Dataset()
    po.ImageOrientationPatient = _ds_values(iop)
    shared.PlaneOrientationSequence = DicomSequence([po])
    pm = Dataset()
    pm.PixelSpacing = _ds_values(pixel_spacing)
    pm.SliceThickness = "1"
    shared.PixelMeasuresSequence = DicomSequence([pm])
    if per_frame_rescale is None:
        pvt = Dataset()
        pvt.RescaleSlope = _ds_value(slope)
        pvt.RescaleIntercept = _ds_value(intercept)
        pvt.RescaleType = "HU"
        shared.PixelValueTransformationSequence = DicomSequence([pvt])
    ds.SharedFunctionalGroupsSequence = DicomSequence([shared])

    per_frame = []
    for i, pos in enumerate(positions):
        item = Dataset()
        pp = Dataset()
        pp.ImagePositionPatient = _ds_values(pos)
        item.PlanePositionSequence = DicomSequence([pp])
        fc = Dataset()
        if stack_id is not None:
            fc.StackID = stack_id
        fc.FrameAcquisitionNumber = 1
        item.FrameContentSequence = DicomSequence([fc])
        if per_frame_rescale is not None:
            pvt = Dataset()
            pvt.RescaleSlope = _ds_value(per_frame_rescale[i][0])
            pvt.RescaleIntercept = _ds_value(per_frame_rescale[i][1])
            pvt.RescaleType = "HU"
            item.PixelValueTransformationSequence = DicomSequence([pvt])
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = DicomSequence(per_frame)
    _set_pixels(ds, frames)
    return write(ds, path)


def legacy_multiframe(
    path: str | os.PathLike,
    ids: SeriesIds | None = None,
    *,
    frames: np.ndarray,
    modality: str = "US",
    sop_class: str = US_MULTIFRAME,
    instance_number: int | None = 1,
) -> Path:
    """A legacy multi-frame greyscale object without any spatial position (ultrasound cine). ``frames`` is
    (n, rows, cols) uint8 or uint16."""
    n, rows, cols = frames.shape
    ds = base_dataset(sop_class, ids, modality=modality, instance_number=instance_number)
    ds.NumberOfFrames = n
    ds.FrameIncrementPointer = 0x00181063  # FrameTime
    ds.FrameTime = "33.3"
    ds.Rows, ds.Columns = rows, cols
    ds.PhotometricInterpretation = "MONOCHROME2"
    _set_pixels(ds, frames)
    return write(ds, path)


def non_image(path: str | os.PathLike, kind: str, ids: SeriesIds | None = None, *,
              instance_number: int | None = 1) -> Path:
    """A non-image object: ``kind`` is one of NON_IMAGE_KINDS (SR, PR, KO, PDF, RT)."""
    sop_class = NON_IMAGE_KINDS[kind]
    modality = {"SR": "SR", "PR": "PR", "KO": "KO", "PDF": "DOC", "RT": "RTSTRUCT"}[kind]
    ds = base_dataset(sop_class, ids, modality=modality, instance_number=instance_number)
    if kind in ("SR", "KO"):
        ds.ValueType = "CONTAINER"
        ds.ContinuityOfContent = "SEPARATE"
        concept = Dataset()
        concept.CodeValue = "113000" if kind == "KO" else "18748-4"
        concept.CodingSchemeDesignator = "DCM" if kind == "KO" else "LN"
        concept.CodeMeaning = "Of Interest" if kind == "KO" else "Diagnostic Imaging Report"
        ds.ConceptNameCodeSequence = DicomSequence([concept])
        text = Dataset()
        text.RelationshipType = "CONTAINS"
        text.ValueType = "TEXT"
        text.TextValue = "No acute findings."
        ds.ContentSequence = DicomSequence([text])
    elif kind == "PR":
        ds.ContentLabel = "ANNOTATION"
        ds.PresentationCreationDate = "20240102"
    elif kind == "PDF":
        pdf = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
        ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
        ds.DocumentTitle = "Report"
        ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
        ds.EncapsulatedDocumentLength = len(pdf)
    elif kind == "RT":
        ds.StructureSetLabel = "CONTOURS"
        roi = Dataset()
        roi.ROINumber = 1
        roi.ROIName = "GTV"
        ds.StructureSetROISequence = DicomSequence([roi])
    return write(ds, path)


def truncate(path: str | os.PathLike, *, keep: int | None = None, drop: int | None = None) -> Path:
    """Cut a file to its first ``keep`` bytes, or drop its last ``drop`` bytes."""
    path = Path(path)
    data = path.read_bytes()
    if keep is None:
        assert drop is not None
        keep = len(data) - drop
    path.write_bytes(data[:keep])
    return path


def write_series(folder: str | os.PathLike, positions: Sequence[Sequence[float]], ids: SeriesIds | None = None, *,
                 names: Sequence[str] | None = None, instance_numbers: Sequence[int] | None = None,
                 **kwargs) -> list[Path]:
    """One single-frame slice per position (seed = slice number, so every slice has different pixels). Extra
    keyword arguments go to :func:`image_slice`; list-valued ``per_slice`` keyword arguments may be given as
    ``name=[...]`` through ``per_slice={"name": [...]}``."""
    ids = ids or SeriesIds()
    folder = Path(folder)
    per_slice = kwargs.pop("per_slice", {})
    out = []
    for k, pos in enumerate(positions):
        name = names[k] if names is not None else f"IM{k:04d}"
        inum = instance_numbers[k] if instance_numbers is not None else k + 1
        args = dict(kwargs)
        args.setdefault("seed", k + 1)
        for key, values in per_slice.items():
            args[key] = values[k]
        out.append(image_slice(folder / name, ids, ipp=pos, instance_number=inum, **args))
    return out
