"""Never the wrong patient: every dock and overlay follows the session; after switching image, series, case or
layout (in every order) nothing from the previous context stays visible or enabled, and stored AI results come
back when a case is reopened.

Data: real pydicom-data files in one folder: case A = the chest CR RG1_UNCI (series A1) plus a second series of
the same study (A2: the same film with new Series/SOP Instance UIDs, as a re-sent series is); case B = CT_small
(another patient); case M = emri_small (a 10-frame MR: the image switch is a frame change).
"""

from __future__ import annotations

import itertools
import shutil

import numpy as np
import pytest

from ui_helpers import mouse_move, viewport_center, wait_idle

pytest.importorskip("torch")

SWITCHES = ("image", "series", "case", "layout")
#: The level of the context each dock shows: it must be emptied on a switch at that level or coarser.
LEVEL = {"ai": "image", "readout": "image", "status": "image", "call": "case", "notes": "case", "case": "case",
         "annotations": "case", "browser": "series", "wl": "series", "title": "case"}
ORDER = {"image": 0, "series": 1, "case": 2}


@pytest.fixture
def reading_folder(tmp_path, pydicom_data):
    import pydicom
    from pydicom.uid import generate_uid

    folder = tmp_path / "reading"
    folder.mkdir()
    cr = pydicom_data("RG1_UNCI.dcm")
    shutil.copy(cr, folder / "a1.dcm")
    ds = pydicom.dcmread(cr)
    ds.SeriesInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesNumber = int(ds.get("SeriesNumber") or 1) + 1
    ds.SeriesDescription = "second series"
    ds.save_as(folder / "a2.dcm")
    from pydicom.data import get_testdata_file

    for name in ("CT_small.dcm", "emri_small.dcm"):
        path = get_testdata_file(name)
        if path is None:
            pytest.skip(f"pydicom test file {name} missing")
        shutil.copy(path, folder / name)
    return folder


def _keys(win) -> dict[str, str]:  # noqa: ANN001
    """Browser stack key per context name."""
    out = {}
    for key, e in win.browser.entries.items():
        desc = e.series.series_description or ""
        if e.series.modality == "CR":
            out["A2" if desc == "second series" else "A1"] = key
        elif e.series.modality == "CT":
            out["B"] = key
        elif e.series.modality == "MR":
            out["M"] = key
    assert set(out) == {"A1", "A2", "B", "M"}, out
    return out


def _show(qtbot, win, key: str, slot: int | None = None) -> None:  # noqa: ANN001
    if slot is not None:
        win.session.set_active(slot)
    win.open_stack(key)
    wait_idle(qtbot, win)
    entry = win.browser.entries[key]
    qtbot.waitUntil(lambda: win.case_panel.study_uid == entry.study.study_instance_uid, timeout=20000)


def _fill(qtbot, win) -> dict:  # noqa: ANN001
    """Put something of the focused context into every dock and overlay; returns what to look for."""
    v = win.viewer
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.run_ai(False, force=True)
    assert win.ai_panel.table.rowCount() > 0
    mouse_move(qtbot, v, viewport_center(v))
    qtbot.waitUntil(lambda: bool(v.readout.text()), timeout=5000)
    panel = win.case_panel
    panel.positive.setChecked(True)
    panel.confidence.setCurrentIndex(4)
    assert panel.record.isEnabled()
    v.set_window(1234, 4321)
    win.statusBar().showMessage("AI: 1 image scored (context marker)")
    return {"case": win.case_uid, "series": win.session.image.series_uid, "image": win.session.image,
            "readout": v.readout.text(), "patient": win.browser.entries[win.session.image.stack_key].patient,
            "title": win.windowTitle(), "viewer": v}


