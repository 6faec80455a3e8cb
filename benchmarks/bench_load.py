"""Benchmark: loading a CT series into a Hounsfield-unit volume, medviewer against SimpleITK.

Cases: the 140-slice Philips series (source folder, read only) and ``load560``, one contiguous 560-slice series
made from it (see ``_data.py``). 512x512 slices, int16 output (RescaleSlope 1, RescaleIntercept -1024).

medviewer   ``idx = scan(folder); stack = build_stacks(series)[0]; vol = load_volume(stack)``. Only
            ``load_volume`` is timed for the ratio; scan + build_stacks are reported on their own line.
            ``load_volume`` decodes with its default thread count (min(cpus, 8)).
SimpleITK   ``ImageSeriesReader`` with GDCMImageIO, ``SetFileNames(files); Execute()``, with ``files`` the paths of
            ``stack.slices`` in the same order (so both volumes have the same slice order).

Every measurement runs in a FRESH subprocess (``--worker``), so that one measurement's heap, caches and
peak-RSS high-water mark cannot leak into another:

* time   1 untimed warm-up load, then ``--repeats`` timed loads; the MEDIAN is the figure, best shown too.
         Target: median time medviewer / SimpleITK <= 1.0.
* memory one load per process, nothing else after the setup (scan/build_stacks, then gc + malloc_trim):
  - tracemalloc peak during ``load_volume`` minus the traced memory just before it. numpy registers its data
    buffers with tracemalloc, so the output array and every transient decode buffer are counted. THIS is the
    figure compared to the target: peak / final volume bytes <= 1.5.
  - ru_maxrss after the load minus the process RSS just before it (cross-check; includes allocator slack,
    thread stacks, tracemalloc's own bookkeeping and library pages first touched during the load). Exact only
    when the load raised ru_maxrss; otherwise it is an upper bound and is flagged. Caveat: on Linux ru_maxrss
    also keeps the parent's high-water mark across fork/exec, so workers must be spawned from a small parent
    (run_all.py runs the scan benchmark in its own subprocess for that reason).
  - VmHWM (from /proc/self/status) after the load minus RSS before it, with VmHWM reset just before the load
    (``/proc/self/clear_refs`` = 5): the same cross-check, immune to the inherited high-water mark.
  SimpleITK allocates in C++, invisible to tracemalloc: only its RSS deltas are shown (for comparison).
* check  both loads in one process, ``np.array_equal(vol.array, sitk.GetArrayFromImage(img))`` and dtypes.

Not a test: it prints PASS/MISS and never fails.

    .venv/bin/python benchmarks/bench_load.py [--repeats 7] [--cases 140,560]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _data  # noqa: E402

TARGET_TIME_RATIO = 1.0
TARGET_MEM_RATIO = 1.5
PAGE = os.sysconf("SC_PAGE_SIZE")


# --------------------------------------------------------------------------------------------------------------
# Worker side (runs in a fresh subprocess)
# --------------------------------------------------------------------------------------------------------------


def _case_folder(case: str) -> str:
    return str(_data.series140_folder() if case == "140" else _data.load560_dataset())


def _setup(case: str):
    """scan + build_stacks (timed separately); returns (stack, file list in stack order, timings)."""
    from medviewer.imaging.stacks import build_stacks
    from medviewer.io import scan

    t0 = time.perf_counter()
    idx = scan(_case_folder(case))
    t1 = time.perf_counter()
    series = [s for _, _, s in idx.iter_series() if s.image_instances]
    if len(series) != 1:
        raise SystemExit(f"expected one image series in case {case}, found {len(series)}")
    stacks = build_stacks(series[0])
    t2 = time.perf_counter()
    stack = stacks[0]
    files = [ref.instance.path for ref in stack.slices]
    return stack, files, {"scan_s": t1 - t0, "stacks_s": t2 - t1, "n_stacks": len(stacks),
                          "n_slices": stack.n_slices, "warnings": list(stack.warnings)}


def _sitk_read(files: list[str]):
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetImageIO("GDCMImageIO")
    reader.SetFileNames(files)
    return reader.Execute()


def _rss_now() -> int:
    with open("/proc/self/statm") as fp:
        return int(fp.read().split()[1]) * PAGE


def _maxrss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _vm_hwm() -> int | None:
    """This process's own peak RSS (VmHWM, bytes), or None where /proc lacks it."""
    try:
        with open("/proc/self/status") as fp:
            for line in fp:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). ru_maxrss cannot be reset: on Linux it also keeps the
    high-water mark inherited from the parent at fork/exec, hence this second, resettable cross-check."""
    try:
        with open("/proc/self/clear_refs", "w") as fp:
            fp.write("5")
        return True
    except OSError:
        return False


def _rss_fields(rss0: int, maxrss0: int, hwm_reset: bool) -> dict:
    maxrss1 = _maxrss()
    hwm1 = _vm_hwm() if hwm_reset else None
    return {"rss_before": rss0, "maxrss_before": maxrss0, "maxrss_after": maxrss1,
            "rss_delta": maxrss1 - rss0,
            # The delta is exact only if the load raised the high-water mark; otherwise it is an upper bound.
            "rss_delta_exact": maxrss1 > maxrss0,
            "hwm_delta": (hwm1 - rss0) if hwm1 is not None else None}


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def worker(kind: str, case: str, repeats: int) -> dict:
    from medviewer.imaging.volume import load_volume

    stack, files, info = _setup(case)
    out: dict = {"kind": kind, "case": case, **info}

    if kind == "mv-time":
        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            vol = load_volume(stack)
            dt = time.perf_counter() - t0
            if i:
                times.append(dt)
            out.update(nbytes=vol.nbytes, dtype=str(vol.array.dtype), shape=list(vol.shape),
                       slice_errors=len(vol.slice_errors))
            del vol
        out["times"] = times
    elif kind == "sitk-time":
        import SimpleITK as sitk

        times = []
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            img = _sitk_read(files)
            dt = time.perf_counter() - t0
            if i:
                times.append(dt)
            out.update(dtype=str(sitk.GetArrayViewFromImage(img).dtype), size=list(img.GetSize()),
                       pixel_type=img.GetPixelIDTypeAsString())
            del img
        out["times"] = times
    elif kind == "mv-mem":
        import tracemalloc

        _trim()
        tracemalloc.start()
        traced0 = tracemalloc.get_traced_memory()[0]
        rss0, maxrss0, hwm_reset = _rss_now(), _maxrss(), _reset_hwm()
        tracemalloc.reset_peak()
        vol = load_volume(stack)
        traced1, peak = tracemalloc.get_traced_memory()
        out.update(_rss_fields(rss0, maxrss0, hwm_reset))
        tracemalloc.stop()
        out.update(nbytes=vol.nbytes, traced_peak=peak - traced0, traced_after=traced1 - traced0)
    elif kind == "sitk-mem":
        import SimpleITK as sitk

        _trim()
        rss0, maxrss0, hwm_reset = _rss_now(), _maxrss(), _reset_hwm()
        img = _sitk_read(files)
        out.update(_rss_fields(rss0, maxrss0, hwm_reset))
        out.update(nbytes=int(sitk.GetArrayViewFromImage(img).nbytes))
    elif kind == "check":
        import numpy as np
        import SimpleITK as sitk

        vol = load_volume(stack)
        ref = sitk.GetArrayFromImage(_sitk_read(files))
        out.update(equal=bool(np.array_equal(vol.array, ref)), mv_dtype=str(vol.array.dtype),
                   sitk_dtype=str(ref.dtype), mv_shape=list(vol.shape), sitk_shape=list(ref.shape),
                   max_abs_diff=(int(np.max(np.abs(vol.array.astype(np.int64) - ref.astype(np.int64))))
                                 if vol.array.shape == ref.shape else None),
                   hu_min=int(vol.array.min()), hu_max=int(vol.array.max()))
    else:
        raise SystemExit(f"unknown worker kind {kind}")
    return out


# --------------------------------------------------------------------------------------------------------------
# Parent side
# --------------------------------------------------------------------------------------------------------------


def _spawn(kind: str, case: str, repeats: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind, "--case", case,
           "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(HERE.parent))
    if proc.returncode != 0:
        return {"error": f"worker {kind} {case} failed (rc {proc.returncode}): {proc.stderr.strip()[-2000:]}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return {"error": f"worker {kind} {case} printed no result: {proc.stdout[-500:]} {proc.stderr[-1500:]}"}


def _mb(n: float) -> str:
    return f"{n / 2**20:.1f} MiB"


def run_case(case: str, repeats: int) -> dict:
    folder = _case_folder(case)
    _data.warm_page_cache(_data.list_files(Path(folder)))
    res = {k: _spawn(k, case, repeats) for k in ("mv-time", "sitk-time", "mv-mem", "sitk-mem", "check")}
    print(f"\n== (b) Load into HU volume: {case}-slice series ({folder})")
    for k, r in res.items():
        if "error" in r:
            print(f"   ERROR {r['error']}")
    if any("error" in r for r in res.values()):
        return {"case": case, "error": True}
    mv, sk, mm, sm, ck = (res[k] for k in ("mv-time", "sitk-time", "mv-mem", "sitk-mem", "check"))
    nbytes = mv["nbytes"]
    mv_med, sk_med = statistics.median(mv["times"]), statistics.median(sk["times"])
    mv_best, sk_best = min(mv["times"]), min(sk["times"])
    print(f"   volume {mv['shape']} {mv['dtype']} = {_mb(nbytes)}; SimpleITK size {sk['size']} {sk['dtype']}; "
          f"{mv['n_slices']} slices in {mv['n_stacks']} stack(s); page cache WARM; "
          f"load_volume threads = min(cpus, 8) = {min(os.cpu_count() or 1, 8)}")
    if mv["warnings"]:
        print(f"   stack warnings: {mv['warnings']}")
    print(f"   medviewer scan(folder) {mv['scan_s']:.3f} s + build_stacks {mv['stacks_s'] * 1000:.1f} ms "
          f"(not in the ratio; first run of the process)")
    print(f"   {'time (1 warm-up + %d runs, fresh process each)' % repeats:<48} {'median s':>9} {'best s':>8} "
          f"{'slices/s':>9}")
    print(f"   {'medviewer load_volume(stack)':<48} {mv_med:>9.3f} {mv_best:>8.3f} {mv['n_slices'] / mv_med:>9.0f}")
    print(f"   {'SimpleITK ImageSeriesReader.Execute()':<48} {sk_med:>9.3f} {sk_best:>8.3f} "
          f"{mv['n_slices'] / sk_med:>9.0f}")
    t_ratio = mv_med / sk_med
    t_verdict = "PASS" if t_ratio <= TARGET_TIME_RATIO else "MISS"
    print(f"   TARGET time medviewer/SimpleITK <= {TARGET_TIME_RATIO:.1f}: {t_ratio:.2f} (median; best-vs-best "
          f"{mv_best / sk_best:.2f})  -> {t_verdict}")
    m_ratio = mm["traced_peak"] / nbytes
    m_verdict = "PASS" if m_ratio <= TARGET_MEM_RATIO else "MISS"
    print(f"   memory (one load in a fresh process)             {'peak':>12} {'x volume':>9}")
    print(f"   {'medviewer tracemalloc peak during load_volume':<48} {_mb(mm['traced_peak']):>12} {m_ratio:>8.2f}x"
          f"   <- compared to target (still held after: {_mb(mm['traced_after'])})")
    for who, r, vb in (("medviewer", mm, nbytes), ("SimpleITK", sm, sm["nbytes"])):
        note = ("" if r["rss_delta_exact"] else
                f"   UPPER BOUND: high-water mark before the load ({_mb(r['maxrss_before'])}) was not exceeded")
        print(f"   {who + ' ru_maxrss delta (cross-check)':<48} {_mb(r['rss_delta']):>12} "
              f"{r['rss_delta'] / vb:>8.2f}x{note}")
        if r["hwm_delta"] is not None:
            print(f"   {who + ' VmHWM delta (peak reset before load)':<48} {_mb(r['hwm_delta']):>12} "
                  f"{r['hwm_delta'] / vb:>8.2f}x")
    print("   (RSS deltas: peak RSS during the load minus RSS just before it; they include allocator slack, "
          "thread stacks and library pages first touched. SimpleITK allocates in C++, invisible to tracemalloc.)")
    print(f"   TARGET peak memory (tracemalloc) <= {TARGET_MEM_RATIO:.1f}x volume bytes: {m_ratio:.2f}x  -> "
          f"{m_verdict}")
    eq = ck["equal"]
    print(f"   CHECK np.array_equal(medviewer, SimpleITK) = {eq}  (dtypes {ck['mv_dtype']} / {ck['sitk_dtype']}, "
          f"shapes {ck['mv_shape']} / {ck['sitk_shape']}, max |diff| {ck['max_abs_diff']}, "
          f"HU range {ck['hu_min']}..{ck['hu_max']})")
    return {
        "case": case, "t_ratio": t_ratio, "t_verdict": t_verdict, "m_ratio": m_ratio, "m_verdict": m_verdict,
        "rss_ratio": mm["rss_delta"] / nbytes, "sitk_rss_ratio": sm["rss_delta"] / sm["nbytes"],
        "rss_exact": mm["rss_delta_exact"] and sm["rss_delta_exact"],
        "equal": eq, "mv_median": mv_med, "sitk_median": sk_med, "scan_s": mv["scan_s"],
    }


def run(repeats: int = 7, cases: tuple[str, ...] = ("140", "560")) -> list[dict]:
    _data.scan_dataset()  # build derived data before any timing
    if "560" in cases:
        _data.load560_dataset()
    return [run_case(c, repeats) for c in cases]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="timed loads per method and case (default 7)")
    ap.add_argument("--cases", default="140,560", help="comma-separated: 140, 560 (default both)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.case, args.repeats)))
        return
    for line in _data.machine_lines():
        print(line)
    run(args.repeats, tuple(c.strip() for c in args.cases.split(",") if c.strip()))


if __name__ == "__main__":
    main()
