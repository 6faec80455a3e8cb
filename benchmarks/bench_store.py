"""Benchmark: the case store (``medviewer.store.cases.CaseStore``, SQLAlchemy 2 Core on SQLite, WAL,
synchronous=FULL), its write latency, the reads the Case dock does when a case opens, and ``worklist()``.

Every database lives in a fresh temporary folder (``tempfile``, or ``--dir``) and is deleted at the end.

(1) Write latency. ``save_text``, ``save_annotation`` (a new ``Annotation`` each time, the "annotation added"
    path) and ``add_ai_result`` (a ``ScoreResult`` with a 512x512 Grad-CAM-like heat map, so the PNG encoding is
    timed too) each run ``--n`` times (default 200) on one case, after 5 untimed warm-up calls.
    Reference: a raw stdlib ``sqlite3`` ``BEGIN IMMEDIATE; INSERT; COMMIT`` of the same payload (same text, same
    JSON strings, the same PNG bytes, encoded beforehand) into the same table, on a second database with the same
    schema and the same pragmas (WAL, synchronous=FULL, foreign keys). Store call and raw insert alternate, so
    slow phases of a shared machine hit both.
    Targets: median <= 3x the raw commit for save_text and save_annotation (the store also looks the case up,
    updates it and appends an events row, in the same transaction); p95 < 50 ms for all three (writes run on the
    store writer thread, but a flush on case change waits for them).
(2) Case-open reads on the GUI thread with 2000 cases in the store: ``get_case(uid)`` + ``annotations(uid)`` +
    ``radiologist_scores(uid)`` (what the Case dock reads) for ``--n`` random cases, median and p95.
    Reference (ratio only): the same three SELECTs with raw sqlite3. Target: median < 10 ms for the three.
(3) ``worklist()`` with 200, 2000 and 10000 cases (``--sizes``). Each case has 2 images x 2 AI results (history:
    a first scoring, then a re-score run; 10 % of the cases were re-scored with a second model), with a heat-map
    PNG (the same ~15 KB blob each, as ``add_ai_result`` stores; ``--no-blobs`` leaves it out), 3 note versions,
    1 note result, 1 radiologist score and 2 live annotations. No events rows (the worklist does not read them).
    The databases are populated with bulk INSERTs through the schema tables (``medviewer.store.schema``) in one
    transaction, NOT through the API (which would take minutes). ``worklist()`` and ``worklist(model)`` (what the
    agreement panel adds on each refresh) run once untimed, then ``--repeats`` times (default 5), alternating
    with the reference: a raw sqlite3 ``SELECT * FROM cases`` fetched into Python. Figures: median, ratio to the
    reference. Target: 10000 cases < 1.0 s.

The page cache is warm (each database was just written). Figures are medians; p95 is the nearest-rank value.

Not a test: it prints PASS/MISS and never fails.

    .venv/bin/python benchmarks/bench_store.py [--n 200] [--repeats 5] [--sizes 200,2000,10000] [--no-blobs]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _data  # noqa: E402
import numpy as np  # noqa: E402

TARGET_WRITE_RATIO = 3.0  # median store write / median raw INSERT+COMMIT (save_text, save_annotation)
TARGET_WRITE_P95_MS = 50.0
TARGET_READ_MS = 10.0  # get_case + annotations + radiologist_scores, median
TARGET_WORKLIST_S = 1.0  # worklist() with 10000 cases, median
WORKLIST_TARGET_N = 10000

MODEL, MODEL2 = "pneumonia-cnn", "pneumonia-vit"
SHA_OLD, SHA_NEW, SHA2 = "a" * 64, "b" * 64, "c" * 64
UID_ROOT = "1.2.826.0.1.3680043.8.498."
NOTE = ("CHEST PA AND LATERAL. Comparison: prior radiograph. Findings: the cardiomediastinal silhouette is within "
        "normal limits. There is patchy airspace opacity in the right lower lobe, new since the prior study, "
        "compatible with pneumonia in the appropriate clinical setting. No pleural effusion or pneumothorax. The "
        "visualized osseous structures are unremarkable. Degenerative changes of the thoracic spine. Impression: "
        "right lower lobe opacity, likely pneumonia; follow-up radiograph after treatment recommended to document "
        "resolution. ")
FINDINGS = [{"label": lab, "probability": p, "threshold": 0.5, "positive": p >= 0.5}
            for lab, p in (("pneumonia", 0.91), ("effusion", 0.08), ("pneumothorax", 0.02), ("cardiomegaly", 0.3),
                           ("nodule", 0.61))]


# ------------------------------------------------------------------------------------------------ helpers
def _ms(xs: list[float]) -> list[float]:
    return [x * 1000.0 for x in xs]


def _p95(xs: list[float]) -> float:
    s = sorted(xs)
    return s[max(0, math.ceil(0.95 * len(s)) - 1)]


def _raw_connect(path: Path) -> sqlite3.Connection:
    """stdlib sqlite3 with the store's pragmas (WAL, synchronous=FULL, foreign keys, busy timeout); autocommit,
    so BEGIN/COMMIT are explicit."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def gradcam_like(rng: np.random.Generator, size: int = 512, grid: int = 14) -> np.ndarray:
    """A (size, size) float32 map in [0, 1] shaped like the scorer's default Grad-CAM output: ReLU of a 14x14
    layer3 map, bilinear-upsampled, divided by its peak (medviewer.inference.attribution._normalise)."""
    from PIL import Image

    g = np.maximum(rng.normal(0.0, 1.0, (grid, grid)), 0.0).astype(np.float32)
    g[grid // 2, grid // 3] += 2.0  # at least one hot spot
    up = np.asarray(Image.fromarray(g, mode="F").resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32)
    up = np.maximum(up, 0.0)
    return up / max(float(up.max()), 1e-12)


def _fs_type(path: Path) -> str:
    """Filesystem type of the mount holding ``path`` (longest matching mount point in /proc/mounts)."""
    best, kind = "", "?"
    try:
        real = os.path.realpath(path)
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and (real == parts[1] or real.startswith(parts[1].rstrip("/") + "/")) \
                    and len(parts[1]) > len(best):
                best, kind = parts[1], parts[2]
    except OSError:
        pass
    return kind


def fsync_floor(folder: Path, n: int = 30) -> float:
    """Median ms of a 4 KB append + fsync in ``folder``: the disk's durability cost, the floor of any commit."""
    p = folder / "fsync.probe"
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        ts = []
        block = b"x" * 4096
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, block)
            os.fsync(fd)
            ts.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        p.unlink()
    return statistics.median(ts) * 1000.0


