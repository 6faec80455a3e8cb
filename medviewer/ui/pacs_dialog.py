"""Query/Retrieve from a PACS: pick a saved node, search studies (C-FIND or QIDO-RS), list a study's series, and
retrieve the study or the selected series (C-GET, C-MOVE or WADO-RS) into the PACS cache with per-image progress
and cancel. A finished retrieval is registered as a case (:func:`medviewer.net.service.register_retrieved`) and
``study_retrieved`` asks the main window to open it like any other folder.

Every network call runs on the app's JobRunner (never on the GUI thread). A new search makes the previous one
stale: its results are dropped. Errors are shown in words in the status line; nothing modal opens. Closing the
dialog does not stop a retrieval (Cancel does); reopening it shows its progress.
"""

from __future__ import annotations

import datetime as _dt
import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from medviewer.jobs import TaskState
from medviewer.net.nodes import NetSettings, PacsError, PacsNode, load_settings
from medviewer.net.query import Query
from medviewer.ui.pacs_common import (
    PACS_STYLE,
    SERIES_COLUMNS,
    STUDY_COLUMNS,
    NetFailure,
    RowsModel,
    as_int,
    combo_node,
    fill_node_combo,
    rows_table,
    set_status,
    start_net_job,
    status_label,
)
from medviewer.ui.pacs_retrieve import Retrieved, retrieve_case
from medviewer.ui.workers import Job, JobRunner

log = logging.getLogger(__name__)

MODALITIES = ("", "CT", "MR", "CR", "DX", "MG", "US", "NM", "PT", "XA", "RF", "OT", "SR")
DATE_PRESETS = (("Any date", None), ("Today", 0), ("Yesterday", 1), ("Last 7 days", 7), ("Last 30 days", 30),
                ("Last 365 days", 365))


def date_range(days_back: int | None, today: _dt.date | None = None) -> str:
    """``YYYYMMDD-YYYYMMDD`` from ``days_back`` days ago to today ("" for any date; 1 = yesterday only)."""
    if days_back is None:
        return ""
    today = today or _dt.date.today()
    if days_back == 1:
        d = (today - _dt.timedelta(days=1)).strftime("%Y%m%d")
        return f"{d}-{d}"
    return f"{(today - _dt.timedelta(days=days_back)).strftime('%Y%m%d')}-{today.strftime('%Y%m%d')}"


