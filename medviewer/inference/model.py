"""The image classifier networks (small ResNets, He et al., "Deep Residual Learning", CVPR 2016):
:class:`SmallResNet` for 1-channel 28 x 28 radiographs (``pneumonia-cnn``) and :class:`ChestEnsemble` of
multi-scale :class:`ChestNet` members for 224 x 224 films (``pneumonia-chest224``). torch is imported here, so
import this module lazily."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or 1x1 projection) shortcut."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=False)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """Input (N, channels, H, W) float32 -> logits (N, n_classes).

    Stages: stem 3x3 conv (width), then [2 blocks] at width, 2*width (stride 2), 4*width (stride 2), global average
    pooling, dropout, linear. ``layer3`` (the last stage, 7x7 for a 28x28 input) is the Grad-CAM layer.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 32, dropout: float = 0.2):
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(w, w), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


class ChestNet(nn.Module):
    """One multi-scale member: input (N, 1, 224, 224) float32 in [0, 1] -> logits (N, n_classes).

    The film is first standardised per image (zero mean, unit variance: exposure and contrast differ between
    sites and between Kermany's train and test splits), area-pooled by ``input_pool`` (8: the network sees a
    28 x 28 film, 4: 56 x 56, 2: 112 x 112), brought to at most 56 x 56 by stride-2 stem convolutions, then three
    residual stages (``width``, 2x, 4x channels) that end at 14 x 14 cells (stride 2 while the grid is larger).
    ``layer3`` (14 x 14 for a 224 input) is the Grad-CAM layer;
    :meth:`features` is the global-average-pooled ``layer3`` output (N, 4 * width), used by the
    out-of-distribution score.
    """

    def __init__(self, in_channels: int = 1, n_classes: int = 2, width: int = 16, input_pool: int = 4,
                 input_size: int = 224, blocks: tuple[int, int, int] = (1, 2, 2), dropout: float = 0.2):
        super().__init__()
        w = width
        self.input_pool = int(input_pool)
        size = input_size // self.input_pool
        stem: list[nn.Module] = [nn.Conv2d(in_channels, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
        while size > 56:
            stem += [nn.Conv2d(w, w, 3, 2, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU()]
            size //= 2
        self.stem = nn.Sequential(*stem)

        def stage(c_in: int, c_out: int, n: int, stride: int) -> nn.Sequential:
            return nn.Sequential(BasicBlock(c_in, c_out, stride), *[BasicBlock(c_out, c_out) for _ in range(n - 1)])

        s2 = 2 if size > 14 else 1
        s3 = 2 if size // s2 > 14 else 1
        self.layer1 = stage(w, w, blocks[0], 1)
        self.layer2 = stage(w, 2 * w, blocks[1], s2)
        self.layer3 = stage(2 * w, 4 * w, blocks[2], s3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * w, n_classes)

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        std = x.std(dim=(1, 2, 3), keepdim=True).clamp(min=1e-3)
        x = (x - mean) / std
        if self.input_pool > 1:
            x = nn.functional.avg_pool2d(x, self.input_pool)
        return x

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer3(self.layer2(self.layer1(self.stem(self.standardise(x)))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.feature_map(x)), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(self.features(x)))


class ChestEnsemble(nn.Module):
    """Mean of the members' logits divided by a calibration ``temperature`` (Guo et al., ICML 2017).

    Input (N, 1, H, W) float32 in [0, 1]; output calibrated logits (N, n_classes). :meth:`features` concatenates
    the members' pooled features (N, sum of 4 * width) for the out-of-distribution score; ``ood_mean`` (n_classes,
    D) and ``ood_precision`` (D, D) are the class means and shared shrunk precision matrix of those features on the
    training films (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
    Adversarial Attacks", NeurIPS 2018), stored with the weights.
    """

    temperature: torch.Tensor
    ood_mean: torch.Tensor
    ood_precision: torch.Tensor

    def __init__(self, members: list[dict], n_classes: int = 2):
        super().__init__()
        nets = [ChestNet(n_classes=n_classes, **m) for m in members]
        self.members = nn.ModuleList(nets)
        dim = sum(net.fc.in_features for net in nets)
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("ood_mean", torch.zeros(n_classes, dim))
        self.register_buffer("ood_precision", torch.eye(dim))

    def nets(self) -> list[ChestNet]:
        """The members as ChestNets (iterating the nn.ModuleList gives them typed as plain nn.Module)."""
        return [cast(ChestNet, m) for m in self.members]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([m(x) for m in self.members]).mean(0)
        return logits / self.temperature

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.features(x) for m in self.nets()], 1)

    def _mahalanobis(self, f: torch.Tensor) -> torch.Tensor:
        d = f[:, None, :] - self.ood_mean[None]
        m = torch.einsum("ncd,de,nce->nc", d, self.ood_precision, d)
        return m.min(1).values.clamp(min=0).sqrt()

    def ood_score(self, x: torch.Tensor) -> torch.Tensor:
        """Minimum class-conditional Mahalanobis distance (N,) of the pooled features; larger = further from the
        training films."""
        return self._mahalanobis(self.features(x))

    def forward_with_ood(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(calibrated logits (N, n_classes), OOD score (N,)) in one pass."""
        nets = self.nets()
        feats = [m.features(x) for m in nets]
        logits = torch.stack([m.fc(m.dropout(f)) for m, f in zip(nets, feats)]).mean(0)
        return logits / self.temperature, self._mahalanobis(torch.cat(feats, 1))


ARCHITECTURES = {"SmallResNet": SmallResNet, "ChestNet": ChestNet, "ChestEnsemble": ChestEnsemble}


def build_model(architecture: dict) -> nn.Module:
    """Instantiate the network a card's ``architecture`` describes ({"name": ..., "kwargs": {...}}).

    Raises
    ------
    ValueError: unknown architecture name.
    """
    name = architecture.get("name")
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](**architecture.get("kwargs", {}))
