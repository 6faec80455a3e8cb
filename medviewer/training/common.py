"""Pieces the image-model training scripts share: seeding and the exponential moving average of the weights."""

from __future__ import annotations

import random

import numpy as np

__all__ = ["seed_everything", "ema_update"]


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch; deterministic torch algorithms where they exist (warn otherwise)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def ema_update(ema, model, step: int, decay: float) -> None:  # noqa: ANN001 - torch modules
    """Polyak averaging (Polyak & Juditsky, SIAM J. Control Optim. 1992) of ``model`` into ``ema`` after
    optimiser step ``step`` (0-based), with the usual warm-up min(decay, (1 + step) / (10 + step)); buffers
    (BatchNorm statistics) are copied."""
    import torch

    d = min(decay, (1 + step) / (10 + step))
    with torch.no_grad():
        for pe, pm in zip(ema.parameters(), model.parameters()):
            pe.mul_(d).add_(pm.detach(), alpha=1 - d)
        for be, bm in zip(ema.buffers(), model.buffers()):
            be.copy_(bm)
