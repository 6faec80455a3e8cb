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
    assert len(failed) == 2 and "locked by another program" in failed[0]
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
    assert writer.lost == [(always_fails, ())] and "read-only" in writer.errors[-1]


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
    temporary = Path(win.temporary_store_dir)
    assert temporary.is_dir()
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
    assert not temporary.exists()  # no patient data left behind in the temp folder


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
    assert win.session.viewports[2].image.study_uid == ge_uid
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


def test_store_writer_close_does_not_wait_on_every_failing_write(qtbot):
    import time

    from medviewer.ui.workers import StoreWriter

    writer = StoreWriter()
    writer.RETRY_S = (0.2,)

    def locked(n: int) -> None:
        time.sleep(0.3)  # as if waiting on the busy timeout
        raise OSError("database is locked")

    for n in range(20):
        writer.submit(locked, n)
    t0 = time.monotonic()
    writer.close(timeout=3)
    assert time.monotonic() - t0 < 12
    assert sorted(args[0] for _fn, args in writer.lost) == list(range(20))  # every write is accounted for


def test_chips_of_one_case_are_never_saved_into_another(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    pane = win.notes
    pane.set_study("1.2.3.1", "A")
    # A classification arrives for study A (as _on_result would show it).
    findings = [{"label": "Effusion", "probability": 0.9, "threshold": 0.5, "positive": True}]
    pane._show_chips(findings, {})
    win.store.save_text("1.2.3.1", "Small left effusion.")
    win.store.save_findings("1.2.3.1", findings, {}, "notes-minilm", "1.0.0", start_work=False)
    pane.set_study("1.2.3.2", "B")
    assert pane.result is None and pane.chips == []
    pane._save_findings(reader_action=True)  # nothing to save for B
    pane.flush()
    assert win.store.get_case("1.2.3.2") is None or win.store.note_results("1.2.3.2") == []
    # Back on A: the stored chips can be confirmed and the decision is kept.
    pane.set_study("1.2.3.1", "A")
    chip = next(c for c in pane.chips if c.label == "Effusion")
    chip.click()
    pane.flush()
    assert win.store.note_results("1.2.3.1")[-1].decisions == {"Effusion": "confirmed"}


def test_history_dialog_opens(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    win.show_history()
    assert win.history_dialog.isVisible()
    win.history_dialog.close()


def test_overlay_and_notes_title_show_markup_literally(open_window, philips_path):
    from PySide6.QtCore import Qt

    win = open_window(philips_path)
    assert all(label.textFormat() == Qt.TextFormat.PlainText for label in win.viewer.corners.values())
    assert win.notes.title.textFormat() == Qt.TextFormat.PlainText


def test_damaged_store_opens_read_only_and_studies_still_open(tmp_path, qtbot, philips_path):
    """A case store that fails its integrity check is opened read-only with the reason in the status bar, is
    never written, and reading studies still works."""
    from medviewer.io.model import Patient, Study
    from medviewer.store import CaseStore
    from medviewer.ui.main_window import MainWindow

    data = Path(os.environ["MEDVIEWER_DATA_DIR"])
    data.mkdir(parents=True, exist_ok=True)
    path = data / "cases.sqlite3"
    store = CaseStore(path=path)
    store.register_study(Patient("Doe^Jane", "P1"), Study("1.2.3", "20240101"))
    store.close()
    raw = bytearray(path.read_bytes())
    for i in range(4096 + 100, min(len(raw), 3 * 4096), 7):
        raw[i] = 0xAB
    path.write_bytes(bytes(raw))
    before = path.read_bytes()
    win = MainWindow()
    qtbot.addWidget(win)
    assert win.store.read_only and "READ-ONLY" in win.statusBar().currentMessage()
    win.show()
    with qtbot.waitSignal(win.first_image_painted, timeout=60000):
        win.open_path(str(philips_path))
    wait_idle(qtbot, win)
    assert win.viewer.volume is not None and win.viewer.volume.array.shape[0] == 140
    win.close()
    assert path.read_bytes() == before


def test_help_show_log_shows_the_application_log(qtbot):
    """Warnings go to <data dir>/medviewer.log (no silent fallbacks) and Help > Show log shows them."""
    import logging

    from medviewer.logs import log_path, setup_logging
    from medviewer.ui.dialogs import LogDialog
    from medviewer.ui.main_window import MainWindow

    path = setup_logging()
    assert path == log_path() and Path(os.environ["MEDVIEWER_DATA_DIR"]) in path.parents
    logging.getLogger("medviewer.test").warning("a warning the reader can find later")
    for h in logging.getLogger("medviewer").handlers:
        h.flush()
    win = MainWindow()
    qtbot.addWidget(win)
    names = [a.text() for a in win.menuBar().actions() for a in (a.menu().actions() if a.menu() else [])]
    assert "Show log" in names
    dialog = LogDialog(win)
    qtbot.addWidget(dialog)
    assert "a warning the reader can find later" in dialog.text.toPlainText()
    win.close()
