"""The PACS GUI against a real Orthanc (Debian ``orthanc``) started by the tests on free loopback ports, holding the
GE head CT (28 slices): search, series listing, retrieval into a case that the main window opens, a responsive GUI
during a retrieval, cancel and resume (C-GET, then C-MOVE), errors in words in the status line (no modal),
stale searches dropped, the node editor, and Send to PACS (images and our SR) into a second, empty Orthanc.

Under CI (``CI=true``) a missing Orthanc fails instead of skipping: .ci/run installs it. Screenshots of the
dialogs go to /tmp/pacs_gui_*.png.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import replace
from pathlib import Path

import pydicom
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QApplication, QLineEdit, QMessageBox
from ui_helpers import LOAD_TIMEOUT_MS, Heartbeat, wait_idle

from medviewer.net import service
from tests.conftest import dicom_files
from medviewer.net.nodes import NetSettings, PacsError, PacsNode, load_settings, save_settings
from tests.orthanc_server import LocalOrthanc, available, free_port

if not available():
    if os.environ.get("CI"):
        pytest.fail("Orthanc is not installed (.ci/run installs Debian's orthanc and orthanc-dicomweb)",
                    pytrace=False)
    pytest.skip("Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)", allow_module_level=True)

NET_TIMEOUT_MS = 60000


@pytest.fixture(scope="module")
def scp_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def pacs(tmp_path_factory, ge_dir, scp_port):
    """An Orthanc holding the GE head CT, knowing us as MEDVIEWER at 127.0.0.1:scp_port (C-MOVE destination)."""
    with LocalOrthanc(tmp_path_factory.mktemp("orthanc"), our_port=scp_port) as server:
        files = dicom_files(ge_dir)
        assert server.upload(files) == len(files) == 28
        yield server


@pytest.fixture(scope="module")
def ge_study(ge_dir) -> tuple[str, set[str]]:
    uids, study = set(), ""
    for p in dicom_files(ge_dir):
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        uids.add(str(ds.SOPInstanceUID))
        study = str(ds.StudyInstanceUID)
    return study, uids


@pytest.fixture
def nodes(pacs, scp_port):
    """``nodes(*extra, timeout_s=30)``: save the hospital node (the Orthanc) and ``extra`` nodes as the user's
    settings."""
    def save(*extra: PacsNode, timeout_s: float = 30.0) -> NetSettings:
        hospital = replace(pacs.node(), name="Hospital PACS", timeout_s=timeout_s)
        settings = NetSettings(nodes=[hospital, *extra], scp_port=scp_port)
        save_settings(settings)
        return settings

    return save


@pytest.fixture
def window(qtbot):
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    yield win
    wait_idle(qtbot, win)
    win.close()
    assert win.runner.active_count() == 0


def _search(qtbot, dlg, **fields) -> int:  # noqa: ANN001
    for name, value in fields.items():
        widget = getattr(dlg, name)
        widget.setCurrentText(value) if hasattr(widget, "setCurrentText") else widget.setText(value)
    with qtbot.waitSignal(dlg.search_finished, timeout=NET_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(dlg.search_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def _select_node(dlg, name: str) -> None:  # noqa: ANN001
    i = dlg.node_combo.findText(name)
    assert i >= 0, name
    dlg.node_combo.setCurrentIndex(i)


def _retrieve(qtbot, dlg, timeout: int = NET_TIMEOUT_MS) -> str:  # noqa: ANN001
    with qtbot.waitSignal(dlg.retrieval_ended, timeout=timeout) as blocker:
        qtbot.mouseClick(dlg.retrieve_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def _screenshot(widget, name: str) -> None:  # noqa: ANN001
    """Save what ``widget`` shows (after pending layout updates) as /tmp/pacs_gui_<name>.png."""
    QApplication.processEvents()
    widget.grab().save(f"/tmp/pacs_gui_{name}.png")


def _no_modal_left() -> None:
    QApplication.processEvents()
    modal = QApplication.activeModalWidget()
    assert modal is None, getattr(modal, "text", lambda: "")()
    assert not [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


def _sops(folder: Path) -> set[str]:
    return {p.stem for p in folder.rglob("*.dcm")}


# ------------------------------------------------------------------------------------------------ retrieve
def test_search_list_series_retrieve_and_open(qtbot, window, nodes, ge_study):
    nodes()
    study_uid, uids = ge_study
    [action] = [a for a in window.findChildren(QAction) if a.shortcut().toString() == "Ctrl+Shift+Q"]
    assert action.text() == "&Query/Retrieve from PACS..."
    action.trigger()  # File > Query/Retrieve from PACS...
    dlg = window.pacs_dialog
    assert dlg.isVisible() and window.show_pacs() is dlg  # one dialog, kept
    assert dlg.node.name == "Hospital PACS" and dlg.move_box.isEnabled()
    assert _search(qtbot, dlg, modality="CT") == 1
    row = dlg.studies.rows[0]
    assert row["StudyInstanceUID"] == study_uid
    assert dlg.studies.index(0, 7).data() == "28"  # images column
    # the one study is selected: its series are listed below
    qtbot.waitUntil(lambda: dlg.series.rowCount() == 1, timeout=NET_TIMEOUT_MS)
    assert dlg.series.rows[0]["Modality"] == "CT"
    assert dlg.retrieve_button.text() == "Retrieve study"
    _screenshot(dlg, "query")

    with qtbot.waitSignal(window.load_finished, timeout=LOAD_TIMEOUT_MS):
        assert _retrieve(qtbot, dlg) == "finished"
    assert (dlg.progress.value(), dlg.progress.maximum(), dlg.progress.text()) == (28, 28, "28/28 images")
    assert "Retrieved 28 images" in dlg.status.text()
    cache = load_settings().cache_path()
    assert _sops(cache / study_uid) == uids
    # registered as a case, and shown in the viewer
    assert {i["sop_instance_uid"] for i in window.store.case_images(study_uid)} == uids
    wait_idle(qtbot, window)
    assert window.session.case_uid == study_uid
    assert window.viewer.volume.array.shape[0] == 28
    qtbot.waitUntil(lambda: window.case_uid == study_uid, timeout=5000)
    _screenshot(dlg, "retrieved")


def test_retrieval_keeps_gui_responsive_cancel_and_resume(qtbot, window, nodes, ge_study, monkeypatch):
    """A slow network (each received file takes 80 ms more to land): the GUI thread keeps ticking while images
    arrive; Cancel stops the retrieval part-way (what arrived is kept); Retrieve again resumes, here by C-MOVE.

    The node's timeout is 10 s: a C-GET cancelled while a C-STORE is being written sometimes waits for the DIMSE
    timeout in medviewer.net.dimse (pynetdicom's reactor dies on the late C-STORE response), which would make
    this test take 30 s more."""
    import medviewer.net.dimse as dimse

    real_write = dimse.write_object

    def slow_write(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        time.sleep(0.08)
        return real_write(*args, **kw)

    monkeypatch.setattr(dimse, "write_object", slow_write)
    nodes(timeout_s=10)
    study_uid, uids = ge_study
    dlg = window.show_pacs()
    assert _search(qtbot, dlg, patient_name="*") == 1
    qtbot.waitUntil(lambda: dlg.series.rowCount() == 1, timeout=NET_TIMEOUT_MS)

    def cancel_at_five(value: int) -> None:
        if value >= 5 and dlg.cancel_button.isEnabled():
            qtbot.mouseClick(dlg.cancel_button, Qt.MouseButton.LeftButton)

    dlg.progress.valueChanged.connect(cancel_at_five)
    with Heartbeat(interval_ms=20) as beat:
        assert _retrieve(qtbot, dlg) == "cancelled"
    dlg.progress.valueChanged.disconnect(cancel_at_five)
    have = _sops(load_settings().cache_path() / study_uid)
    assert 5 <= len(have) < len(uids)
    assert "cancelled after" in dlg.status.text() and "Retrieve again to resume" in dlg.status.text()
    assert len(beat.late) >= 10, "the GUI thread's timer did not fire during the retrieval"
    assert beat.worst_ms < 1000, f"the GUI thread stalled {beat.worst_ms:.0f} ms"
    assert window.store.get_case(study_uid) is None  # a cancelled retrieval is not a case yet

    dlg.move_box.setChecked(True)
    with qtbot.waitSignal(window.load_finished, timeout=LOAD_TIMEOUT_MS):
        assert _retrieve(qtbot, dlg) == "finished"
    assert dlg.progress.text() == "28/28 images"
    # resumed: only what was missing came (a file whose C-STORE was in flight at the cancel may have landed since)
    got = re.search(r"Retrieved (\d+) images, (\d+) already here", dlg.status.text())
    assert got and int(got[2]) >= len(have) and int(got[1]) + int(got[2]) == len(uids), dlg.status.text()
    assert _sops(load_settings().cache_path() / study_uid) == uids
    assert {i["sop_instance_uid"] for i in window.store.case_images(study_uid)} == uids


def test_dicomweb_node_retrieves_the_selected_series(qtbot, window, nodes, pacs, ge_study):
    """QIDO-RS search and WADO-RS retrieval of a selected series; C-MOVE is not offered for a DICOMweb node."""
    nodes(replace(pacs.web_node(), name="Web PACS"))
    study_uid, uids = ge_study
    dlg = window.show_pacs()
    _select_node(dlg, "Web PACS")
    assert not dlg.move_box.isEnabled()
    assert _search(qtbot, dlg, description="HEAD*") == 1
    qtbot.waitUntil(lambda: dlg.series.rowCount() == 1, timeout=NET_TIMEOUT_MS)
    dlg.series_table.selectRow(0)
    assert dlg.retrieve_button.text() == "Retrieve 1 series"
    with qtbot.waitSignal(window.load_finished, timeout=LOAD_TIMEOUT_MS):
        assert _retrieve(qtbot, dlg) == "finished"
    assert dlg.progress.text() == "28/28 images"
    assert _sops(load_settings().cache_path() / study_uid) == uids
    assert window.store.get_case(study_uid) is not None


# ------------------------------------------------------------------------------------------------ errors
def test_errors_are_shown_in_words_without_a_modal(qtbot, window, nodes, pacs, monkeypatch):
    """The status line shows the very PacsError the worker got (recorded here around service.find)."""
    closed = PacsNode(name="Closed port", ae_title="ANY", host="127.0.0.1", port=free_port(), timeout_s=3)
    wrong_ae = replace(pacs.node(), name="Wrong AE", ae_title="NOT_ORTHANC")
    stranger = replace(pacs.node(our_ae="STRANGER"), name="Unknown to it")
    nodes(closed, wrong_ae, stranger)
    raised: list[PacsError] = []
    real_find = service.find

    def find(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        try:
            return real_find(*args, **kw)
        except PacsError as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(service, "find", find)
    dlg = window.show_pacs()
    for node, cause in ((closed, "connection"), (wrong_ae, ""), (stranger, "unknown-ae")):
        _select_node(dlg, node.name)
        assert _search(qtbot, dlg) == 0
        exc = raised.pop()
        assert not cause or exc.cause == cause, (exc.cause, str(exc))
        text = dlg.status.text()
        assert text == f"Search failed: {exc}" and node.name in text, text
        assert dlg.status.property("error") == "true"
        assert dlg.studies.rowCount() == 0 and dlg.search_button.isEnabled()
        _no_modal_left()
        if node is wrong_ae:
            _screenshot(dlg, "error")
    # bad input never leaves the dialog
    dlg.study_date.setText("2024")
    qtbot.mouseClick(dlg.search_button, Qt.MouseButton.LeftButton)
    assert "study date '2024' is not YYYYMMDD" in dlg.status.text() and dlg.search_job is None
    _no_modal_left()


def test_a_new_search_drops_the_previous_one(qtbot, window, nodes):
    nodes()
    dlg = window.show_pacs()
    shown: list[int] = []
    dlg.search_finished.connect(shown.append)
    dlg.patient_name.setText("NOBODY*")
    dlg.search()
    first = dlg.search_job
    dlg.patient_name.setText("")
    dlg.modality.setCurrentText("CT")
    dlg.search()
    assert first.state.cancelled and dlg.search_job is not first
    qtbot.waitUntil(lambda: shown == [1], timeout=NET_TIMEOUT_MS)
    qtbot.waitUntil(lambda: window.runner.active_count() == 0, timeout=NET_TIMEOUT_MS)
    QApplication.processEvents()
    assert shown == [1] and dlg.studies.rowCount() == 1


def test_node_editor_saves_nodes_without_secrets_and_tests_the_connection(qtbot, window, pacs, monkeypatch):
    from medviewer.ui.pacs_nodes import NodeEditor

    monkeypatch.setenv("MY_PACS_TOKEN", "secret-value-never-saved")
    dlg = window.show_pacs()
    assert dlg.node is None and "No PACS configured" in dlg.status.text()
    dlg.edit_nodes()
    editor: NodeEditor = dlg.node_editor
    assert editor.isVisible()
    assert all(e.echoMode() == QLineEdit.EchoMode.Normal for e in editor.findChildren(QLineEdit))  # no password
    editor.name.setText("Main")
    editor.ae_title.setText(pacs.aet)
    editor.host.setText("127.0.0.1")
    editor.port.setValue(pacs.dicom_port)
    qtbot.mouseClick(editor.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.test_button.isEnabled(), timeout=NET_TIMEOUT_MS)
    assert editor.status.text().startswith("Connection OK"), editor.status.text()
    editor.add_node()
    editor.name.setText("Web")
    editor.kind.setCurrentIndex(1)
    editor.url.setText(pacs.dicomweb_url + "/")
    editor.auth.setCurrentIndex(editor.auth.findData("bearer"))
    editor.secret_env.setText("MY_PACS_TOKEN")
    assert "$MY_PACS_TOKEN is set" in editor.secret_state.text()
    editor.our_ae.setText("READING1")
    editor.scp_port.setValue(4100)
    _screenshot(editor, "nodes")
    assert editor.save(), editor.status.text()
    saved = load_settings()
    assert [n.name for n in saved.nodes] == ["Main", "Web"] and (saved.our_ae_title, saved.scp_port) == ("READING1",
                                                                                                          4100)
    web = saved.nodes[1]
    assert (web.url, web.auth, web.secret_env) == (pacs.dicomweb_url, "bearer", "MY_PACS_TOKEN")
    from medviewer.net.nodes import settings_path

    assert "secret-value-never-saved" not in settings_path().read_text()
    assert [dlg.node_combo.itemText(i) for i in range(dlg.node_combo.count())] == ["Main", "Web"]
    # an invalid node is not saved and the editor says why
    editor.node_list.setCurrentRow(0)
    editor.host.setText("")
    assert not editor.save()
    assert "host '' is not valid" in editor.status.text()
    assert len(load_settings().nodes) == 2 and load_settings().nodes[0].host == "127.0.0.1"
    editor.close()
    _no_modal_left()


# ------------------------------------------------------------------------------------------------ send
@pytest.fixture
def target(tmp_path):
    """A second, empty Orthanc to send to."""
    with LocalOrthanc(tmp_path / "target", aet="TARGET") as server:
        yield server


def _register(store, folder: Path) -> str:  # noqa: ANN001
    from medviewer.io.scan import scan
    from medviewer.report.dicom_objects import register_index_with_results

    index = scan(str(folder))
    register_index_with_results(store, index, str(folder))
    [study] = [s for p in index.patients.values() for s in p.studies.values()]
    return study.study_instance_uid


def _send(qtbot, dlg) -> str:  # noqa: ANN001
    with qtbot.waitSignal(dlg.send_ended, timeout=NET_TIMEOUT_MS) as blocker:
        qtbot.mouseClick(dlg.send_button, Qt.MouseButton.LeftButton)
    return blocker.args[0]


def _modalities(server: LocalOrthanc) -> list[str]:
    return sorted(server.rest("GET", f"/instances/{i}/simplified-tags")["Modality"] for i in server.instances())


def test_send_case_images_and_results(qtbot, window, nodes, ge_dir, target):
    nodes(replace(target.node(), name="Target"))
    uid = _register(window.store, ge_dir)
    window.store.add_radiologist_score(uid, "pneumonia", False, 4, "", "Dr Test")  # something for the SR
    window.worklist.send_requested.emit(uid)  # the worklist's context menu "Send to PACS…"
    dlg = window.send_dialog
    assert dlg.isVisible() and dlg.study_uid == uid
    _select_node(dlg, "Target")
    assert dlg.images_box.isChecked() and dlg.images_box.text() == "The study's images (28)"
    assert _send(qtbot, dlg) == "finished"
    out = dlg.sent
    n_results = sum(out.results.values())
    assert (out.images, out.sent, out.failed) == (28, 28 + n_results, 0)
    assert len(target.instances()) == 28 + n_results
    line = dlg.status.text()
    assert line.startswith(f"Sent {28 + n_results} objects to Target, 0 failed"), line
    # no heat map here: never a SEG or SC; the SR when the report module can write it for this case, else the
    # line says why the results stayed behind (the images went all the same)
    assert "seg" not in out.results and "sc" not in out.results
    assert (out.results == {"sr": 1} and "1 SR; no heat map, so no SEG or SC" in line) or \
        ("could not be written" in line and out.results == {}), line
    _screenshot(dlg, "send")
    _no_modal_left()


def test_send_sr_only(qtbot, window, nodes, target, tmp_path):
    """A case with a reader call and no AI result: the SR alone goes (no SEG/SC without a heat map)."""
    from pydicom.data import get_testdata_file

    nodes(replace(target.node(), name="Target"))
    src = tmp_path / "ct-small"
    src.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), src / "ct.dcm")
    uid = _register(window.store, src)
    window.store.add_radiologist_score(uid, "pneumonia", True, 3, "", "Dr Test")
    dlg = window.send_to_pacs(uid)
    _select_node(dlg, "Target")
    dlg.images_box.setChecked(False)
    assert _send(qtbot, dlg) == "finished"
    assert dlg.sent.results == {"sr": 1}
    assert _modalities(target) == ["SR"]
    assert "Sent 1 object to Target, 0 failed" in dlg.status.text()
    assert "1 SR; no heat map, so no SEG or SC" in dlg.status.text()


def test_send_errors_and_nothing_selected(qtbot, window, nodes, ge_dir):
    closed = PacsNode(name="Closed port", ae_title="ANY", host="127.0.0.1", port=free_port(), timeout_s=3)
    nodes(closed)
    uid = _register(window.store, ge_dir)
    dlg = window.send_to_pacs(uid)
    _select_node(dlg, "Closed port")
    dlg.results_box.setChecked(False)
    assert _send(qtbot, dlg) == "failed"
    assert dlg.status.text().startswith("Send failed: ") and dlg.status.property("error") == "true"
    _no_modal_left()
    dlg.images_box.setChecked(False)
    assert not dlg.send_button.isEnabled()
    # no case open, nothing selected: the status bar says so, no dialog
    window.session.show(window.session.active_slot, None)  # the viewport shows nothing
    window.worklist.set_rows([])
    assert window.send_to_pacs() is None
    assert "open or select a case first" in window.statusBar().currentMessage()



def test_app_listener_receives_pushed_studies_and_takes_c_moves(pacs, ge_study, scp_port, qtbot):
    """With "Receive studies pushed to us" saved, the window runs our Storage SCP: a study Orthanc pushes becomes a
    case in the worklist, and a C-MOVE from the Query/Retrieve dialog goes to that listener (no second one on the
    same port)."""
    import json

    from medviewer.ui.main_window import MainWindow

    study_uid, uids = ge_study
    save_settings(NetSettings(nodes=[pacs.node()], scp_port=scp_port, listen=True))
    win = MainWindow()
    qtbot.addWidget(win)
    try:
        assert win.pacs_listener.scp is not None and win.pacs_listener.scp.port == scp_port
        orthanc_id = pacs.rest("POST", "/tools/lookup", study_uid.encode())[0]["ID"]
        pacs.rest("POST", "/modalities/medviewer/store", json.dumps({"Resources": [orthanc_id],
                                                                     "Synchronous": True}).encode())
        qtbot.waitUntil(lambda: study_uid in win.cases_list.rows, timeout=NET_TIMEOUT_MS)
        assert "Received 28 object(s)" in win.statusBar().currentMessage()
        assert {i["sop_instance_uid"] for i in win.store.case_images(study_uid)} == uids
        # a C-MOVE through the dialog lands through the running listener
        shutil.rmtree(win.pacs_listener.root / study_uid)
        dialog = win.show_pacs()
        from medviewer.ui.pacs_retrieve import retrieve_case
        from medviewer.jobs import TaskState

        out = retrieve_case(pacs.node(), study_uid, [], win.pacs_listener.root, True, dialog.settings, win.store,
                            TaskState(), None, win.pacs_listener.scp)
        assert out.received == 28 and out.case_ids
        # switching it off stops listening
        win.pacs_listener.apply(NetSettings(nodes=[pacs.node()], scp_port=scp_port, listen=False))
        assert win.pacs_listener.scp is None
    finally:
        win.close()
