"""The image viewport: one stack shown through the core's VOI maths, with slice/window/level interaction.

State (slice index, window and where it came from, invert) lives in :class:`ViewerState` (or the session's
``ViewState``, which has the same fields); widgets and keys change it and the viewport re-renders the current slice
on the GUI thread (a 512x512 slice maps to 8-bit in about a millisecond).

Windows are modality-aware (:func:`medviewer.imaging.voi.window_choices`): CT presets on CT only, the file's
windows by their explanation, the automatic window; the overlay says which one is shown and in which unit the
values are (:func:`medviewer.io.display.window_caption`, :func:`medviewer.io.display.value_units`).
"""

from __future__ import annotations

import logging


import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, QTimer, Signal
from PySide6.QtGui import QFont, QFontMetrics
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

from medviewer.imaging.geometry import patient_orientation_labels, screen_orientation_labels
from medviewer.imaging.voi import (
    CT_PRESETS,
    Window,
    WindowChoice,
    auto_window,
    default_window_source,
    display_safe,
    window_choices,
)
from medviewer.imaging.volume import Volume
from medviewer.io.display import format_value, read_value_units, window_caption
from medviewer.session import ViewState
from medviewer.ui.ai_panel import heat_lut
from medviewer.ui.annotations import AnnotationLayer

pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)

log = logging.getLogger(__name__)


#: Overlay text style: light text on a translucent dark box, legible over bright anatomy (a CR's collimation,
#: bone, contrast) as over the black background.
LABEL_STYLE = ("color: %s; background-color: rgba(0, 0, 0, 175); border-radius: 3px; padding: 1px 4px;")

#: Where a shown window came from (``ViewerState.window_source``).
WINDOW_SOURCES = ("dicom", "preset", "auto", "manual")


ViewerState = ViewState
"""What the viewport shows and how (slice index, VOI window and its source, VOI LUT, invert): the session's
:class:`medviewer.session.ViewState`. A viewer made on its own renders a fresh one; in the window the viewer
renders the very object its session viewport holds (``medviewer.ui.viewports.ViewportBinding``)."""


class _ViewBox(pg.ViewBox):
    """Wheel changes slice (ctrl-wheel zooms), right-drag changes window/level, left-drag pans."""

    def __init__(self, viewer: "ImageViewer"):
        super().__init__(invertY=True, lockAspect=True, enableMenu=False)
        self.viewer = viewer
        self.setMouseMode(pg.ViewBox.PanMode)

    def wheelEvent(self, ev, axis=None):  # noqa: N802, ANN001 - Qt override
        if ev.modifiers() & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        delta = ev.delta() if hasattr(ev, "delta") else ev.angleDelta().y()
        self.viewer.step_slice(-1 if delta > 0 else 1)
        ev.accept()

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802, ANN001 - Qt override
        if self.viewer.annotations.view_drag(ev):  # an annotation tool is active: left-drag draws
            return
        if ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            if ev.isStart():
                self.viewer._drag_origin = self.viewer.state.window or self.viewer.current_window()
            start = self.viewer._drag_origin
            if start is None:
                return
            d = ev.screenPos() - ev.buttonDownScreenPos()
            self.viewer.drag_window(start, d.x(), d.y())
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):  # noqa: N802, ANN001 - Qt override
        if not self.viewer.annotations.view_click(ev):  # angle/text clicks with a tool; deselect without
            super().mouseClickEvent(ev)


