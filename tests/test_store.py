"""Case store: schema and migrations, durability (a writer killed mid-session), histories and the worklist, on both
engines: every test taking ``store`` or ``db_url`` runs on SQLite and on a real PostgreSQL server (conftest)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import insert, inspect, select

from medviewer.imaging.annotations import Annotation
from medviewer.inference.scorer import ScoreResult
from medviewer.io.scan import scan
from medviewer.store import CaseStore, CaseStoreError, open_default_store
from medviewer.store import schema as S
from medviewer.store.cases import make_engine, migrate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CT_HEAD = SHARED / "ct-head-ge"


@pytest.fixture()
def store(db_url):
    s = CaseStore(db_url)
    yield s
    s.close()


@pytest.fixture(scope="module")
def ct_index():
    if not CT_HEAD.is_dir():
        pytest.skip("shared CT data not present")
    return scan(str(CT_HEAD))


def _result(uid: str, p: float, sha: str = "a" * 64, threshold: float = 0.5) -> ScoreResult:
    return ScoreResult(sop_instance_uid=uid, model="pneumonia-cnn", version="1.0.0", weights_sha256=sha,
                       probabilities={"normal": 1 - p, "pneumonia": p}, threshold=threshold,
                       positive_label="pneumonia", positive=p >= threshold)


def test_fresh_store_has_the_latest_schema(store):
    assert store.version == S.LATEST_VERSION
    with store.engine.connect() as conn:
        versions = [r[0] for r in conn.execute(select(S.schema_version.c.version))]
    assert versions == list(range(1, S.LATEST_VERSION + 1))
    names = set(inspect(store.engine).get_table_names())
    assert {"cases", "note_versions", "annotations", "ai_results", "radiologist_scores", "events",
            "case_readers"} <= names
    assert {c["name"] for c in inspect(store.engine).get_columns("cases")} >= {"revision"}


def test_fresh_sqlite_store_is_wal_with_foreign_keys(tmp_path):
    store = CaseStore(path=tmp_path / "cases.sqlite3")
    assert store.version == S.LATEST_VERSION
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        versions = [r[0] for r in conn.execute(select(S.schema_version.c.version))]
    assert versions == list(range(1, S.LATEST_VERSION + 1))
    store.close()


def test_foreign_keys_are_enforced(store):
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        with store.engine.begin() as conn:
            conn.execute(insert(S.note_versions).values(case_id=9999, text="orphan", saved_at=time.time()))


def test_migration_from_version_1_keeps_data(db_url):
    engine = make_engine(db_url)
    with engine.begin() as conn:  # a database as version 1 left it
        S.MIGRATIONS[1](conn)
        conn.execute(insert(S.schema_version).values(version=1, applied_at=time.time()))
        conn.execute(insert(S.cases).values(study_instance_uid="1.2.3", patient_name="OLD^CASE", created_at=1.0,
                                            updated_at=1.0))
    engine.dispose()
    store = CaseStore(db_url)
    try:
        assert store.version == S.LATEST_VERSION
        assert store.get_case("1.2.3").patient_name == "OLD^CASE" and store.get_case("1.2.3").revision == 0
        index_names = {ix["name"] for ix in inspect(store.engine).get_indexes("annotations")}
        assert "ix_annotations_image" in index_names
        assert migrate(store.engine) == S.LATEST_VERSION  # idempotent
    finally:
        store.close()


def test_migrations_3_and_4_upgrade_a_released_version_2_database(db_url):
    """A version-2 database (ai_results without the gate's columns, cases without revision, no case_readers, as
    released) keeps its AI rows, which read back as in-scope calls, and its cases."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    with engine.begin() as conn:
        for table in S.V1_TABLES:
            table.create(conn)
        for name, _ in S.V3_AI_COLUMNS:  # as version 2 left them: without the later columns
            conn.execute(text(f"ALTER TABLE ai_results DROP COLUMN {name}"))
        conn.execute(text("ALTER TABLE cases DROP COLUMN revision"))
        for v in (1, 2):
            conn.execute(insert(S.schema_version).values(version=v, applied_at=time.time()))
        conn.execute(text("INSERT INTO cases (study_instance_uid, patient_name, patient_id, patient_birth_date, "
                          "patient_sex, study_date, study_time, study_description, accession_number, study_id, "
                          "modalities, source_path, status, reported_by, created_at, updated_at) VALUES "
                          "('1.2.3', '', '', '', '', '', '', '', '', '', '', '', 'new', '', 1.0, 1.0)"))
        cid = conn.execute(text("SELECT id FROM cases")).scalar()
        conn.execute(text(
            "INSERT INTO ai_results (case_id, sop_instance_uid, frame, model, model_version, weights_sha256, "
            "probabilities_json, positive_label, score, threshold, positive, heatmap_method, heatmap_label, "
            "created_at) VALUES (:cid, '1.2.3.4', 0, 'pneumonia-cnn', '1.0.0', 'ab', '{\"pneumonia\": 0.8}', "
            "'pneumonia', 0.8, 0.5, :yes, '', '', 1.0)"), {"cid": cid, "yes": True})
    engine.dispose()
    store = CaseStore(db_url)
    try:
        assert store.version == S.LATEST_VERSION
        [r] = store.ai_results("1.2.3")
        assert r.status == "scored" and r.has_call and r.score == 0.8 and r.warnings == []
        assert store.worklist()[0].ai_score == 0.8
        assert store.get_case("1.2.3").revision == 0 and store.readers("1.2.3") == []
    finally:
        store.close()


