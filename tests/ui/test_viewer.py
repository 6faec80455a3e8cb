"""The viewer window driven by real Qt events (pytest-qt, offscreen), checked against values computed here with
pydicom/numpy, never with medviewer's own code.

Real data: the 140-slice Philips phantom CT (../shared/data), pydicom-data's MONOCHROME1 chest CR, RGB ultrasound
and 10-frame enhanced MR.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PySide6.QtCore import QEvent, QPointF, QRectF, Qt
from PySide6.QtGui import QAction, QImage
from ui_helpers import (
    LOAD_TIMEOUT_MS,
    drop_stack,
    grab_viewport,
    image_to_viewport,
    mouse_drag,
    mouse_move,
    qimage_to_rgb,
    screen_box,
    send_mouse,
    send_wheel,
    viewport_center,
    wait_idle,
)

ROOT = Path(__file__).resolve().parents[2]

READOUT = re.compile(r"row (\d+) col (\d+): (-?\d+(?:\.\d+)?) HU\s+\((-?\d+\.\d), (-?\d+\.\d), (-?\d+\.\d)\) mm")


# ------------------------------------------------------------------------------------------------- references
def hu_of(ds: pydicom.Dataset) -> np.ndarray:
    """Modality values of a single-frame CT computed here: pixel_array * RescaleSlope + RescaleIntercept."""
    return ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))


def first_value(v) -> float:  # noqa: ANN001 - DS or multi-valued DS
    return float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)


def linear_grey(values: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window to 0..255 (float), inverted afterwards for MONOCHROME1 / invert."""
    x = np.asarray(values, dtype=np.float64)
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = np.where(x <= lo, 0.0, np.where(x > hi, 1.0, (x - (center - 0.5)) / (width - 1) + 0.5))
    return 255.0 * ((1.0 - y) if invert else y)


def lps_of(ds: pydicom.Dataset, i: int, j: int) -> np.ndarray:
    """LPS mm of the centre of pixel (row i, column j): IPP + j * col spacing * row cosines + i * row spacing *
    column cosines (PS3.3 C.7.6.2.1.1)."""
    ipp = np.array([float(v) for v in ds.ImagePositionPatient])
    iop = np.array([float(v) for v in ds.ImageOrientationPatient])
    row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
    return ipp + j * col_spacing * iop[:3] + i * row_spacing * iop[3:]


def action(win, text_prefix: str) -> QAction:  # noqa: ANN001
    found = [a for a in win.findChildren(QAction) if a.text().replace("&", "").startswith(text_prefix)]
    assert found, f"no action starting with {text_prefix!r}"
    return found[0]


def tree_items(tree):  # noqa: ANN001, ANN201
    stack = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    while stack:
        item = stack.pop(0)
        yield item
        stack.extend(item.child(i) for i in range(item.childCount()))


def window_of(viewer) -> tuple[float, float]:  # noqa: ANN001
    w = viewer.state.window
    return (w.center, w.width)


# ------------------------------------------------------------------------------------------------- 1. open
def test_open_philips_lists_series_and_skipped_license(open_window, philips_path, philips_reference):
    from medviewer.ui.browser import KEY_ROLE

    # Independently: the files pydicom reads as images, and those it cannot read as DICOM at all.
    ds0 = philips_reference[0][1]
    n_images = len(philips_reference)
    assert n_images == 140
    not_dicom = []
    for p in sorted(philips_path.iterdir()):
        try:
            pydicom.dcmread(p, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            not_dicom.append(p.name)
    assert not_dicom == ["LICENSE"]

    win = open_window(philips_path)
    assert win.viewer.volume.array.shape == (n_images, ds0.Rows, ds0.Columns)

    tree = win.browser.tree
    series_items = [it for it in tree_items(tree) if it.data(0, KEY_ROLE)]
    assert len(series_items) == 1
    item = series_items[0]
    assert not item.isHidden()
    assert item.text(3) == str(n_images)
    assert item.text(1) == ds0.Modality
    assert str(ds0.SeriesNumber) in item.text(0) and ds0.SeriesDescription in item.text(0)
    assert f"{n_images} images" in item.toolTip(0)

    tops = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())]
    skipped = [t for t in tops if t.text(0).startswith("Skipped files")]
    assert len(skipped) == 1 and not skipped[0].isHidden()
    assert skipped[0].text(0) == f"Skipped files ({len(not_dicom)})"
    children = [skipped[0].child(i) for i in range(skipped[0].childCount())]
    assert [c.text(0).split(":", 1)[0] for c in children] == not_dicom
    reason = children[0].text(0).split(":", 1)[1].strip()
    assert "DICOM" in reason, reason
    assert str(philips_path / "LICENSE") in children[0].toolTip(0) and reason in children[0].toolTip(0)
    # The user can open the group and see it.
    skipped[0].setExpanded(True)
    tree.scrollToItem(children[0])
    assert not children[0].isHidden() and tree.visualItemRect(children[0]).height() > 0


