"""Run Qt-free jobs (:mod:`medviewer.jobs`) on a QThreadPool and deliver progress/results on the GUI thread.

Follows ``../shared/DESIGN.md``: capture inputs on the GUI thread, compute off it, apply results on it. Workers
never touch widgets; they only emit signals, which Qt queues to the receiver's (GUI) thread.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.jobs import Cancelled, TaskState


class JobSignals(QObject):
    """Signals of one job. They are emitted from the worker thread; this object lives on the GUI thread, so Qt
    queues every emission to the GUI thread (slots never run on the worker)."""

    progress = Signal(int, int, str)
    partial = Signal(object)  # an intermediate result (e.g. an allocated volume, a thumbnail)
    item = Signal(int)  # an item finished (e.g. a slice decoded)
    finished = Signal(object)
    failed = Signal(str)
    cancelled = Signal()


class Job(QRunnable):
    """A QRunnable running ``fn(state)``; ``state`` is a :class:`TaskState` wired to ``signals.progress``.

    ``signals.progress`` is throttled to one emission per :attr:`PROGRESS_INTERVAL_S` (the last one, done >= total,
    always goes out): a scan or load reports once per file, and every queued emission costs the GUI thread a slot
    call, a progress-bar repaint and a wait for the GIL (benchmarks/bench_gui.py (2): 1120 emissions for a 560-file
    folder took ~0.4 s of GUI time and slowed the load itself).
    """

    PROGRESS_INTERVAL_S = 0.04

    def __init__(self, fn: Callable[[TaskState], Any]):
        super().__init__()
        self.setAutoDelete(False)
        self.fn = fn
        self.signals = JobSignals()
        self.state = TaskState(on_progress=self._emit_progress)
        self.done = False
        self._last_progress = 0.0

    def _emit_progress(self, done: int, total: int, message: str) -> None:  # worker thread(s)
        now = time.monotonic()
        if done < total and now - self._last_progress < self.PROGRESS_INTERVAL_S:
            return
        self._last_progress = now  # a race between decode threads only lets an extra emission through
        self.signals.progress.emit(done, total, message)

    def cancel(self) -> None:
        self.state.cancel()

    def run(self) -> None:  # worker thread
        try:
            result = self.fn(self.state)
        except Cancelled:
            self.signals.cancelled.emit()
        except Exception as exc:  # noqa: BLE001 - surfaced to the user, never swallowed
            self.signals.failed.emit(f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=4)}")
        else:
            if self.state.cancelled:
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(result)
        finally:
            self.done = True


class JobRunner(QObject):
    """Owns a thread pool; keeps every job alive until it finished; cancels and waits for all on shutdown."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 2):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.jobs: list[Job] = []

    def start(self, job: Job) -> Job:
        self.jobs = [j for j in self.jobs if not j.done]
        self.jobs.append(job)
        self.pool.start(job)
        return job

    def active_count(self) -> int:
        return sum(1 for j in self.jobs if not j.done)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel every job and wait for the pool to drain. Returns True when all workers stopped."""
        for job in self.jobs:
            job.cancel()
        return self.pool.waitForDone(timeout_ms)


class StoreWriter(QObject):
    """Runs case-store writes on one background thread, in submission order, so the GUI thread never waits for
    the disk (an SQLite commit with ``synchronous=FULL`` is an fsync). ``failed`` carries the message of a write
    that raised (the caller shows it); ``flush()`` blocks until everything submitted so far is written (used on
    case change and on close, so nothing is lost)."""

    failed = Signal(str)
    written = Signal(str)  # the label given to submit(), after a successful write

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        import queue
        import threading

        self.queue: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=self._run, name="medviewer-store-writer", daemon=True)
        self.thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "") -> None:
        """Queue ``fn(*args)`` (a store method)."""
        self.queue.put((fn, args, label))

    def _run(self) -> None:  # writer thread
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                fn, args, label = item
                fn(*args)
                if label:
                    self.written.emit(label)
            except Exception as exc:  # noqa: BLE001 - surfaced through `failed`, never swallowed
                msg = f"Saving failed: {type(exc).__name__}: {exc}"
                self.errors.append(msg)
                self.failed.emit(msg)
            finally:
                self.queue.task_done()

    def flush(self) -> None:
        """Block until every queued write is done."""
        self.queue.join()

    def close(self) -> None:
        """Flush and stop the thread."""
        self.flush()
        self.queue.put(None)
        self.thread.join(timeout=10)
