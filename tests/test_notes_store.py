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
