"""The local note store: versions kept, findings with model version, survives a killed writer process."""

from __future__ import annotations

import subprocess
import sys
import time

from medviewer.notes.store import SQLiteNoteStore


def test_versions_are_kept_and_latest_is_loaded(tmp_path):
    store = SQLiteNoteStore(tmp_path / "n.sqlite3")
    store.save_text("1.2.3", "Small left")
    store.save_text("1.2.3", "Small left effusion.")
    store.save_text("1.2.3", "Small left effusion.")  # unchanged: not stored twice
    store.save_findings("1.2.3", [{"label": "Effusion", "probability": 0.9, "threshold": 0.5, "positive": True}],
                        {"Effusion": "confirmed"}, "notes-minilm", "1.0.0")
    rec = store.load("1.2.3")
    assert rec.text == "Small left effusion." and rec.decisions == {"Effusion": "confirmed"}
    assert rec.model_version == "1.0.0" and rec.findings[0]["label"] == "Effusion"
    assert [v[1] for v in store.versions("1.2.3")] == ["Small left", "Small left effusion."]
    assert store.load("9.9.9") is None
    store.close()
    again = SQLiteNoteStore(tmp_path / "n.sqlite3")
    assert again.load("1.2.3").text == "Small left effusion."


def test_killed_writer_loses_nothing_committed(tmp_path):
    db = tmp_path / "kill.sqlite3"
    code = (
        "import sys, time\n"
        "from medviewer.notes.store import SQLiteNoteStore\n"
        f"s = SQLiteNoteStore({str(db)!r})\n"
        "i = 0\n"
        "while True:\n"
        "    s.save_text('study', f'note {i}')\n"
        "    print(i, flush=True)\n"
        "    i += 1\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    committed = -1
    deadline = time.time() + 30
    while committed < 200 and time.time() < deadline:
        committed = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    store = SQLiteNoteStore(db)
    texts = [v[1] for v in store.versions("study")]
    # Every write the process reported as done is there, in order, and the database opens cleanly.
    assert texts[: committed + 1] == [f"note {i}" for i in range(committed + 1)]
    assert store._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_three_state_findings_survive_the_interim_store_and_its_import(tmp_path):
    """Findings with a "state" keep it in the interim store and when imported into the case store, where the
    uncertain ones are told apart from the present ones."""
    from medviewer.store import CaseStore

    findings = [
        {"label": "Effusion", "state": "present", "probability": 0.9, "threshold": 0.5, "positive": True,
         "uncertain_probability": 0.05, "uncertain_threshold": 0.5},
        {"label": "Pneumothorax", "state": "uncertain", "probability": 0.1, "threshold": 0.5, "positive": False,
         "uncertain_probability": 0.8, "uncertain_threshold": 0.5},
    ]
    legacy = SQLiteNoteStore(tmp_path / "notes.sqlite3")
    legacy.save_text("1.2.3", "Effusion. Cannot exclude pneumothorax.")
    legacy.save_findings("1.2.3", findings, {}, "notes-minilm", "2.0.0")
    assert [f["state"] for f in legacy.load("1.2.3").findings] == ["present", "uncertain"]
    legacy.close()
    store = CaseStore(path=tmp_path / "cases.sqlite3")
    try:
        assert store.import_interim_notes(tmp_path / "notes.sqlite3") == 1
        [res] = store.note_results("1.2.3")
        assert res.findings == findings
        assert res.positives == ["Effusion"] and res.uncertain == ["Pneumothorax"]
        [row] = store.worklist()
        assert row.note_findings == ["Effusion"] and row.note_uncertain == ["Pneumothorax"]
    finally:
        store.close()
