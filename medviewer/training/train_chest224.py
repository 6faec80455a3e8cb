"""Train the 224 x 224 chest-radiograph pneumonia model and write ``models/pneumonia-chest224/``.

    python -m medviewer.training.train_chest224 [--data ../shared/data/kermany-224] [--out models/pneumonia-chest224]
                                               [--epochs 18] [--seed 0] [--threads 2]

Protocol (issue #10):

* data: Kermany et al. 2018 via ``medviewer.training.kermany``: byte-identical train duplicates dropped, a seeded
  validation split of 15 % of the children (by patient_key, per label) carved out of train;
* model: a multi-scale ensemble (:class:`medviewer.inference.model.ChestEnsemble`) of three small ResNets that
  see the same 224 x 224 film at 28, 56 and 112 pixels (area pooling), each standardised per image; members are
  trained jointly on the same augmented batches, each with its own loss, and averaged in logit space;
* robustness to the train -> test shift of this data set (acquisition, exposure, cropping, original aspect): random
  affine with anisotropic scaling (films of 384-2,916 px width were squashed to a square), resolution loss, gamma,
  noise and random erasing; EMA of the weights (Polyak averaging);
* selection on validation only: the epoch with the best validation AUC of the EMA ensemble; temperature scaling
  (Guo et al., ICML 2017) fitted on validation by NLL; the decision threshold is the midpoint (in logit space) of
  the thresholds that maximise Youden's J on validation; the out-of-distribution threshold is a high quantile of
  the validation films' Mahalanobis scores (Lee et al., NeurIPS 2018);
* the test split (624 films) is scored once, at the end, for the card, with 95 % bootstrap intervals.

Seeded; CPU only (the ``device`` GPU was not lent to this task); about 35 minutes on 2 cores.
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
from medviewer.inference.scope import DEFAULT_SCOPE
from medviewer.modelfiles import sha256_file
from medviewer.training import kermany
from medviewer.training.common import ema_update, seed_everything
from medviewer.training.metrics import card_test_metrics, metrics_at, youden_midpoint_threshold

DEFAULT_OUT = PROJECT_ROOT / "models" / "pneumonia-chest224"
MEMBERS = [
    {"width": 16, "input_pool": 8, "blocks": [2, 2, 2]},
    {"width": 24, "input_pool": 4, "blocks": [1, 2, 2]},
    {"width": 16, "input_pool": 2, "blocks": [1, 2, 2]},
]
OOD_QUANTILE = 0.995


def augment(x, generator):  # noqa: ANN001, ANN201 - torch tensors
    """Batch (N, 1, H, W) in [0, 1] -> augmented batch, pure torch (no torchvision).

    Geometry: rotation +-10 deg, scale 0.85-1.15 with an independent +-15 % aspect change, shift +-8 %.
    Resolution: half the films are area-downsampled by 1-3x and upsampled back (blur of portable/resized films).
    Intensity: gamma exp(+-0.4), contrast 0.7-1.3, brightness +-0.1, Gaussian noise up to 0.03 on half the films.
    Occlusion: random erasing of one rectangle (2-12 % of the film) on 30 % of the films (markers, labels, leads).
    """
    import torch
    import torch.nn.functional as F

    n, _, h, w = x.shape

    def u(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator)

    ang = (u(n) * 2 - 1) * math.radians(10)
    scale = 1 + (u(n) * 2 - 1) * 0.15
    aspect = torch.exp((u(n) * 2 - 1) * math.log(1.15))
    sx, sy = scale * aspect.sqrt(), scale / aspect.sqrt()
    shift = (u(n, 2) * 2 - 1) * 0.08
    cos, sin = torch.cos(ang), torch.sin(ang)
    theta = torch.stack([torch.stack([cos / sx, -sin / sx, shift[:, 0]], 1),
                         torch.stack([sin / sy, cos / sy, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    # resolution loss on a random half, one factor per batch (cheap)
    factor = 1 + 2 * float(u(1))
    low = F.interpolate(F.interpolate(x, size=(int(h / factor), int(w / factor)), mode="area"),
                        size=(h, w), mode="bilinear", align_corners=False)
    pick = (u(n) < 0.5).float()[:, None, None, None]
    x = pick * low + (1 - pick) * x
    gamma = torch.exp((u(n, 1, 1, 1) * 2 - 1) * 0.4)
    x = x.clamp(0, 1) ** gamma
    contrast = 1 + (u(n, 1, 1, 1) * 2 - 1) * 0.3
    bright = (u(n, 1, 1, 1) * 2 - 1) * 0.1
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + bright
    noise = torch.randn(x.shape, generator=generator) * (u(n, 1, 1, 1) * 0.03) * (u(n, 1, 1, 1) < 0.5)
    x = x + noise
    for i in torch.nonzero(u(n) < 0.3).flatten().tolist():
        area = float(0.02 + 0.10 * u(1))
        ar = float(torch.exp((u(1) * 2 - 1) * math.log(3)))
        eh, ew = min(h, int(round(math.sqrt(area * h * w * ar)))), min(w, int(round(math.sqrt(area * h * w / ar))))
        r0, c0 = int(u(1) * (h - eh + 1)), int(u(1) * (w - ew + 1))
        x[i, :, r0:r0 + eh, c0:c0 + ew] = float(u(1))
    return x.clamp(0, 1)


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature T minimising the NLL of softmax(logits / T) on (logits (n, 2), y) by a log-space grid search."""
    best_t, best_nll = 1.0, float("inf")
    for t in np.exp(np.linspace(math.log(0.2), math.log(10), 400)):
        z = logits / t
        z = z - z.max(1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(1, keepdims=True))
        nll = -float(logp[np.arange(len(y)), y].mean())
        if nll < best_nll:
            best_t, best_nll = float(t), nll
    return best_t