class QueryRetrieveDialog(QDialog):
    """Search a PACS and retrieve studies. ``study_retrieved(study_uid, folder)``: a retrieval finished and its
    study was registered as a case; the main window opens ``folder``."""

    study_retrieved = Signal(str, str)
    search_finished = Signal(int)  # rows shown (also after an error: 0)
    series_listed = Signal(int)
    retrieval_ended = Signal(str)  # "finished", "cancelled" or "failed"

    def __init__(self, runner: JobRunner, store, parent: QWidget | None = None,  # noqa: ANN001 - CaseStore
                 listener=None):  # noqa: ANN001 - medviewer.ui.pacs_listener.PacsListener
        super().__init__(parent)
        self.setWindowTitle("Query/Retrieve from PACS")
        #: the app's Storage SCP controller: a C-MOVE goes to its listener when it runs; settings changes apply
        self.listener = listener
        self.setStyleSheet(PACS_STYLE)
        self.resize(1040, 720)
        self.runner = runner
        self.store = store
        self.settings = load_settings()
        self.search_job: Job | None = None
        self.series_job: Job | None = None
        self.retrieve_job: Job | None = None
        self.query: Query | None = None  # the query the table shows (or is being made)
        self._series_study = ""
        self._outcome: list[Retrieved] = []

        self.node_combo = QComboBox()
        self.node_combo.setMinimumWidth(220)
        self.node_combo.currentIndexChanged.connect(self._node_changed)
        edit = QPushButton("Edit nodes...")
        edit.clicked.connect(self.edit_nodes)
        top = QHBoxLayout()
        top.addWidget(QLabel("PACS"))
        top.addWidget(self.node_combo, 1)
        top.addWidget(edit)
        top.addStretch(2)

        self.patient_name = QLineEdit()
        self.patient_name.setPlaceholderText("SMITH* (wildcards * and ?)")
        self.patient_id = QLineEdit()
        self.accession = QLineEdit()
        self.study_date = QLineEdit()
        self.study_date.setPlaceholderText("YYYYMMDD-YYYYMMDD")
        self.study_date.setToolTip("A day (YYYYMMDD) or a range (YYYYMMDD-YYYYMMDD; either end may be left open)")
        self.date_preset = QComboBox()
        for text, days in DATE_PRESETS:
            self.date_preset.addItem(text, days)
        self.date_preset.activated.connect(lambda i: self.study_date.setText(date_range(self.date_preset.itemData(i))))
        self.modality = QComboBox()
        self.modality.setEditable(True)
        self.modality.addItems(MODALITIES)
        self.modality.setMinimumContentsLength(4)
        self.description = QLineEdit()
        self.description.setPlaceholderText("e.g. *HEAD*")
        self.search_button = QPushButton("Search")
        self.search_button.setDefault(True)
        self.search_button.clicked.connect(self.search)
        for w in (self.patient_name, self.patient_id, self.accession, self.study_date, self.description):
            w.setClearButtonEnabled(True)  # Enter in a field presses the default button: Search
        box = QGroupBox("Search studies")
        grid = QGridLayout(box)
        grid.addWidget(QLabel("Patient name"), 0, 0)
        grid.addWidget(self.patient_name, 0, 1)
        grid.addWidget(QLabel("Patient ID"), 0, 2)
        grid.addWidget(self.patient_id, 0, 3)
        grid.addWidget(QLabel("Accession"), 0, 4)
        grid.addWidget(self.accession, 0, 5)
        grid.addWidget(QLabel("Study date"), 1, 0)
        dates = QHBoxLayout()
        dates.addWidget(self.study_date, 1)
        dates.addWidget(self.date_preset)
        grid.addLayout(dates, 1, 1)
        grid.addWidget(QLabel("Modality"), 1, 2)
        grid.addWidget(self.modality, 1, 3)
        grid.addWidget(QLabel("Description"), 1, 4)
        grid.addWidget(self.description, 1, 5)
        grid.addWidget(self.search_button, 0, 6, 2, 1)
        grid.setColumnStretch(1, 3)
        grid.setColumnStretch(3, 2)
        grid.setColumnStretch(5, 2)

        self.studies = RowsModel(STUDY_COLUMNS, self)
        self.study_table = rows_table(self.studies)
        self.study_table.selectionModel().selectionChanged.connect(self._study_selected)
        self.series = RowsModel(SERIES_COLUMNS, self)
        self.series_table = rows_table(self.series, multi=True)
        self.series_table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.series_label = QLabel("Series (select a study; select series to retrieve only those)")
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(self.series_label)
        lower_layout.addWidget(self.series_table)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.study_table)
        split.addWidget(lower)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)

        self.move_box = QCheckBox("C-MOVE instead of C-GET")
        self.move_box.setToolTip("The PACS sends the images to our Storage SCP; it must know our AE title, host "
                                 "and port")
        self.retrieve_button = QPushButton("Retrieve")
        self.retrieve_button.clicked.connect(self.retrieve)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setFormat("%v/%m images")
        self.progress.setMinimumWidth(200)
        self.progress.setValue(0)
        self.progress.setRange(0, 1)
        self.progress.setTextVisible(False)
        self.progress.hide()  # shown from the first retrieval on
        close = QPushButton("Close")
        close.clicked.connect(self.hide)
        actions = QHBoxLayout()
        actions.addWidget(self.move_box)
        actions.addStretch(1)
        actions.addWidget(self.progress)
        actions.addWidget(self.retrieve_button)
        actions.addWidget(self.cancel_button)
        actions.addWidget(close)
        self.status = status_label()

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(box)
        layout.addWidget(split, 1)
        layout.addLayout(actions)
        layout.addWidget(self.status)
        fill_node_combo(self.node_combo, self.settings)
        self._update_buttons()
        if not self.settings.nodes:
            set_status(self.status, "No PACS configured yet: Edit nodes... to add one")

    # ------------------------------------------------------------------------------------------------ nodes
    @property
    def node(self) -> PacsNode | None:
        return combo_node(self.node_combo)

    def _node_changed(self, _i: int = 0) -> None:
        """Another PACS: what the tables show came from the previous one, so they are cleared (a retrieval already
        running goes on with its own node)."""
        node = self.node
        self.move_box.setEnabled(node is not None and not node.is_dicomweb)
        if node is not None and node.is_dicomweb:
            self.move_box.setChecked(False)
        for job in (self.search_job, self.series_job):
            if job is not None:
                job.cancel()
        self.search_job = self.series_job = None
        if self.studies.rows or self.series.rows:
            self.studies.set_rows([])
            self.series.set_rows([])
            self._series_study = ""
            set_status(self.status, f"Search {node.name} for studies" if node is not None else "")
        self._update_buttons()

    def edit_nodes(self) -> None:
        """Open the node editor (window-modal, not blocking); the picker follows what it saves."""
        from medviewer.ui.pacs_nodes import NodeEditor

        editor = NodeEditor(self.runner, self)
        editor.saved.connect(self.reload_settings)
        editor.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.node_editor = editor
        editor.open()

    def reload_settings(self, settings: NetSettings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()
        fill_node_combo(self.node_combo, self.settings)
        if self.listener is not None:
            self.listener.apply(self.settings)

    # ------------------------------------------------------------------------------------------------ search
    def current_query(self) -> Query:
        """The study-level query of the search fields (validated; raises PacsError naming the bad field)."""
        date = "".join(self.study_date.text().split())
        return Query(level="STUDY", patient_name=self.patient_name.text().strip(),
                     patient_id=self.patient_id.text().strip(), study_date=date,
                     modality=self.modality.currentText().strip().upper(),
                     accession_number=self.accession.text().strip(),
                     study_description=self.description.text().strip()).validated()

    def search(self) -> None:
        """Start a study-level find with the fields; a search still running is cancelled and its answer dropped."""
        node = self.node
        if node is None:
            set_status(self.status, "Choose a PACS first (Edit nodes... to add one)", error=True)
            return
        try:
            query = self.current_query()
        except PacsError as exc:
            set_status(self.status, str(exc), error=True)
            return
        from medviewer.net import service

        if self.search_job is not None:
            self.search_job.cancel()
        if self.series_job is not None:
            self.series_job.cancel()
        self.query = query
        self.studies.set_rows([])
        self.series.set_rows([])
        self._series_study = ""
        self._outcome = []
        set_status(self.status, f"Searching {node.describe()}...")

        def work(_state: TaskState) -> tuple[Query, list[dict[str, str]]]:
            return query, service.find(node, query)

        self.search_job = start_net_job(self.runner, work, self._on_found, what="find")
        self._update_buttons()

    def _on_found(self, job: Job, result: tuple[Query, list[dict[str, str]]] | NetFailure) -> None:
        if job is not self.search_job:
            return  # a newer search replaced this one
        self.search_job = None
        if isinstance(result, NetFailure):
            set_status(self.status, f"Search failed: {result.message}", error=True)
            self._update_buttons()
            self.search_finished.emit(0)
            return
        query, rows = result
        if query != self.query:
            return
        rows = sorted(rows, key=lambda r: (r.get("StudyDate", ""), r.get("StudyTime", "")), reverse=True)
        self.studies.set_rows(rows)
        n = len(rows)
        set_status(self.status, f"{n} stud{'y' if n == 1 else 'ies'} found" if n else "No study matches")
        if n == 1:
            self.study_table.selectRow(0)
        self._update_buttons()
        self.search_finished.emit(n)

    def selected_study(self) -> dict[str, str] | None:
        rows = self.study_table.selectionModel().selectedRows()
        return self.studies.rows[rows[0].row()] if rows else None

    def selected_series(self) -> list[dict[str, str]]:
        return [self.series.rows[i.row()] for i in sorted(self.series_table.selectionModel().selectedRows())]

    def _study_selected(self, *_: object) -> None:
        """List the selected study's series (series-level find in a worker)."""
        study = self.selected_study()
        self.series.set_rows([])
        if self.series_job is not None:
            self.series_job.cancel()
            self.series_job = None
        self._update_buttons()
        node = self.node
        if study is None or node is None or not study.get("StudyInstanceUID"):
            self._series_study = ""
            return
        from medviewer.net import service

        uid = study["StudyInstanceUID"]
        self._series_study = uid
        query = Query(level="SERIES", study_uid=uid)
        self.series_label.setText("Series: listing...")
        self.series_job = start_net_job(self.runner, lambda _s: (uid, service.find(node, query)), self._on_series,
                                        what="series find")

    def _on_series(self, job: Job, result: tuple[str, list[dict[str, str]]] | NetFailure) -> None:
        if job is not self.series_job:
            return
        self.series_job = None
        if isinstance(result, NetFailure):
            self.series_label.setText("Series: not listed")
            set_status(self.status, f"Listing the series failed: {result.message}", error=True)
            self.series_listed.emit(0)
            return
        uid, rows = result
        if uid != self._series_study:
            return
        rows = sorted(rows, key=lambda r: (as_int(r.get("SeriesNumber", "")) is None,
                                           as_int(r.get("SeriesNumber", "")) or 0))
        self.series.set_rows(rows)
        self.series_label.setText(f"Series ({len(rows)}; select some to retrieve only those)")
        self._update_buttons()
        self.series_listed.emit(len(rows))

    # ------------------------------------------------------------------------------------------------ retrieve
    @property
    def retrieving(self) -> bool:
        return self.retrieve_job is not None

    def retrieve(self) -> None:
        """Retrieve the selected study, or only its selected series, into the PACS cache, in a worker."""
        node, study = self.node, self.selected_study()
        if self.retrieving:
            set_status(self.status, "A retrieval is running: wait for it or cancel it", error=True)
            return
        if node is None or study is None:
            set_status(self.status, "Select a study first", error=True)
            return
        study_uid = study.get("StudyInstanceUID", "")
        chosen = self.selected_series()
        series_uids = [r["SeriesInstanceUID"] for r in chosen if r.get("SeriesInstanceUID")]
        if chosen:
            sizes = [as_int(r.get("NumberOfSeriesRelatedInstances", "")) for r in chosen]
        else:
            sizes = [as_int(study.get("NumberOfStudyRelatedInstances", ""))]
        counts = [n for n in sizes if n is not None]
        hint = sum(counts) if sizes and len(counts) == len(sizes) else None
        move = self.move_box.isChecked() and not node.is_dicomweb
        try:
            dest = self.settings.cache_path()
        except OSError as exc:
            set_status(self.status, f"The PACS cache cannot be created: {exc.strerror or exc}", error=True)
            return
        settings, store = self.settings, self.store
        scp = self.listener.scp if self.listener is not None else None
        outcome: list[Retrieved] = []  # the worker's outcome, read also when the job ends as cancelled

        def work(state: TaskState) -> Retrieved:
            out = retrieve_case(node, study_uid, series_uids, dest, move, settings, store, state, hint, scp)
            outcome.append(out)
            return out

        how = "WADO-RS" if node.is_dicomweb else ("C-MOVE" if move else "C-GET")
        what = f"{len(series_uids)} series" if series_uids else "the study"
        self.progress.setRange(0, hint or 0)
        self.progress.setValue(0)
        self.progress.setTextVisible(bool(hint))
        self.progress.show()
        set_status(self.status, f"Retrieving {what} from {node.name} ({how})...")
        self._outcome = outcome
        self.retrieve_job = start_net_job(self.runner, work, self._on_retrieved, what="retrieve",
                                          on_progress=self._on_progress, on_cancelled=self._on_retrieve_cancelled)
        self._update_buttons()

    def _on_progress(self, job: Job, done: int, total: int, _message: str) -> None:
        if job is not self.retrieve_job:
            return
        if total > 0:
            self.progress.setRange(0, total)
            self.progress.setTextVisible(True)
        self.progress.setValue(min(done, total) if total > 0 else 0)

    def _on_retrieved(self, job: Job, result: Retrieved | NetFailure) -> None:
        if job is not self.retrieve_job:
            return
        self.retrieve_job = None
        self._update_buttons()
        if isinstance(result, NetFailure):
            set_status(self.status, f"Retrieval failed: {result.message}", error=True)
            self.progress.setTextVisible(self.progress.maximum() > 0)
            self.retrieval_ended.emit("failed")
            return
        out = result
        done = out.received + out.already
        total = max(out.total, done)
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setTextVisible(True)
        text = f"Retrieved {out.received} image{'s' if out.received != 1 else ''}"
        if out.already:
            text += f", {out.already} already here"
        if out.failed:
            text += f", {out.failed} failed"
        notes = out.messages[:2] + out.notes[:2]
        if not out.openable:
            notes.append("no image to open in what was retrieved")
        set_status(self.status, text + (": " + "; ".join(notes) if notes else ". Opening it in the viewer..."),
                   error=bool(out.failed or not out.case_ids))
        self.retrieval_ended.emit("finished")
        if out.openable:
            self.study_retrieved.emit(out.study_uid, str(out.folder))

    def _on_retrieve_cancelled(self, job: Job) -> None:
        if job is not self.retrieve_job:
            return
        self.retrieve_job = None
        self._update_buttons()
        out = self._outcome[-1] if self._outcome else None
        done = (out.received + out.already) if out is not None else self.progress.value()
        if out is not None and out.total:
            self.progress.setRange(0, out.total)
        self.progress.setValue(done)
        set_status(self.status, f"Retrieval cancelled after {done} image{'s' if done != 1 else ''}; what arrived is "
                                "kept: Retrieve again to resume")
        self.retrieval_ended.emit("cancelled")

    def cancel(self) -> None:
        """Stop the retrieval (or the search) in progress; the worker stops at its next image."""
        if self.retrieve_job is not None:
            self.retrieve_job.cancel()
            set_status(self.status, "Cancelling...")
        elif self.search_job is not None:
            self.search_job.cancel()
            self.search_job = None
            set_status(self.status, "Search cancelled")
            self._update_buttons()

    # ------------------------------------------------------------------------------------------------ state
    def _update_buttons(self, *_: object) -> None:
        study = self.selected_study()
        n_series = len(self.series_table.selectionModel().selectedRows())
        self.retrieve_button.setEnabled(study is not None and self.node is not None and not self.retrieving)
        self.retrieve_button.setText(f"Retrieve {n_series} series" if n_series else "Retrieve study")
        self.cancel_button.setEnabled(self.retrieving or self.search_job is not None)
        self.search_button.setEnabled(self.node is not None)


__all__ = ["QueryRetrieveDialog", "date_range"]
