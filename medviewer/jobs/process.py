"""Run model calls in one spawned child process, so that importing and running torch/transformers never holds the
GUI process's GIL.

Loading torch maps hundreds of megabytes of shared libraries and builds models with long C calls that keep the
GIL: in a worker *thread* of the GUI process that stalls the GUI thread for 100-400 ms at a time. In a child
process it costs the GUI nothing; the GUI side only pickles requests and results. The child is started on first
use and keeps its loaded models between calls.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from medviewer.jobs import TaskState


def _leave_a_core_free() -> None:
    """Child initializer: the model's math threads use all cores but one, so the GUI process always has a core
    (with every core busy in the child, the GUI thread was seen waiting 75 ms for the CPU on a 2-core machine)."""
    import os

    n = max(1, (os.cpu_count() or 2) - 1)
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    os.environ.setdefault("MKL_NUM_THREADS", str(n))


_MAIN_LOCK = threading.RLock()


@contextlib.contextmanager
def main_module_hidden():  # noqa: ANN202
    """While worker processes start: hide the caller's ``__main__`` file and spec, so that a spawned child does
    not re-run the calling script (an unguarded script, ``python - < file``, a notebook); the children run
    module-level functions of medviewer and need nothing from it."""
    _MAIN_LOCK.acquire()  # one start at a time: overlapping hides would restore too early
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
    try:
        for k in saved:
            if k == "__spec__":
                main.__spec__ = None
            else:
                delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)
        _MAIN_LOCK.release()


class ModelProcess:
    """A one-worker process pool (``spawn`` start method: safe beside Qt's threads), whose math threads leave one
    core to the GUI (:func:`_leave_a_core_free`)."""

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run ``fn(*args)`` in the child; ``fn`` must be a module-level function, args and result picklable."""
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_leave_a_core_free)
            with main_module_hidden():  # the child must not re-run the caller's script
                return self._pool.submit(fn, *args)

    def call(self, state: TaskState, fn: Callable[..., Any], *args: Any, poll_s: float = 0.1) -> Any:
        """Submit and wait (from a worker thread), checking ``state`` for cancellation while waiting.

        Raises
        ------
        medviewer.jobs.Cancelled: cancellation was requested (the child finishes the call and the result is
            dropped).
        Exception: whatever ``fn`` raised in the child.
        """
        future = self.submit(fn, *args)
        while True:
            try:
                return future.result(timeout=poll_s)
            except FutureTimeout:
                state.check()

    def shutdown(self) -> None:
        """Stop the child (pending calls are cancelled)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None


#: The process shared by the app's model calls.
MODEL_PROCESS = ModelProcess()
