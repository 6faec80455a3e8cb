"""The work of a retrieval from a PACS, off the GUI thread: retrieve a study (or some of its series) into the PACS
cache with per-image progress and the job's cancel event, then register it as a case, so that the viewer opens it
like any folder. No widgets here: the Query/Retrieve dialog (:mod:`medviewer.ui.pacs_dialog`) runs
:func:`retrieve_case` as a job and shows the :class:`Retrieved` it returns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from medviewer.jobs import TaskState
from medviewer.net.nodes import NetSettings, PacsError, PacsNode

log = logging.getLogger(__name__)


@dataclass
class Retrieved:
    """The outcome of a retrieval: counts over every request, where the study landed, the case ids registered and
    what to tell the user about skipped files or a failed registration."""

    study_uid: str
    folder: Path
    received: int = 0
    already: int = 0
    failed: int = 0
    total: int = 0
    messages: list[str] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    register_error: str = ""

    @property
    def openable(self) -> bool:
        """Whether the viewer should open the folder: a case was registered, or registering failed (the files
        are still there to read)."""
        return bool(self.case_ids or self.register_error)


def retrieve_case(node: PacsNode, study_uid: str, series_uids: list[str], dest: Path, move: bool,
                  settings: NetSettings, store, state: TaskState, hint: int | None = None,  # noqa: ANN001
                  scp=None) -> Retrieved:  # noqa: ANN001 - medviewer.net.dimse.StorageSCP
    """Worker: retrieve ``study_uid`` (or each of ``series_uids``) into ``dest`` with progress per image on
    ``state`` and its cancel event, then register it as a case in ``store``. ``hint``: the number of images the
    query announced (for the progress of several series). ``scp``: the app's running Storage SCP (a C-MOVE goes
    to it; without one a listener is started for the transfer). Raises PacsError."""
    from medviewer.net import service
    from medviewer.net.files import study_folder

    out = Retrieved(study_uid, study_folder(dest, study_uid))
    requests = list(series_uids) or [""]
    several = len(requests) > 1
    base = 0
    for series_uid in requests:
        if state.cancelled:
            break

        def progress(done: int, total: int | None, message: str, base: int = base) -> None:
            whole = hint if several and hint else base + (total or 0)
            state.progress(base + done, whole if total or hint else 0, message)

        t = service.retrieve(node, study_uid, dest, series_uid=series_uid, move=move, settings=settings,
                             scp=scp if move else None, progress=progress, cancel=state.cancel_event)
        out.received += len(t.files)
        out.already += t.already
        out.failed += t.failed
        out.messages += t.messages
        out.total += t.total if t.total is not None else t.done
        base += t.done
        if t.cancelled:
            break
    if several and hint:
        out.total = max(out.total, hint)
    if state.cancelled:
        return out
    try:
        out.case_ids, out.notes = service.register_retrieved(store, dest, study_uid)
    except PacsError:
        raise
    except Exception as exc:  # noqa: BLE001 - the files are here; the viewer can still open them
        from medviewer.store.cases import describe_store_error

        log.warning("retrieved study %s not registered as a case: %s", study_uid, exc)
        out.register_error = describe_store_error(exc)
        out.notes.append(f"not registered as a case: {out.register_error}")
    return out


__all__ = ["Retrieved", "retrieve_case"]
