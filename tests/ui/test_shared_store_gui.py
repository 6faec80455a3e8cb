"""Two workstations on one case store, seen from the window: another reader with the case open is announced, a
change made elsewhere shows up (status bar, worklist) without reopening, and a sign-off on a case changed elsewhere
since it was shown is refused with a message naming who, nothing overwritten."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QApplication, QMessageBox

from medviewer.store import CaseStore, ConflictError


def _other(win) -> CaseStore:  # noqa: ANN001
    return CaseStore(win.store.url, workstation="ws-other")


def test_other_reader_changes_and_sign_off_conflict(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    uid = win.case_uid
    other = _other(win)
    try:
        # another reader opens the same case: the worklist shows it after the next poll
        other.open_case(uid, "Dr Other")
        win.presence.poll()
        qtbot.waitUntil(lambda: "Dr Other (ws-other)" in (win.cases_list.rows.get(uid).being_read_by
                                                          if win.cases_list.rows.get(uid) else []),
                        timeout=20000)
        # they change the case: the window says so and shows it without reopening
        other.save_text(uid, "Dr Other: small right pleural effusion.")
        win.presence.poll()
        qtbot.waitUntil(lambda: "Changed on another workstation" in win.statusBar().currentMessage(), timeout=20000)
        assert "note saved on ws-other" in win.statusBar().currentMessage()
        # a change elsewhere after the reader was last shown the case: the sign-off is refused
        other.save_text(uid, "Dr Other: and a left basal opacity.")
        win.case_panel.reader.setText("Dr Here")
        win.case_panel.sign_off.click()
        win.writer.flush()
        qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), QMessageBox), timeout=20000)
        box = QApplication.activeModalWidget()
        assert "ws-other" in box.text() and "not saved" in box.text()
        box.close()
        case = win.store.get_case(uid)
        assert case.status != "reported" and case.reported_by == ""
        # shown the current state now: signing goes through
        win.case_panel.sign_off.click()
        win.writer.flush()
        assert win.store.get_case(uid).reported_by == "Dr Here"
        # and the other reader cannot sign over it
        with pytest.raises(ConflictError, match="already signed off by Dr Here"):
            other.sign_off(uid, "Dr Other")
    finally:
        other.close()


def test_opening_a_case_someone_else_reads_is_announced(open_window, philips_path, qtbot, tmp_path):
    win = open_window(philips_path)
    uid = win.case_uid
    other = _other(win)
    try:
        other.open_case(uid, "Dr Other")
        win.presence.open(uid, "Dr Here")  # as when the case is (re)opened in this window
        qtbot.waitUntil(lambda: isinstance(QApplication.activeModalWidget(), QMessageBox), timeout=20000)
        box = QApplication.activeModalWidget()
        assert "Dr Other (ws-other)" in box.text()
        box.close()
        assert sorted(r.workstation for r in other.readers(uid)) == sorted([win.store.workstation, "ws-other"])
        win.close()
        assert [r.workstation for r in other.readers(uid)] == ["ws-other"]  # closing the window closes the case
    finally:
        other.close()