def test_newer_schema_is_refused_with_a_clear_error(db_url):
    CaseStore(db_url).close()
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(insert(S.schema_version).values(version=S.LATEST_VERSION + 1, applied_at=time.time()))
    engine.dispose()
    with pytest.raises(CaseStoreError, match="newer than this medviewer"):
        CaseStore(db_url)


def test_default_store_lives_in_medviewer_data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "data"))
    store = open_default_store()
    try:
        assert Path(store.url.removeprefix("sqlite:///")) == tmp_path / "data" / "cases.sqlite3"
        assert (tmp_path / "data" / "cases.sqlite3").is_file()
    finally:
        store.close()


def test_register_real_study_caches_metadata_and_images(store, ct_index):
    ids = store.register_index(ct_index, str(CT_HEAD))
    assert len(ids) == 1
    patient = next(iter(ct_index.patients.values()))
    study = next(iter(patient.studies.values()))
    case = store.get_case(study.study_instance_uid)
    assert case.patient_id == patient.patient_id and case.study_description == study.study_description
    assert case.modalities == "CT" and case.status == "new" and case.source_path == str(CT_HEAD)
    images = store.case_images(study.study_instance_uid)
    assert len(images) == sum(len(s.image_instances) for s in study.series.values())
    assert all(Path(i["path"]).is_file() for i in images)
    # Registering again refreshes but does not duplicate, and keeps the status.
    store.set_status(study.study_instance_uid, "in progress")
    assert store.register_index(ct_index, str(CT_HEAD)) == ids
    assert len(store.case_images(study.study_instance_uid)) == len(images)
    assert store.get_case(study.study_instance_uid).status == "in progress"


def test_notes_keep_every_version_and_findings_history(store):
    uid = "1.2.840.1"
    assert store.load(uid) is None
    v1 = store.save_text(uid, "No focal consolidation.")
    assert store.save_text(uid, "No focal consolidation.") == v1  # unchanged text: no new version
    v2 = store.save_text(uid, "Right lower lobe consolidation.")
    assert v2 > v1
    store.save_findings(uid, [{"label": "pneumonia", "probability": 0.9, "threshold": 0.5, "positive": True}],
                        {}, "notes-minilm", "1.0.0")
    store.save_findings(uid, [{"label": "pneumonia", "probability": 0.9, "threshold": 0.5, "positive": True}],
                        {"pneumonia": "rejected"}, "notes-minilm", "1.0.0")
    rec = store.load(uid)
    assert rec.text == "Right lower lobe consolidation." and rec.decisions == {"pneumonia": "rejected"}
    assert [t for _, t, _ in store.note_versions(uid)] == ["No focal consolidation.",
                                                           "Right lower lobe consolidation."]
    results = store.note_results(uid)
    assert len(results) == 2 and results[0].positives == ["pneumonia"] and results[1].positives == []
    assert store.get_case(uid).status == "in progress"  # work on a new case starts it