def _unit(images: np.ndarray):  # noqa: ANN202
    import torch

    return torch.from_numpy(images.astype(np.float32) / np.float32(255.0))[:, None]


def predict_logits(model, x, batch: int = 256) -> np.ndarray:  # noqa: ANN001
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model(x[i:i + batch]))
    return torch.cat(out).numpy().astype(np.float64)


def features(model, x, batch: int = 256) -> np.ndarray:  # noqa: ANN001
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            out.append(model.features(x[i:i + batch]))
    return torch.cat(out).numpy().astype(np.float64)


def softmax_pos(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e[:, 1] / e.sum(1)


def fit_ood(model, x_train, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """Class means (2, D) and the shared precision (D, D) of the training films' pooled features, the covariance
    shrunk towards a scaled identity (Ledoit & Wolf, J. Multivariate Anal. 2004)."""
    from sklearn.covariance import LedoitWolf

    f = features(model, x_train)
    means = np.stack([f[y_train == c].mean(0) for c in (0, 1)])
    centred = f - means[y_train]
    lw = LedoitWolf(assume_centered=True).fit(centred)
    return means, np.linalg.inv(lw.covariance_)


def train(args: argparse.Namespace) -> dict:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file
    from sklearn.metrics import roc_auc_score

    from medviewer.inference.model import ChestEnsemble

    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    t_load = time.time()
    data = kermany.load(args.data, seed=args.seed)
    if args.limit:  # smoke test of the pipeline only
        rng = np.random.default_rng(args.seed)
        for split in (data.train, data.val, data.test):
            keep = np.sort(rng.choice(len(split), min(args.limit, len(split)), replace=False))
            split.images, split.labels = split.images[keep], split.labels[keep]
    xtr, xva, xte = _unit(data.train.images), _unit(data.val.images), _unit(data.test.images)
    ytr, yva, yte = data.train.labels, data.val.labels, data.test.labels
    print(f"loaded train {len(ytr)} / val {len(yva)} / test {len(yte)} films "
          f"({data.duplicates_dropped} duplicates dropped) in {time.time() - t_load:.0f} s", flush=True)

    members = MEMBERS * args.copies  # --copies K: K differently initialised copies of the three scales
    arch: dict[str, Any] = {"name": "ChestEnsemble", "kwargs": {"members": members, "n_classes": 2}}
    model = ChestEnsemble(**arch["kwargs"])
    ema = ChestEnsemble(**arch["kwargs"])
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
    best: dict = {"auc": -1.0}
    best_state = None
    history = []
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * args.batch:(i + 1) * args.batch]
            xb = augment(xtr[idx], gen)
            loss = sum((F.cross_entropy(m(xb), ytr_t[idx], weight=class_weight, label_smoothing=0.05)
                        for m in model.members), torch.zeros(()))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx) / len(model.members)
            ema_update(ema, model, epoch * steps_per_epoch + i, args.ema)
        p_val = softmax_pos(predict_logits(ema, xva))
        auc = float(roc_auc_score(yva, p_val))
        history.append({"epoch": epoch + 1, "train_loss": round(total / len(ytr), 5), "val_auc": round(auc, 5),
                        "seconds": round(time.time() - t0, 1)})
        print(f"epoch {epoch + 1:3d}/{args.epochs}  loss {total / len(ytr):.4f}  val AUC {auc:.5f}  "
              f"{time.time() - t0:6.0f} s", flush=True)
        if auc >= best["auc"]:
            best = {"auc": auc, "epoch": epoch + 1}
            best_state = {k: v.detach().clone() for k, v in ema.state_dict().items()}
    train_seconds = time.time() - t0
    if best_state is None:  # no epoch ran (--epochs 0) or the validation AUC was never a number
        raise RuntimeError("no epoch gave a validation AUC: nothing to keep")
    ema.load_state_dict(best_state)

    # Calibration, threshold and OOD statistics: validation (and train features) only.
    logits_val = predict_logits(ema, xva)
    temperature = fit_temperature(logits_val, yva)
    ema.temperature.fill_(temperature)
    p_val = softmax_pos(logits_val / temperature)
    threshold = youden_midpoint_threshold(p_val, yva)
    means, precision = fit_ood(ema, xtr, ytr)
    ema.ood_mean.copy_(torch.from_numpy(means).float())
    ema.ood_precision.copy_(torch.from_numpy(precision).float())
    with torch.inference_mode():
        ood_val = torch.cat([ema.ood_score(xva[i:i + 256]) for i in range(0, len(xva), 256)]).numpy()
    ood_threshold = float(np.quantile(ood_val, OOD_QUANTILE))
    val_metrics = metrics_at(p_val, yva, threshold)

    # The test split is scored once, here, for the card, unless --no-test: then it is not read at all here and is
    # scored once later by benchmarks/eval_chest224.py --sections metrics --write-card, after the inference recipe
    # is chosen on validation (select_chest224_inference).
    test_metrics: dict | None = None
    test_at_half: dict | None = None
    members_test: dict | None = None
    ood_test_gated: float | None = None
    if not args.no_test:
        p_test = softmax_pos(predict_logits(ema, xte))
        with torch.inference_mode():
            ood_test = torch.cat([ema.ood_score(xte[i:i + 256]) for i in range(0, len(xte), 256)]).numpy()
        ood_test_gated = float(np.mean(ood_test > ood_threshold))
        figures = card_test_metrics(p_test, yte, threshold, seed=args.seed)
        test_metrics, test_at_half = figures["test"], figures["test_at_threshold_0.5"]
        members_test = {}
        for k, m in enumerate(ema.members):
            lg = predict_logits(m, xte)
            members_test[f"member{k}_pool{members[k]['input_pool']}"] = float(roc_auc_score(yte, softmax_pos(lg)))

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "model.safetensors"
    save_file({k: v.contiguous() for k, v in ema.state_dict().items()}, str(weights),
              metadata={"name": "pneumonia-chest224", "format": "pt"})
    card = {
        "name": "pneumonia-chest224",
        "version": args.version,
        "task": "binary classification of a frontal chest radiograph: normal vs pneumonia",
        "labels": list(kermany.LABELS),
        "positive_label": "pneumonia",
        "architecture": arch,
        "parameters": int(sum(p.numel() for p in ema.parameters())),
        "input": {"channels": 1, "height": 224, "width": 224, "mean": 0.0, "std": 1.0, "fit": "squash"},
        "preprocessing": {
            "steps": ["modality LUT (RescaleSlope/Intercept or Modality LUT Sequence, per frame)",
                      "VOI: the file's first window (VOILUTFunction honoured) or VOI LUT Sequence, else 0.5-99.5 "
                      "percentile scaling to [0, 1]",
                      "MONOCHROME1 inverted after VOI",
                      "the whole film squashed to 224 x 224 (area averaging; aspect ratio not kept, as in the "
                      "training films)",
                      "inside the network: per-image standardisation and area pooling per member"],
            "code": "medviewer.inference.frames.model_input",
            "training_images": "kermany-224 JPEG grey / 255 (films squashed to 224 x 224 by the data set's "
                               "publisher)",
        },
        "attribution_layer": ",".join(f"members.{k}.layer3" for k in range(len(members))),
        "attribution_grid": [14, 14],
        "threshold": threshold,
        "threshold_rule": "midpoint in logit space of the thresholds maximising Youden's J on validation",
        "temperature": temperature,
        "ood": {"method": "minimum class-conditional Mahalanobis distance of the members' pooled layer3 "
                          "features, Ledoit-Wolf shrunk covariance of the training films (Lee et al., NeurIPS "
                          "2018)",
                "threshold": ood_threshold, "threshold_rule": f"{OOD_QUANTILE:.3f} quantile on validation",
                "val_gated": float(np.mean(ood_val > ood_threshold)),
                "test_gated": ood_test_gated},
        "scope": DEFAULT_SCOPE,
        "supersedes": ["pneumonia-cnn"],
        "population": {"age_years": [1, 5], "site": "Guangzhou Women and Children's Medical Center",
                       "views": ["PA", "AP"], "note": "paediatric films only; adults are outside the training "
                                                      "population"},
        "training_data": {
            "name": "Kermany et al. 2018 chest X-ray (kermany-224)",
            "source": "Kermany, Zhang, Goldbaum, Mendeley Data v2/v3 (Cell 2018), resized to 224 x 224",
            "license": "CC BY 4.0", "folder": "../shared/data/kermany-224",
            "splits": {"train": int(len(ytr)), "val": int(len(yva)), "test": int(len(yte))},
            "duplicates_dropped_from_train": int(data.duplicates_dropped),
            "validation": f"15 % of the children of each label by patient_key, seed {args.seed} "
                          f"({len(data.val_patients)} children)",
        },
        "training": {
            "script": "python -m medviewer.training.train_chest224",
            "seed": args.seed, "epochs": args.epochs, "copies": args.copies, "batch": args.batch, "lr": args.lr,
            "weight_decay": args.weight_decay, "ema": args.ema, "best_epoch": best["epoch"],
            "loss": "class-weighted cross-entropy per member, label smoothing 0.05",
            "augmentation": (augment.__doc__ or "").split("\n\n", 1)[1].strip().replace("\n    ", " "),
            "threads": args.threads, "seconds": round(train_seconds, 1), "device": "cpu",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__,
            "history": history,
        },
        "metrics": {
            "test": test_metrics,
            "test_at_threshold_0.5": test_at_half,
            "val": val_metrics,
            "test_members_auc": members_test,
            "reference": {
                "Kermany et al. 2018 Inception v3": {"auc": 0.968, "accuracy": 0.928},
                "MedMNIST+ ResNet-18 end-to-end (224)": {"auc": 0.980, "accuracy_at_0.5": 0.911},
                "MedMNIST+ DINO ViT-B/16 linear probe (224)": {"auc": 0.989, "accuracy_at_0.5": 0.916},
            },
        },
        "weights": weights.name,
        "weights_sha256": sha256_file(weights),
        "intended_use": "research and teaching only, not for diagnosis: a frontal (PA/AP) chest radiograph "
                        "(CR/DX) of a child aged 1-5; other modalities, body parts and lateral views are refused",
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({"val": val_metrics, "test": test_metrics, "test_at_0.5": test_at_half,
                      "threshold": threshold, "temperature": temperature, "ood": card["ood"],
                      "members": members_test, "best_epoch": best["epoch"],
                      "train_seconds": round(train_seconds)}, indent=2))
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(kermany.DEFAULT_ROOT))
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--epochs", type=int, default=18)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--ema", type=float, default=0.995)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 4)))
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--limit", type=int, default=0, help="films per split (a quick smoke test, not a model)")
    ap.add_argument("--copies", type=int, default=1,
                    help="differently initialised copies of the three members, trained together (a deep ensemble)")
    ap.add_argument("--no-test", action="store_true",
                    help="do not read the test split here (it is scored later by benchmarks/eval_chest224.py)")
    train(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
