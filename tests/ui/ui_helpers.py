"""Event and pixel helpers for the viewer-window tests (real Qt events sent to the widgets, offscreen)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PHILIPS = SHARED / "ct-phantom-philips"

#: How long a scan + load of the 140-slice Philips series may take on a slow machine (ms).
LOAD_TIMEOUT_MS = 60000


# ------------------------------------------------------------------------------------------------- window
def window_idle(win) -> bool:  # noqa: ANN001
    """True when no scan/thumbnail/load job of ``win`` is running and every shown volume is fully decoded."""
    if win.runner.active_count():
        return False
    scan = win.runner.latest("scan")
    if scan is not None and not scan.done:
        return False
    for v in win.grid.visible_viewers():
        if v.volume is not None and v.volume.ready is not None and not v.volume.ready.all():
            return False
    return True


def wait_idle(qtbot, win, timeout: int = LOAD_TIMEOUT_MS) -> None:  # noqa: ANN001
    """Wait until ``win`` finished scanning/loading, then deliver the results the workers queued."""
    qtbot.waitUntil(lambda: window_idle(win), timeout=timeout)
    # `done` is set after a job emitted its last signal: deliver those queued signals too.
    for _ in range(3):
        QApplication.processEvents()


# ------------------------------------------------------------------------------------------------- events
def viewport_center(viewer) -> QPointF:  # noqa: ANN001
    vp = viewer.graphics.viewport()
    return QPointF(vp.width() / 2, vp.height() / 2)


def send_wheel(viewer, dy: int, pos: QPointF | None = None,  # noqa: ANN001
               modifiers=Qt.KeyboardModifier.NoModifier) -> None:  # noqa: ANN001
    """A real QWheelEvent (angleDelta y = ``dy``, +120 = one notch away from the user) on the viewport."""
    vp = viewer.graphics.viewport()
    pos = viewport_center(viewer) if pos is None else QPointF(pos)
    ev = QWheelEvent(pos, QPointF(vp.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, dy),
                     Qt.MouseButton.NoButton, modifiers, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, ev)


def send_mouse(widget, kind: QEvent.Type, pos, button=Qt.MouseButton.NoButton,  # noqa: ANN001
               buttons=Qt.MouseButton.NoButton) -> None:  # noqa: ANN001
    p = QPointF(pos)
    ev = QMouseEvent(kind, p, p, QPointF(widget.mapToGlobal(p.toPoint())), button, buttons,
                     Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, ev)


def mouse_move(qtbot, viewer, pos) -> None:  # noqa: ANN001
    """Move the (button-less) mouse to viewport position ``pos``. pyqtgraph drops moves closer than 10 ms apart
    (mouseRateLimit 100/s), hence the wait."""
    qtbot.wait(15)
    send_mouse(viewer.graphics.viewport(), QEvent.Type.MouseMove, pos)


def mouse_drag(qtbot, viewer, dx: float, dy: float, button=Qt.MouseButton.RightButton,  # noqa: ANN001
               steps: int = 4) -> None:
    """Press ``button`` at the viewport centre, move by (dx, dy) screen pixels in ``steps``, release."""
    vp = viewer.graphics.viewport()
    start = viewport_center(viewer)
    send_mouse(vp, QEvent.Type.MouseButtonPress, start, button, button)
    for s in range(1, steps + 1):
        qtbot.wait(15)
        send_mouse(vp, QEvent.Type.MouseMove, start + QPointF(dx * s / steps, dy * s / steps),
                   Qt.MouseButton.NoButton, button)
    qtbot.wait(15)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, start + QPointF(dx, dy), button, Qt.MouseButton.NoButton)


def drop_stack(viewer, key: str) -> bool:  # noqa: ANN001
    """Drag-enter and drop a browser series (STACK_MIME) on ``viewer``'s viewport, the way a drag from the
    browser arrives: QApplication propagates the enter to the first parent that accepts it and sends the drop
    there. Returns whether the drop was accepted."""
    from medviewer.ui.browser import STACK_MIME

    vp = viewer.graphics.viewport()
    mime = QMimeData()
    mime.setData(STACK_MIME, key.encode("utf-8"))
    pos = viewport_center(viewer)
    actions = Qt.DropAction.CopyAction | Qt.DropAction.MoveAction
    enter = QDragEnterEvent(pos.toPoint(), actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(pos, actions, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, drop)
    return drop.isAccepted()


# ------------------------------------------------------------------------------------------------- pixels
def qimage_to_rgb(image: QImage) -> np.ndarray:
    """(h, w, 3) uint8 copy of a QImage."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    buf = np.frombuffer(image.constBits(), dtype=np.uint8, count=image.bytesPerLine() * h)
    return buf.reshape(h, image.bytesPerLine())[:, : w * 3].reshape(h, w, 3).copy()


def grab_viewport(viewer) -> np.ndarray:  # noqa: ANN001
    """What the viewport shows (image only: the overlay labels are not children of the viewport), (h, w, 3)."""
    QApplication.processEvents()
    return qimage_to_rgb(viewer.graphics.viewport().grab().toImage())


def image_to_viewport(viewer, x: float, y: float) -> QPoint:  # noqa: ANN001
    """Viewport pixel under image coordinate (x = column, y = row; pixel (i, j) covers [j, j+1) x [i, i+1))."""
    return viewer.graphics.mapFromScene(viewer.image.mapToScene(QPointF(x, y)))


def screen_box(viewer, r0: int, r1: int, c0: int, c1: int) -> tuple[slice, slice]:  # noqa: ANN001
    """Slices of a viewport grab covering image rows r0:r1 and columns c0:c1, one screen pixel inside."""
    a = image_to_viewport(viewer, c0, r0)
    b = image_to_viewport(viewer, c1, r1)
    return slice(a.y() + 1, b.y() - 1), slice(a.x() + 1, b.x() - 1)



# ------------------------------------------------------------------------------------------------- GUI stalls
#: The GUI stall tests (a 5 ms heartbeat never more than 50 ms late while the model process starts, loads and
#: answers) pass in one of two tries. Full-suite CI runs on fresh clones of this 2-core VM showed single stalls of
#: 59 and 246 ms that no local run reproduced (full suite: worst 12 ms; alone, and beside two CPU hogs: < 30 ms),
#: while work that blocks the GUI thread fails every try. Each try redoes the whole measured work.
STALL_RETRY = 1


class Heartbeat:
    """A QTimer ticking every ``interval_ms`` on the GUI thread; ``late`` holds each tick's lateness in ms (the
    first tick is dropped). Use as a context manager around the work to watch."""

    def __init__(self, interval_ms: int = 5):
        import time

        from PySide6.QtCore import QTimer

        self.interval_ms = interval_ms
        self._clock = time.perf_counter
        self.late: list[float] = []
        self._last = None
        self.timer = QTimer()
        self.timer.timeout.connect(self._beat)

    def _beat(self) -> None:
        now = self._clock()
        if self._last is not None:
            self.late.append((now - self._last) * 1000 - self.interval_ms)
        self._last = now

    def __enter__(self) -> "Heartbeat":
        # What is alive before the watch (the test session's heap: earlier tests load torch, transformers and the
        # models into this process, which the app's GUI process never does) goes into the collector's permanent
        # generation, so that a full collection of that heap (about 220 ms with torch, transformers and both
        # models loaded) is not timed as the GUI's work; what the watched work allocates is collected as usual.
        import gc

        gc.collect()
        gc.freeze()
        self.timer.start(self.interval_ms)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        import gc

        self.timer.stop()
        gc.unfreeze()

    @property
    def worst_ms(self) -> float:
        return max(self.late[1:], default=0.0)