def test_annotations_update_soft_delete_and_reopen(db_url):
    store = CaseStore(db_url)
    a = Annotation("ellipse", [(10, 10), (40, 30)], "1.2.3.4", frame=2, text="cyst")
    store.save_annotation("9.9", a, {"mean": 12.5})
    store.save_annotation("9.9", a.moved(5, 0))
    b = Annotation("length", [(0, 0), (3, 4)], "1.2.3.4")
    store.save_annotation("9.9", b)
    assert store.delete_annotation(b.uid) and not store.delete_annotation(b.uid)
    store.close()
    reopened = CaseStore(db_url)
    try:
        live = reopened.annotations("9.9")
        assert [x.uid for x in live] == [a.uid]
        assert live[0].points == [(15.0, 10.0), (45.0, 30.0)] and live[0].frame == 2 and live[0].text == "cyst"
        assert len(reopened.annotations("9.9", include_deleted=True)) == 2
        kinds = [e.kind for e in reopened.events("9.9")]
        assert kinds.count("annotation added") == 2 and "annotation changed" in kinds
        assert "annotation deleted" in kinds
    finally:
        reopened.close()


def test_ai_results_are_appended_and_worklist_shows_latest(store):
    import numpy as np

    uid = "1.2.5"
    r1 = _result("img1", 0.8)
    r1.heatmap = np.linspace(0, 1, 600 * 500, dtype=np.float32).reshape(600, 500)
    r1.heatmap_method, r1.heatmap_label = "gradcam", "pneumonia"
    store.add_ai_result(uid, r1)
    store.add_ai_result(uid, _result("img2", 0.3))
    store.add_ai_result(uid, _result("img1", 0.2, sha="b" * 64))  # re-scored with new weights
    results = store.ai_results(uid)
    assert [r.score for r in results] == pytest.approx([0.8, 0.3, 0.2])
    heat = results[0].heatmap()
    assert heat.shape == (256, 213) and heat.dtype == np.float32 and 0.0 <= heat.min() < heat.max() <= 1.0
    assert len(store.latest_ai_results(uid)) == 2
    row = store.worklist()[0]
    assert row.ai_score == pytest.approx(0.3) and row.ai_positive is False  # max over the latest per image
    assert store.stale_cases("pneumonia-cnn", "b" * 64) == [uid]  # img2 is still on the old weights
    store.add_ai_result(uid, _result("img2", 0.6, sha="b" * 64))
    assert store.stale_cases("pneumonia-cnn", "b" * 64) == []
    assert store.stale_cases("pneumonia-cnn", "c" * 64) == [uid]
    assert store.worklist()[0].ai_score == pytest.approx(0.6)


def test_radiologist_override_and_sign_off(store):
    uid = "1.2.6"
    store.add_ai_result(uid, _result("img", 0.9))
    store.add_radiologist_score(uid, "pneumonia", False, confidence=4, reader="Dr A")
    store.add_radiologist_score(uid, "pneumonia", True, confidence=2, reader="Dr A")
    scores = store.radiologist_scores(uid)
    assert [s.override for s in scores] == [True, False] and scores[-1].confidence == 2
    with pytest.raises(CaseStoreError):
        store.add_radiologist_score(uid, "pneumonia", True, confidence=7)
    store.sign_off(uid, "Dr A")
    case = store.get_case(uid)
    assert case.status == "reported" and case.reported_by == "Dr A" and case.reported_at
    with pytest.raises(CaseStoreError):
        store.set_status(uid, "archived")
    row = store.worklist()[0]
    assert row.radiologist_positive is True and row.radiologist_confidence == 2


def test_interim_notes_are_imported_once(tmp_path, db_url):
    from medviewer.notes.store import SQLiteNoteStore

    legacy = SQLiteNoteStore(tmp_path / "notes.sqlite3")
    legacy.save_text("1.2.7", "first")
    legacy.save_text("1.2.7", "second")
    legacy.save_findings("1.2.7", [{"label": "effusion", "probability": 0.7, "threshold": 0.5, "positive": True}],
                         {"effusion": "confirmed"}, "notes-minilm", "1.0.0")
    legacy.close()
    store = CaseStore(db_url)
    try:
        assert store.import_interim_notes(tmp_path / "notes.sqlite3") == 2
        assert store.import_interim_notes(tmp_path / "notes.sqlite3") == 0
        rec = store.load("1.2.7")
        assert rec.text == "second" and rec.decisions == {"effusion": "confirmed"}
    finally:
        store.close()