def _switch(qtbot, win, keys, kind: str) -> str:  # noqa: ANN001
    """Perform one switch from whatever is focused; returns the level at which the focused context changed."""
    image = win.session.image
    current = next(name for name, k in keys.items() if image is not None and k == image.stack_key) if image else None
    if kind == "image":
        assert current == "M"
        win.viewer.step_slice(1 if win.viewer.state.index < 9 else -1)
        after = win.session.image
        assert after.study_uid == image.study_uid and after.series_uid == image.series_uid and after != image
        return "image"
    if kind == "series":
        target = "A2" if current == "A1" else "A1"
        _show(qtbot, win, keys[target])
        return "series" if current in ("A1", "A2") else "case"
    if kind == "case":
        target = "B" if current != "B" else "A1"
        _show(qtbot, win, keys[target])
        return "case"
    # layout: 2x2 and the focus to an empty viewport (or from it back to the first one)
    if win.session.layout == "1x1":
        win.session.set_layout("2x2")
        slot = next(s for s in (3, 2, 1) if win.session.viewports[s].image is None
                    or win.session.viewports[s].image != image)
        win.session.set_active(slot)
    else:
        win.session.set_layout("1x1")
    qtbot.wait(20)
    return "case" if (win.session.image is None) != (image is None) or (
        win.session.image and image and win.session.image.study_uid != image.study_uid) else (
        "series" if win.session.image and image and win.session.image.series_uid != image.series_uid else "image")


def _assert_clean(win, before: dict, level: str) -> None:  # noqa: ANN001
    """Nothing of ``before`` (the previous context) is visible or enabled in a dock that shows ``level`` or a
    finer one."""
    def moved(dock: str) -> bool:
        return ORDER[level] >= ORDER[LEVEL[dock]]

    panel, ai, v = win.case_panel, win.ai_panel, win.viewer
    now = win.session.image
    if moved("ai"):
        cached = win.ai.lookup(now)
        if cached is None:
            assert ai.table.rowCount() == 0 and "P(" not in ai.verdict.text(), ai.verdict.text()
        else:  # the new image's own result (e.g. scored before): it must be for this image
            assert cached.sop_instance_uid == now.sop_instance_uid and cached.frame == now.frame
        if v.volume is not None:
            assert v.heatmaps.get(v.state.index) is None or cached is not None
    if moved("readout"):
        text = v.readout.text()
        if text and v.volume is not None:  # the value under the mouse of the image now shown, never the previous
            import re

            from medviewer.io.display import format_value

            m = re.match(r"row (\d+) col (\d+): (\S+)", text)
            assert m, text
            value = v.volume.array[v.state.index, int(m[1]), int(m[2])]
            assert m[3] == format_value(value) or m[3] == "padding", (text, value)
        assert "context marker" not in win.statusBar().currentMessage()
    if moved("case"):
        new_case = win.case_uid
        assert panel.study_uid == new_case
        assert not panel.positive.isChecked() and not panel.negative.isChecked()
        assert panel.confidence.currentIndex() == 0 and not panel.record.isEnabled()
        assert win.notes.study_uid == new_case
        assert before["title"] != win.windowTitle()
        from medviewer.io.display import format_person_name

        name, pid = format_person_name(before["patient"].patient_name), before["patient"].patient_id
        if name:
            assert name not in panel.header.text() and name not in win.windowTitle()
        if pid:
            assert pid not in panel.header.text() and f"({pid})" not in win.windowTitle()
        old_ann = {a.uid for a in win.case.annotations.get(before["case"], {}).values()}
        shown = {panel.annotation_list.item(i).data(256) for i in range(panel.annotation_list.count())}
        assert not (old_ann & shown)
        if new_case is None:
            assert not panel.sign_off.isEnabled() and not win.notes.editor.isEnabled()
            assert win.worklist.selected_uids() == [] and win.browser.selected_key() is None
    if moved("browser") and now is not None:
        assert win.browser.selected_key() == now.stack_key
    if moved("wl") and v.volume is not None and v is before["viewer"]:
        assert "4321" not in v.corners["br"].text()


