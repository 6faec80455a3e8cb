"""How the annotation graphics look: colours, pens, fonts, sizes (in screen pixels) and stacking order.

Saturated yellow / cyan stay visible on any grey level; a dark outline under each mark keeps it visible over
bright (bone, contrast) pixels too; labels sit on a dark translucent box.
"""

from __future__ import annotations

import functools

import pyqtgraph as pg
from PySide6.QtGui import QColor, QFont, QPen

Color = tuple[int, ...]

NORMAL: Color = (255, 214, 0)
HOVER: Color = (255, 255, 150)
SELECTED: Color = (0, 225, 255)
HANDLE: Color = (245, 245, 245)
LABEL_TEXT: Color = (255, 236, 140)
LABEL_FILL: Color = (0, 0, 0, 165)

Z = 20.0  #: z value of the marks; text annotations are drawn over them, measurement labels over both
TEXT_Z = Z + 1
LABEL_Z = Z + 2
HANDLE_RADIUS = 4  #: screen pixels
SELECTED_BORDER_WIDTH = 1.5  #: screen pixels: the box of a selected text annotation
FONT_FAMILY = "DejaVu Sans"


def pen(color: Color, width: float = 2.0) -> QPen:
    """A cosmetic pen: ``width`` in screen pixels whatever the zoom."""
    return pg.mkPen(color, width=width)


def shadow(p: QPen) -> QPen:
    """A translucent black pen 2 px wider than ``p``, drawn under it."""
    out = QPen(p)
    out.setColor(QColor(0, 0, 0, 150))
    out.setWidthF(p.widthF() + 2.0)
    return out


@functools.cache
def mark_pens(look: str) -> tuple[QPen, QPen]:
    """(the dark outline, the pen) of a mark's ``look``: ``"normal"``, ``"hover"`` or ``"selected"``. Shared by
    every mark: do not modify them."""
    p = pen({"normal": NORMAL, "hover": HOVER, "selected": SELECTED}[look])
    return shadow(p), p


def label_font() -> QFont:
    """The font of measurement labels (made when needed: a QFont needs the QApplication)."""
    return QFont(FONT_FAMILY, 9)


def text_font() -> QFont:
    """The font of text annotations."""
    return QFont(FONT_FAMILY, 10, QFont.Weight.Bold)
