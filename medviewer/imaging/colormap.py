"""Colour maps for overlays (attribution heat maps), shared by the viewer and the report renderer."""

from __future__ import annotations

import numpy as np


def heat_lut() -> np.ndarray:
    """(256, 4) uint8 RGBA lookup table of the heat-map colour map ("turbo"-like: blue -> green -> yellow ->
    red), transparent at 0 so cold regions leave the image untouched (alpha rises linearly to opaque at 1/3)."""
    x = np.linspace(0, 1, 256)
    r = np.clip(1.5 - np.abs(4 * x - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * x - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * x - 1), 0, 1)
    a = np.clip(x * 3, 0, 1)
    return (np.stack([r, g, b, a], 1) * 255).astype(np.uint8)
