"""Run every medviewer benchmark and print all figures, then one summary table (medviewer vs reference, ratio,
target, PASS/MISS). Not a test: exit status is 0 whatever the figures (non-zero only if a benchmark crashed).

    .venv/bin/python benchmarks/run_all.py [--repeats 7]

About 2 to 3 minutes on 2 cores once the derived data exist (the GUI benchmark, offscreen Qt, adds ~25 s, the
case-store benchmark ~20-45 s and ~0.9 GB of temporary databases; the first run builds the data in ~10 s into
benchmarks/_work/, or $MEDVIEWER_BENCH_WORK).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import _data  # noqa: E402
import bench_load  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per method (default 7)")
    args = ap.parse_args(argv)

    t_start = time.perf_counter()
    print("medviewer benchmarks (figures are warm page cache; ratios use the MEDIAN of the timed runs)")
    for line in _data.machine_lines():
        print(line)
    print(f"data      : source {_data.SOURCE} (read only), derived in {_data.WORK}")
    _data.scan_dataset()
    _data.load560_dataset()

    # The scan benchmark runs in its own process: it grows this process's heap, and on Linux the load workers
    # spawned below would inherit that high-water mark in their ru_maxrss (see bench_load.py).
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "scan.json")
        proc = subprocess.run([sys.executable, str(HERE / "bench_scan.py"), "--repeats", str(args.repeats),
                               "--no-machine", "--json-out", out], cwd=str(HERE.parent))
        if proc.returncode != 0 or not os.path.exists(out):
            sys.exit(f"bench_scan.py failed (rc {proc.returncode})")
        with open(out) as fp:
            scan_res = json.load(fp)
    load_res = bench_load.run(args.repeats)

    # The GUI benchmark (c) runs in its own process too: offscreen Qt, and its own heap and threads.
    gui_res, gui_error = None, ""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "gui.json")
        proc = subprocess.run([sys.executable, str(HERE / "bench_gui.py"), "--no-machine", "--json-out", out],
                              cwd=str(HERE.parent), env=dict(os.environ, QT_QPA_PLATFORM="offscreen"))
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as fp:
                gui_res = json.load(fp)
        else:
            gui_error = f"bench_gui.py failed (rc {proc.returncode})"
            print(gui_error, file=sys.stderr)

    # The case-store benchmark (d) runs in its own process as well: its own heap, temporary databases.
    store_res, store_error = None, ""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "store.json")
        proc = subprocess.run([sys.executable, str(HERE / "bench_store.py"), "--no-machine", "--json-out", out],
                              cwd=str(HERE.parent))
        if proc.returncode == 0 and os.path.exists(out):
            with open(out) as fp:
                store_res = json.load(fp)
        else:
            store_error = f"bench_store.py failed (rc {proc.returncode})"
            print(store_error, file=sys.stderr)

    rows = []
    m = scan_res["median"]
    n = scan_res["files"]
    rows.append(("(a) scan 560 files, files/s", f"{n / m['medviewer']:.0f}", "plain dcmread loop",
                 f"{n / m['plain']:.0f}", f"{scan_res['speedup_vs_plain']:.2f}x", ">= 1.50x", scan_res["verdict"]))
    rows.append(("    (transparency)", "", "bare dcmread loop", f"{n / m['bare']:.0f}",
                 f"{m['bare'] / m['medviewer']:.2f}x", "-", ""))
    rows.append(("    (informational)", "", "stop_before_pixels+attrs", f"{n / m['header']:.0f}",
                 f"{m['header'] / m['medviewer']:.2f}x", "-", ""))
    rows.append(("    (reference)", "", "SimpleITK GDCM lookup", f"{n / m['sitk']:.0f}",
                 f"{scan_res['speedup_vs_sitk']:.2f}x", "-", ""))
    for r in load_res:
        c = r["case"]
        if r.get("error"):
            rows.append((f"(b) load {c} slices", "ERROR", "", "", "", "", "ERROR"))
            continue
        rows.append((f"(b) load {c} slices, time s", f"{r['mv_median']:.3f}", "SimpleITK Execute()",
                     f"{r['sitk_median']:.3f}", f"{r['t_ratio']:.2f}", "<= 1.00", r["t_verdict"]))
        rows.append((f"    {c}: peak mem / volume", f"{r['m_ratio']:.2f}x", "(tracemalloc peak)", "",
                     f"{r['m_ratio']:.2f}x", "<= 1.50x", r["m_verdict"]))
        rows.append((f"    {c}: RSS delta / volume", f"{r['rss_ratio']:.2f}x", "SimpleITK RSS delta",
                     f"{r['sitk_rss_ratio']:.2f}x", f"{r['rss_ratio'] / r['sitk_rss_ratio']:.2f}", "-",
                     "cross-check" if r["rss_exact"] else "upper bnd"))
        rows.append((f"    {c}: equal to SimpleITK", str(r["equal"]), "np.array_equal", "", "", "True",
                     "OK" if r["equal"] else "DIFFERENT"))

    if gui_res is None:
        rows.append(("(c) GUI", "ERROR", gui_error, "", "", "", "ERROR"))
    else:
        sl, st, co = gui_res["slice"], gui_res["stall"], gui_res["cold"]
        s = sl["set_slice"]
        rows.append(("(c1) slice change->painted ms", f"{s['median']:.2f}", "60 Hz frame budget", f"{1000 / 60:.1f}",
                     f"{s['median'] / (1000 / 60):.2f}", "< 16 ms", sl["verdict"]))
        rows.append(("     p95 / key / wheel median", f"{s['p95']:.2f}", "key, wheel event median",
                     f"{sl['key']['median']:.1f}/{sl['wheel']['median']:.1f}", "", "-", ""))
        rows.append(("(c2) GUI stall max ms, 560 sl.", f"{st['max']:.1f}", "target", "50",
                     f"{st['max'] / 50:.2f}", "<= 50 ms", st["verdict"]))
        rows.append(("     p99 lateness ms", f"{max(r['p99'] for r in st['rounds']):.1f}",
                     "(worst of the rounds)", "", "", "-", ""))
        first = [r["first_paint_s"] for r in st["rounds"] if r["first_paint_s"] is not None]
        rows.append(("     first image / loaded, s", f"{statistics.median(first):.2f}" if first else "-",
                     "load complete (median)", f"{statistics.median(r['loaded_s'] for r in st['rounds']):.2f}",
                     "", "-", ""))
        floor = co["median"]["import PySide6.QtWidgets"]
        rows.append(("(c3) cold start to shown, s", f"{co['median']['medviewer']:.3f}", "import PySide6.QtWidgets",
                     f"{floor:.3f}", f"{co['median']['medviewer'] / floor:.1f}x", "< 2 s", co["verdict"]))
        loads = [x for x in [sl.get("other_load"), co.get("other_load"), *(r.get("other_load") for r in st["rounds"])]
                 if x is not None]
        if loads:
            rows.append(("     other processes, cores", f"{max(loads):.2f}", "(max over (c) parts)", "", "", "~0",
                         "BUSY" if max(loads) > 0.25 else ""))
        heavy = ",".join(co["heavy_modules"]) or "none"
        rows.append(("     torch/transformers loaded", heavy, "at window shown", "", "", "none",
                     "OK" if not co["heavy_modules"] else "MISS"))

    if store_res is None:
        rows.append(("(d) case store", "ERROR", store_error, "", "", "", "ERROR"))
    else:
        for name, r in store_res["writes"].items():
            ratio_target = "-" if name == "add_ai_result" else "<= 3.00x"
            rows.append((f"(d1) {name} ms", f"{r['median']:.2f}", "raw INSERT+COMMIT", f"{r['raw_median']:.3f}",
                         f"{r['ratio']:.1f}x", ratio_target, r["ratio_verdict"]))
            rows.append(("     p95 ms", f"{r['p95']:.2f}", "target", "50", f"{r['p95'] / 50:.2f}", "< 50 ms",
                         r["p95_verdict"]))
        rows.append(("     4 KB write+fsync, ms", f"{store_res['fsync_ms']:.3f}", f"({store_res['fs']}, temp folder)",
                     "", "", "-", ""))
        rd = store_res["reads"]
        rows.append(("(d2) case open reads ms, 2000", f"{rd['median']:.2f}", "raw sqlite3, 3 SELECTs",
                     f"{rd['raw_median']:.3f}", f"{rd['ratio']:.0f}x", "< 10 ms", rd["verdict"]))
        for w in store_res["worklist"]:
            rows.append((f"(d3) worklist {w['cases']} cases, s", f"{w['median']:.3f}", "SELECT * FROM cases",
                         f"{w['raw_median']:.4f}", f"{w['ratio']:.0f}x", "< 1.0 s" if w["verdict"] else "-",
                         w["verdict"]))

    print("\n== Summary (ratios: (a) speed-up = reference time / medviewer time; (b) time = medviewer / SimpleITK; "
          "(c) medviewer / reference; (d) medviewer / raw sqlite3)")
    head = ("figure", "medviewer", "reference", "ref value", "ratio", "target", "result")
    widths = [30, 10, 25, 10, 7, 9, 11]
    print("   " + " ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("   " + "-" * (sum(widths) + len(widths) - 1))
    for row in rows:
        print("   " + " ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    misses = [r for r in rows if r[6] in ("MISS", "ERROR", "DIFFERENT")]
    print(f"\n   {sum(r[6] == 'PASS' for r in rows)} PASS, {len(misses)} MISS/ERROR; "
          f"total wall time {time.perf_counter() - t_start:.0f} s")
    if any(r[6] == "ERROR" for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
