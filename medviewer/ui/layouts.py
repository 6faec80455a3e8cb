"""Viewport layouts: 1x1, 1x2 and 2x2 grids of :class:`~medviewer.ui.viewer.ImageViewer`.

The cells of a layout are always equal: every used row and column has the same stretch and every viewport the
same size hint (:meth:`ImageViewer.sizeHint`), so clicks (the active outline restyles a viewport), loading images
of other sizes and resizing never make one cell larger than another.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGridLayout, QWidget

from medviewer.ui.viewer import ImageViewer

LAYOUTS: dict[str, tuple[int, int]] = {"1x1": (1, 1), "1x2": (1, 2), "2x2": (2, 2)}


class ViewportGrid(QWidget):
    """Up to four viewports; one is active (keyboard, browser double-click and tools act on it).

    ``stack_dropped(viewer, key)`` fires when a browser series is dropped on a viewport; ``layout_changed(name)``
    after each :meth:`set_layout` (the main window saves the name, to restore the layout at start).
    """

    stack_dropped = Signal(object, str)
    active_changed = Signal(object)
    layout_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.viewers = [ImageViewer(self) for _ in range(4)]
        self.grid = QGridLayout(self)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        self.layout_name = "1x1"
        for v in self.viewers:
            v.activated.connect(lambda v=v: self.set_active(v))
            v.stack_dropped.connect(lambda key, v=v: self._dropped(v, key))
        self.active = self.viewers[0]
        self.set_layout("1x1")
        self.set_active(self.viewers[0])

    @property
    def layouts(self) -> list[str]:
        """The layout names :meth:`set_layout` accepts ("1x1", "1x2", "2x2")."""
        return list(LAYOUTS)

    def visible_viewers(self) -> list[ImageViewer]:
        rows, cols = LAYOUTS[self.layout_name]
        return self.viewers[: rows * cols]

    def set_layout(self, name: str) -> None:
        """Switch to "1x1", "1x2" or "2x2"; hidden viewports keep their series."""
        if name not in LAYOUTS:
            raise ValueError(f"unknown layout {name!r}; expected one of {list(LAYOUTS)}")
        self.layout_name = name
        rows, cols = LAYOUTS[name]
        for v in self.viewers:
            self.grid.removeWidget(v)
            v.setVisible(False)
        for r in range(2):  # used rows/columns share the space equally; unused ones take none
            self.grid.setRowStretch(r, 1 if r < rows else 0)
            self.grid.setColumnStretch(r, 1 if r < cols else 0)
        for n, v in enumerate(self.viewers[: rows * cols]):
            self.grid.addWidget(v, n // cols, n % cols)
            v.setVisible(True)
            if v.volume is None:
                v.show_message("Drop a series here")
        if self.active not in self.visible_viewers():
            self.set_active(self.viewers[0])
        self.layout_changed.emit(name)

    def set_active(self, viewer: ImageViewer) -> None:
        self.active = viewer
        for v in self.viewers:
            v.set_active(v is viewer and self.layout_name != "1x1")
        viewer.setFocus()
        self.active_changed.emit(viewer)

    def _dropped(self, viewer: ImageViewer, key: str) -> None:
        self.set_active(viewer)
        self.stack_dropped.emit(viewer, key)
