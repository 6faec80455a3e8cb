"""The pyqtgraph internals fenced in medviewer.ui.annotations.pg_adapter, checked against the installed pyqtgraph
with real items in a real (offscreen) view: an upgrade that changes one of them fails here."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPointF, QRectF
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QGraphicsRectItem, QGraphicsTextItem

from medviewer.ui.annotations import pg_adapter
from medviewer.ui.annotations.pg_adapter import (
    SUPPORTED_PYQTGRAPH,
    check_version,
    quiet_children,
    set_handle_radius,
    supported,
    text_child,
    view_group,
)


@pytest.fixture
def view(qtbot):
    """A shown 300 x 300 GraphicsLayoutWidget with one ViewBox over (0, 0)-(100, 100), y down as in the viewer."""
    w = pg.GraphicsLayoutWidget()
    qtbot.addWidget(w)
    vb = w.addViewBox()
    vb.invertY(True)
    vb.setAspectLocked(True)
    vb.setRange(QRectF(0, 0, 100, 100), padding=0)
    w.resize(300, 300)
    w.show()
    qtbot.waitExposed(w)
    qtbot.wait(20)
    yield vb  # (keeps the widget alive until the test ends)


def _render(vb) -> np.ndarray:  # noqa: ANN001
    """The scene of ``vb`` painted into an RGBA array."""
    scene = vb.scene()
    rect = scene.sceneRect()
    img = QImage(int(rect.width()), int(rect.height()), QImage.Format.Format_RGBA8888)
    img.fill(QColor(0, 0, 0, 255))
    p = QPainter(img)
    scene.render(p, QRectF(img.rect()), rect)
    p.end()
    return np.frombuffer(img.constBits(), np.uint8).reshape(img.height(), img.width(), 4).copy()


def test_installed_pyqtgraph_is_in_the_supported_range():
    assert check_version() is True, (pg.__version__, SUPPORTED_PYQTGRAPH)
    assert supported(pg.__version__)


def test_pyproject_pins_pyqtgraph_to_the_supported_range():
    tomllib = pytest.importorskip("tomllib")
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    assert [d for d in deps if d.split(">")[0].split("<")[0].split("=")[0].strip() == "pyqtgraph"] == [
        "pyqtgraph" + SUPPORTED_PYQTGRAPH]


def test_version_range_and_warning(caplog):
    assert [supported(v) for v in ("0.13.6", "0.13.7", "0.14.0", "0.14.1.dev0", "0.15.0", "1.0", "")] == [
        False, True, True, True, False, False, False]
    with caplog.at_level(logging.WARNING, logger=pg_adapter.__name__):
        assert check_version("0.14.0") is True
        assert not caplog.records
        assert check_version("0.15.1") is False
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and record.name == pg_adapter.__name__
    assert "0.15.1" in record.getMessage() and SUPPORTED_PYQTGRAPH in record.getMessage()


def test_view_group_is_where_add_item_puts_items_in_view_coordinates(view):
    item = QGraphicsRectItem(10, 20, 5, 5)
    view.addItem(item, ignoreBounds=True)
    group = view_group(view)
    assert item.parentItem() is group
    assert group.parentItem() is not None and group in view.childItems()
    # the group maps view coordinates to the scene as the ViewBox does
    for p in (QPointF(0, 0), QPointF(50, 25), QPointF(100, 100)):
        a, b = group.mapToScene(p), view.mapViewToScene(p)
        assert (a.x(), a.y()) == pytest.approx((b.x(), b.y()))
    # ... which is the ViewBox's public child transform followed by its scene transform
    assert group.sceneTransform() == view.childTransform() * view.sceneTransform()
    # an item re-parented there by hand is an item of the view: removeItem takes it out again
    other = QGraphicsRectItem(0, 0, 1, 1)
    view.scene().addItem(other)
    other.setParentItem(group)
    view.removeItem(other)
    assert other.parentItem() is None and other.scene() is None


def test_quiet_children_sets_aside_what_tells_the_view_about_children(view, monkeypatch):
    calls = []
    monkeypatch.setattr(view, "itemsChanged", lambda: calls.append(1))  # the ViewBox's listener method
    group = view_group(view)
    first, second, third = (QGraphicsRectItem(0, 0, 1, 1) for _ in range(3))
    for item in (first, second, third):
        view.scene().addItem(item)
    first.setParentItem(group)
    assert calls, "the ViewBox is no longer told about its children through the listeners quiet_children sets aside"
    calls.clear()
    with quiet_children(view):
        second.setParentItem(group)
        first.setParentItem(None)
    assert calls == []
    assert second.parentItem() is group
    third.setParentItem(group)  # the listeners are back
    assert calls


def test_set_handle_radius_sizes_the_handles_added_next(view, qtbot):
    widths = {}
    for radius in (4, 10):
        roi = pg.ROI((20, 20), (30, 30), movable=False, rotatable=False, resizable=False)
        set_handle_radius(roi, radius)
        handle = roi.addFreeHandle((0.5, 0.5))
        view.addItem(roi, ignoreBounds=True)
        qtbot.wait(20)
        r = handle.mapRectToScene(handle.boundingRect())  # scene = screen pixels here
        widths[radius] = r.width()
        assert radius <= r.width() <= 2 * radius + 0.5
    assert widths[10] == pytest.approx(2.5 * widths[4], rel=0.05)


def test_text_child_is_the_item_that_draws_the_text(view, qtbot):
    item = pg.TextItem("Lesion 1", color=(255, 255, 255), anchor=(0, 0))
    view.addItem(item, ignoreBounds=True)
    item.setPos(10, 10)
    child = text_child(item)
    assert isinstance(child, QGraphicsTextItem)
    assert child.parentItem() is item and child.toPlainText() == "Lesion 1"
    item.setText("L2")
    assert child.toPlainText() == "L2"
    # the TextItem's geometry is its text child's
    assert item.boundingRect() == child.mapRectToParent(child.boundingRect())
    qtbot.wait(20)
    shown = _render(view)
    child.setVisible(False)  # what the measurement labels do (they paint the child into a pixmap themselves)
    hidden = _render(view)
    child.setVisible(True)
    assert (shown[..., :3] > 128).any(axis=-1).sum() > 20
    assert (hidden[..., :3] > 128).any(axis=-1).sum() == 0
