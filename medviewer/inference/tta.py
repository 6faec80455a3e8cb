"""Test-time augmentation (TTA) of an image model's input: named views of the film, averaged in logit space.

A card may carry an ``inference`` block (``{"tta": ["identity", "zoom0.92", ...], ...}``); the scorer
(:meth:`medviewer.inference.scorer.ImageModel.predict_with_ood`) then scores every view of each film in one batch
and averages the (temperature-scaled) logits over the views. The first view must be ``identity``: the
out-of-distribution score of the intended-use gate and the attribution maps are those of the film as it is. The
selection script (:mod:`medviewer.training.select_chest224_inference`) uses the same functions, so what was
chosen on validation is exactly what the product runs.

Views act on the model input (N, C, H, W), a film in [0, 1] (cards with input mean 0 and std 1):

* ``identity``;
* ``hflip``: mirrored left-right;
* ``zoomS``: scaled by S about the centre (S > 1 crops, S < 1 shrinks with a black border), bilinear, as the
  training augmentation's affine (``torch.nn.functional.affine_grid``/``grid_sample``, zeros outside);
* ``shiftX,Y``: translated by X and Y fractions of the width and height (black border);
* ``gammaG``: ``x ** G`` (G < 1 brightens, G > 1 darkens).

torch is imported on first use.
"""

from __future__ import annotations

import re

__all__ = ["VIEW_PATTERN", "check_views", "apply_view", "expand", "average"]

VIEW_PATTERN = re.compile(r"^(identity|hflip|zoom(?P<zoom>\d+(\.\d+)?)|"
                          r"shift(?P<dx>[+-]?\d+(\.\d+)?),(?P<dy>[+-]?\d+(\.\d+)?)|gamma(?P<gamma>\d+(\.\d+)?))$")


def check_views(views: list[str] | tuple[str, ...]) -> list[str]:
    """The views as a list, validated: known names, sane parameters, ``identity`` first.

    Raises
    ------
    ValueError: empty list, an unknown view, a parameter out of range (zoom 0.5-2, shift up to 0.25, gamma
        0.25-4), or a first view other than ``identity``.
    """
    views = [str(v) for v in views]
    if not views or views[0] != "identity":
        raise ValueError(f"TTA views must start with 'identity', got {views!r}")
    if len(views) > 16:
        raise ValueError(f"{len(views)} TTA views: at most 16")
    for v in views:
        m = VIEW_PATTERN.match(v)
        if m is None:
            raise ValueError(f"unknown TTA view {v!r}")
        if m["zoom"] is not None and not 0.5 <= float(m["zoom"]) <= 2.0:
            raise ValueError(f"TTA view {v!r}: zoom outside 0.5-2")
        if m["dx"] is not None and max(abs(float(m["dx"])), abs(float(m["dy"]))) > 0.25:
            raise ValueError(f"TTA view {v!r}: shift over 0.25")
        if m["gamma"] is not None and not 0.25 <= float(m["gamma"]) <= 4.0:
            raise ValueError(f"TTA view {v!r}: gamma outside 0.25-4")
    return views


def _affine(x, sx: float, sy: float, tx: float, ty: float):  # noqa: ANN001, ANN202 - torch tensors
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    theta = torch.tensor([[1.0 / sx, 0.0, tx], [0.0, 1.0 / sy, ty]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta.expand(n, 2, 3), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def apply_view(x, view: str):  # noqa: ANN001, ANN201 - torch tensors
    """One view of a batch (N, C, H, W) float in [0, 1] (see the module docstring)."""
    import torch

    m = VIEW_PATTERN.match(view)
    if m is None:
        raise ValueError(f"unknown TTA view {view!r}")
    if view == "identity":
        return x
    if view == "hflip":
        return torch.flip(x, dims=[3])
    if m["zoom"] is not None:
        s = float(m["zoom"])
        return _affine(x, s, s, 0.0, 0.0)
    if m["dx"] is not None:
        # affine_grid works in [-1, 1]: a shift of f of the width is 2 f there; the output at u samples u + t, so
        # the content moves by -t: negate to move it by +f.
        return _affine(x, 1.0, 1.0, -2.0 * float(m["dx"]), -2.0 * float(m["dy"]))
    return x.clamp(0, 1) ** float(m["gamma"])


def expand(x, views: list[str]):  # noqa: ANN001, ANN201 - torch tensors
    """(N, C, H, W) -> (V * N, C, H, W): every view of the batch, view-major (rows k*N..(k+1)*N-1 are view k)."""
    import torch

    if len(views) == 1 and views[0] == "identity":
        return x
    return torch.cat([apply_view(x, v) for v in views], 0)


def average(logits, n_views: int):  # noqa: ANN001, ANN201 - torch tensors
    """(V * N, K) view-major logits -> (N, K), the mean over the views (logit space)."""
    if n_views == 1:
        return logits
    return logits.reshape(n_views, -1, logits.shape[-1]).mean(0)
