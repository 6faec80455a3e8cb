"""Build (once) and locate the datasets the benchmarks use.

Source: the Philips CT phantom, 140 slices of 512x512 (``I10`` .. ``I1400``, plus ``DIRFILE`` and ``LICENSE``),
read-only. Nothing is ever written there. Derived datasets go to a work folder, by default ``benchmarks/_work/``
(git-ignored), or ``$MEDVIEWER_BENCH_WORK``; they are built on first use and reused afterwards (a marker file
``<name>.complete`` next to each dataset folder says it was built completely).

Datasets
--------
* ``scan560``: the 140 slices copied four times into ONE flat folder (SimpleITK's GDCM series lookup does not
  recurse), files ``c<k>_I<n>``. Each copy gets its own StudyInstanceUID, SeriesInstanceUID and SOPInstanceUIDs
  (``pydicom.uid.generate_uid``; the file meta MediaStorageSOPInstanceUID follows); everything else is kept.
  560 files, 4 studies of one series each.
* ``load560``: one 560-slice series: the 140 slices four times, same StudyInstanceUID/SeriesInstanceUID as the
  source, new SOPInstanceUIDs, ImagePositionPatient (and SliceLocation) z shifted by ``k * 140 * spacing`` so the
  560 slices are contiguous at the source spacing (1.0 mm), InstanceNumber renumbered 1..560.
* the 140-slice series is the source folder itself (only read).

Run ``python benchmarks/_data.py`` to build everything up front (``--rebuild`` to force).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
SOURCE = Path(os.environ.get("MEDVIEWER_BENCH_SOURCE", "/work/shared/data/ct-phantom-philips"))
WORK = Path(os.environ.get("MEDVIEWER_BENCH_WORK", str(BENCH_DIR / "_work")))

N_COPIES = 4


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def source_files() -> list[Path]:
    """The 140 image files of the source series, in file-name (= InstanceNumber) order; DIRFILE/LICENSE left out."""
    if not SOURCE.is_dir():
        raise SystemExit(f"source data not found: {SOURCE} (set MEDVIEWER_BENCH_SOURCE)")
    files = sorted((p for p in SOURCE.iterdir() if re.fullmatch(r"I\d+", p.name)), key=lambda p: _natural_key(p.name))
    if len(files) != 140:
        print(f"warning: expected 140 source files in {SOURCE}, found {len(files)}", file=sys.stderr)
    return files


def _ready(folder: Path) -> bool:
    return folder.is_dir() and folder.with_name(folder.name + ".complete").exists()


def _start(folder: Path) -> None:
    marker = folder.with_name(folder.name + ".complete")
    if marker.exists():
        marker.unlink()
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def _finish(folder: Path, n: int, t0: float) -> None:
    folder.with_name(folder.name + ".complete").write_text(f"{n} files\n")
    print(f"  built {folder} ({n} files, {time.perf_counter() - t0:.1f} s)", file=sys.stderr)


def _set_sop_uid(ds, uid: str) -> None:
    ds.SOPInstanceUID = uid
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = uid


def _fmt_ds(value: float) -> str:
    """A DS string (<= 16 chars) without float noise."""
    s = repr(round(float(value), 4))
    if s.endswith(".0"):
        s = s[:-2]
    return s


def scan_dataset(rebuild: bool = False) -> Path:
    """Flat folder of 560 files: 4 copies of the series, each with new Study/Series/SOP Instance UIDs."""
    import pydicom
    from pydicom.uid import generate_uid

    folder = WORK / "scan560"
    if _ready(folder) and not rebuild:
        return folder
    t0 = time.perf_counter()
    _start(folder)
    src = source_files()
    n = 0
    for k in range(N_COPIES):
        study_uid, series_uid = generate_uid(), generate_uid()
        for f in src:
            ds = pydicom.dcmread(f)
            ds.StudyInstanceUID = study_uid
            ds.SeriesInstanceUID = series_uid
            _set_sop_uid(ds, generate_uid())
            ds.save_as(folder / f"c{k}_{f.name}")
            n += 1
    _finish(folder, n, t0)
    return folder


def load560_dataset(rebuild: bool = False) -> Path:
    """Folder of one contiguous 560-slice series (4 z-shifted copies of the 140 slices)."""
    import pydicom
    from pydicom.uid import generate_uid

    folder = WORK / "load560"
    if _ready(folder) and not rebuild:
        return folder
    t0 = time.perf_counter()
    _start(folder)
    src = source_files()
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in src]
    z = [float(h.ImagePositionPatient[2]) for h in headers]
    n_src = len(src)
    spacing = (max(z) - min(z)) / (n_src - 1)
    shift = n_src * spacing  # copy k starts one spacing after copy k-1 ends
    n = 0
    for k in range(N_COPIES):
        for f in src:
            ds = pydicom.dcmread(f)
            _set_sop_uid(ds, generate_uid())
            ipp = [float(v) for v in ds.ImagePositionPatient]
            ds.ImagePositionPatient = [_fmt_ds(ipp[0]), _fmt_ds(ipp[1]), _fmt_ds(ipp[2] + k * shift)]
            if "SliceLocation" in ds:
                ds.SliceLocation = _fmt_ds(float(ds.SliceLocation) + k * shift)
            ds.InstanceNumber = k * n_src + int(ds.InstanceNumber)
            n += 1
            ds.save_as(folder / f"I{n:04d}")
    _finish(folder, n, t0)
    return folder


def series140_folder() -> Path:
    """The source folder (140 slices + DIRFILE + LICENSE); only ever read."""
    source_files()
    return SOURCE


def warm_page_cache(paths) -> int:
    """Read every file once so the OS page cache holds it; returns the bytes read."""
    total = 0
    for p in paths:
        with open(p, "rb") as fp:
            while chunk := fp.read(1 << 20):
                total += len(chunk)
    return total


def list_files(folder: Path) -> list[str]:
    """Non-hidden regular files of a flat folder, sorted by name (the order medviewer.io.scan walks them)."""
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if not n.startswith(".") and os.path.isfile(os.path.join(folder, n))]


def machine_lines() -> list[str]:
    import platform

    import numpy
    import pydicom
    try:
        import SimpleITK as sitk
        sitk_v = sitk.Version_VersionString()
    except Exception as exc:  # noqa: BLE001
        sitk_v = f"unavailable ({exc})"
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return [
        f"machine   : {platform.machine()} {cpu_model}".rstrip(),
        f"cpus      : os.cpu_count()={os.cpu_count()}, usable (affinity)={usable}",
        f"python    : {platform.python_version()} ({sys.executable})",
        f"pydicom   : {pydicom.__version__}   SimpleITK: {sitk_v}   numpy: {numpy.__version__}",
    ]


if __name__ == "__main__":
    rebuild = "--rebuild" in sys.argv
    print(scan_dataset(rebuild))
    print(load560_dataset(rebuild))
    print(series140_folder())
