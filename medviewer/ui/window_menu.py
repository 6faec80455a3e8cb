"""The Window/Level menu of the active viewport: modality-aware presets, the file's DICOM windows, auto, invert.

What it offers follows the image of the active viewport (:meth:`ImageViewer.window_choices`):

* CT presets (Brain, Lung, Bone...) on CT only, keys 1..8;
* every DICOM window of the file by its WindowCenterWidthExplanation ("DICOM: ABDOMEN (W 400, L 40)"), and its
  VOI LUT tables by their LUTExplanation; on images without presets they take keys 1..8;
* "Back to the DICOM window" (D), enabled when the file has one;
* "Auto window" (A) and "Invert" (I), also on the toolbar.

The entry on screen is checked. The main window builds it once and tells it which viewport is active::

    wl = WindowLevelMenu(menu_bar.addMenu("&Window/Level"), toolbar, lambda: grid.active)
    wl.follow(grid)  # rebuild on grid.active_changed and on every viewer's image_changed

:meth:`WindowLevelMenu.refresh` rebuilds the entries (also done each time the menu opens).
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import QMenu, QToolBar

from medviewer.imaging.voi import WindowChoice
from medviewer.ui.viewer import ImageViewer

__all__ = ["WindowLevelMenu"]


class WindowLevelMenu(QObject):
    """Fills ``menu`` (and puts Auto/Invert on ``toolbar``) for the viewer ``active_viewer()`` returns.

    Attributes: ``choice_actions`` (the entries now in the menu between the info line and "Back to the DICOM
    window", in order, separators included; each entry carries its :class:`~medviewer.imaging.voi.WindowChoice`
    as the attribute ``choice``), ``back_action``, ``auto_action``, ``invert_action``, ``info_action`` (a disabled
    line saying why there is nothing to choose, hidden otherwise).
    """

    def __init__(self, menu: QMenu, toolbar: QToolBar | None, active_viewer: Callable[[], ImageViewer | None],
                 parent: QObject | None = None):
        super().__init__(parent if parent is not None else menu)
        self.menu = menu
        self.toolbar = toolbar
        self.active_viewer = active_viewer
        self.choice_actions: list[QAction] = []
        self._group = QActionGroup(self)
        self._group.setExclusive(True)
        self._watched: set[int] = set()

        self.info_action = QAction("", self)
        self.info_action.setEnabled(False)
        self._choices_end = QAction(self)
        self._choices_end.setSeparator(True)
        self.back_action = self._make("Back to the DICOM window", "D", self._back)
        self.back_action.setToolTip("Show the window stored in the image file again (D)")
        self.auto_action = self._make("Auto window", "A", lambda: self._call(lambda v: v.auto_window()))
        self.auto_action.setToolTip("Window from the 1st-99th percentile of the slice's values (A)")
        self.invert_action = self._make("Invert", "I", lambda: self._call(lambda v: v.toggle_invert()))
        self.invert_action.setCheckable(True)
        tail = QAction(self)
        tail.setSeparator(True)
        for act in (self.info_action, self._choices_end, self.back_action, tail, self.auto_action,
                    self.invert_action):
            menu.addAction(act)
        if toolbar is not None:
            toolbar.addAction(self.auto_action)
            toolbar.addAction(self.invert_action)
        menu.aboutToShow.connect(self.refresh)
        self._key: tuple | None = None
        self.refresh()

    # ------------------------------------------------------------------------------------------------ wiring
    def _make(self, text: str, shortcut: str, slot: Callable[[], None]) -> QAction:
        act = QAction(text, self)
        act.setShortcut(QKeySequence(shortcut))
        act.triggered.connect(lambda _=False: slot())
        return act

    def watch(self, viewer: ImageViewer) -> None:
        """Rebuild when ``viewer`` shows another image, re-check entries when its window changes."""
        if id(viewer) in self._watched:
            return
        self._watched.add(id(viewer))
        viewer.image_changed.connect(lambda v=viewer: self._viewer_event(v, rebuild=True))
        viewer.changed.connect(lambda v=viewer: self._viewer_event(v, rebuild=False))

    def follow(self, grid) -> None:  # noqa: ANN001 - a ViewportGrid (kept duck-typed: viewers, active_changed)
        """Watch every viewer of ``grid`` and rebuild when another viewport becomes the active one."""
        for v in grid.viewers:
            self.watch(v)
        grid.active_changed.connect(lambda _v: self.refresh())

    def _viewer_event(self, viewer: ImageViewer, rebuild: bool) -> None:
        if viewer is not self.active_viewer():
            return
        if rebuild:
            self.refresh(force=True)
        else:
            self._sync_checks(viewer)

    def _call(self, fn: Callable[[ImageViewer], object]) -> None:
        viewer = self.active_viewer()
        if viewer is not None:
            fn(viewer)
            self._sync_checks(viewer)

    def _back(self) -> None:
        self._call(lambda v: v.restore_dicom_window())

    def _apply(self, choice: WindowChoice) -> None:
        self._call(lambda v: v.apply_window_choice(choice))

    # ------------------------------------------------------------------------------------------------ entries
    def refresh(self, force: bool = False) -> None:
        """Rebuild the entries for the active viewer's image (skipped when neither the viewer nor its volume changed
        since the last call, unless ``force``) and check the one on screen."""
        viewer = self.active_viewer()
        vol = viewer.volume if viewer is not None else None
        key = (id(viewer), id(vol))
        if force or key != self._key:
            self._key = key
            self._rebuild(viewer)
        self._sync_checks(viewer)

    def _rebuild(self, viewer: ImageViewer | None) -> None:
        for act in self.choice_actions:
            self.menu.removeAction(act)
            self._group.removeAction(act)
            act.deleteLater()
        self.choice_actions = []
        vol = viewer.volume if viewer is not None else None
        choices = viewer.window_choices() if viewer is not None else []
        numbered = viewer.numbered_choices() if viewer is not None else []
        previous: str | None = None
        for choice in choices:
            if previous is not None and choice.source != previous:
                sep = QAction(self)
                sep.setSeparator(True)
                self.menu.insertAction(self._choices_end, sep)
                self.choice_actions.append(sep)
            previous = choice.source
            act = QAction(choice.label, self)
            act.setCheckable(True)
            act.choice = choice  # type: ignore[attr-defined]
            if choice in numbered:
                act.setShortcut(QKeySequence(str(numbered.index(choice) + 1)))
            act.triggered.connect(lambda _=False, c=choice: self._apply(c))
            self._group.addAction(act)
            self.menu.insertAction(self._choices_end, act)
            self.choice_actions.append(act)
        if vol is None:
            info = "No image in the active viewport"
        elif vol.is_color:
            info = "Colour image: no window"
        elif not choices:
            info = f"No window stored in this {vol.modality or 'image'} (presets are for CT)"
        else:
            info = ""
        self.info_action.setText(info)
        self.info_action.setVisible(bool(info))
        grey = vol is not None and not vol.is_color
        self.auto_action.setEnabled(grey)
        self.invert_action.setEnabled(grey)
        self.back_action.setEnabled(bool(viewer is not None and viewer.has_dicom_window))

    def _sync_checks(self, viewer: ImageViewer | None) -> None:
        current = viewer.current_choice() if viewer is not None else None
        for act in self.choice_actions:
            choice = getattr(act, "choice", None)
            if choice is not None:
                act.setChecked(choice == current)
        if current is None and self._group.checkedAction() is not None:
            self._group.setExclusive(False)  # an exclusive group keeps one checked: clear it for auto/manual
            for act in self.choice_actions:
                act.setChecked(False)
            self._group.setExclusive(True)
        self.invert_action.setChecked(bool(viewer is not None and viewer.state.invert))
