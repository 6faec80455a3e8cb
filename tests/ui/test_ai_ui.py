"""The image-AI flow in the window: Run AI -> score panel + registered heat map -> opacity/toggle/class change the
drawn image; results are cached; the GUI thread never runs the model."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from ui_helpers import STALL_RETRY, Heartbeat, grab_viewport

pytest.importorskip("torch")


def _centre(img: np.ndarray) -> np.ndarray:
    """The middle of the viewport: image pixels only (no corner text, no colour bar at the right edge)."""
    h, w = img.shape[:2]
    return img[int(0.2 * h):int(0.8 * h), int(0.15 * w):int(0.75 * w)]


def _run_ai(qtbot, win, force: bool = True):  # noqa: ANN001
    """Run the AI on the current image; ``force`` scores it even if the intended-use gate refuses it (the adult
    CR of pydicom-data is outside the default model's training population)."""
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.run_ai(False, force=force)


def test_run_ai_shows_scores_and_heat_map_and_opacity_changes_the_image(open_window, pydicom_data, qtbot):
    import pydicom

    from medviewer.inference.frames import read_frame
    from medviewer.inference.scorer import DEFAULT_MODEL, ImageModel

    path = pydicom_data("RG1_UNCI.dcm")
    win = open_window(path)
    # Only image models are offered (the notes model's card lives beside it in models/), the default first.
    names = [win.ai_panel.model_combo.itemText(i) for i in range(win.ai_panel.model_combo.count())]
    assert names[0] == DEFAULT_MODEL and "pneumonia-cnn" in names and "notes-minilm" not in names
    v = win.viewer
    panel = win.ai_panel
    before = grab_viewport(v).astype(np.int32)
    model = ImageModel.load(DEFAULT_MODEL, device="cpu")
    gated = model.score_frame(read_frame(path), explain=None)
    _run_ai(qtbot, win, force=False)
    if not gated.has_call:  # the gate's answer is shown in words, with "Score anyway"
        assert "No call" in panel.verdict.text() and panel.force_button.isVisible()
        assert gated.scope_reason in panel.warning.text() and panel.table.rowCount() == 0
        assert v.heatmaps.get(v.state.index) is None
        with qtbot.waitSignal(win.ai_finished, timeout=120000):
            panel.force_button.click()
    else:
        assert not panel.force_button.isVisible()
    # The score panel shows the probabilities an independent scoring of the same file gives.
    expected = model.score_frame(read_frame(path), explain=None, force=True)
    shown = {panel.table.item(r, 0).text(): float(panel.table.item(r, 1).text()) for r in range(panel.table.rowCount())}
    for label, p in expected.probabilities.items():
        assert shown[label] == pytest.approx(p, abs=5e-4)
    assert DEFAULT_MODEL in panel.model_label.text() and "threshold" in panel.verdict.text()
    assert not panel.force_button.isVisible()
    # A heat map on the image's own pixel grid is drawn over it, with its colour bar.
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    heat = v.heatmaps[v.state.index]
    assert heat.shape == (ds.Rows, ds.Columns)
    assert v.heat_item.isVisible() and v.colorbar.opacity() == 1.0
    with_heat = grab_viewport(v).astype(np.int32)
    assert np.abs(with_heat - before).mean() > 1.0
    # Opacity changes the drawn image; 0 % gives back the plain image (up to rounding).
    panel.opacity.setValue(90)
    qtbot.wait(20)
    strong = grab_viewport(v).astype(np.int32)
    assert np.abs(strong - with_heat).mean() > 1.0
    panel.opacity.setValue(0)
    qtbot.wait(20)
    assert np.abs(_centre(grab_viewport(v).astype(np.int32)) - _centre(before)).mean() < 1.0
    # H toggles the overlay.
    panel.opacity.setValue(60)
    qtbot.keyClick(win, Qt.Key.Key_H)
    qtbot.wait(20)
    assert not v.heat_item.isVisible()
    qtbot.keyClick(win, Qt.Key.Key_H)
    qtbot.wait(20)
    assert v.heat_item.isVisible()


def test_class_choice_recomputes_and_results_are_cached(open_window, pydicom_data, qtbot):
    win = open_window(pydicom_data("RG1_UNCI.dcm"))
    v = win.viewer
    _run_ai(qtbot, win)
    first = v.heatmaps[v.state.index].copy()
    assert len(win.ai.cache) == 1
    with qtbot.waitSignal(win.ai_finished, timeout=120000):
        win.ai_panel.class_combo.setCurrentText("normal")
    other = v.heatmaps[v.state.index]
    assert len(win.ai.cache) == 2 and not np.allclose(first, other)
    assert "normal" in v.heat_caption
    # Back to "pneumonia": served from the cache, no new job.
    jobs_before = len(win.runner.jobs)
    win.ai_panel.class_combo.setCurrentText("pneumonia")
    qtbot.wait(50)
    np.testing.assert_array_equal(v.heatmaps[v.state.index], first)
    assert len(win.runner.jobs) <= jobs_before and len(win.ai.cache) == 2


def test_gui_thread_keeps_ticking_while_the_model_runs(open_window, pydicom_data, qtbot):
    """A 5 ms heartbeat on the GUI thread is never late by more than 50 ms while the model loads and scores
    (in the model process, driven from a worker thread), in one of two tries (STALL_RETRY in ui_helpers)."""
    from medviewer.jobs.process import MODEL_PROCESS

    from medviewer.ui.app import freeze_startup_objects

    MODEL_PROCESS.shutdown()  # include starting the model process and loading the model in the measurement
    win = open_window(pydicom_data("RG1_UNCI.dcm"))
    # As the app does after start-up: objects made so far (here: by every earlier test in this process, torch
    # models included) move out of the collector's generations, so a full collection does not walk them.
    freeze_startup_objects()
    stalls = []
    for _ in range(1 + STALL_RETRY):
        with Heartbeat() as beat:
            _run_ai(qtbot, win)  # force=True: scored again, never from the cache
        assert len(beat.late) > 5
        stalls.append(round(beat.worst_ms))
        if beat.worst_ms < 50:
            break
        MODEL_PROCESS.shutdown()  # the retry starts the model process and loads the model again
    assert min(stalls) < 50, f"GUI thread stalled {stalls} ms (two tries)"
