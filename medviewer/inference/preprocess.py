"""Image -> model input, shared by training and inference, with the transform recorded for attribution maps.

Pipeline (issue #4, DICOM PS3.3 C.11 for the first three steps):

1. Modality LUT (RescaleSlope/Intercept) -> modality values;
2. VOI: the object's first WindowCenter/WindowWidth (VOILUTFunction honoured), or robust percentile scaling
   (0.5th..99.5th percentile -> 0..1) when it has none;
3. MONOCHROME1 inversion (after VOI), so bone is bright and air dark as in the training images;
4. aspect-preserving resize into the model's input and zero padding to its size (:func:`fit_to_input`);
5. normalisation ``(x - mean) / std`` from the model card.

The training images (PneumoniaMNIST, 28x28 8-bit display images) enter at step 4 as ``uint8 / 255``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.imaging.voi import voi_window


@dataclass(frozen=True)
class FitTransform:
    """Where the original image sits inside the model input.

    Attributes
    ----------
    original_shape: (rows, cols) of the source image.
    input_shape: (height, width) of the model input.
    content_shape: (rows, cols) of the resized image inside the input.
    offset: (row, col) of the resized image's top-left corner inside the input (the padding before it).
    scale: input pixels per original pixel (same along both axes).
    """

    original_shape: tuple[int, int]
    input_shape: tuple[int, int]
    content_shape: tuple[int, int]
    offset: tuple[int, int]
    scale: float

    def to_original(self, heat: np.ndarray) -> np.ndarray:
        """Map an (height, width) array on the model input back onto the original (rows, cols) pixel grid:
        the padding is cut away and the content is resized bilinearly. Returns float32 (rows, cols)."""
        import torch
        import torch.nn.functional as F

        heat = np.asarray(heat, dtype=np.float32)
        if heat.shape != self.input_shape:
            raise ValueError(f"map shape {heat.shape} differs from the input shape {self.input_shape}")
        r0, c0 = self.offset
        rh, cw = self.content_shape
        content = torch.from_numpy(np.ascontiguousarray(heat[r0:r0 + rh, c0:c0 + cw]))[None, None]
        out = F.interpolate(content, size=self.original_shape, mode="bilinear", align_corners=False)
        return out[0, 0].numpy().astype(np.float32)


def to_unit_range(values: np.ndarray, window: tuple[float, float, str] | None = None,
                  monochrome1: bool = False, percentiles: tuple[float, float] = (0.5, 99.5)) -> np.ndarray:
    """Steps 2-3: modality values (rows, cols) -> float32 in [0, 1], bright = dense.

    ``window`` is (center, width, VOILUTFunction); without it the ``percentiles`` range maps to [0, 1].
    """
    v = np.asarray(values, dtype=np.float32)
    if window is not None and window[1] > 0:
        y = voi_window(v, window[0], max(window[1], 1.0), window[2] or "LINEAR")
    else:
        lo, hi = np.percentile(v[:: max(1, v.shape[0] // 512), :: max(1, v.shape[1] // 512)], percentiles)
        if hi <= lo:
            hi = lo + 1.0
        y = np.clip((v - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)
    if monochrome1:
        y = np.float32(1.0) - y
    return y


def fit_to_input(unit: np.ndarray, height: int, width: int) -> tuple[np.ndarray, FitTransform]:
    """Step 4: aspect-preserving resize (area-averaging when shrinking) into (height, width), zero padding centred.

    Returns (float32 (height, width), FitTransform).
    """
    import torch
    import torch.nn.functional as F

    img = np.asarray(unit, dtype=np.float32)
    rows, cols = img.shape
    scale = min(height / rows, width / cols)
    rh, cw = max(1, min(height, round(rows * scale))), max(1, min(width, round(cols * scale)))
    if (rh, cw) == (rows, cols):
        resized = img
    else:
        t = torch.from_numpy(np.ascontiguousarray(img))[None, None]
        mode = "area" if scale < 1 else "bilinear"
        kwargs = {} if mode == "area" else {"align_corners": False}
        resized = F.interpolate(t, size=(rh, cw), mode=mode, **kwargs)[0, 0].numpy()
    out = np.zeros((height, width), dtype=np.float32)
    r0, c0 = (height - rh) // 2, (width - cw) // 2
    out[r0:r0 + rh, c0:c0 + cw] = resized
    return out, FitTransform((rows, cols), (height, width), (rh, cw), (r0, c0), float(scale))


def normalise(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Step 5: (x - mean) / std, float32."""
    return ((np.asarray(x, dtype=np.float32) - np.float32(mean)) / np.float32(std)).astype(np.float32)


@dataclass
class Prepared:
    """A model-ready image: ``array`` (channels, height, width) float32 and its :class:`FitTransform`; ``unit`` is
    the [0, 1] image before fitting (for overlays)."""

    array: np.ndarray
    transform: FitTransform
    unit: np.ndarray


def prepare(values: np.ndarray, *, input_shape: tuple[int, int, int], mean: float, std: float,
            window: tuple[float, float, str] | None = None, monochrome1: bool = False) -> Prepared:
    """Steps 2-5 for one image of modality values (rows, cols) (or an (rows, cols, 3) RGB image, made grey)."""
    v = np.asarray(values)
    if v.ndim == 3:
        v = v.astype(np.float32).mean(axis=2)
        window, monochrome1 = None, False
    unit = to_unit_range(v, window, monochrome1)
    c, h, w = input_shape
    fitted, transform = fit_to_input(unit, h, w)
    arr = np.repeat(normalise(fitted, mean, std)[None], c, axis=0)
    return Prepared(arr, transform, unit)


def prepare_training_images(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """PneumoniaMNIST-style uint8 (n, 28, 28) -> float32 (n, 1, 28, 28) through steps 4-5 (identity resize)."""
    unit = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    return normalise(unit, mean, std)[:, None]
