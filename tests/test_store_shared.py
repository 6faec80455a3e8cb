"""Several workstations on one case store (SQLite file and a real PostgreSQL server, see conftest ``db_url``): who
has a case open, optimistic concurrency on the writes that can collide (nothing silently overwritten, nothing
lost), a change token for worklist refresh, and opening/reading never waiting for a writer."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import update

from medviewer.store import CaseStore, ConflictError
from medviewer.store import schema as S
from medviewer.store.cases import READER_TTL_S

UID = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture()
def two(db_url):
    a = CaseStore(db_url, workstation="ws-a")
    b = CaseStore(db_url, workstation="ws-b")
    a.save_text(UID, "Initial note.")
    yield a, b
    a.close()
    b.close()


def test_who_has_a_case_open_is_visible(two):
    a, b = two
    assert a.open_case(UID, "Dr A") == []
    others = b.open_case(UID, "Dr B")
    assert [(r.reader, r.workstation) for r in others] == [("Dr A", "ws-a")]
    assert b.worklist()[0].being_read_by == ["Dr A (ws-a)"]
    assert a.worklist()[0].being_read_by == ["Dr B (ws-b)"]  # never yourself
    a.close_case(UID)
    assert b.worklist()[0].being_read_by == []
    # a workstation that went away (no refresh for READER_TTL_S) is not "reading" any more
    a.open_case(UID, "Dr A")
    with a.engine.begin() as conn:
        conn.execute(update(S.case_readers).where(S.case_readers.c.workstation == "ws-a")
                     .values(seen_at=time.time() - READER_TTL_S - 1))
    assert b.worklist()[0].being_read_by == []
    a.touch_readers()
    assert b.worklist()[0].being_read_by == ["Dr A (ws-a)"]


def test_sign_off_after_a_concurrent_change_is_refused_and_nothing_is_lost(two):
    a, b = two
    seen = a.get_case(UID).revision
    b.save_text(UID, "Right lower lobe consolidation.")  # B works on the case meanwhile
    with pytest.raises(ConflictError) as e:
        a.sign_off(UID, "Dr A", expected_revision=seen)
    assert "ws-b" in str(e.value) and e.value.by
    case = a.get_case(UID)
    assert case.status == "in progress" and case.reported_by == ""
    assert [t for _, t, _ in a.note_versions(UID)] == ["Initial note.", "Right lower lobe consolidation."]
    a.sign_off(UID, "Dr A", expected_revision=case.revision)  # after reloading: accepted
    assert a.get_case(UID).reported_by == "Dr A"


def test_a_sign_off_is_never_silently_overwritten(two):
    a, b = two
    a.sign_off(UID, "Dr A")
    with pytest.raises(ConflictError, match="already signed off by Dr A"):
        b.sign_off(UID, "Dr B")
    assert b.get_case(UID).reported_by == "Dr A"
    with pytest.raises(ConflictError):
        b.set_status(UID, "in progress", expected_revision=0)


def test_two_simultaneous_sign_offs_one_wins(two):
    a, b = two
    rev = a.get_case(UID).revision
    results: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def sign(store: CaseStore, reader: str) -> None:
        barrier.wait()
        try:
            store.sign_off(UID, reader, expected_revision=rev)
            results[reader] = "ok"
        except ConflictError as exc:
            results[reader] = exc

    threads = [threading.Thread(target=sign, args=(s, r)) for s, r in ((a, "Dr A"), (b, "Dr B"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(type(v).__name__ for v in results.values()) == ["ConflictError", "str"]
    winner = next(r for r, v in results.items() if v == "ok")
    assert a.get_case(UID).reported_by == winner


def test_change_token_moves_on_any_change(two):
    a, b = two
    t0 = b.change_token()
    assert b.change_token() == t0
    a.save_annotation(UID, __import__("medviewer.imaging.annotations", fromlist=["Annotation"]).Annotation(
        "length", [(0, 0), (3, 4)], "1.2.3"))
    t1 = b.change_token()
    assert t1 != t0
    a.open_case(UID, "Dr A")
    assert b.change_token() != t1


def test_two_writers_lose_nothing(db_url):
    """Two workstations write notes and annotations to one case at the same time: every version is kept."""
    from medviewer.imaging.annotations import Annotation

    stores = [CaseStore(db_url, workstation=f"ws-{i}") for i in range(2)]
    stores[0].save_text(UID, "start")
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(25):
                stores[i].save_text(UID, f"ws{i} version {n}")
                stores[i].save_annotation(UID, Annotation("length", [(n, 0), (n, 5)], "1.2.3", uid=f"w{i}n{n}"))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == []
        texts = {t for _, t, _ in stores[0].note_versions(UID)}
        assert {f"ws{i} version {n}" for i in range(2) for n in range(25)} <= texts
        assert len(stores[1].annotations(UID)) == 50
    finally:
        for s in stores:
            s.close()


HOLD_WRITE = textwrap.dedent("""
    import sys, time
    from sqlalchemy import text
    from medviewer.store.cases import make_engine
    engine = make_engine(sys.argv[1])
    with engine.begin() as conn:
        conn.execute(text("UPDATE cases SET patient_name = 'WRITING' WHERE 1 = 1"))
        print("holding", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_opening_and_reading_never_wait_for_a_writer(db_url):
    """Another program holds a write transaction open; a read-only tool opens the store and reads the worklist at
    once (before: it waited 10 s for SQLite's lock and failed)."""
    CaseStore(db_url, workstation="setup").save_text(UID, "a note")
    proc = subprocess.Popen([sys.executable, "-c", HOLD_WRITE, db_url, "8"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "holding"
        t = time.monotonic()
        store = CaseStore(db_url, workstation="reader")
        rows = store.worklist()
        elapsed = time.monotonic() - t
        store.close()
        assert [r.case.study_instance_uid for r in rows] == [UID]
        assert rows[0].case.patient_name != "WRITING"  # the uncommitted write is not seen
        assert elapsed < 3.0, f"opening and reading took {elapsed:.1f} s while a writer held its transaction"
    finally:
        proc.kill()
        proc.wait(10)


def test_sign_off_checks_changes_made_elsewhere_since_the_reader_saw_the_case(two):
    """The GUI's check: this workstation's own queued writes after the time the case was shown do not count,
    another workstation's do."""
    a, b = two
    shown = time.time()
    time.sleep(0.01)
    a.save_text(UID, "My own edit, written by the queue after the case was shown.")
    a.sign_off(UID, "Dr A", unchanged_elsewhere_since=shown)  # own change: no conflict
    a.set_status(UID, "in progress")
    shown = time.time()
    time.sleep(0.01)
    b.save_text(UID, "Dr B adds a finding.")
    assert b.changed_elsewhere_since(UID, shown) == [] and a.changed_elsewhere_since(UID, shown) == [
        "note saved on ws-b"]
    with pytest.raises(ConflictError, match="ws-b"):
        a.sign_off(UID, "Dr A", unchanged_elsewhere_since=shown)
    assert a.get_case(UID).status == "in progress"
