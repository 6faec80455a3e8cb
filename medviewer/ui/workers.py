"""Run Qt-free jobs (:mod:`medviewer.jobs`) on a QThreadPool and deliver progress/results on the GUI thread.

Follows ``../shared/DESIGN.md``: capture inputs on the GUI thread, compute off it, apply results on it. Workers
never touch widgets; they only emit signals, which Qt queues to the receiver's (GUI) thread.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from medviewer.jobs import Cancelled, TaskState
from medviewer.jobs.book import JobBook, Ticket

log = logging.getLogger(__name__)


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
    """A QRunnable running ``fn(state)``; ``state`` is a :class:`TaskState` wired to the job's signals
    (``progress``, ``partial``, ``item``). Made and started by :meth:`JobRunner.submit`.

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
        self.state = TaskState(on_progress=self._emit_progress, on_partial=self.signals.partial.emit,
                               on_item=self.signals.item.emit)
        self.done = False
        self.ticket: Ticket | None = None
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
    """The one way the GUI runs background work: :meth:`submit` a plain function of a :class:`TaskState` under a
    *kind*; the previous job of that kind is cancelled and disconnected, and every callback runs on the GUI thread
    only while the job is current and its *context* is still shown (``still_shown``, normally
    :meth:`medviewer.session.Session.is_shown`). The rules live in :class:`medviewer.jobs.book.JobBook`.

    Owns the thread pool; keeps every job alive until it finished; cancels and waits for all on shutdown."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 2,
                 still_shown: Callable[[Any], bool] | None = None):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.jobs: list[Job] = []
        self.book = JobBook()
        self.still_shown = still_shown
        self.closed = False
        self._by_kind: dict[str, Job] = {}

    def submit(self, kind: str, fn: Callable[[TaskState], Any], *, context: Any = None,
               on_result: Callable[[Any], None] | None = None,
               on_progress: Callable[[int, int, str], None] | None = None,
               on_partial: Callable[[Any], None] | None = None,
               on_item: Callable[[int], None] | None = None,
               on_failed: Callable[[str], None] | None = None,
               on_cancelled: Callable[[], None] | None = None,
               shown: Callable[[Any], bool] | None = None) -> Job:
        """Run ``fn(state)`` on the pool as the current job of ``kind``.

        The previous job of ``kind`` is cancelled and its signals blocked (nothing it still sends arrives).
        ``on_result``/``on_partial``/``on_item``/``on_progress`` run only while this job is current and, when
        ``context`` is given, ``still_shown(context)`` (or ``shown(context)``, e.g. "still the focused case");
        a result dropped for that reason is logged. ``on_failed``
        (the message with a short traceback; default: logged) and ``on_cancelled`` run while the job is current.
        After :meth:`shutdown` (the window closed) the job is cancelled, not run."""
        job = Job(fn)
        previous = self._by_kind.get(kind)
        if previous is not None and previous is not job:
            previous.signals.blockSignals(True)
        job.ticket = ticket = self.book.begin(kind, job.state, context)
        self._by_kind[kind] = job

        check = shown or self.still_shown

        def live() -> bool:
            if not self.book.is_current(ticket):
                return False
            return context is None or check is None or check(context)

        def guarded(callback: Callable[..., None] | None, what: str) -> Callable[..., None]:
            def call(*args: Any) -> None:
                if callback is None:
                    return
                if live():
                    callback(*args)
                elif what == "result":
                    log.info("%s job's result dropped: %s", kind,
                             "superseded" if not self.book.is_current(ticket) else f"{context} no longer shown")
            return call

        def finished(result: Any) -> None:
            self.book.finish(ticket)
            guarded(on_result, "result")(result)

        def failed(message: str) -> None:
            self.book.finish(ticket)
            if on_failed is not None and self.book.is_current(ticket):
                on_failed(message)
            else:
                log.warning("%s job failed: %s", kind, message)

        def cancelled() -> None:
            self.book.finish(ticket)
            if on_cancelled is not None and self._by_kind.get(kind) is job:
                on_cancelled()

        job.signals.finished.connect(finished)
        job.signals.failed.connect(failed)
        job.signals.cancelled.connect(cancelled)
        if on_progress is not None:
            job.signals.progress.connect(guarded(on_progress, "progress"))
        if on_partial is not None:
            job.signals.partial.connect(guarded(on_partial, "partial"))
        if on_item is not None:
            job.signals.item.connect(guarded(on_item, "item"))
        return self._start(job)

    def current(self, kind: str) -> Job | None:
        """The latest job of ``kind`` while it runs (None once it finished or was cancelled)."""
        job = self._by_kind.get(kind)
        return job if job is not None and job.ticket is not None and self.book.running(kind) else None

    def latest(self, kind: str) -> Job | None:
        """The last job of ``kind`` started, finished or not (None if none was)."""
        return self._by_kind.get(kind)

    def kinds(self) -> dict[str, Job]:
        """Every kind started so far and its last job."""
        return dict(self._by_kind)

    def running(self, kind: str) -> bool:
        return self.current(kind) is not None

    def cancel(self, *kinds: str, prefix: str | None = None) -> None:
        """Cancel the current jobs of ``kinds`` (and every kind starting with ``prefix``)."""
        self.book.cancel(*kinds, prefix=prefix)

    def _start(self, job: Job) -> Job:
        if self.closed:
            job.cancel()
            job.done = True
            return job
        self.jobs = [j for j in self.jobs if not j.done]
        self.jobs.append(job)
        self.pool.start(job)
        return job

    def active_count(self) -> int:
        return sum(1 for j in self.jobs if not j.done)

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel every job, refuse new ones, and wait for the pool to drain. Returns True when all workers
        stopped."""
        self.closed = True
        for job in self.jobs:
            job.cancel()
        return self.pool.waitForDone(timeout_ms)