def _prepare(open_window, reading_folder, qtbot):  # noqa: ANN001, ANN202
    win = open_window(reading_folder)
    keys = _keys(win)
    # an annotation stored on case A, listed in its Case dock
    from medviewer.imaging.annotations import Annotation

    a1 = win.browser.entries[keys["A1"]]
    ann = Annotation("text", [(10.0, 10.0)], a1.stack.slices[0].instance.sop_instance_uid, text="case A mark")
    win.store.save_annotation(a1.study.study_instance_uid, ann, {})
    win.case.annotations.pop(a1.study.study_instance_uid, None)
    _show(qtbot, win, keys["A1"])
    win.case.refresh()
    qtbot.waitUntil(lambda: win.case_panel.annotation_list.count() == 1, timeout=10000)
    return win, keys


@pytest.mark.parametrize("order", list(itertools.permutations(SWITCHES)), ids=lambda o: "-".join(o))
def test_switches_in_every_order_leave_nothing_of_the_previous_context(open_window, reading_folder, qtbot, order):
    win, keys = _prepare(open_window, reading_folder, qtbot)
    for kind in order:
        if win.session.image is None:  # an empty viewport has the focus: show something there first
            _show(qtbot, win, keys["B"])
        if kind == "image" and win.session.image.stack_key != keys["M"]:
            _show(qtbot, win, keys["M"])  # the multi-frame MR: the image switch is the next frame
        before = _fill(qtbot, win)
        level = _switch(qtbot, win, keys, kind)
        _assert_clean(win, before, level)


def test_call_form_after_a_case_change_records_nothing_on_the_new_case(open_window, reading_folder, qtbot):
    win, keys = _prepare(open_window, reading_folder, qtbot)
    panel = win.case_panel
    panel.positive.setChecked(True)
    panel.label_combo.setCurrentText("pneumothorax")
    a_uid = win.case_uid
    _show(qtbot, win, keys["B"])
    assert not panel.record.isEnabled() and panel.label_combo.currentText() != "pneumothorax"
    panel.record.click()
    # a stale form that emits for case A while B is focused is refused too
    panel.score_submitted.emit(a_uid, "pneumonia", True, 4, "", "Dr X")
    win.writer.flush()
    assert win.store.radiologist_scores(win.case_uid) == [] and win.store.radiologist_scores(a_uid) == []
    win.grab().save(str(reading_folder.parent / "call-form-after-case-change.png"))


def test_stored_ai_results_and_heat_maps_come_back_when_a_case_is_reopened(open_window, reading_folder, qtbot):
    win, keys = _prepare(open_window, reading_folder, qtbot)
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.run_ai(False, force=True)
    shown = {win.ai_panel.table.item(r, 0).text(): win.ai_panel.table.item(r, 1).text()
             for r in range(win.ai_panel.table.rowCount())}
    heat = win.viewer.heatmaps[win.viewer.state.index].copy()
    a_uid = win.case_uid
    win.writer.flush()
    win.close()
    # a new session on the same store: nothing cached, the case is reopened from the worklist
    win2 = open_window(reading_folder / "CT_small.dcm")
    assert win2.ai_panel.table.rowCount() == 0
    win2.open_case(a_uid)  # not in this scan: its folder is scanned again and the case shown
    qtbot.waitUntil(lambda: win2.case_uid == a_uid, timeout=60000)
    wait_idle(qtbot, win2)
    _show(qtbot, win2, _keys(win2)["A1"])  # the series that was scored
    qtbot.waitUntil(lambda: win2.ai_panel.table.rowCount() > 0, timeout=20000)
    again = {win2.ai_panel.table.item(r, 0).text(): win2.ai_panel.table.item(r, 1).text()
             for r in range(win2.ai_panel.table.rowCount())}
    assert again == shown
    qtbot.waitUntil(lambda: win2.viewer.heatmaps.get(win2.viewer.state.index) is not None, timeout=20000)
    stored = win2.viewer.heatmaps[win2.viewer.state.index]
    assert stored.shape == heat.shape
    # the stored map is an 8-bit PNG at <= 256 px: the same map up to that resolution
    assert np.corrcoef(stored.ravel(), heat.ravel())[0, 1] > 0.95
    win2.grab().save(str(reading_folder.parent / "reopened-case-with-stored-heat-map.png"))


