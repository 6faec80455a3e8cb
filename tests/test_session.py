"""The Qt-free session model and the job book: change events at the right level, focus, layouts, contexts, and
the rules that make a stale result impossible to apply (headless)."""

from __future__ import annotations

import threading

import pytest

from medviewer.jobs import TaskState
from medviewer.jobs.book import JobBook
from medviewer.session import Context, ImageRef, Session, level_between

A1 = ImageRef("study-A", "series-1", "A1", "sop-1", 0, 0, "DOE^JANE", "1")
A1b = ImageRef("study-A", "series-1", "A1", "sop-2", 0, 1, "DOE^JANE", "1")
A2 = ImageRef("study-A", "series-2", "A2", "sop-3", 0, 0, "DOE^JANE", "1")
B = ImageRef("study-B", "series-9", "B", "sop-9", 0, 0, "ROE^RICHARD", "2")


def _recorder(session: Session) -> list:
    seen: list = []
    session.subscribe(seen.append)
    return seen


def test_levels_between_images():
    assert level_between(A1, A1) == ""
    assert level_between(A1, A1b) == "image"
    assert level_between(A1, A2) == "series"
    assert level_between(A1, B) == "case"
    assert level_between(None, A1) == "case" and level_between(A1, None) == "case"
    assert level_between(None, None) == ""
    frame = ImageRef("study-A", "series-1", "A1", "sop-1", 3, 0, "DOE^JANE", "1")
    assert level_between(A1, frame) == "image"  # another frame of the same instance
    # pydicom-data's CR and MR samples share one StudyInstanceUID but not the patient: another case for the docks
    other_patient = ImageRef("study-A", "series-7", "A7", "sop-7", 0, 0, "ROE^RICHARD", "2")
    assert level_between(A1, other_patient) == "case"


def test_show_emits_the_focus_level_and_resets_the_view_on_a_new_series():
    s = Session()
    seen = _recorder(s)
    s.show(0, A1)
    assert [(c.what, c.focus_level) for c in seen] == [("case", "case")] and s.case_uid == "study-A"
    s.viewports[0].view.window_source, s.viewports[0].view.invert = "manual", True
    s.set_index(0, 1, "sop-2", 0)
    assert seen[-1].focus_level == "image" and s.image == A1b
    assert s.viewports[0].view.invert  # same series: the view is kept
    s.show(0, A2)
    assert seen[-1].focus_level == "series" and not s.viewports[0].view.invert
    assert s.viewports[0].view.window_source == ""
    s.show(0, A2)  # the same image again: nothing happens
    assert len(seen) == 3
    s.show(0, B)
    assert seen[-1].what == "case" and seen[-1].before == A2 and seen[-1].after == B


def test_changes_in_a_viewport_without_focus_do_not_move_the_focused_context():
    s = Session(layout="1x2")
    s.show(0, A1)
    seen = _recorder(s)
    s.show(1, B)
    assert seen[-1].slot == 1 and seen[-1].what == "case" and seen[-1].focus_level == ""
    assert s.case_uid == "study-A"
    s.set_active(1)
    assert seen[-1].what == "active" and seen[-1].focus_level == "case" and s.case_uid == "study-B"


def test_layout_hides_the_focused_viewport_and_moves_the_focus():
    s = Session(layout="2x2")
    s.show(0, A1)
    s.show(3, B)
    s.set_active(3)
    seen = _recorder(s)
    s.set_layout("1x1")
    assert s.active_slot == 0 and seen[-1].what == "layout" and seen[-1].focus_level == "case"
    assert s.visible_slots() == [0]
    assert s.viewports[3].image == B  # hidden viewports keep their image
    with pytest.raises(ValueError):
        s.set_layout("3x3")
    with pytest.raises(ValueError):
        s.set_active(7)


def test_contexts_match_at_their_level_and_only_on_visible_viewports():
    s = Session(layout="1x2")
    s.show(0, A1)
    s.show(1, B)
    assert s.is_shown(Context.of_case("study-A")) and s.is_shown(Context.of_image(B))
    assert s.is_shown(Context.of_series(A1b)) and not s.is_shown(Context.of_image(A1b))
    assert s.is_focused(Context.of_image(A1)) and not s.is_focused(Context.of_case(B))
    assert s.slots_showing(Context.of_case("study-B")) == [1]
    s.set_layout("1x1")
    assert not s.is_shown(Context.of_case("study-B"))  # hidden: its results are not applied
    s.show(0, None)
    assert not s.is_shown(Context.of_case("study-A")) and s.case_uid is None


def test_a_failing_listener_does_not_stop_the_others(caplog):
    s = Session()
    seen: list = []

    def broken(_change):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    s.subscribe(broken)
    s.subscribe(seen.append)
    s.show(0, A1)
    assert len(seen) == 1 and "boom" in caplog.text
    unsubscribe = s.subscribe(seen.append)
    unsubscribe()
    s.show(0, B)
    assert len(seen) == 2


def test_job_book_one_current_job_per_kind():
    book = JobBook()
    first = book.begin("ai", TaskState(), Context.of_image(A1))
    assert book.is_current(first) and book.running("ai")
    second = book.begin("ai", TaskState(), Context.of_image(B))
    assert first.state.cancelled and not book.is_current(first) and book.is_current(second)
    other = book.begin("load:1", TaskState())
    assert book.is_current(second) and book.is_current(other)  # kinds are independent
    book.finish(second)
    assert not book.running("ai") and book.is_current(second)  # finished, its result still applies
    book.cancel(prefix="load:")
    assert other.state.cancelled and not book.is_current(other)
    third = book.begin("notes", TaskState())
    book.cancel_all()
    assert third.state.cancelled


def test_task_state_partial_and_item_reach_the_caller_from_a_worker():
    got: list = []
    state = TaskState(on_partial=got.append, on_item=lambda k: got.append(("item", k)))
    t = threading.Thread(target=lambda: (state.partial("volume"), state.item(3)))
    t.start()
    t.join()
    assert got == ["volume", ("item", 3)]
    TaskState().partial("nobody listens")  # no callback: nothing happens
