"""Headless rendering of report key images with numpy + Pillow: VOI, heat map with colour bar, annotations.

Greyscale pipeline as in the viewer (PS3.4 N.2): stored values -> Modality LUT (PS3.3 C.11.1: Modality LUT Sequence
or RescaleSlope/Intercept, per frame for enhanced objects) -> VOI (the object's first WindowCenter/WindowWidth with
its VOILUTFunction, PS3.3 C.11.2; else :func:`medviewer.imaging.voi.auto_window`) -> MONOCHROME1 inversion
(PS3.3 C.7.6.3.1.2) -> 8-bit grey. Colour images are shown as decoded (RGB).

Annotations are drawn in image pixel coordinates (``(x, y) = (column, row)``, pixel ``(i, j)`` covering
``[j, j+1) x [i, i+1)``, see :mod:`medviewer.imaging.annotations`), scaled with the picture. Nothing here draws
patient text unless asked to (``patient_text``); de-identified exports never pass it.
"""

from __future__ import annotations

import logging

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from medviewer.imaging.colormap import heat_lut  # noqa: F401 - re-exported
from medviewer.report.fonts import pil_font

if TYPE_CHECKING:
    from medviewer.imaging.voi import Window

__all__ = ["FrameImage", "load_frame", "heat_lut", "render_key_image", "resize_heatmap", "ANNOTATION_COLOUR",
           "METHOD_NAMES"]

#: Display names of the attribution methods of :mod:`medviewer.inference.attribution`.
METHOD_NAMES = {"gradcam": "Grad-CAM", "integrated_gradients": "Integrated Gradients", "ig": "Integrated Gradients",
                "occlusion": "Occlusion"}

#: RGB of annotation lines and labels (the viewer's annotation yellow).
ANNOTATION_COLOUR = (255, 214, 10)


log = logging.getLogger(__name__)


@dataclass
class FrameImage:
    """One frame of a DICOM image, read for the report.

    values: (rows, cols) float32 modality values (HU for CT) or (rows, cols, 3) uint8 RGB for colour images.
    window: the VOI window to display with (the object's first, or automatic), None for colour.
    voi_lut: (LUTDescriptor, LUTData) of the first VOI LUT Sequence item when the object has no window.
    pixel_spacing: (row, column) mm from PixelSpacing (else ImagerPixelSpacing); None when absent or invalid.
    units: "HU" for CT greyscale, "" otherwise. burned_in_annotation: the BurnedInAnnotation (0028,0301) value
    ("YES", "NO" or "" when absent).
    """

    values: np.ndarray
    window: Window | None = None
    voi_lut: tuple | None = None
    monochrome1: bool = False
    pixel_spacing: tuple[float, float] | None = None
    spacing_note: str = ""
    padding: tuple[float, float] | None = None
    us_regions: tuple = ()
    units: str = ""
    modality: str = ""
    photometric: str = ""
    burned_in_annotation: str = ""
    sop_instance_uid: str = ""
    number_of_frames: int = 1
    warnings: list[str] = field(default_factory=list)

    @property
    def is_color(self) -> bool:
        """True for RGB images (no VOI, no modality values)."""
        return self.values.ndim == 3

    def display(self) -> np.ndarray:
        """8-bit display image: (rows, cols) uint8 grey, or (rows, cols, 3) uint8 RGB for colour."""
        from medviewer.imaging.voi import auto_window, to_display

        if self.is_color:
            return np.ascontiguousarray(self.values, dtype=np.uint8)
        if self.window is None and self.voi_lut is not None:
            try:
                return to_display(self.values, invert=self.monochrome1, lut=self.voi_lut)
            except ValueError as exc:
                log.warning("VOI LUT not applicable (%s): the image is shown with an automatic window", exc)
        window = self.window or auto_window(self.values, exclude=self.padding)
        try:
            return to_display(self.values, window, invert=self.monochrome1)
        except ValueError:  # a header window the standard does not allow (e.g. LINEAR width < 1)
            return to_display(self.values, auto_window(self.values, exclude=self.padding), invert=self.monochrome1)


