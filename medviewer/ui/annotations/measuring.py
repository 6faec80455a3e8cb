"""Where an annotation's image is in a viewer's volume, and what the annotation measures there (cached)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from medviewer.imaging.annotations import Annotation, Measurement, measure
from medviewer.ui.annotations.points import BOX_KINDS

if TYPE_CHECKING:
    from medviewer.imaging.volume import Volume
    from medviewer.ui.viewer import ImageViewer

__all__ = ["ImageKey", "Measurer"]

#: An image: (SOPInstanceUID, frame), frame 0-based.
ImageKey = tuple[str, int]


class Measurer:
    """The images of ``viewer``'s volume (the one on screen, the slice of any other) and what annotations measure
    on them: with the slice's modality values (HU for CT; for colour images the mean of R, G, B), the stack's
    PixelSpacing and the volume's units. Measurements are cached per annotation."""

    def __init__(self, viewer: ImageViewer):
        self.viewer = viewer
        self._cache: dict[str, tuple[tuple[Any, ...], Measurement]] = {}  # uid -> (what was measured, result)
        self._cache_vol: Volume | None = None
        self._slice_index: tuple[Volume, int, dict[ImageKey, int]] | None = None  # (volume, n slices, index)

    def reset(self, vol: Volume | None) -> None:
        """Forget every measurement and the slice index: the viewer shows volume ``vol`` now."""
        self._cache.clear()
        self._cache_vol = vol  # (keeping no reference to a volume the viewer dropped)
        self._slice_index = None

    def clear(self) -> None:
        """Forget every measurement (other annotations)."""
        self._cache.clear()

    def forget(self, uid: str) -> None:
        """Forget what annotation ``uid`` measured."""
        self._cache.pop(uid, None)

    def current_key(self) -> ImageKey | None:
        """(SOPInstanceUID, frame) of the image on screen, or None (no volume, or a volume without a stack)."""
        vol = self.viewer.volume
        if vol is None or vol.stack is None:
            return None
        k = int(self.viewer.state.index)
        if not 0 <= k < len(vol.stack.slices):
            return None
        ref = vol.stack.slices[k]
        return ref.instance.sop_instance_uid, int(ref.frame.index)

    def scale(self) -> tuple[float, float]:
        """(column, row) pixel spacing of the volume on screen: mm per image pixel in the view (1 without one)."""
        vol = self.viewer.volume
        if vol is None:
            return 1.0, 1.0
        return float(vol.spacing[2]) or 1.0, float(vol.spacing[1]) or 1.0

    def slice_of(self, key: ImageKey) -> int | None:
        """The slice (0-based) of image ``key`` in the viewer's volume, or None when it is not there."""
        vol = self.viewer.volume
        if vol is None or vol.stack is None:
            return None
        k = int(self.viewer.state.index)
        if self.current_key() == key:
            return k
        slices = vol.stack.slices
        cached = self._slice_index
        if cached is None or cached[0] is not vol or cached[1] != len(slices):
            index: dict[ImageKey, int] = {}
            for n, ref in enumerate(slices):
                index.setdefault((ref.instance.sop_instance_uid, int(ref.frame.index)), n)
            self._slice_index = cached = (vol, len(slices), index)
        return cached[2].get(key)

    def measure(self, ann: Annotation) -> Measurement:
        """What ``ann`` measures (cached per annotation: the same geometry on the same, equally decoded, slice of
        the same volume measures the same). An annotation of an image outside the volume is measured without image
        and spacing (pixels). The result is shared: do not modify it."""
        vol = self.viewer.volume
        k = self.slice_of((ann.sop_instance_uid, ann.frame))
        if vol is None or k is None:
            return measure(ann)
        ready = vol.ready is None or bool(vol.ready[k])
        if self._cache_vol is not vol:
            self._cache.clear()
            self._cache_vol = vol
        ck = (ann.kind, tuple(ann.points), ann.sop_instance_uid, ann.frame, k, vol.ready is None, ready)
        hit = self._cache.get(ann.uid)
        if hit is not None and hit[0] == ck:
            return hit[1]
        image = None
        if ann.kind in BOX_KINDS and ready:
            image = vol.array[k]
            if image.ndim == 3:  # colour: mean of the channels
                image = image.astype(np.float32).mean(axis=-1)
        spacing = vol.stack.pixel_spacing if vol.stack is not None else None
        plane = vol.stack.spacing_note if vol.stack is not None else ""
        units = "" if vol.is_color else vol.units
        inst = vol.stack.slices[k].instance if vol.stack is not None else None
        m = measure(ann, image, spacing, units, plane, vol.padding, inst.us_regions if inst is not None else ())
        self._cache[ann.uid] = (ck, m)
        return m
