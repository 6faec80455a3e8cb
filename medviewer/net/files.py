"""Where retrieved and received objects land: ``<root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``.

Files are written under a temporary name and renamed when complete (``os.replace``), so a transfer cut short never
leaves a file that looks whole, and a later retrieval can resume by skipping the SOPInstanceUIDs already present.
UIDs that are not plain DICOM UIDs (digits and dots, PS3.5 9.1) are replaced by a hash in file names.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
SUFFIX = ".dcm"
PART_SUFFIX = ".part"


def safe_uid(uid: str) -> str:
    """``uid`` when it is a DICOM UID of at most 64 characters, else ``x`` + the first 32 hex digits of its
    SHA-256 (a file name that cannot climb out of a folder)."""
    text = str(uid or "").strip().rstrip("\x00")
    if text and len(text) <= 64 and _UID.match(text):
        return text
    return "x" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]


def object_path(root: str | os.PathLike, study_uid: str, series_uid: str, sop_uid: str) -> Path:
    """The path of one object under ``root``."""
    return Path(root) / safe_uid(study_uid) / safe_uid(series_uid) / (safe_uid(sop_uid) + SUFFIX)


def write_object(root: str | os.PathLike, study_uid: str, series_uid: str, sop_uid: str, data: bytes) -> Path:
    """Write one encoded DICOM file (preamble, meta and data set bytes) atomically; returns its path."""
    path = object_path(root, study_uid, series_uid, sop_uid)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + PART_SUFFIX)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return path


def present_sop_uids(root: str | os.PathLike, study_uid: str) -> set[str]:
    """The SOPInstanceUIDs (as file stems) of the complete files of a study under ``root``; unfinished ``.part``
    files are removed."""
    folder = Path(root) / safe_uid(study_uid)
    found: set[str] = set()
    if not folder.is_dir():
        return found
    for path in folder.glob("*/*"):
        if path.name.endswith(PART_SUFFIX):
            path.unlink(missing_ok=True)
        elif path.suffix == SUFFIX and path.is_file():
            found.add(path.stem)
    return found


def study_folder(root: str | os.PathLike, study_uid: str) -> Path:
    """``<root>/<StudyInstanceUID>``."""
    return Path(root) / safe_uid(study_uid)


__all__ = ["safe_uid", "object_path", "write_object", "present_sop_uids", "study_folder"]
