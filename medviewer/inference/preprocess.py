"""Image -> model input, shared by training and inference, with the transform recorded for attribution maps.

Pipeline (issue #4, DICOM PS3.3 C.11 for the first three steps):

1. Modality LUT (RescaleSlope/Intercept or Modality LUT Sequence) -> modality values
   (:mod:`medviewer.inference.frames`, the one frame path every caller uses);
2. VOI: the object's first WindowCenter/WindowWidth (VOILUTFunction honoured), else its first VOI LUT Sequence
   table, else robust percentile scaling (0.5th..99.5th percentile -> 0..1);
3. MONOCHROME1 inversion (after VOI), so bone is bright and air dark as in the training images;
4. fit into the model's input (:func:`fit_to_input`): the card's ``input.fit`` says "squash" (the whole film
   resized to the input, aspect ratio not kept, as the kermany-224 training films were made) or "pad"
   (aspect-preserving resize and zero padding, the 28 x 28 model);
5. normalisation ``(x - mean) / std`` from the model card.

Training images (8-bit display images) enter at step 4 as ``uint8 / 255``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medviewer.imaging.voi import voi_lut_table, voi_window


@dataclass(frozen=True)
class FitTransform:
    """Where the original image sits inside the model input.

    Attributes
    ----------
    original_shape: (rows, cols) of the source image.
    input_shape: (height, width) of the model input.
    content_shape: (rows, cols) of the resized image inside the input.
    offset: (row, col) of the resized image's top-left corner inside the input (the padding before it).
    scale: input pixels per original pixel along the rows (and the columns, unless ``scale_x`` differs).
    scale_x: input pixels per original pixel along the columns (differs from ``scale`` for a squashed fit).
    """

    original_shape: tuple[int, int]
    input_shape: tuple[int, int]
    content_shape: tuple[int, int]
    offset: tuple[int, int]
    scale: float
    scale_x: float | None = None

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
                  monochrome1: bool = False, percentiles: tuple[float, float] = (0.5, 99.5),
                  voi_lut: tuple[tuple[int, int, int], np.ndarray] | None = None,
                  exclude: tuple[float, float] | None = None) -> np.ndarray:
    """Steps 2-3: modality values (rows, cols) -> float32 in [0, 1], bright = dense.

    ``window`` is (center, width, VOILUTFunction); else ``voi_lut`` (LUTDescriptor, LUTData) maps through the
    table (PS3.3 C.11.2.1.1); without either the ``percentiles`` range (of the pixels outside ``exclude``, the
    pixel padding) maps to [0, 1]. A window or table that cannot be applied (non-finite, inconsistent) falls back
    to the percentile scaling.
    """
    v = np.asarray(values, dtype=np.float32)
    y = None
    if window is not None and np.isfinite(window[0]) and np.isfinite(window[1]) and window[1] > 0:
        try:
            y = voi_window(v, window[0], max(window[1], 1.0), window[2] or "LINEAR")
        except ValueError:
            y = None
    elif voi_lut is not None:
        try:
            y = voi_lut_table(v, voi_lut[0], voi_lut[1])
        except ValueError:
            y = None
    if y is None:
        sample = v[:: max(1, v.shape[0] // 512), :: max(1, v.shape[1] // 512)].ravel()
        if exclude is not None:
            kept = sample[(sample < exclude[0]) | (sample > exclude[1])]
            sample = kept if kept.size else sample
        lo, hi = np.percentile(sample, percentiles)
        if hi <= lo:
            hi = lo + 1.0
        y = np.clip((v - np.float32(lo)) / np.float32(hi - lo), 0.0, 1.0).astype(np.float32)
    if monochrome1:
        y = np.float32(1.0) - y
    return y


def _resize(img: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Area averaging where an axis shrinks (PIL's box filter, as the training films were made), bilinear where it
    grows; float32 in and out."""
    if img.shape == (rows, cols):
        return img
    if rows <= img.shape[0] and cols <= img.shape[1]:
        from PIL import Image

        return np.asarray(Image.fromarray(img, mode="F").resize((cols, rows), Image.Resampling.BOX),
                          dtype=np.float32)
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(img))[None, None]
    return F.interpolate(t, size=(rows, cols), mode="bilinear", align_corners=False)[0, 0].numpy()


def fit_to_input(unit: np.ndarray, height: int, width: int, mode: str = "pad") -> tuple[np.ndarray, FitTransform]:
    """Step 4: fit a [0, 1] image (rows, cols) into (height, width).

    ``mode`` "pad": aspect-preserving resize, zero padding centred. "squash": the whole image resized to (height,
    width), aspect ratio not kept. Returns (float32 (height, width), FitTransform).

    Raises
    ------
    ValueError: unknown mode.
    """
    img = np.ascontiguousarray(np.asarray(unit, dtype=np.float32))
    rows, cols = img.shape
    if mode == "squash":
        out = _resize(img, height, width)
        return out, FitTransform((rows, cols), (height, width), (height, width), (0, 0), height / rows,
                                 width / cols)
    if mode != "pad":
        raise ValueError(f"unknown fit mode {mode!r}; expected 'pad' or 'squash'")
    scale = min(height / rows, width / cols)
    rh, cw = max(1, min(height, round(rows * scale))), max(1, min(width, round(cols * scale)))
    resized = _resize(img, rh, cw)
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
            window: tuple[float, float, str] | None = None, monochrome1: bool = False, fit: str = "pad",
            voi_lut: tuple[tuple[int, int, int], np.ndarray] | None = None,
            exclude: tuple[float, float] | None = None) -> Prepared:
    """Steps 2-5 for one image of modality values (rows, cols) (or an (rows, cols, 3) RGB image, made grey)."""
    v = np.asarray(values)
    if v.ndim == 3:
        v = v.astype(np.float32).mean(axis=2)
        window, monochrome1, voi_lut = None, False, None
    unit = to_unit_range(v, window, monochrome1, voi_lut=voi_lut, exclude=exclude)
    c, h, w = input_shape
    fitted, transform = fit_to_input(unit, h, w, fit)
    arr = np.repeat(normalise(fitted, mean, std)[None], c, axis=0)
    return Prepared(arr, transform, unit)


def prepare_training_images(images: np.ndarray, mean: float, std: float) -> np.ndarray:
    """PneumoniaMNIST-style uint8 (n, 28, 28) -> float32 (n, 1, 28, 28) through steps 4-5 (identity resize)."""
    unit = np.asarray(images, dtype=np.float32) / np.float32(255.0)
    return normalise(unit, mean, std)[:, None]