def machine_lines() -> list[str]:
    import PIL
    import sqlalchemy

    return _data.machine_lines()[:3] + [f"store     : SQLAlchemy {sqlalchemy.__version__}, SQLite "
                                        f"{sqlite3.sqlite_version}, Pillow {PIL.__version__}, numpy {np.__version__}"]


# ------------------------------------------------------------------------------------------------ (1) writes
def bench_writes(folder: Path, n: int) -> dict:
    from sqlalchemy import create_engine
    from sqlalchemy import text as sa_text

    from medviewer.imaging.annotations import Annotation
    from medviewer.inference.scorer import ScoreResult
    from medviewer.store import CaseStore
    from medviewer.store import schema as S
    from medviewer.store.cases import _heatmap_png

    store = CaseStore(path=folder / "writes.sqlite3")
    raw_path = folder / "writes_raw.sqlite3"
    eng = create_engine(f"sqlite:///{raw_path}")
    S.metadata.create_all(eng)  # the same tables and indexes as the store
    eng.dispose()
    raw = _raw_connect(raw_path)
    now = time.time()
    raw_cid = raw.execute("INSERT INTO cases (study_instance_uid, patient_name, patient_id, patient_birth_date, "
                          "patient_sex, study_date, study_time, study_description, accession_number, study_id, "
                          "modalities, source_path, status, reported_by, created_at, updated_at) "
                          "VALUES (?, '', '', '', '', '', '', '', '', '', '', '', 'new', '', ?, ?)",
                          (UID_ROOT + "9", now, now)).lastrowid
    uid = UID_ROOT + "1"
    sop = uid + ".1.1"
    rng = np.random.default_rng(7)
    heats = [gradcam_like(rng) for _ in range(8)]

    # -- the operations: each returns (store call, raw call) closures for iteration i
    def text_ops(i: int):
        text = f"{NOTE}\nAddendum {i}: {'discussed with the referring clinician. ' * (i % 3)}"

        def raw_op() -> None:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO note_versions (case_id, text, saved_at) VALUES (?, ?, ?)",
                        (raw_cid, text, time.time()))
            raw.execute("COMMIT")
        return (lambda: store.save_text(uid, text)), raw_op

    def ann_ops(i: int):
        ann = Annotation("length", [(100.0 + i, 120.5), (180.25, 240.0 + i)], sop, 0, "")
        meas = {"kind": "length", "value": 84.2 + i, "unit": "mm", "label": f"{84.2 + i:.1f} mm",
                "pixel_spacing": [0.7, 0.7], "warnings": []}
        pj, mj, t = json.dumps([list(p) for p in ann.points]), json.dumps(meas), time.time()

        def raw_op() -> None:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO annotations (uid, case_id, sop_instance_uid, frame, kind, points_json, text, "
                        "measurement_json, created_at, updated_at, deleted_at) VALUES (?,?,?,?,?,?,?,?,?,?,NULL)",
                        (ann.uid, raw_cid, sop, 0, ann.kind, pj, ann.text, mj, t, t))
            raw.execute("COMMIT")
        return (lambda: store.save_annotation(uid, ann, meas)), raw_op

    png_times: list[float] = []
    png_sizes: list[int] = []

    def ai_ops(i: int):
        heat = heats[i % len(heats)]
        p = 0.2 + 0.6 * ((i * 37) % 100) / 100.0
        res = ScoreResult(sop_instance_uid=sop, model=MODEL, version="1.0", weights_sha256=SHA_NEW,
                          probabilities={"normal": 1.0 - p, "pneumonia": p}, threshold=0.5,
                          positive_label="pneumonia", positive=p >= 0.5, frame=0, heatmap=heat,
                          heatmap_label="pneumonia", heatmap_method="gradcam")
        t0 = time.perf_counter()
        png = _heatmap_png(heat)  # the reference stores the same bytes; the encode is timed on its own line
        png_times.append(time.perf_counter() - t0)
        png_sizes.append(len(png))
        probs = json.dumps(res.probabilities)

        def raw_op() -> None:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("INSERT INTO ai_results (case_id, sop_instance_uid, frame, model, model_version, "
                        "weights_sha256, probabilities_json, positive_label, score, threshold, positive, "
                        "heatmap_method, heatmap_label, heatmap_png, run_id, created_at) "
                        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,?)",
                        (raw_cid, sop, 0, MODEL, "1.0", SHA_NEW, probs, "pneumonia", p, 0.5, p >= 0.5, "gradcam",
                         "pneumonia", png, time.time()))
            raw.execute("COMMIT")
        return (lambda: store.add_ai_result(uid, res)), raw_op

    out = {}
    try:
        for name, make in (("save_text", text_ops), ("save_annotation", ann_ops), ("add_ai_result", ai_ops)):
            for i in range(5):  # warm-up: statement caches, first pages of each table
                s_op, r_op = make(-1 - i)
                s_op()
                r_op()
            png_times.clear()
            png_sizes.clear()
            ts, tr = [], []
            for i in range(n):
                s_op, r_op = make(i)
                pair = ((r_op, tr), (s_op, ts)) if i % 2 else ((s_op, ts), (r_op, tr))  # alternate the order
                for op, times in pair:
                    t0 = time.perf_counter()
                    op()
                    times.append(time.perf_counter() - t0)
            ts, tr = _ms(ts), _ms(tr)
            out[name] = {"median": statistics.median(ts), "p95": _p95(ts), "max": max(ts),
                         "raw_median": statistics.median(tr), "raw_p95": _p95(tr)}
            if name == "add_ai_result":
                pt = _ms(png_times)
                out[name]["png_median"] = statistics.median(pt)
                out[name]["png_p95"] = _p95(pt)
                out[name]["png_bytes"] = statistics.median(png_sizes)
        with store.engine.connect() as conn:
            counts = {t: conn.execute(sa_text(f"SELECT COUNT(*) FROM {t}")).scalar()
                      for t in ("note_versions", "annotations", "ai_results", "events")}
    finally:
        raw.close()
        store.close()

    print(f"\n== (1) Write latency, N={n} per operation on one case (5 untimed warm-up calls each); "
          f"store call and raw insert alternate")
    print("   reference: raw sqlite3 BEGIN IMMEDIATE; INSERT (same payload, same table and indexes); COMMIT, on a "
          "second database with the same pragmas (WAL, synchronous=FULL)")
    hdr = (f"   {'operation':<16} {'median ms':>9} {'p95 ms':>8} {'max ms':>8} {'raw med':>8} {'raw p95':>8} "
           f"{'ratio':>7}  {'target ratio':<17} {'target p95':<15}")
    print(hdr)
    print("   " + "-" * (len(hdr) - 3))
    for name, r in out.items():
        r["ratio"] = r["median"] / r["raw_median"]
        if name == "add_ai_result":
            r["ratio_verdict"], rt = "", "- (PNG encode)"
        else:
            r["ratio_verdict"] = "PASS" if r["ratio"] <= TARGET_WRITE_RATIO else "MISS"
            rt = f"<= {TARGET_WRITE_RATIO:.0f}x {r['ratio_verdict']}"
        r["p95_verdict"] = "PASS" if r["p95"] < TARGET_WRITE_P95_MS else "MISS"
        print(f"   {name:<16} {r['median']:>9.2f} {r['p95']:>8.2f} {r['max']:>8.2f} {r['raw_median']:>8.3f} "
              f"{r['raw_p95']:>8.3f} {r['ratio']:>6.1f}x  {rt:<17} < {TARGET_WRITE_P95_MS:.0f} ms "
              f"{r['p95_verdict']}")
    a = out["add_ai_result"]
    print(f"   add_ai_result: PNG encode alone (_heatmap_png, 512x512 -> 256x256, {a['png_bytes'] / 1024:.1f} KB) "
          f"median {a['png_median']:.2f} ms, p95 {a['png_p95']:.2f} ms; store minus encode ~ "
          f"{a['median'] - a['png_median']:.2f} ms ({(a['median'] - a['png_median']) / a['raw_median']:.1f}x raw)")
    print(f"   rows written by the store: {counts}")
    return out


