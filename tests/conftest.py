"""Shared fixtures: the real data under ../shared/data, pydicom's test files, synthetic series helpers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pydicom
import pytest

#: The project's real data: ../shared/data from the repository root (never written to).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PHILIPS_DIR = SHARED_DATA / "ct-phantom-philips"
GE_DIR = SHARED_DATA / "ct-head-ge"


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"real data folder {path} is absent (the shared data set is laid beside the repo as "
                    f"../shared/data)")
    return path


@pytest.fixture(scope="session")
def philips_dir() -> Path:
    """140-slice Philips phantom CT, files without extension, plus the non-image DIRFILE."""
    return _require_dir(PHILIPS_DIR)


@pytest.fixture(scope="session")
def ge_dir() -> Path:
    """28-slice GE head CT with gantry tilt and uneven spacing."""
    return _require_dir(GE_DIR)


def pydicom_testfile(name: str) -> str:
    """Path of one of pydicom's (or pydicom-data's) test files; skips the test when it is not installed."""
    from pydicom.data import get_testdata_file

    try:
        path = get_testdata_file(name, download=False)
    except Exception:  # noqa: BLE001 - any lookup failure means "not available here"
        path = None
    if path is None or not os.path.exists(path):
        pytest.skip(f"pydicom test file {name} is not installed (pip install pydicom-data)")
    return str(path)


def pydicom_charset_file(name: str) -> str:
    """Path of one of pydicom's character set test files (chrFren.dcm, chrH31.dcm...)."""
    from pydicom.data import get_charset_files

    found = get_charset_files(name)
    if not found:
        pytest.skip(f"pydicom charset test file {name} is not available")
    return str(found[0])


def dicom_files(folder: Path) -> list[Path]:
    """The DICOM files directly in ``folder``, sorted (LICENSE, DIRFILE and other non-DICOM files left out)."""
    out = []
    for p in sorted(Path(folder).iterdir()):
        if not p.is_file():
            continue
        try:
            pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not a DICOM file
            continue
        out.append(p)
    return out


def normal_of(iop) -> np.ndarray:
    """Unit slice normal, computed here (not by medviewer): row cosines x column cosines."""
    o = np.asarray([float(v) for v in iop], dtype=np.float64)
    n = np.cross(o[:3], o[3:])
    return n / np.linalg.norm(n)


def reference_series(folder: Path) -> list[tuple[str, pydicom.Dataset]]:
    """The image files of a single-series folder read by pydicom alone and ordered by the projection of
    ImagePositionPatient on the slice normal (ascending), the order medviewer must reproduce."""
    out = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        try:
            ds = pydicom.dcmread(path)
        except Exception:  # noqa: BLE001 - LICENSE and other non-DICOM files
            continue
        if "PixelData" not in ds:
            continue
        out.append((str(path), ds))
    n = normal_of(out[0][1].ImageOrientationPatient)
    out.sort(key=lambda item: float(np.dot([float(v) for v in item[1].ImagePositionPatient], n)))
    return out


@pytest.fixture(scope="session")
def philips_reference(philips_dir) -> list[tuple[str, pydicom.Dataset]]:
    return reference_series(philips_dir)


@pytest.fixture(scope="session")
def ge_reference(ge_dir) -> list[tuple[str, pydicom.Dataset]]:
    return reference_series(ge_dir)


@pytest.fixture(scope="session")
def philips_index(philips_dir):
    from medviewer.io import scan

    return scan(philips_dir)


@pytest.fixture(scope="session")
def ge_index(ge_dir):
    from medviewer.io import scan

    return scan(ge_dir)


def _only_image_series(index):
    found = [s for _, _, s in index.iter_series() if s.image_instances]
    assert len(found) == 1, f"expected one image series, found {len(found)}"
    return found[0]


@pytest.fixture
def image_series():
    """``image_series(index)``: the single series of a scan that holds images (fails if there are several)."""
    return _only_image_series


@pytest.fixture
def scan_stacks():
    """``scan_stacks(folder)``: scan a folder holding one image series and split it; returns the stacks."""
    from medviewer.imaging import build_stacks
    from medviewer.io import scan

    def run(folder):
        index = scan(folder)
        assert not index.skipped, index.skipped
        return build_stacks(_only_image_series(index))

    return run


@pytest.fixture
def testfile():
    """``testfile(name)``: path of a pydicom / pydicom-data test file, skipping when not installed."""
    return pydicom_testfile


def stored_note_finding(label: str, state: str, p: float, u: float) -> dict:
    """A stored note finding as ``NoteResult.to_dict()["findings"]`` writes it (thresholds 0.5)."""
    return {"label": label, "state": state, "probability": p, "threshold": 0.5, "positive": state == "present",
            "uncertain_probability": u, "uncertain_threshold": 0.5}


@pytest.fixture
def note_finding():
    """``note_finding(label, state, P(present), P(hedged))``: a stored note finding dict."""
    return stored_note_finding


@pytest.fixture
def charset_file():
    """``charset_file(name)``: path of a pydicom character set test file."""
    return pydicom_charset_file


# ---------------------------------------------------------------------------------------------- case store engines
@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server started for the test session (Debian ``postgresql``; initdb into a temporary folder owned
    by ``postgres``, loopback port). Skips where PostgreSQL is not installed, fails under CI (``.ci/run`` installs
    it)."""
    from medviewer.store.localpg import LocalPostgres, available

    if not available():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (.ci/run installs Debian's postgresql)", pytrace=False)
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = LocalPostgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """The URL of a fresh, empty case store on each engine: an SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cases.sqlite3'}"
    return request.getfixturevalue("pg_server").create_database()
