"""Notes pane: autosave survives close and reopen; typing is classified in a worker without stalling the GUI."""

from __future__ import annotations

from pathlib import Path

import pytest

from ui_helpers import Heartbeat

ROOT = Path(__file__).resolve().parents[2]


def test_autosave_restores_after_close_and_reopen(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    pane = win.notes
    assert pane.study_uid is not None
    qtbot.keyClicks(pane.editor, "Phantom study. No pneumothorax.")
    win.close()  # flushes the autosaver
    from medviewer.store import CaseStore

    store = CaseStore(win.store.url)  # a fresh connection: only what reached the disk
    rec = store.load(pane.study_uid)
    store.close()
    assert rec.text == "Phantom study. No pneumothorax."
    win2 = open_window(philips_path)
    assert win2.notes.editor.toPlainText() == "Phantom study. No pneumothorax."


@pytest.mark.skipif(not (ROOT / "models" / "notes-minilm" / "card.json").is_file(), reason="no notes model")
def test_typed_note_is_classified_without_stalling_the_gui(open_window, philips_path, qtbot):
    from medviewer.jobs.process import MODEL_PROCESS

    MODEL_PROCESS.shutdown()  # include starting the model process and loading the model in the measurement
    win = open_window(philips_path)
    pane = win.notes
    with Heartbeat() as beat, qtbot.waitSignal(pane.classified, timeout=180000):
        qtbot.keyClicks(pane.editor, "Small left pleural effusion.")
    assert "Effusion" in pane.result.positives
    assert any(c.label == "Effusion" for c in pane.chips)
    assert beat.worst_ms < 50, f"GUI thread stalled {beat.worst_ms:.0f} ms"
    # Confirming a chip is stored with the model version.
    chip = next(c for c in pane.chips if c.label == "Effusion")
    chip.click()
    pane.flush()  # the findings are written by the autosave thread
    rec = win.note_store.load(pane.study_uid)
    assert rec.decisions == {"Effusion": "confirmed"} and rec.model_version == pane.result.version
