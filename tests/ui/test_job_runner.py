"""The one job mechanism (JobRunner.submit): a new job of a kind cancels and disconnects the previous one; a result
is delivered only while its context is shown; failures and cancellations reach the current job's callbacks."""

from __future__ import annotations

import logging
import threading

from medviewer.session import Context, ImageRef, Session
from medviewer.ui.workers import JobRunner

A = ImageRef("study-A", "s1", "k1", "sop-1")
B = ImageRef("study-B", "s2", "k2", "sop-2")


def _runner(qtbot, session: Session | None = None) -> JobRunner:  # noqa: ANN001
    runner = JobRunner(max_threads=2, still_shown=session.is_shown if session else None)
    return runner


def test_a_new_job_of_a_kind_supersedes_the_previous(qtbot):
    runner = _runner(qtbot)
    release = threading.Event()
    got: list = []

    def slow(state):  # noqa: ANN001, ANN202
        release.wait(5)
        state.progress(1, 1, "late")
        return "old"

    first = runner.submit("ai", slow, on_result=got.append, on_progress=lambda *a: got.append(a))
    second = runner.submit("ai", lambda state: "new", on_result=got.append)
    assert first.state.cancelled and not second.state.cancelled
    qtbot.waitUntil(lambda: second.done, timeout=5000)
    release.set()
    qtbot.waitUntil(lambda: first.done, timeout=5000)
    qtbot.wait(50)
    assert got == ["new"]
    assert runner.shutdown()


def test_results_for_a_context_no_longer_shown_are_dropped(qtbot, caplog):
    caplog.set_level(logging.INFO, logger="medviewer.ui.workers")
    session = Session()
    session.show(0, A)
    runner = _runner(qtbot, session)
    got: list = []
    gate = threading.Event()

    def work(state):  # noqa: ANN001, ANN202
        gate.wait(5)
        return "P(pneumonia)=0.42 for A"

    job = runner.submit("ai", work, context=Context.of_image(A), on_result=got.append)
    session.show(0, B)  # another case is on screen before the result arrives
    gate.set()
    qtbot.waitUntil(lambda: job.done, timeout=5000)
    qtbot.wait(50)
    assert got == [] and "no longer shown" in caplog.text
    job2 = runner.submit("ai", lambda s: "for B", context=Context.of_image(B), on_result=got.append)
    qtbot.waitUntil(lambda: job2.done, timeout=5000)
    qtbot.waitUntil(lambda: got == ["for B"], timeout=5000)
    assert runner.shutdown()


def test_failures_and_cancellations_reach_the_current_job_only(qtbot, caplog):
    runner = _runner(qtbot)
    errors: list = []

    def boom(state):  # noqa: ANN001, ANN202
        raise ValueError("unreadable frame")

    job = runner.submit("export:1", boom, on_failed=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert "ValueError: unreadable frame" in errors[0] and job.done
    cancelled: list = []
    started = threading.Event()

    def wait_for_cancel(state):  # noqa: ANN001, ANN202
        started.set()
        while not state.cancelled:
            state.cancel_event.wait(0.01)
        state.check()

    job = runner.submit("rescore", wait_for_cancel, on_cancelled=lambda: cancelled.append(1))
    started.wait(5)
    assert runner.running("rescore")
    runner.cancel("rescore")
    qtbot.waitUntil(lambda: cancelled == [1], timeout=5000)
    assert not runner.running("rescore") and runner.latest("rescore") is job
    assert runner.shutdown()
