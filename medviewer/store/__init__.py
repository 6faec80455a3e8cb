"""Case store: studies as cases with versioned notes, annotations, AI results, radiologist scores and events
(SQLAlchemy 2, SQLite in the user's data dir by default, PostgreSQL shared by several workstations with
``MEDVIEWER_DB_URL``). No Qt."""

from medviewer.store.cases import (AIResult, Case, CaseReader, CaseStore, CaseStoreError, ConflictError, Event,
                                   NoteResult, RadiologistScore, WorklistRow, display_url, open_default_store)

__all__ = ["AIResult", "Case", "CaseReader", "CaseStore", "CaseStoreError", "ConflictError", "Event", "NoteResult",
           "RadiologistScore", "WorklistRow", "display_url", "open_default_store"]
