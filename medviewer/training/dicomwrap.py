"""Wrap 8-bit training/test films as DICOM CR objects the way scanners write them, to check that the product's
DICOM path gives the model what it was trained on (issue #10, "training and inference see the same picture").

Each :data:`VARIANTS` entry changes one thing scanners do differently: photometric interpretation (MONOCHROME1
stores bright as low values, PS3.3 C.7.6.3.1.2), 8- or 12-bit stored values, a VOI window or none (then the
product's percentile scaling applies), a Modality LUT (RescaleSlope/Intercept, PS3.3 C.11.1) and a non-square
matrix (the film at a 6:5 aspect ratio instead of squashed to a square).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["Variant", "VARIANTS", "wrap_film"]

CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"


@dataclass(frozen=True)
class Variant:
    name: str
    photometric: str = "MONOCHROME2"
    bits: int = 12
    window: bool = True
    rescale: tuple[float, float] = (1.0, 0.0)  # (RescaleSlope, RescaleIntercept)
    shape: tuple[int, int] | None = None  # (rows, cols); None keeps the film's


VARIANTS = (
    Variant("MONOCHROME2 8-bit, no window", bits=8, window=False),
    Variant("MONOCHROME2 12-bit, window"),
    Variant("MONOCHROME1 12-bit, window", photometric="MONOCHROME1"),
    Variant("MONOCHROME1 12-bit, no window", photometric="MONOCHROME1", window=False),
    Variant("MONOCHROME2 12-bit, rescale + window, 300x360", rescale=(2.0, -1000.0), shape=(300, 360)),
)


def _resize(film: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(film.astype(np.float32), mode="F").resize((shape[1], shape[0]), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.float32)


def wrap_film(film: np.ndarray, variant: Variant, path: str | os.PathLike, *, patient_age: str = "003Y",
              view_position: str = "AP", body_part: str = "CHEST", study_uid: str | None = None) -> str:
    """Write the uint8 (rows, cols) ``film`` (bright = dense, as displayed) as a CR object at ``path``.

    Stored values: ``v / 255 * (2**bits - 1)`` (inverted for MONOCHROME1), so that after the Modality LUT and the
    written window the displayed film equals the input; with ``variant.window`` False no window is written.
    ``study_uid`` puts several films in one study (default: a new study each). Returns the path written.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    v = np.asarray(film, dtype=np.float32)
    if variant.shape is not None:
        v = np.clip(_resize(v, variant.shape), 0, 255)
    top = (1 << variant.bits) - 1
    stored = np.rint(v / 255.0 * top)
    if variant.photometric == "MONOCHROME1":
        stored = top - stored
    stored = stored.astype(np.uint8 if variant.bits <= 8 else np.uint16)
    slope, intercept = variant.rescale

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(CR_IMAGE_STORAGE)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Film^Test"
    ds.PatientID = "FILM"
    ds.PatientAge = patient_age
    ds.Modality = "CR"
    ds.BodyPartExamined = body_part
    ds.ViewPosition = view_position
    ds.PatientOrientation = ["L", "F"] if view_position == "AP" else ["R", "F"]
    ds.InstanceNumber = 1
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = variant.photometric
    ds.BitsAllocated = 8 if variant.bits <= 8 else 16
    ds.BitsStored = variant.bits
    ds.HighBit = variant.bits - 1
    ds.PixelRepresentation = 0
    if (slope, intercept) != (1.0, 0.0):
        ds.RescaleSlope = f"{slope:g}"
        ds.RescaleIntercept = f"{intercept:g}"
        ds.RescaleType = "US"
    if variant.window:
        lo, hi = intercept, top * slope + intercept
        # LINEAR (PS3.3 C.11.2.1.2.1): c - 0.5 - (w - 1) / 2 = lo and c - 0.5 + (w - 1) / 2 = hi
        ds.WindowCenter = f"{(lo + hi) / 2 + 0.5:g}"
        ds.WindowWidth = f"{hi - lo + 1:g}"
    ds.PixelData = stored.tobytes()
    pydicom.dcmwrite(os.fspath(path), ds, enforce_file_format=True)
    return os.fspath(path)
