"""The texts shown for an annotation: its measurement label (next to it in the view) and its one-line description
(in lists such as the case dock). Qt-free."""

from __future__ import annotations

from medviewer.imaging.annotations import NO_SPACING_WARNING, Annotation, Measurement
from medviewer.ui.annotations.points import BOX_KINDS
from medviewer.ui.annotations.tools import KIND_NAMES

__all__ = ["describe_text", "label_text"]


def label_text(ann: Annotation, m: Measurement) -> str:
    """The label of ``ann`` (not a text annotation: they have none), which measures ``m``: its comment (its text)
    over what it measures; an ROI measured without its image (not decoded yet) shows its area (and why it has no
    statistics)."""
    text = m.label()
    if ann.kind in BOX_KINDS and m.mean is None and m.n_pixels is None and m.area is not None:
        lu = "mm" if m.calibrated else "px"
        text = f"area {m.area:.1f} {lu}\N{SUPERSCRIPT TWO}" + (f"\n\N{WARNING SIGN} {m.warning}" if m.warning else "")
    if ann.text:
        text = ann.text + ("\n" + text if text else "")
    return text


def describe_text(ann: Annotation, m: Measurement, slice_pos: tuple[int, int] | None) -> str:
    """One line describing ``ann``, which measures ``m``: what it is and measures, then ``", slice K/N"`` when
    ``slice_pos`` is ``(k, n)`` (its image is slice ``k``, 0-based, of the viewer's stack of ``n``; None: not in the
    viewer's volume). See :meth:`~medviewer.ui.annotations.layer.AnnotationLayer.describe`."""
    lu = "mm" if m.calibrated else "px"
    u = f" {m.units}" if m.units else ""
    comment = " ".join(ann.text.split())  # one line
    if ann.kind == "text":
        text = f"Text: {comment}"
        comment = ""
    elif ann.kind == "length":
        text = f"Length {m.length:.1f} {lu}"
    elif ann.kind == "angle":
        text = "Angle" + (f" {m.angle_deg:.1f}\N{DEGREE SIGN}" if m.angle_deg is not None else "")
    elif ann.kind in BOX_KINDS:
        area = f"area {m.area:.1f} {lu}\N{SUPERSCRIPT TWO}"
        if m.mean is not None:
            stats = f"mean {m.mean:.1f}{u}, SD {m.sd:.1f}, {area}"
        elif m.n_pixels == 0:
            stats = f"{area} (no pixels inside)"
        else:
            stats = area
        text = f"{KIND_NAMES[ann.kind]}: {stats}"
    else:
        text = KIND_NAMES.get(ann.kind, ann.kind.capitalize())
    if comment:
        text += f' "{comment}"'
    if m.warning == NO_SPACING_WARNING:
        text += " (px: no PixelSpacing)" if slice_pos is not None else " (px: image not loaded)"
    elif m.warning:
        text += f" ({m.warning})"
    if slice_pos is not None:
        text += f", slice {slice_pos[0] + 1}/{slice_pos[1]}"
    return text
