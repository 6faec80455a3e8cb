"""Annotations (measurements and marks) on one image, and their measurements.

Geometry is kept in **image pixel coordinates**, continuous, ``(x, y) = (column, row)``: pixel ``(row i, column j)``
covers ``[j, j+1) x [i, i+1)`` and its centre is ``(j + 0.5, i + 0.5)``. That is the ImageItem convention of the
viewer, independent of zoom, pan, window or display aspect, so an annotation stays on the anatomy it was drawn on.
An annotation belongs to one image: SOPInstanceUID and a 0-based frame index (multi-frame objects).

Physical sizes use PixelSpacing (0028,0030), ``(row spacing, column spacing)`` in mm (DICOM PS3.3 C.7.6.2.1.1:
"physical distance in the patient between the center of each pixel, specified by a numeric pair - adjacent row
spacing (delimiter) adjacent column spacing in mm"). Without it, sizes are in pixels and the measurement carries a
warning. ROI statistics are over pixels whose centres lie inside the shape, in modality units (HU for CT, after the
Modality LUT of PS3.3 C.11.1).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field

import numpy as np

#: Annotation kinds and how many points each takes.
KINDS: dict[str, int] = {
    "length": 2,  # line from points[0] to points[1]
    "angle": 3,  # the angle at points[1] between the rays to points[0] and points[2]
    "rect": 2,  # opposite corners
    "ellipse": 2,  # opposite corners of the bounding box
    "arrow": 2,  # tail points[0], head points[1]
    "text": 1,  # anchor of the text
}

NO_SPACING_WARNING = "no PixelSpacing: sizes in pixels, not mm"


@dataclass
class Annotation:
    """One mark on one image.

    points: ``[(x, y), ...]`` floats in image pixel coordinates (x = column, y = row), ``KINDS[kind]`` of them.
    sop_instance_uid / frame: the image (frame is the 0-based frame index; 0 for single-frame objects).
    text: the label of a text annotation, or a free comment on any other kind.
    uid: stable identity (hex UUID4), kept through edits, undo/redo and the case store.

    Raises ValueError (on construction) for an unknown kind or a wrong number of points.
    """

    kind: str
    points: list[tuple[float, float]]
    sop_instance_uid: str
    frame: int = 0
    text: str = ""
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown annotation kind {self.kind!r} (one of {', '.join(KINDS)})")
        self.points = [(float(x), float(y)) for x, y in self.points]
        if len(self.points) != KINDS[self.kind]:
            raise ValueError(f"a {self.kind} annotation takes {KINDS[self.kind]} points, got {len(self.points)}")
        if not all(math.isfinite(v) for p in self.points for v in p):
            raise ValueError("annotation points must be finite")
        self.frame = int(self.frame)

    def moved(self, dx: float, dy: float) -> "Annotation":
        """A copy shifted by (dx, dy) pixels, same uid."""
        return Annotation(self.kind, [(x + dx, y + dy) for x, y in self.points], self.sop_instance_uid, self.frame,
                          self.text, self.uid)

    def to_dict(self) -> dict:
        """JSON-able form (what the case store and reports keep)."""
        return {"uid": self.uid, "kind": self.kind, "points": [list(p) for p in self.points],
                "sop_instance_uid": self.sop_instance_uid, "frame": self.frame, "text": self.text}

    @classmethod
    def from_dict(cls, d: dict) -> "Annotation":
        """Inverse of :meth:`to_dict`; raises ValueError/KeyError on malformed input."""
        return cls(d["kind"], [tuple(p) for p in d["points"]], d["sop_instance_uid"], int(d.get("frame", 0)),
                   d.get("text", ""), d.get("uid") or uuid.uuid4().hex)


@dataclass
class Measurement:
    """What an annotation measures. Unused fields stay None.

    length: mm (or pixels when ``calibrated`` is False). angle_deg: degrees in [0, 180].
    mean/sd/minimum/maximum: modality units (``units``, e.g. "HU") over ``n_pixels`` pixels; sd is the sample
    standard deviation (ddof=1). area: mm2 (or pixels2 when not calibrated), the area of the geometric shape.
    """

    kind: str
    calibrated: bool = True
    units: str = ""
    length: float | None = None
    angle_deg: float | None = None
    mean: float | None = None
    sd: float | None = None
    minimum: float | None = None
    maximum: float | None = None
    n_pixels: int | None = None
    area: float | None = None
    warning: str = ""
    plane: str = ""  # where the mm are measured on a projection radiograph ("at the detector", ...), "" otherwise

    def label(self) -> str:
        """Short text shown next to the annotation, e.g. ``"42.1 mm"`` or ``"mean 40.2 HU  SD 3.1 ..."``."""
        lu = "mm" if self.calibrated else "px"
        where = f" ({self.plane})" if self.calibrated and self.plane else ""
        u = f" {self.units}" if self.units else ""
        if self.length is not None:
            text = f"{self.length:.1f} {lu}{where}"
        elif self.angle_deg is not None:
            text = f"{self.angle_deg:.1f}\N{DEGREE SIGN}"
        elif self.mean is not None:
            text = (f"mean {self.mean:.1f}{u}  SD {self.sd:.1f}\nmin {self.minimum:.0f}  max {self.maximum:.0f}\n"
                    f"area {self.area:.1f} {lu}\N{SUPERSCRIPT TWO}{where}")
        elif self.area is not None:
            text = f"area {self.area:.1f} {lu}\N{SUPERSCRIPT TWO}{where} (no pixels inside)"
        else:
            text = ""
        if self.warning and text:
            text += f"\n\N{WARNING SIGN} {self.warning}"
        return text

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None and v != ""}


def _spacing(pixel_spacing: tuple[float, float] | None) -> tuple[float, float, bool]:
    """(row mm, column mm, calibrated)."""
    if pixel_spacing is None:
        return 1.0, 1.0, False
    r, c = float(pixel_spacing[0]), float(pixel_spacing[1])
    if not (r > 0 and c > 0 and math.isfinite(r) and math.isfinite(c)):
        return 1.0, 1.0, False
    return r, c, True


def roi_mask(kind: str, points: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Boolean (rows, cols) mask of the pixels whose centres lie inside a ``rect`` or ``ellipse`` ROI.

    Raises ValueError for other kinds.
    """
    if kind not in ("rect", "ellipse"):
        raise ValueError(f"{kind} is not an area ROI")
    (x0, y0), (x1, y1) = points
    xa, xb = sorted((x0, x1))
    ya, yb = sorted((y0, y1))
    rows, cols = int(shape[0]), int(shape[1])
    mask = np.zeros((rows, cols), dtype=bool)
    # Only the bounding box can be inside: evaluate there.
    j0, j1 = max(0, int(math.floor(xa - 0.5))), min(cols, int(math.ceil(xb + 0.5)))
    i0, i1 = max(0, int(math.floor(ya - 0.5))), min(rows, int(math.ceil(yb + 0.5)))
    if j0 >= j1 or i0 >= i1:
        return mask
    cx = np.arange(j0, j1) + 0.5
    cy = np.arange(i0, i1) + 0.5
    if kind == "rect":
        inside = ((cy >= ya) & (cy <= yb))[:, None] & ((cx >= xa) & (cx <= xb))[None, :]
    else:
        a, b = (xb - xa) / 2.0, (yb - ya) / 2.0
        if a <= 0 or b <= 0:
            return mask
        ex, ey = (xa + xb) / 2.0, (ya + yb) / 2.0
        inside = ((cx[None, :] - ex) / a) ** 2 + ((cy[:, None] - ey) / b) ** 2 <= 1.0
    mask[i0:i1, j0:j1] = inside
    return mask