# ------------------------------------------------------------------------------------------------ populate
def populate(path: Path, n_cases: int, seed: int = 0, blobs: bool = True) -> dict:
    """A store at ``path`` with ``n_cases`` cases, filled with bulk INSERTs through the schema tables in one
    transaction (not through the API). Returns the row counts and the seconds taken."""
    from sqlalchemy import func, insert, select

    from medviewer.store import CaseStore
    from medviewer.store import schema as S
    from medviewer.store.cases import _heatmap_png

    t0 = time.perf_counter()
    rng = random.Random(seed)
    png = _heatmap_png(gradcam_like(np.random.default_rng(seed))) if blobs else None
    store = CaseStore(path=path)
    base = 1.6e9
    cases, images, ai, notes, note_res, anns = [], [], [], [], [], []
    for i in range(1, n_cases + 1):
        uid = f"{UID_ROOT}{seed}.{i}"
        y, m, d = rng.randint(2015, 2024), rng.randint(1, 12), rng.randint(1, 28)
        t = base + i * 60.0
        cases.append(dict(id=i, study_instance_uid=uid, patient_name=f"DOE^PATIENT{i}", patient_id=f"P{i:07d}",
                          patient_birth_date=f"19{rng.randint(30, 99)}0101", patient_sex=rng.choice("MF"),
                          study_date=f"{y}{m:02d}{d:02d}", study_time="101500", study_description="CHEST PA",
                          accession_number=f"A{i:08d}", study_id=str(i), modalities="CR",
                          source_path=f"/data/studies/{i}", status=rng.choice(S.STATUSES), reported_by="",
                          reported_at=None, created_at=t, updated_at=t + 3600))
        for k in (1, 2):
            images.append(dict(case_id=i, sop_instance_uid=f"{uid}.1.{k}", series_instance_uid=f"{uid}.1",
                               series_description="PA", modality="CR", instance_number=k, number_of_frames=1,
                               rows=2048, columns=2048, path=f"/data/studies/{i}/IM{k}"))
        for v in range(3):
            notes.append(dict(case_id=i, text=NOTE[: 300 + 250 * v] + f" v{v}", saved_at=t + 100 * v))
        findings = [dict(f, probability=rng.random()) for f in FINDINGS]
        for f in findings:
            f["positive"] = f["probability"] >= f["threshold"]
        note_res.append(dict(case_id=i, note_version_id=None, model="notes-bert", model_version="1.0",
                             weights_sha256="d" * 64, findings_json=json.dumps(findings),
                             decisions_json=json.dumps({"nodule": "rejected"} if i % 7 == 0 else {}), run_id=None,
                             created_at=t + 400))
        for k in (1, 2):
            anns.append(dict(uid=f"{seed:02d}{i:010d}{k:02d}".ljust(32, "0"), case_id=i,
                             sop_instance_uid=f"{uid}.1.{k}", frame=0, kind="length",
                             points_json="[[100.0, 120.5], [180.25, 240.0]]", text="",
                             measurement_json='{"kind": "length", "value": 84.2, "unit": "mm"}', created_at=t + 500,
                             updated_at=t + 500, deleted_at=None))
    # AI results: round 1 (first scoring) for every case, then round 2 (a re-score run; 10 % with a second model)
    for rnd in (1, 2):
        for i in range(1, n_cases + 1):
            uid = f"{UID_ROOT}{seed}.{i}"
            model, sha = (MODEL2, SHA2) if rnd == 2 and i % 10 == 0 else (MODEL, SHA_OLD if rnd == 1 else SHA_NEW)
            for k in (1, 2):
                p = rng.random()
                ai.append(dict(case_id=i, sop_instance_uid=f"{uid}.1.{k}", frame=0, model=model, model_version="1.0",
                               weights_sha256=sha, probabilities_json=json.dumps({"normal": 1 - p, "pneumonia": p}),
                               positive_label="pneumonia", score=p, threshold=0.5, positive=p >= 0.5,
                               heatmap_method="gradcam" if png else "", heatmap_label="pneumonia" if png else "",
                               heatmap_png=png, run_id=1 if rnd == 2 else None,
                               created_at=base + i * 60.0 + (200 if rnd == 1 else 10 * 86400)))
    with store.engine.begin() as conn:
        conn.execute(insert(S.cases), cases)
        conn.execute(insert(S.case_images), images)
        conn.execute(insert(S.note_versions), notes)
        conn.execute(insert(S.rescore_runs).values(id=1, reason="weights changed", models_json="{}",
                                                   n_cases=n_cases, n_done=n_cases, state="finished",
                                                   started_at=base, finished_at=base + 1))
        conn.execute(insert(S.note_results), note_res)
        conn.execute(insert(S.annotations), anns)
        conn.execute(insert(S.ai_results), ai)
    with store.engine.begin() as conn:
        ai_ids = dict(conn.execute(select(S.ai_results.c.case_id, func.max(S.ai_results.c.id))  # latest AI result
                                   .group_by(S.ai_results.c.case_id)).all())
        conn.execute(insert(S.radiologist_scores), [
            dict(case_id=i, label="pneumonia", positive=rng.random() < 0.4, confidence=rng.randint(1, 5),
                 ai_result_id=ai_ids[i], override=False, comment="", reader="dr. bench",
                 created_at=base + i * 60.0 + 900)
            for i in range(1, n_cases + 1)])
    store.close()
    with sqlite3.connect(str(path)) as c:  # fold the WAL into the main file, as a store at rest would be
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    c.close()
    return {"cases": n_cases, "ai_results": len(ai), "note_versions": len(notes), "note_results": len(note_res),
            "annotations": len(anns), "radiologist_scores": n_cases, "case_images": len(images),
            "seconds": time.perf_counter() - t0, "mb": path.stat().st_size / 1e6, "blob_kb": len(png or b"") / 1024}


