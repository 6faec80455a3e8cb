"""The workstation loop in the window: a scanned study becomes a case in the store; annotations, the radiologist's
call and sign-off are saved off the GUI thread and are all there after a restart; the worklist lists the case and
opens it; the report exports from the window."""

from __future__ import annotations

import os

import pytest

from medviewer.imaging.annotations import Annotation
from ui_helpers import wait_idle


def _image_uid(win) -> tuple[str, int]:  # noqa: ANN001
    ref = win.viewer.volume.stack.slices[win.viewer.state.index]
    return ref.instance.sop_instance_uid, ref.frame.index


def test_case_survives_restart(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    study_uid = win.case_uid
    assert study_uid is not None
    case = win.store.get_case(study_uid)
    assert case is not None and case.source_path == os.path.abspath(philips_path)

    # Measure: an ellipse ROI in the phantom and a length, through the viewer's annotation layer.
    sop, frame = _image_uid(win)
    rows, cols = win.viewer.volume.array.shape[1:]
    roi = Annotation("ellipse", [(cols * 0.4, rows * 0.4), (cols * 0.6, rows * 0.6)], sop, frame)
    line = Annotation("length", [(cols * 0.2, rows * 0.5), (cols * 0.8, rows * 0.5)], sop, frame)
    win.viewer.annotations.add(roi)
    win.viewer.annotations.add(line)
    expected_mm = 0.6 * cols * float(win.viewer.volume.spacing[2])
    assert win.viewer.annotations.measurement(line.uid).length == pytest.approx(expected_mm)
    # Undo the length: it must be deleted from the store too.
    win.viewer.annotations.undo()

    # The radiologist's call and sign-off from the Case dock.
    panel = win.case_panel
    panel.label_combo.setCurrentText("pneumonia")
    panel.negative.setChecked(True)
    panel.confidence.setCurrentIndex(4)
    panel.reader.setText("Dr Test")
    panel.record.click()
    panel.sign_off.click()
    win.writer.flush()
    win.close()

    win2 = open_window(philips_path)
    assert win2.case_uid == study_uid
    case = win2.store.get_case(study_uid)
    assert case.status == "reported" and case.reported_by == "Dr Test"
    stored = win2.store.annotations(study_uid)
    assert [a.uid for a in stored] == [roi.uid]
    assert stored[0].points == roi.points
    # Restored on screen, on the image it was drawn on, with its HU statistics.
    assert [a.uid for a in win2.viewer.annotations.annotations_for(sop, frame)] == [roi.uid]
    m = win2.viewer.annotations.measurement(roi.uid)
    assert m.mean is not None and m.units == "HU" and m.area > 0
    scores = win2.store.radiologist_scores(study_uid)
    assert scores[-1].label == "pneumonia" and scores[-1].positive is False and scores[-1].confidence == 4
    kinds = [e.kind for e in win2.store.events(study_uid)]
    assert {"case registered", "annotation added", "annotation deleted", "radiologist score", "signed off",
            "case opened"} <= set(kinds)
    # The Case dock shows it.
    win2.case.refresh()
    assert "reported" in win2.case_panel.status.text()
    assert win2.case_panel.annotation_list.count() == 1


def test_worklist_lists_and_opens_cases(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    with qtbot.waitSignal(win.worklist_refreshed, timeout=20000):
        win.refresh_worklist()
    uids = win.worklist.visible_uids()
    assert win.case_uid in uids
    # Next/previous from the keyboard shortcuts' slots keep the case open.
    win.worklist.select_uid(win.case_uid)
    win.next_case()  # one case only: stays on it
    assert win.case_uid == uids[0]
    win.open_case(win.case_uid)
    wait_idle(qtbot, win)
    assert win.viewer.volume is not None


def test_export_report_from_the_window(open_window, philips_path, qtbot, tmp_path):
    pypdf = pytest.importorskip("pypdf")
    win = open_window(philips_path)
    win.notes.editor.setPlainText("Phantom. No acute abnormality.")
    win.notes.flush()
    out = tmp_path / "report.pdf"
    with qtbot.waitSignal(win.export_finished, timeout=60000):
        win.cases_list.export_report(path=str(out), json_path=str(tmp_path / "report.json"))
    text = "\n".join(p.extract_text() for p in pypdf.PdfReader(str(out)).pages)
    assert "Phantom. No acute abnormality." in text
    assert (tmp_path / "report.json").is_file()
    assert any(e.kind == "report exported" for e in win.store.events(win.case_uid))


def test_ai_results_are_stored_and_rescoring_keeps_the_history(open_window, pydicom_data, qtbot):
    """Run AI in the viewer (stored with its heat map), then re-score the case from the worklist in the model
    process: both results are kept, the run is recorded, and the history lists both. The adult CR may be outside
    the default model's intended use: the reader's "score anyway" is recorded and carried into the re-score."""
    from medviewer.inference.scorer import DEFAULT_MODEL
    from medviewer.store.rescore import case_history

    win = open_window(pydicom_data("RG1_UNCI.dcm"))
    uid = win.case_uid
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.run_ai(False, force=True)
    win.writer.flush()
    first = win.store.ai_results(uid)
    assert len(first) == 1 and first[0].heatmap() is not None and first[0].run_id is None
    with qtbot.waitSignal(win.rescore_finished, timeout=180000) as blocker:
        win.cases_list.rescore([uid])
    summary = blocker.args[0]
    assert summary["cases"] == 1 and summary["errors"] == []
    assert summary["flipped"] == 0 and summary["notes_flipped"] == 0  # image and note calls counted apart
    results = win.store.ai_results(uid)
    assert len(results) == 2 and results[1].run_id == summary["run_id"]
    assert results[1].score == pytest.approx(results[0].score, abs=1e-4)  # same weights, same call
    assert results[1].status == results[0].status and results[0].status in ("scored", "scored_anyway")
    run = win.store.runs()[-1]
    assert run["state"] == "finished" and run["n_done"] == 1 and DEFAULT_MODEL in run["models"]
    history = case_history(win.store, uid, DEFAULT_MODEL)
    assert len(history) == 2 and not any(h["flipped"] for h in history)
    with qtbot.waitSignal(win.worklist_refreshed, timeout=20000):
        win.refresh_worklist()
    row = win.cases_list.rows[uid]
    assert row.ai_score == pytest.approx(results[1].score)
