"""Failure paths of the case workflow: failing writes are retried in order (never dropped), an unreadable case
store falls back to a working temporary one, the opened case is the one the Case dock acts on, DICOM text is never
rendered as markup."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ui_helpers import wait_idle

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def test_store_writer_retries_a_failing_write_in_order(qtbot):
    from medviewer.ui.workers import StoreWriter

    writer = StoreWriter()
    writer.RETRY_S = (0.05,)
    done: list[str] = []
    attempts = {"n": 0}

    def flaky(tag: str) -> None:
        attempts["n"] += 1
        if attempts["n"] < 3:
            raise OSError("database is locked")
        done.append(tag)

    failed, recovered = [], []
    writer.failed.connect(failed.append)
    writer.recovered.connect(lambda: recovered.append(True))
    writer.submit(flaky, "first")
    writer.submit(done.append, "second")  # must wait for the first
    assert writer.flush(timeout=10)
    qtbot.waitUntil(lambda: bool(recovered), timeout=2000)
    assert done == ["first", "second"]
    assert len(failed) == 2 and "database is locked" in failed[0]
    writer.close()
    assert writer.lost == []


def test_store_writer_reports_writes_it_could_not_save_on_close(qtbot):
    from medviewer.ui.workers import StoreWriter

    writer = StoreWriter()
    writer.RETRY_S = (0.05,)

    def always_fails() -> None:
        raise PermissionError("attempt to write a readonly database")

    writer.submit(always_fails)
    writer.close(timeout=2)
    assert len(writer.lost) == 1 and "readonly" in writer.lost[0]


def test_unreadable_store_falls_back_to_a_working_temporary_store(tmp_path, qtbot, philips_path):
    from medviewer.imaging.annotations import Annotation
    from medviewer.ui.main_window import MainWindow

    data = Path(os.environ["MEDVIEWER_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    broken = data / "cases.sqlite3"
    broken.write_bytes(os.urandom(50000))
    win = MainWindow()
    qtbot.addWidget(win)
    assert "TEMPORARY" in win.statusBar().currentMessage() and str(broken) in win.statusBar().currentMessage()
    assert str(broken) not in win.store.url
    win.show()
    with qtbot.waitSignal(win.first_image_painted, timeout=60000):
        win.open_path(str(philips_path))
    wait_idle(qtbot, win)
    ref = win.viewer.volume.stack.slices[win.viewer.state.index]
    for n in range(10):  # writes from the writer thread while the worklist reads in a worker
        win.viewer.annotations.add(Annotation("arrow", [(n, n), (n + 20, n + 20)], ref.instance.sop_instance_uid,
                                              ref.frame.index))
        win.refresh_worklist()
    win.writer.flush()
    assert len(win.store.annotations(win.case_uid)) == 10 and not win.writer.errors
    assert broken.stat().st_size == 50000  # the broken file is left for recovery
    win.close()


def test_next_case_in_2x2_opens_into_the_active_viewport(open_window, philips_path, qtbot, tmp_path):
    ge = SHARED / "ct-head-ge"
    if not ge.is_dir():
        pytest.skip("ct-head-ge not present")
    folder = tmp_path / "ge"
    shutil.copytree(ge, folder)
    win = open_window(folder)
    ge_uid = win.case_uid
    win.open_path(str(philips_path))
    qtbot.waitUntil(lambda: win.case_uid not in (None, ge_uid), timeout=60000)
    wait_idle(qtbot, win)
    philips_uid = win.case_uid
    win.grid.set_layout("2x2")
    win.grid.set_active(win.grid.viewers[2])
    win.open_case(ge_uid)  # another folder: scanned again, then shown in the active viewport
    qtbot.waitUntil(lambda: win.case_uid == ge_uid, timeout=60000)
    wait_idle(qtbot, win)
    assert win.grid.active is win.grid.viewers[2]
    assert win._viewer_study(win.grid.viewers[2]) == ge_uid
    assert win.notes.study_uid == ge_uid and win.case_panel.study_uid == ge_uid
    with qtbot.waitSignal(win.worklist_refreshed, timeout=20000):
        win.refresh_worklist()
    assert win.worklist.selected_uids() == [ge_uid]
    assert philips_uid in win.worklist.visible_uids()


def test_case_header_shows_dicom_text_literally(qtbot):
    from medviewer.store.cases import Case
    from medviewer.ui.case_panel import CasePanel

    panel = CasePanel()
    qtbot.addWidget(panel)
    case = Case(id=1, study_instance_uid="1.2.3", patient_name="O'Brien^<b>Pat</b>", patient_id="X&Y",
                study_description="CT <HEAD> & NECK w/o", status="reported", reported_by="Dr <i>Who</i>",
                reported_at=1.7e9)
    panel.set_case(case)
    text = panel.header.text()
    assert "CT &lt;HEAD&gt; &amp; NECK w/o" in text and "Dr &lt;i&gt;Who&lt;/i&gt;" in text
    assert "<b>Pat</b>" not in text
