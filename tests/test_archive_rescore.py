"""Archive re-scoring (``medviewer rescore``): in-process and on a dask LocalCluster, writing to the case store on
both engines (conftest ``db_url``); idempotent per case and weights; a run killed half-way resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from medviewer.store import CaseStore
from medviewer.store.archive import is_current, rescore_archive, select_cases
from tests.archive_factory import SHARED, build_archive

pytestmark = pytest.mark.skipif(not (SHARED / "kermany-224").is_dir() or not (SHARED / "openi").is_dir(),
                                reason="../shared/data (kermany-224, openi) not present")


@pytest.fixture()
def archive(db_url, tmp_path):
    store = CaseStore(db_url)
    uids = build_archive(tmp_path / "archive", 6, store)
    yield store, uids
    store.close()


def _scores(store: CaseStore, uids: list[str]) -> list[float]:
    return [store.latest_ai_results(u)[0].score for u in uids]


def test_in_process_then_dask_agree_and_runs_are_idempotent(archive, db_url, tmp_path, request):
    store, uids = archive
    first = rescore_archive(store, uids)
    assert (first.n_rescored, first.n_skipped, first.n_failed, first.n_image_errors) == (6, 0, 0, 0)
    assert all(len(store.ai_results(u)) == 1 and len(store.note_results(u)) == 1 for u in uids)
    in_process = _scores(store, uids)
    again = rescore_archive(store, uids)  # nothing changed: every case is current
    assert (again.n_rescored, again.n_skipped) == (0, 6)
    assert all(len(store.ai_results(u)) == 1 for u in uids)
    # the same archive in a second store, re-scored on a 2-worker LocalCluster, gives the same scores
    other_url = (f"sqlite:///{tmp_path / 'other.sqlite3'}" if db_url.startswith("sqlite")
                 else request.getfixturevalue("pg_server").create_database())
    other = CaseStore(other_url)
    try:
        build_archive(tmp_path / "archive", 6, other)
        dask_run = rescore_archive(other, uids, workers=2)
        assert dask_run.engine.startswith("dask LocalCluster") and (dask_run.n_rescored, dask_run.n_failed) == (6, 0)
        assert _scores(other, uids) == pytest.approx(in_process, abs=1e-6)
        run = [r for r in other.runs() if r["id"] == dask_run.run_id][0]
        assert run["state"] == "finished" and run["n_done"] == 6
    finally:
        other.close()


def test_select_cases(archive):
    store, uids = archive
    assert select_cases(store, all_cases=True) == [c.study_instance_uid for c in store.cases()]
    dates = sorted(c.study_date for c in store.cases())
    assert set(select_cases(store, since=dates[3])) == {c.study_instance_uid for c in store.cases()
                                                        if c.study_date >= dates[3]}
    assert select_cases(store, studies=[uids[1]]) == [uids[1]]
    with pytest.raises(ValueError):
        select_cases(store, since="last week")
    with pytest.raises(Exception, match="no case"):
        select_cases(store, studies=["1.2.3.4.5"])


def test_weights_change_makes_cases_stale(archive):
    store, uids = archive
    rescore_archive(store, uids[:2], notes=False)
    from medviewer.store.archive import current_weights

    w = current_weights("pneumonia-chest224", False)
    assert is_current(store, uids[0], w, "pneumonia-chest224", None)
    assert not is_current(store, uids[2], w, "pneumonia-chest224", None)
    assert not is_current(store, uids[0], {"pneumonia-chest224": "0" * 64}, "pneumonia-chest224", None)


def test_killed_run_resumes(archive, db_url, tmp_path):
    """``medviewer rescore --all`` is SIGKILLed after some cases; running it again finishes the rest, and no case
    gets a second result."""
    store, uids = archive
    env = {**os.environ, "MEDVIEWER_DB_URL": db_url, "MEDVIEWER_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "-m", "medviewer", "rescore", "--all", "--no-notes"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = sum(1 for u in uids if store.ai_results(u))
            if done >= 2 or proc.poll() is not None:
                break
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    before = sum(1 for u in uids if store.ai_results(u))
    assert 2 <= before, "the first run did not get going"
    rerun = subprocess.run([sys.executable, "-m", "medviewer", "rescore", "--all", "--no-notes", "--json"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    import json

    summary = json.loads(rerun.stdout)
    assert summary["n_skipped"] >= before - 1 and summary["n_rescored"] + summary["n_skipped"] == 6
    assert all(len(store.ai_results(u)) == 1 for u in uids)


def test_scheduler_addresses_are_checked():
    from medviewer.store.archive import check_scheduler_address

    assert check_scheduler_address("tcp://10.0.0.5:8786") == "tcp://10.0.0.5:8786"
    for bad in ("garbage", "tcp://host", "tcp://host:99999", "http:/x"):
        with pytest.raises(ValueError, match="not a dask scheduler address"):
            check_scheduler_address(bad)