def test_the_session_holds_each_viewports_view(open_window, reading_folder, qtbot):
    """Window/level and its source, zoom/pan and the tool are the session's, whichever widget changed them."""
    win, keys = _prepare(open_window, reading_folder, qtbot)
    v, view = win.viewer, win.session.active.view
    assert v.state is view  # the viewer renders the session's object: no copy to go stale
    v.set_window(400, 1500)
    assert (view.window.center, view.window.width, view.window_source) == (400.0, 1500.0, "manual")
    v.one_to_one()
    assert view.zoom == pytest.approx(1.0, abs=0.02) and view.pan is not None
    v.annotations.set_tool("length")
    assert view.tool == "length"
    v.annotations.set_tool(None)
    assert view.tool == "navigate"


def test_layout_geometry_and_docks_are_restored_at_start(qtbot):
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(761, 583)  # within the offscreen screen (800 x 800): restoreGeometry keeps windows on screen
    win.show()
    win.session.set_layout("2x2")
    win.worklist_dock.hide()
    assert win.menus.layouts["2x2"].isChecked() and win.grid.layout_name == "2x2"
    size = (win.width(), win.height())
    assert size != (1280, 820)  # not the default size
    win.close()
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    assert again.session.layout == "2x2" and again.grid.layout_name == "2x2"
    assert again.menus.layouts["2x2"].isChecked()
    assert (again.width(), again.height()) == size
    assert not again.worklist_dock.isVisible()
    widths = {v.width() for v in again.grid.visible_viewers()}
    assert max(widths) - min(widths) <= 2
    again.close()


def test_two_patients_under_one_study_uid_are_two_contexts_and_the_reader_is_warned(open_window, pydicom_data,
                                                                                     tmp_path, qtbot, caplog):
    """Merged or damaged data: pydicom-data's CR (RG1) and pydicom's MR_small (another patient) written under one
    StudyInstanceUID, as a PACS that reuses UIDs or a bad anonymiser produces."""
    import pydicom

    folder = tmp_path / "shared-uid"
    folder.mkdir()
    cr = pydicom_data("RG1_UNCI.dcm")
    shutil.copy(cr, folder / "cr.dcm")
    from pydicom.data import get_testdata_file

    mr = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    mr.StudyInstanceUID = pydicom.dcmread(folder / "cr.dcm", stop_before_pixels=True).StudyInstanceUID
    mr.save_as(folder / "mr.dcm")
    win = open_window(folder)
    assert "used by 2 different patients" in caplog.text and "used by 2 different patients" in win._message_box.text()
    keys = {e.series.modality: k for k, e in win.browser.entries.items()}
    uid = win.browser.entries[keys["CR"]].study.study_instance_uid
    win.open_stack(keys["CR"])
    wait_idle(qtbot, win)
    title = win.windowTitle()
    # the store cannot keep two patients' reports apart under one case: nothing may be recorded for it
    assert win.case_panel.study_uid is None and not win.case_panel.record.isEnabled()
    assert not win.notes.editor.isEnabled() and "used by 2 different patients" in win.notes.title.text()
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.run_ai(False, force=True)
    win.open_stack(keys["MR"])
    wait_idle(qtbot, win)
    assert win.windowTitle() != title and "RG1" not in win.windowTitle()
    assert win.ai_panel.table.rowCount() == 0  # the CR's result is not shown beside the MR
    win.writer.flush()
    assert win.store.ai_results(uid) == [] and win.store.radiologist_scores(uid) == []


