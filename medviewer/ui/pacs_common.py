"""Shared pieces of the PACS dialogs: network calls as jobs on the app's :class:`~medviewer.ui.workers.JobRunner`,
a read-only table model of query rows, the node picker and the dark style.

Every PACS call (echo, find, retrieve, send) runs in a worker through :func:`start_net_job`: a
:class:`~medviewer.net.nodes.PacsError` raised there comes back as a :class:`NetFailure` whose ``message`` is
``str(PacsError)`` (the words the user sees in the dialog's status label); it is also logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QHeaderView, QLabel, QTableView, QWidget

from medviewer.jobs import TaskState
from medviewer.net.nodes import NetSettings, PacsError, PacsNode
from medviewer.ui.workers import Job, JobRunner
from medviewer.ui.worklist import format_date, format_patient_name

log = logging.getLogger(__name__)

#: The reading-room palette of the worklist, for the PACS dialogs' tables, fields and buttons.
PACS_STYLE = """
QTableView { background: #1f2226; alternate-background-color: #24272c; gridline-color: #2c3036;
             selection-background-color: #2f4f6f; selection-color: #ffffff; border: 1px solid #33373d; }
QTableView::item { padding: 0px 6px; }
QHeaderView::section { background: #16181b; color: #aeb3ba; padding: 4px 6px; border: none;
                       border-right: 1px solid #2c3036; border-bottom: 1px solid #33373d; }
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox, QListWidget { background: #23262b; border: 1px solid #33373d;
                                                             padding: 2px 4px; }
QLineEdit:disabled, QSpinBox:disabled, QComboBox:disabled { color: #5d6269; background: #1b1d21;
                                                            border: 1px solid #2a2d32; }
QGroupBox { border: 1px solid #33373d; border-radius: 3px; margin-top: 10px; padding-top: 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #aeb3ba; }
QPushButton { background: #2a2e34; border: 1px solid #3a3f46; border-radius: 3px; padding: 4px 10px; }
QPushButton:hover { background: #33383f; }
QPushButton:default { border: 1px solid #3d6f99; }
QPushButton:disabled { color: #5d6269; }
QCheckBox:disabled { color: #5d6269; }
QCheckBox::indicator { width: 13px; height: 13px; border: 1px solid #7a808a; border-radius: 2px;
                       background: #23262b; }
QCheckBox::indicator:checked { background: #4f8fc4; border: 1px solid #9cc4e4; }
QCheckBox::indicator:disabled { border: 1px solid #3a3f46; background: #1b1d21; }
QLabel#pacsStatus { color: #c8ccd2; }
QLabel#pacsStatus[error="true"] { color: #f0a0a0; }
"""


@dataclass(frozen=True)
class NetFailure:
    """A PACS operation that failed in a worker: ``message`` is ``str(PacsError)`` (or the first line of an
    unexpected error), ``cause`` the PacsError's tag."""

    message: str
    cause: str = "failed"


def start_net_job(runner: JobRunner, fn: Callable[[TaskState], Any], on_done: Callable[[Job, Any], None], *,
                  what: str, on_progress: Callable[[Job, int, int, str], None] | None = None,
                  on_cancelled: Callable[[Job], None] | None = None, kind: str | None = None) -> Job:
    """Run ``fn(state)`` (a network call) on ``runner``; ``on_done(job, result)`` gets its result, or a
    :class:`NetFailure` when it raised, on the GUI thread. ``on_cancelled(job)`` runs when the job was cancelled
    (the TaskState's cancel, whose ``cancel_event`` the network call watches). ``what`` names the operation in
    the log and, by default, the job's kind ("pacs-<what>": a new one cancels the running one of that kind;
    ``kind`` overrides it)."""

    def work(state: TaskState) -> Any:
        try:
            return fn(state)
        except PacsError as exc:
            log.warning("PACS %s failed (%s): %s", what, exc.cause, exc)
            return NetFailure(str(exc), exc.cause)

    def failed(message: str) -> None:
        log.error("PACS %s failed: %s", what, message)
        on_done(job, NetFailure(message.splitlines()[0] if message else "failed", "failed"))

    job = runner.submit(kind or f"pacs-{what}", work, on_result=lambda result: on_done(job, result),
                        on_failed=failed,
                        on_progress=(lambda d, t, m: on_progress(job, d, t, m)) if on_progress is not None else None,
                        on_cancelled=(lambda: on_cancelled(job)) if on_cancelled is not None else None)
    return job


def set_status(label: QLabel, text: str, error: bool = False) -> None:
    """Show ``text`` in a dialog's status label (an error in a warmer colour: nothing modal)."""
    label.setText(text)
    label.setProperty("error", "true" if error else "false")
    label.style().unpolish(label)
    label.style().polish(label)


def status_label() -> QLabel:
    """A word-wrapped, selectable status line (copying an error message must be possible)."""
    label = QLabel("")
    label.setObjectName("pacsStatus")
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def fill_node_combo(combo: QComboBox, settings: NetSettings, keep: str = "") -> None:
    """List the saved nodes in ``combo`` (the node is the item data), selecting ``keep`` when it still exists."""
    keep = keep or combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    for node in settings.nodes:
        where = node.url if node.is_dicomweb else f"{node.ae_title}@{node.host}:{node.port}"
        combo.addItem(node.name, node)
        combo.setItemData(combo.count() - 1, where, Qt.ItemDataRole.ToolTipRole)
    if not settings.nodes:
        combo.addItem("(no PACS configured: Edit nodes...)", None)
    i = combo.findText(keep)
    combo.setCurrentIndex(max(i, 0))
    combo.blockSignals(False)
    combo.currentIndexChanged.emit(combo.currentIndex())


def combo_node(combo: QComboBox) -> PacsNode | None:
    """The node selected in a combo filled by :func:`fill_node_combo` (None when there is none)."""
    node = combo.currentData()
    return node if isinstance(node, PacsNode) else None


def as_int(text: str) -> int | None:
    """An instance count from a query row ("28"), None when absent or not a number."""
    try:
        return int(str(text).strip())
    except ValueError:
        log.debug("instance count %r is not a number: shown as unknown", text)
        return None


# ------------------------------------------------------------------------------------------------ table model
@dataclass(frozen=True)
class Column:
    """A column of :class:`RowsModel`: title, DICOM keyword of the row value, how to show it."""

    title: str
    key: str
    show: Callable[[str], str] = str
    numeric: bool = False


STUDY_COLUMNS = (
    Column("Patient", "PatientName", format_patient_name),
    Column("Patient ID", "PatientID"),
    Column("Study date", "StudyDate", format_date),
    Column("Modality", "ModalitiesInStudy", lambda v: v.replace("\\", ", ")),
    Column("Description", "StudyDescription"),
    Column("Accession", "AccessionNumber"),
    Column("Series", "NumberOfStudyRelatedSeries", numeric=True),
    Column("Images", "NumberOfStudyRelatedInstances", numeric=True),
)
SERIES_COLUMNS = (
    Column("#", "SeriesNumber", numeric=True),
    Column("Modality", "Modality"),
    Column("Description", "SeriesDescription"),
    Column("Body part", "BodyPartExamined"),
    Column("Images", "NumberOfSeriesRelatedInstances", numeric=True),
)


class RowsModel(QAbstractTableModel):
    """Query result rows (keyword -> str dicts from :func:`medviewer.net.service.find`), read-only; the row dict
    itself is ``Qt.UserRole`` of every cell."""

    def __init__(self, columns: Sequence[Column], parent: QWidget | None = None):
        super().__init__(parent)
        self.columns = tuple(columns)
        self.rows: list[dict[str, str]] = []

    def set_rows(self, rows: Sequence[dict[str, str]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self.columns)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section].title
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = self.rows[index.row()], self.columns[index.column()]
        if role == Qt.ItemDataRole.DisplayRole:
            return col.show(row.get(col.key, ""))
        if role == Qt.ItemDataRole.ToolTipRole:
            return row.get(col.key, "") or None
        if role == Qt.ItemDataRole.TextAlignmentRole and col.numeric:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.UserRole:
            return row
        return None


def rows_table(model: RowsModel, stretch: str = "Description", multi: bool = False) -> QTableView:
    """A table view of ``model``: whole rows selected, no editing, the ``stretch`` column takes the spare width,
    the others fit their contents."""
    view = QTableView()
    view.setModel(model)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection if multi
                          else QAbstractItemView.SelectionMode.SingleSelection)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    view.setAlternatingRowColors(True)
    view.setShowGrid(False)
    view.setWordWrap(False)
    view.verticalHeader().hide()
    view.verticalHeader().setDefaultSectionSize(24)
    header = view.horizontalHeader()
    header.setHighlightSections(False)
    header.setStretchLastSection(False)
    for i, col in enumerate(model.columns):
        mode = QHeaderView.ResizeMode.Stretch if col.title == stretch else QHeaderView.ResizeMode.ResizeToContents
        header.setSectionResizeMode(i, mode)
    return view


__all__ = ["NetFailure", "start_net_job", "set_status", "status_label", "fill_node_combo", "combo_node", "as_int",
           "Column", "RowsModel", "rows_table", "STUDY_COLUMNS", "SERIES_COLUMNS", "PACS_STYLE"]
