"""GUI smoke test (pytest-qt, offscreen): open the Philips series in the window, scroll, close cleanly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
PHILIPS = SHARED / "ct-phantom-philips"


@pytest.mark.skipif(not PHILIPS.is_dir(), reason="../shared/data is not beside the checkout")
def test_open_philips_scroll_and_close(qtbot, tmp_path):
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.first_image_painted, timeout=60000):
        win.open_path(str(PHILIPS))
    vol = win.viewer.volume
    assert vol is not None and vol.array.shape == (140, 512, 512)
    start = win.viewer.state.index
    win.viewer.step_slice(1)
    assert win.viewer.state.index == start + 1
    win.viewer.set_preset("Bone")
    assert (win.viewer.state.window.center, win.viewer.state.window.width) == (480.0, 2500.0)
    shot = tmp_path / "philips.png"
    assert win.grab().save(str(shot)) and shot.stat().st_size > 10000
    win.close()
    assert win.runner.active_count() == 0


@pytest.mark.skipif(not PHILIPS.is_dir(), reason="../shared/data is not beside the checkout")
def test_tag_browser_cine_and_recent(qtbot, tmp_path, monkeypatch):
    import pydicom
    from PySide6.QtCore import QSettings

    from medviewer.ui.main_window import MainWindow

    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path))
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.first_image_painted, timeout=60000):
        win.open_path(str(PHILIPS))
    assert win.menus.recent.paths()[0] == str(PHILIPS.resolve()) or win.menus.recent.paths()[0] == str(PHILIPS)
    dialog = win.show_tags()
    qtbot.addWidget(dialog)
    path = win.viewer.volume.stack.slices[win.viewer.state.index].instance.path
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    # Filtering on the SOPInstanceUID finds exactly the rows that hold it (meta + dataset).
    assert dialog.apply_filter(str(ds.SOPInstanceUID)) >= 1
    assert dialog.apply_filter("zzzz-no-such-tag") == 0
    start = win.viewer.state.index
    win.viewer.set_cine_fps(50)
    win.viewer.toggle_cine()
    qtbot.waitUntil(lambda: win.viewer.state.index != start, timeout=3000)
    win.viewer.toggle_cine()
    assert not win.viewer.cine_timer.isActive()
    win.close()
