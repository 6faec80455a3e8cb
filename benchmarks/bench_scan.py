"""Benchmark: header scan rate (files/s) of ``medviewer.io.scan`` on 560 files, against pydicom and SimpleITK.

Dataset ``scan560`` (see ``_data.py``): the Philips CT series copied four times into one flat folder, each copy a
new study/series (new Study/Series/SOP Instance UIDs), 560 files of ~520 KB (512x512 int16 + header).

Compared, all single-threaded, on the same 560 files, in the same process:

* medviewer      ``scan(folder)``: walk + header-only read + full index (patients/studies/series/instances).
* plain loop     ``for f in files: ds = pydicom.dcmread(f)`` then reading the attributes medviewer indexes
                 (the reference of the target).
* bare dcmread   the same loop without attribute access (transparency: the cost of parsing alone).
* header loop    ``dcmread(f, stop_before_pixels=True)`` + the same attributes (informational: what the plain loop
                 costs when it skips pixel data like medviewer does).
* SimpleITK      ``ImageSeriesReader.GetGDCMSeriesIDs(folder)`` then ``GetGDCMSeriesFileNames(folder, sid)`` for
                 each series (GDCM re-scans the folder on each call, as an application using this API does).

The page cache is warmed first (every file read once) and each method runs once untimed, then ``--repeats``
times interleaved (round robin). The figure compared to the target is the MEDIAN; the best run is shown too.
Target: medviewer scan >= 1.5x the files/s of the plain loop.

Not a test: it prints PASS/MISS and never fails.

    .venv/bin/python benchmarks/bench_scan.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _data  # noqa: E402

TARGET_SPEEDUP = 1.5

# Every attribute medviewer.io.scan indexes for a single-frame image (scan.py: _instance_from_header + _insert).
ATTRIBUTES = (
    "PatientID", "PatientName", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyDescription", "AccessionNumber", "StudyID",
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "SeriesDate", "BodyPartExamined", "Manufacturer",
    "SOPInstanceUID", "SOPClassUID", "Modality", "InstanceNumber", "AcquisitionNumber", "EchoNumbers",
    "TemporalPositionIdentifier", "TriggerTime", "GantryDetectorTilt", "ImageType", "FrameOfReferenceUID",
    "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "ImagerPixelSpacing", "SliceThickness",
    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "PhotometricInterpretation",
    "BitsAllocated", "BitsStored", "PixelRepresentation",
    "RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth", "VOILUTFunction",
)


def _attrs(ds) -> tuple:
    g = ds.get
    return tuple(g(kw) for kw in ATTRIBUTES)


def run_medviewer(folder: str, files: list[str]):
    from medviewer.io import scan

    return scan(folder)


def run_plain(folder: str, files: list[str]):
    import pydicom

    out = []
    for f in files:
        ds = pydicom.dcmread(f)
        out.append(_attrs(ds))
    return out


def run_bare(folder: str, files: list[str]):
    import pydicom

    for f in files:
        ds = pydicom.dcmread(f)  # noqa: F841 - parse only, no attribute access
    return len(files)


def run_header_loop(folder: str, files: list[str]):
    import pydicom

    out = []
    for f in files:
        ds = pydicom.dcmread(f, stop_before_pixels=True)
        out.append(_attrs(ds))
    return out


def run_sitk(folder: str, files: list[str]):
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(folder)
    return {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(folder, sid) for sid in ids}


METHODS = [
    # key, label, function, role
    ("medviewer", "medviewer.io.scan(folder)", run_medviewer, "measured"),
    ("plain", "plain loop: dcmread + attributes", run_plain, "REFERENCE (target)"),
    ("bare", "bare dcmread loop (no attributes)", run_bare, "transparency"),
    ("header", "dcmread(stop_before_pixels) + attrs", run_header_loop, "informational"),
    ("sitk", "SimpleITK GDCM series IDs+file names", run_sitk, "reference"),
]


def _check(results: dict, n_files: int) -> list[str]:
    """Sanity checks that every method did the whole job (printed, never raised)."""
    lines = []
    idx = results.get("medviewer")
    if idx is not None:
        series = [s for _, _, s in idx.iter_series()]
        n_inst = sum(len(s.instances) for s in series)
        lines.append(f"medviewer indexed {n_inst} instances in {len(series)} series "
                     f"({sum(len(p.studies) for p in idx.patients.values())} studies), {len(idx.skipped)} skipped")
    if results.get("plain") is not None:
        lines.append(f"plain loop read {len(results['plain'])} files x {len(ATTRIBUTES)} attributes")
    sitk_res = results.get("sitk")
    if sitk_res is not None:
        lines.append(f"SimpleITK found {len(sitk_res)} series with "
                     f"{sorted(len(v) for v in sitk_res.values())} files")
    return lines


def run(repeats: int = 7) -> dict:
    """Run the benchmark, print its table, return a summary dict for run_all."""
    folder = str(_data.scan_dataset())
    files = _data.list_files(Path(folder))
    n = len(files)
    nbytes = _data.warm_page_cache(files)

    timings: dict[str, list[float]] = {k: [] for k, *_ in METHODS}
    results: dict[str, object] = {}
    for key, _, fn, _ in METHODS:  # warm-up: imports, lazy dictionaries, page cache
        results[key] = fn(folder, files)
    for _ in range(repeats):
        for key, _, fn, _ in METHODS:
            t0 = time.perf_counter()
            fn(folder, files)
            timings[key].append(time.perf_counter() - t0)

    med = {k: statistics.median(v) for k, v in timings.items()}
    best = {k: min(v) for k, v in timings.items()}
    print(f"\n== (a) Scan rate: {n} files ({nbytes / 1e6:.0f} MB) in {folder}")
    print(f"   OS page cache WARM (every file read once before timing); 1 untimed warm-up run per method, then "
          f"{repeats} interleaved runs.")
    print("   Figure used for ratios: MEDIAN of the runs (best shown for reference). Single thread everywhere.")
    hdr = (f"   {'method':<38} {'median s':>9} {'best s':>8} {'files/s':>9} {'best f/s':>9} "
           f"{'medviewer speed-up':>19}  role")
    print(hdr)
    print("   " + "-" * (len(hdr) - 3))
    for key, label, _, role in METHODS:
        ratio = med[key] / med["medviewer"]
        rtxt = "1.00x (itself)" if key == "medviewer" else f"{ratio:.2f}x"
        print(f"   {label:<38} {med[key]:>9.3f} {best[key]:>8.3f} {n / med[key]:>9.0f} {n / best[key]:>9.0f} "
              f"{rtxt:>19}  {role}")
    for line in _check(results, n):
        print(f"   check: {line}")
    speedup = med["plain"] / med["medviewer"]
    speedup_best = best["plain"] / best["medviewer"]
    verdict = "PASS" if speedup >= TARGET_SPEEDUP else "MISS"
    print(f"   TARGET scan files/s >= {TARGET_SPEEDUP:.1f}x plain loop: {speedup:.2f}x (median; best-vs-best "
          f"{speedup_best:.2f}x)  -> {verdict}")
    print(f"   vs SimpleITK GDCM lookup: medviewer is {med['sitk'] / med['medviewer']:.2f}x faster (median) "
          f"[no target]")
    return {
        "files": n,
        "median": med,
        "best": best,
        "speedup_vs_plain": speedup,
        "speedup_vs_sitk": med["sitk"] / med["medviewer"],
        "verdict": verdict,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per method (default 7)")
    ap.add_argument("--json-out", help="also write the summary as JSON to this file (used by run_all.py)")
    ap.add_argument("--no-machine", action="store_true", help="do not print the machine lines")
    args = ap.parse_args(argv)
    if not args.no_machine:
        for line in _data.machine_lines():
            print(line)
    summary = run(args.repeats)
    if args.json_out:
        with open(args.json_out, "w") as fp:
            json.dump(summary, fp)


if __name__ == "__main__":
    main()