def measure(annotation: Annotation, image: np.ndarray | None = None,
            pixel_spacing: tuple[float, float] | None = None, units: str = "", plane: str = "",
            padding: tuple[float, float] | None = None,
            us_regions: tuple[tuple[int, int, int, int, float, float], ...] = ()) -> Measurement:
    """Measure ``annotation`` on ``image``.

    image: (rows, cols) array of modality values (any real dtype; HU for CT), needed for ROI statistics only.
    pixel_spacing: (row, column) mm from PixelSpacing; None when the image has none (results in pixels, with
    :data:`NO_SPACING_WARNING`).
    units: the modality units of ``image`` ("HU" for CT, "" otherwise).
    plane: what the spacing measures on a projection radiograph (``Stack.spacing_note``), shown with the mm.
    padding: modality values that are pixel padding (``Volume.padding``, inclusive): left out of ROI statistics
        (PS3.3 C.7.5.1.1.2: padding is not image).
    us_regions: calibrated ultrasound regions (``Instance.us_regions``): without a PixelSpacing, a measurement
        whose points all lie in one region is in mm by that region's PhysicalDeltaX/Y (PS3.3 C.8.5.5.1); one
        that crosses regions or lies outside them stays in pixels with a warning.

    Length is Euclidean in mm, each axis scaled by its own spacing; the angle is measured in mm space too, so
    anisotropic pixels do not skew it. Raises ValueError when a ROI's image is not 2-D.
    """
    if pixel_spacing is None and us_regions and annotation.points:
        for rx0, ry0, rx1, ry1, dx, dy in us_regions:
            if all(rx0 <= px <= rx1 + 1 and ry0 <= py <= ry1 + 1 for px, py in annotation.points):
                pixel_spacing, plane = (dy, dx), "ultrasound region calibration"
                break
    sr, sc, calibrated = _spacing(pixel_spacing)
    warning = "" if calibrated else NO_SPACING_WARNING
    if not calibrated and us_regions:
        warning = "outside (or across) the calibrated ultrasound regions: sizes in pixels"
    m = Measurement(annotation.kind, calibrated=calibrated, units=units, warning=warning,
                    plane=plane if calibrated else "")
    p = annotation.points
    if annotation.kind == "length":
        (x0, y0), (x1, y1) = p
        m.length = math.hypot((x1 - x0) * sc, (y1 - y0) * sr)
    elif annotation.kind == "angle":
        (x0, y0), (xv, yv), (x2, y2) = p
        u = np.array([(x0 - xv) * sc, (y0 - yv) * sr])
        v = np.array([(x2 - xv) * sc, (y2 - yv) * sr])
        nu, nv = float(np.linalg.norm(u)), float(np.linalg.norm(v))
        if nu > 0 and nv > 0:
            m.angle_deg = math.degrees(math.acos(float(np.clip(u @ v / (nu * nv), -1.0, 1.0))))
        m.warning = ""  # an angle needs no calibration beyond the pixel aspect
    elif annotation.kind in ("rect", "ellipse"):
        (x0, y0), (x1, y1) = p
        w, h = abs(x1 - x0) * sc, abs(y1 - y0) * sr
        m.area = w * h if annotation.kind == "rect" else math.pi * (w / 2.0) * (h / 2.0)
        if image is not None:
            if image.ndim != 2:
                raise ValueError(f"ROI statistics need a 2-D image, got shape {image.shape}")
            values = image[roi_mask(annotation.kind, p, image.shape)]
            values = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
            if padding is not None:
                values = values[(values < padding[0]) | (values > padding[1])]
            if values.size:
                v = values.astype(np.float64)
                m.mean, m.minimum, m.maximum = float(v.mean()), float(v.min()), float(v.max())
                m.sd = float(v.std(ddof=1)) if v.size > 1 else 0.0
            m.n_pixels = int(values.size)
    else:  # arrow, text: marks, nothing to measure
        m.warning = ""
    return m
