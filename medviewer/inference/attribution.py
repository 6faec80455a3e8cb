"""Attribution maps: where the CNN looked.

* Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
  ICCV 2017) on the card's ``attribution_layer``, through captum's ``LayerGradCam`` (captum registers and releases
  its hooks inside each call), ReLU'd and upsampled to the input with ``LayerAttribution.interpolate``. For an
  ensemble the card names one layer per member (comma-separated); the ensemble's logit is the mean of the
  members', so its Grad-CAM is the sum of the members' maps (each taken against the ensemble output) before the
  ReLU.
* Integrated Gradients (Sundararajan et al., "Axiomatic Attribution for Deep Networks", ICML 2017) from a black
  baseline, through captum's ``IntegratedGradients``.
* Occlusion (Zeiler & Fergus, ECCV 2014) with 4x4 patches, through captum's ``Occlusion``.

Every map is returned on the model input grid (height, width), non-negative and scaled to [0, 1]; map it back to
the original image with :meth:`medviewer.inference.preprocess.FitTransform.to_original`. torch and captum are
imported here: import this module lazily.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

METHODS = ("gradcam", "integrated_gradients", "occlusion")


def _layer(model: nn.Module, name: str) -> nn.Module:
    module = model
    for part in name.split("."):
        module = getattr(module, part)
    return module


def _normalise(maps: torch.Tensor) -> np.ndarray:
    """(N, H, W) -> float32 in [0, 1] per map (all-zero maps stay zero)."""
    m = maps.detach().float().clamp(min=0)
    peak = m.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    return (m / peak).cpu().numpy().astype(np.float32)


def gradcam(model: nn.Module, x: torch.Tensor, target: int, layers: list[str]) -> torch.Tensor:
    """Grad-CAM of class ``target`` over one or more layers in one forward and one backward pass (captum's
    ``compute_layer_gradients_and_eval`` with a list of layers, the same weights LayerGradCam computes: the
    spatial mean of each channel's gradient times its activation, summed over channels). Maps on the same grid are
    summed and ReLU'd there, then upsampled to the input (``LayerAttribution.interpolate``, bilinear), as in the
    paper; maps on different grids are upsampled first. Returns (N, H, W) float32.

    Raises
    ------
    ValueError: no layer named.
    """
    from captum._utils.gradient import compute_layer_gradients_and_eval
    from captum.attr import LayerAttribution

    if not layers:
        raise ValueError("no Grad-CAM layer named")
    modules = [_layer(model, name) for name in layers]
    grads, evals = compute_layer_gradients_and_eval(model, modules, x, target)
    cams = []
    for g, a in zip(grads, evals):
        g, a = g[0] if isinstance(g, tuple) else g, a[0] if isinstance(a, tuple) else a
        cams.append((g.mean(dim=(2, 3), keepdim=True) * a).sum(1, keepdim=True))
    if len({c.shape for c in cams}) == 1:  # same grid (the ensemble's 14 x 14 maps): ReLU on it, as the paper
        total = torch.stack(cams).sum(0).clamp(min=0)
        return LayerAttribution.interpolate(total, tuple(x.shape[-2:]), interpolate_mode="bilinear")[:, 0]
    ups = [LayerAttribution.interpolate(c, tuple(x.shape[-2:]), interpolate_mode="bilinear") for c in cams]
    return torch.stack(ups).sum(0)[:, 0].clamp(min=0)


def attribution_maps(model: nn.Module, inputs: torch.Tensor, target: int, *, method: str = "gradcam",
                     layer: str = "layer3") -> np.ndarray:
    """Attribution of class ``target`` for each input.

    Parameters
    ----------
    model: the network in eval mode.
    inputs: (N, C, H, W) float32 model inputs.
    target: class index to explain.
    method: "gradcam", "integrated_gradients" or "occlusion".
    layer: the module name(s) Grad-CAM uses (the card's ``attribution_layer``; comma-separated for an
        ensemble).

    Returns
    -------
    float32 (N, H, W) in [0, 1] on the input grid.

    Raises
    ------
    ValueError: unknown method.
    """
    from captum.attr import IntegratedGradients, Occlusion

    was_training = model.training
    model.eval()
    try:
        x = inputs.detach().clone().requires_grad_(method != "occlusion")
        if method == "gradcam":
            return _normalise(gradcam(model, x, target, [n.strip() for n in layer.split(",") if n.strip()]))
        if method == "integrated_gradients":
            baseline = torch.full_like(x, float(inputs.min()))
            attr = IntegratedGradients(model).attribute(x, baselines=baseline, target=target, n_steps=32)
            return _normalise(attr.abs().sum(1))
        if method == "occlusion":
            attr = Occlusion(model).attribute(x, target=target, sliding_window_shapes=(inputs.shape[1], 4, 4),
                                              strides=(inputs.shape[1], 2, 2), baselines=float(inputs.min()))
            return _normalise(attr.sum(1))
        raise ValueError(f"unknown attribution method {method!r}; expected one of {METHODS}")
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
