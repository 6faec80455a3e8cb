"""Qt-free background jobs: a plain function plus a progress/cancel handle.

A long operation (scanning a folder, loading a series, scoring) takes a :class:`TaskState` and calls
:meth:`TaskState.progress` as it goes and :meth:`TaskState.check` at safe points. The GUI adapts a
``TaskState`` to Qt signals in ``medviewer.ui``; scripts and tests pass plain callables or nothing.
The pattern follows Orange3's ``TaskState`` (set_progress_value / is_interruption_requested).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

ProgressCallback = Callable[[int, int, str], None]
"""``progress(done, total, message)``: ``done`` items of ``total`` finished; ``message`` names the current item."""


class Cancelled(Exception):
    """Raised by :meth:`TaskState.check` once cancellation was requested."""


@dataclass
class TaskState:
    """Progress reporting and cooperative cancellation for one job.

    Parameters
    ----------
    on_progress:
        Called as ``on_progress(done, total, message)`` from the worker thread. Keep it cheap and thread-safe
        (the Qt adapter emits a queued signal).
    on_partial, on_item:
        Called by :meth:`partial` and :meth:`item` from the worker thread (same rules).
    cancel_event:
        Set it (from any thread) to request cancellation; a fresh :class:`threading.Event` by default.
    """

    on_progress: ProgressCallback | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    on_partial: Callable[[object], None] | None = None
    on_item: Callable[[int], None] | None = None

    def progress(self, done: int, total: int, message: str = "") -> None:
        """Report that ``done`` of ``total`` units are finished."""
        if self.on_progress is not None:
            self.on_progress(done, total, message)

    def partial(self, value: object) -> None:
        """Hand an intermediate result to the caller (an allocated volume, a thumbnail, one case's summary)."""
        if self.on_partial is not None:
            self.on_partial(value)

    def item(self, k: int) -> None:
        """Report that item ``k`` is ready (a decoded slice)."""
        if self.on_item is not None:
            self.on_item(k)

    def cancel(self) -> None:
        """Request cancellation; the job stops at its next :meth:`check`."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        """True once :meth:`cancel` was called."""
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self.cancel_event.is_set():
            raise Cancelled()


def as_task_state(
    state: TaskState | None = None,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
) -> TaskState:
    """Normalise the ways callers pass progress/cancel into one :class:`TaskState`.

    ``cancel`` may be a :class:`threading.Event` or a zero-argument callable returning True when the job should
    stop (polled at each :meth:`TaskState.check`).
    """
    if state is not None:
        return state
    if cancel is None or isinstance(cancel, threading.Event):
        return TaskState(on_progress=progress, cancel_event=cancel or threading.Event())
    return _PolledTaskState(on_progress=progress, poll=cancel)


@dataclass
class _PolledTaskState(TaskState):
    poll: Callable[[], bool] | None = None

    @property
    def cancelled(self) -> bool:
        if self.poll is not None and self.poll():
            self.cancel_event.set()
        return self.cancel_event.is_set()

    def check(self) -> None:
        if self.cancelled:
            raise Cancelled()
