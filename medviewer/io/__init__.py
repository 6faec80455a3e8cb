"""DICOM input: folder/DICOMDIR scanning (headers only), the instance index, pixel decoding."""

from medviewer.io.model import DicomIndex, FrameInfo, Instance, Patient, Series, SkippedFile, Study
from medviewer.io.scan import NotDicomError, expand_paths, read_header, scan

__all__ = [
    "DicomIndex", "FrameInfo", "Instance", "Patient", "Series", "SkippedFile", "Study",
    "NotDicomError", "expand_paths", "read_header", "scan",
]
