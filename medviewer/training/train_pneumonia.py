"""Train the chest X-ray pneumonia CNN on PneumoniaMNIST and write ``models/pneumonia-cnn/``.

    python -m medviewer.training.train_pneumonia [--data ../shared/data/pneumoniamnist/pneumoniamnist.npz]
                                                [--out models/pneumonia-cnn] [--epochs 30] [--seed 0]

Protocol: the official MedMNIST v2 splits (Yang et al., Scientific Data 2023; images from Kermany et al., Cell
2018). Train on ``train``; choose the epoch (best validation AUC of the EMA weights) and the decision threshold
(Youden's J on validation, a rule that does not assume the class balance of the test split) on ``val``; evaluate
on ``test`` once, at the end, for the model card. Seeded; CPU only; about 20 minutes on 2 cores.

Images enter through :func:`medviewer.inference.preprocess.prepare_training_images`, the same normalisation the app
applies at inference after windowing and fitting a DICOM image.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from typing import Any
from pathlib import Path

import numpy as np

from medviewer.config import PROJECT_ROOT
from medviewer.inference.card import sha256_file
from medviewer.inference.preprocess import prepare_training_images
from medviewer.training.common import ema_update, seed_everything
from medviewer.training.metrics import metrics_at, youden_threshold

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist.npz"
DEFAULT_OUT = PROJECT_ROOT / "models" / "pneumonia-cnn"
LABELS = ["normal", "pneumonia"]


def augment(x, generator):  # noqa: ANN001, ANN201 - torch tensors
    """Random affine (rotation +-10 degrees, scale 0.9-1.1, shift +-8 %), horizontal flip, and contrast /
    brightness / gamma jitter on a batch in [0, 1] (N, 1, H, W). Pure torch (no torchvision)."""
    import torch
    import torch.nn.functional as F

    n = x.shape[0]
    ang = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(10)
    scale = 1 + (torch.rand(n, generator=generator) * 2 - 1) * 0.1
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.08
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1),
                         torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    gamma = torch.exp((torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * 0.25)
    x = x.clamp(0, 1) ** gamma
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * 0.2
    bright = (torch.rand(n, 1, 1, 1, generator=generator) * 2 - 1) * 0.08
    mean = x.mean(dim=(2, 3), keepdim=True)
    return ((x - mean) * contrast + mean + bright).clamp(0, 1)


def predict(model, x, batch: int = 512) -> np.ndarray:  # noqa: ANN001
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(torch.softmax(model(x[i:i + batch]), 1)[:, 1])
    return torch.cat(out).numpy().astype(np.float64)


def train(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from medviewer.inference.model import SmallResNet

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    data = np.load(args.data)
    ytr = data["train_labels"].ravel().astype(np.int64)
    yva = data["val_labels"].ravel().astype(np.int64)
    yte = data["test_labels"].ravel().astype(np.int64)
    unit_tr = data["train_images"].astype(np.float32) / 255.0
    mean, std = float(unit_tr.mean()), float(unit_tr.std())
    xtr_unit = torch.from_numpy(unit_tr[:, None])
    xva = torch.from_numpy(prepare_training_images(data["val_images"], mean, std))
    xte = torch.from_numpy(prepare_training_images(data["test_images"], mean, std))

    arch: dict[str, Any] = {"name": "SmallResNet", "kwargs": {"in_channels": 1, "n_classes": 2,
                                                               "width": args.width, "dropout": 0.2}}
    model = SmallResNet(**arch["kwargs"])
    ema = SmallResNet(**arch["kwargs"])
    ema.load_state_dict(model.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    counts = np.bincount(ytr, minlength=2)
    class_weight = torch.tensor(len(ytr) / (2.0 * counts), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(ytr) / args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch,
                                                pct_start=0.15)
    gen = torch.Generator().manual_seed(args.seed)
    ytr_t = torch.from_numpy(ytr)
    best = {"auc": -1.0}
    best_state = None
    history = []
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = (augment(xtr_unit[idx], gen) - mean) / std
            loss = F.cross_entropy(model(xb), ytr_t[idx], weight=class_weight, label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss) * len(idx)
            ema_update(ema, model, epoch * steps_per_epoch + i, args.ema)
        p_val = predict(ema, xva)
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(yva, p_val))
        history.append({"epoch": epoch + 1, "train_loss": total / len(ytr), "val_auc": auc,
                        "seconds": round(time.time() - t0, 1)})
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {total / len(ytr):.4f}  val AUC {auc:.4f}  "
              f"{time.time() - t0:6.0f} s", flush=True)
        if auc >= best["auc"]:
            best = {"auc": auc, "epoch": epoch + 1}
            best_state = {k: v.detach().clone() for k, v in ema.state_dict().items()}
    train_seconds = time.time() - t0
    if best_state is None:  # no epoch ran (--epochs 0) or the validation AUC was never a number
        raise RuntimeError("no epoch gave a validation AUC: nothing to keep")
    ema.load_state_dict(best_state)
    p_val = predict(ema, xva)
    threshold = youden_threshold(p_val, yva)
    val_metrics = metrics_at(p_val, yva, threshold)
    # The test split is used once, here, for the card.
    p_test = predict(ema, xte)
    test_metrics = metrics_at(p_test, yte, threshold)
    test_at_half = metrics_at(p_test, yte, 0.5)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(weights),
              metadata={"name": "pneumonia-cnn", "format": "pt"})
    card = {
        "name": "pneumonia-cnn",
        "version": args.version,
        "task": "binary classification of a frontal chest radiograph: normal vs pneumonia",
        "labels": LABELS,
        "positive_label": "pneumonia",
        "architecture": arch,
        "parameters": int(sum(p.numel() for p in ema.parameters())),
        "input": {"channels": 1, "height": 28, "width": 28, "mean": mean, "std": std},
        "preprocessing": {
            "steps": ["modality LUT (RescaleSlope/Intercept)",
                      "VOI: first WindowCenter/WindowWidth, else 0.5-99.5 percentile scaling to [0, 1]",
                      "MONOCHROME1 inverted after VOI",
                      "aspect-preserving area resize into 28x28, zero padding centred",
                      "(x - mean) / std"],
            "code": "medviewer.inference.preprocess.prepare",
            "training_images": "PneumoniaMNIST uint8 / 255 (already 28x28 display images)",
        },
        "attribution_layer": "layer3",
        "threshold": threshold,
        "threshold_rule": "Youden's J on the validation split",
        "training_data": {
            "name": "PneumoniaMNIST (MedMNIST v2)",
            "source": "Yang et al., MedMNIST v2, Scientific Data 2023; images from Kermany et al., Cell 2018",
            "license": "CC BY 4.0",
            "splits": {"train": int(len(ytr)), "val": int(len(yva)), "test": int(len(yte))},
            "file": "../shared/data/pneumoniamnist/pneumoniamnist.npz",
        },
        "training": {
            "script": "python -m medviewer.training.train_pneumonia",
            "seed": args.seed, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
            "weight_decay": args.weight_decay, "ema": args.ema, "best_epoch": best["epoch"],
            "loss": "class-weighted cross-entropy, label smoothing 0.05",
            "augmentation": "rotation +-10 deg, scale 0.9-1.1, shift +-8 %, horizontal flip, gamma/contrast/"
                            "brightness jitter",
            "threads": args.threads, "seconds": round(train_seconds, 1),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "history": history,
        },
        "metrics": {
            "test": test_metrics,
            "test_at_threshold_0.5": test_at_half,
            "val": val_metrics,
            "reference": {
                "MedMNIST v2 ResNet-18 (28)": {"auc": 0.944, "accuracy": 0.854},
                "MedMNIST v2 ResNet-50 (224)": {"auc": 0.962, "accuracy": 0.884},
                "Google AutoML Vision": {"auc": 0.991, "accuracy": 0.946},
            },
        },
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "intended_use": "research and teaching only, not for diagnosis; trained on 28x28 paediatric chest "
                        "radiographs (age 1-5, Guangzhou), so adult or portable films are out of distribution",
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"val": val_metrics, "test": test_metrics, "threshold": threshold,
                      "best_epoch": best["epoch"], "train_seconds": round(train_seconds)}, indent=2))
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 4)))
    ap.add_argument("--version", default="1.0.0")
    train(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
