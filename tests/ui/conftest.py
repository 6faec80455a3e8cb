"""Fixtures for the viewer-window tests (pytest-qt, offscreen); event and pixel helpers are in ui_helpers.py.

Every UI test gets its own QSettings location and MEDVIEWER_DATA_DIR under ``tmp_path``, so no test ever reads or
writes the user's settings, recent list or data directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402
from ui_helpers import LOAD_TIMEOUT_MS, PHILIPS, wait_idle  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """QSettings and MEDVIEWER_DATA_DIR in tmp_path: tests never touch the user's settings or data."""
    settings_dir = tmp_path / "qsettings"
    settings_dir.mkdir()
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
            QSettings.setPath(fmt, scope, str(settings_dir))
    monkeypatch.setenv("MEDVIEWER_DATA_DIR", str(tmp_path / "medviewer-data"))
    return settings_dir


# ------------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def philips_path() -> Path:
    if not PHILIPS.is_dir():
        pytest.skip(f"real data folder {PHILIPS} is absent")
    return PHILIPS


@pytest.fixture
def pydicom_data():
    """``pydicom_data(name)``: path of a pydicom-data file (chest CR, US, ...); skips when not installed."""
    def find(name: str) -> Path:
        from medviewer.io.sample import pydicom_data_file

        try:
            return pydicom_data_file(name)
        except FileNotFoundError as exc:
            pytest.skip(str(exc))

    return find


# ------------------------------------------------------------------------------------------------- window
@pytest.fixture
def open_window(qtbot, _isolated_user_dirs):
    """``open_window(path, layout=None)``: a shown MainWindow with ``path`` opened; returns once the first
    image was painted (``first_image_painted``) AND the load finished (volume fully decoded, no worker running).

    Closed at teardown, which must leave no worker running.
    """
    from medviewer.ui.main_window import MainWindow

    windows = []

    def _open(path, layout: str | None = None):  # noqa: ANN001
        win = MainWindow()
        qtbot.addWidget(win)
        windows.append(win)
        assert Path(win.settings.fileName()).is_relative_to(_isolated_user_dirs), win.settings.fileName()
        win.show()
        qtbot.waitExposed(win)
        if layout is not None:
            win.grid.set_layout(layout)
        with qtbot.waitSignal(win.first_image_painted, timeout=LOAD_TIMEOUT_MS):
            win.open_path(str(path))
        wait_idle(qtbot, win)
        assert win.viewer.volume is not None and win.viewer.volume.ready.all()
        return win

    yield _open
    for win in windows:
        win.close()
        assert win.runner.active_count() == 0