# ------------------------------------------------------------------------------------------------ (2) reads
def bench_reads(path: Path, n_cases: int, n: int) -> dict:
    from medviewer.store import CaseStore

    store = CaseStore(path=path)
    raw = _raw_connect(path)
    rng = random.Random(11)
    uids = [f"{UID_ROOT}0.{rng.randint(1, n_cases)}" for _ in range(n + 20)]

    def raw_read(uid: str):  # noqa: ANN202
        case = raw.execute("SELECT * FROM cases WHERE study_instance_uid = ?", (uid,)).fetchone()
        anns = raw.execute("SELECT * FROM annotations WHERE case_id = ? AND deleted_at IS NULL ORDER BY id",
                           (case[0],)).fetchall()
        scores = raw.execute("SELECT * FROM radiologist_scores WHERE case_id = ? ORDER BY id", (case[0],)).fetchall()
        return case, anns, scores

    parts = {"get_case": [], "annotations": [], "radiologist_scores": []}
    total, ref = [], []
    n_ann = n_scores = n_missing = 0
    try:
        for j, uid in enumerate(uids):
            t0 = time.perf_counter()
            case = store.get_case(uid)
            t1 = time.perf_counter()
            anns = store.annotations(uid)
            t2 = time.perf_counter()
            scores = store.radiologist_scores(uid)
            t3 = time.perf_counter()
            raw_read(uid)
            t4 = time.perf_counter()
            if j < 20:  # warm-up
                continue
            n_missing += case is None
            n_ann += len(anns)
            n_scores += len(scores)
            parts["get_case"].append(t1 - t0)
            parts["annotations"].append(t2 - t1)
            parts["radiologist_scores"].append(t3 - t2)
            total.append(t3 - t0)
            ref.append(t4 - t3)
    finally:
        raw.close()
        store.close()
    total, ref = _ms(total), _ms(ref)
    med = statistics.median(total)
    res = {"median": med, "p95": _p95(total), "raw_median": statistics.median(ref),
           "parts": {k: statistics.median(_ms(v)) for k, v in parts.items()},
           "verdict": "PASS" if med < TARGET_READ_MS else "MISS"}
    res["ratio"] = med / res["raw_median"]
    print(f"\n== (2) Case-open reads on the GUI thread: get_case + annotations + radiologist_scores, {n_cases} cases "
          f"in the store, {n} random cases (20 untimed first)")
    print(f"   medviewer median {med:.2f} ms, p95 {res['p95']:.2f} ms  (get_case {res['parts']['get_case']:.2f}, "
          f"annotations {res['parts']['annotations']:.2f}, radiologist_scores "
          f"{res['parts']['radiologist_scores']:.2f} ms; {n_ann / n:.1f} annotations, {n_scores / n:.1f} scores "
          f"per case, {n_missing} not found)")
    print(f"   reference raw sqlite3, the same three SELECTs: median {res['raw_median']:.3f} ms -> ratio "
          f"{res['ratio']:.1f}x [no target]")
    print(f"   TARGET median < {TARGET_READ_MS:.0f} ms: {med:.2f} ms -> {res['verdict']}")
    return res


