"""Annotation geometry helpers of the layer and the drawing tools (image pixel coordinates, Qt-free)."""

from __future__ import annotations

from medviewer.imaging.annotations import Annotation

__all__ = ["BOX_KINDS", "norm_box", "same_points"]

Points = list[tuple[float, float]]

#: The kinds drawn as a box (two opposite corners).
BOX_KINDS = ("rect", "ellipse")


def norm_box(points: Points) -> Points:
    """The two corners ``points`` of a box as (top-left, bottom-right)."""
    (x0, y0), (x1, y1) = points
    return [(min(x0, x1), min(y0, y1)), (max(x0, x1), max(y0, y1))]


def same_points(a: Annotation, b: Annotation, tol: float = 1e-6) -> bool:
    """Same geometry (boxes compared as normalised corners)."""
    pa, pb = a.points, b.points
    if a.kind in BOX_KINDS:
        pa, pb = norm_box(pa), norm_box(pb)
    return len(pa) == len(pb) and all(abs(x0 - x1) <= tol and abs(y0 - y1) <= tol
                                      for (x0, y0), (x1, y1) in zip(pa, pb))
