"""The annotation actions of a window: checkable tool actions (one group), undo / redo / delete, in a menu and a
toolbar, acting on the active viewport's layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QApplication, QMenu, QToolBar, QWidget

from medviewer.ui.annotations.tools import TOOLS

if TYPE_CHECKING:
    from medviewer.ui.annotations.layer import AnnotationLayer
    from medviewer.ui.viewer import ImageViewer

__all__ = ["build_annotation_actions", "sync_tool_actions"]


def sync_tool_actions(actions: dict[str, QAction], viewer: ImageViewer | None) -> None:
    """Check the tool action matching ``viewer``'s active tool (call when the active viewport changes)."""
    tool = viewer.annotations.tool if viewer is not None else None
    name = tool if tool is not None else "navigate"
    if name in actions:
        actions[name].setChecked(True)


def build_annotation_actions(window: QWidget, menu: QMenu | None, toolbar: QToolBar | None,
                             get_viewer: Callable[[], ImageViewer | None]) -> dict[str, QAction]:
    """Create the annotation actions on ``window`` and add them to ``menu`` (a QMenu, or None) and ``toolbar``
    (a QToolBar, or None; tools only).

    Returns ``{"navigate", "length", "angle", "rect", "ellipse", "arrow", "text", "undo", "redo", "delete"}`` ->
    QAction. The tool actions are checkable and exclusive; every action acts on ``get_viewer()``'s layer (the
    active viewport). Keys: see :data:`TOOLS` and :data:`SHORTCUTS`. The checked tool follows the layer's
    ``tool_changed`` (e.g. Escape) for each viewer an action was used on; call :func:`sync_tool_actions` when the
    active viewport changes.
    """
    actions: dict[str, QAction] = {}
    group = QActionGroup(window)
    group.setExclusive(True)
    watched: set[int] = set()

    def layer() -> AnnotationLayer | None:
        v = get_viewer()
        if v is None:
            return None
        if id(v.annotations) not in watched:
            watched.add(id(v.annotations))
            v.annotations.tool_changed.connect(
                lambda _kind, v=v: sync_tool_actions(actions, v) if get_viewer() is v else None)
        return v.annotations

    def use_tool(kind: str | None) -> None:
        lay = layer()
        if lay is not None:
            lay.set_tool(kind)

    for kind, text, key in TOOLS:
        name = kind or "navigate"
        act = QAction(text, window)
        act.setShortcut(QKeySequence(key))
        act.setCheckable(True)
        act.setChecked(kind is None)
        act.setToolTip(f"{text} ({key})")
        act.triggered.connect(lambda _=False, k=kind: use_tool(k))
        group.addAction(act)
        window.addAction(act)
        actions[name] = act
        if menu is not None:
            menu.addAction(act)
        if toolbar is not None:
            toolbar.addAction(act)

    def run(method: str) -> None:
        # Delete/Backspace typed in a list or tree (browser, worklist) are not meant for the annotation.
        focus = QApplication.focusWidget()
        if method == "delete_selected" and isinstance(focus, QAbstractItemView):
            return
        lay = layer()
        if lay is not None:
            getattr(lay, method)()

    extra = [("undo", "Undo annotation", ["Ctrl+Z"], "undo"),
             ("redo", "Redo annotation", ["Ctrl+Shift+Z", "Ctrl+Y"], "redo"),
             ("delete", "Delete annotation", ["Delete", "Backspace"], "delete_selected")]
    if menu is not None:
        menu.addSeparator()
    for name, text, keys, method in extra:
        act = QAction(text, window)
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.triggered.connect(lambda _=False, m=method: run(m))
        window.addAction(act)
        actions[name] = act
        if menu is not None:
            menu.addAction(act)
    if menu is not None:
        menu.aboutToShow.connect(lambda: sync_tool_actions(actions, get_viewer()))
    return actions
