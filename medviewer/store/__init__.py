"""Case store: studies as cases with versioned notes, annotations, AI results, radiologist scores and events
(SQLAlchemy 2, SQLite in the user's data dir by default). No Qt."""

from medviewer.store.cases import (AIResult, Case, CaseStore, CaseStoreError, Event, NoteResult, RadiologistScore,
                                   WorklistRow, open_default_store)

__all__ = ["AIResult", "Case", "CaseStore", "CaseStoreError", "Event", "NoteResult", "RadiologistScore",
           "WorklistRow", "open_default_store"]