def load_frame(path: str, frame: int = 0) -> FrameImage:
    """Decode one frame of a DICOM file for display and measurement, through the one frame path
    (:func:`medviewer.inference.frames.read_frame`: the viewer's loader, so the report shows and measures the
    pixels the viewer shows).

    Returns a :class:`FrameImage` (modality values, window, MONOCHROME1 flag, pixel spacing in mm, units).

    Raises
    ------
    medviewer.io.pixels.PixelDecodeError: the file cannot be read or its pixels cannot be decoded.
    """
    import pydicom

    from medviewer.imaging.voi import Window
    from medviewer.inference.frames import FrameReadError, read_frame
    from medviewer.io.pixels import PixelDecodeError

    try:
        mf = read_frame(path, frame)
    except FrameReadError as exc:
        raise PixelDecodeError(path, str(exc).split(": ", 1)[-1]) from exc
    try:
        burned = str(pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["BurnedInAnnotation"])
                     .get("BurnedInAnnotation", "") or "").upper()
    except Exception:  # noqa: BLE001 - the frame was read; an unreadable flag is reported as absent
        burned = ""
    out = FrameImage(values=mf.values, modality=mf.modality, photometric=mf.photometric_interpretation,
                     burned_in_annotation=burned, sop_instance_uid=mf.sop_instance_uid,
                     number_of_frames=mf.number_of_frames, pixel_spacing=mf.pixel_spacing,
                     spacing_note=mf.spacing_note, padding=mf.padding, us_regions=mf.us_regions)
    if mf.values.ndim == 3:  # colour, already RGB
        out.values = mf.values if mf.values.dtype == np.uint8 else (mf.values >> 8).astype(np.uint8) \
            if mf.values.dtype == np.uint16 else mf.values.astype(np.uint8)
        return out
    out.values = np.asarray(mf.values, dtype=np.float32)
    out.units = mf.units
    out.monochrome1 = mf.monochrome1
    if mf.window is not None:
        c, w, function = mf.window
        function = (function or "LINEAR").upper()
        out.window = Window(c, w, function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR",
                            "DICOM 1")
    elif mf.voi_lut is not None:
        out.voi_lut = (list(mf.voi_lut[0]), mf.voi_lut[1])
    return out


