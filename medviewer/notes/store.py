"""The :class:`NoteStore` interface of the notes pane (implemented by :class:`medviewer.store.CaseStore`), and
the small interim store notes lived in before the case store (``notes.sqlite3``; still read once to import old
notes, see :meth:`medviewer.store.CaseStore.import_interim_notes`).

SQLite (stdlib ``sqlite3``) in WAL mode; every save is one transaction, and every version of a note is kept
(nothing is overwritten), so a crash loses at most the write in flight, never an earlier note.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

SCHEMA = """
CREATE TABLE IF NOT EXISTS note_versions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    study_instance_uid TEXT NOT NULL,
    text TEXT NOT NULL,
    saved_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS note_versions_study ON note_versions (study_instance_uid, id);
CREATE TABLE IF NOT EXISTS note_findings (
    study_instance_uid TEXT PRIMARY KEY,
    findings_json TEXT NOT NULL,      -- [{label, probability, threshold, positive}]
    decisions_json TEXT NOT NULL,     -- {label: "confirmed" | "rejected"}
    model TEXT NOT NULL,
    model_version TEXT NOT NULL,
    text_version_id INTEGER,
    saved_at REAL NOT NULL
);
"""


@dataclass
class NoteRecord:
    """The latest note of a study and its findings (``findings`` as in NoteResult.to_dict()['findings'])."""

    study_instance_uid: str
    text: str = ""
    saved_at: float = 0.0
    findings: list[dict] = field(default_factory=list)
    decisions: dict[str, str] = field(default_factory=dict)
    model: str = ""
    model_version: str = ""


class NoteStore(Protocol):
    """What the notes pane needs from a store (implemented by :class:`medviewer.store.CaseStore`)."""

    def load(self, study_instance_uid: str) -> NoteRecord | None: ...

    def save_text(self, study_instance_uid: str, text: str, coalesce_s: float = 0.0) -> int: ...

    def save_findings(self, study_instance_uid: str, findings: list[dict], decisions: dict[str, str],
                      model: str, model_version: str, weights_sha256: str = "", run_id: int | None = None,
                      start_work: bool = True) -> int | None: ...


class SQLiteNoteStore:
    """:class:`NoteStore` on one SQLite file (default ``<data dir>/notes.sqlite3``); safe across threads."""

    def __init__(self, path: str | Path | None = None):
        if path is None:
            from medviewer.config import data_dir

            path = data_dir() / "notes.sqlite3"
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def save_text(self, study_instance_uid: str, text: str, coalesce_s: float = 0.0) -> int:  # noqa: ARG002
        """Append a new version of the note (one transaction); returns its id. Unchanged text is not stored
        again (the previous id is returned)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT id, text FROM note_versions WHERE study_instance_uid=? ORDER BY id DESC LIMIT 1",
                (study_instance_uid,)).fetchone()
            if row is not None and row[1] == text:
                return int(row[0])
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute(
                    "INSERT INTO note_versions (study_instance_uid, text, saved_at) VALUES (?, ?, ?)",
                    (study_instance_uid, text, time.time()))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            if cur.lastrowid is None:  # an INSERT always sets it
                raise sqlite3.DatabaseError("the database gave no row id for the new note version")
            return int(cur.lastrowid)

    def save_findings(self, study_instance_uid: str, findings: list[dict], decisions: dict[str, str],
                      model: str, model_version: str, weights_sha256: str = "", run_id: int | None = None,
                      start_work: bool = True) -> None:
        """Keep the latest findings of a study (this interim store keeps no history or workflow state)."""
        with self._lock:
            last = self._conn.execute("SELECT MAX(id) FROM note_versions WHERE study_instance_uid=?",
                                      (study_instance_uid,)).fetchone()[0]
            self._conn.execute(
                "INSERT INTO note_findings VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(study_instance_uid) DO UPDATE "
                "SET findings_json=excluded.findings_json, decisions_json=excluded.decisions_json, "
                "model=excluded.model, model_version=excluded.model_version, "
                "text_version_id=excluded.text_version_id, saved_at=excluded.saved_at",
                (study_instance_uid, json.dumps(findings), json.dumps(decisions), model, model_version, last,
                 time.time()))

    def load(self, study_instance_uid: str) -> NoteRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, saved_at FROM note_versions WHERE study_instance_uid=? ORDER BY id DESC LIMIT 1",
                (study_instance_uid,)).fetchone()
            f = self._conn.execute(
                "SELECT findings_json, decisions_json, model, model_version FROM note_findings "
                "WHERE study_instance_uid=?", (study_instance_uid,)).fetchone()
        if row is None and f is None:
            return None
        rec = NoteRecord(study_instance_uid, text=row[0] if row else "", saved_at=row[1] if row else 0.0)
        if f is not None:
            rec.findings, rec.decisions = json.loads(f[0]), json.loads(f[1])
            rec.model, rec.model_version = f[2], f[3]
        return rec

    def versions(self, study_instance_uid: str) -> list[tuple[int, str, float]]:
        """Every saved version (id, text, time), oldest first."""
        with self._lock:
            return [tuple(r) for r in self._conn.execute(
                "SELECT id, text, saved_at FROM note_versions WHERE study_instance_uid=? ORDER BY id",
                (study_instance_uid,))]
