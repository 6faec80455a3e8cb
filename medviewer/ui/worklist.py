"""The worklist: every case of the store in one sortable, filterable table, with re-scoring controls, the agreement
of the AI with the radiologist, a banner when the model changed, and a case's result history.

The widgets only show what they are given (:class:`medviewer.store.WorklistRow` lists, agreement dicts, history
entries) and emit signals; the main window owns the store and runs re-scoring in a worker
(:func:`medviewer.store.rescore.rescore` with :func:`~medviewer.store.rescore.rescore_case_in_process`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelection,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QBrush, QColor, QFont, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QTableView,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from medviewer.io.display import format_da, format_person_name

#: Column titles, in order.
COLUMNS = ("Patient", "Patient ID", "Study date", "Modality", "Description", "Status", "AI score", "Note findings",
           "Radiologist", "Annotations", "Being read by")
(COL_PATIENT, COL_PATIENT_ID, COL_DATE, COL_MODALITY, COL_DESCRIPTION, COL_STATUS, COL_AI, COL_NOTES,
 COL_RADIOLOGIST, COL_ANNOTATIONS, COL_READERS) = range(len(COLUMNS))
#: Sort key of a cell (numbers for scores and counts, None for empty: always sorted last).
SORT_ROLE = Qt.ItemDataRole.UserRole
#: StudyInstanceUID of a row (any column).
UID_ROLE = Qt.ItemDataRole.UserRole + 1
#: Values of the status filter; "All" shows every case.
STATUS_FILTERS = ("All", "new", "in progress", "reported")

AI_POSITIVE_COLOR = QColor("#e0a448")  # warm amber: the AI calls the finding
OVERRIDE_COLOR = QColor("#d08ad8")  # soft violet: the radiologist's call differs from the AI's
OVERRIDE_ROW_BG = QColor(208, 138, 216, 26)
REPORTED_COLOR = QColor("#8d939b")  # signed-off cases recede
UNCERTAIN_COLOR = QColor("#f0d8a0")  # hedged note findings: the text colour of the notes pane's "?" chips
UNCERTAIN_MARK = "?"  # after an uncertain note finding: "Effusion?"
FLIP_BG = QColor(224, 164, 72, 70)
MINUS = "\u2212"

_STYLE = """
QTableView { background: #1f2226; alternate-background-color: #24272c; gridline-color: #2c3036;
             selection-background-color: #2f4f6f; selection-color: #ffffff; border: 1px solid #33373d; }
QTableView::item { padding: 0px 6px; }
QHeaderView::section { background: #16181b; color: #aeb3ba; padding: 4px 6px; border: none;
                       border-right: 1px solid #2c3036; border-bottom: 1px solid #33373d; }
QLabel#staleBanner { background: #4a3814; color: #f0d49a; border: 1px solid #6b5220; border-radius: 3px;
                     padding: 4px 8px; }
QLabel#agreement { color: #9aa0a8; }
QComboBox { background: #23262b; border: 1px solid #33373d; padding: 2px 6px; }
QPushButton { background: #2a2e34; border: 1px solid #3a3f46; border-radius: 3px; padding: 4px 10px; }
QPushButton:hover { background: #33383f; }
QPushButton:disabled { color: #5d6269; }
"""


# ------------------------------------------------------------------------------------------------ formatting
def format_patient_name(name: str) -> str:
    """DICOM PN -> ``"DOE, John"`` as everywhere (:func:`medviewer.io.display.format_person_name`); "(no name)"
    when there is none."""
    return format_person_name(name, empty="(no name)")


def format_date(da: str) -> str:
    """DICOM DA -> ``YYYY-MM-DD`` as everywhere (:func:`medviewer.io.display.format_da`)."""
    return format_da(da)


def format_score(score: float | None, positive: bool | None) -> str:
    """``"0.87 +"`` / ``"0.12 −"`` (P(positive) to 2 decimals and the thresholded call), ``""`` when unscored."""
    if score is None:
        return ""
    return f"{score:.2f} {'+' if positive else MINUS}"


def format_note_findings(present: Sequence[str], uncertain: Sequence[str] = ()) -> str:
    """The note findings cell: the present findings, then the uncertain (hedged) ones marked "?":
    ``"Consolidation, Effusion?"``; "" when there are none."""
    return ", ".join([*present, *(f"{k}{UNCERTAIN_MARK}" for k in uncertain)])


def note_findings_tooltip(present: Sequence[str], uncertain: Sequence[str] = ()) -> str | None:
    """The note findings cell's tooltip: the present and the uncertain findings on their own lines, None for
    none."""
    lines = []
    if present:
        lines.append("present: " + ", ".join(present))
    if uncertain:
        lines.append("uncertain (hedged in the note, not counted as present): " + ", ".join(uncertain))
    return "\n".join(lines) or None


def _local_time(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else ""


# ------------------------------------------------------------------------------------------------ model
class WorklistModel(QAbstractTableModel):
    """Table model over a list of :class:`medviewer.store.WorklistRow` with the :data:`COLUMNS`.

    Roles: DisplayRole (formatted text; uncertain note findings marked "?"), ToolTipRole, :data:`SORT_ROLE`
    (numbers for the AI score, radiologist confidence and annotation count, ``YYYYMMDDhhmmss`` for the date,
    lower-case text otherwise; None for empty cells), :data:`UID_ROLE` (StudyInstanceUID),
    ForegroundRole/BackgroundRole/FontRole (AI-positive scores amber and bold, radiologist overrides violet on a
    faint violet row, note findings that are all uncertain pale amber and italic, reported cases dimmed).
    """

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._rows: list[Any] = []
        self._cells: list[tuple[str, ...]] = []
        self._search: list[str] = []
        self._index: dict[str, int] = {}

    # ---- data
    def set_rows(self, rows: Sequence[Any]) -> None:
        """Replace the rows (a model reset: views lose their selection; :class:`WorklistWidget` restores it)."""
        self.beginResetModel()
        self._rows = list(rows)
        self._cells = [self._texts(r) for r in self._rows]
        # "uncertain" is searchable too: the filter finds the cases with hedged note findings
        self._search = [" ".join((*cells, str(r.case.accession_number or ""),
                                  "uncertain" if r.note_uncertain else "")).lower()
                        for r, cells in zip(self._rows, self._cells)]
        self._index = {r.case.study_instance_uid: k for k, r in enumerate(self._rows)}
        self.endResetModel()

    def rows(self) -> list[Any]:
        """The rows, in source order."""
        return list(self._rows)

    def row_of(self, study_uid: str) -> int | None:
        """Source row of a StudyInstanceUID, or None."""
        return self._index.get(study_uid)

    def uid(self, row: int) -> str:
        """StudyInstanceUID of source row ``row``."""
        return self._rows[row].case.study_instance_uid

    def search_text(self, row: int) -> str:
        """Lower-case text of every column of ``row`` (and the accession number), for the filter."""
        return self._search[row]

    def status(self, row: int) -> str:
        return self._rows[row].case.status

    @staticmethod
    def is_override(row: Any) -> bool:
        """The radiologist's latest call differs from the AI's current call."""
        return row.radiologist_positive is not None and row.ai_positive is not None \
            and bool(row.radiologist_positive) != bool(row.ai_positive)

    @staticmethod
    def _texts(r: Any) -> tuple[str, ...]:
        c = r.case
        rad = ""
        if r.radiologist_positive is not None:
            rad = f"{r.radiologist_label or 'finding'} {'+' if r.radiologist_positive else MINUS}"
            if r.radiologist_confidence:
                rad += f" ({r.radiologist_confidence}/5)"
        # a damaged store (opened read-only) can hand back NULLs: every cell is text
        return (format_patient_name(c.patient_name), str(c.patient_id or ""), format_date(c.study_date),
                str(c.modalities or "").replace("\\", "/"), str(c.study_description or ""), str(c.status or ""),
                format_score(r.ai_score, r.ai_positive) if r.ai_status != "out_of_scope" else "out of scope",
                format_note_findings(r.note_findings, r.note_uncertain), rad,
                str(r.n_annotations) if r.n_annotations else "", ", ".join(r.being_read_by))

    def _sort_key(self, row: int, col: int) -> Any:
        r = self._rows[row]
        if col == COL_AI:
            return r.ai_score
        if col == COL_DATE:
            date = str(r.case.study_date or "").strip()
            return date + str(r.case.study_time or "").strip() if date else None
        if col == COL_ANNOTATIONS:
            return int(r.n_annotations)
        if col == COL_RADIOLOGIST:
            if r.radiologist_positive is None:
                return None
            return (int(bool(r.radiologist_positive)), int(r.radiologist_confidence or 0),
                    str(r.radiologist_label).lower())
        if col == COL_STATUS:
            from medviewer.store.schema import STATUSES

            return STATUSES.index(r.case.status) if r.case.status in STATUSES else len(STATUSES)
        return self._cells[row][col].lower() or None

    def _tooltip(self, row: int, col: int) -> str | None:
        r = self._rows[row]
        if col == COL_AI:
            if r.ai_status == "out_of_scope":
                return (f"{r.ai_model}: no call, outside the model's intended use ({r.ai_scope_reason})\n"
                        f"weights {r.ai_weights_sha256[:12]}  checked {_local_time(r.ai_at)}")
            if r.ai_score is None:
                return "not scored"
            call = "positive" if r.ai_positive else "negative"
            extra = (f"\noutside the model's intended use ({r.ai_scope_reason}), scored anyway"
                     if r.ai_status == "scored_anyway" else "")
            return (f"{r.ai_model}: max P(positive) over the images = {r.ai_score:.3f} ({call}){extra}\n"
                    f"weights {r.ai_weights_sha256[:12]}  scored {_local_time(r.ai_at)}")
        if col == COL_RADIOLOGIST and r.radiologist_positive is not None:
            tip = f"radiologist: {r.radiologist_label} {'present' if r.radiologist_positive else 'absent'}"
            if r.radiologist_confidence:
                tip += f", confidence {r.radiologist_confidence}/5"
            return tip + ("\noverrides the AI call" if self.is_override(r) else "")
        if col == COL_DATE:
            return f"{format_date(r.case.study_date)} {r.case.study_time}".strip() or None
        if col == COL_STATUS and r.case.reported_by:
            return f"reported by {r.case.reported_by} {_local_time(r.case.reported_at)}"
        if col == COL_NOTES:
            return note_findings_tooltip(r.note_findings, r.note_uncertain)
        if col in (COL_PATIENT, COL_DESCRIPTION):
            return self._cells[row][col] or None
        if col == COL_READERS and self._cells[row][col]:
            return f"open on another workstation now: {self._cells[row][col]}"
        return None

    # ---- Qt interface
    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation,  # noqa: N802
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation == Qt.Orientation.Horizontal:
            if role == Qt.ItemDataRole.DisplayRole:
                return COLUMNS[section]
            if role == Qt.ItemDataRole.ToolTipRole and section == COL_AI:
                return "max P(positive) over the case's images; + above the model's threshold"
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, col = index.row(), index.column()
        r = self._rows[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self._cells[row][col]
        if role == SORT_ROLE:
            return self._sort_key(row, col)
        if role == UID_ROLE:
            return r.case.study_instance_uid
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, col)
        if role == Qt.ItemDataRole.ForegroundRole:
            if col == COL_AI and r.ai_positive:
                return QBrush(AI_POSITIVE_COLOR)
            if col == COL_RADIOLOGIST and self.is_override(r):
                return QBrush(OVERRIDE_COLOR)
            if col == COL_NOTES and r.note_uncertain and not r.note_findings:
                return QBrush(UNCERTAIN_COLOR)  # only hedged findings: the whole cell is uncertain
            if r.case.status == "reported":
                return QBrush(REPORTED_COLOR)
            return None
        if role == Qt.ItemDataRole.BackgroundRole and self.is_override(r):
            return QBrush(OVERRIDE_ROW_BG)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (COL_AI, COL_ANNOTATIONS, COL_DATE):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter) if col != COL_DATE \
                else int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.FontRole and col == COL_AI and r.ai_positive:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.FontRole and col == COL_NOTES and r.note_uncertain and not r.note_findings:
            font = QFont()
            font.setItalic(True)
            return font
        return None


class WorklistProxy(QSortFilterProxyModel):
    """Sorts by :data:`SORT_ROLE` with empty cells (None) last in both orders, and filters by text (every
    whitespace-separated term must occur in some column, case-insensitive) and status."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._terms: list[str] = []
        self._status: str | None = None
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(True)

    def _refilter(self, change) -> None:  # noqa: ANN001 - a callable applying the new criteria
        # Qt >= 6.9: begin/endFilterChange (invalidateFilter is deprecated there); older: invalidateFilter.
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def set_text(self, text: str) -> None:
        """Filter text ("" shows everything)."""
        self._refilter(lambda: setattr(self, "_terms", str(text or "").lower().split()))

    def set_status(self, status: str | None) -> None:
        """Show only cases of ``status`` (None or "All": every case)."""
        self._refilter(lambda: setattr(self, "_status", None if status in (None, "", "All") else status))

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:  # noqa: N802
        model = self.sourceModel()
        if not isinstance(model, WorklistModel):
            return True
        if self._status is not None and model.status(source_row) != self._status:
            return False
        if self._terms:
            text = model.search_text(source_row)
            return all(t in text for t in self._terms)
        return True

    def lessThan(self, left: QModelIndex | QPersistentModelIndex,  # noqa: N802
                 right: QModelIndex | QPersistentModelIndex) -> bool:
        a, b = left.data(SORT_ROLE), right.data(SORT_ROLE)
        if a is None or b is None:
            if a is None and b is None:
                return False
            # None sorts last in both orders: "greatest" ascending, "least" descending.
            return (a is None) == (self.sortOrder() == Qt.SortOrder.DescendingOrder)
        try:
            return a < b
        except TypeError:
            return str(a) < str(b)


# ------------------------------------------------------------------------------------------------ widget
class _Table(QTableView):
    """The table; Enter/Return on a row emits :attr:`enter_pressed`."""

    enter_pressed = Signal()

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.enter_pressed.emit()
            event.accept()
            return
        super().keyPressEvent(event)


class WorklistWidget(QWidget):
    """The worklist: filter, status filter, sortable table, re-score/history/export buttons, progress, the AI's
    agreement with the radiologist and a stale-model banner.

    Signals: ``case_activated(str)`` (double-click or Enter), ``rescore_requested(object)`` (list of selected
    StudyInstanceUIDs, or None for every case), ``history_requested(str)``, ``export_requested(str)``,
    ``send_requested(str)`` (Send to PACS), ``cancel_requested()``.

    :meth:`select_next` / :meth:`select_previous` move through the rows in their visible (sorted, filtered) order
    and stop at the ends (they return None there and keep the selection; no wrap-around, so reading to the end of
    the list never silently starts over).
    """

    case_activated = Signal(str)
    rescore_requested = Signal(object)
    history_requested = Signal(str)
    export_requested = Signal(str)
    send_requested = Signal(str)  # "Send to PACS…" on a case
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("worklist")
        self.setStyleSheet(_STYLE)
        self.model = WorklistModel(self)
        self.proxy = WorklistProxy(self)
        self.proxy.setSourceModel(self.model)

        self.filter_edit = QLineEdit()
        self.filter_edit.setPlaceholderText("Filter: patient, ID, description, findings…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self.proxy.set_text)
        self.status_combo = QComboBox()
        self.status_combo.addItems(STATUS_FILTERS)
        self.status_combo.setToolTip("Show only cases of this status")
        self.status_combo.currentTextChanged.connect(self.proxy.set_status)
        self.agreement_label = QLabel("")
        self.agreement_label.setObjectName("agreement")
        self.agreement_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        top = QHBoxLayout()
        top.addWidget(self.filter_edit, 3)
        top.addWidget(self.status_combo)
        top.addStretch(1)
        top.addWidget(self.agreement_label)

        self.stale_label = QLabel("")
        self.stale_label.setObjectName("staleBanner")
        self.stale_label.setWordWrap(True)
        self.stale_button = QPushButton("Re-score these")
        self.stale_button.clicked.connect(self._rescore_stale)
        self._stale_uids: list[str] | None = None
        banner = QHBoxLayout()
        banner.setContentsMargins(0, 0, 0, 0)
        banner.addWidget(self.stale_label, 1)
        banner.addWidget(self.stale_button)
        self.banner = QFrame()
        self.banner.setLayout(banner)
        self.banner.hide()

        self.table = _Table()
        self.table.setModel(self.proxy)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(COL_DATE, Qt.SortOrder.DescendingOrder)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        header = self.table.horizontalHeader()
        header.setHighlightSections(False)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COL_DESCRIPTION, QHeaderView.ResizeMode.Stretch)
        for col, width in ((COL_PATIENT, 160), (COL_PATIENT_ID, 100), (COL_DATE, 92), (COL_MODALITY, 70),
                           (COL_STATUS, 100), (COL_AI, 74), (COL_NOTES, 190), (COL_RADIOLOGIST, 140),
                           (COL_ANNOTATIONS, 90)):
            header.resizeSection(col, width)
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)
        self.table.doubleClicked.connect(self._activate_index)
        self.table.enter_pressed.connect(lambda: self._activate_index(self.table.currentIndex()))
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)

        self.rescore_selected_button = QPushButton("Re-score selected")
        self.rescore_selected_button.setToolTip("Run the current models again on the selected cases "
                                                "(earlier results are kept)")
        self.rescore_selected_button.clicked.connect(self._rescore_selected)
        self.rescore_all_button = QPushButton("Re-score all")
        self.rescore_all_button.setToolTip("Run the current models again on every case (earlier results are kept)")
        self.rescore_all_button.clicked.connect(lambda: self.rescore_requested.emit(None))
        self.history_button = QPushButton("History…")
        self.history_button.setToolTip("The case's AI results per run, with flipped calls marked")
        self.history_button.clicked.connect(self._history)
        self.export_button = QPushButton("Export…")
        self.export_button.clicked.connect(self._export)
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(170)
        self.progress.setMaximumWidth(240)
        self.progress.setFormat("%v / %m cases")
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.cancel_button.hide()
        self.count_label = QLabel("")
        self.count_label.setObjectName("agreement")
        bottom = QHBoxLayout()
        for w in (self.rescore_selected_button, self.rescore_all_button, self.history_button, self.export_button):
            bottom.addWidget(w)
        bottom.addStretch(1)
        bottom.addWidget(self.count_label)
        bottom.addWidget(self.progress)
        bottom.addWidget(self.cancel_button)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addWidget(self.banner)
        layout.addWidget(self.table, 1)
        layout.addLayout(bottom)
        self._busy = False
        for signal in (self.proxy.rowsInserted, self.proxy.rowsRemoved, self.proxy.modelReset,
                       self.proxy.layoutChanged):
            signal.connect(self._update_count)
        self._update_buttons()

    # ---- rows and selection
    def set_rows(self, rows: Sequence[Any]) -> None:
        """Show ``rows`` (:class:`medviewer.store.WorklistRow`), keeping the selection and current case by
        StudyInstanceUID (cases no longer present drop out of the selection)."""
        selected = self.selected_uids()
        current = self.current_uid()
        self.model.set_rows(rows)
        self._select(selected, current)
        self._update_count()

    def _proxy_row(self, uid: str) -> int | None:
        src = self.model.row_of(uid)
        if src is None:
            return None
        idx = self.proxy.mapFromSource(self.model.index(src, 0))
        return idx.row() if idx.isValid() else None

    def _select(self, uids: Sequence[str], current: str | None = None) -> None:
        sm = self.table.selectionModel()
        selection = QItemSelection()
        last = self.proxy.columnCount() - 1
        for uid in uids:
            row = self._proxy_row(uid)
            if row is not None:
                selection.select(self.proxy.index(row, 0), self.proxy.index(row, last))
        cur = self._proxy_row(current) if current else None
        if cur is not None:
            sm.setCurrentIndex(self.proxy.index(cur, 0), QItemSelectionModel.SelectionFlag.NoUpdate)
        sm.select(selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        self._update_buttons()

    def select_uid(self, uid: str) -> bool:
        """Select (only) the case ``uid`` and scroll to it; False when it is not visible."""
        row = self._proxy_row(uid)
        if row is None:
            return False
        self._select_row(row)
        return True

    def _select_row(self, row: int) -> str:
        idx = self.proxy.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            idx, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(idx)
        return str(idx.data(UID_ROLE))

    def current_uid(self) -> str | None:
        """StudyInstanceUID of the current row (the keyboard focus row), else of the first selected, or None."""
        idx = self.table.currentIndex()
        if idx.isValid() and self.table.selectionModel().isRowSelected(idx.row(), QModelIndex()):
            return str(idx.data(UID_ROLE))
        uids = self.selected_uids()
        return uids[0] if uids else None

    def selected_uids(self) -> list[str]:
        """StudyInstanceUIDs of the selected rows, in visible order."""
        rows = sorted(i.row() for i in self.table.selectionModel().selectedRows())
        return [str(self.proxy.index(r, 0).data(UID_ROLE)) for r in rows]

    def visible_uids(self) -> list[str]:
        """StudyInstanceUIDs of the visible rows, in visible (sorted, filtered) order."""
        return [str(self.proxy.index(r, 0).data(UID_ROLE)) for r in range(self.proxy.rowCount())]

    def _step(self, delta: int) -> str | None:
        n = self.proxy.rowCount()
        if n == 0:
            return None
        idx = self.table.currentIndex()
        if not idx.isValid() or not self.table.selectionModel().isRowSelected(idx.row(), QModelIndex()):
            selected = sorted(i.row() for i in self.table.selectionModel().selectedRows())
            if not selected:
                return self._select_row(0 if delta > 0 else n - 1)
            row = selected[-1] if delta > 0 else selected[0]
        else:
            row = idx.row()
        target = row + delta
        if not 0 <= target < n:
            return None  # stop at the ends
        return self._select_row(target)

    def select_next(self) -> str | None:
        """Select the row after the current one in visible order and return its StudyInstanceUID; with no
        selection the first row. None (selection unchanged) at the last row or when the list is empty."""
        return self._step(1)

    def select_previous(self) -> str | None:
        """Select the row before the current one in visible order and return its StudyInstanceUID; with no
        selection the last row. None (selection unchanged) at the first row or when the list is empty."""
        return self._step(-1)

    # ---- progress, agreement, banner
    def set_progress(self, done: int, total: int) -> None:
        """Re-score progress: ``done`` of ``total`` cases."""
        self.progress.setRange(0, max(int(total), 1))
        self.progress.setValue(min(int(done), max(int(total), 1)))

    def set_busy(self, busy: bool) -> None:
        """While a re-score runs: show the progress bar and the Cancel button, disable re-scoring."""
        self._busy = bool(busy)
        self.progress.setVisible(self._busy)
        self.cancel_button.setVisible(self._busy)
        self.cancel_button.setEnabled(self._busy)
        if busy:
            self.progress.setValue(0)
        self._update_buttons()

    def set_agreement(self, stats: dict | None) -> None:
        """Show :func:`medviewer.store.agreement.agreement`'s result as "vs radiologist (label): n=…, sens …,
        spec …, AUC …" ("n/a" for undefined rates); None or n = 0 clears it."""
        if not stats or not stats.get("n"):
            self.agreement_label.setText("")
            self.agreement_label.setToolTip("")
            return

        def rate(key: str) -> str:
            v = stats.get(key)
            return "n/a" if v is None else f"{v:.2f}"

        label = f" ({stats['label']})" if stats.get("label") else ""
        self.agreement_label.setText(f"vs radiologist{label}: n={stats['n']}, sens {rate('sensitivity')}, "
                                     f"spec {rate('specificity')}, AUC {rate('auc')}")
        self.agreement_label.setToolTip(
            f"{stats.get('model', 'AI')} against the radiologist's latest call on {stats.get('label', '')}\n"
            f"TP {stats.get('tp')}  FP {stats.get('fp')}  TN {stats.get('tn')}  FN {stats.get('fn')}\n"
            f"radiologist overrides: {stats.get('overrides', 0)}\n"
            "AUC: Mann-Whitney U / (n_pos n_neg), ties 1/2 (Hanley & McNeil 1982)")

    def set_stale(self, text: str, uids: Sequence[str] | None = None) -> None:
        """Show the banner ``text`` (e.g. "model changed: 12 cases scored with older weights"); "" hides it.
        With ``uids`` a "Re-score these" button emits ``rescore_requested(uids)``."""
        self.stale_label.setText(text or "")
        self._stale_uids = list(uids) if uids else None
        self.stale_button.setVisible(bool(self._stale_uids))
        self.banner.setVisible(bool(text))
        self._update_buttons()

    # ---- slots
    def _activate_index(self, index: QModelIndex) -> None:
        if index.isValid():
            self.case_activated.emit(str(index.data(UID_ROLE)))

    def _rescore_selected(self) -> None:
        uids = self.selected_uids()
        if uids:
            self.rescore_requested.emit(uids)

    def _rescore_stale(self) -> None:
        if self._stale_uids:
            self.rescore_requested.emit(list(self._stale_uids))

    def _history(self) -> None:
        uid = self.current_uid()
        if uid:
            self.history_requested.emit(uid)

    def _export(self) -> None:
        uid = self.current_uid()
        if uid:
            self.export_requested.emit(uid)

    def _context_menu(self, pos) -> None:  # noqa: ANN001 - QPoint
        idx = self.table.indexAt(pos)
        if not idx.isValid():
            return
        uid = str(idx.data(UID_ROLE))
        if uid not in self.selected_uids():
            self._select_row(idx.row())
        menu = QMenu(self)
        menu.addAction("Open", lambda: self.case_activated.emit(uid))
        rescore = menu.addAction("Re-score selected", self._rescore_selected)
        rescore.setEnabled(not self._busy)
        menu.addAction("History…", lambda: self.history_requested.emit(uid))
        menu.addAction("Export…", lambda: self.export_requested.emit(uid))
        menu.addAction("Send to PACS…", lambda: self.send_requested.emit(uid))
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def _update_buttons(self, *_: Any) -> None:
        has = bool(self.table.selectionModel().hasSelection())
        self.rescore_selected_button.setEnabled(has and not self._busy)
        self.rescore_all_button.setEnabled(not self._busy and self.model.rowCount() > 0)
        self.stale_button.setEnabled(not self._busy)
        self.history_button.setEnabled(has)
        self.export_button.setEnabled(has)

    def _update_count(self, *_: Any) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        noun = "case" if total == 1 else "cases"
        self.count_label.setText(f"{shown} of {total} {noun}" if shown != total else f"{total} {noun}")
        self._update_buttons()


# ------------------------------------------------------------------------------------------------ history
class CaseHistoryDialog(QDialog):
    """A case's results per run (:func:`medviewer.store.rescore.case_history` entries, oldest first) in a table;
    rows where the call flipped against the previous entry are tinted amber and marked "⚑ flipped". For the notes
    model, uncertain findings are marked "?" and a finding moving into or out of "uncertain" is shown in the
    Change column ("Pneumothorax −→?") without counting as a flip."""

    HEADERS = ("Time", "Run", "Model version", "Weights", "Result", "Change")

    def __init__(self, entries: Sequence[dict], title: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(title or "Case history")
        self.setStyleSheet(_STYLE)
        self.entries = list(entries)
        self.flipped_rows = [k for k, e in enumerate(self.entries) if e.get("flipped")]
        n_flips = len(self.flipped_rows)
        model = self.entries[-1].get("model", "") if self.entries else ""
        summary = QLabel(f"{model}: {len(self.entries)} result{'s' if len(self.entries) != 1 else ''}, "
                         f"{n_flips} flipped call{'s' if n_flips != 1 else ''}" if self.entries
                         else "No results for this case yet.")
        self.table = QTableWidget(len(self.entries), len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(self.HEADERS)
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        for row, e in enumerate(self.entries):
            for col, text in enumerate(self._texts(e)):
                item = QTableWidgetItem(text)
                if e.get("flipped"):
                    item.setBackground(QBrush(FLIP_BG))
                    item.setToolTip("the call changed against the previous result")
                elif e.get("uncertain_changed"):
                    item.setToolTip("a note finding became or stopped being uncertain (hedged); not a flip")
                if col == 4 and e.get("kind") == "image" and e.get("positive"):
                    item.setForeground(QBrush(AI_POSITIVE_COLOR))
                self.table.setItem(row, col, item)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.resize(760, 120 + 26 * max(3, min(len(self.entries), 14)))

    @staticmethod
    def _texts(e: dict) -> tuple[str, ...]:
        run = f"#{e['run_id']}" if e.get("run_id") is not None else "interactive"
        sha = str(e.get("weights_sha256") or "")[:12]
        if e.get("kind") == "notes":
            result = format_note_findings(e.get("positives") or [], e.get("uncertain") or []) or "no finding"
            # flips as +X / −X; a finding moving into or out of "uncertain" as "X −→?" (shown, not a flip)
            sym = {"present": "+", "absent": MINUS, "uncertain": UNCERTAIN_MARK}
            hedges = [f"{c['label']} {sym.get(c['before'], '')}→{sym.get(c['after'], '')}"
                      for c in e.get("changes") or [] if "uncertain" in (c.get("before"), c.get("after"))]
            change = " ".join([f"+{k}" for k in e.get("appeared") or []] +
                              [f"{MINUS}{k}" for k in e.get("disappeared") or []] + hedges)
        else:
            result = format_score(e.get("score"), e.get("positive"))
            if e.get("n_images", 1) > 1:
                result += f"  ({e['n_images']} images)"
            delta = e.get("score_change")
            change = f"{delta:+.2f}".replace("-", MINUS) if delta is not None else ""
        if e.get("flipped"):
            if e.get("kind") != "notes":
                prev, now = (MINUS, "+") if e.get("positive") else ("+", MINUS)
                change = f"⚑ flipped {prev} → {now}" + (f"  ({change})" if change else "")
            else:
                change = f"⚑ flipped  {change}"
        return (_local_time(e.get("time")), run, str(e.get("model_version", "")), sha, result, change)
