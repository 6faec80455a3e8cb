"""Archive re-scoring throughput (`medviewer rescore`): studies/s over a synthetic archive of real films (each study
one Kermany chest film wrapped as a CR the way scanners write it, plus a real Open-i report as its note; see
tests/archive_factory.py), written to a PostgreSQL case store started here (or SQLite with --db sqlite).

Side by side, each on a fresh copy of the same registered archive: the GUI's per-case loop
(`medviewer.store.rescore.rescore`), `rescore_archive` in-process, and on a dask LocalCluster of 1, 2 ... N workers.
Then a per-stage breakdown on 50 cases (DICOM read, image model with Grad-CAM, notes classifier, DB writes) that
says where the time goes, and the extrapolation to 100,000 studies on a 20-node cluster.

    .venv/bin/python benchmarks/bench_rescore.py [--studies 2000] [--workers 1 2] [--db postgresql|sqlite]

Figures, not tests: nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _fresh_store(kind: str, pg, base: str, folder: Path, name: str):  # noqa: ANN001, ANN202
    """A new case store holding a copy of the registered archive."""
    import shutil

    from medviewer.store import CaseStore

    if kind == "sqlite":
        path = folder / f"{name}.sqlite3"
        shutil.copy(base, path)
        return CaseStore(f"sqlite:///{path}")
    import psycopg

    with psycopg.connect(host="127.0.0.1", port=pg.port, user="postgres", dbname="postgres", autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "base"')
    return CaseStore(pg.url(name))


def _stages(store, uids: list[str]) -> dict[str, float]:  # noqa: ANN001
    """Median ms per case of each stage, in this process (torch with one thread, like one dask worker)."""
    import torch

    from medviewer.inference.frames import read_frame
    from medviewer.inference.scorer import ImageModel
    from medviewer.notes.model import NoteClassifier

    torch.set_num_threads(1)
    model = ImageModel.load("pneumonia-chest224")
    notes = NoteClassifier.load(threads=1)
    t: dict[str, list[float]] = {"DICOM read": [], "image model + Grad-CAM": [], "store AI result": [],
                                 "notes classifier": [], "store note result": []}
    for uid in uids:
        img = store.case_images(uid)[0]
        a = time.perf_counter()
        frame = read_frame(img["path"], 0)
        b = time.perf_counter()
        res = model.score_frame(frame, explain="gradcam")
        c = time.perf_counter()
        store.add_ai_result(uid, res)
        d = time.perf_counter()
        text = store.note_versions(uid)[-1][1]
        findings = notes.classify([text])[0].to_dict()["findings"]
        e = time.perf_counter()
        store.save_findings(uid, findings, {}, "notes-minilm", "x", start_work=False)
        f = time.perf_counter()
        for k, v in zip(t, (b - a, c - b, d - c, e - d, f - e)):
            t[k].append(v * 1000)
    return {k: statistics.median(v) for k, v in t.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--studies", type=int, default=2000)
    ap.add_argument("--workers", type=int, nargs="+", default=None, help="LocalCluster sizes (default 1 .. cores)")
    ap.add_argument("--db", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--archive", default=os.path.join(tempfile.gettempdir(), "medviewer-bench-archive"),
                    help="where the synthetic DICOM archive is written (reused between runs)")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    sizes = args.workers or list(range(1, cores + 1))

    from medviewer.store import CaseStore
    from medviewer.store.archive import rescore_archive
    from medviewer.store.rescore import rescore
    from tests.archive_factory import build_archive

    work = Path(tempfile.mkdtemp(prefix="bench_rescore_"))
    pg = None
    if args.db == "postgresql":
        from medviewer.store.localpg import LocalPostgres

        pg = LocalPostgres().start()
        base_url = pg.create_database("base")
        base = "base"
    else:
        base = str(work / "base.sqlite3")
        base_url = f"sqlite:///{base}"
    print(f"bench_rescore: {args.studies} studies (one real film + one real report each), {args.db} store, "
          f"{cores} cores ({platform.processor() or platform.machine()})")
    t = time.perf_counter()
    store = CaseStore(base_url)
    uids = build_archive(Path(args.archive), args.studies, store)
    store.close()
    print(f"  archive built and registered in {time.perf_counter() - t:.0f} s")

    rows: list[tuple[str, float]] = []
    try:
        s = _fresh_store(args.db, pg, base, work, "loop")
        t = time.perf_counter()
        rescore(s, uids, reason="benchmark")
        rows.append(("rescore() per-case loop (GUI path)", len(uids) / (time.perf_counter() - t)))
        s.close()
        print(f"  {rows[-1][0]:40s} {rows[-1][1]:6.1f} studies/s")
        s = _fresh_store(args.db, pg, base, work, "inproc")
        summary = rescore_archive(s, uids)
        rows.append(("rescore_archive in-process", summary.studies_per_s))
        print(f"  {rows[-1][0]:40s} {rows[-1][1]:6.1f} studies/s ({summary.n_failed} failed)")
        s.close()
        for n in sizes:
            s = _fresh_store(args.db, pg, base, work, f"dask{n}")
            summary = rescore_archive(s, uids, workers=n)
            rows.append((f"dask LocalCluster, {n} worker{'s' if n > 1 else ''}", summary.studies_per_s))
            print(f"  {rows[-1][0]:40s} {rows[-1][1]:6.1f} studies/s ({summary.n_failed} failed; includes "
                  "cluster start and model load)")
            s.close()
        s = _fresh_store(args.db, pg, base, work, "stages")
        stages = _stages(s, uids[:50])
        s.close()
    finally:
        if pg is not None:
            pg.stop()
    total = sum(stages.values())
    print("  per case, one thread, medians over 50 cases:")
    for k, v in stages.items():
        print(f"    {k:26s} {v:7.1f} ms  ({100 * v / total:4.1f} %)")
    best = max(r for _, r in rows)
    print(f"  speed-up, best / GUI per-case loop: {best / rows[0][1]:.2f}x on {cores} cores")
    rates = {int(name.split(", ")[1].split()[0]): r for name, r in rows if name.startswith("dask")}
    if 1 in rates and len(rates) > 1:
        n = max(rates)
        print(f"  dask scaling 1 -> {n} workers: {rates[n] / rates[1]:.2f}x ({100 * rates[n] / (n * rates[1]):.0f} % "
              "of linear)")
    per_worker = 1000.0 / total  # steady state, one core, no start-up
    workers = 20 * 16
    seconds = 100_000 / (per_worker * workers)
    db_writes_per_s = workers * per_worker * 2  # an AI result and a note result per study
    print(f"  extrapolation: one worker core does {per_worker:.1f} studies/s in steady state; 100,000 studies on "
          f"20 nodes x 16 cores = {workers} workers -> {seconds:.0f} s of compute if nothing else limited it; the "
          f"database would have to take {db_writes_per_s:.0f} committed result writes/s (one PostgreSQL server), "
          "and the files would have to be read at that rate: see benchmarks/README.md for where it really ends up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