class ImageViewer(QWidget):
    """Shows one :class:`~medviewer.imaging.volume.Volume`; emits ``changed`` when slice or window change and
    ``image_changed`` when another volume is shown (or none): the window menu rebuilds its entries on it."""

    changed = Signal()
    painted = Signal()
    stack_dropped = Signal(str)  # a browser series (STACK_MIME key) was dropped here
    activated = Signal()  # the user clicked into this viewport
    image_changed = Signal()  # set_volume / clear: another image (modality, DICOM windows) or none

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = ViewerState()
        self.volume: Volume | None = None
        self._corner_text: dict[str, str] = {}
        self._drag_origin: Window | None = None
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground("k")
        self.view = _ViewBox(self)
        self.graphics.addItem(self.view)
        self.image = pg.ImageItem()
        self.view.addItem(self.image)
        # Attribution heat map (Grad-CAM...) drawn over the image on the same pixel grid, with a colour bar.
        self.heat_item = pg.ImageItem()
        self.heat_item.setZValue(10)
        self.heat_item.setOpacity(0.45)
        self.view.addItem(self.heat_item)
        self.heatmaps: dict[int, np.ndarray] = {}
        self.window_note = ""  # why the requested window could not be used (then an automatic one is shown)
        self.heat_caption = ""
        self.overlay_visible = True
        cmap = pg.ColorMap(np.linspace(0, 1, 256), heat_lut())
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=cmap, interactive=False, width=12,
                                        label="attribution")
        # Drawn over the right edge of the view (not in the layout) and only while a heat map is shown: the image
        # has the whole viewport, is centred in it, and keeps its place and size when a heat map comes or goes.
        self.colorbar.setOpacity(0.0)
        self.colorbar.setVisible(False)
        self.colorbar.setZValue(20)
        self.graphics.scene().addItem(self.colorbar)
        self.colorbar_shown = False
        self.value_units = ""  # unit of the displayed values: "HU", "Bq/ml", the file's RescaleType/Units, ""
        self.info: dict[str, str] = {}
        self.corners = {name: self._make_label("#e0e0a0") for name in ("tl", "tr", "bl", "br")}
        self.markers = {name: self._make_label("#ffb060", bold=True) for name in ("left", "right", "top", "bottom")}
        self.readout = self._make_label("#a0d0ff")
        self._last_mouse: QPointF | None = None
        # Every viewport asks for the same size whatever it shows: the grid then splits its space evenly (a
        # QGraphicsView's size hint follows its scene rect, i.e. its current size, which made a 1x2/2x2 cell that
        # was once larger stay larger after the next relayout).
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.graphics.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.message = self._make_label("#c0c0c0")
        self.set_active(False)
        self.graphics.scene().sigMouseMoved.connect(self._mouse_moved)
        self.cine_timer = QTimer(self)
        self.cine_timer.timeout.connect(self._cine_step)
        self.cine_fps = 10.0
        self.view.sigRangeChanged.connect(lambda *_: self._update_overlay())
        # Measurements and marks of the image on screen (medviewer.ui.annotations).
        self.annotations = AnnotationLayer(self)

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(320, 320)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt override
        return QSize(64, 64)

    def _make_label(self, color: str, bold: bool = False) -> QLabel:
        label = QLabel(self.graphics)
        label.setTextFormat(Qt.TextFormat.PlainText)  # DICOM text is shown as it is, never as markup
        label.setStyleSheet(LABEL_STYLE % color)  # a translucent dark box keeps it legible over bright anatomy
        font = QFont("DejaVu Sans Mono", 9)
        font.setBold(bold)
        label.setFont(font)
        label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        label.setVisible(False)  # shown once it has text (an empty box would be a dark smudge)
        return label

    def set_active(self, active: bool) -> None:
        """Outline the viewport the keyboard and the browser act on."""
        self.active = active
        self.setStyleSheet("ImageViewer { border: 2px solid %s; }" % ("#3d6f99" if active else "#101214"))
        layout = self.layout()
        if layout is not None:
            layout.setContentsMargins(2, 2, 2, 2)

    def show_message(self, text: str) -> None:
        """A centred status line (e.g. "Loading...", "Drop a series here")."""
        self.message.setText(text)
        self.message.adjustSize()
        self.message.move((self.graphics.width() - self.message.width()) // 2,
                          (self.graphics.height() - self.message.height()) // 2)
        self.message.setVisible(bool(text))

    def clear(self) -> None:
        """Show nothing (the volume is dropped)."""
        self.volume = None
        self.cine_timer.stop()
        self.image.clear()
        self.heat_item.clear()
        self.heatmaps = {}
        self._show_colorbar(False)
        self.annotations.sync()
        self._corner_text.clear()
        self.value_units = ""
        for label in list(self.corners.values()) + list(self.markers.values()) + [self.readout]:
            label.setText("")
            label.setVisible(False)
        self.image_changed.emit()

    def dragEnterEvent(self, ev):  # noqa: N802, ANN001 - Qt override
        if ev.mimeData().hasFormat("application/x-medviewer-stack"):
            ev.acceptProposedAction()

    def dropEvent(self, ev):  # noqa: N802, ANN001 - Qt override
        data = ev.mimeData().data("application/x-medviewer-stack")
        if data:
            self.stack_dropped.emit(bytes(data).decode("utf-8"))
            ev.acceptProposedAction()

    def mousePressEvent(self, ev):  # noqa: N802, ANN001 - Qt override
        self.activated.emit()
        super().mousePressEvent(ev)

    def resizeEvent(self, ev):  # noqa: N802, ANN001 - Qt override
        super().resizeEvent(ev)
        self._place_labels()

    def _set_corner(self, name: str, text: str) -> None:
        self._corner_text[name] = text

    def _place_labels(self) -> None:
        w, h, m = self.graphics.width(), self.graphics.height(), 6
        if getattr(self, "colorbar_shown", False):
            self._place_colorbar()
            w = min(w, int(self.colorbar.sceneBoundingRect().left()))  # right-hand text clear of the colour bar
        texts = getattr(self, "_corner_text", {})
        for name, label in self.corners.items():
            # Each corner gets at most half the width (minus room for the orientation marker and the box's
            # padding); a line too long for it breaks before its "  (" part (the window's source), then is elided.
            metrics = QFontMetrics(label.font())
            room = max(40, w // 2 - 3 * m - 12 - 10)
            lines = []
            for line in texts.get(name, "").split("\n"):
                head, sep, tail = line.partition("  (")
                if sep and metrics.horizontalAdvance(line) > room:
                    lines += [head, "(" + tail]
                else:
                    lines.append(line)
            label.setText("\n".join(metrics.elidedText(line, Qt.TextElideMode.ElideRight, room) for line in lines))
            label.adjustSize()
            label.setVisible(bool(label.text().strip()))
            x = m if name[1] == "l" else w - label.width() - m
            y = m if name[0] == "t" else h - label.height() - m
            label.move(x, y)
        self.corners["tr"].setAlignment(Qt.AlignmentFlag.AlignRight)
        self.corners["br"].setAlignment(Qt.AlignmentFlag.AlignRight)
        mk = self.markers
        for label in mk.values():
            label.adjustSize()
            label.setVisible(bool(label.text()))
        mk["left"].move(m, (h - mk["left"].height()) // 2)
        mk["right"].move(w - mk["right"].width() - m, (h - mk["right"].height()) // 2)
        mk["top"].move((w - mk["top"].width()) // 2, m)
        mk["bottom"].move((w - mk["bottom"].width()) // 2, h - mk["bottom"].height() - m)
        self.readout.adjustSize()
        self.readout.setVisible(bool(self.readout.text()))
        bl = self.corners["bl"]
        self.readout.move(m, bl.y() - self.readout.height() - 2)
        if self.message.text():
            self.message.adjustSize()
            self.message.move((w - self.message.width()) // 2, (h - self.message.height()) // 2)

    # ----------------------------------------------------------------------------------------------------------
    def set_volume(self, volume: Volume, info: dict[str, str] | None = None) -> None:
        """Show ``volume`` from its middle slice with the modality's default window
        (:func:`~medviewer.imaging.voi.default_window_source`): the file's first window or VOI LUT table, an
        automatic one when it has none, and the automatic one on MR.

        ``info`` holds overlay text: "patient", "study", "series" (one line each, may contain newlines).
        """
        self.cine_timer.stop()
        self.image.clear()
        self.volume = volume
        self.info = dict(info or {})
        orient = volume.stack.orientation if volume.stack is not None else None
        if orient is not None:
            labels = screen_orientation_labels(orient)
        elif volume.stack is not None:
            labels = patient_orientation_labels(volume.stack.slices[0].instance.patient_orientation)
        else:
            labels = {}
        for name, label in self.markers.items():
            label.setText(labels.get(name, ""))
        n = volume.array.shape[0]
        self.state.index = n // 2
        self.value_units = self._units_of(volume)
        if not self._apply_default_window():
            self.state.window = None  # chosen from the first decoded slice in render()
            self.state.lut = None
            self.state.window_source = "" if volume.is_color else "auto"
        self.state.invert = False
        self._fitted = False
        ps_row, ps_col = float(volume.spacing[1]), float(volume.spacing[2])
        tr = pg.QtGui.QTransform()
        tr.scale(ps_col, ps_row)
        self.image.setTransform(tr)
        self.heat_item.setTransform(tr)
        self.heatmaps = {}
        self.heat_caption = ""
        self.image_changed.emit()
        self.render()

    def _units_of(self, volume: Volume) -> str:
        """Unit of ``volume``'s values (:func:`medviewer.io.display.read_value_units` of its first file: HU on CT,
        Bq/ml or SUV on PT, the RescaleType or Units otherwise); also written to ``volume.units`` so measurements
        say the same."""
        if volume.is_color:
            units = ""
        elif volume.stack is not None and volume.stack.slices:
            units = read_value_units(volume.stack.slices[0].instance.path, volume.modality)
        else:
            units = volume.units
        volume.units = units
        return units

    def _apply_default_window(self) -> bool:
        """Put the modality's default DICOM window (or VOI LUT table) in the state; False when the default is the
        automatic window (MR, or no window in the file)."""
        vol = self.volume
        if vol is None or vol.is_color:
            return False
        has = bool(vol.window_presets or vol.voi_luts)
        if default_window_source(vol.modality, has) != "dicom":
            return False
        return self.restore_dicom_window(render=False)

    def slice_ready(self, k: int) -> None:
        """A slice of a loading volume was decoded; redraw if it is the one on screen."""
        if self.volume is not None and k == self.state.index:
            self.render()

    def load_finished(self) -> None:
        """The volume is fully decoded (failed slices filled)."""
        self.render()

    @property
    def monochrome1(self) -> bool:
        return bool(self.volume is not None and self.volume.photometric_interpretation == "MONOCHROME1")

    def render(self) -> None:  # type: ignore[override] # not QWidget.render(painter): redraws the slice
        vol = self.volume
        if vol is None:
            return
        self.annotations.sync()  # the annotations of the image about to be shown
        k = self.state.index
        if vol.ready is not None and not vol.ready[k]:
            # nothing of the slice shown before stays under this slice's label (pixels, heat map, readout)
            self.image.clear()
            self.heat_item.clear()
            self.show_message(f"Loading slice {k + 1}...")
            self._update_overlay()
            if self._last_mouse is not None:
                self._mouse_moved(self._last_mouse)
            self.changed.emit()
            return
        gap = next((e for e in vol.slice_errors if e.index == k), None)
        # a slice whose pixels could not be read stays in its place, blank, with the reason on it
        self.show_message(f"Slice {k + 1} not readable:\n{gap.reason[:160]}" if gap is not None else "")
        if self.state.window is None and self.state.lut is None and not vol.is_color:
            self.state.window = auto_window(vol.array[k], exclude=vol.padding)
            self.state.window_source = "auto"
        if vol.is_color:
            top = 255 if vol.array.dtype == np.uint8 else 65535
            self.image.setImage(vol.array[k], autoLevels=False, levels=(0, top))
        else:
            invert = self.monochrome1 != self.state.invert
            lut = (self.state.lut[0], self.state.lut[1]) if self.state.lut is not None else None
            shown, self.window_note = display_safe(vol.array[k], self.state.window, invert=invert, lut=lut,
                                                   exclude=vol.padding)
            if self.window_note:
                log.warning("%s", self.window_note)
            self.image.setImage(shown, autoLevels=False, levels=(0, 255))
        self._render_heat(k)
        if not getattr(self, "_fitted", True):
            self._fitted = True
            self.view.autoRange(padding=0.0, items=[self.image])
        self._update_overlay()
        if self._last_mouse is not None:  # the readout shows this slice's value, never the previous one's
            self._mouse_moved(self._last_mouse)
        self.changed.emit()
        self.painted.emit()

    # ---------------------------------------------------------------------------------------------- heat map
    def _render_heat(self, k: int) -> None:
        heat = self.heatmaps.get(k)
        show = heat is not None and self.overlay_visible
        if show:
            self.heat_item.setImage(heat, autoLevels=False, levels=(0.0, 1.0), lut=heat_lut())
        self.heat_item.setVisible(show)
        self._show_colorbar(show)

    def _show_colorbar(self, show: bool) -> None:
        """Show the heat map's colour bar over the right edge of the view, or hide it; the image stays where it
        is either way."""
        self.colorbar_shown = show
        self.colorbar.setOpacity(1.0 if show else 0.0)
        self.colorbar.setVisible(show)
        if show:
            self._place_colorbar()

    def _place_colorbar(self) -> None:
        """Along the right edge of the view, vertically centred, clear of the corner text."""
        area = self.view.sceneBoundingRect()
        if area.width() < 2 or area.height() < 2:
            return
        w = max(float(self.colorbar.effectiveSizeHint(Qt.SizeHint.PreferredSize).width()), 40.0)
        h = max(min(area.height() * 0.6, area.height() - 120.0), min(area.height(), 60.0))
        self.colorbar.setGeometry(QRectF(area.right() - w - 2, area.center().y() - h / 2, w, h))

    def set_heatmap(self, k: int, heat: np.ndarray, caption: str) -> None:
        """Attach a heat map (rows, cols) float32 in [0, 1] on slice ``k``'s pixel grid; ``caption`` names the
        method, class and model (shown in the overlay)."""
        if self.volume is None or heat.shape != self.volume.array.shape[1:3]:
            raise ValueError(f"heat map shape {heat.shape} does not match the image")
        self.heatmaps[int(k)] = heat
        self.heat_caption = caption
        self.render()

    def clear_heatmaps(self) -> None:
        self.heatmaps = {}
        self.heat_caption = ""
        self.render()

    def set_overlay_visible(self, visible: bool) -> None:
        self.overlay_visible = bool(visible)
        self.render()

    def toggle_overlay(self) -> None:
        self.set_overlay_visible(not self.overlay_visible)

    def set_overlay_opacity(self, opacity: float) -> None:
        """Heat-map opacity in [0, 1]."""
        self.heat_item.setOpacity(float(np.clip(opacity, 0.0, 1.0)))

    def _update_overlay(self) -> None:
        vol = self.volume
        if vol is None:
            return
        k = self.state.index
        n = vol.array.shape[0]
        self._set_corner("tl", self.info.get("patient", ""))
        self._set_corner("tr", self.info.get("study", "") + ("\n" if self.info.get("study") else "")
                         + self.info.get("series", ""))
        bottom_left = [f"Slice {k + 1}/{n}"]
        if not np.isnan(vol.positions[k]).any():
            p = vol.positions[k]
            loc = float(vol.positions[k] @ vol.direction[:, 0])
            bottom_left.append(f"Loc {loc:.2f} mm  ({p[0]:.1f}, {p[1]:.1f}, {p[2]:.1f})")
        if vol.stack is not None:
            thick = vol.stack.slices[k].frame.slice_thickness
            if thick:
                bottom_left.append(f"Thickness {thick:.2f} mm")
        self._set_corner("bl", "\n".join(bottom_left))
        bottom_right = []
        if getattr(self, "window_note", ""):
            bottom_right.append(f"Window not usable ({self.window_note})")
        else:
            caption = self.window_caption()
            if caption:
                bottom_right.append(caption)
        if self.state.invert:
            bottom_right.append("Inverted")
        bottom_right.append(f"Zoom {self.zoom_factor() * 100:.0f}%")
        if k in self.heatmaps and self.overlay_visible and self.heat_caption:
            bottom_right.insert(0, self.heat_caption)
        self._set_corner("br", "\n".join(bottom_right))
        self._place_labels()

    def zoom_factor(self) -> float:
        """Screen pixels per image pixel (columns), 1.0 = 1:1."""
        vol = self.volume
        if vol is None:
            return 1.0
        (x0, x1), _ = self.view.viewRange()
        width_mm = max(x1 - x0, 1e-6)
        screen_px = max(self.view.width(), 1.0)
        return float(screen_px / (width_mm / float(vol.spacing[2])))

    def one_to_one(self) -> None:
        """Zoom so one image pixel covers one screen pixel, keeping the centre."""
        vol = self.volume
        if vol is None:
            return
        (x0, x1), (y0, y1) = self.view.viewRange()
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        half_w = self.view.width() * float(vol.spacing[2]) / 2
        half_h = self.view.height() * float(vol.spacing[2]) / 2
        self.view.setRange(xRange=(cx - half_w, cx + half_w), yRange=(cy - half_h, cy + half_h), padding=0)

    def _mouse_moved(self, pos: QPointF) -> None:
        """The pixel readout at scene position ``pos`` (row, column, value in the modality's units, LPS mm)."""
        self._last_mouse = QPointF(pos)
        vol = self.volume
        if vol is None:
            return
        p = self.view.mapSceneToView(pos)
        # The ImageItem draws pixel (i, j) over [j, j+1) x [i, i+1) pixel units (its corner at the integer), so the
        # pixel under the mouse is the floor; rounding would report the neighbour over the pixel's right/lower half.
        j = int(np.floor(p.x() / vol.spacing[2]))
        i = int(np.floor(p.y() / vol.spacing[1]))
        rows, cols = vol.array.shape[1:3]
        if 0 <= i < rows and 0 <= j < cols and (vol.ready is None or vol.ready[self.state.index]):
            value = vol.array[self.state.index, i, j]
            unit = f" {self.value_units}" if self.value_units and np.ndim(value) == 0 else ""
            pad = vol.padding
            if pad is not None and np.ndim(value) == 0 and pad[0] <= float(value) <= pad[1]:
                text = f"row {i} col {j}: padding (no image)"
            else:
                shown = format_value(value) if np.ndim(value) == 0 else str(value)
                text = f"row {i} col {j}: {shown}{unit}"
            if not np.isnan(vol.positions[self.state.index]).any():
                lps = vol.index_to_lps(self.state.index, i, j)
                text += f"  ({lps[0]:.1f}, {lps[1]:.1f}, {lps[2]:.1f}) mm"
            self.readout.setText(text)
        else:
            self.readout.setText("")
        self._place_labels()

    # ----------------------------------------------------------------------------------------------------------
    def set_slice(self, index: int) -> None:
        if self.volume is None:
            return
        index = int(np.clip(index, 0, self.volume.array.shape[0] - 1))
        if index != self.state.index:
            self.state.index = index
            self.render()

    def step_slice(self, delta: int) -> None:
        self.set_slice(self.state.index + delta)

    def set_window(self, center: float, width: float, name: str = "", source: str = "manual") -> None:
        """Show the window (``center``, ``width``) in modality units; ``source`` says where it came from
        ("manual" for a drag or typed values, "preset", "dicom", "auto")."""
        fn = self.volume.voi_lut_function if self.volume is not None else "LINEAR"
        self.state.window = Window(float(center), max(1.0, float(width)), fn, name)
        self.state.window_source = source
        self.state.lut = None
        self.render()

    def set_preset(self, name: str) -> None:
        """A fixed preset by name (:data:`~medviewer.imaging.voi.CT_PRESETS`; the menu offers them on CT only)."""
        c, w = CT_PRESETS[name]
        self.set_window(c, w, name, source="preset")

    # ---------------------------------------------------------------------------------------------- windows
    def window_choices(self) -> list[WindowChoice]:
        """The windows offered for the image shown: the modality's presets (CT only), the file's windows by their
        explanation, its VOI LUT tables (none for colour images or when nothing is shown)."""
        vol = self.volume
        if vol is None or vol.is_color:
            return []
        return window_choices(vol.modality, vol.window_presets, [x[2] for x in vol.voi_luts])

    def numbered_choices(self) -> list[WindowChoice]:
        """The choices keys 1..8 select: the presets on CT, the file's windows and tables elsewhere."""
        choices = self.window_choices()
        presets = [c for c in choices if c.source == "preset"]
        return (presets or choices)[:8]

    def apply_window_choice(self, choice: WindowChoice) -> None:
        """Show one of :meth:`window_choices`."""
        vol = self.volume
        if vol is None or vol.is_color:
            return
        if choice.lut:
            self.state.window = None
            self.state.lut = vol.voi_luts[choice.index]
            self.state.window_source = "dicom"
            self.render()
        elif choice.source == "dicom" and choice.center is not None and choice.width is not None:
            self.state.window = Window(choice.center, choice.width, vol.voi_lut_function, choice.name)
            self.state.window_source = "dicom"
            self.state.lut = None
            self.render()
        elif choice.center is not None and choice.width is not None:
            self.set_window(choice.center, choice.width, choice.name, source=choice.source)

    def current_choice(self) -> WindowChoice | None:
        """The entry of :meth:`window_choices` on screen now (None for auto, manual or no image)."""
        st = self.state
        for choice in self.window_choices():
            if choice.lut:
                if st.lut is not None and st.window_source == "dicom" and self.volume is not None \
                        and st.lut is self.volume.voi_luts[choice.index]:
                    return choice
            elif st.lut is None and st.window is not None and st.window_source == choice.source \
                    and (st.window.center, st.window.width) == (choice.center, choice.width):
                return choice
        return None

    @property
    def has_dicom_window(self) -> bool:
        """True when the image carries a window or a VOI LUT table of its own."""
        vol = self.volume
        return bool(vol is not None and not vol.is_color and (vol.window_presets or vol.voi_luts))

    def restore_dicom_window(self, render: bool = True) -> bool:
        """Back to the DICOM window: the file's first window (or its first VOI LUT table when it has no window).
        False (nothing changes) when the image has none."""
        vol = self.volume
        if not self.has_dicom_window or vol is None:
            return False
        if vol.window_presets:
            c, w, name = vol.window_presets[0]
            self.state.window = Window(c, w, vol.voi_lut_function, name)
            self.state.lut = None
        else:
            self.state.window = None
            self.state.lut = vol.voi_luts[0]
        self.state.window_source = "dicom"
        if render:
            self.render()
        return True

    def window_caption(self) -> str:
        """The overlay line naming the window shown, e.g. ``"W 400  L 40 HU  (DICOM: 'ABDOMEN')"``."""
        st = self.state
        source = getattr(st, "window_source", "")
        if st.lut is not None:
            return window_caption(source or "dicom", str(st.lut[2] or "DICOM LUT 1"), lut=True)
        w = st.window
        if w is None:
            return ""
        name = w.name if source != "auto" else ""
        return window_caption(source, name, w.center, w.width, self.value_units)

    def current_window(self) -> Window | None:
        """The window in use, or an automatic one for the current slice when a VOI LUT table is shown."""
        if self.state.window is not None:
            return self.state.window
        if self.volume is not None and not self.volume.is_color and self._ready(self.state.index):
            return auto_window(self.volume.array[self.state.index], exclude=self.volume.padding)
        return None

    def _ready(self, k: int) -> bool:
        vol = self.volume
        return vol is not None and (vol.ready is None or bool(vol.ready[k]))

    def auto_window(self) -> None:
        if self.volume is not None and not self.volume.is_color and self._ready(self.state.index):
            w = auto_window(self.volume.array[self.state.index], exclude=self.volume.padding)
            self.set_window(w.center, w.width, "Auto", source="auto")

    def drag_window(self, start: Window, dx: float, dy: float) -> None:
        """Right-drag: horizontal changes width (right = wider), vertical changes level (down = higher)."""
        scale = max(start.width, 1.0) / 256.0
        self.set_window(start.center + dy * scale, start.width + dx * scale * 2)

    # ---------------------------------------------------------------------------------------------- cine
    def set_cine_fps(self, fps: float) -> None:
        """Frames per second for cine (1..60)."""
        self.cine_fps = float(np.clip(fps, 1.0, 60.0))
        if self.cine_timer.isActive():
            self.cine_timer.start(int(1000 / self.cine_fps))

    def toggle_cine(self) -> None:
        """Play the stack as a loop at ``cine_fps``, or stop."""
        if self.cine_timer.isActive():
            self.cine_timer.stop()
        elif self.volume is not None and self.volume.array.shape[0] > 1:
            self.cine_timer.start(int(1000 / self.cine_fps))

    def _cine_step(self) -> None:
        if self.volume is None:
            self.cine_timer.stop()
            return
        n = self.volume.array.shape[0]
        self.set_slice((self.state.index + 1) % n)

    def toggle_invert(self) -> None:
        self.state.invert = not self.state.invert
        self.render()

    def keyPressEvent(self, ev):  # noqa: N802, ANN001 - Qt override
        key = ev.key()
        if key in (Qt.Key.Key_Up, Qt.Key.Key_Left):
            self.step_slice(-1)
        elif key in (Qt.Key.Key_Down, Qt.Key.Key_Right):
            self.step_slice(1)
        elif key == Qt.Key.Key_PageUp:
            self.step_slice(-10)
        elif key == Qt.Key.Key_PageDown:
            self.step_slice(10)
        elif key == Qt.Key.Key_Home:
            self.set_slice(0)
        elif key == Qt.Key.Key_End and self.volume is not None:
            self.set_slice(self.volume.array.shape[0] - 1)
        elif Qt.Key.Key_1 <= key <= Qt.Key.Key_8:
            choices = self.numbered_choices()
            if key - Qt.Key.Key_1 < len(choices):
                self.apply_window_choice(choices[key - Qt.Key.Key_1])
        elif key == Qt.Key.Key_D:
            self.restore_dicom_window()
        elif key == Qt.Key.Key_A:
            self.auto_window()
        elif key == Qt.Key.Key_I:
            self.toggle_invert()
        elif key == Qt.Key.Key_C:
            self.toggle_cine()
        elif key == Qt.Key.Key_F:
            self.view.autoRange(padding=0.0)
        elif key == Qt.Key.Key_0:
            self.one_to_one()
        else:
            super().keyPressEvent(ev)
