"""Tables of the case store (SQLAlchemy Core) and its numbered migrations.

The schema is portable SQL (SQLite by default, PostgreSQL later): JSON goes in TEXT columns, times are UTC epoch
seconds (float), booleans are SQLAlchemy ``Boolean``. A case is one study (StudyInstanceUID); everything else hangs
off ``cases.id`` with ``ON DELETE CASCADE``. History tables are append-only: a note edit adds a note version, a
re-score adds AI results, a new radiologist call adds a score row; annotations are updated in place but deleted
softly (``deleted_at``) and every change is also an ``events`` row.

Migrations: :data:`MIGRATIONS` maps a version number to a function that brings the database from the previous
version to that one, run inside one transaction together with the ``schema_version`` row that records it.
"""

# No ``from __future__ import annotations`` here: the ``annotations`` table below would rebind that name (a
# ``__future__._Feature`` to type checkers), and nothing in this module needs postponed annotations.
from typing import Callable

from sqlalchemy import (Boolean, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table,
                        Text, UniqueConstraint)
from sqlalchemy.engine import Connection

metadata = MetaData()

#: Case status values, in workflow order.
STATUSES = ("new", "in progress", "reported")

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, primary_key=True),
    Column("applied_at", Float, nullable=False),
)

cases = Table(
    "cases", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("study_instance_uid", String(64), nullable=False, unique=True),
    Column("patient_name", Text, nullable=False, default=""),
    Column("patient_id", Text, nullable=False, default=""),
    Column("patient_birth_date", String(16), nullable=False, default=""),
    Column("patient_sex", String(16), nullable=False, default=""),
    Column("study_date", String(16), nullable=False, default=""),
    Column("study_time", String(32), nullable=False, default=""),
    Column("study_description", Text, nullable=False, default=""),
    Column("accession_number", Text, nullable=False, default=""),
    Column("study_id", Text, nullable=False, default=""),
    Column("modalities", Text, nullable=False, default=""),  # e.g. "CT\\SR", sorted, backslash-separated
    Column("source_path", Text, nullable=False, default=""),  # folder/DICOMDIR/file the study was opened from
    Column("status", String(16), nullable=False, default="new"),
    Column("reported_by", Text, nullable=False, default=""),
    Column("reported_at", Float),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("revision", Integer, nullable=False, default=0),  # + 1 on every change (optimistic concurrency, v4)
)

case_images = Table(
    "case_images", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False),
    Column("series_instance_uid", String(64), nullable=False, default=""),
    Column("series_description", Text, nullable=False, default=""),
    Column("modality", String(16), nullable=False, default=""),
    Column("instance_number", Integer),
    Column("number_of_frames", Integer, nullable=False, default=1),
    Column("rows", Integer, nullable=False, default=0),
    Column("columns", Integer, nullable=False, default=0),
    Column("path", Text, nullable=False),
    UniqueConstraint("case_id", "sop_instance_uid", name="uq_case_images_sop"),
)

note_versions = Table(
    "note_versions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),
    Column("saved_at", Float, nullable=False),
)

rescore_runs = Table(
    "rescore_runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reason", Text, nullable=False, default=""),  # "on demand", "weights changed: pneumonia-cnn", ...
    Column("models_json", Text, nullable=False, default="{}"),  # {model name: weights sha256}
    Column("n_cases", Integer, nullable=False, default=0),
    Column("n_done", Integer, nullable=False, default=0),
    Column("state", String(16), nullable=False, default="running"),  # running, finished, cancelled, failed; see runs()
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float),
    Column("heartbeat_at", Float),  # last sign of life (start, each case done); version 5
)

note_results = Table(
    "note_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("note_version_id", Integer, ForeignKey("note_versions.id", ondelete="SET NULL")),
    Column("model", Text, nullable=False),
    Column("model_version", Text, nullable=False, default=""),
    Column("weights_sha256", Text, nullable=False, default=""),
    Column("findings_json", Text, nullable=False),  # [{label, probability, threshold, positive}]
    Column("decisions_json", Text, nullable=False, default="{}"),  # {label: "confirmed" | "rejected"}
    Column("run_id", Integer, ForeignKey("rescore_runs.id", ondelete="SET NULL")),
    Column("created_at", Float, nullable=False),
)

annotations = Table(
    "annotations", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("uid", String(64), nullable=False, unique=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False),
    Column("frame", Integer, nullable=False, default=0),
    Column("kind", String(16), nullable=False),
    Column("points_json", Text, nullable=False),  # [[x, y], ...] image pixel coordinates
    Column("text", Text, nullable=False, default=""),
    Column("measurement_json", Text, nullable=False, default="{}"),  # Measurement.to_dict() when saved
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("deleted_at", Float),
)

ai_results = Table(
    "ai_results", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False),
    Column("frame", Integer, nullable=False, default=0),
    Column("model", Text, nullable=False),
    Column("model_version", Text, nullable=False, default=""),
    Column("weights_sha256", Text, nullable=False, default=""),
    Column("probabilities_json", Text, nullable=False),  # {label: probability}
    Column("positive_label", Text, nullable=False, default=""),
    Column("score", Float, nullable=False),  # P(positive label)
    Column("threshold", Float, nullable=False),
    Column("positive", Boolean, nullable=False),
    Column("heatmap_method", Text, nullable=False, default=""),
    Column("heatmap_label", Text, nullable=False, default=""),
    Column("heatmap_png", LargeBinary),  # 8-bit grey PNG of the [0, 1] map, at most 256 px a side
    Column("run_id", Integer, ForeignKey("rescore_runs.id", ondelete="SET NULL")),
    Column("created_at", Float, nullable=False),
    # added to older databases by migration 3
    Column("status", String(16), nullable=False, server_default="scored"),
    Column("scope_reason", Text, nullable=False, server_default=""),
    Column("warnings_json", Text, nullable=False, server_default="[]"),
    Column("ood_score", Float),
)

