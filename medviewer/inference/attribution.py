"""Attribution maps: where the CNN looked.

* Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based Localization",
  ICCV 2017) on the card's ``attribution_layer``, through captum's ``LayerGradCam`` (captum registers and releases
  its hooks inside each call), ReLU'd and upsampled to the input with ``LayerAttribution.interpolate``.
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


def attribution_maps(model: nn.Module, inputs: torch.Tensor, target: int, *, method: str = "gradcam",
                     layer: str = "layer3") -> np.ndarray:
    """Attribution of class ``target`` for each input.

    Parameters
    ----------
    model: the network in eval mode.
    inputs: (N, C, H, W) float32 model inputs.
    target: class index to explain.
    method: "gradcam", "integrated_gradients" or "occlusion".
    layer: the module name Grad-CAM uses (the card's ``attribution_layer``).

    Returns
    -------
    float32 (N, H, W) in [0, 1] on the input grid.

    Raises
    ------
    ValueError: unknown method.
    """
    from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion

    was_training = model.training
    model.eval()
    try:
        x = inputs.detach().clone().requires_grad_(method != "occlusion")
        if method == "gradcam":
            cam = LayerGradCam(model, _layer(model, layer)).attribute(x, target=target, relu_attributions=True)
            up = LayerAttribution.interpolate(cam, tuple(inputs.shape[-2:]), interpolate_mode="bilinear")
            return _normalise(up[:, 0])
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