WRITER = textwrap.dedent("""
    import sys, time
    from medviewer.imaging.annotations import Annotation
    from medviewer.store import CaseStore
    store = CaseStore(sys.argv[1])
    i = 0
    while True:
        store.save_text("1.2.99", f"note version {i} " + "x" * 2000)
        store.save_annotation("1.2.99", Annotation("length", [(i, 0), (i, 10)], "1.2.99.1", uid=f"a{i}"))
        print(i, flush=True)  # reported only after both transactions committed
        i += 1
""")


def test_killed_writer_loses_nothing_committed(db_url):
    """A writer process is SIGKILLed while it writes; everything it reported committed is there and the
    database opens cleanly (integrity check) and takes new writes."""
    if not hasattr(signal, "SIGKILL"):
        pytest.skip("needs SIGKILL")
    CaseStore(db_url).close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    committed = []
    try:
        deadline = time.monotonic() + 60
        while len(committed) < 40 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            committed.append(int(line))
        assert len(committed) >= 40, "writer did not get going"
        proc.send_signal(signal.SIGKILL)  # mid-session: it is inside its loop, writing
    finally:
        proc.kill()
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    if db_url.startswith("sqlite"):
        with sqlite3.connect(db_url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = CaseStore(db_url)
    try:
        texts = {t for _, t, _ in store.note_versions("1.2.99")}
        uids = {a.uid for a in store.annotations("1.2.99")}
        for i in committed:
            assert f"note version {i} " + "x" * 2000 in texts
            assert f"a{i}" in uids
        store.save_text("1.2.99", "after the crash")
        assert store.load("1.2.99").text == "after the crash"
    finally:
        store.close()


def test_unreadable_store_raises_a_clear_error(tmp_path):
    path = tmp_path / "cases.sqlite3"
    path.write_bytes(os.urandom(50000))
    with pytest.raises(CaseStoreError, match="cannot open the case store .*cases.sqlite3"):
        CaseStore(path=path)
    assert path.stat().st_size == 50000  # left untouched for recovery


def test_edit_after_sign_off_withdraws_it_but_rescore_does_not(store):
    uid = "1.2.8"
    store.save_text(uid, "Clear lungs.")
    store.sign_off(uid, "Dr A")
    store.add_ai_result(uid, _result("img", 0.1), run_id=store.start_run("test", {}, 1))  # a re-score run
    assert store.get_case(uid).status == "reported"
    store.save_annotation(uid, Annotation("arrow", [(1, 1), (5, 5)], "img"))
    case = store.get_case(uid)
    assert case.status == "in progress" and case.reported_by == "" and case.reported_at is None
    assert "sign-off withdrawn" in [e.kind for e in store.events(uid)]


def test_model_output_is_not_reader_work(store):
    """AI results and the notes classifier's own output neither start a case nor withdraw a sign-off; the
    reader's confirm/reject does."""
    uid = "1.2.9"
    store.add_ai_result(uid, _result("img", 0.9))
    assert store.get_case(uid).status == "new"
    store.save_text(uid, "Effusion.")
    store.sign_off(uid, "Dr A")
    findings = [{"label": "Effusion", "probability": 0.9, "threshold": 0.5, "positive": True}]
    store.add_ai_result(uid, _result("img", 0.2))
    store.save_findings(uid, findings, {}, "notes-minilm", "1.0.0", start_work=False)
    assert store.get_case(uid).status == "reported"
    store.save_findings(uid, findings, {"Effusion": "rejected"}, "notes-minilm", "1.0.0")
    assert store.get_case(uid).status == "in progress"


def test_typing_bursts_coalesce_into_one_version(store):
    uid = "1.2.10"
    ids = {store.save_text(uid, "Right lower lobe"[:n], coalesce_s=5.0) for n in range(1, 17)}
    assert len(ids) == 1 and [t for _, t, _ in store.note_versions(uid)] == ["Right lower lobe"]
    # A version a classifier result refers to is never rewritten.
    store.save_findings(uid, [], {}, "notes-minilm", "1.0.0", start_work=False)
    store.save_text(uid, "Right lower lobe opacity.", coalesce_s=5.0)
    assert [t for _, t, _ in store.note_versions(uid)] == ["Right lower lobe", "Right lower lobe opacity."]
    # Without coalescing every change is a version.
    store.save_text(uid, "Right lower lobe opacity. No effusion.")
    assert len(store.note_versions(uid)) == 3


def test_a_damaged_store_is_opened_read_only_and_never_written(tmp_path):
    """A database that fails PRAGMA integrity_check is read (what can be read) but never written, and says why
    in words; the file is left byte for byte as it was."""
    from medviewer.io.model import Patient, Study
    from medviewer.store.cases import describe_store_error

    path = tmp_path / "cases.sqlite3"
    store = CaseStore(path=path)
    store.register_study(Patient("Doe^Jane", "P1"), Study("1.2.3", "20240101"))
    store.close()
    data = bytearray(path.read_bytes())
    for i in range(4096 + 100, min(len(data), 3 * 4096), 7):  # damage a b-tree page
        data[i] = 0xAB
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    damaged = CaseStore(path=path)
    try:
        assert damaged.read_only and "integrity check" in damaged.problem and "READ-ONLY" in damaged.problem
        with pytest.raises(Exception) as info:
            damaged.save_text("1.2.3", "a note")
        assert "read-only" in describe_store_error(info.value)
    finally:
        damaged.close()
    assert path.read_bytes() == before


@pytest.mark.parametrize("message, words", [
    ("database is locked", "locked by another program"),
    ("database or disk is full", "disk holding the case store is full"),
    ("attempt to write a readonly database", "read-only"),
    ("database disk image is malformed", "damaged"),
])
def test_store_errors_are_named_in_words(message, words):
    import sqlite3

    from medviewer.store.cases import describe_store_error

    assert words in describe_store_error(sqlite3.OperationalError(message))


@pytest.mark.parametrize("url", ["nonsense", "mysql://bob:pw@h/x", "postgresql+psycopg://bob:pw@[::1/x"])
def test_unusable_store_urls_are_one_clear_error_without_the_password(url, monkeypatch, tmp_path):
    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MEDVIEWER_DB_URL", url)
    with pytest.raises(CaseStoreError, match="is not usable") as e:
        open_default_store()
    assert "pw" not in str(e.value) and "\n" not in str(e.value)
    from medviewer.__main__ import main

    assert main(["worklist", "--csv", str(tmp_path / "w.csv")]) == 2


def _finding(label: str, state: str, p: float = 0.1, u: float = 0.02) -> dict:
    """A finding as NoteResult.to_dict() writes it (three states)."""
    return {"label": label, "state": state, "probability": p, "threshold": 0.5, "positive": state == "present",
            "uncertain_probability": u, "uncertain_threshold": 0.5}


def test_note_findings_keep_their_three_states(store):
    """Present, absent and uncertain findings come back as saved; the worklist lists the uncertain ones apart from
    the present ones; the reader's decision on an uncertain finding makes it present (confirmed) or absent
    (rejected); the event records the model's uncertain labels."""
    uid = "1.2.840.3"
    store.save_text(uid, "Effusion. Possible pneumonia. Cannot exclude pneumothorax.")
    findings = [_finding("Effusion", "present", 0.9), _finding("Pneumonia", "uncertain", 0.2, 0.8),
                _finding("Pneumothorax", "uncertain", 0.1, 0.7), _finding("Mass", "absent")]
    store.save_findings(uid, findings, {}, "notes-minilm", "2.0.0", start_work=False)
    [res] = store.note_results(uid)
    assert res.findings == findings  # stored as given, state included
    assert res.states == {"Effusion": "present", "Pneumonia": "uncertain", "Pneumothorax": "uncertain",
                          "Mass": "absent"}
    assert res.positives == ["Effusion"] and res.uncertain == ["Pneumonia", "Pneumothorax"]
    assert [f["state"] for f in store.load(uid).findings] == ["present", "uncertain", "uncertain", "absent"]
    row = store.worklist()[0]
    assert row.note_findings == ["Effusion"] and row.note_uncertain == ["Pneumonia", "Pneumothorax"]
    event = [e for e in store.events(uid) if e.kind == "note findings"][-1]
    assert event.detail["positives"] == ["Effusion"] and event.detail["uncertain"] == ["Pneumonia", "Pneumothorax"]

    # the reader confirms one hedged finding and rejects the other
    store.save_findings(uid, findings, {"Pneumonia": "confirmed", "Pneumothorax": "rejected"}, "notes-minilm",
                        "2.0.0")
    last = store.note_results(uid)[-1]
    assert last.positives == ["Effusion", "Pneumonia"] and last.uncertain == []
    assert last.states["Pneumothorax"] == "absent"
    assert last.model_states["Pneumothorax"] == "uncertain"  # what the model said is kept
    row = store.worklist()[0]
    assert row.note_findings == ["Effusion", "Pneumonia"] and row.note_uncertain == []


def test_findings_stored_before_three_states_read_as_present_or_absent(store):
    """Findings JSON without "state" (saved before three states): present when positive, else absent; nothing is
    uncertain, so no migration is needed."""
    uid = "1.2.840.4"
    store.save_findings(uid, [{"label": "Effusion", "probability": 0.9, "threshold": 0.5, "positive": True},
                              {"label": "Nodule", "probability": 0.2, "threshold": 0.5, "positive": False}],
                        {}, "notes-minilm", "1.0.0")
    [res] = store.note_results(uid)
    assert res.states == {"Effusion": "present", "Nodule": "absent"}
    assert res.positives == ["Effusion"] and res.uncertain == []
    row = store.worklist()[0]
    assert row.note_findings == ["Effusion"] and row.note_uncertain == []


def test_a_run_whose_process_died_reads_as_interrupted(store):
    """A re-score run beats at its start and at every update; one left "running" with no heartbeat for
    RUN_STALE_SECONDS (its process was killed) reads as "interrupted"; a live or finished run is unchanged."""
    from sqlalchemy import update

    from medviewer.store.cases import RUN_STALE_SECONDS

    dead = store.start_run("test", {"m": "a" * 64}, 3)
    store.update_run(dead, n_done=1)
    live = store.start_run("test", {"m": "a" * 64}, 3)
    done = store.start_run("test", {"m": "a" * 64}, 1)
    store.update_run(done, n_done=1, state="finished")
    old = time.time() - RUN_STALE_SECONDS - 60
    with store.engine.begin() as conn:
        conn.execute(update(S.rescore_runs).where(S.rescore_runs.c.id.in_([dead, done]))
                     .values(heartbeat_at=old, started_at=old - 10))
    states = {r["id"]: r["state"] for r in store.runs()}
    assert states == {dead: "interrupted", live: "running", done: "finished"}
    store.update_run(live, n_done=2)  # still beating
    assert {r["id"]: r["state"] for r in store.runs()}[live] == "running"


def test_migration_5_adds_the_run_heartbeat_to_a_version_4_database(db_url):
    """A version-4 database (rescore_runs without heartbeat_at) keeps its runs; a run it left "running" long ago
    reads as interrupted, judged by its start."""
    from sqlalchemy import text

    engine = make_engine(db_url)
    with engine.begin() as conn:
        for v in range(1, 5):
            S.MIGRATIONS[v](conn)
            conn.execute(insert(S.schema_version).values(version=v, applied_at=time.time()))
        conn.execute(text("ALTER TABLE rescore_runs DROP COLUMN heartbeat_at"))
        conn.execute(text("INSERT INTO rescore_runs (reason, models_json, n_cases, n_done, state, started_at) "
                          "VALUES ('old', '{}', 2, 1, 'running', 1.0)"))
    engine.dispose()
    store = CaseStore(db_url)
    try:
        assert store.version == S.LATEST_VERSION
        assert "heartbeat_at" in {c["name"] for c in inspect(store.engine).get_columns("rescore_runs")}
        [run] = store.runs()
        assert run["reason"] == "old" and run["n_done"] == 1 and run["state"] == "interrupted"
    finally:
        store.close()
