"""The bundled sample study: real images from the ``pydicom-data`` package, gathered into one study.

``pydicom-data`` (MIT) ships a real chest PA CR (``RG1_UNCI.dcm``, MONOCHROME1, 1955x1841), a head CT slice
(``693_UNCR.dcm``, from CQ500) and a 1024x1024 MR (``MR2_UNCR.dcm``). The CT and MR are the ``UNCR`` copies: the
``UNCI`` ones are decompressed from lossy JPEG 2000 and show its artefacts (blotches in the brain at W100/L40).
They come from three different studies;
:func:`build_sample_study` copies them into one folder as one patient and study (new, deterministic UIDs), so the
app does something real on first start without any network access.
"""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_FILES = (
    ("RG1_UNCI.dcm", "Chest PA (CR)"),
    ("693_UNCR.dcm", "Head CT"),
    ("MR2_UNCR.dcm", "MR"),
)
SAMPLE_PATIENT_NAME = "SAMPLE^MEDVIEWER"
SAMPLE_PATIENT_ID = "MV-SAMPLE-0001"


def pydicom_data_file(name: str) -> Path:
    """Path of a file shipped by the ``pydicom-data`` package (never downloads).

    Raises
    ------
    FileNotFoundError: pydicom-data is not installed or lacks the file.
    """
    try:
        import data_store  # the import name of the pydicom-data package
    except ImportError as exc:
        raise FileNotFoundError("the pydicom-data package is not installed (pip install pydicom-data)") from exc
    path = Path(data_store.__file__).parent / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"{name} not found in pydicom-data at {path.parent}")
    return path


def build_sample_study(dest: str | os.PathLike) -> Path:
    """Write the sample study into ``dest`` (created if needed) and return it; reuses an existing copy.

    Raises
    ------
    FileNotFoundError: pydicom-data is missing.
    """
    import pydicom
    from pydicom.uid import generate_uid

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    study_uid = generate_uid(entropy_srcs=["medviewer-sample-study"])
    expected = {f"{n:02d}_{Path(name).stem}.dcm" for n, (name, _) in enumerate(SAMPLE_FILES, 1)}
    for old in dest.glob("*.dcm"):
        if old.name not in expected:  # left by an older version of the sample
            old.unlink()
    for n, (name, description) in enumerate(SAMPLE_FILES, 1):
        out = dest / f"{n:02d}_{Path(name).stem}.dcm"
        if out.is_file():
            continue
        ds = pydicom.dcmread(pydicom_data_file(name))
        ds.PatientName = SAMPLE_PATIENT_NAME
        ds.PatientID = SAMPLE_PATIENT_ID
        ds.StudyInstanceUID = study_uid
        ds.StudyDescription = "medviewer sample study (pydicom-data images)"
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=["medviewer-sample-series", name])
        ds.SeriesNumber = n
        ds.SeriesDescription = description
        ds.SOPInstanceUID = generate_uid(entropy_srcs=["medviewer-sample-instance", name])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        tmp = out.with_suffix(".tmp")
        ds.save_as(tmp, enforce_file_format=True)
        os.replace(tmp, out)
    return dest


def default_sample_dir() -> Path:
    """Where the app keeps its copy of the sample study (inside the user's data dir)."""
    from medviewer.config import data_dir

    return data_dir() / "sample-study"