# ------------------------------------------------------------------------------------------------ (3) worklist
def bench_worklist(path: Path, info: dict, repeats: int) -> dict:
    from medviewer.store import CaseStore

    store = CaseStore(path=path)
    raw = _raw_connect(path)
    n = info["cases"]
    try:
        rows = store.worklist()  # warm-up, and the sanity figures
        store.worklist(MODEL)
        raw.execute("SELECT * FROM cases").fetchall()
        tw, tm, tr = [], [], []
        for _ in range(repeats):
            gc.collect()
            t0 = time.perf_counter()
            store.worklist()
            tw.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw.execute("SELECT * FROM cases").fetchall()
            tr.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            store.worklist(MODEL)
            tm.append(time.perf_counter() - t0)
    finally:
        raw.close()
        store.close()
    check = {"rows": len(rows), "with_ai": sum(r.ai_score is not None for r in rows),
             "model2": sum(r.ai_model == MODEL2 for r in rows),
             "stale_sha": sum(r.ai_weights_sha256 == SHA_OLD for r in rows),
             "note_findings": sum(len(r.note_findings) for r in rows),
             "with_call": sum(r.radiologist_positive is not None for r in rows),
             "annotations": sum(r.n_annotations for r in rows)}
    return {"cases": n, "median": statistics.median(tw), "best": min(tw), "model_median": statistics.median(tm),
            "raw_median": statistics.median(tr), "populate_s": info["seconds"], "mb": info["mb"], "check": check}


