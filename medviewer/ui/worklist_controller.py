"""The worklist in the window: refresh from the store, follow the focused case, re-score when a model changed,
export reports and the worklist, case history. All reads and writes run as jobs (kinds "worklist",
"model-check", "rescore", "export:<study>", "export-csv")."""

from __future__ import annotations

import logging
import os

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from medviewer.jobs import TaskState
from medviewer.session import Session
from medviewer.ui.workers import JobRunner, StoreWriter
from medviewer.ui.worklist import WorklistWidget

log = logging.getLogger(__name__)


class WorklistController(QObject):
    """Signals: ``refreshed()``, ``rows_changed(dict)`` (study uid -> WorklistRow), ``rescored(summary)``,
    ``exported(pdf path)``, ``status(text)``, ``failed(message)``. ``model()`` gives (image model name, positive
    label) for the agreement figures and re-scoring."""

    refreshed = Signal()
    rows_changed = Signal(object)
    rescored = Signal(object)
    exported = Signal(str)
    status = Signal(str)
    failed = Signal(str)

    def __init__(self, session: Session, widget: WorklistWidget, store, writer: StoreWriter, runner: JobRunner,
                 model, auto_rescore, parent: QWidget | None = None):  # noqa: ANN001
        super().__init__(parent)
        self.session, self.widget, self.store, self.writer, self.runner = session, widget, store, writer, runner
        self.model, self.auto_rescore, self.parent_widget = model, auto_rescore, parent
        self.rows: dict[str, object] = {}
        self.closed = False
        self._follow = False
        self._dirty = False
        self._timer = QTimer(self)  # coalesce bursts of writes into one refresh
        self._timer.setSingleShot(True)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.refresh)
        widget.rescore_requested.connect(self.rescore)
        widget.cancel_requested.connect(lambda: self.runner.cancel("rescore"))
        writer.written.connect(lambda _label: self._timer.start())
        session.subscribe(lambda change: self.follow_case() if change.focus_level == "case" else None)

    def refresh(self) -> None:
        """Reload the worklist and the model/radiologist agreement from the store in a worker."""
        if self.closed:
            return
        store, (model, label) = self.store, self.model()

        def work(state: TaskState) -> tuple:
            from medviewer.store.agreement import agreement

            return store.worklist(), agreement(store, model, label)

        self.runner.submit("worklist", work, on_result=self._on_rows,
                           on_failed=lambda msg: self.status.emit("Worklist: " + msg.splitlines()[0]))

    def _on_rows(self, result: tuple) -> None:
        rows, agree = result
        self.rows = {r.case.study_instance_uid: r for r in rows}
        self.widget.set_rows(rows)
        self.widget.set_agreement(agree)
        uid = self.session.case_uid
        if uid is not None and (self._follow or not self.widget.selected_uids()):
            self._follow = not self.widget.select_uid(uid)
        self.rows_changed.emit(self.rows)
        self.refreshed.emit()

    def follow_case(self) -> None:
        """Select the focused case in the worklist (on the next refresh if it is not listed yet); nothing when
        the focused viewport is empty."""
        uid = self.session.case_uid
        if uid is None:
            self.widget.table.clearSelection()
        self._follow = uid is not None and not self.widget.select_uid(uid)

    # ------------------------------------------------------------------------------------------------ re-score
    def check_stale_models(self) -> None:
        """In a worker: find cases scored with other weights than the bundled models now have; show a banner and,
        when enabled, re-score them."""
        store = self.store

        def work(state: TaskState) -> dict:
            from medviewer.store.rescore import stale_models

            return stale_models(store)

        self.runner.submit("model-check", work, on_result=self._on_stale,
                           on_failed=lambda msg: self.status.emit("Model check: " + msg.splitlines()[0]))

    def _on_stale(self, stale: dict) -> None:
        uids = sorted({u for v in stale.values() for u in v})
        if not uids:
            self.widget.set_stale("")
            return
        names = ", ".join(f"{m} ({len(v)})" for m, v in stale.items() if v)
        self.widget.set_stale(f"Model changed: {len(uids)} case(s) scored with older weights: {names}", uids)
        if self.auto_rescore():
            self.rescore(uids, reason="weights changed: " + ", ".join(m for m, v in stale.items() if v))

    def rescore(self, study_uids: list[str] | None = None, reason: str = "on demand") -> None:
        """Re-run the image model and the notes classifier over ``study_uids`` (None: all cases) in the model
        process, one case at a time, with progress and cancel; every result is kept."""
        if self.runner.running("rescore"):
            self.status.emit("A re-score is already running")
            return
        store, url, writer = self.store, self.store.url, self.writer
        model, _label = self.model()
        uids = list(study_uids) if study_uids else [c.study_instance_uid for c in store.cases()]
        if not uids:
            self.status.emit("No cases to re-score")
            return

        def work(state: TaskState) -> dict:
            from medviewer.jobs.process import MODEL_PROCESS
            from medviewer.store.rescore import rescore, rescore_case_in_process

            writer.flush()  # re-score the notes and results saved so far (waits here, not on the GUI thread)
            summaries: list[dict] = []

            def on_case(summary: dict) -> None:
                summaries.append(summary)
                state.item(len(summaries))

            run_id = rescore(store, uids, image_model_name=model, notes=True, reason=reason, state=state,
                             run_case=lambda uid, run: MODEL_PROCESS.call(state, rescore_case_in_process, url, uid,
                                                                          model, True, run),
                             on_case=on_case)
            errors = [e for s in summaries for e in s.get("errors", [])]
            return {"run_id": run_id, "cases": len(summaries),
                    "flipped": sum(bool(s.get("flipped")) for s in summaries),  # the image call
                    "notes_flipped": sum(bool((s.get("notes") or {}).get("flipped")) for s in summaries),
                    "errors": [f"{e.get('path', '')}: {e.get('error', '')}" for e in errors]}

        def stopped(message: str) -> None:
            self.widget.set_busy(False)
            self.refresh()
            self.status.emit(message)

        self.runner.submit("rescore", work, on_progress=lambda d, t, _m: self.widget.set_progress(d, t),
                           on_item=lambda _n: self.refresh(), on_result=self._on_rescored,
                           on_failed=lambda msg: stopped("Re-score failed: " + msg.splitlines()[0]),
                           on_cancelled=lambda: stopped("Re-score cancelled (done cases kept)"))
        self.widget.set_busy(True)
        self.status.emit(f"Re-scoring {len(uids)} case(s) with {model} ({reason})...")

    def _on_rescored(self, summary: dict) -> None:
        self.widget.set_busy(False)
        self.widget.set_stale("")
        msg = (f"Re-scored {summary['cases']} case(s): image call flipped in {summary['flipped']}, note findings "
               f"flipped in {summary['notes_flipped']}")
        if summary["errors"]:
            msg += f"; {len(summary['errors'])} image(s) could not be read ({summary['errors'][0]})"
        self.status.emit(msg)
        self.refresh()
        self.rescored.emit(summary)

    # ------------------------------------------------------------------------------------------------ export
    def export_report(self, study_uid: str | None = None, path: str | None = None, deidentify: bool = False,
                      json_path: str | None = None) -> None:
        """Write the case's PDF report (and JSON) in a worker; asks for the file when ``path`` is None."""
        uid = study_uid or self.session.case_uid
        if uid is None:
            self.status.emit("Export: open a case first")
            return
        if path is None:
            case = self.store.get_case(uid)
            default = os.path.join(os.path.expanduser("~"), f"medviewer-report-{case.id if case else 'case'}.pdf")
            path, _ = QFileDialog.getSaveFileName(self.parent_widget, "Export report" + (" (de-identified)"
                                                                                           if deidentify else ""),
                                                  default, "PDF (*.pdf)")
            if not path:
                return
            json_path = os.path.splitext(path)[0] + ".json"
        store, writer, pdf = self.store, self.writer, path

        def work(state: TaskState) -> object:
            from medviewer.report.export import export_case

            writer.flush()  # the report shows everything saved so far (waits here, not on the GUI thread)
            return export_case(store, uid, pdf=pdf, json_path=json_path, deidentify=deidentify)

        written = pdf + (f" and {json_path}" if json_path else "")

        def done(_result: object) -> None:
            self.status.emit(f"Report written: {written}")
            self.exported.emit(pdf)

        self.runner.submit(f"export:{uid}", work, on_result=done,
                           on_failed=lambda msg: self.failed.emit("Export failed: " + msg))
        self.status.emit("Writing report...")

    def export_csv(self, path: str | None = None, deidentify: bool = False) -> None:
        """Write the worklist as CSV in a worker."""
        if path is None:
            path, _ = QFileDialog.getSaveFileName(self.parent_widget, "Export worklist",
                                                  os.path.expanduser("~/worklist.csv"), "CSV (*.csv)")
            if not path:
                return
        store, out = self.store, path

        def work(state: TaskState) -> object:
            from medviewer.report.export import export_worklist_csv

            return export_worklist_csv(store, out, deidentify=deidentify)

        self.runner.submit("export-csv", work, on_result=lambda _r: self.status.emit(f"Worklist written: {out}"),
                           on_failed=lambda msg: self.failed.emit("Export failed: " + msg))

    def selected_or_open(self, study_uid: str | None = None) -> str | None:
        """``study_uid``, else the focused case, else the worklist's first selected case."""
        selected = self.widget.selected_uids()
        return study_uid or self.session.case_uid or (selected[0] if selected else None)

    def show_history(self, study_uid: str | None = None) -> QWidget | None:
        """The case's AI and notes history per run, calls that flipped highlighted."""
        from medviewer.store.rescore import case_history
        from medviewer.ui.worklist import CaseHistoryDialog

        uid = self.selected_or_open(study_uid)
        if uid is None:
            self.status.emit("History: select a case first")
            return None
        from medviewer.io.display import format_person_name

        case = self.store.get_case(uid)
        title = (f"History: {format_person_name(case.patient_name)} {case.study_description}" if case
                 else "History")
        dialog = CaseHistoryDialog(case_history(self.store, uid, self.model()[0]), title=title,
                                   parent=self.parent_widget)
        dialog.show()
        return dialog
