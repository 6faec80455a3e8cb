"""Start the GUI: ``run_gui(path, screenshot)``."""

from __future__ import annotations

import gc
import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from medviewer.ui.main_window import MainWindow


def freeze_startup_objects() -> None:
    """Move every object alive now (modules, classes, the window: ~87k objects) out of the garbage collector's
    generations (:func:`gc.freeze`). They live as long as the process, yet a full collection walked all of them:
    ~30 ms idle, 40-60 ms while workers run, holding the GIL, so the GUI thread froze for that long whenever a scan
    or load worker triggered one (benchmarks/bench_gui.py (2)). Frozen, a full collection takes ~2 ms."""
    gc.freeze()


def run_gui(path: str | None = None, screenshot: str | None = None, timeout_s: float = 120.0,
            run_ai: bool = False) -> int:
    """Open the main window, optionally with ``path`` loaded.

    With ``screenshot``, waits until the first image is painted and its series is loaded (with ``run_ai``: until
    the AI result and heat map are shown), saves the whole window as PNG and exits 0; exits 1 at once when there
    is nothing to show (no PATH, or no image in it), and when nothing was painted within ``timeout_s``.
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("medviewer")
    window = MainWindow()
    window.show()
    freeze_startup_objects()
    status = {"code": 0}
    if screenshot:
        def save() -> None:
            app.processEvents()
            window.grab().save(screenshot)
            window.close()
            app.quit()

        def give_up() -> None:
            status["code"] = 1
            print(f"medviewer: no image painted within {timeout_s:.0f} s; screenshot not saved", file=sys.stderr)
            window.close()
            app.quit()

        def nothing(reason: str) -> None:
            status["code"] = 1
            print(f"medviewer: {reason}; screenshot not saved", file=sys.stderr)
            window.close()
            app.quit()

        window.nothing_to_show.connect(nothing)
        if not path:
            QTimer.singleShot(0, lambda: nothing("nothing to show: give a PATH or --sample"))
        if run_ai:
            window.load_finished.connect(lambda: QTimer.singleShot(0, lambda: window.run_ai(False)))
            window.ai_finished.connect(lambda: QTimer.singleShot(200, save))
        else:
            window.load_finished.connect(lambda: QTimer.singleShot(200, save))
        QTimer.singleShot(int(timeout_s * 1000), give_up)
    elif run_ai:
        window.load_finished.connect(lambda: QTimer.singleShot(0, lambda: window.run_ai(False)))
    if path:
        QTimer.singleShot(0, lambda: window.open_path(path))
    rc = app.exec()
    return status["code"] or rc
