"""The annotation tools and their keys: the tool table (menus, toolbar, shortcuts dialog) and what a key typed
on a viewer does to its annotation layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent, QKeySequence

if TYPE_CHECKING:
    from medviewer.ui.annotations.layer import AnnotationLayer

__all__ = ["KIND_NAMES", "SHORTCUTS", "TOOLS", "TOOL_KEYS", "handle_key"]

#: The tools: (kind or None, menu text, shortcut). None is the navigation mode (no tool).
TOOLS: list[tuple[str | None, str, str]] = [
    (None, "Navigate (no tool)", "N"),
    ("length", "Length", "L"),
    ("angle", "Angle", "G"),
    ("rect", "Rectangle ROI", "B"),
    ("ellipse", "Ellipse ROI", "E"),
    ("arrow", "Arrow", "W"),
    ("text", "Text", "X"),
]

#: Keys and mouse gestures of the annotation tools, for the shortcuts dialog: (keys, description).
SHORTCUTS: list[tuple[str, str]] = [
    ("N / Esc", "navigate (no annotation tool); Esc also cancels a drawing in progress"),
    ("L", "length tool: left-drag from one end to the other"),
    ("G", "angle tool: click first end, vertex, second end (or drag the first arm, then click)"),
    ("B", "rectangle ROI tool: left-drag a box (mean/SD/min/max/area)"),
    ("E", "ellipse ROI tool: left-drag the bounding box"),
    ("W", "arrow tool: left-drag from tail to head"),
    ("X", "text tool: click where the text goes"),
    ("Click / drag annotation", "select / move it; drag a handle to edit; double-click a text to edit it"),
    ("Delete / Backspace", "delete the selected annotation"),
    ("Ctrl+Z", "undo annotation change"),
    ("Ctrl+Shift+Z / Ctrl+Y", "redo annotation change"),
]

#: What each annotation kind is called (in lists and descriptions).
KIND_NAMES: dict[str, str] = {kind: text for kind, text, _ in TOOLS if kind is not None}

#: The tool each unmodified letter key selects (None: navigation).
TOOL_KEYS: dict[Qt.Key, str | None] = {
    Qt.Key.Key_N: None, Qt.Key.Key_L: "length", Qt.Key.Key_G: "angle", Qt.Key.Key_B: "rect",
    Qt.Key.Key_E: "ellipse", Qt.Key.Key_W: "arrow", Qt.Key.Key_X: "text",
}


def handle_key(layer: AnnotationLayer, ev: QKeyEvent) -> bool:
    """Do what key ``ev`` typed on the viewer means for ``layer`` (see :data:`SHORTCUTS`): undo / redo, Escape
    (leave the tool or cancel the drawing, else deselect), Delete / Backspace, a tool letter. True when used."""
    key = ev.key()
    mods = ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
    ctrl = Qt.KeyboardModifier.ControlModifier
    shift = Qt.KeyboardModifier.ShiftModifier
    if ev.matches(QKeySequence.StandardKey.Undo) or (key == Qt.Key.Key_Z and mods == ctrl):
        layer.undo()
        return True
    if ev.matches(QKeySequence.StandardKey.Redo) or (key == Qt.Key.Key_Y and mods == ctrl) or \
            (key == Qt.Key.Key_Z and mods == ctrl | shift):
        layer.redo()
        return True
    if key == Qt.Key.Key_Escape:
        if layer.drawing or layer.tool is not None:
            layer.set_tool(None)
            return True
        if layer.selected_uid is not None:
            layer.select(None)
            return True
        return False
    if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and mods == Qt.KeyboardModifier.NoModifier:
        return layer.delete_selected()
    if mods == Qt.KeyboardModifier.NoModifier and key in TOOL_KEYS:
        layer.set_tool(TOOL_KEYS[Qt.Key(key)])
        return True
    return False
