"""The measurement label shown next to an annotation: a text box that stays the same size on screen and paints
from a pixmap made once per text."""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QPainter, QPixmap
from PySide6.QtWidgets import QStyleOptionGraphicsItem, QWidget

from medviewer.ui.annotations import style
from medviewer.ui.annotations.pg_adapter import text_child

__all__ = ["MeasurementLabel"]


class MeasurementLabel(pg.TextItem):
    """A measurement label: a pyqtgraph TextItem (same size on screen whatever the zoom, same geometry and text
    API) that paints a pixmap of its box and text, made once per text, instead of laying out and drawing its text
    on every repaint (with hundreds of labels on screen that was half of each repaint). Its top-left corner is at
    ``pos()``; it takes no mouse button."""

    def __init__(self) -> None:
        super().__init__("", color=style.LABEL_TEXT, anchor=(0, 0))  # no fill or border: they are in the pixmap
        self.setFont(style.label_font())
        self.setZValue(style.LABEL_Z)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)
        text_child(self).setVisible(False)  # drawn into the pixmap instead
        self._pix: tuple[float, QPixmap, QPointF] | None = None  # (device pixel ratio, pixmap, where)

    def setText(self, text: str, color: Any = None) -> None:  # noqa: N802, D102 - pyqtgraph override
        self.prepareGeometryChange()  # the text item is hidden: this item repaints where the old text was
        super().setText(text, color)
        self._pix = None
        self.update()

    def screen_size(self) -> tuple[float, float]:
        """(width, height) of the label on screen (scene coordinates): its text's, whatever the zoom."""
        self.updateTransform(force=True)  # (TextItem follows the view when it paints: maybe not yet)
        r = self.mapRectToScene(self.boundingRect())
        return r.width(), r.height()

    def _render(self, dpr: float) -> tuple[float, QPixmap, QPointF]:
        br = self.boundingRect()
        pix = QPixmap(max(1, math.ceil(br.width() * dpr)), max(1, math.ceil(br.height() * dpr)))
        pix.setDevicePixelRatio(dpr)
        pix.fill(Qt.GlobalColor.transparent)
        text = text_child(self)
        p = QPainter(pix)
        try:
            p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
            p.setRenderHint(QPainter.RenderHint.TextAntialiasing, True)
            p.translate(-br.topLeft())
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(pg.mkBrush(*style.LABEL_FILL))
            p.drawPolygon(text.mapToParent(text.boundingRect()))
            p.translate(text.pos())
            opt = QStyleOptionGraphicsItem()
            opt.exposedRect = text.boundingRect()
            text.paint(p, opt, None)  # type: ignore[arg-type]  # (Qt's widget argument is optional)
        finally:
            p.end()
        return dpr, pix, br.topLeft()

    def paint(self, p: QPainter, opt: QStyleOptionGraphicsItem | None = None,  # noqa: D102 - Qt override
              widget: QWidget | None = None) -> None:
        super().paint(p, opt, widget)  # TextItem's: follows the view's transform (draws nothing: no fill, border)
        dpr = widget.devicePixelRatioF() if widget is not None else p.device().devicePixelRatioF()
        if self._pix is None or self._pix[0] != dpr:
            self._pix = self._render(dpr)
        p.drawPixmap(self._pix[2], self._pix[1])
