"""Which background job of each kind is current, and whether its result may still be shown (Qt-free).

The GUI runs every job (scan, load, thumbnails, scoring, heat maps, note classification, worklist, re-score,
export, PACS) through one :class:`JobBook` (``medviewer.ui.workers.JobRunner.submit``):

* a job has a *kind* ("scan", "load:0", "ai", "notes", "export:<study>"...); starting a job of a kind cancels the
  previous job of that kind (its :class:`~medviewer.jobs.TaskState`) and makes it stale, so nothing it still
  delivers is applied;
* a job may carry a *context* (:class:`medviewer.session.Context` or any value the caller's ``still_shown``
  understands): its results are applied only while that context is on screen.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from medviewer.jobs import TaskState

_seq = itertools.count(1)


@dataclass
class Ticket:
    """One started job: its ``kind``, the ``context`` it computes for and its :class:`TaskState`."""

    kind: str
    state: TaskState
    context: object = None
    seq: int = field(default_factory=lambda: next(_seq))
    finished: bool = False


class JobBook:
    """The current job of each kind. Use from one thread (the GUI thread)."""

    def __init__(self) -> None:
        self._current: dict[str, Ticket] = {}

    def begin(self, kind: str, state: TaskState, context: object = None) -> Ticket:
        """Record a new job of ``kind``; the previous one of that kind (if still running) is cancelled."""
        previous = self._current.get(kind)
        if previous is not None and not previous.finished:
            previous.state.cancel()
        ticket = Ticket(kind, state, context)
        self._current[kind] = ticket
        return ticket

    def is_current(self, ticket: Ticket) -> bool:
        """True while ``ticket`` is the latest job of its kind and was not cancelled."""
        return self._current.get(ticket.kind) is ticket and not ticket.state.cancelled

    def finish(self, ticket: Ticket) -> None:
        ticket.finished = True

    def running(self, kind: str) -> bool:
        """True while the current job of ``kind`` has not finished."""
        t = self._current.get(kind)
        return t is not None and not t.finished and not t.state.cancelled

    def cancel(self, *kinds: str, prefix: str | None = None) -> None:
        """Cancel the current jobs of ``kinds`` (and of every kind starting with ``prefix``)."""
        for kind, t in self._current.items():
            if kind in kinds or (prefix is not None and kind.startswith(prefix)):
                t.state.cancel()

    def cancel_all(self) -> None:
        for t in self._current.values():
            t.state.cancel()