radiologist_scores = Table(
    "radiologist_scores", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("label", Text, nullable=False),  # the finding called, e.g. "pneumonia"
    Column("positive", Boolean, nullable=False),  # the radiologist's call
    Column("confidence", Integer),  # 1 (unsure) .. 5 (certain), optional
    Column("ai_result_id", Integer, ForeignKey("ai_results.id", ondelete="SET NULL")),  # the AI call it reviews
    Column("override", Boolean, nullable=False, default=False),  # disagrees with that AI call
    Column("comment", Text, nullable=False, default=""),
    Column("reader", Text, nullable=False, default=""),
    Column("created_at", Float, nullable=False),
)

events = Table(
    "events", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("detail_json", Text, nullable=False, default="{}"),
    Column("at", Float, nullable=False),
)

#: Who has a case open, on which workstation (schema version 4): a row per (case, workstation), refreshed while
#: the case is open (``seen_at``) and deleted when it is closed; rows older than
#: :data:`medviewer.store.cases.READER_TTL_S` are stale (a workstation that crashed).
case_readers = Table(
    "case_readers", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("case_id", Integer, ForeignKey("cases.id", ondelete="CASCADE"), nullable=False),
    Column("reader", Text, nullable=False, default=""),
    Column("workstation", Text, nullable=False),
    Column("opened_at", Float, nullable=False),
    Column("seen_at", Float, nullable=False),
    UniqueConstraint("case_id", "workstation", name="uq_case_readers_ws"),
)

#: Tables of schema version 1, in creation order.
V1_TABLES = (schema_version, cases, case_images, note_versions, rescore_runs, note_results, annotations,
             ai_results, radiologist_scores, events)

#: Indexes added by migration 2 (the worklist and per-image lookups).
V2_INDEXES = (
    Index("ix_note_versions_case", note_versions.c.case_id, note_versions.c.id),
    Index("ix_note_results_case", note_results.c.case_id, note_results.c.id),
    Index("ix_annotations_image", annotations.c.sop_instance_uid, annotations.c.frame),
    Index("ix_annotations_case", annotations.c.case_id),
    Index("ix_ai_results_case", ai_results.c.case_id, ai_results.c.id),
    Index("ix_radiologist_scores_case", radiologist_scores.c.case_id, radiologist_scores.c.id),
    Index("ix_events_case", events.c.case_id, events.c.id),
    Index("ix_case_images_sop", case_images.c.sop_instance_uid),
)


def _migrate_1(conn: Connection) -> None:
    """Version 1: every table (a new database gets the current columns; later migrations only add what an older
    database lacks)."""
    for table in V1_TABLES:
        table.create(conn, checkfirst=True)


def _migrate_2(conn: Connection) -> None:
    """Version 2: indexes for the worklist, per-case histories and per-image annotation lookups."""
    for index in V2_INDEXES:
        index.create(conn, checkfirst=True)


#: Columns added to ai_results by migration 3 (the intended-use gate, issue #10): ``status`` "scored",
#: "out_of_scope" (no call: score 0 and positive false are placeholders, never a result) or "scored_anyway";
#: ``scope_reason`` in words; ``warnings_json`` a JSON list of warnings shown with the call; ``ood_score``.
V3_AI_COLUMNS = (
    ("status", "VARCHAR(16) NOT NULL DEFAULT 'scored'"),
    ("scope_reason", "TEXT NOT NULL DEFAULT ''"),
    ("warnings_json", "TEXT NOT NULL DEFAULT '[]'"),
    ("ood_score", "FLOAT"),
)


def _migrate_3(conn: Connection) -> None:
    """Version 3: the intended-use status of each AI result (existing rows were in-scope calls)."""
    from sqlalchemy import inspect, text

    have = {c["name"] for c in inspect(conn).get_columns("ai_results")}
    for name, ddl in V3_AI_COLUMNS:
        if name not in have:
            conn.execute(text(f"ALTER TABLE ai_results ADD COLUMN {name} {ddl}"))


def _migrate_4(conn: Connection) -> None:
    """Version 4: several workstations on one database (issue #15): ``cases.revision`` for optimistic concurrency
    and the ``case_readers`` table (who has a case open)."""
    from sqlalchemy import inspect, text

    if "revision" not in {c["name"] for c in inspect(conn).get_columns("cases")}:
        conn.execute(text("ALTER TABLE cases ADD COLUMN revision INTEGER NOT NULL DEFAULT 0"))
    case_readers.create(conn, checkfirst=True)


def _migrate_5(conn: Connection) -> None:
    """Version 5: ``rescore_runs.heartbeat_at``, so that a run whose process died (killed, power cut) is told
    from one still running (:meth:`medviewer.store.cases.CaseStore.runs`)."""
    from sqlalchemy import inspect, text

    if "heartbeat_at" not in {c["name"] for c in inspect(conn).get_columns("rescore_runs")}:
        conn.execute(text("ALTER TABLE rescore_runs ADD COLUMN heartbeat_at FLOAT"))


#: version -> migration from version - 1. Append new ones; never edit a released one.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {1: _migrate_1, 2: _migrate_2, 3: _migrate_3, 4: _migrate_4,
                                                       5: _migrate_5}
LATEST_VERSION = max(MIGRATIONS)
