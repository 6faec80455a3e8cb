"""The pyqtgraph internals the annotation layer relies on, fenced: the only module of :mod:`medviewer.ui.annotations`
that touches a pyqtgraph attribute that is not public API.

Everything else in the package uses pyqtgraph's public API: documented classes, constructor arguments, signals,
the event hooks (``hoverEvent``, ``mouseDragEvent``, ``mouseClickEvent``, ``viewTransformChanged``) and methods
with public names (``ROI.movePoint``, ``ROI.setPos(update=, finish=)``, ``TextItem.updateTransform``,
``ViewBox.childTransform``...). What has no public equivalent is here, one function each:

``view_group(view)``
    ``ViewBox.childGroup``: the item whose children are the items of a view, in view coordinates.
    ``ViewBox.addItem`` / ``removeItem`` put an item there, but each also queues an auto-range update, which
    repaints the whole view; the layer moves the graphics of hundreds of annotations in and out of the view as
    images change (it parks those of images off screen), so it re-parents them itself.
``quiet_children(view)``
    ``ChildGroup.itemsChangedListeners``: the ViewBox listens to its child group and queues an auto-range
    update (a repaint of the whole view) for every child added or removed. Our items are all added with
    ``ignoreBounds``: they take no part in the auto-range, so the listeners are set aside while they come or go.
``set_handle_radius(roi, radius)``
    ``ROI.handleSize``: the radius (screen pixels) of the handles ``ROI.add*Handle`` makes; no constructor
    argument or setter.
``text_child(item)``
    ``TextItem.textItem``: the ``QGraphicsTextItem`` that lays out and draws a TextItem's text. The measurement
    labels hide it and paint it once into a pixmap (hundreds of labels relaid out on every repaint were half of
    the repaint).

The package was written against the versions in :data:`SUPPORTED_PYQTGRAPH` (pinned in pyproject.toml);
importing this module logs a warning when the installed pyqtgraph is outside that range.
``tests/ui/test_pg_adapter.py`` exercises each function on real items in a real (offscreen) view, so an upgrade
that changes one of these internals fails there first.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pyqtgraph as pg
from PySide6.QtWidgets import QGraphicsItem, QGraphicsTextItem

__all__ = [
    "SUPPORTED_PYQTGRAPH",
    "check_version",
    "quiet_children",
    "set_handle_radius",
    "supported",
    "text_child",
    "view_group",
]

log = logging.getLogger(__name__)

#: The pyqtgraph versions the internals above were checked against (a pip version specifier; the same string is
#: the pyqtgraph requirement in pyproject.toml).
SUPPORTED_PYQTGRAPH = ">=0.13.7,<0.15"
_LOWEST = (0, 13, 7)  # included
_BEYOND = (0, 15)  # excluded


def _release(version: str) -> tuple[int, ...]:
    """The release numbers of a version string: ``"0.14.1.dev0"`` -> ``(0, 14, 1)``."""
    m = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    return tuple(int(part) for part in m.group(1).split(".")) if m else ()


def supported(version: str) -> bool:
    """True when pyqtgraph ``version`` is inside :data:`SUPPORTED_PYQTGRAPH`."""
    release = _release(version)
    return bool(release) and _LOWEST <= release < _BEYOND


def check_version(version: str | None = None) -> bool:
    """Log a warning when pyqtgraph ``version`` (default: the installed one) is outside
    :data:`SUPPORTED_PYQTGRAPH`; True when inside."""
    version = str(pg.__version__) if version is None else version
    if supported(version):
        return True
    log.warning("pyqtgraph %s is outside the range the annotation tools were checked against (%s): measurements "
                "may draw, move or lay out wrongly", version, SUPPORTED_PYQTGRAPH)
    return False


def view_group(view: pg.ViewBox) -> QGraphicsItem:
    """The item whose children are ``view``'s items (in view coordinates): where ``view.addItem`` puts them."""
    return view.childGroup


@contextmanager
def quiet_children(view: pg.ViewBox) -> Iterator[None]:
    """Add or remove children of :func:`view_group` without the ViewBox repainting all of itself (to update an
    auto-range the items take no part in): Qt still repaints the area of each item that comes or goes. Only for
    items added with ``ignoreBounds=True`` (or never added through ``addItem``)."""
    group = view.childGroup
    listeners = getattr(group, "itemsChangedListeners", None)
    if listeners is None:  # another pyqtgraph: nothing to set aside (the view repaints, still correct)
        yield
        return
    group.itemsChangedListeners = []
    try:
        yield
    finally:
        group.itemsChangedListeners = listeners


def set_handle_radius(roi: pg.ROI, radius: float) -> None:
    """Make the handles ``roi`` adds from now on ``radius`` screen pixels in radius (call before adding them)."""
    roi.handleSize = radius


def text_child(item: pg.TextItem) -> QGraphicsTextItem:
    """The child item that lays out and draws the text of ``item``."""
    return item.textItem


check_version()