def test_a_result_goes_to_the_viewport_of_its_image_never_beside_another_patient(open_window, reading_folder, qtbot):
    """1x2 with case A's film in both viewports; A is scored from the left one, which the reader then moves on
    to case B before the result arrives: the result goes to the right viewport (still A), not beside B."""
    win, keys = _prepare(open_window, reading_folder, qtbot)
    win.session.set_layout("1x2")
    _show(qtbot, win, keys["A1"], slot=1)
    win.session.set_active(0)
    a_uid = win.case_uid
    win.run_ai(False, force=True)
    win.open_stack(keys["B"])  # in the same event-loop turn: the result cannot have arrived yet
    qtbot.waitUntil(lambda: not win.runner.running("ai"), timeout=120000)
    wait_idle(qtbot, win)
    qtbot.waitUntil(lambda: bool(win.grid.viewers[1].heatmaps), timeout=20000)
    assert win.session.image.stack_key == keys["B"]
    assert win.ai_panel.table.rowCount() == 0 and not win.grid.viewers[0].heatmaps
    assert not win.ai_panel.progress.isVisible() and win.ai_panel.run_button.isEnabled()
    assert "scored" not in win.statusBar().currentMessage()
    win.writer.flush()
    assert len(win.store.ai_results(a_uid)) == 1 and win.store.ai_results(win.case_uid) == []
    win.session.set_active(1)  # the dock shows A's result when A is focused
    assert win.ai_panel.table.rowCount() > 0


def test_a_scan_never_takes_over_after_the_reader_opened_another_case(open_window, reading_folder, tmp_path, qtbot):
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(reading_folder / "CT_small.dcm", other / "ct.dcm")
    win, keys = _prepare(open_window, reading_folder, qtbot)
    win.open_path(str(other))  # a scan starts...
    win.open_stack(keys["M"])  # ...and the reader opens another series before it finishes
    qtbot.waitUntil(lambda: win.runner.latest("scan").done, timeout=60000)
    wait_idle(qtbot, win)
    qtbot.wait(100)
    assert win.session.image.stack_key == keys["M"]  # the scan filled the browser, not the viewport


def test_a_worklist_case_whose_folder_now_holds_another_study_shows_nothing_else(open_window, reading_folder,
                                                                                  tmp_path, qtbot):
    x = tmp_path / "incoming"
    x.mkdir()
    shutil.copy(reading_folder / "CT_small.dcm", x / "ct.dcm")
    win = open_window(x)
    b_uid = win.case_uid
    win.open_path(str(reading_folder / "a1.dcm"))
    qtbot.waitUntil(lambda: win.case_uid not in (None, b_uid), timeout=60000)
    wait_idle(qtbot, win)
    a_uid = win.case_uid
    (x / "ct.dcm").unlink()
    shutil.copy(reading_folder / "emri_small.dcm", x / "mr.dcm")  # the folder now holds another patient's study
    win.open_case(b_uid)
    qtbot.waitUntil(lambda: win.runner.latest("scan").done, timeout=60000)
    wait_idle(qtbot, win)
    qtbot.waitUntil(lambda: "not in" in win.statusBar().currentMessage(), timeout=10000)
    assert win.case_uid == a_uid and win.worklist.selected_uids() == [a_uid]


def test_a_note_whose_classification_a_switch_dropped_is_classified_on_return(open_window, reading_folder, qtbot):
    win, keys = _prepare(open_window, reading_folder, qtbot)
    a_uid = win.case_uid
    win.notes.editor.setPlainText("Small left pleural effusion.")
    _show(qtbot, win, keys["B"])  # before the debounce fired: A's classification never ran or was dropped
    assert win.notes.chips == []
    _show(qtbot, win, keys["A1"])
    assert win.case_uid == a_uid
    qtbot.waitUntil(lambda: any(c.label == "Effusion" for c in win.notes.chips), timeout=60000)
