"""The case store: cases (studies) with their notes, annotations, AI results, radiologist scores and events.

SQLAlchemy 2 Core over SQLite by default (``<data dir>/cases.sqlite3``; ``MEDVIEWER_DATA_DIR`` moves the data dir),
so the same code can run on PostgreSQL given another URL. On SQLite the connection is set up for durability:
WAL journal, ``synchronous=FULL`` (a committed transaction survives a crash of the process or the machine),
foreign keys on, a 10 s busy timeout, and ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing.

Every public write is one transaction that also appends an ``events`` row, so a crash loses at most the write in
flight. Histories are kept: note versions, note classifier results, AI results and radiologist scores are only
ever appended; annotations are deleted softly. The store is safe to share between threads (one connection per
checkout from the engine's pool) and between processes (SQLite locking).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import and_, create_engine, event, func, insert, select, update
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import ArgumentError, DBAPIError

from medviewer.imaging.annotations import Annotation
from medviewer.notes.states import PRESENT, UNCERTAIN, labels_with_state, reviewed_states
from medviewer.notes.store import NoteRecord
from medviewer.store import schema as S


class CaseStoreError(RuntimeError):
    """The database cannot be used (newer schema than this program, unknown case, bad status...)."""


@dataclass
class Case:
    """A study in the store with its cached DICOM metadata (header values as strings, DICOM formats: dates
    YYYYMMDD, names with ``^``), workflow status (one of :data:`medviewer.store.schema.STATUSES`) and times
    (UTC epoch seconds)."""

    id: int
    study_instance_uid: str
    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    accession_number: str = ""
    study_id: str = ""
    modalities: str = ""
    source_path: str = ""
    status: str = "new"
    reported_by: str = ""
    reported_at: float | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    revision: int = 0  # + 1 on every change: pass it back as ``expected_revision`` to detect a concurrent change


@dataclass
class AIResult:
    """One stored image-model result. ``probabilities`` {label: P}; ``score`` = P(positive label); times UTC epoch
    seconds; ``heatmap_png`` an 8-bit grey PNG of the [0, 1] attribution map (None when not stored)."""

    id: int
    case_id: int
    sop_instance_uid: str
    frame: int
    model: str
    model_version: str
    weights_sha256: str
    probabilities: dict[str, float]
    positive_label: str
    score: float
    threshold: float
    positive: bool
    heatmap_method: str = ""
    heatmap_label: str = ""
    heatmap_png: bytes | None = field(default=None, repr=False)
    run_id: int | None = None
    created_at: float = 0.0
    status: str = "scored"
    scope_reason: str = ""
    warnings: list[str] = field(default_factory=list)
    ood_score: float | None = None

    @property
    def has_call(self) -> bool:
        """False for an image outside the model's intended use (``status`` "out_of_scope"): then ``score`` and
        ``positive`` are placeholders, not a result."""
        return self.status != "out_of_scope"

    def scope_text(self) -> str:
        """"" for an in-scope call, else "outside the model's intended use (reason)" (and "scored anyway")."""
        if self.status == "scored":
            return ""
        text = f"outside the model's intended use ({self.scope_reason})"
        return text + ", scored anyway at the reader's request" if self.status == "scored_anyway" else text

    def heatmap(self) -> np.ndarray | None:
        """The stored heat map as (rows, cols) float32 in [0, 1] at its stored size (<= 256 px), or None."""
        if not self.heatmap_png:
            return None
        from PIL import Image

        with Image.open(io.BytesIO(self.heatmap_png)) as im:
            return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


@dataclass
class NoteResult:
    """One stored notes-classifier result: ``findings`` [{label, state, probability, threshold, positive, ...}]
    as ``NoteResult.to_dict()["findings"]`` of :mod:`medviewer.notes.model` (findings saved before three states have
    no ``state``: they read as present when ``positive`` else absent, see :mod:`medviewer.notes.states`), the
    radiologist's ``decisions`` {label: "confirmed" | "rejected"}, the model and the note version it read."""

    id: int
    case_id: int
    note_version_id: int | None
    model: str
    model_version: str
    weights_sha256: str
    findings: list[dict]
    decisions: dict[str, str]
    run_id: int | None
    created_at: float

    @property
    def positives(self) -> list[str]:
        """Labels called present by the model and not rejected, plus those the radiologist confirmed (an
        uncertain finding the radiologist confirmed included)."""
        return _positives(self.findings, self.decisions)

    @property
    def uncertain(self) -> list[str]:
        """Labels the model found hedged in the note ("uncertain") that the radiologist has not decided on."""
        return _uncertain(self.findings, self.decisions)

    @property
    def states(self) -> dict[str, str]:
        """{label: "present" | "absent" | "uncertain"} after the radiologist's decisions, in findings order."""
        return reviewed_states(self.findings, self.decisions)

    @property
    def model_states(self) -> dict[str, str]:
        """{label: state} as the model called them (before the radiologist's decisions)."""
        return reviewed_states(self.findings)


def _positives(findings: list[dict], decisions: dict[str, str]) -> list[str]:
    """:attr:`NoteResult.positives` of these findings and decisions."""
    return labels_with_state(findings, PRESENT, decisions)


def _uncertain(findings: list[dict], decisions: dict[str, str]) -> list[str]:
    """:attr:`NoteResult.uncertain` of these findings and decisions."""
    return labels_with_state(findings, UNCERTAIN, decisions)


@dataclass
class RadiologistScore:
    """The radiologist's call on ``label`` (positive True/False), optional confidence 1..5, and whether it
    overrides the AI result it reviewed (``ai_result_id``)."""

    id: int
    case_id: int
    label: str
    positive: bool
    confidence: int | None
    ai_result_id: int | None
    override: bool
    comment: str
    reader: str
    created_at: float


@dataclass
class Event:
    """One entry of a case's history: ``kind`` (e.g. "note saved", "annotation added", "ai result") and details."""

    id: int
    case_id: int
    kind: str
    detail: dict
    at: float


@dataclass
class WorklistRow:
    """One worklist line: the case, its latest AI score (max P(positive) over its images in the latest result of
    each image, with model and whether that is above threshold), the note findings called present
    (``note_findings``) and those hedged in the note (``note_uncertain``), both after the radiologist's decisions,
    and the radiologist's latest call."""

    case: Case
    ai_model: str = ""
    ai_score: float | None = None
    ai_positive: bool | None = None
    ai_weights_sha256: str = ""
    ai_at: float | None = None
    ai_status: str = ""  # "scored", "scored_anyway", or "out_of_scope" when no image of the case got a call
    ai_scope_reason: str = ""
    note_findings: list[str] = field(default_factory=list)
    radiologist_label: str = ""
    radiologist_positive: bool | None = None
    radiologist_confidence: int | None = None
    n_annotations: int = 0
    being_read_by: list[str] = field(default_factory=list)  # "reader (workstation)" of others with it open
    note_uncertain: list[str] = field(default_factory=list)  # note findings in state "uncertain" (not decided)


@dataclass(frozen=True)
class CaseReader:
    """Someone with a case open: reader name, workstation, when opened and last seen (UTC epoch seconds)."""

    reader: str
    workstation: str
    opened_at: float
    seen_at: float

    def describe(self) -> str:
        return f"{self.reader or 'someone'} ({self.workstation})"


