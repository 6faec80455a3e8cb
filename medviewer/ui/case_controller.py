"""The focused case in the window: notes, the Case dock (call form, sign-off, annotations list), annotations kept
in step across viewports and with the store, and who else reads it on a shared store.

Follows the session: when the focused image belongs to another case, the notes pane and the Case dock switch
at once (the call form is emptied, the dock shows nothing until the new case's rows arrive from a worker), and
every write names the case it was made on, never "the current one" at the time it is saved.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QTimer, Signal

from medviewer.jobs import TaskState
from medviewer.session import Change, Context, Session
from medviewer.ui.case_panel import CasePanel
from medviewer.ui.notes_pane import NotesPane
from medviewer.ui.presence import CasePresence
from medviewer.ui.viewer import ImageViewer
from medviewer.ui.viewports import ViewportBinding
from medviewer.ui.workers import JobRunner, StoreWriter

log = logging.getLogger(__name__)


class CaseController(QObject):
    """Signals: ``status(text)``; ``alert(text)`` (a warning the reader must see); ``case_changed(study uid or
    "")`` after the focused case changed."""

    status = Signal(str)
    alert = Signal(str)
    case_changed = Signal(str)

    def __init__(self, session: Session, binding: ViewportBinding, panel: CasePanel, notes: NotesPane, store,
                 writer: StoreWriter, runner: JobRunner, labels, parent: QObject | None = None):  # noqa: ANN001
        """``labels()`` returns (the image model's labels, its positive label) for the call form."""
        super().__init__(parent)
        self.session, self.binding, self.panel, self.notes = session, binding, panel, notes
        self.store, self.writer, self.runner, self.labels = store, writer, runner, labels
        self.case_uid: str | None = None
        self.rows: dict[str, object] = {}  # study uid -> WorklistRow (AI and note summary), from the worklist
        self.annotations: dict[str, dict] = {}  # study uid -> {annotation uid: Annotation}, this session's view
        self._shown_status: dict[str, str] = {}
        self.blocked: dict[str, str] = {}  # study uid -> why nothing may be written to that case
        self.presence = CasePresence(store, writer, runner, self)
        self.presence.others_reading.connect(self._others_reading)
        self.presence.changed_elsewhere.connect(self._changed_elsewhere)
        self._refresh_timer = QTimer(self)  # coalesce: one refresh per burst of writes (typing saves per key)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(250)
        self._refresh_timer.timeout.connect(self.refresh)
        panel.score_submitted.connect(self.record_call)
        panel.sign_off_requested.connect(self.sign_off)
        panel.reopen_requested.connect(self.reopen)
        panel.annotation_activated.connect(self.show_annotation)
        writer.written.connect(self._written)
        writer.conflict.connect(self._conflict)
        for viewer in binding.grid.viewers:
            viewer.annotations.annotation_saved.connect(lambda a, v=viewer: self._annotation_saved(v, a))
            viewer.annotations.annotation_deleted.connect(lambda uid, v=viewer: self._annotation_deleted(v, uid))
        session.subscribe(self._session_changed)

    # ------------------------------------------------------------------------------------------------ focus
    def _session_changed(self, change: Change) -> None:
        if change.focus_level != "case":
            return
        uid = self.session.case_uid
        self.case_uid = uid
        self.runner.cancel("case-panel")
        entry = self.binding.entry(self.session.active_slot)
        if uid is None or entry is None or uid in self.blocked:
            self.notes.set_study(None, self.blocked.get(uid or "", ""))
            self.panel.set_case(None)
            if uid in self.blocked:
                self.status.emit(self.blocked[uid])
            self.case_changed.emit("")
            return
        from medviewer.io.display import window_title

        self.notes.set_study(uid, window_title(entry.patient.patient_name, entry.patient.patient_id,
                                               entry.study.study_description, entry.study.study_date, app=""))
        self.panel.set_case(None)  # nothing of the previous case while this one's rows are read
        if not self.store.read_only:  # a read-only (damaged) store is never written; its banner says so
            self.writer.submit(self.store.log_event, uid, "case opened")
        self.presence.open(uid, self.panel.reader.text().strip())
        self.refresh()
        self.case_changed.emit(uid)

    def set_rows(self, rows: dict) -> None:
        """The worklist's rows (study uid -> WorklistRow), for the dock's AI and notes line."""
        self.rows = rows
        self.refresh()

    def refresh(self) -> None:
        """Re-read the focused case (status, calls) in a worker and show it in the Case dock."""
        uid = self.case_uid
        if uid is None or uid in self.blocked:
            self.panel.set_case(None)
            return
        store = self.store
        self.annotations_of(uid)

        def work(state: TaskState) -> tuple:
            return store.get_case(uid), store.radiologist_scores(uid)

        self.runner.submit("case-panel", work, context=Context.of_case(uid), shown=self.session.is_focused,
                           on_result=lambda result: self._show(uid, *result))

    def _show(self, uid: str, case, scores) -> None:  # noqa: ANN001 - Case | None, [RadiologistScore]
        if case is None:
            self.panel.set_case(None)
            return
        previous = self._shown_status.get(uid)
        self._shown_status[uid] = case.status
        if previous == "reported" and case.status == "in progress":
            self.status.emit("The case was edited after sign-off: the sign-off is withdrawn - sign off again when "
                             "the report is final")
        labels, positive = self.labels()
        self.panel.set_labels([x for x in labels if x != "normal"] or labels, positive)
        viewer = self.binding.viewer(self.session.active_slot)
        items = []
        for a in self.annotations_of(uid):
            try:
                text = viewer.annotations.describe(a.uid)
            except Exception:  # noqa: BLE001 - not in this viewport: kind and text only
                text = a.kind + (f": {a.text}" if a.text else "") + f" (frame {a.frame + 1})"
            items.append((a.uid, text))
        self.panel.set_case(case, self.rows.get(uid), scores, items)

    # ------------------------------------------------------------------------------------------------ writes
    def record_call(self, uid: str, label: str, positive: bool, confidence: int, comment: str, reader: str) -> None:
        """Record the reader's call on case ``uid`` (the case the form showed; refused if it is not focused)."""
        if not uid or not label or uid != self.case_uid:
            return
        self.writer.submit(self.store.add_radiologist_score, uid, label, positive, confidence or None, comment,
                           reader, label=f"case:{uid}")
        self.status.emit(f"Recorded: {label} {'positive' if positive else 'negative'}")

    def sign_off(self, uid: str, reader: str) -> None:
        if not uid or uid != self.case_uid:
            return
        # refused (ConflictError -> _conflict) if another workstation changed the case after the reader was shown
        # it, or signed it already
        self.writer.submit(self.store.sign_off, uid, reader, None, self.presence.shown_since, label=f"case:{uid}")
        self.status.emit(f"Case signed off by {reader}")

    def reopen(self) -> None:
        if self.case_uid is not None:
            self.writer.submit(self.store.set_status, self.case_uid, "in progress", label=f"case:{self.case_uid}")

    def _written(self, label: str) -> None:
        if label == f"case:{self.case_uid}":
            self._refresh_timer.start()

    def _conflict(self, _label: str, message: str) -> None:
        """A write refused because another workstation changed the case: say so; show the case as it is now."""
        log.warning("%s", message)
        self.alert.emit(message)
        self.presence.seen()
        self.refresh()

    def _others_reading(self, uid: str, others: list) -> None:
        if uid == self.case_uid:
            msg = f"This case is also open on another workstation: {', '.join(others)}"
            self.status.emit(msg)
            self.alert.emit(msg + ". Changes are kept for both; a sign-off made on a case changed elsewhere since "
                            "you opened it is refused.")

    def _changed_elsewhere(self, uid: str, changes: list) -> None:
        if uid == self.case_uid:
            self.status.emit("Changed on another workstation: " + ", ".join(changes[:4]))
            self.presence.seen()
            self.refresh()

    # ------------------------------------------------------------------------------------------------ annotations
    def annotations_of(self, study_uid: str) -> list:
        """The case's annotations as this session knows them: read from the store once per case, then kept up
        to date from the viewers' edits (so a reload never misses a write still queued for the store)."""
        if study_uid not in self.annotations:
            self.annotations[study_uid] = {a.uid: a for a in self.store.annotations(study_uid)}
        return list(self.annotations[study_uid].values())

    def _study_of(self, viewer: ImageViewer) -> str | None:
        image = self.session.viewports[self.binding.slot(viewer)].image
        return image.study_uid if image is not None else None

    def volume_shown(self, slot: int) -> None:
        """Viewport ``slot`` got its (new) volume: draw its case's annotations."""
        viewer = self.binding.viewer(slot)
        uid = self._study_of(viewer)
        if uid:
            viewer.annotations.set_annotations(self.annotations_of(uid))

    def block(self, study_uid: str, why: str) -> None:
        """Nothing may be written to case ``study_uid`` (its StudyInstanceUID is shared by several patients, so
        the store cannot keep their notes, calls and annotations apart): its docks stay empty and say ``why``."""
        self.blocked[study_uid] = why
        if self.case_uid == study_uid:
            self.notes.set_study(None, why)
            self.panel.set_case(None)

    def _annotation_saved(self, viewer: ImageViewer, annotation) -> None:  # noqa: ANN001 - Annotation
        uid = self._study_of(viewer)
        if uid is None:
            return
        if uid in self.blocked:
            self.status.emit("Annotation NOT saved: " + self.blocked[uid])
            return
        self.annotations_of(uid)
        self.annotations[uid][annotation.uid] = annotation
        for other in self.binding.grid.viewers:  # another viewport on the same study shows the change too
            if other is not viewer and self._study_of(other) == uid:
                other.annotations.apply_external(annotation)
        try:
            measurement = viewer.annotations.measurement(annotation.uid).to_dict()
        except Exception as exc:  # noqa: BLE001 - the geometry is what matters; the report recomputes the numbers
            log.info("no measurement for annotation %s: %s", annotation.uid, exc)
            measurement = {}
        self.writer.submit(self.store.save_annotation, uid, annotation, measurement, label=f"case:{uid}")

    def _annotation_deleted(self, viewer: ImageViewer, ann_uid: str) -> None:
        uid = self._study_of(viewer)
        if uid is None:
            return
        if uid in self.blocked:
            return
        self.annotations.get(uid, {}).pop(ann_uid, None)
        for other in self.binding.grid.viewers:
            if other is not viewer and self._study_of(other) == uid:
                other.annotations.remove_external(ann_uid)
        self.writer.submit(self.store.delete_annotation, ann_uid, label=f"case:{uid}")

    def show_annotation(self, uid: str) -> None:
        """Bring the image of annotation ``uid`` on screen in the viewport that shows its series, and select it."""
        for slot in self.session.visible_slots():
            viewer = self.binding.viewer(slot)
            vol = viewer.volume
            ann = next((a for a in viewer.annotations.annotations() if a.uid == uid), None)
            if vol is None or vol.stack is None or ann is None:
                continue
            for k, ref in enumerate(vol.stack.slices):
                if ref.instance.sop_instance_uid == ann.sop_instance_uid and ref.frame.index == ann.frame:
                    self.session.set_active(slot)
                    viewer.set_slice(k)
                    viewer.annotations.select(uid)
                    return
        self.status.emit("That annotation's series is not on screen: open it from the browser")