# ------------------------------------------------------------------------------------------------- 2. slices
def test_wheel_and_keys_move_slices(open_window, philips_path, philips_reference, qtbot):
    win = open_window(philips_path)
    v = win.viewer
    n = len(philips_reference)
    start = v.state.index
    assert start == n // 2  # set_volume: "from its middle slice"

    send_wheel(v, -120)  # one notch towards the user: next slice
    assert v.state.index == start + 1
    send_wheel(v, +120)
    send_wheel(v, +120)  # away from the user: previous slice
    assert v.state.index == start - 1
    assert f"Slice {start}/{n}" in v.corners["bl"].text()

    # Ctrl+wheel zooms and leaves the slice alone.
    before = v.view.viewRange()
    send_wheel(v, +120, modifiers=Qt.KeyboardModifier.ControlModifier)
    assert v.state.index == start - 1
    assert v.view.viewRange() != before

    v.setFocus()
    for key, step in [(Qt.Key.Key_Down, 1), (Qt.Key.Key_Right, 1), (Qt.Key.Key_Up, -1), (Qt.Key.Key_Left, -1),
                      (Qt.Key.Key_PageDown, 10), (Qt.Key.Key_PageUp, -10)]:
        before_index = v.state.index
        qtbot.keyClick(v, key)
        assert v.state.index == before_index + step, key

    # Home/End and clamping at both ends (keys and wheel).
    qtbot.keyClick(v, Qt.Key.Key_Home)
    assert v.state.index == 0
    for key in (Qt.Key.Key_Up, Qt.Key.Key_PageUp):
        qtbot.keyClick(v, key)
        assert v.state.index == 0
    send_wheel(v, +120)
    assert v.state.index == 0
    qtbot.keyClick(v, Qt.Key.Key_End)
    assert v.state.index == n - 1
    for key in (Qt.Key.Key_Down, Qt.Key.Key_PageDown):
        qtbot.keyClick(v, key)
        assert v.state.index == n - 1
    send_wheel(v, -120)
    assert v.state.index == n - 1

    # What is on screen is that slice: the first and last files by position along the normal, in the file's
    # own DICOM window.
    ds = philips_reference[0][1]
    c, w = first_value(ds.WindowCenter), first_value(ds.WindowWidth)
    assert window_of(v) == (c, w)
    for key, k in ((Qt.Key.Key_End, n - 1), (Qt.Key.Key_Home, 0)):
        qtbot.keyClick(v, key)
        expected = linear_grey(hu_of(philips_reference[k][1]), c, w)
        assert np.abs(v.image.image.astype(np.float64) - expected).max() <= 1.0, k


