"""The worklist widget (medviewer.ui.worklist): sorting, filtering, keyboard navigation, selection across
refreshes, signals, the history dialog's flip marks, and an offscreen rendering (/tmp/worklist.png)."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from medviewer.store import Case, WorklistRow
from medviewer.ui.worklist import (
    COL_AI,
    COL_DATE,
    COL_PATIENT,
    COL_RADIOLOGIST,
    FLIP_BG,
    SORT_ROLE,
    UID_ROLE,
    CaseHistoryDialog,
    WorklistWidget,
)


def _row(k: int, name: str, date: str, status: str = "new", score: float | None = None, rad: bool | None = None,
         conf: int | None = None, notes: tuple = (), desc: str = "CHEST PA", modality: str = "CR",
         n_ann: int = 0) -> WorklistRow:
    case = Case(id=k, study_instance_uid=f"1.2.{k}", patient_name=name, patient_id=f"MRN{1000 + k}",
                study_date=date, study_time="101500", study_description=desc, modalities=modality, status=status)
    return WorklistRow(case, ai_model="pneumonia-cnn" if score is not None else "", ai_score=score,
                       ai_positive=None if score is None else score >= 0.31, ai_weights_sha256="91887f98f9b1" * 5,
                       ai_at=1.7e9 if score is not None else None, note_findings=list(notes),
                       radiologist_label="pneumonia" if rad is not None else "", radiologist_positive=rad,
                       radiologist_confidence=conf, n_annotations=n_ann)


ROWS = [
    _row(1, "DOE^JANE", "20240305", "in progress", 0.87, True, 4, ("Consolidation", "Pneumonia"), n_ann=2),
    _row(2, "ROE^RICHARD^A", "20240301", "new", 0.12, None, notes=("normal",)),
    _row(3, "SMITH^ANNA", "20240310", "reported", 0.45, False, 5, ("Effusion",), desc="CHEST AP PORTABLE"),
    _row(4, "NGUYEN^BAO", "20240220", "new", None, desc="HEAD CT", modality="CT\\SR"),
    _row(5, "GARCIA^LUIS", "", "in progress", 0.29, True, 3, ("Cardiomegaly",), n_ann=1),
]


def _visible_column(w: WorklistWidget, col: int, role=Qt.ItemDataRole.DisplayRole) -> list:  # noqa: ANN001
    return [w.proxy.index(r, col).data(role) for r in range(w.proxy.rowCount())]


def _widget(qtbot) -> WorklistWidget:  # noqa: ANN001
    w = WorklistWidget()
    qtbot.addWidget(w)
    w.set_rows(ROWS)
    return w


def test_model_texts_and_default_date_order(qtbot):
    w = _widget(qtbot)
    # Default: study date, newest first; the case without a date last.
    assert _visible_column(w, COL_DATE) == ["2024-03-10", "2024-03-05", "2024-03-01", "2024-02-20", ""]
    first = w.proxy.index(1, 0)
    assert first.data() == "DOE, JANE"
    texts = [w.proxy.index(1, c).data() for c in range(w.proxy.columnCount())]
    assert texts == ["DOE, JANE", "MRN1001", "2024-03-05", "CR", "CHEST PA", "in progress", "0.87 +",
                     "Consolidation, Pneumonia", "pneumonia + (4/5)", "2", ""]
    assert "pneumonia-cnn" in w.proxy.index(1, COL_AI).data(Qt.ItemDataRole.ToolTipRole)
    assert w.proxy.index(3, 3).data() == "CT/SR"
    # AI positive is coloured; a radiologist override (SMITH: AI +, radiologist -) is coloured too.
    assert w.proxy.index(1, COL_AI).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert w.proxy.index(2, COL_AI).data(Qt.ItemDataRole.ForegroundRole) is None  # 0.12: negative, not new-coloured
    smith = w.proxy.index(0, COL_RADIOLOGIST)
    assert smith.data() == "pneumonia \u2212 (5/5)"
    assert smith.data(Qt.ItemDataRole.ForegroundRole) is not None
    assert "overrides" in smith.data(Qt.ItemDataRole.ToolTipRole)


def test_sort_by_ai_score_numeric_empty_last_and_by_date(qtbot):
    w = _widget(qtbot)
    w.table.sortByColumn(COL_AI, Qt.SortOrder.AscendingOrder)
    assert _visible_column(w, COL_AI, SORT_ROLE) == [0.12, 0.29, 0.45, 0.87, None]
    w.table.sortByColumn(COL_AI, Qt.SortOrder.DescendingOrder)
    assert _visible_column(w, COL_AI, SORT_ROLE) == [0.87, 0.45, 0.29, 0.12, None]
    w.table.sortByColumn(COL_DATE, Qt.SortOrder.AscendingOrder)
    assert _visible_column(w, COL_DATE) == ["2024-02-20", "2024-03-01", "2024-03-05", "2024-03-10", ""]
    # Clicking a header sorts too.
    header = w.table.horizontalHeader()
    w.show()
    qtbot.waitExposed(w)
    x = header.sectionViewportPosition(COL_PATIENT) + 10
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(x, 5))
    names = _visible_column(w, COL_PATIENT)
    assert names in (sorted(names), sorted(names, reverse=True)) and header.sortIndicatorSection() == COL_PATIENT


def test_filter_text_and_status(qtbot):
    w = _widget(qtbot)
    w.filter_edit.setText("effusion")
    assert [u for u in w.visible_uids()] == ["1.2.3"]
    w.filter_edit.setText("chest pa")
    assert sorted(w.visible_uids()) == ["1.2.1", "1.2.2", "1.2.5"]
    w.filter_edit.setText("portable CHEST")  # several terms: each must occur somewhere in the row, any order
    assert w.visible_uids() == ["1.2.3"]
    w.filter_edit.setText("mrn1004")
    assert w.visible_uids() == ["1.2.4"]
    w.filter_edit.setText("")
    w.status_combo.setCurrentText("in progress")
    assert sorted(w.visible_uids()) == ["1.2.1", "1.2.5"]
    w.filter_edit.setText("garcia")
    assert w.visible_uids() == ["1.2.5"]
    w.status_combo.setCurrentText("All")
    w.filter_edit.clear()
    assert len(w.visible_uids()) == 5
    assert w.count_label.text() == "5 cases"


def test_next_previous_stop_at_the_ends_and_follow_visible_order(qtbot):
    w = _widget(qtbot)
    order = w.visible_uids()
    assert w.select_previous() == order[-1]  # no selection: previous starts from the end
    w.table.clearSelection()
    w.table.setCurrentIndex(w.proxy.index(-1, -1))
    assert w.select_next() == order[0]  # no selection: next starts at the top
    assert [w.select_next() for _ in range(4)] == order[1:]
    assert w.select_next() is None  # stops at the last row (no wrap-around)
    assert w.selected_uids() == [order[-1]]
    assert w.select_previous() == order[-2]
    w.table.sortByColumn(COL_AI, Qt.SortOrder.DescendingOrder)  # follows the new visible order
    w.select_uid("1.2.1")
    assert w.select_next() == "1.2.3"
    for _ in range(10):
        w.select_previous()
    assert w.selected_uids() == ["1.2.1"] and w.select_previous() is None


def test_selection_kept_across_set_rows(qtbot):
    w = _widget(qtbot)
    w.select_uid("1.2.3")
    sm = w.table.selectionModel()
    sm.select(w.proxy.index(w.visible_uids().index("1.2.5"), 0),
              sm.SelectionFlag.Select | sm.SelectionFlag.Rows)
    assert sorted(w.selected_uids()) == ["1.2.3", "1.2.5"]
    refreshed = [_row(6, "NEW^CASE", "20240401")] + [r for r in ROWS if r.case.study_instance_uid != "1.2.5"]
    refreshed[3] = _row(3, "SMITH^ANNA", "20240310", "reported", 0.91, False, 5)  # a re-scored row
    w.set_rows(refreshed)
    assert w.selected_uids() == ["1.2.3"]  # kept by UID; the removed case dropped out
    assert w.current_uid() == "1.2.3"
    assert w.proxy.index(w.visible_uids().index("1.2.3"), COL_AI).data() == "0.91 +"


def test_signals(qtbot):
    w = _widget(qtbot)
    w.show()
    qtbot.waitExposed(w)
    row = w.visible_uids().index("1.2.2")
    rect = w.table.visualRect(w.proxy.index(row, 1))
    qtbot.mouseClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    with qtbot.waitSignal(w.case_activated, timeout=2000) as sig:
        qtbot.mouseDClick(w.table.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert sig.args == ["1.2.2"]
    w.select_uid("1.2.4")
    w.table.setFocus()
    with qtbot.waitSignal(w.case_activated, timeout=2000) as sig:
        qtbot.keyClick(w.table, Qt.Key.Key_Return)
    assert sig.args == ["1.2.4"]
    with qtbot.waitSignal(w.rescore_requested, timeout=2000) as sig:
        w.rescore_selected_button.click()
    assert sig.args == [["1.2.4"]]
    with qtbot.waitSignal(w.rescore_requested, timeout=2000) as sig:
        w.rescore_all_button.click()
    assert sig.args == [None]
    with qtbot.waitSignal(w.history_requested, timeout=2000) as sig:
        w.history_button.click()
    assert sig.args == ["1.2.4"]
    with qtbot.waitSignal(w.export_requested, timeout=2000) as sig:
        w.export_button.click()
    assert sig.args == ["1.2.4"]
    # Busy: progress + Cancel shown, re-scoring disabled.
    w.set_busy(True)
    w.set_progress(3, 8)
    assert w.cancel_button.isVisible() and w.progress.isVisible() and w.progress.value() == 3
    assert not w.rescore_all_button.isEnabled() and not w.rescore_selected_button.isEnabled()
    with qtbot.waitSignal(w.cancel_requested, timeout=2000):
        w.cancel_button.click()
    w.set_busy(False)
    assert not w.cancel_button.isVisible() and w.rescore_all_button.isEnabled()
    # Banner with the stale cases.
    w.set_stale("Model changed: 2 cases scored with older weights of pneumonia-cnn", ["1.2.1", "1.2.3"])
    assert w.banner.isVisible()
    with qtbot.waitSignal(w.rescore_requested, timeout=2000) as sig:
        w.stale_button.click()
    assert sig.args == [["1.2.1", "1.2.3"]]
    w.set_stale("")
    assert not w.banner.isVisible()


def test_agreement_label(qtbot):
    w = WorklistWidget()
    qtbot.addWidget(w)
    w.set_agreement({"model": "pneumonia-cnn", "label": "pneumonia", "n": 40, "sensitivity": 0.8125,
                     "specificity": 0.75, "auc": 0.8431, "tp": 13, "fp": 6, "tn": 18, "fn": 3, "overrides": 9})
    assert w.agreement_label.text() == "vs radiologist (pneumonia): n=40, sens 0.81, spec 0.75, AUC 0.84"
    w.set_agreement({"n": 3, "sensitivity": 1.0, "specificity": None, "auc": None})
    assert w.agreement_label.text() == "vs radiologist: n=3, sens 1.00, spec n/a, AUC n/a"
    w.set_agreement(None)
    assert w.agreement_label.text() == ""


HISTORY = [
    {"kind": "image", "model": "pneumonia-cnn", "model_version": "1.0.0", "weights_sha256": "91887f98f9b1" * 5,
     "run_id": None, "time": 1.70e9, "score": 0.42, "positive": True, "threshold": 0.31, "n_images": 1,
     "score_change": None, "flipped": False},
    {"kind": "image", "model": "pneumonia-cnn", "model_version": "1.0.0", "weights_sha256": "91887f98f9b1" * 5,
     "run_id": 1, "time": 1.71e9, "score": 0.44, "positive": True, "threshold": 0.31, "n_images": 1,
     "score_change": 0.02, "flipped": False},
    {"kind": "image", "model": "pneumonia-cnn", "model_version": "1.1.0", "weights_sha256": "3fa0c2d1e9b7" * 5,
     "run_id": 2, "time": 1.72e9, "score": 0.21, "positive": False, "threshold": 0.31, "n_images": 2,
     "score_change": -0.23, "flipped": True},
]


def test_uncertain_note_findings_are_marked_found_and_coloured(qtbot):
    """Uncertain (hedged) note findings follow the present ones with a "?", the tooltip names them apart, a cell of
    only uncertain findings is coloured and italic, and the filter finds them (by label and by "uncertain")."""
    from PySide6.QtGui import QFont

    from medviewer.ui.worklist import COL_NOTES, UNCERTAIN_COLOR

    mixed = _row(6, "KIM^MIN", "20240311", "new", 0.5, notes=("Effusion",))
    mixed.note_uncertain = ["Pneumothorax"]
    hedged_only = _row(7, "LEE^ANA", "20240312", "new", 0.5)
    hedged_only.note_uncertain = ["Pneumonia", "Mass"]
    w = WorklistWidget()
    qtbot.addWidget(w)
    w.set_rows([*ROWS, mixed, hedged_only])
    model = w.model
    cell_mixed = model.index(model.row_of("1.2.6"), COL_NOTES)
    cell_hedged = model.index(model.row_of("1.2.7"), COL_NOTES)
    cell_present = model.index(model.row_of("1.2.3"), COL_NOTES)
    assert cell_mixed.data() == "Effusion, Pneumothorax?"
    assert cell_hedged.data() == "Pneumonia?, Mass?"
    assert cell_present.data() == "Effusion"  # present only: unchanged
    tip = cell_mixed.data(Qt.ItemDataRole.ToolTipRole)
    assert tip.splitlines()[0] == "present: Effusion" and tip.splitlines()[1].startswith("uncertain")
    assert tip.splitlines()[1].endswith(": Pneumothorax")
    assert cell_hedged.data(Qt.ItemDataRole.ForegroundRole).color() == UNCERTAIN_COLOR
    font = cell_hedged.data(Qt.ItemDataRole.FontRole)
    assert isinstance(font, QFont) and font.italic()
    assert cell_mixed.data(Qt.ItemDataRole.ForegroundRole) is None  # mixed: the "?" marks tell them apart
    assert cell_present.data(Qt.ItemDataRole.FontRole) is None
    w.filter_edit.setText("pneumothorax")
    assert w.visible_uids() == ["1.2.6"]
    w.filter_edit.setText("uncertain")
    assert sorted(w.visible_uids()) == ["1.2.6", "1.2.7"]
    w.filter_edit.setText("effusion")
    assert sorted(w.visible_uids()) == ["1.2.3", "1.2.6"]


def test_case_dock_lists_uncertain_note_findings_apart(qtbot):
    from medviewer.ui.case_panel import CasePanel

    panel = CasePanel()
    qtbot.addWidget(panel)
    row = _row(6, "KIM^MIN", "20240311", "new", 0.5, notes=("Effusion", "Pleural_Thickening"))
    row.note_uncertain = ["Pneumothorax"]
    panel.set_case(row.case, row)
    lines = panel.ai_line.text().splitlines()
    assert "Note findings: Effusion, Pleural Thickening" in lines
    assert "Uncertain: Pneumothorax" in lines
    assert not any("Pneumothorax" in line for line in lines if line.startswith("Note findings"))
    hedged = _row(7, "LEE^ANA", "20240312", "new", 0.5)
    hedged.note_uncertain = ["Pneumonia"]
    panel.set_case(hedged.case, hedged)
    lines = panel.ai_line.text().splitlines()
    assert "Note findings: none present" in lines and "Uncertain: Pneumonia" in lines
    plain = _row(3, "SMITH^ANNA", "20240310", "new", 0.45, notes=("Effusion",))
    panel.set_case(plain.case, plain)
    assert not any(line.startswith("Uncertain") for line in panel.ai_line.text().splitlines())


def test_history_dialog_highlights_flips(qtbot):
    dlg = CaseHistoryDialog(HISTORY, "History of DOE, JANE")
    qtbot.addWidget(dlg)
    assert dlg.table.rowCount() == 3 and dlg.flipped_rows == [2]
    change = dlg.table.item(2, 5).text()
    assert "flipped" in change and "+ \u2192 \u2212" in change
    assert dlg.table.item(2, 0).background().color() == FLIP_BG
    assert dlg.table.item(1, 0).background().style() == Qt.BrushStyle.NoBrush
    assert "flipped" not in dlg.table.item(1, 5).text()
    assert dlg.table.item(0, 1).text() == "interactive" and dlg.table.item(2, 1).text() == "#2"
    assert dlg.table.item(2, 4).text().startswith("0.21 \u2212")
    notes = CaseHistoryDialog([
        {"kind": "notes", "model": "notes-minilm", "model_version": "1.0.0", "weights_sha256": "", "run_id": None,
         "time": 1.7e9, "positives": ["Effusion"], "appeared": [], "disappeared": [], "flipped": False},
        {"kind": "notes", "model": "notes-minilm", "model_version": "1.0.0", "weights_sha256": "874f564d00ad",
         "run_id": 3, "time": 1.71e9, "positives": ["Cardiomegaly", "Effusion"], "appeared": ["Cardiomegaly"],
         "disappeared": [], "flipped": True}])
    qtbot.addWidget(notes)
    assert notes.flipped_rows == [1] and "+Cardiomegaly" in notes.table.item(1, 5).text()
    assert UID_ROLE != SORT_ROLE


def test_history_dialog_shows_uncertain_changes_without_calling_them_flips(qtbot):
    m = "\u2212"
    dlg = CaseHistoryDialog([
        {"kind": "notes", "model": "notes-minilm", "model_version": "2.0.0", "weights_sha256": "", "run_id": None,
         "time": 1.7e9, "positives": ["Effusion"], "uncertain": [], "changes": [], "appeared": [],
         "disappeared": [], "flipped": False, "uncertain_changed": False},
        {"kind": "notes", "model": "notes-minilm", "model_version": "2.0.0", "weights_sha256": "", "run_id": 4,
         "time": 1.71e9, "positives": ["Effusion"], "uncertain": ["Pneumothorax"],
         "changes": [{"label": "Pneumothorax", "before": "absent", "after": "uncertain"}], "appeared": [],
         "disappeared": [], "flipped": False, "uncertain_changed": True},
        {"kind": "notes", "model": "notes-minilm", "model_version": "2.0.0", "weights_sha256": "", "run_id": 5,
         "time": 1.72e9, "positives": ["Pneumothorax"], "uncertain": [],
         "changes": [{"label": "Pneumothorax", "before": "uncertain", "after": "present"},
                     {"label": "Effusion", "before": "present", "after": "absent"}],
         "appeared": [], "disappeared": ["Effusion"], "flipped": True, "uncertain_changed": True}])
    qtbot.addWidget(dlg)
    assert dlg.flipped_rows == [2]
    assert dlg.table.item(1, 4).text() == "Effusion, Pneumothorax?"
    assert dlg.table.item(1, 5).text() == f"Pneumothorax {m}\u2192?"
    assert "flipped" not in dlg.table.item(1, 5).text()
    assert dlg.table.item(1, 0).background().style() == Qt.BrushStyle.NoBrush
    assert "uncertain" in dlg.table.item(1, 5).toolTip()
    change = dlg.table.item(2, 5).text()
    assert change.startswith("⚑ flipped") and f"{m}Effusion" in change and "Pneumothorax ?\u2192+" in change
    assert dlg.table.item(2, 0).background().color() == FLIP_BG


def test_render_offscreen(qtbot):
    """Render with the app's dark stylesheet for a look at the result (/tmp/worklist.png, /tmp/history.png)."""
    from medviewer.config import resources_dir

    qss = (resources_dir() / "styles" / "dark.qss").read_text(encoding="utf-8")
    host = WorklistWidget()
    host.setStyleSheet(qss + host.styleSheet())
    qtbot.addWidget(host)
    host.resize(1280, 330)
    host.set_rows(ROWS)
    host.set_agreement({"label": "pneumonia", "n": 3, "sensitivity": 1.0, "specificity": 0.5, "auc": 0.75})
    host.set_stale("Model changed: 2 cases were scored with older weights of pneumonia-cnn", ["1.2.1", "1.2.3"])
    host.set_busy(True)
    host.set_progress(2, 5)
    host.select_uid("1.2.1")
    host.show()
    qtbot.waitExposed(host)
    assert host.grab().save("/tmp/worklist.png")
    dlg = CaseHistoryDialog(HISTORY, "History of DOE, JANE")
    dlg.setStyleSheet(qss + dlg.styleSheet())
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    assert dlg.grab().save("/tmp/history.png")
