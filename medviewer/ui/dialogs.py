"""Searchable DICOM tag browser and the keyboard shortcuts help."""

from __future__ import annotations

import pydicom
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLineEdit,
    QTableWidget,
    QTableWidgetItem,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

SHORTCUTS = [
    ("Mouse wheel, Up/Down, Left/Right", "previous / next slice"),
    ("PgUp / PgDn", "10 slices back / forward"),
    ("Home / End", "first / last slice"),
    ("Right-drag", "window width (horizontal) and level (vertical)"),
    ("Left-drag", "pan"),
    ("Ctrl + wheel", "zoom"),
    ("F / 0", "fit to window / 1:1 pixels"),
    ("1..8", "CT presets on CT (brain, subdural, stroke, soft tissue, mediastinum, lung, bone, liver); the image's "
             "own DICOM windows otherwise"),
    ("D", "Back to the DICOM window"),
    ("A", "automatic window"),
    ("I", "invert"),
    ("C", "cine play / stop"),
    ("T", "DICOM tag browser"),
    ("Ctrl+O", "open folder"),
    ("R / Shift+R", "run AI on the image / on the series"),
    ("H", "show / hide the heat map"),
    ("Alt+Down / Alt+Up", "next / previous case of the worklist"),
    ("Ctrl+L", "show the worklist"),
    ("Ctrl+E / Ctrl+Shift+E", "export the case report (PDF) / de-identified"),
    ("Ctrl+Shift+Q", "query/retrieve from a PACS"),
    ("F1", "this help"),
]


def _value_text(elem: pydicom.DataElement) -> str:
    if elem.VR == "SQ":
        return f"<sequence of {len(elem.value)} item(s)>"
    if elem.tag in (0x7FE00010, 0x7FE00008, 0x7FE00009) or elem.VR in ("OB", "OW", "OF", "OD", "OL", "UN"):
        length = len(elem.value) if elem.value is not None else 0
        return f"<{length} bytes>"
    text = str(elem.value)
    return text if len(text) <= 200 else text[:200] + "..."


class TagBrowser(QDialog):
    """All elements of one file (header only, nested sequences as a tree) with a filter over tag, keyword and
    value."""

    def __init__(self, path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"DICOM tags - {path}")
        self.resize(820, 640)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter by tag, keyword or value")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setColumnWidth(0, 110)
        self.tree.setColumnWidth(1, 230)
        self.tree.setColumnWidth(2, 40)
        layout = QVBoxLayout(self)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            self._add(self.tree.invisibleRootItem(), ds.file_meta if hasattr(ds, "file_meta") else None)
            self._add(self.tree.invisibleRootItem(), ds)
        except Exception as exc:  # noqa: BLE001 - shown to the user
            self.tree.addTopLevelItem(QTreeWidgetItem(["", "error", "", f"cannot read {path}: {exc}"]))
        self.filter.textChanged.connect(self.apply_filter)

    def _add(self, parent: QTreeWidgetItem, ds) -> None:  # noqa: ANN001
        if ds is None:
            return
        for elem in ds:
            item = QTreeWidgetItem([f"({elem.tag.group:04X},{elem.tag.element:04X})", elem.keyword or elem.name,
                                    elem.VR, _value_text(elem)])
            parent.addChild(item)
            if elem.VR == "SQ":
                for n, sub in enumerate(elem.value, 1):
                    child = QTreeWidgetItem(["", f"Item {n}", "", ""])
                    item.addChild(child)
                    self._add(child, sub)

    def apply_filter(self, text: str) -> int:
        """Hide rows not matching ``text`` (case-insensitive); returns the number of matching rows."""
        text = text.lower().strip()
        count = 0

        def visit(item: QTreeWidgetItem) -> bool:
            nonlocal count
            own = not text or any(text in item.text(c).lower() for c in range(4))
            child_match = False
            for i in range(item.childCount()):
                child = item.child(i)
                if child is not None:  # never, below childCount()
                    child_match |= visit(child)
            visible = own or child_match
            item.setHidden(not visible)
            if own and text:
                count += 1
            return visible

        root = self.tree.invisibleRootItem()
        for i in range(root.childCount()):
            top = root.child(i)
            if top is not None:
                visit(top)
        return count


def all_shortcuts() -> list[tuple[str, str]]:
    """The viewer's shortcuts followed by the annotation tools'."""
    from medviewer.ui.annotations import SHORTCUTS as ANNOTATION_SHORTCUTS

    return SHORTCUTS[:-1] + list(ANNOTATION_SHORTCUTS) + SHORTCUTS[-1:]


class ShortcutsDialog(QDialog):
    """The keyboard and mouse shortcuts."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Shortcuts")
        self.resize(520, 460)
        shortcuts = all_shortcuts()
        table = QTableWidget(len(shortcuts), 2)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        for r, (keys, action) in enumerate(shortcuts):
            table.setItem(r, 0, QTableWidgetItem(keys))
            table.setItem(r, 1, QTableWidgetItem(action))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


class LogDialog(QDialog):
    """Help > Show log: the end of the application log (:mod:`medviewer.logs`), newest last, and where it is."""

    def __init__(self, parent: QWidget | None = None):
        from PySide6.QtGui import QTextCursor
        from PySide6.QtWidgets import QLabel, QPlainTextEdit

        from medviewer.logs import log_path, tail

        super().__init__(parent)
        self.setWindowTitle("medviewer log")
        self.resize(820, 520)
        path = log_path()
        self.text = QPlainTextEdit(tail(path) or "(the log is empty)")
        self.text.setReadOnly(True)
        self.text.moveCursor(QTextCursor.MoveOperation.End)
        where = QLabel(f"Log file: {path}")
        where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(where)
        layout.addWidget(self.text)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)


__all__ = ["TagBrowser", "ShortcutsDialog", "LogDialog", "SHORTCUTS"]