# ------------------------------------------------------------------------------------------------- 3. drag W/L
def test_right_drag_changes_width_and_level(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    v = win.viewer
    c0, w0 = window_of(v)

    # Right = wider; drag_window: width + dx * width / 256 * 2, level unchanged.
    mouse_drag(qtbot, v, 64, 0)
    c1, w1 = window_of(v)
    assert c1 == pytest.approx(c0)
    assert w1 == pytest.approx(w0 + 64 * w0 / 256 * 2)
    assert f"W {w1:.0f}  L {c1:.0f}" in v.corners["br"].text()

    # Down = higher level: level + dy * width / 256, width unchanged.
    mouse_drag(qtbot, v, 0, 32)
    c2, w2 = window_of(v)
    assert w2 == pytest.approx(w1)
    assert c2 == pytest.approx(c1 + 32 * w1 / 256)

    # Left and up: narrower and lower.
    mouse_drag(qtbot, v, -40, -20)
    c3, w3 = window_of(v)
    assert w3 < w2 and c3 < c2

    # Left-drag pans; the window stays.
    before = v.view.viewRange()
    mouse_drag(qtbot, v, 50, 30, button=Qt.MouseButton.LeftButton)
    assert window_of(v) == (c3, w3)
    assert v.view.viewRange() != before


# ------------------------------------------------------------------------------------------------- 4. presets
def test_presets_by_key_and_menu(open_window, philips_path, philips_reference, qtbot):
    win = open_window(philips_path)
    v = win.viewer
    v.setFocus()
    hu = hu_of(philips_reference[v.state.index][1])

    qtbot.keyClick(v, Qt.Key.Key_7)
    assert window_of(v) == (480.0, 2500.0)
    assert "W 2500  L 480 HU  (preset: Bone)" in v.corners["br"].text()
    assert np.abs(v.image.image.astype(np.float64) - linear_grey(hu, 480, 2500)).max() <= 1.0

    qtbot.keyClick(v, Qt.Key.Key_1)
    assert window_of(v) == (40.0, 80.0)
    assert np.abs(v.image.image.astype(np.float64) - linear_grey(hu, 40, 80)).max() <= 1.0

    action(win, "Lung").trigger()
    assert window_of(v) == (-600.0, 1500.0)
    action(win, "Bone").trigger()
    assert window_of(v) == (480.0, 2500.0)


# ------------------------------------------------------------------------------------------------- 5. readout
def _distinct_pixel(hu: np.ndarray) -> tuple[int, int]:
    """A pixel inside the phantom whose value differs from all 8 neighbours (so an off-by-one shows)."""
    for i in range(240, 360, 3):
        for j in range(280, 400, 3):
            block = hu[i - 1:i + 2, j - 1:j + 2]
            if hu[i, j] > -500 and np.count_nonzero(block == hu[i, j]) == 1:
                return i, j
    raise AssertionError("no distinct pixel found")


def test_value_readout_shows_row_col_hu_and_lps(open_window, philips_path, philips_reference, qtbot):
    win = open_window(philips_path)
    v = win.viewer
    v.setFocus()
    qtbot.keyClick(v, Qt.Key.Key_Home)
    qtbot.keyClick(v, Qt.Key.Key_PageDown)
    qtbot.keyClick(v, Qt.Key.Key_PageDown)
    k = v.state.index
    assert k == 20
    ds = philips_reference[k][1]
    hu = hu_of(ds)
    i, j = _distinct_pixel(hu)
    expected_lps = lps_of(ds, i, j)

    # Zoom so one image pixel spans many screen pixels, then point at several places inside pixel (i, j).
    v.view.setRange(rect=v.image.mapRectToParent(QRectF(j - 4, i - 4, 9, 9)), padding=0)
    qtbot.wait(10)
    assert image_to_viewport(v, j + 1, i).x() - image_to_viewport(v, j, i).x() > 20
    for fx, fy in [(0.5, 0.5), (0.2, 0.2), (0.8, 0.8), (0.8, 0.2), (0.2, 0.8)]:
        mouse_move(qtbot, v, image_to_viewport(v, j + fx, i + fy))
        text = v.readout.text()
        m = READOUT.search(text)
        assert m, text
        assert (int(m.group(1)), int(m.group(2))) == (i, j), (fx, fy, text)
        assert float(m.group(3)) == pytest.approx(hu[i, j]), text
        shown = np.array([float(m.group(n)) for n in (4, 5, 6)])
        assert np.abs(shown - expected_lps).max() <= 0.051, (text, expected_lps)

    # Off the image the readout is cleared.
    qtbot.keyClick(v, Qt.Key.Key_F)
    v.view.scaleBy((1.5, 1.5))  # zoom out so that black margins surround the image whatever the viewport shape
    qtbot.wait(10)  # pyqtgraph applies the new range when it prepares the next paint
    left_edge = image_to_viewport(v, 0, 0).x()
    assert left_edge > 10
    mouse_move(qtbot, v, QPointF(left_edge / 2, viewport_center(v).y()))
    assert v.readout.text() == ""


# ------------------------------------------------------------------------------------------------- 6. MONOCHROME1
def test_monochrome1_chest_cr_dark_lungs_bright_border_and_invert(open_window, pydicom_data, qtbot):
    path = pydicom_data("RG1_UNCI.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    values = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    c, w = first_value(ds.WindowCenter), first_value(ds.WindowWidth)
    expected = linear_grey(values, c, w, invert=True)  # MONOCHROME1: minimum value white
    rows, cols = values.shape
    half = int(0.03 * min(rows, cols))

    def around(fx: float, fy: float) -> tuple[int, int, int, int]:
        r, cc = int(fy * rows), int(fx * cols)
        return r - half, r + half, cc - half, cc + half

    boxes = {
        "lung_right": around(0.35, 0.40),  # patient's right lung, left of the image
        "lung_left": around(0.65, 0.40),
        "mediastinum": around(0.50, 0.40),
        "border_top": (0, int(0.007 * rows), int(0.70 * cols), int(0.80 * cols)),  # collimated, unexposed
        "border_right": (int(0.40 * rows), int(0.60 * rows), cols - int(0.01 * cols), cols),
    }
    exp = {name: float(expected[r0:r1, c0:c1].mean()) for name, (r0, r1, c0, c1) in boxes.items()}
    # Sanity of the regions themselves (pydicom only).
    assert max(exp["lung_right"], exp["lung_left"]) < exp["mediastinum"] - 20
    assert min(exp["border_top"], exp["border_right"]) > max(exp["lung_right"], exp["lung_left"]) + 20

    win = open_window(path)
    v = win.viewer
    assert np.abs(v.image.image.astype(np.float64) - expected).max() <= 1.0

    def rendered() -> dict[str, float]:
        shot = grab_viewport(v).astype(np.float64).mean(axis=2)
        out = {}
        for name, (r0, r1, c0, c1) in boxes.items():
            ys, xs = screen_box(v, r0, r1, c0, c1)
            region = shot[ys, xs]
            assert region.size >= 9, name
            out[name] = float(region.mean())
        return out

    got = rendered()
    for name in boxes:
        assert got[name] == pytest.approx(exp[name], abs=8), (name, got, exp)
    lungs = max(got["lung_right"], got["lung_left"])
    assert lungs < got["mediastinum"] - 20, got
    assert min(got["border_top"], got["border_right"]) > max(lungs + 20, 180), got

    v.setFocus()
    qtbot.keyClick(v, Qt.Key.Key_I)
    assert v.state.invert and "Inverted" in v.corners["br"].text()
    inv = rendered()
    for name in boxes:
        assert inv[name] == pytest.approx(255 - exp[name], abs=8), (name, inv, exp)
    assert min(inv["lung_right"], inv["lung_left"]) > inv["mediastinum"] + 20, inv
    assert max(inv["border_top"], inv["border_right"]) < 75, inv

    action(win, "Invert").trigger()
    assert not v.state.invert
    assert rendered()["lung_right"] == pytest.approx(got["lung_right"], abs=1)


# ------------------------------------------------------------------------------------------------- 7. layouts
def test_2x2_layout_drop_series_on_viewport_2_independent_slices(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    action(win, "Layout 2x2").trigger()
    qtbot.wait(20)
    viewers = win.grid.viewers
    visible = [x for x in viewers if x.isVisible()]
    assert len(visible) == 4
    geoms = [x.geometry() for x in visible]
    assert len({g.x() for g in geoms}) == 2 and len({g.y() for g in geoms}) == 2
    assert all(g.width() > 100 and g.height() > 100 for g in geoms)
    assert all(not a.intersects(b) for n, a in enumerate(geoms) for b in geoms[n + 1:])
    assert viewers[1].volume is None and viewers[1].message.text() == "Drop a series here"

    v0, v1 = viewers[0], viewers[1]
    (key,) = list(win.browser.entries)
    assert drop_stack(v1, key)
    assert win.grid.active is v1
    wait_idle(qtbot, win)
    assert v1.volume is not None and v1.volume is not v0.volume
    assert v1.volume.array.shape == v0.volume.array.shape and v1.volume.ready.all()
    assert not v1.message.isVisible()

    start = v0.state.index
    for _ in range(3):
        send_wheel(v1, -120)
    assert (v0.state.index, v1.state.index) == (start, start + 3)
    v1.setFocus()
    qtbot.keyClick(v1, Qt.Key.Key_Home)
    assert (v0.state.index, v1.state.index) == (start, 0)
    send_wheel(v0, +120)
    assert (v0.state.index, v1.state.index) == (start - 1, 0)

    # A click makes a viewport the active one (keyboard and presets act on it).
    vp0 = v0.graphics.viewport()
    send_mouse(vp0, QEvent.Type.MouseButtonPress, viewport_center(v0), Qt.MouseButton.LeftButton,
               Qt.MouseButton.LeftButton)
    send_mouse(vp0, QEvent.Type.MouseButtonRelease, viewport_center(v0), Qt.MouseButton.LeftButton,
               Qt.MouseButton.NoButton)
    assert win.grid.active is v0 and win.viewer is v0
    action(win, "Bone").trigger()
    assert window_of(v0) == (480.0, 2500.0) and window_of(v1) != (480.0, 2500.0)

    # Hidden viewports keep their series and slice.
    action(win, "Layout 1x1").trigger()
    assert v0.isVisible() and not v1.isVisible()
    action(win, "Layout 2x2").trigger()
    assert v1.isVisible() and v1.volume is not None
    assert (v0.state.index, v1.state.index) == (start - 1, 0)


# ------------------------------------------------------------------------------------------------- 8. cancel/close
def test_cancel_load_leaves_window_usable(open_window, philips_path, qtbot):
    win = open_window(philips_path)
    v = win.viewer
    shown = v.volume
    (key,) = list(win.browser.entries)

    win.open_stack(key)
    assert win.browser.cancel_button.isVisible()
    qtbot.mouseClick(win.browser.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: win.runner.active_count() == 0, timeout=LOAD_TIMEOUT_MS)
    qtbot.wait(50)  # deliver whatever the cancelled job queued
    assert win.runner.active_count() == 0
    assert not win.browser.progress.isVisible() and not win.browser.cancel_button.isVisible()
    assert v.volume is shown and v.volume.ready.all()  # the cancelled load never replaced what is shown

    # Still usable: the wheel works and the series opens again (double-click in the browser).
    index = v.state.index
    send_wheel(v, -120)
    assert v.state.index == index + 1
    tree = win.browser.tree
    item = win.browser.items[key]
    tree.scrollToItem(item)
    activated = []
    win.browser.stack_activated.connect(activated.append)
    at = tree.visualRect(tree.indexFromItem(item, 0)).center()
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=at)  # a double-click starts with a press
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert activated == [key]  # opened once, not once per itemActivated and itemDoubleClicked
    qtbot.waitUntil(lambda: v.volume is not shown, timeout=LOAD_TIMEOUT_MS)
    wait_idle(qtbot, win)
    assert v.volume.ready.all() and v.volume.array.shape[0] == 140


def test_cancel_during_first_load_then_reopen(qtbot, philips_path):
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    with qtbot.waitSignal(win.first_image_painted, timeout=LOAD_TIMEOUT_MS):
        win.open_path(str(philips_path))
    win.loader.cancel()
    qtbot.waitUntil(lambda: win.runner.active_count() == 0, timeout=LOAD_TIMEOUT_MS)
    qtbot.wait(50)
    assert win.runner.active_count() == 0 and not win.browser.progress.isVisible()
    (key,) = list(win.browser.entries)
    win.open_stack(key)
    wait_idle(qtbot, win)
    assert win.viewer.volume.ready.all() and win.viewer.volume.array.shape[0] == 140
    win.close()
    assert win.runner.active_count() == 0


@pytest.mark.parametrize("when", ["scanning", "scan-result-queued", "loading"])
def test_close_while_busy_stops_every_worker(qtbot, qtlog, philips_path, when):
    from medviewer.ui.main_window import MainWindow

    win = MainWindow()  # not given to qtbot: it is deleted here
    win.show()
    try:
        if when == "loading":
            with qtbot.waitSignal(win.first_image_painted, timeout=LOAD_TIMEOUT_MS):
                win.open_path(str(philips_path))
        else:
            win.open_path(str(philips_path))
            if when == "scan-result-queued":
                # The scan finished but its result has not reached the GUI thread yet (no events processed).
                deadline = time.monotonic() + LOAD_TIMEOUT_MS / 1000
                while not win.runner.latest("scan").done and time.monotonic() < deadline:
                    time.sleep(0.005)
                assert win.runner.latest("scan").done
        loads_before = {k: j for k, j in win.runner.kinds().items() if k.startswith(("scan", "load"))}
        win.close()
        assert win.runner.active_count() == 0
        qtbot.wait(300)  # deliver everything the workers queued before they stopped
        assert win.runner.active_count() == 0
        loads_after = {k: j for k, j in win.runner.kinds().items() if k.startswith(("scan", "load"))}
        assert loads_after == loads_before, "a load was started after the window closed"
    finally:
        win.close()
        win.deleteLater()
        qtbot.wait(20)
    destroyed = [r.message for r in qtlog.records if "QThread: Destroyed" in r.message]
    assert not destroyed


# ------------------------------------------------------------------------------------------------- 9. colour, frames
def test_rgb_ultrasound_is_shown_in_colour(open_window, pydicom_data):
    path = pydicom_data("US1_UNCR.dcm")
    ds = pydicom.dcmread(path)
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    rgb = ds.pixel_array.astype(np.float64)
    spread = rgb.max(axis=2) - rgb.min(axis=2)
    # The most colourful 32x32 block (pydicom only).
    block = 32
    best = max(((spread[r:r + block, c:c + block].mean(), r, c)
                for r in range(0, rgb.shape[0] - block, 16) for c in range(0, rgb.shape[1] - block, 16)))
    _, r, c = best
    exp = rgb[r:r + block, c:c + block].reshape(-1, 3).mean(axis=0)
    assert exp.max() - exp.min() > 40

    win = open_window(path)
    v = win.viewer
    assert v.volume.is_color and v.volume.array.shape == (1, ds.Rows, ds.Columns, 3)
    shot = grab_viewport(v).astype(np.float64)
    ys, xs = screen_box(v, r, r + block, c, c + block)
    got = shot[ys, xs].reshape(-1, 3).mean(axis=0)
    assert np.abs(got - exp).max() <= 10, (got, exp)
    assert got.max() - got.min() > 40, got  # the channels differ: colour on screen

    # Over the whole image, about as many strongly coloured pixels as in the file.
    ys, xs = screen_box(v, 0, ds.Rows, 0, ds.Columns)
    area = shot[ys, xs]
    frac_shown = float(((area.max(axis=2) - area.min(axis=2)) > 60).mean())
    frac_file = float((spread > 60).mean())
    assert frac_file > 0.02
    assert frac_shown == pytest.approx(frac_file, abs=0.02)


def test_multiframe_wheel_moves_through_frames(open_window, pydicom_data):
    path = pydicom_data("emri_small.dcm")
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.astype(np.float64)
    n = int(ds.NumberOfFrames)
    assert frames.shape[0] == n == 10

    win = open_window(path)
    v = win.viewer
    assert v.volume.array.shape[0] == n

    def shown_frame() -> int:
        img = v.image.image.astype(np.float64).ravel()
        corr = [np.corrcoef(img, f.ravel())[0, 1] for f in frames]
        best = int(np.argmax(corr))
        assert corr[best] > 0.99, corr
        return best

    assert shown_frame() == v.state.index == n // 2
    send_wheel(v, -120)
    assert v.state.index == n // 2 + 1 and shown_frame() == n // 2 + 1
    for _ in range(n + 2):  # past the last frame: stays there
        send_wheel(v, -120)
    assert v.state.index == n - 1 and shown_frame() == n - 1
    for _ in range(n - 1):
        send_wheel(v, +120)
    assert v.state.index == 0 and shown_frame() == 0
    assert f"Slice 1/{n}" in v.corners["bl"].text()


# ------------------------------------------------------------------------------------------------- 10. CLI
@pytest.mark.parametrize("which", ["philips", "chest-cr"])
def test_cli_open_screenshot_writes_a_nonblank_png(request, tmp_path, which):
    if which == "philips":
        path = request.getfixturevalue("philips_path")
    else:
        path = request.getfixturevalue("pydicom_data")("RG1_UNCI.dcm")
    shot = tmp_path / f"{which}.png"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", MEDVIEWER_DATA_DIR=str(tmp_path / "data"),
               XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run([sys.executable, "-m", "medviewer", "open", str(path), "--screenshot", str(shot)],
                          env=env, cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file()
    if os.environ.get("MEDVIEWER_UI_SHOTS_DIR"):  # keep a copy to look at
        out = Path(os.environ["MEDVIEWER_UI_SHOTS_DIR"])
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / shot.name)

    image = QImage(str(shot))
    assert not image.isNull() and image.width() >= 800 and image.height() >= 600
    grey = qimage_to_rgb(image).astype(np.float64).mean(axis=2)
    h, w = grey.shape
    # The viewport lies between the browser dock (left) and the AI dock (right), below the two toolbars and above
    # the worklist dock; the image is where it is not black.
    view = grey[int(0.11 * h):int(0.74 * h), int(0.3 * w):int(0.74 * w)]
    lit = view > 8
    rows = np.nonzero(lit.mean(axis=1) > 0.05)[0]
    cols = np.nonzero(lit.mean(axis=0) > 0.05)[0]
    assert rows.size > 0.3 * view.shape[0] and cols.size > 0.3 * view.shape[1]
    area = view[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    assert (area < 100).mean() > 0.005, "no dark pixels in the image area"
    assert (area > 200).mean() > 0.05, "no bright pixels in the image area"


def test_an_unreadable_slice_stays_as_a_gap_with_its_reason(open_window, ge_dir, tmp_path, qtbot):
    """A slice whose compressed pixels cannot be decoded keeps its place in the series; showing it says why."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless

    files = sorted(p for p in ge_dir.iterdir() if p.suffix == ".dcm")[:5]
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    bad = tmp_path / files[2].name
    ds = pydicom.dcmread(bad)
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"\x00" * 64])  # a J2K start marker, then nothing usable
    ds["PixelData"].VR = "OB"
    ds.save_as(bad, enforce_file_format=True)
    win = open_window(tmp_path)
    v = win.viewer
    [err] = v.volume.slice_errors
    assert Path(err.path).name == bad.name and v.volume.array.shape[0] == 5
    v.set_slice(err.index)
    qtbot.wait(20)
    assert v.message.isVisible() and f"Slice {err.index + 1} not readable" in v.message.text()
    v.set_slice((err.index + 1) % 5)
    qtbot.wait(20)
    assert not v.message.isVisible()


def test_screenshot_with_nothing_to_show_exits_with_an_error(tmp_path):
    """`open --screenshot` on a folder without images (or with no path) says so and exits 1 at once."""
    (tmp_path / "notes.txt").write_text("no DICOM here")
    out = tmp_path / "shot.png"
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "medviewer", "open", str(tmp_path), "--screenshot", str(out)],
                         capture_output=True, text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert res.returncode == 1 and "no image to show" in res.stderr and not out.exists()
    assert time.monotonic() - t0 < 60  # not the 120 s timeout
    res = subprocess.run([sys.executable, "-m", "medviewer", "--screenshot", str(out)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert res.returncode == 1 and "nothing to show" in res.stderr and not out.exists()


@pytest.mark.skipif(shutil.which("Xvfb") is None, reason="Xvfb is not installed (Debian: xvfb)")
def test_the_app_starts_on_a_real_x_display_with_the_xcb_plugin(tmp_path):
    """The README's run command on an X display: the xcb platform plugin loads (its libraries, libxcb-cursor0 and
    friends, are what packaging/bootstrap.sh installs) and the sample study is painted."""
    display = None
    proc = None
    for n in range(90, 110):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            display = f":{n}"
            proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            break
    assert proc is not None
    try:
        for _ in range(100):
            if Path(f"/tmp/.X11-unix/X{display[1:]}").exists():
                break
            time.sleep(0.05)
        out = tmp_path / "xcb.png"
        env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
        env.update(QT_QPA_PLATFORM="xcb", DISPLAY=display)
        res = subprocess.run([sys.executable, "-m", "medviewer", "--sample", "--screenshot", str(out)],
                             capture_output=True, text=True, timeout=180, env=env)
        assert res.returncode == 0, res.stderr[-800:]
        img = QImage(str(out))
        assert not img.isNull() and img.width() > 400 and img.height() > 300
    finally:
        proc.terminate()
        proc.wait(10)