def print_worklist(results: list[dict], repeats: int, blobs: bool, blob_kb: float) -> None:
    print(f"\n== (3) worklist(), median of {repeats} (1 untimed first); reference: raw sqlite3 "
          f"'SELECT * FROM cases' fetched into Python")
    print("   per case: 2 images x 2 AI results (first scoring + a re-score run, 10 % re-scored by a 2nd model), "
          + (f"heat-map PNG {blob_kb:.1f} KB each" if blobs else "no heat-map PNG (--no-blobs)")
          + ", 3 note versions, 1 note result, 1 radiologist score, 2 annotations")
    print("   populated with bulk INSERTs through medviewer.store.schema tables in one transaction (NOT via the API)")
    hdr = (f"   {'cases':>6} {'populate s':>10} {'db MB':>7} {'worklist s':>10} {'best s':>7} {'(model) s':>9} "
           f"{'SELECT * s':>10} {'ratio':>7}  target")
    print(hdr)
    print("   " + "-" * (len(hdr) - 3))
    for r in results:
        r["ratio"] = r["median"] / r["raw_median"]
        if r["cases"] == WORKLIST_TARGET_N:
            r["verdict"] = "PASS" if r["median"] < TARGET_WORKLIST_S else "MISS"
            tgt = f"< {TARGET_WORKLIST_S:.1f} s {r['verdict']}"
        else:
            r["verdict"], tgt = "", "-"
        print(f"   {r['cases']:>6} {r['populate_s']:>10.1f} {r['mb']:>7.0f} {r['median']:>10.3f} {r['best']:>7.3f} "
              f"{r['model_median']:>9.3f} {r['raw_median']:>10.4f} {r['ratio']:>6.0f}x  {tgt}")
    for r in results:
        print(f"   check {r['cases']}: {r['check']}")


