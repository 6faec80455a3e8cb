"""Layouts that work and reading comfort (issue 11, items 4 and 5), driven by real Qt events offscreen on real data:
equal 1x2/2x2 viewports after clicks, loads and resizes; the image centred when no colour bar is shown; overlay text
legible over bright anatomy; visible check/radio indicators in the dark theme; modality-aware W/L choices, the
window's source in the overlay and the units of the values.

Data: pydicom-data's chest CR (MONOCHROME1, 1955 x 1841), MR (1024 x 1024, RescaleType US), RGB ultrasound
(480 x 640), enhanced MR (64 x 64), and slices of the Philips CT (../shared/data), one copied with two explained
windows and one re-labelled as PET in Bq/ml.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QEvent, QRectF, Qt
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QRadioButton,
    QToolBar,
    QVBoxLayout,
    QWidget,
)
from ui_helpers import grab_viewport, image_to_viewport, mouse_move, qimage_to_rgb, send_mouse, viewport_center


# ------------------------------------------------------------------------------------------------- helpers
def load(path: Path):  # noqa: ANN201 - a Volume
    from medviewer.imaging import build_stacks
    from medviewer.imaging.volume import load_volume
    from medviewer.io import scan

    index = scan(str(path))
    series = [s for _, _, s in index.iter_series() if s.image_instances]
    assert series, path
    return load_volume(build_stacks(series[0])[0])


def style() -> str:
    from medviewer.config import resources_dir

    return (resources_dir() / "styles" / "dark.qss").read_text(encoding="utf-8")


def click(viewer) -> None:  # noqa: ANN001
    vp = viewer.graphics.viewport()
    c = viewport_center(viewer)
    send_mouse(vp, QEvent.Type.MouseButtonPress, c, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    send_mouse(vp, QEvent.Type.MouseButtonRelease, c, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def luminance(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def volumes():
    """Real images of different sizes (loaded once for the module)."""
    from medviewer.io.sample import pydicom_data_file

    out = {}
    for key, name in (("cr", "RG1_UNCI.dcm"), ("mr", "MR2_UNCI.dcm"), ("us", "US1_UNCR.dcm"),
                      ("emri", "emri_small.dcm")):
        try:
            out[key] = load(pydicom_data_file(name))
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
    return out


@pytest.fixture
def ct_explained(philips_path, tmp_path) -> Path:
    """One Philips CT slice carrying two windows with explanations (ABDOMEN 40/400, LUNG -600/1500)."""
    src = next(p for p in sorted(philips_path.iterdir()) if p.name.startswith("I"))
    ds = pydicom.dcmread(src)
    ds.WindowCenter = [40, -600]
    ds.WindowWidth = [400, 1500]
    ds.WindowCenterWidthExplanation = ["ABDOMEN", "LUNG"]
    folder = tmp_path / "ct"
    folder.mkdir()
    ds.save_as(folder / "ct.dcm")
    return folder


@pytest.fixture
def pet_bqml(philips_path, tmp_path) -> Path:
    """One Philips CT slice re-labelled as PET with Units BQML and a fractional slope (float values)."""
    src = next(p for p in sorted(philips_path.iterdir()) if p.name.startswith("I"))
    ds = pydicom.dcmread(src)
    ds.Modality = "PT"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.Units = "BQML"
    ds.pop("RescaleType", None)
    ds.RescaleSlope = "2.5"
    ds.RescaleIntercept = "0"
    ds.pop("WindowCenter", None)
    ds.pop("WindowWidth", None)
    folder = tmp_path / "pt"
    folder.mkdir()
    ds.save_as(folder / "pt.dcm")
    return folder


def grid_window(qtbot, layout: str):  # noqa: ANN001, ANN201
    """A main window holding a ViewportGrid as central widget, a dock beside it and the dark stylesheet (the way
    the app shows it: restyling on clicks relayouts the grid)."""
    from medviewer.ui.layouts import ViewportGrid

    win = QMainWindow()
    win.setStyleSheet(style())
    grid = ViewportGrid(win)
    win.setCentralWidget(grid)
    dock = QDockWidget("Studies", win)
    dock.setWidget(QLabel("browser"))
    win.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
    qtbot.addWidget(win)
    win.resize(1280, 820)
    win.show()
    qtbot.waitExposed(win)
    grid.set_layout(layout)
    QApplication.processEvents()
    return win, grid


def assert_equal_cells(grid, tag: str) -> None:  # noqa: ANN001
    QApplication.processEvents()
    cells = [v.geometry() for v in grid.visible_viewers()]
    widths, heights = [g.width() for g in cells], [g.height() for g in cells]
    assert max(widths) - min(widths) <= 2, (tag, cells)
    assert max(heights) - min(heights) <= 2, (tag, cells)
    assert all(w > 50 and h > 50 for w, h in zip(widths, heights)), (tag, cells)
    # The cells tile the grid: no gaps beyond the spacing, no overlap.
    assert all(not a.intersects(b) for n, a in enumerate(cells) for b in cells[n + 1:]), (tag, cells)


# ------------------------------------------------------------------------------------------------- 4. layouts
@pytest.mark.parametrize("layout", ["1x2", "2x2"])
def test_viewports_stay_equal_after_clicks_loads_and_resizes(qtbot, volumes, layout):
    win, grid = grid_window(qtbot, layout)
    assert_equal_cells(grid, "empty")
    shown = grid.visible_viewers()
    for v, key in zip(shown, ("cr", "us", "mr", "emri")):
        v.set_volume(volumes[key], {"patient": "DOE, John\nID 12345", "study": "2004-08-26 CHEST"})
    assert_equal_cells(grid, "loaded")
    for v in shown:
        click(v)
        assert grid.active is v
        assert_equal_cells(grid, f"click {grid.viewers.index(v)}")
    for size in ((1600, 900), (1000, 700), (1333, 777), (900, 1000)):
        win.resize(*size)
        assert_equal_cells(grid, f"resize {size}")
        for v in reversed(shown):
            click(v)
        assert_equal_cells(grid, f"clicks after resize {size}")
    # Switching layouts back and forth (the cells that were larger once do not stay larger).
    for name in ("1x1", layout, "2x2" if layout == "1x2" else "1x2", layout):
        grid.set_layout(name)
        assert_equal_cells(grid, f"layout {name}")
    # A heat map (colour bar) in one cell does not widen it.
    shown[0].set_heatmap(0, np.random.default_rng(0).random(volumes["cr"].array.shape[1:3]).astype(np.float32),
                         "test")
    assert_equal_cells(grid, "heat map")


def test_grid_layout_names(qtbot):
    from medviewer.ui.layouts import ViewportGrid

    grid = ViewportGrid()
    qtbot.addWidget(grid)
    assert grid.layouts == ["1x1", "1x2", "2x2"]
    with qtbot.waitSignal(grid.layout_changed, timeout=1000) as blocker:
        grid.set_layout("2x2")
    assert blocker.args == ["2x2"]
    assert grid.layout_name == "2x2" and len(grid.visible_viewers()) == 4
    with pytest.raises(ValueError):
        grid.set_layout("3x3")


def _shown_viewer(qtbot, volume, width: int, height: int):  # noqa: ANN001, ANN201
    from medviewer.ui.viewer import ImageViewer

    v = ImageViewer()
    qtbot.addWidget(v)
    v.resize(width, height)
    v.show()
    qtbot.waitExposed(v)
    v.set_volume(volume)
    qtbot.wait(20)
    return v


def _image_centre_offset(v) -> tuple[float, float]:  # noqa: ANN001
    rows, cols = v.volume.array.shape[1:3]
    a, b = image_to_viewport(v, 0, 0), image_to_viewport(v, cols, rows)
    vp = v.graphics.viewport()
    return ((a.x() + b.x()) / 2 - vp.width() / 2, (a.y() + b.y()) / 2 - vp.height() / 2)


@pytest.mark.parametrize("key, size", [("cr", (700, 420)), ("cr", (420, 700)), ("us", (420, 700)),
                                       ("us", (900, 400)), ("mr", (640, 480))])
def test_image_is_centred_without_colour_bar(qtbot, volumes, key, size):
    v = _shown_viewer(qtbot, volumes[key], *size)
    assert not v.colorbar.isVisible()
    dx, dy = _image_centre_offset(v)
    assert abs(dx) <= 1.0 and abs(dy) <= 1.0, (dx, dy)
    # On screen: the drawn image's bounding box is centred too (the CR's unexposed border is bright).
    if key == "cr":
        shot = luminance(grab_viewport(v))
        ys, xs = np.nonzero(shot > 12)
        vp = v.graphics.viewport()
        assert abs((xs.min() + xs.max() + 1) / 2 - vp.width() / 2) <= 2
        assert abs((ys.min() + ys.max() + 1) / 2 - vp.height() / 2) <= 2
    # Resizing keeps it centred.
    v.resize(size[0] + 157, size[1] - 61)
    qtbot.wait(20)
    dx, dy = _image_centre_offset(v)
    assert abs(dx) <= 1.0 and abs(dy) <= 1.0, (dx, dy)


def test_colour_bar_comes_and_goes_without_moving_the_image(qtbot, volumes):
    v = _shown_viewer(qtbot, volumes["cr"], 800, 500)
    rows, cols = v.volume.array.shape[1:3]
    before = (image_to_viewport(v, 0, 0), image_to_viewport(v, cols, rows))
    v.set_heatmap(0, np.linspace(0, 1, rows * cols, dtype=np.float32).reshape(rows, cols), "Grad-CAM test")
    qtbot.wait(20)
    assert v.colorbar.isVisible() and v.colorbar.opacity() == 1.0
    assert (image_to_viewport(v, 0, 0), image_to_viewport(v, cols, rows)) == before
    bar = v.colorbar.sceneBoundingRect()
    view = v.view.sceneBoundingRect()
    assert view.contains(bar) and bar.left() > view.center().x()  # over the right edge of the view
    # The right-hand text keeps clear of it.
    assert v.corners["br"].geometry().right() < bar.left()
    v.clear_heatmaps()
    qtbot.wait(20)
    assert not v.colorbar.isVisible()
    dx, dy = _image_centre_offset(v)
    assert abs(dx) <= 1.0 and abs(dy) <= 1.0


# ------------------------------------------------------------------------------------------------- 5. legibility
def test_overlay_text_is_legible_over_bright_anatomy(qtbot, volumes):
    v = _shown_viewer(qtbot, volumes["cr"], 640, 480)
    v.info = {"patient": "DOE, John\nID 12345\nBorn 1940-03-05, 64 y, M", "study": "2004-08-26 CHEST PA"}
    rows, cols = v.volume.array.shape[1:3]
    # Fill the view with the bright lower chest / abdomen of the MONOCHROME1 film.
    v.view.setRange(rect=v.image.mapRectToParent(QRectF(0.30 * cols, 0.80 * rows, 0.40 * cols, 0.12 * rows)),
                    padding=0)
    v.render()
    qtbot.wait(30)
    image_only = luminance(grab_viewport(v))
    with_text = luminance(qimage_to_rgb(v.graphics.grab().toImage()))
    for name in ("tl", "tr", "br"):
        label = v.corners[name]
        assert label.isVisible() and label.text()
        g = label.geometry()
        under = image_only[g.top():g.bottom() + 1, g.left():g.right() + 1]
        shown = with_text[g.top():g.bottom() + 1, g.left():g.right() + 1]
        assert under.mean() > 150, (name, under.mean())  # bright anatomy under the text
        # The box darkens what is under the text; the glyphs stand out against the box.
        assert shown.mean() < under.mean() - 60, (name, shown.mean(), under.mean())
        assert np.percentile(shown, 97) - np.percentile(shown, 30) > 90, name
    # Empty labels draw nothing (no dark smudges): nothing was read at the mouse yet.
    assert not v.readout.isVisible()


def test_dark_theme_check_and_radio_indicators_are_visible(qtbot):
    w = QWidget()
    w.setStyleSheet(style())
    lay = QVBoxLayout(w)
    boxes = [QCheckBox("unchecked"), QCheckBox("checked"), QRadioButton("radio off"), QRadioButton("radio on")]
    boxes[1].setChecked(True)
    boxes[3].setChecked(True)
    for b in boxes:
        lay.addWidget(b)
    qtbot.addWidget(w)
    w.resize(220, 160)
    w.show()
    qtbot.waitExposed(w)
    for b in boxes:
        shot = luminance(qimage_to_rgb(b.grab().toImage()))
        h = shot.shape[0]
        indicator = shot[:, : h + 2]  # the indicator sits at the left, about as wide as the row is high
        background = float(np.median(shot[:, -4:]))
        assert background < 45, (b.text(), background)
        # Its outline is well lighter than the background, unchecked as well as checked.
        assert indicator.max() - background > 90, (b.text(), indicator.max(), background)
        if b.isChecked():  # a filled box / dot
            assert (indicator > background + 60).sum() > 12, b.text()


# ------------------------------------------------------------------------------------------------- 5. windows
def _menu_for(qtbot, viewer):  # noqa: ANN001, ANN201
    from medviewer.ui.window_menu import WindowLevelMenu

    host = QMainWindow()
    qtbot.addWidget(host)
    menu = host.menuBar().addMenu("&Window/Level")
    bar = QToolBar()
    host.addToolBar(bar)
    wl = WindowLevelMenu(menu, bar, lambda: viewer)
    wl.watch(viewer)
    return host, menu, bar, wl


def _entries(wl) -> list[str]:  # noqa: ANN001
    return [a.text() for a in wl.choice_actions if not a.isSeparator()]


def _entry(wl, prefix: str):  # noqa: ANN001, ANN202
    found = [a for a in wl.choice_actions if a.text().startswith(prefix)]
    assert found, (prefix, _entries(wl))
    return found[0]


def test_ct_offers_presets_and_its_explained_windows(qtbot, ct_explained):
    from medviewer.imaging.voi import CT_PRESETS

    v = _shown_viewer(qtbot, load(ct_explained), 600, 500)
    assert v.state.window_source == "dicom" and (v.state.window.center, v.state.window.width) == (40, 400)
    assert "W 400  L 40 HU  (DICOM: 'ABDOMEN')" in v.corners["br"].text()
    host, menu, bar, wl = _menu_for(qtbot, v)
    names = _entries(wl)
    assert names[: len(CT_PRESETS)] == [f"{n} (W {w:g}, L {c:g})" for n, (c, w) in CT_PRESETS.items()]
    assert names[len(CT_PRESETS):] == ["DICOM: ABDOMEN (W 400, L 40)", "DICOM: LUNG (W 1500, L -600)"]
    assert [a.shortcut().toString() for a in wl.choice_actions if a.text().startswith("Bone")] == ["7"]
    assert _entry(wl, "DICOM: ABDOMEN").isChecked() and not wl.info_action.isVisible()

    _entry(wl, "DICOM: LUNG").trigger()
    assert (v.state.window.center, v.state.window.width, v.state.window_source) == (-600, 1500, "dicom")
    assert "(DICOM: 'LUNG')" in v.corners["br"].text() and _entry(wl, "DICOM: LUNG").isChecked()
    _entry(wl, "Lung").trigger()
    assert v.state.window_source == "preset" and "W 1500  L -600 HU  (preset: Lung)" in v.corners["br"].text()
    assert _entry(wl, "Lung").isChecked() and not _entry(wl, "DICOM: LUNG").isChecked()
    v.drag_window(v.state.window, 40, 0)
    assert v.state.window_source == "manual" and "(manual)" in v.corners["br"].text()
    assert not any(a.isChecked() for a in wl.choice_actions)
    wl.auto_action.trigger()
    assert v.state.window_source == "auto" and "(auto)" in v.corners["br"].text()
    assert wl.back_action.isEnabled()
    wl.back_action.trigger()
    assert (v.state.window.center, v.state.window.width, v.state.window_source) == (40, 400, "dicom")
    wl.invert_action.trigger()
    assert v.state.invert and wl.invert_action.isChecked()
    # The value readout is in HU.
    mouse_move(qtbot, v, viewport_center(v))
    assert v.readout.text().split(":")[1].split("(")[0].strip().endswith(" HU"), v.readout.text()


def test_cr_offers_no_ct_presets_and_keeps_its_window(qtbot, volumes):
    v = _shown_viewer(qtbot, volumes["cr"], 600, 500)
    assert v.state.window_source == "dicom" and (v.state.window.center, v.state.window.width) == (15000, 30000)
    assert "W 30000  L 15000  (DICOM window 1)" in v.corners["br"].text()  # CR values: no unit
    host, menu, bar, wl = _menu_for(qtbot, v)
    assert _entries(wl) == ["DICOM window 1 (W 30000, L 15000)"]
    assert wl.choice_actions[0].shortcut().toString() == "1"
    # Keys 1..8 pick the file's windows here; CT preset names do nothing by key.
    v.auto_window()
    v.setFocus()
    qtbot.keyClick(v, Qt.Key.Key_7)
    assert v.state.window_source == "auto"
    qtbot.keyClick(v, Qt.Key.Key_1)
    assert v.state.window_source == "dicom"
    v.auto_window()
    qtbot.keyClick(v, Qt.Key.Key_D)  # back to the DICOM window
    assert v.state.window_source == "dicom"
    mouse_move(qtbot, v, viewport_center(v))
    assert v.readout.text() and v.readout.text().split(":")[1].split("(")[0].strip().isdigit(), v.readout.text()
    # The menu shows (opens) with its entries.
    menu.popup(host.mapToGlobal(host.rect().center()))
    qtbot.wait(20)
    assert menu.isVisible()
    menu.close()


def test_mr_opens_with_the_automatic_window_and_offers_its_own(qtbot, volumes):
    v = _shown_viewer(qtbot, volumes["mr"], 500, 500)
    assert v.state.window_source == "auto" and "(auto)" in v.corners["br"].text()
    host, menu, bar, wl = _menu_for(qtbot, v)
    assert _entries(wl) == ["DICOM window 1 (W 2000, L 1000)"]
    wl.back_action.trigger()
    assert (v.state.window.center, v.state.window.width, v.state.window_source) == (1000, 2000, "dicom")
    # A small MR without any window: nothing to offer, said in words.
    v.set_volume(volumes["emri"])
    assert _entries(wl) == [] and wl.info_action.isVisible()
    assert "MR" in wl.info_action.text() and not wl.back_action.isEnabled()
    # Colour: no window at all.
    v.set_volume(volumes["us"])
    assert _entries(wl) == [] and "Colour" in wl.info_action.text()
    assert not wl.auto_action.isEnabled() and not wl.invert_action.isEnabled()


def test_menu_follows_the_active_viewport(qtbot, volumes, ct_explained):
    from medviewer.ui.layouts import ViewportGrid
    from medviewer.ui.window_menu import WindowLevelMenu

    host = QMainWindow()
    qtbot.addWidget(host)
    grid = ViewportGrid(host)
    host.setCentralWidget(grid)
    grid.set_layout("1x2")
    menu = QMenu("Window/Level", host)
    host.menuBar().addMenu(menu)
    wl = WindowLevelMenu(menu, None, lambda: grid.active)
    wl.follow(grid)
    host.resize(900, 500)
    host.show()
    qtbot.waitExposed(host)
    assert wl.info_action.text() == "No image in the active viewport"
    ct, cr = grid.viewers[0], grid.viewers[1]
    ct.set_volume(load(ct_explained))
    cr.set_volume(volumes["cr"])
    assert any(t.startswith("Lung") for t in _entries(wl))
    click(cr)
    assert grid.active is cr and _entries(wl) == ["DICOM window 1 (W 30000, L 15000)"]
    click(ct)
    assert _entries(wl)[0].startswith("Brain")
    # Another image in the active viewport rebuilds the entries.
    ct.set_volume(volumes["mr"])
    assert _entries(wl) == ["DICOM window 1 (W 2000, L 1000)"]
    ct.clear()
    assert _entries(wl) == [] and wl.info_action.isVisible()


def test_pet_values_in_bq_per_ml(qtbot, pet_bqml):
    v = _shown_viewer(qtbot, load(pet_bqml), 500, 500)
    assert v.value_units == "Bq/ml" and v.volume.units == "Bq/ml"
    assert v.state.window_source == "auto" and "Bq/ml  (auto)" in v.corners["br"].text()
    mouse_move(qtbot, v, viewport_center(v))
    text = v.readout.text()
    assert "Bq/ml" in text, text
    value = float(text.split(":")[1].split("Bq/ml")[0])
    i, j = (int(x) for x in text.replace("row", "").split(":")[0].split("col"))
    assert value == pytest.approx(float(v.volume.array[v.state.index, i, j]), abs=0.01)