def resize_heatmap(heatmap: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A [0, 1] heat map (h, w) resampled to (rows, cols): quantised to 8 bits (as stored) and resized bilinearly
    (Pillow), the way the viewer and the report overlay it. Returns float32 (rows, cols) in [0, 1], multiples of
    1/255; NaN counts as 0. Raises ValueError for an empty or non-2-D map or a size below 1."""
    from PIL import Image

    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2 or not h.size or rows < 1 or cols < 1:
        raise ValueError(f"cannot resample a heat map of shape {h.shape} to {rows} x {cols}")
    h = np.clip(np.nan_to_num(h), 0, 1)
    him = Image.fromarray((h * 255 + 0.5).astype(np.uint8), mode="L")
    if him.size != (cols, rows):
        him = him.resize((cols, rows), Image.Resampling.BILINEAR)
    return np.asarray(him, dtype=np.float32) / 255.0


def _blend_heat(rgb: np.ndarray, heat: np.ndarray, opacity: float) -> np.ndarray:
    """Blend a [0, 1] heat map (already at the size of ``rgb``) over ``rgb`` (float32 0..255)."""
    lut = heat_lut().astype(np.float32)
    idx = np.clip(np.rint(np.nan_to_num(heat) * 255), 0, 255).astype(np.intp)
    colour = lut[idx, :3]
    alpha = (lut[idx, 3] / 255.0 * opacity)[..., None]
    return rgb * (1 - alpha) + colour * alpha


def _text_size(draw, text: str, font) -> tuple[int, int]:  # noqa: ANN001
    box = draw.multiline_textbbox((0, 0), text, font=font, spacing=2)
    return int(box[2] - box[0]), int(box[3] - box[1])


def _overlaps(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _label(draw, xy: tuple[float, float], text: str, font, bounds: tuple[int, int],  # noqa: ANN001
           colour=ANNOTATION_COLOUR, placed: list | None = None) -> None:  # noqa: ANN001
    """Text with a dark box behind it, kept inside the picture and (``placed``: the boxes of the labels drawn
    before) moved down or up so that labels do not cover each other."""
    if not text:
        return
    w, h = _text_size(draw, text, font)
    pad = 3
    x = min(max(float(xy[0]), pad), bounds[0] - w - 2 * pad)
    y0 = min(max(float(xy[1]), pad), bounds[1] - h - 2 * pad)
    x, y0 = max(x, 0), max(y0, 0)
    y = y0
    if placed:
        def box_at(yy: float) -> tuple[float, float, float, float]:
            return (x - pad, yy - pad, x + w + pad, yy + h + pad + 2)

        candidates = [y0] + sorted({b[3] + pad + 1 for b in placed} | {b[1] - h - 2 * pad - 3 for b in placed},
                                   key=lambda c: abs(c - y0))
        for c in candidates:
            if pad <= c <= bounds[1] - h - 2 * pad and not any(_overlaps(box_at(c), b) for b in placed):
                y = c
                break
    box = (x - pad, y - pad, x + w + pad, y + h + pad + 2)
    if placed is not None:
        placed.append(box)
    draw.rectangle(list(box), fill=(0, 0, 0, 170))
    draw.multiline_text((x, y), text, fill=colour + (255,), font=font, spacing=2)


def _arrow_head(draw, tail, head, size: float, colour, width: int) -> None:  # noqa: ANN001
    dx, dy = head[0] - tail[0], head[1] - tail[1]
    n = math.hypot(dx, dy)
    if n < 1e-6:
        return
    ux, uy = dx / n, dy / n
    back = (head[0] - ux * size, head[1] - uy * size)
    left = (back[0] - uy * size * 0.5, back[1] + ux * size * 0.5)
    right = (back[0] + uy * size * 0.5, back[1] - ux * size * 0.5)
    draw.polygon([head, left, right], fill=colour + (255,), outline=colour + (255,), width=width)


def _draw_annotation(draw, ann: dict, scale: float, font, bounds: tuple[int, int], lw: int,  # noqa: ANN001
                     placed: list | None = None) -> None:
    """Draw one annotation dict (kind, points, text, label) scaled by ``scale``."""
    kind = ann.get("kind", "")
    pts = [(float(x) * scale, float(y) * scale) for x, y in ann.get("points", [])]
    colour = ANNOTATION_COLOUR
    fill = colour + (255,)
    label = "\n".join(t for t in (ann.get("text", "") if kind != "text" else "", ann.get("label", "")) if t)
    anchor = None
    if kind == "length" and len(pts) == 2:
        draw.line(pts, fill=fill, width=lw)
        for p in pts:  # end ticks
            draw.ellipse([p[0] - lw, p[1] - lw, p[0] + lw, p[1] + lw], fill=fill)
        anchor = (max(pts[0][0], pts[1][0]) + 6 * lw, (pts[0][1] + pts[1][1]) / 2)
    elif kind == "angle" and len(pts) == 3:
        draw.line([pts[0], pts[1], pts[2]], fill=fill, width=lw, joint="curve")
        anchor = (pts[1][0] + 6 * lw, pts[1][1] + 3 * lw)
    elif kind in ("rect", "ellipse") and len(pts) == 2:
        (x0, y0), (x1, y1) = pts
        box = [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]
        if kind == "rect":
            draw.rectangle(box, outline=fill, width=lw)
        else:
            draw.ellipse(box, outline=fill, width=lw)
        anchor = (box[2] + 4 * lw, box[1])
    elif kind == "arrow" and len(pts) == 2:
        draw.line(pts, fill=fill, width=lw)
        _arrow_head(draw, pts[0], pts[1], max(10.0, 6.0 * lw), colour, lw)
        anchor = (pts[0][0] + 4 * lw, pts[0][1] + 2 * lw)
    elif kind == "text" and len(pts) == 1:
        label = "\n".join(t for t in (ann.get("text", ""), ann.get("label", "")) if t)
        anchor = pts[0]
    if anchor is not None and label:
        _label(draw, anchor, label, font, bounds, placed=placed)


def _colour_bar(height: int, width: int, font, low: str = "0", high: str = "1"):  # noqa: ANN001, ANN202
    """A vertical colour-bar panel (RGB PIL image) of the heat LUT, high at the top, with its end labels."""
    from PIL import Image, ImageDraw

    panel = Image.new("RGB", (width, height), (24, 24, 24))
    draw = ImageDraw.Draw(panel)
    top, bottom = int(height * 0.08), int(height * 0.92)
    bar_w = max(8, width // 3)
    x0 = (width - bar_w) // 2
    lut = heat_lut()
    span = max(1, bottom - top)
    for i in range(span):
        v = 1.0 - i / (span - 1 if span > 1 else 1)
        r, g, b, a = (int(c) for c in lut[round(v * 255)])
        # Show the colour as blended over mid grey (what a heat value looks like on the image).
        al = a / 255.0 * 0.55
        col = tuple(int(128 * (1 - al) + c * al) for c in (r, g, b))
        draw.line([(x0, top + i), (x0 + bar_w, top + i)], fill=col)
    draw.rectangle([x0, top, x0 + bar_w, bottom], outline=(200, 200, 200))
    for text, y in ((high, top - 2), (low, bottom + 2)):
        w, h = _text_size(draw, text, font)
        draw.text(((width - w) / 2, y - h - 2 if y == top - 2 else y), text, fill=(230, 230, 230), font=font)
    return panel


def render_key_image(image: FrameImage, *, annotations: list[dict] | None = None,
                     heatmap: np.ndarray | None = None, heat_caption: str = "", heat_opacity: float = 0.55,
                     patient_text: str | None = None, max_side: int = 1024):  # noqa: ANN201 - PIL.Image
    """Render one key image as an RGB PIL image.

    image: from :func:`load_frame`. annotations: dicts with ``kind``, ``points`` (image pixel coordinates),
    ``text`` and ``label`` (the measurement label), drawn in the annotation colour with arrow heads and labels.
    heatmap: (h, w) float in [0, 1] (the stored small map of an AI result), upsampled bilinearly to the image and
    blended with :func:`heat_lut`; a colour bar (0..1 attribution) is added on the right and ``heat_caption``
    (method, class, model) below. patient_text: drawn in the top-left corner when given (never for de-identified
    exports). max_side: the longer side of the picture in pixels (the image is downsampled, never upsampled past
    2x).

    Returns a PIL ``Image`` in mode RGB.
    """
    from PIL import Image, ImageDraw

    disp = image.display()
    rows, cols = disp.shape[:2]
    scale = min(max_side / max(rows, cols), 2.0)
    out_w, out_h = max(1, round(cols * scale)), max(1, round(rows * scale))
    base = Image.fromarray(disp, mode="L" if disp.ndim == 2 else "RGB").convert("RGB")
    if (out_w, out_h) != base.size:
        base = base.resize((out_w, out_h), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    if heatmap is not None and np.size(heatmap):
        rgb = _blend_heat(np.asarray(base, dtype=np.float32), resize_heatmap(heatmap, out_h, out_w), heat_opacity)
        base = Image.fromarray(np.clip(rgb + 0.5, 0, 255).astype(np.uint8), mode="RGB")
    side = max(out_w, out_h)
    font = pil_font(max(12, round(side / 48)))
    small = pil_font(max(11, round(side / 60)))
    lw = max(2, round(side / 400))
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    placed: list = []
    if patient_text:
        _label(draw, (6, 6), patient_text, small, (out_w, out_h), colour=(255, 255, 255), placed=placed)
    for ann in annotations or []:
        try:
            _draw_annotation(draw, ann, scale, font, (out_w, out_h), lw, placed)
        except (TypeError, ValueError):
            continue  # a malformed stored annotation: skip it, the table still lists it
    base = Image.alpha_composite(base.convert("RGBA"), overlay).convert("RGB")
    if heatmap is None or not np.size(heatmap):
        return base
    # Colour bar on the right, caption strip below.
    bar = _colour_bar(out_h, max(48, out_w // 12), small, "0", "1")
    cap_font = small
    caption = heat_caption or "heat map"
    tmp = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    _, cap_h = _text_size(tmp, caption, cap_font)
    canvas = Image.new("RGB", (out_w + bar.width, out_h + cap_h + 12), (24, 24, 24))
    canvas.paste(base, (0, 0))
    canvas.paste(bar, (out_w, 0))
    cdraw = ImageDraw.Draw(canvas)
    cdraw.multiline_text((6, out_h + 5), caption, fill=(230, 230, 230), font=cap_font, spacing=2)
    return canvas
