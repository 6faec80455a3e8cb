"""Start the GUI: ``run_gui(path, screenshot)``."""

from __future__ import annotations

import sys

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from medviewer.ui.main_window import MainWindow


def run_gui(path: str | None = None, screenshot: str | None = None, timeout_s: float = 120.0) -> int:
    """Open the main window, optionally with ``path`` loaded.

    With ``screenshot``, waits until the first image is painted, saves the whole window as PNG and exits 0
    (exit 1 if nothing was painted within ``timeout_s``).
    """
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("medviewer")
    window = MainWindow()
    window.show()
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

        window.first_image_painted.connect(lambda: QTimer.singleShot(100, save))
        QTimer.singleShot(int(timeout_s * 1000), give_up)
    if path:
        QTimer.singleShot(0, lambda: window.open_path(path))
    rc = app.exec()
    return status["code"] or rc