#: A reader row not refreshed for this long (seconds) belongs to a workstation that went away.
READER_TTL_S = 120.0

#: A re-score run marked "running" without a heartbeat for this long (seconds) died: runs beat at every finished
#: case, and one case (its radiographs and its note) takes seconds, not ten minutes.
RUN_STALE_SECONDS = 600.0


class ConflictError(CaseStoreError):
    """Another workstation changed the case since this one read it (optimistic concurrency): nothing was
    overwritten; reload the case and try again. ``by`` names who (when known)."""

    def __init__(self, message: str, by: str = ""):
        super().__init__(message)
        self.by = by


def workstation_name() -> str:
    """This workstation's name in the shared store: ``MEDVIEWER_WORKSTATION`` or ``user@host``."""
    import getpass
    import os
    import socket

    name = os.environ.get("MEDVIEWER_WORKSTATION", "")
    if name:
        return name
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in this environment: the host alone
        user = ""
    return f"{user}@{socket.gethostname()}" if user else socket.gethostname()


def default_url() -> str:
    """The case store's SQLAlchemy URL: ``MEDVIEWER_DB_URL`` (e.g. ``postgresql+psycopg://reader@pacs-db/cases``;
    keep the password out of it: libpq reads ``PGPASSWORD`` or ``~/.pgpass``), else the ``url`` of
    ``<data dir>/store.json``, else ``sqlite:///<data dir>/cases.sqlite3`` (see :func:`medviewer.config.data_dir`).
    """
    import os

    from medviewer.config import data_dir

    env = os.environ.get("MEDVIEWER_DB_URL", "").strip()
    if env:
        return env
    setting = data_dir() / "store.json"
    if setting.is_file():
        try:
            raw = json.loads(setting.read_text(encoding="utf-8")).get("url", "")
            if not isinstance(raw, str):
                raise ValueError(f"url must be a string, not {type(raw).__name__}")
            url = raw.strip()
        except (OSError, ValueError, AttributeError) as exc:
            raise CaseStoreError(f"{setting} cannot be read ({exc}); fix or remove it") from exc
        if url:
            return url
    return f"sqlite:///{data_dir() / 'cases.sqlite3'}"


def display_url(url: str) -> str:
    """``url`` for messages and logs: the password masked (``***``), a SQLite URL as its file path."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL: show its scheme only
        return url.split("://", 1)[0] + "://..."


def _is_memory(url: str) -> bool:
    return url in ("sqlite://", "sqlite:///", "sqlite:///:memory:")


def describe_store_error(exc: BaseException) -> str:
    """One line in words for a failed store operation: locked, disk full, read-only, damaged, permission."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    if "locked" in text or "busy" in text:
        return "the case store is locked by another program (waited 10 s); the change is kept and retried"
    if "full" in text or "no space" in text:
        return "the disk holding the case store is full; free some space (the change is kept and retried)"
    if "readonly" in text or "read-only" in text:
        return ("the case store is read-only (file or folder permissions, or opened read-only after a failed "
                "integrity check); nothing can be saved to it")
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return "the case store file is damaged (it fails SQLite's integrity check)"
    if "permission" in text or "access" in text:
        return "no permission to write the case store"
    return f"{type(orig).__name__}: {str(orig).splitlines()[0] if str(orig) else ''}"


def integrity_problem(path: str | Path) -> str:
    """"" when the SQLite file at ``path`` passes ``PRAGMA integrity_check`` (or does not exist yet), else what
    is wrong, in words. Opened read-only: the check never writes.

    Raises
    ------
    CaseStoreError: the file is not an SQLite database at all (nothing could be read from it).
    """
    import sqlite3

    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return ""
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
        try:
            rows = con.execute("PRAGMA integrity_check(5)").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CaseStoreError(f"cannot open the case store {path}: not a readable SQLite database ({exc})") from exc
    found = [str(r[0]) for r in rows if r and str(r[0]).lower() != "ok"]
    return f"{path.name} fails SQLite's integrity check ({'; '.join(found)[:200]})" if found else ""


def make_engine(url: str, immediate: bool = True) -> Engine:
    """An engine for ``url``; on SQLite with WAL, synchronous=FULL, foreign keys and a 10 s busy timeout.

    immediate: start transactions with ``BEGIN IMMEDIATE`` (writers queue for the lock up front instead of failing
    on upgrade); False gives deferred transactions, for readers, which in WAL mode never wait for a writer.
    An in-memory URL (scripts, single-threaded use) shares one connection, so it is one database; the app
    itself always uses a file (a temporary one when the user's store cannot be opened).
    """
    if not url.startswith("sqlite"):
        # PostgreSQL (psycopg 3): READ COMMITTED; the writes that can collide check a revision in their UPDATE
        # (optimistic concurrency), so no table locks; pool_pre_ping survives a restarted server.
        return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
    if _is_memory(url):
        from sqlalchemy.pool import StaticPool

        engine = create_engine("sqlite://", connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10.0})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # noqa: ANN001
        # Let SQLAlchemy, not the driver, start transactions (the pysqlite recipe in SQLAlchemy's SQLite docs).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if not _is_memory(url) and "mode=ro" not in url:
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # noqa: ANN001
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def schema_version_of(engine: Engine) -> int | None:
    """The schema version of a database (None when it has no ``schema_version`` table yet), read in a plain read
    transaction: no write lock, so it never waits for a writer."""
    from sqlalchemy import inspect

    with engine.connect() as conn:
        if not inspect(conn).has_table("schema_version"):
            return None
        return int(conn.execute(select(func.max(S.schema_version.c.version))).scalar() or 0)


