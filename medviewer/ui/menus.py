"""The main window's menus and toolbars. Every action calls a controller or the session; none keeps state but the
recent-paths list (QSettings)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QFileDialog, QLabel, QMenu, QSpinBox, QToolBar

from medviewer.session import LAYOUTS
from medviewer.ui.dialogs import LogDialog, ShortcutsDialog

if TYPE_CHECKING:
    from medviewer.ui.main_window import MainWindow


class RecentPaths:
    """File > Open recent: the last ten opened paths, kept in QSettings ("recent")."""

    def __init__(self, menu: QMenu, settings: QSettings, open_path: Callable[[str], None]):
        self.menu, self.settings, self.open_path = menu, settings, open_path
        self.refresh()

    def paths(self) -> list[str]:
        value = self.settings.value("recent", [])
        values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        return [v for v in values if isinstance(v, str)]

    def remember(self, path: str) -> None:
        self.settings.setValue("recent", ([path] + [p for p in self.paths() if p != path])[:10])
        self.refresh()

    def refresh(self) -> None:
        self.menu.clear()
        for path in self.paths():
            self.menu.addAction(path).triggered.connect(lambda _=False, p=path: self.open_path(p))
        self.menu.setEnabled(bool(self.paths()))


@dataclass
class Menus:
    """What the window needs of its menus later on."""

    recent: RecentPaths
    layouts: dict[str, QAction]
    fps: QSpinBox
    auto_rescore: QAction
    window_level: Any  # medviewer.ui.window_menu.WindowLevelMenu
    annotation_actions: Any


def _action(win: MainWindow, text: str, slot, shortcut=None, menu: QMenu | None = None,  # noqa: ANN001
            bar: QToolBar | None = None) -> QAction:
    act = QAction(text, win)
    if shortcut is not None:
        act.setShortcut(shortcut)
    act.triggered.connect(slot)
    if menu is not None:
        menu.addAction(act)
    if bar is not None:
        bar.addAction(act)
    return act


def build_menus(win: MainWindow) -> Menus:
    """File, Window/Level, View, AI, Case, Annotate and Help menus, the main and annotation toolbars."""
    bar = win.addToolBar("Main")
    bar.setObjectName("main-toolbar")
    file_menu = win.menuBar().addMenu("&File")

    def choose_folder() -> None:
        path = QFileDialog.getExistingDirectory(win, "Open DICOM folder")
        if path:
            win.open_path(path)

    def choose_file() -> None:
        path, _ = QFileDialog.getOpenFileName(win, "Open DICOMDIR or DICOM file")
        if path:
            win.open_path(path)

    _action(win, "&Open folder...", choose_folder, QKeySequence.StandardKey.Open, file_menu, bar)
    _action(win, "Open &DICOMDIR or file...", choose_file, "Ctrl+Shift+O", file_menu)
    recent = RecentPaths(file_menu.addMenu("Open &recent"), win.settings, win.open_path)
    file_menu.addSeparator()
    _action(win, "&Query/Retrieve from PACS...", win.show_pacs, "Ctrl+Shift+Q", file_menu)
    file_menu.addSeparator()
    _action(win, "&Export report (PDF)...", lambda: win.cases_list.export_report(), "Ctrl+E", file_menu)
    _action(win, "Export report, de-&identified...", lambda: win.cases_list.export_report(deidentify=True),
            "Ctrl+Shift+E", file_menu)
    _action(win, "Export worklist (&CSV)...", lambda: win.cases_list.export_csv(), None, file_menu)
    file_menu.addSeparator()
    _action(win, "&Quit", win.close, QKeySequence.StandardKey.Quit, file_menu)

    from medviewer.ui.window_menu import WindowLevelMenu

    window_level = WindowLevelMenu(win.menuBar().addMenu("&Window/Level"), bar, lambda: win.viewer)
    window_level.follow(win.grid)

    view = win.menuBar().addMenu("&View")
    group = QActionGroup(win)
    layouts = {}
    for n, name in enumerate(LAYOUTS):
        act = _action(win, f"Layout {name}", lambda _=False, layout=name: win.session.set_layout(layout),
                      f"Ctrl+{n + 1}", view, bar)
        act.setCheckable(True)
        act.setChecked(name == win.session.layout)
        group.addAction(act)
        layouts[name] = act
    view.addSeparator()
    _action(win, "Fit", lambda: win.viewer.view.autoRange(padding=0.0), "F", view)
    _action(win, "1:1 pixels", lambda: win.viewer.one_to_one(), "0", view)
    _action(win, "Cine play/stop", lambda: win.viewer.toggle_cine(), "C", view, bar)
    fps = QSpinBox()
    fps.setRange(1, 60)
    fps.setValue(10)
    fps.setSuffix(" fps")

    def set_fps(value: int) -> None:
        for viewer in win.grid.viewers:
            viewer.set_cine_fps(value)

    fps.valueChanged.connect(set_fps)
    bar.addWidget(QLabel(" Cine "))
    bar.addWidget(fps)
    _action(win, "DICOM tags...", win.show_tags, "T", view, bar)

    ai = win.menuBar().addMenu("&AI")
    _action(win, "Run AI on image", lambda: win.ai.run(False), "R", ai, bar)
    _action(win, "Run AI on series", lambda: win.ai.run(True), "Shift+R", ai)
    _action(win, "Show/hide heat map", lambda: win.ai_panel.show_overlay.toggle(), "H", ai)
    _action(win, "Model card...", win.ai_panel._show_card, None, ai)
    ai.addSeparator()
    _action(win, "Re-score selected cases", lambda: win.cases_list.rescore(win.worklist.selected_uids() or None),
            None, ai)
    _action(win, "Re-score all cases", lambda: win.cases_list.rescore(None), None, ai)
    auto_rescore = QAction("Re-score automatically when a model changes", win)
    auto_rescore.setCheckable(True)
    auto_rescore.setChecked(win.settings.value("auto_rescore", "true") in ("true", True))
    auto_rescore.toggled.connect(lambda on: win.settings.setValue("auto_rescore", "true" if on else "false"))
    ai.addAction(auto_rescore)

    cases = win.menuBar().addMenu("&Case")
    _action(win, "Next case", win.next_case, "Alt+Down", cases)
    _action(win, "Previous case", win.previous_case, "Alt+Up", cases)

    def show_worklist() -> None:
        win.worklist_dock.show()
        win.worklist_dock.raise_()

    _action(win, "Show worklist", show_worklist, "Ctrl+L", cases)
    _action(win, "Case history...", lambda: win.show_history(), None, cases)
    _action(win, "&Send to PACS...", lambda: win.send_to_pacs(), None, cases)

    from medviewer.ui.annotations import build_annotation_actions

    annotate = win.menuBar().addMenu("A&nnotate")
    win.addToolBarBreak()
    tools = win.addToolBar("Annotate")
    tools.setObjectName("annotate-toolbar")
    annotation_actions = build_annotation_actions(win, annotate, tools, lambda: win.grid.active)
    help_menu = win.menuBar().addMenu("&Help")
    _action(win, "Shortcuts", lambda: ShortcutsDialog(win).exec(), "F1", help_menu)
    _action(win, "Show log", lambda: LogDialog(win).exec(), None, help_menu)
    return Menus(recent, layouts, fps, auto_rescore, window_level, annotation_actions)
