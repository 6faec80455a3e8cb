"""PACS retrieval speed: the 140-slice Philips CT (512 x 512, 72 MB) from a local Orthanc (started here on free
loopback ports), retrieved by medviewer's C-GET, C-MOVE and WADO-RS and by DCMTK's ``getscu`` and ``movescu`` on the
same server in the same run. Images/s per method (median of ``--repeats`` runs, each into an empty folder) and the
ratio to DCMTK (target: medviewer no slower, ratio >= 1.0). Orthanc's own cost is in every figure.

    .venv/bin/python benchmarks/bench_pacs.py [--repeats 3]

Figures, not tests: PASS/MISS is printed, nothing asserts.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHILIPS = ROOT.parent / "shared" / "data" / "ct-phantom-philips"


def _dicom_files(folder: Path) -> list[Path]:
    import pydicom

    out = []
    for p in sorted(folder.iterdir()):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - DIRFILE, LICENSE...
            continue
        if "PixelData" in ds or "SOPClassUID" in ds and "Image" in str(ds.SOPClassUID.name):
            out.append(p)
    return out


def _count(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def _timed(fn, repeats: int, work: Path, expect: int) -> tuple[float, int]:  # noqa: ANN001
    """(median seconds, files of the last run) of ``fn(dest)`` over fresh destination folders."""
    times, got = [], 0
    for i in range(repeats):
        dest = work / f"run{time.monotonic_ns()}_{i}"
        dest.mkdir()
        t = time.perf_counter()
        fn(dest)
        times.append(time.perf_counter() - t)
        got = _count(dest)
        shutil.rmtree(dest)
        if got != expect:
            print(f"  warning: {got} files instead of {expect}")
    return statistics.median(times), got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    from medviewer.net import dicomweb, dimse
    from tests.orthanc_server import LocalOrthanc, available, free_port

    if not available():
        print("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)")
        return 1
    files = _dicom_files(PHILIPS)
    n = len(files)
    import pydicom

    study = str(pydicom.dcmread(files[0], stop_before_pixels=True).StudyInstanceUID)
    getscu, movescu = shutil.which("getscu"), shutil.which("movescu")
    print(f"bench_pacs: {n} images of {PHILIPS.name} ({sum(f.stat().st_size for f in files) / 1e6:.0f} MB), "
          f"{platform.processor() or platform.machine()}, {args.repeats} repeats, loopback Orthanc")
    work = Path(tempfile.mkdtemp(prefix="bench_pacs_"))
    scp_port = free_port()
    results: dict[str, float] = {}
    with LocalOrthanc(work / "orthanc", our_port=scp_port) as pacs:
        pacs.upload(files)
        node = pacs.node(timeout_s=120)
        web = pacs.web_node(timeout_s=120)
        common = ["-aet", "MEDVIEWER", "-aec", pacs.aet, "127.0.0.1", str(pacs.dicom_port),
                  "-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study}"]

        def med_get(dest: Path) -> None:
            r = dimse.get(node, study, dest)
            assert len(r.files) == n, r

        def med_move(dest: Path) -> None:
            with dimse.StorageSCP(dest, "MEDVIEWER", port=scp_port) as scp:
                r = dimse.move(node, study, scp)
            assert len(r.files) == n, r

        def med_wado(dest: Path) -> None:
            r = dicomweb.get(web, study, dest)
            assert len(r.files) == n, r

        def dcmtk_get(dest: Path) -> None:
            subprocess.run([getscu, *common, "-od", str(dest)], check=True, capture_output=True)

        def dcmtk_move(dest: Path) -> None:
            subprocess.run([movescu, *common, "-aem", "MEDVIEWER", "--port", str(scp_port), "-od", str(dest)],
                           check=True, capture_output=True)

        plan = [("medviewer C-GET", med_get), ("DCMTK getscu", dcmtk_get if getscu else None),
                ("medviewer C-MOVE", med_move), ("DCMTK movescu", dcmtk_move if movescu else None),
                ("medviewer WADO-RS", med_wado)]
        for name, fn in plan:
            if fn is None:
                print(f"  {name:20s} not installed (apt-get install dcmtk)")
                continue
            seconds, got = _timed(fn, args.repeats, work, n)
            results[name] = n / seconds
            print(f"  {name:20s} {seconds:6.2f} s  {n / seconds:7.1f} images/s  ({got} files)")
    shutil.rmtree(work, ignore_errors=True)
    print("ratios (medviewer / DCMTK images/s; target >= 1.0, i.e. no slower):")
    for ours, ref in (("medviewer C-GET", "DCMTK getscu"), ("medviewer C-MOVE", "DCMTK movescu"),
                      ("medviewer WADO-RS", "DCMTK getscu")):
        if ours in results and ref in results:
            ratio = results[ours] / results[ref]
            print(f"  {ours:20s} / {ref:14s} = {ratio:4.2f}  {'PASS' if ratio >= 1.0 else 'MISS'}"
                  + ("  (different protocol: for scale)" if "WADO" in ours else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