def _lock_migrations(conn: Connection) -> None:
    """Serialise migrations between workstations: on PostgreSQL a transaction-level advisory lock (released at
    commit); SQLite's ``BEGIN IMMEDIATE`` already holds the write lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(2026120615)")


def migrate(engine: Engine, reader: Engine | None = None) -> int:
    """Bring the database to :data:`medviewer.store.schema.LATEST_VERSION`; returns the version reached.

    The version is first read through ``reader`` (default ``engine``) without a write lock: a database already at
    the latest version is opened without waiting for another program's write. Each migration runs in its own
    transaction with the ``schema_version`` row that records it, under a lock that serialises workstations
    migrating at once (each re-reads the version under the lock), so an interrupted upgrade leaves the database at
    the last complete version. Raises CaseStoreError when the database was written by a newer medviewer.
    """
    current = schema_version_of(reader or engine)
    if current is not None and current > S.LATEST_VERSION:
        raise CaseStoreError(f"the case store has schema version {current}, newer than this medviewer "
                             f"({S.LATEST_VERSION}); upgrade medviewer or use another store")
    if current == S.LATEST_VERSION:
        return current
    with engine.begin() as conn:
        _lock_migrations(conn)
        S.schema_version.create(conn, checkfirst=True)
    for version in range(1, S.LATEST_VERSION + 1):
        with engine.begin() as conn:
            _lock_migrations(conn)
            done = conn.execute(select(func.max(S.schema_version.c.version))).scalar() or 0
            if done > S.LATEST_VERSION:
                raise CaseStoreError(f"the case store has schema version {done}, newer than this medviewer "
                                     f"({S.LATEST_VERSION}); upgrade medviewer or use another store")
            if done >= version:
                continue
            S.MIGRATIONS[version](conn)
            conn.execute(insert(S.schema_version).values(version=version, applied_at=time.time()))
    return S.LATEST_VERSION


def _heatmap_png(heat: np.ndarray, max_side: int = 256) -> bytes:
    """(rows, cols) float in [0, 1] -> 8-bit grey PNG, downsampled (area) so the longer side is <= max_side."""
    from PIL import Image

    h = np.clip(np.nan_to_num(np.asarray(heat, dtype=np.float32)), 0.0, 1.0)
    im = Image.fromarray((h * 255.0 + 0.5).astype(np.uint8), mode="L")
    scale = max_side / max(im.size)
    if scale < 1.0:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.BOX)
    buf = io.BytesIO()
    # zlib level 6 (Pillow's default): ~8 ms for a 256x256 map here; optimize=True (level 9) took ~40 ms on the
    # writer thread for ~4 % fewer bytes. The image is lossless either way (benchmarks/bench_store.py).
    im.save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


#: The cases columns in Case field order: ``Case(*row)`` for a row of ``select(*_CASE_COLUMNS)``.
_CASE_COLUMNS = tuple(S.cases.c[k] for k in Case.__dataclass_fields__)


def _case(row) -> Case:  # noqa: ANN001 - Row
    m = row._mapping
    return Case(**{k: m[k] for k in Case.__dataclass_fields__})


def _ai(row) -> AIResult:  # noqa: ANN001
    m = row._mapping
    return AIResult(id=m["id"], case_id=m["case_id"], sop_instance_uid=m["sop_instance_uid"], frame=m["frame"],
                    model=m["model"], model_version=m["model_version"], weights_sha256=m["weights_sha256"],
                    probabilities=json.loads(m["probabilities_json"]), positive_label=m["positive_label"],
                    score=m["score"], threshold=m["threshold"], positive=bool(m["positive"]),
                    heatmap_method=m["heatmap_method"], heatmap_label=m["heatmap_label"],
                    heatmap_png=m["heatmap_png"], run_id=m["run_id"], created_at=m["created_at"],
                    status=m["status"] or "scored", scope_reason=m["scope_reason"] or "",
                    warnings=json.loads(m["warnings_json"] or "[]"), ood_score=m["ood_score"])


def _note_result(row) -> NoteResult:  # noqa: ANN001
    m = row._mapping
    return NoteResult(id=m["id"], case_id=m["case_id"], note_version_id=m["note_version_id"], model=m["model"],
                      model_version=m["model_version"], weights_sha256=m["weights_sha256"],
                      findings=json.loads(m["findings_json"]), decisions=json.loads(m["decisions_json"]),
                      run_id=m["run_id"], created_at=m["created_at"])


def _radiologist(row) -> RadiologistScore:  # noqa: ANN001
    values: dict[str, Any] = dict(row._mapping)
    values["positive"], values["override"] = bool(values["positive"]), bool(values["override"])
    return RadiologistScore(**values)


def _new_id(result: CursorResult) -> int:
    """The primary key of the row that a single-row INSERT just added."""
    key = result.inserted_primary_key
    if key is None:
        raise CaseStoreError("the database gave no primary key for the new row")
    return int(key[0])


def _annotation(row) -> Annotation:  # noqa: ANN001
    m = row._mapping
    return Annotation(m["kind"], [tuple(p) for p in json.loads(m["points_json"])], m["sop_instance_uid"],
                      m["frame"], m["text"], m["uid"])


class CaseStore:
    """The case store (see the module docstring). Also the notes pane's :class:`~medviewer.notes.store.NoteStore`.

    url: an SQLAlchemy URL; default :func:`default_url`. ``path`` is a shortcut for ``sqlite:///<path>``.
    Raises CaseStoreError when the database's schema is newer than this program.
    """

    def __init__(self, url: str | None = None, *, path: str | Path | None = None, workstation: str | None = None):
        if path is not None:
            url = f"sqlite:///{Path(path)}"
        #: This workstation's name (events record it; the worklist shows who has a case open).
        self.workstation = workstation or workstation_name()
        #: True when the database failed its integrity check: it is read, never written (``problem`` says why).
        self.read_only = False
        self.problem = ""
        try:
            self.url = url or default_url()
            file = self.url.removeprefix("sqlite:///") if self.url.startswith("sqlite:///") else ""
            if file and not _is_memory(self.url):
                self.problem = integrity_problem(file)
            if self.problem:
                self.read_only = True
                self.problem += ": opened READ-ONLY, nothing will be saved to it (the file is left untouched)"
                self.engine = make_engine(f"sqlite:///file:{file}?mode=ro&uri=true", immediate=False)
                try:
                    with self.engine.connect() as conn:
                        self.version = int(conn.exec_driver_sql("SELECT MAX(version) FROM schema_version")
                                           .scalar() or 0)
                except DBAPIError:
                    self.version = 0
            else:
                self.engine = make_engine(self.url)
                # Reads use deferred transactions on their own pool: in WAL mode they never wait for a writer's
                # commit (the GUI thread reads; a writer thread commits with an fsync). PostgreSQL readers never
                # wait for writers anyway (MVCC): one pool.
                sqlite_file = self.url.startswith("sqlite") and not _is_memory(self.url)
                self._reader = make_engine(self.url, immediate=False) if sqlite_file else self.engine
                self.version = migrate(self.engine, self._reader)
        except CaseStoreError:
            raise
        except (DBAPIError, OSError) as exc:
            orig = getattr(exc, "orig", None) or exc
            where = display_url(self.url) if getattr(self, "url", None) else "(data directory)"
            detail = " ".join(str(orig).split())  # one line (libpq adds a tabbed hint line)
            raise CaseStoreError(f"cannot open the case store {where}: {type(orig).__name__}: {detail}") from exc
        except (ArgumentError, ImportError, ValueError, TypeError) as exc:  # a URL SQLAlchemy cannot use
            where = display_url(str(getattr(self, "url", "") or ""))
            raise CaseStoreError(f"the case store URL {where!r} is not usable ({type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())}); use sqlite:///FILE or "
                                 "postgresql+psycopg://USER@HOST/DB (MEDVIEWER_DB_URL or <data dir>/store.json)"
                                 ) from exc
        if self.read_only:
            self._reader = self.engine

    @property
    def shared(self) -> bool:
        """True for a server database (PostgreSQL) that several workstations may share."""
        return not self.url.startswith("sqlite")

    def _read(self):  # noqa: ANN202 - a Connection context manager
        """A read-only transaction (a snapshot of the committed data)."""
        return self._reader.begin()

    def close(self) -> None:
        """Release the connections (the data is already committed)."""
        self.engine.dispose()
        if self._reader is not self.engine:
            self._reader.dispose()

    # ------------------------------------------------------------------------------------------------ helpers
    def _event(self, conn: Connection, case_id: int, kind: str, **detail: Any) -> None:
        detail.setdefault("workstation", self.workstation)
        conn.execute(insert(S.events).values(case_id=case_id, kind=kind, detail_json=json.dumps(detail),
                                             at=time.time()))

    def _touch(self, conn: Connection, case_id: int, start_work: bool = True) -> None:
        """Mark the case updated. Work saved on a case (``start_work``) makes a new case "in progress", and
        reopens a reported one: a sign-off covers what was signed, so an edit after it withdraws the sign-off
        (recorded as an event; the reader signs off again). Re-score runs do not count as work."""
        conn.execute(update(S.cases).where(S.cases.c.id == case_id)
                     .values(updated_at=time.time(), revision=S.cases.c.revision + 1))
        if not start_work:
            return
        status = conn.execute(select(S.cases.c.status).where(S.cases.c.id == case_id)).scalar()
        if status == "new":
            conn.execute(update(S.cases).where(S.cases.c.id == case_id).values(status="in progress"))
        elif status == "reported":
            conn.execute(update(S.cases).where(S.cases.c.id == case_id)
                         .values(status="in progress", reported_by="", reported_at=None))
            self._event(conn, case_id, "sign-off withdrawn", reason="edited after sign-off")

    def _case_id(self, conn: Connection, study_instance_uid: str, create: bool = True) -> int:
        cid = conn.execute(select(S.cases.c.id).where(S.cases.c.study_instance_uid == study_instance_uid)).scalar()
        if cid is None:
            if not create:
                raise CaseStoreError(f"no case for StudyInstanceUID {study_instance_uid}")
            now = time.time()
            cid = _new_id(conn.execute(insert(S.cases).values(study_instance_uid=study_instance_uid, created_at=now,
                                                              updated_at=now)))
            self._event(conn, cid, "case created")
        return int(cid)

    # ------------------------------------------------------------------------------------------------ cases
    def register_study(self, patient, study, source_path: str = "") -> int:  # noqa: ANN001 - io.model types
        """Create or refresh the case of ``study`` (a :class:`medviewer.io.model.Study` of ``patient``) with its
        metadata and image list (SOPInstanceUID -> file path); status and everything owned are kept. Returns the
        case id."""
        modalities = sorted({s.modality for s in study.series.values() if s.modality})
        meta = dict(patient_name=patient.patient_name, patient_id=patient.patient_id,
                    patient_birth_date=patient.patient_birth_date, patient_sex=patient.patient_sex,
                    study_date=study.study_date, study_time=study.study_time,
                    study_description=study.study_description, accession_number=study.accession_number,
                    study_id=study.study_id, modalities="\\".join(modalities))
        if source_path:
            meta["source_path"] = str(source_path)
        images = []
        for series in study.series.values():
            for inst in series.image_instances:
                images.append(dict(sop_instance_uid=inst.sop_instance_uid,
                                   series_instance_uid=series.series_instance_uid,
                                   series_description=series.series_description, modality=inst.modality,
                                   instance_number=inst.instance_number, number_of_frames=inst.number_of_frames,
                                   rows=inst.rows, columns=inst.columns, path=inst.path))
        with self.engine.begin() as conn:
            existed = conn.execute(select(S.cases.c.id).where(
                S.cases.c.study_instance_uid == study.study_instance_uid)).scalar() is not None
            cid = self._case_id(conn, study.study_instance_uid)
            conn.execute(update(S.cases).where(S.cases.c.id == cid).values(updated_at=time.time(), **meta))
            known = {r[0]: r[1] for r in conn.execute(
                select(S.case_images.c.sop_instance_uid, S.case_images.c.id).where(S.case_images.c.case_id == cid))}
            for img in images:
                if img["sop_instance_uid"] in known:
                    conn.execute(update(S.case_images).where(S.case_images.c.id == known[img["sop_instance_uid"]])
                                 .values(**img))
                else:
                    conn.execute(insert(S.case_images).values(case_id=cid, **img))
            if not existed:
                self._event(conn, cid, "case registered", source_path=str(source_path), images=len(images))
        return cid

    def register_index(self, index, source_path: str = "") -> list[int]:  # noqa: ANN001 - DicomIndex
        """:meth:`register_study` for every study of a scan that has images; returns the case ids."""
        ids = []
        for patient in index.patients.values():
            for study in patient.studies.values():
                if any(s.image_instances for s in study.series.values()):
                    ids.append(self.register_study(patient, study, source_path))
        return ids

    def get_case(self, study_instance_uid: str) -> Case | None:
        """The case of a StudyInstanceUID, or None."""
        with self._read() as conn:
            row = conn.execute(select(S.cases).where(S.cases.c.study_instance_uid == study_instance_uid)).first()
        return _case(row) if row else None

    def cases(self, status: str | None = None) -> list[Case]:
        """All cases (optionally of one status), newest study first."""
        q = select(S.cases).order_by(S.cases.c.study_date.desc(), S.cases.c.id)
        if status is not None:
            q = q.where(S.cases.c.status == status)
        with self._read() as conn:
            return [_case(r) for r in conn.execute(q)]

    def case_images(self, study_instance_uid: str) -> list[dict]:
        """The images of a case: dicts with sop_instance_uid, series_instance_uid, series_description, modality,
        instance_number, number_of_frames, rows, columns, path; ordered by series then InstanceNumber."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            rows = conn.execute(select(S.case_images).where(S.case_images.c.case_id == cid).order_by(
                S.case_images.c.series_instance_uid, S.case_images.c.instance_number, S.case_images.c.id))
            return [{k: v for k, v in r._mapping.items() if k not in ("id", "case_id")} for r in rows]

    def set_status(self, study_instance_uid: str, status: str, reader: str = "",
                   expected_revision: int | None = None, unchanged_elsewhere_since: float | None = None) -> None:
        """Set the workflow status. "reported" is the sign-off: it records ``reader`` and the time.

        Optimistic concurrency (nothing is written and ConflictError says who changed what, when):
        ``expected_revision``: the case's :attr:`Case.revision` when the reader last saw it, and it changed since;
        ``unchanged_elsewhere_since``: UTC epoch seconds since which the reader has not been shown the case's
        changes, and another workstation changed it after that (this workstation's own queued writes do not
        count). A sign-off is never silently overwritten: signing a case someone else signed raises ConflictError
        too. Raises CaseStoreError for an unknown status or case."""
        if status not in S.STATUSES:
            raise CaseStoreError(f"unknown status {status!r} (one of {', '.join(S.STATUSES)})")
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            row = conn.execute(select(S.cases.c.status, S.cases.c.reported_by, S.cases.c.revision)
                               .where(S.cases.c.id == cid)).one()
            if expected_revision is not None and row.revision != expected_revision:
                raise self._conflict(conn, cid, f"the case changed since you opened it (revision "
                                                f"{expected_revision} -> {row.revision})")
            if unchanged_elsewhere_since is not None and self._changed_elsewhere(conn, cid, unchanged_elsewhere_since):
                raise self._conflict(conn, cid, "another workstation changed the case since it was shown to you")
            if status == "reported" and row.status == "reported" and row.reported_by and row.reported_by != reader:
                raise self._conflict(conn, cid, f"it was already signed off by {row.reported_by}")
            values: dict[str, Any] = {"status": status, "updated_at": time.time(),
                                      "revision": S.cases.c.revision + 1}
            if status == "reported":
                values.update(reported_by=reader, reported_at=time.time())
            else:
                values.update(reported_by="", reported_at=None)
            done = conn.execute(update(S.cases).where(S.cases.c.id == cid, S.cases.c.revision == row.revision)
                                .values(**values))
            if done.rowcount != 1:  # another writer committed between our read and our update
                raise self._conflict(conn, cid, "another workstation changed it at the same moment")
            self._event(conn, cid, "signed off" if status == "reported" else "status", status=status, reader=reader)

    def sign_off(self, study_instance_uid: str, reader: str, expected_revision: int | None = None,
                 unchanged_elsewhere_since: float | None = None) -> None:
        """Mark the case reported by ``reader`` (see :meth:`set_status`)."""
        self.set_status(study_instance_uid, "reported", reader, expected_revision, unchanged_elsewhere_since)

    def _changed_elsewhere(self, conn: Connection, cid: int, since: float) -> bool:
        """Whether an event of the case after ``since`` came from another workstation."""
        for (detail_json,) in conn.execute(select(S.events.c.detail_json).where(S.events.c.case_id == cid,
                                                                                 S.events.c.at > since)):
            ws = json.loads(detail_json or "{}").get("workstation", "")
            if ws and ws != self.workstation:
                return True
        return False

    def changed_elsewhere_since(self, study_instance_uid: str, since: float) -> list[str]:
        """The kinds of the case's events after ``since`` made on other workstations (e.g. ["note saved"])."""
        out: list[str] = []
        with self._read() as conn:
            rows = conn.execute(select(S.events.c.kind, S.events.c.detail_json).join(
                S.cases, S.cases.c.id == S.events.c.case_id).where(
                S.cases.c.study_instance_uid == study_instance_uid, S.events.c.at > since))
            for kind, detail_json in rows:
                ws = json.loads(detail_json or "{}").get("workstation", "")
                if ws and ws != self.workstation:
                    out.append(f"{kind} on {ws}")
        return out

    def _conflict(self, conn: Connection, cid: int, what: str) -> ConflictError:
        """A ConflictError naming the last change of the case by another workstation (from its events)."""
        last = conn.execute(select(S.events.c.kind, S.events.c.detail_json, S.events.c.at)
                            .where(S.events.c.case_id == cid).order_by(S.events.c.id.desc()).limit(20)).all()
        for kind, detail_json, at in last:
            detail = json.loads(detail_json or "{}")
            ws = str(detail.get("workstation", ""))
            if ws and ws != self.workstation:
                who = f"{detail.get('reader') or ''} ({ws})".strip() if detail.get("reader") else ws
                when = time.strftime("%H:%M:%S", time.localtime(at))
                return ConflictError(f"not saved: {what}; last change on another workstation: {kind} by {who} "
                                     f"at {when}. Nothing was overwritten: reopen the case and check it.", by=who)
        return ConflictError(f"not saved: {what}. Nothing was overwritten: reopen the case and check it.")

    # ------------------------------------------------------------------------------------------------ readers
    def open_case(self, study_instance_uid: str, reader: str = "") -> list[CaseReader]:
        """Record that ``reader`` has the case open on this workstation; returns the OTHER readers who have it open
        (seen within :data:`READER_TTL_S`), for the "being read by" warning. Call :meth:`touch_readers` while it
        stays open and :meth:`close_case` when it is closed. Raises CaseStoreError for an unknown case."""
        now = time.time()
        cr = S.case_readers
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            conn.execute(cr.delete().where(cr.c.case_id == cid, cr.c.workstation == self.workstation))
            conn.execute(insert(cr).values(case_id=cid, reader=reader, workstation=self.workstation, opened_at=now,
                                           seen_at=now))
        return [r for r in self.readers(study_instance_uid) if r.workstation != self.workstation]

    def touch_readers(self) -> None:
        """Refresh this workstation's open cases (call every ~30 s; rows not refreshed for READER_TTL_S are
        stale)."""
        with self.engine.begin() as conn:
            conn.execute(update(S.case_readers).where(S.case_readers.c.workstation == self.workstation)
                         .values(seen_at=time.time()))

    def close_case(self, study_instance_uid: str | None = None) -> None:
        """This workstation closed the case (every case of this workstation when None)."""
        cr = S.case_readers
        with self.engine.begin() as conn:
            q = cr.delete().where(cr.c.workstation == self.workstation)
            if study_instance_uid is not None:
                sub = select(S.cases.c.id).where(S.cases.c.study_instance_uid == study_instance_uid)
                q = q.where(cr.c.case_id.in_(sub.scalar_subquery()))
            conn.execute(q)

    def readers(self, study_instance_uid: str) -> list[CaseReader]:
        """Everyone with the case open (seen within READER_TTL_S), this workstation included."""
        cr = S.case_readers
        with self._read() as conn:
            rows = conn.execute(select(cr.c.reader, cr.c.workstation, cr.c.opened_at, cr.c.seen_at)
                                .join(S.cases, S.cases.c.id == cr.c.case_id)
                                .where(S.cases.c.study_instance_uid == study_instance_uid,
                                       cr.c.seen_at >= time.time() - READER_TTL_S)
                                .order_by(cr.c.opened_at)).all()
        return [CaseReader(*r) for r in rows]

    def change_token(self) -> tuple:
        """A cheap fingerprint of the worklist's data: it differs after any change to any case (on any
        workstation) or to who has cases open. Poll it to refresh the worklist."""
        with self._read() as conn:
            a = conn.execute(select(func.count(), func.max(S.cases.c.updated_at),
                                    func.coalesce(func.sum(S.cases.c.revision), 0))).one()
            b = conn.execute(select(func.count(), func.max(S.case_readers.c.seen_at))
                             .where(S.case_readers.c.seen_at >= time.time() - READER_TTL_S)).one()
            c = conn.execute(select(func.max(S.events.c.id))).scalar()
        return (*tuple(a), *tuple(b), c)

    # ------------------------------------------------------------------------------------------------ notes
    def save_text(self, study_instance_uid: str, text: str, coalesce_s: float = 0.0) -> int:
        """Save the case's note (one transaction) and return the id of its version; unchanged text is not stored
        again (the latest id is returned). Creates the case when unknown (NoteStore protocol).

        coalesce_s: when the latest version was saved less than this many seconds ago and no classifier result
        refers to it, it is updated in place instead of appending a version (the notes pane saves every keystroke
        with 5 s: one version per burst of typing, so a long note does not grow the store quadratically; every
        keystroke is still committed). 0 appends a version for every change."""
        now = time.time()
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid)
            last = conn.execute(select(S.note_versions.c.id, S.note_versions.c.text, S.note_versions.c.saved_at)
                                .where(S.note_versions.c.case_id == cid)
                                .order_by(S.note_versions.c.id.desc()).limit(1)).first()
            if last is not None and last.text == text:
                return int(last.id)
            if (last is not None and coalesce_s > 0 and now - last.saved_at < coalesce_s
                    and conn.execute(select(S.note_results.c.id).where(
                        S.note_results.c.note_version_id == last.id).limit(1)).first() is None):
                conn.execute(update(S.note_versions).where(S.note_versions.c.id == last.id)
                             .values(text=text, saved_at=now))
                self._touch(conn, cid)
                return int(last.id)
            vid = _new_id(conn.execute(insert(S.note_versions).values(case_id=cid, text=text, saved_at=now)))
            self._touch(conn, cid)
            self._event(conn, cid, "note saved", note_version_id=vid, chars=len(text))
            return int(vid)

    def save_findings(self, study_instance_uid: str, findings: list[dict], decisions: dict[str, str],
                      model: str, model_version: str, weights_sha256: str = "", run_id: int | None = None,
                      start_work: bool = True) -> int:
        """Append a notes-classifier result for the latest note version (findings as
        ``NoteResult.to_dict()['findings']``, each with its ``state``, stored as given; decisions {label: "confirmed"
        | "rejected"}); returns its id. The "note findings" event lists the model's present and uncertain labels.

        start_work: False for the classifier's own output (it is not the reader's work: it neither starts a case
        nor withdraws a sign-off); True when the reader confirmed or rejected findings. Re-score runs never count."""
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid)
            vid = conn.execute(select(func.max(S.note_versions.c.id)).where(S.note_versions.c.case_id == cid)
                               ).scalar()
            rid = _new_id(conn.execute(insert(S.note_results).values(
                case_id=cid, note_version_id=vid, model=model, model_version=model_version,
                weights_sha256=weights_sha256, findings_json=json.dumps(findings),
                decisions_json=json.dumps(decisions), run_id=run_id, created_at=time.time())))
            self._touch(conn, cid, start_work=start_work and run_id is None)
            states = reviewed_states(findings)
            positives = [k for k, st in states.items() if st == PRESENT]
            uncertain = [k for k, st in states.items() if st == UNCERTAIN]
            self._event(conn, cid, "note findings", note_result_id=rid, model=model, model_version=model_version,
                        positives=positives, uncertain=uncertain, decisions=decisions, run_id=run_id)
            return int(rid)

    def load(self, study_instance_uid: str) -> NoteRecord | None:
        """The latest note and findings of a case (NoteStore protocol), or None when it has neither."""
        with self._read() as conn:
            cid = conn.execute(select(S.cases.c.id).where(S.cases.c.study_instance_uid == study_instance_uid)
                               ).scalar()
            if cid is None:
                return None
            note = conn.execute(select(S.note_versions).where(S.note_versions.c.case_id == cid)
                                .order_by(S.note_versions.c.id.desc()).limit(1)).first()
            res = conn.execute(select(S.note_results).where(S.note_results.c.case_id == cid)
                               .order_by(S.note_results.c.id.desc()).limit(1)).first()
        if note is None and res is None:
            return None
        rec = NoteRecord(study_instance_uid, text=note.text if note else "", saved_at=note.saved_at if note else 0.0)
        if res is not None:
            r = _note_result(res)
            rec.findings, rec.decisions, rec.model, rec.model_version = r.findings, r.decisions, r.model, \
                r.model_version
        return rec

    def note_versions(self, study_instance_uid: str) -> list[tuple[int, str, float]]:
        """Every saved version of the note as (id, text, saved_at), oldest first."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            return [(r.id, r.text, r.saved_at) for r in conn.execute(
                select(S.note_versions).where(S.note_versions.c.case_id == cid).order_by(S.note_versions.c.id))]

    def note_results(self, study_instance_uid: str) -> list[NoteResult]:
        """Every notes-classifier result of the case, oldest first."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            return [_note_result(r) for r in conn.execute(
                select(S.note_results).where(S.note_results.c.case_id == cid).order_by(S.note_results.c.id))]

    # ------------------------------------------------------------------------------------------------ annotations
    def save_annotation(self, study_instance_uid: str, annotation: Annotation,
                        measurement: dict | None = None) -> None:
        """Insert or update ``annotation`` (by its uid) in the case; undeletes it when it was deleted."""
        now = time.time()
        values = dict(sop_instance_uid=annotation.sop_instance_uid, frame=annotation.frame, kind=annotation.kind,
                      points_json=json.dumps([list(p) for p in annotation.points]), text=annotation.text,
                      measurement_json=json.dumps(measurement or {}), updated_at=now, deleted_at=None)
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid)
            row = conn.execute(select(S.annotations.c.id, S.annotations.c.case_id)
                               .where(S.annotations.c.uid == annotation.uid)).first()
            if row is None:
                conn.execute(insert(S.annotations).values(uid=annotation.uid, case_id=cid, created_at=now, **values))
                kind = "annotation added"
            else:
                conn.execute(update(S.annotations).where(S.annotations.c.id == row.id).values(**values))
                kind = "annotation changed"
            self._touch(conn, cid)
            self._event(conn, cid, kind, uid=annotation.uid, annotation_kind=annotation.kind,
                        sop_instance_uid=annotation.sop_instance_uid, frame=annotation.frame,
                        points=[list(p) for p in annotation.points], measurement=measurement or {})

    def delete_annotation(self, uid: str) -> bool:
        """Delete an annotation softly (kept with ``deleted_at``); False when there is no such live annotation."""
        with self.engine.begin() as conn:
            row = conn.execute(select(S.annotations.c.id, S.annotations.c.case_id)
                               .where(and_(S.annotations.c.uid == uid, S.annotations.c.deleted_at.is_(None)))).first()
            if row is None:
                return False
            conn.execute(update(S.annotations).where(S.annotations.c.id == row.id).values(deleted_at=time.time()))
            self._touch(conn, row.case_id)
            self._event(conn, row.case_id, "annotation deleted", uid=uid)
            return True

    def annotations(self, study_instance_uid: str, include_deleted: bool = False) -> list[Annotation]:
        """The case's annotations in creation order (live ones unless ``include_deleted``)."""
        with self._read() as conn:
            cid = conn.execute(select(S.cases.c.id).where(S.cases.c.study_instance_uid == study_instance_uid)
                               ).scalar()
            if cid is None:
                return []
            q = select(S.annotations).where(S.annotations.c.case_id == cid).order_by(S.annotations.c.id)
            if not include_deleted:
                q = q.where(S.annotations.c.deleted_at.is_(None))
            return [_annotation(r) for r in conn.execute(q)]

    def annotation_measurements(self, study_instance_uid: str) -> dict[str, dict]:
        """{annotation uid: the measurement dict saved with it} for the case's live annotations."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            return {r.uid: json.loads(r.measurement_json) for r in conn.execute(
                select(S.annotations.c.uid, S.annotations.c.measurement_json).where(
                    and_(S.annotations.c.case_id == cid, S.annotations.c.deleted_at.is_(None))))}

    # ------------------------------------------------------------------------------------------------ AI results
    def add_ai_result(self, study_instance_uid: str, result, run_id: int | None = None) -> int:  # noqa: ANN001
        """Append an image-model result (a :class:`medviewer.inference.scorer.ScoreResult`, heat map optional);
        returns its id. Nothing is overwritten: re-scoring adds rows. A model's output is not the reader's work:
        it neither starts a case nor withdraws a sign-off."""
        status = str(getattr(result, "status", "scored") or "scored")
        if status not in ("scored", "out_of_scope", "scored_anyway"):
            raise CaseStoreError(f"unknown AI result status {status!r}")
        p_pos = float(result.probabilities[result.positive_label]) if status != "out_of_scope" else 0.0
        positive = bool(result.positive) and status != "out_of_scope"
        ood = getattr(result, "ood_score", None)
        ood = float(ood) if ood is not None and math.isfinite(float(ood)) else None
        heat = getattr(result, "heatmap", None)
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid)
            rid = _new_id(conn.execute(insert(S.ai_results).values(
                case_id=cid, sop_instance_uid=result.sop_instance_uid, frame=int(result.frame), model=result.model,
                model_version=result.version, weights_sha256=result.weights_sha256,
                probabilities_json=json.dumps(result.probabilities), positive_label=result.positive_label,
                score=p_pos, threshold=float(result.threshold), positive=positive,
                heatmap_method=result.heatmap_method or "", heatmap_label=result.heatmap_label or "",
                heatmap_png=_heatmap_png(heat) if heat is not None else None, run_id=run_id,
                created_at=time.time(), status=status, scope_reason=str(getattr(result, "scope_reason", "")),
                warnings_json=json.dumps(list(getattr(result, "warnings", []) or [])),
                ood_score=ood)))
            self._touch(conn, cid, start_work=False)
            self._event(conn, cid, "ai result", ai_result_id=rid, model=result.model, version=result.version,
                        weights_sha256=result.weights_sha256, sop_instance_uid=result.sop_instance_uid,
                        score=p_pos if status != "out_of_scope" else None, positive=positive, status=status,
                        run_id=run_id)
            return int(rid)

    def ai_results(self, study_instance_uid: str, model: str | None = None) -> list[AIResult]:
        """Every AI result of the case (optionally of one model), oldest first."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            q = select(S.ai_results).where(S.ai_results.c.case_id == cid).order_by(S.ai_results.c.id)
            if model:
                q = q.where(S.ai_results.c.model == model)
            return [_ai(r) for r in conn.execute(q)]

    def latest_ai_results(self, study_instance_uid: str, model: str | None = None) -> list[AIResult]:
        """The latest result per (image, frame, model) of the case."""
        latest: dict[tuple, AIResult] = {}
        for r in self.ai_results(study_instance_uid, model):
            latest[(r.sop_instance_uid, r.frame, r.model)] = r
        return list(latest.values())

    # ------------------------------------------------------------------------------------------------ radiologist
    def add_radiologist_score(self, study_instance_uid: str, label: str, positive: bool,
                              confidence: int | None = None, comment: str = "", reader: str = "",
                              ai_result_id: int | None = None) -> int:
        """Append the radiologist's call on ``label``. When ``ai_result_id`` is given (default: the case's latest
        AI result whose positive label is ``label``) the row records whether the call overrides it. Returns its id.

        Raises CaseStoreError for a confidence outside 1..5."""
        if confidence is not None and not 1 <= int(confidence) <= 5:
            raise CaseStoreError("confidence must be 1..5")
        with self.engine.begin() as conn:
            cid = self._case_id(conn, study_instance_uid)
            if ai_result_id is None:
                ai_result_id = conn.execute(select(S.ai_results.c.id).where(and_(
                    S.ai_results.c.case_id == cid, S.ai_results.c.positive_label == label,
                    S.ai_results.c.status != "out_of_scope"))
                    .order_by(S.ai_results.c.id.desc()).limit(1)).scalar()
            override = False
            if ai_result_id is not None:
                ai_pos = conn.execute(select(S.ai_results.c.positive).where(S.ai_results.c.id == ai_result_id)
                                      ).scalar()
                override = ai_pos is not None and bool(ai_pos) != bool(positive)
            sid = _new_id(conn.execute(insert(S.radiologist_scores).values(
                case_id=cid, label=label, positive=bool(positive), confidence=confidence, ai_result_id=ai_result_id,
                override=override, comment=comment, reader=reader, created_at=time.time())))
            self._touch(conn, cid)
            self._event(conn, cid, "radiologist score", label=label, positive=bool(positive), confidence=confidence,
                        override=override, ai_result_id=ai_result_id, reader=reader)
            return int(sid)

    def radiologist_scores(self, study_instance_uid: str) -> list[RadiologistScore]:
        """Every radiologist call of the case, oldest first (the last per label is the current one)."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            return [_radiologist(r) for r in conn.execute(
                select(S.radiologist_scores).where(S.radiologist_scores.c.case_id == cid)
                .order_by(S.radiologist_scores.c.id))]

    # ------------------------------------------------------------------------------------------------ events
    def events(self, study_instance_uid: str) -> list[Event]:
        """The case's history, oldest first."""
        with self._read() as conn:
            cid = self._case_id(conn, study_instance_uid, create=False)
            return [Event(r.id, r.case_id, r.kind, json.loads(r.detail_json), r.at) for r in conn.execute(
                select(S.events).where(S.events.c.case_id == cid).order_by(S.events.c.id))]

    def log_event(self, study_instance_uid: str, kind: str, **detail: Any) -> None:
        """Append a free event (e.g. "case opened", "report exported") to the case's history."""
        with self.engine.begin() as conn:
            self._event(conn, self._case_id(conn, study_instance_uid), kind, **detail)

    # ------------------------------------------------------------------------------------------------ re-score runs
    def start_run(self, reason: str, models: dict[str, str], n_cases: int) -> int:
        """Record the start of a re-score run ({model name: weights sha256}); returns its id."""
        now = time.time()
        with self.engine.begin() as conn:
            return _new_id(conn.execute(insert(S.rescore_runs).values(
                reason=reason, models_json=json.dumps(models), n_cases=n_cases, state="running",
                started_at=now, heartbeat_at=now)))

    def update_run(self, run_id: int, n_done: int | None = None, state: str | None = None) -> None:
        """Progress (``n_done``) or end (``state`` finished/cancelled/failed) of a re-score run; either is the
        run's heartbeat (see :meth:`runs`)."""
        values: dict[str, Any] = {"heartbeat_at": time.time()}
        if n_done is not None:
            values["n_done"] = n_done
        if state is not None:
            values["state"] = state
            if state != "running":
                values["finished_at"] = time.time()
        with self.engine.begin() as conn:
            conn.execute(update(S.rescore_runs).where(S.rescore_runs.c.id == run_id).values(**values))

    def runs(self) -> list[dict]:
        """Every re-score run (dicts of the rescore_runs columns, models decoded), oldest first.

        A run still marked "running" whose last heartbeat (its start or its last finished case; the start when a
        run from before schema version 5 has none) is older than :data:`RUN_STALE_SECONDS` is reported as
        ``"interrupted"``: its process died without saying so (killed, crash, power cut). Nothing is written: a
        re-run resumes from what the run stored."""
        now = time.time()
        with self._read() as conn:
            out = []
            for r in conn.execute(select(S.rescore_runs).order_by(S.rescore_runs.c.id)):
                d = dict(r._mapping)
                d["models"] = json.loads(d.pop("models_json"))
                last = d.get("heartbeat_at") or d["started_at"]
                if d["state"] == "running" and now - float(last) > RUN_STALE_SECONDS:
                    d["state"] = "interrupted"
                out.append(d)
            return out

    # ------------------------------------------------------------------------------------------------ worklist
    def worklist(self, model: str | None = None) -> list[WorklistRow]:
        """One :class:`WorklistRow` per case, newest study first. ``model`` picks the image model whose score is
        shown (default: the model of the case's latest AI result)."""
        ai, nr, rs, an = S.ai_results, S.note_results, S.radiologist_scores, S.annotations
        # Latest AI result per (case, image, frame, model): MAX(id) of each group, joined back for its values.
        # MIN(id) orders the groups by first appearance, the order in which the case score takes ties.
        grouped = select(func.min(ai.c.id).label("first_id"), func.max(ai.c.id).label("last_id")).group_by(
            ai.c.case_id, ai.c.sop_instance_uid, ai.c.frame, ai.c.model)
        if model:
            grouped = grouped.where(ai.c.model == model)
        groups = grouped.subquery("g")
        q_ai = select(groups.c.first_id, groups.c.last_id, ai.c.case_id, ai.c.model, ai.c.score, ai.c.positive,
                      ai.c.weights_sha256, ai.c.created_at, ai.c.status, ai.c.scope_reason).join_from(
            groups, ai, ai.c.id == groups.c.last_id)

        def last_per_case(table, *columns):  # noqa: ANN001, ANN202 - the row of MAX(id) of each case
            latest = select(func.max(table.c.id).label("id")).group_by(table.c.case_id).subquery("l")
            return select(table.c.case_id, *columns).join_from(latest, table, table.c.id == latest.c.id)

        with self._read() as conn:
            rows = {r[0]: WorklistRow(Case(*r)) for r in conn.execute(
                select(*_CASE_COLUMNS).order_by(S.cases.c.study_date.desc(), S.cases.c.id))}
            # The case score is the max over its images of the latest results of the case's latest model (the
            # model of its MAX(id) result, which is the last_id of its group).
            latest = sorted(conn.execute(q_ai).all(), key=itemgetter(0))
            last: dict[int, tuple[int, str]] = {}
            for _first, last_id, cid, m, *_ in latest:
                if cid not in last or last_id > last[cid][0]:
                    last[cid] = (last_id, m)
            for _first, _last, cid, m, score, positive, sha, created_at, status, reason in latest:
                row = rows.get(cid)
                if row is None or m != last[cid][1]:
                    continue
                row.ai_at = max(row.ai_at or 0.0, created_at)
                if status == "out_of_scope":
                    if row.ai_score is None:  # no image of the case has a call (yet): say why
                        row.ai_model, row.ai_status, row.ai_weights_sha256 = m, status, sha
                        row.ai_scope_reason = row.ai_scope_reason or reason
                    continue
                if row.ai_score is None or score > row.ai_score:
                    row.ai_model, row.ai_score, row.ai_positive = m, float(score), bool(positive)
                    row.ai_weights_sha256, row.ai_status = sha, status or "scored"
                    row.ai_scope_reason = reason if status == "scored_anyway" else ""
            for cid, findings_json, decisions_json in conn.execute(
                    last_per_case(nr, nr.c.findings_json, nr.c.decisions_json)):
                if cid in rows:
                    findings, decisions = json.loads(findings_json), json.loads(decisions_json)
                    rows[cid].note_findings = _positives(findings, decisions)
                    rows[cid].note_uncertain = _uncertain(findings, decisions)
            for cid, label, positive, confidence in conn.execute(
                    last_per_case(rs, rs.c.label, rs.c.positive, rs.c.confidence)):
                if cid in rows:
                    row = rows[cid]
                    row.radiologist_label, row.radiologist_positive = label, bool(positive)
                    row.radiologist_confidence = confidence
            for cid, n in conn.execute(select(an.c.case_id, func.count()).where(
                    an.c.deleted_at.is_(None)).group_by(an.c.case_id)):
                if cid in rows:
                    rows[cid].n_annotations = int(n)
            cr = S.case_readers
            for cid, reader, ws in conn.execute(select(cr.c.case_id, cr.c.reader, cr.c.workstation).where(
                    cr.c.seen_at >= time.time() - READER_TTL_S, cr.c.workstation != self.workstation)
                    .order_by(cr.c.opened_at)):
                if cid in rows:
                    rows[cid].being_read_by.append(CaseReader(reader, ws, 0.0, 0.0).describe())
        return list(rows.values())

    def stale_cases(self, model: str, weights_sha256: str) -> list[str]:
        """StudyInstanceUIDs of cases where the latest result of ``model`` on some image was made with weights
        other than ``weights_sha256``."""
        latest: dict[tuple, tuple[str, str]] = {}
        with self._read() as conn:
            for r in conn.execute(select(S.ai_results.c.sop_instance_uid, S.ai_results.c.frame,
                                         S.ai_results.c.weights_sha256, S.cases.c.study_instance_uid)
                                  .join(S.cases, S.cases.c.id == S.ai_results.c.case_id)
                                  .where(S.ai_results.c.model == model).order_by(S.ai_results.c.id)):
                latest[(r.study_instance_uid, r.sop_instance_uid, r.frame)] = (r.study_instance_uid,
                                                                              r.weights_sha256)
        return sorted({uid for uid, sha in latest.values() if sha != weights_sha256})

    # ------------------------------------------------------------------------------------------------ import
    def import_interim_notes(self, path: str | Path) -> int:
        """Copy notes saved by the interim notes store (``notes.sqlite3`` of earlier versions) into this store,
        once per note version; returns how many versions were copied."""
        import sqlite3

        path = Path(path)
        if not path.is_file():
            return 0
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            versions = src.execute("SELECT study_instance_uid, text, saved_at FROM note_versions ORDER BY id"
                                   ).fetchall()
            findings = src.execute("SELECT study_instance_uid, findings_json, decisions_json, model, model_version, "
                                   "saved_at FROM note_findings").fetchall()
        except sqlite3.DatabaseError:
            return 0
        finally:
            src.close()
        copied = 0
        with self.engine.begin() as conn:
            for uid, text, saved_at in versions:
                cid = self._case_id(conn, uid)
                dup = conn.execute(select(S.note_versions.c.id).where(and_(
                    S.note_versions.c.case_id == cid, S.note_versions.c.saved_at == saved_at,
                    S.note_versions.c.text == text))).first()
                if dup is None:
                    conn.execute(insert(S.note_versions).values(case_id=cid, text=text, saved_at=saved_at))
                    copied += 1
            for uid, fj, dj, model, version, saved_at in findings:
                cid = self._case_id(conn, uid)
                dup = conn.execute(select(S.note_results.c.id).where(and_(
                    S.note_results.c.case_id == cid, S.note_results.c.created_at == saved_at))).first()
                if dup is None:
                    vid = conn.execute(select(func.max(S.note_versions.c.id)).where(
                        S.note_versions.c.case_id == cid)).scalar()
                    conn.execute(insert(S.note_results).values(case_id=cid, note_version_id=vid, model=model,
                                                               model_version=version, findings_json=fj,
                                                               decisions_json=dj, created_at=saved_at))
            if copied:
                for uid in {v[0] for v in versions}:
                    self._event(conn, self._case_id(conn, uid), "notes imported", source=str(path))
        return copied


def open_default_store() -> CaseStore:
    """The user's case store (``<data dir>/cases.sqlite3``), with notes of the interim store imported once."""
    from medviewer.config import data_dir

    store = CaseStore()
    legacy = data_dir() / "notes.sqlite3"
    marker = data_dir() / ".notes-imported"
    if legacy.is_file() and not marker.exists() and not store.read_only:
        store.import_interim_notes(legacy)
        marker.write_text("notes.sqlite3 imported into cases.sqlite3\n", encoding="utf-8")
    return store