class StoreWriter(QObject):
    """Runs case-store writes on one background thread, in submission order, so the GUI thread never waits for
    the disk (an SQLite commit with ``synchronous=FULL`` is an fsync).

    A write refused by optimistic concurrency (:class:`medviewer.store.cases.ConflictError`: another workstation
    changed the case, nothing was overwritten) is not retried: ``conflict`` says so and the reader decides again.
    Any other write that raises (database locked past its busy timeout, disk full, read-only file...) is **not
    dropped**:
    ``failed`` carries the message, and the same write is retried with a growing pause (1 s .. 15 s) before any
    later one, so the order of versions is kept; ``recovered`` fires when it finally goes through. ``close()``
    flushes; when writes still fail then, they and every write queued behind them go to ``lost`` as
    ``(function, args)`` without further waiting (the caller saves them for recovery and tells the user).
    ``flush()`` blocks
    until everything submitted so far is written: call it from worker threads (export, re-score) or on close, never
    on the GUI thread while the app runs.
    """

    failed = Signal(str)
    recovered = Signal()
    written = Signal(str)  # the label given to submit(), after a successful write
    conflict = Signal(str, str)  # (label, message): another workstation changed the case; the write was refused

    RETRY_S = (1.0, 2.0, 4.0, 8.0, 15.0)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        import queue
        import threading

        self.queue: queue.Queue = queue.Queue()
        self.errors: list[str] = []
        self.lost: list[tuple] = []
        self.failing = False
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medviewer-store-writer", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any, label: str = "") -> None:
        """Queue ``fn(*args)`` (a store method)."""
        self.queue.put((fn, args, label))

    def _attempt(self, fn: Callable[..., Any], args: tuple, label: str) -> bool:
        from medviewer.store.cases import ConflictError

        try:
            fn(*args)
        except ConflictError as exc:  # a decision made on a stale view of the case: refused, reported, not retried
            self.conflict.emit(label, str(exc))
            return True
        except Exception as exc:  # noqa: BLE001 - surfaced through `failed`, retried, never swallowed
            orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error; show that one
            from medviewer.store.cases import describe_store_error

            msg = f"Saving failed: {describe_store_error(orig or exc)}".split("\n")[0]
            self.errors.append(msg)
            self.failing = True
            self.failed.emit(msg)
            return False
        if self.failing:
            self.failing = False
            self.recovered.emit()
        if label:
            self.written.emit(label)
        return True

    def _run(self) -> None:  # writer thread
        while True:
            item = self.queue.get()
            try:
                if item is None:
                    return
                fn, args, label = item
                if self._closing.is_set() and self.failing:
                    self.lost.append((fn, args))  # closing while writes fail: do not wait on each one again
                    continue
                n = 0
                while not self._attempt(fn, args, label):
                    if self._closing.is_set():
                        self.lost.append((fn, args))
                        break
                    self._closing.wait(self.RETRY_S[min(n, len(self.RETRY_S) - 1)])
                    n += 1
            finally:
                self.queue.task_done()

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every queued write is done (or ``timeout`` seconds passed); True when done."""
        import time as _time

        if timeout is None:
            self.queue.join()
            return True
        end = _time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if _time.monotonic() > end:
                return False
            _time.sleep(0.01)
        return True

    def close(self, timeout: float = 60.0) -> None:
        """Write what is queued; if writes still fail after a few seconds, stop retrying (the write in flight
        ends within the database's busy timeout) and move the rest to ``lost``; then stop the thread."""
        if not self.flush(timeout=min(timeout, 5.0)):
            self._closing.set()
            self.flush(timeout=timeout)
        self.queue.put(None)
        self._thread.join(timeout=10)