# ------------------------------------------------------------------------------------------------ main
def run(n: int = 200, repeats: int = 5, sizes: tuple[int, ...] = (200, 2000, 10000), blobs: bool = True,
        folder: str | None = None, machine: bool = True) -> dict:
    """Run (1)-(3), print the tables, return the figures (for run_all.py)."""
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="medviewer-bench-store-", dir=folder) as tmp:
        tmpdir = Path(tmp)
        if machine:
            for line in machine_lines():
                print(line)
        fs, fsync_ms = _fs_type(tmpdir), fsync_floor(tmpdir)
        print(f"storage   : {tmpdir} on {fs}; 4 KB write+fsync median {fsync_ms:.3f} ms (the floor of a "
              f"synchronous=FULL commit: the smaller it is, the more the ratios in (1) measure the library)")
        writes = bench_writes(tmpdir, n)
        built: dict[int, dict] = {}
        read_n = 2000
        built[read_n] = populate(tmpdir / f"cases{read_n}.sqlite3", read_n, blobs=blobs)
        reads = bench_reads(tmpdir / f"cases{read_n}.sqlite3", read_n, n)
        wl = []
        for size in sizes:
            path = tmpdir / f"cases{size}.sqlite3"
            if size not in built:
                built[size] = populate(path, size, blobs=blobs)
            wl.append(bench_worklist(path, built[size], repeats))
            if size != read_n:
                path.unlink()
        print_worklist(wl, repeats, blobs, max((b["blob_kb"] for b in built.values()), default=0.0))
    wall = time.perf_counter() - t_start
    print(f"\n   total wall time {wall:.1f} s")
    return {"writes": writes, "reads": reads, "worklist": wl, "wall_s": wall, "fs": fs, "fsync_ms": fsync_ms}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="calls per write operation and case opens in (2) (200)")
    ap.add_argument("--repeats", type=int, default=5, help="timed worklist() runs per size (default 5)")
    ap.add_argument("--sizes", default="200,2000,10000", help="worklist store sizes (default 200,2000,10000)")
    ap.add_argument("--no-blobs", action="store_true", help="populate (3) without heat-map PNGs")
    ap.add_argument("--dir", help="parent folder of the temporary databases (default: the system temp folder)")
    ap.add_argument("--json-out", help="also write the figures as JSON to this file (used by run_all.py)")
    ap.add_argument("--no-machine", action="store_true", help="do not print the machine lines")
    args = ap.parse_args(argv)
    summary = run(args.n, args.repeats, tuple(int(s) for s in args.sizes.split(",") if s), not args.no_blobs,
                  args.dir, not args.no_machine)
    if args.json_out:
        with open(args.json_out, "w") as fp:
            json.dump(summary, fp)


if __name__ == "__main__":
    main()
