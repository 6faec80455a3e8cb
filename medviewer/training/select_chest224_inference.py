"""Choose the inference recipe of ``pneumonia-chest224`` (test-time augmentation, threshold rule, temperature) on
validation only, by a criterion fixed here before the script was first run (issue #10, successor of 2.0.0).

    python -m medviewer.training.select_chest224_inference [--data ../shared/data/kermany-224]
        [--model models/pneumonia-chest224] [--seed 0] [--threads 2] [--out FILE.json]
    python -m medviewer.training.select_chest224_inference --write-card 2.1.0 --from-json FILE.json

The weights do not change (same safetensors file, same SHA-256); only how they are run does. **The test split is
never read for a figure here**: ``kermany.load`` returns it with the other splits and this script drops it at once.
The 624 test films had already been scored for card 2.0.0 (its figures are on the card); the successor is chosen
below on the validation films alone, and the test split is scored once afterwards by
``benchmarks/eval_chest224.py --sections metrics,... --write-card``, whatever the figures are.

Pre-registered protocol (written before the first run; not changed after it)
-----------------------------------------------------------------------------

**Data.** The 780 validation films of 2.0.0 (15 % of the children of each label of Kermany's train split, by
patient_key, seed 0; 427 children), used twice:

* *plain validation*: the films as they are;
* *shift-mimicking validation* (SMV): :data:`COPIES` = 4 copies of every validation film (3,120 films), each
  transformed by a seeded random composition of acquisition differences between hospitals, devices and
  exposures, chosen from common knowledge of chest-radiograph domain shift (not from the test split):

  - *geometry* (always): rotation +-5 deg, independent horizontal/vertical scale 0.90-1.10, shift +-5 % (patient
    positioning, collimation and field of view differ between sites; Kermany's films of 384-2,916 px width were
    squashed to a square, so aspect differences are part of the data);
  - *quantum noise* (p 0.5): additive Gaussian, sigma 0.01-0.04 of the grey range (lower dose, portable units,
    smaller detectors);
  - *detector sharpness / vendor processing* (p 0.8): half Gaussian blur sigma 0.6-1.5 px (detector MTF,
    resampling of small films), half unsharp masking, amount 0.5-1.5, radius 1-3 px (the edge enhancement of
    CR/DR vendor processing, e.g. multi-scale contrast enhancement);
  - *exposure and look-up table* (always): gamma exp(U(-0.5, 0.5)), then either a clipping window (black level
    0-0.10, white level 0.85-1.0) or a flattened range (output 0-0.12 .. 0.85-1.0) (kVp/mAs and vendor LUTs;
    different windowing when films are exported as 8-bit images);
  - *lossy compression* (p 0.5): JPEG at quality 30-90 (archives and exports re-compress), else 8-bit rounding.

  The random numbers of film i, copy k come from ``numpy.random.default_rng([seed, i, k])``, drawn in a fixed
  order whatever branch is taken.

**Candidates** (inference time only):

* TTA sets (:data:`TTA_SETS`), views from :mod:`medviewer.inference.tta` averaged in logit space (the product's
  code): none; hflip; scale (zoom 0.92 and 1.08); gamma (0.8 and 1.25); shift (+-3 % in x and y); scale+gamma;
  scale+shift. At most :data:`MAX_VIEWS` = 7 views, so the 100 ms per-image CPU target can hold.
* Threshold rules (:data:`RULES`), each a threshold on the logit difference z = l(pneumonia) - l(normal) of the
  averaged logits: ``val_youden`` the midpoint in logit space of the Youden-optimal thresholds on plain validation
  (today's rule); ``half`` P = 0.5 after temperature scaling, i.e. z >= 0 (temperature scaling does not move the
  0.5 point; no parameter fitted); ``smv_youden`` the same Youden midpoint on SMV; ``smv_platt`` P = 0.5 after a
  class-balanced Platt scaling (temperature and bias) fitted on SMV.
* Temperature (it cannot change a call: every rule is a threshold on z, refitted after the temperature): see step 5.

**Estimation.** Cross-fitting: the 427 children are split into :data:`FOLDS` = 5 folds (seeded, per label); a
rule is fitted on four folds (plain validation or SMV, as the rule says) and applied to the fifth (its plain and
SMV films), so every candidate's figures are out of sample. AUC needs no fitting (whole sets). Noise: a paired
cluster bootstrap over children (:data:`BOOTSTRAP` = 2,000 resamples, seed 0), the same resamples for every
candidate.

**Criterion** (primary metric: balanced accuracy, BA = (sensitivity + specificity) / 2, because the validation
split's prevalence (74 % pneumonia) is an artefact of Kermany's train split and the prevalence where the model is
used is unknown; raw accuracy at the validation prevalence would reward sensitivity, the failure of 2.0.0):

1. c* = the candidate with the highest cross-fitted BA on SMV (ties: higher SMV AUC, then the simpler);
2. *within noise*: the candidates whose paired bootstrap 95 % interval of BA_SMV(c*) - BA_SMV(c) contains 0
   (2.5th percentile <= 0), c* included;
3. *guard*: drop those significantly worse than the current recipe on plain validation (97.5th percentile of
   BA_val(c) - BA_val(current) < 0);
4. choose the simplest of what is left: fewest views, then the rule order val_youden (today's) < half < smv_youden
   < smv_platt, then the higher SMV AUC. If nothing is left, keep the current recipe. The current recipe is
   (none, val_youden, the card's temperature).
5. Temperature for the chosen TTA set: the card's (1.0385, fitted by NLL on plain validation without TTA), or
   refitted by NLL (``train_chest224.fit_temperature``) on plain validation or on SMV with the chosen views; the
   lowest cross-fitted NLL on SMV wins, and the card's is kept unless another is lower by more than 0.002 nats.
6. The chosen rule is refitted on all of its data (on z, as in the cross-fitting); the threshold, as a probability
   at the chosen temperature, goes into the card. A different temperature alone is a recipe change too (the
   probabilities shown change, the calls do not). If the choice is the current recipe with the card's
   temperature, the product is not touched and this table is recorded as the card's selection history.

What was known when this was written: card 2.0.0's test figures, among them accuracy 0.941 at P = 0.5 against
0.880 at the validation threshold. That knowledge is why a fixed 0.5 rule is among the candidates; the choice
between the candidates is made by the criterion above on validation data alone. A smoke run on 60 validation films
(``--limit``) tested the code before the protocol was committed; no full run preceded it.

Seeded and deterministic on CPU (2 threads: about 5-8 minutes).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from medviewer.config import PROJECT_ROOT
from medviewer.training import kermany
from medviewer.training.metrics import expected_calibration_error, youden_midpoint_threshold

DEFAULT_MODEL = PROJECT_ROOT / "models" / "pneumonia-chest224"
COPIES = 4
FOLDS = 5
BOOTSTRAP = 2000
MAX_VIEWS = 7
NLL_MARGIN = 0.002

#: TTA candidates in simplicity order within a number of views (the views are :mod:`medviewer.inference.tta`'s).
TTA_SETS: dict[str, list[str]] = {
    "none": ["identity"],
    "hflip": ["identity", "hflip"],
    "scale": ["identity", "zoom0.92", "zoom1.08"],
    "gamma": ["identity", "gamma0.8", "gamma1.25"],
    "shift": ["identity", "shift0.03,0", "shift-0.03,0", "shift0,0.03", "shift0,-0.03"],
    "scale+gamma": ["identity", "zoom0.92", "zoom1.08", "gamma0.8", "gamma1.25"],
    "scale+shift": ["identity", "zoom0.92", "zoom1.08", "shift0.03,0", "shift-0.03,0", "shift0,0.03",
                    "shift0,-0.03"],
}
#: Threshold rules, in simplicity order (today's first), with the data each is fitted on.
RULES: dict[str, str] = {
    "val_youden": "midpoint in logit space of the thresholds maximising Youden's J on plain validation",
    "half": "P = 0.5 after temperature scaling (no parameter fitted)",
    "smv_youden": "midpoint in logit space of the thresholds maximising Youden's J on shift-mimicking validation",
    "smv_platt": "P = 0.5 after class-balanced Platt scaling (temperature and bias) on shift-mimicking validation",
}
CURRENT = ("none", "val_youden")


# ------------------------------------------------------------------------------------------------ SMV
def shift_films(images: np.ndarray, seed: int = 0, copies: int = COPIES) -> tuple[np.ndarray, np.ndarray, list]:
    """The shift-mimicking copies of ``images`` (n, H, W) uint8: (copies (n * copies, H, W) uint8 in film-major
    order, the source film index of each (n * copies,), a description of each copy's transforms)."""
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from scipy.ndimage import gaussian_filter  # type: ignore[import-untyped]

    n, h, w = images.shape
    out = np.empty((n * copies, h, w), np.uint8)
    source = np.repeat(np.arange(n), copies)
    desc: list[dict] = []
    for i in range(n):
        for k in range(copies):
            rng = np.random.default_rng([seed, i, k])
            u = rng.uniform(size=16)  # every number drawn, whatever branch is taken
            ang = math.radians(-5 + 10 * u[0])
            sx, sy = 0.9 + 0.2 * u[1], 0.9 + 0.2 * u[2]
            tx, ty = -0.05 + 0.1 * u[3], -0.05 + 0.1 * u[4]
            noise_on, sigma = u[5] < 0.5, 0.01 + 0.03 * u[6]
            res = "blur" if u[7] < 0.4 else "sharpen" if u[7] < 0.8 else "none"
            blur_sigma, amount, radius = 0.6 + 0.9 * u[8], 0.5 + 1.0 * u[8], 1.0 + 2.0 * u[9]
            gamma = math.exp(-0.5 + 1.0 * u[10])
            window = "clip" if u[11] < 0.5 else "flatten"
            lo, hi = 0.10 * u[12], 0.85 + 0.15 * u[13]
            jpeg_on, quality = u[14] < 0.5, int(30 + round(60 * u[15]))
            noise = rng.standard_normal((h, w)).astype(np.float32)

            x = torch.from_numpy(images[i].astype(np.float32) / 255.0)[None, None]
            cos, sin = math.cos(ang), math.sin(ang)
            theta = torch.tensor([[[cos / sx, -sin / sx, 2 * tx], [sin / sy, cos / sy, 2 * ty]]],
                                 dtype=torch.float32)
            grid = F.affine_grid(theta, [1, 1, h, w], align_corners=False)
            f = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0, 0].numpy()
            if noise_on:
                f = f + sigma * noise
            if res == "blur":
                f = gaussian_filter(f, blur_sigma)
            elif res == "sharpen":
                f = f + amount * (f - gaussian_filter(f, radius))
            f = np.clip(f, 0, 1) ** gamma
            if window == "clip":
                f = np.clip((f - lo) / (hi - lo), 0, 1)
            else:
                f = lo + (hi - lo) * f
            g = np.clip(np.round(f * 255), 0, 255).astype(np.uint8)
            if jpeg_on:
                buf = io.BytesIO()
                Image.fromarray(g).save(buf, format="JPEG", quality=quality)
                buf.seek(0)
                with Image.open(buf) as im:
                    g = np.asarray(im.convert("L"), dtype=np.uint8)
            out[i * copies + k] = g
            desc.append({"film": i, "copy": k, "rotation_deg": math.degrees(ang), "scale": [sx, sy],
                         "shift": [tx, ty], "noise_sigma": sigma if noise_on else 0.0, "resolution": res,
                         "gamma": gamma, "window": window, "jpeg_quality": quality if jpeg_on else None})
    return out, source, desc


# ------------------------------------------------------------------------------------------------ scoring
def view_logits(network, images: np.ndarray, views: list[str], batch: int = 128) -> dict[str, np.ndarray]:  # noqa: ANN001
    """{view: the network's logits (n, 2) float64 before its temperature} for films (n, H, W) uint8 (/ 255, as
    the training films and the direct evaluation), each view through :func:`medviewer.inference.tta.apply_view`."""
    import torch

    from medviewer.inference.tta import apply_view

    t_buf = float(network.temperature)
    out: dict[str, list] = {v: [] for v in views}
    network.eval()
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(images[s:s + batch].astype(np.float32) / np.float32(255.0))[:, None]
            for v in views:
                out[v].append(network(apply_view(x, v)).double().numpy() * t_buf)
    return {v: np.concatenate(a) for v, a in out.items()}


def tta_logits(per_view: dict[str, np.ndarray], views: list[str]) -> np.ndarray:
    """Mean of the views' logits (n, 2), as :func:`medviewer.inference.tta.average`."""
    return np.mean([per_view[v] for v in views], axis=0)


def _sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def fit_rule(rule: str, z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """The rule's threshold on the logit difference z (pneumonia minus normal), fitted on (z, y)."""
    if rule == "half":
        return 0.0
    if rule in ("val_youden", "smv_youden"):
        t = youden_midpoint_threshold(_sigmoid(z / temperature), y)
        return float(temperature * math.log(t / (1 - t)))
    if rule == "smv_platt":
        from sklearn.linear_model import LogisticRegression

        lr = LogisticRegression(C=1e6, class_weight="balanced").fit(z[:, None], y)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        if a <= 0:
            raise RuntimeError("Platt scaling found a non-positive slope")
        return -b / a
    raise ValueError(rule)


def child_folds(keys: list[str], labels: np.ndarray, seed: int, folds: int = FOLDS) -> dict[str, int]:
    """{patient_key: fold}: the children of each label shuffled (seeded) and dealt round robin."""
    rng = np.random.default_rng(seed)
    label_of: dict[str, int] = {}
    for k, lab in zip(keys, labels):
        label_of[k] = max(label_of.get(k, 0), int(lab))
    out = {}
    for lab in (0, 1):
        ks = sorted(k for k, v in label_of.items() if v == lab)
        for j, idx in enumerate(rng.permutation(len(ks))):
            out[ks[idx]] = j % folds
    return out


def _rates(pred: np.ndarray, y: np.ndarray) -> dict:
    tp, tn = int(np.sum(pred & (y == 1))), int(np.sum(~pred & (y == 0)))
    sens, spec = tp / max(int(y.sum()), 1), tn / max(int((y == 0).sum()), 1)
    return {"ba": (sens + spec) / 2, "accuracy": (tp + tn) / len(y), "sensitivity": sens, "specificity": spec}


def _nll(z2: np.ndarray, y: np.ndarray, t: float) -> float:
    z = z2 / t
    z = z - z.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    return -float(logp[np.arange(len(y)), y].mean())


def _cluster_counts(pred: np.ndarray, y: np.ndarray, child: np.ndarray, n_child: int) -> np.ndarray:
    """(n_child, 4): true positives, true negatives, positives, negatives per child."""
    out = np.zeros((n_child, 4))
    np.add.at(out[:, 0], child, pred & (y == 1))
    np.add.at(out[:, 1], child, ~pred & (y == 0))
    np.add.at(out[:, 2], child, y == 1)
    np.add.at(out[:, 3], child, y == 0)
    return out


def _boot_ba(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Balanced accuracy per resample: counts (C, n_child, 4), weights (B, n_child) -> (B, C)."""
    s = np.einsum("bn,cnk->bck", weights, counts)
    return 0.5 * (s[..., 0] / np.maximum(s[..., 2], 1) + s[..., 1] / np.maximum(s[..., 3], 1))


# ------------------------------------------------------------------------------------------------ selection
def select(args: argparse.Namespace) -> dict:
    import torch
    from sklearn.metrics import roc_auc_score

    from medviewer.inference.scorer import ImageModel
    from medviewer.inference.tta import check_views
    from medviewer.training.train_chest224 import fit_temperature

    torch.set_num_threads(args.threads)
    t0 = time.time()
    data = kermany.load(args.data, seed=args.seed)
    data.test = None  # type: ignore[assignment]  # never read here: the test split is scored once, elsewhere
    val = data.val
    if args.limit:  # a smoke test of the code only, not a selection
        keep = np.sort(np.random.default_rng(args.seed).choice(len(val), min(args.limit, len(val)), replace=False))
        val = kermany.Split(val.images[keep], val.labels[keep], [val.paths[i] for i in keep],
                            [val.patient_keys[i] for i in keep])
    y = val.labels
    print(f"validation: {len(y)} films of {len(set(val.patient_keys))} children ({int(y.sum())} pneumonia); "
          "the test split is not used", flush=True)
    smv_images, source, desc = shift_films(val.images, args.seed, args.copies)
    ys = y[source]
    print(f"shift-mimicking validation: {len(ys)} films ({args.copies} per validation film), built in "
          f"{time.time() - t0:.0f} s", flush=True)

    model = ImageModel.load(args.model, device="cpu")
    card = model.card
    if "inference" in card.extra and card.extra["inference"].get("tta", ["identity"]) != ["identity"]:
        raise SystemExit("the card already has a TTA recipe: select from the 2.0.0 card (no TTA)")
    t_card = float(model.network.temperature)
    views = sorted({v for vs in TTA_SETS.values() for v in check_views(vs)}, key=lambda v: v != "identity")
    t1 = time.time()
    lv_val = view_logits(model.network, val.images, views)
    lv_smv = view_logits(model.network, smv_images, views)
    print(f"{len(views)} views scored on {len(y) + len(ys)} films in {time.time() - t1:.0f} s", flush=True)

    # Sanity: today's recipe reproduces the card's threshold.
    z_none = np.diff(lv_val["identity"], axis=1)[:, 0]
    t_now = _sigmoid(fit_rule("val_youden", z_none, y, t_card) / t_card)
    print(f"today's rule refitted: threshold {float(t_now):.5f} (card {card.threshold:.5f}), temperature "
          f"{t_card:.4f}", flush=True)

    keys = sorted(set(val.patient_keys))
    child_index = {k: j for j, k in enumerate(keys)}
    child = np.array([child_index[k] for k in val.patient_keys])
    child_s = child[source]
    fold_of = child_folds(val.patient_keys, y, args.seed)
    fold = np.array([fold_of[k] for k in val.patient_keys])
    fold_s = fold[source]

    cands = [(t, r) for t in TTA_SETS for r in RULES if len(TTA_SETS[t]) <= MAX_VIEWS]
    rows: list[dict[str, Any]] = []
    counts_val, counts_smv = [], []
    for tta, rule in cands:
        zv = np.diff(tta_logits(lv_val, TTA_SETS[tta]), axis=1)[:, 0]
        zs = np.diff(tta_logits(lv_smv, TTA_SETS[tta]), axis=1)[:, 0]
        pred_v = np.zeros(len(y), bool)
        pred_s = np.zeros(len(ys), bool)
        for f in range(FOLDS):
            if rule == "val_youden" or rule == "half":
                thr = fit_rule(rule, zv[fold != f], y[fold != f], t_card)
            else:
                thr = fit_rule(rule, zs[fold_s != f], ys[fold_s != f], t_card)
            pred_v[fold == f] = zv[fold == f] >= thr
            pred_s[fold_s == f] = zs[fold_s == f] >= thr
        row = {"tta": tta, "rule": rule, "views": len(TTA_SETS[tta]),
               "val": {"auc": float(roc_auc_score(y, zv)), **_rates(pred_v, y)},
               "smv": {"auc": float(roc_auc_score(ys, zs)), **_rates(pred_s, ys)}}
        rows.append(row)
        counts_val.append(_cluster_counts(pred_v, y, child, len(keys)))
        counts_smv.append(_cluster_counts(pred_s, ys, child_s, len(keys)))

    # Paired cluster bootstrap over children: the same resamples for every candidate.
    rng = np.random.default_rng(args.seed)
    weights = np.stack([np.bincount(rng.integers(0, len(keys), len(keys)), minlength=len(keys))
                        for _ in range(BOOTSTRAP)]).astype(np.float64)
    b_val = _boot_ba(np.stack(counts_val), weights)
    b_smv = _boot_ba(np.stack(counts_smv), weights)
    cur = cands.index(CURRENT)
    rule_rank = {r: k for k, r in enumerate(RULES)}
    best = max(range(len(cands)), key=lambda c: (rows[c]["smv"]["ba"], rows[c]["smv"]["auc"],
                                                 -rows[c]["views"], -rule_rank[rows[c]["rule"]]))
    for c, row in enumerate(rows):
        d_best = b_smv[:, best] - b_smv[:, c]
        d_cur = b_val[:, c] - b_val[:, cur]
        row["smv_ba_gap_to_best_ci95"] = [float(np.percentile(d_best, 2.5)), float(np.percentile(d_best, 97.5))]
        row["val_ba_minus_current_ci95"] = [float(np.percentile(d_cur, 2.5)), float(np.percentile(d_cur, 97.5))]
        row["within_noise"] = bool(np.percentile(d_best, 2.5) <= 0)
        row["guard"] = bool(np.percentile(d_cur, 97.5) >= 0)
    left = [c for c in range(len(cands)) if rows[c]["within_noise"] and rows[c]["guard"]]
    chosen = min(left, key=lambda c: (rows[c]["views"], rule_rank[rows[c]["rule"]], -rows[c]["smv"]["auc"])) \
        if left else cur
    tta, rule = cands[chosen]
    print_table(rows, best, chosen, cur, len(y), len(ys))

    # Step 5: temperature for the chosen views (cross-fitted NLL on SMV).
    lv_all = {"val": tta_logits(lv_val, TTA_SETS[tta]), "smv": tta_logits(lv_smv, TTA_SETS[tta])}
    nll = {"card": 0.0, "val": 0.0, "smv": 0.0}
    for f in range(FOLDS):
        held = fold_s == f
        temps = {"card": t_card, "val": fit_temperature(lv_all["val"][fold != f], y[fold != f]),
                 "smv": fit_temperature(lv_all["smv"][fold_s != f], ys[fold_s != f])}
        for k, t in temps.items():
            nll[k] += _nll(lv_all["smv"][held], ys[held], t) * held.sum() / len(ys)
    full_t = {"card": t_card, "val": fit_temperature(lv_all["val"], y), "smv": fit_temperature(lv_all["smv"], ys)}
    t_choice = min(nll, key=lambda k: nll[k])
    if nll["card"] - nll[t_choice] <= NLL_MARGIN:
        t_choice = "card"
    temperature = float(full_t[t_choice])
    print("\ntemperature for the chosen views (cross-fitted NLL on SMV, nats): "
          + ", ".join(f"{k} T={full_t[k]:.4f} NLL={nll[k]:.4f}" for k in nll) + f"  -> {t_choice} ({temperature:.4f})")

    # Step 6: the rule refitted on all of its data.
    zv = np.diff(lv_all["val"], axis=1)[:, 0]
    zs = np.diff(lv_all["smv"], axis=1)[:, 0]
    # fitted at the card's temperature, as in the cross-fitting (a call does not depend on the temperature; a
    # small one would saturate the probabilities the Youden midpoint is computed on)
    z_thr = fit_rule(rule, zv if rule in ("val_youden", "half") else zs, y if rule in ("val_youden", "half") else ys,
                     t_card)
    threshold = float(_sigmoid(z_thr / temperature))
    pv, ps = _sigmoid(zv / temperature), _sigmoid(zs / temperature)
    unchanged = (tta, rule) == CURRENT and t_choice == "card"
    final: dict[str, Any] = {"tta": tta, "views": TTA_SETS[tta], "rule": rule, "threshold_rule": RULES[rule],
             "temperature": temperature, "temperature_source": t_choice, "threshold": threshold,
             "current_recipe_kept": unchanged,
             "val": {"ece": expected_calibration_error(pv, y), **_rates(pv >= threshold, y),
                     "auc": float(roc_auc_score(y, pv))},
             "smv": {"ece": expected_calibration_error(ps, ys), **_rates(ps >= threshold, ys),
                     "auc": float(roc_auc_score(ys, ps))}}
    print(f"\nCHOSEN: TTA {tta} ({len(TTA_SETS[tta])} views: {', '.join(TTA_SETS[tta])}), rule {rule} "
          f"({RULES[rule]}), temperature {temperature:.4f} ({t_choice}), threshold {threshold:.5f}"
          f"{'  = the current recipe: the product is not changed' if unchanged else ''}")
    for k in ("val", "smv"):
        m = final[k]
        print(f"  in-sample on {k}: AUC {m['auc']:.4f}  BA {m['ba']:.4f}  accuracy {m['accuracy']:.4f}  "
              f"sensitivity {m['sensitivity']:.4f}  specificity {m['specificity']:.4f}  ECE {m['ece']:.4f}")
    result = {
        "script": "python -m medviewer.training.select_chest224_inference",
        "seed": args.seed, "copies": args.copies, "folds": FOLDS, "bootstrap": BOOTSTRAP, "max_views": MAX_VIEWS,
        "weights_sha256": card.weights_sha256, "from_version": card.version,
        "n_val": int(len(y)), "n_val_children": len(keys), "n_smv": int(len(ys)),
        "smv_transforms": {"resolution": {r: sum(d["resolution"] == r for d in desc) for r in
                                          ("blur", "sharpen", "none")},
                           "noise": sum(d["noise_sigma"] > 0 for d in desc),
                           "jpeg": sum(d["jpeg_quality"] is not None for d in desc),
                           "window": {w: sum(d["window"] == w for d in desc) for w in ("clip", "flatten")}},
        "tta_sets": TTA_SETS, "rules": RULES, "current": list(CURRENT),
        "best_smv_ba": list(cands[best]), "candidates": rows,
        "temperature_nll_smv": nll, "temperatures": full_t, "chosen": final,
        "seconds": round(time.time() - t0, 1), "threads": args.threads,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2, default=_plain) + "\n", encoding="utf-8")
        print(f"written {args.out}")
    return result


def _plain(o: object) -> object:
    """numpy scalars as Python numbers for JSON."""
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def print_table(rows: list[dict], best: int, chosen: int, cur: int, n_val: int, n_smv: int) -> None:
    """The candidate table: plain validation and SMV side by side (cross-fitted thresholds)."""
    head = f"{'TTA':12s} {'rule':11s} {'v':>2s} | " + " ".join(f"{h:>6s}" for h in ("AUC", "BA", "acc", "sens",
                                                                                        "spec"))
    print("\ncandidates (cross-fitted by child; BA = balanced accuracy)")
    print(f"{'':27s} | {f'plain validation ({n_val})':^34s} | {f'shift-mimicking validation ({n_smv})':^34s} |")
    print(head + " | " + " ".join(f"{h:>6s}" for h in ("AUC", "BA", "acc", "sens", "spec"))
          + " | gap to best (95 % CI)  noise guard")
    for c, r in enumerate(rows):
        mark = "".join(s for s, on in (("*", c == best), ("<", c == chosen), ("=", c == cur)) if on)
        cells = []
        for k in ("val", "smv"):
            m = r[k]
            cells.append(" ".join(f"{m[h]:6.4f}" for h in ("auc", "ba", "accuracy", "sensitivity", "specificity")))
        lo, hi = r["smv_ba_gap_to_best_ci95"]
        print(f"{r['tta']:12s} {r['rule']:11s} {r['views']:2d} | {cells[0]} | {cells[1]} | "
              f"[{lo:+.4f}, {hi:+.4f}]  {'yes' if r['within_noise'] else 'no ':3s}   "
              f"{'ok' if r['guard'] else 'NO'} {mark}")
    print("* best SMV balanced accuracy, < chosen, = current recipe")


# ------------------------------------------------------------------------------------------------ the card
PENDING = ("pending: the test split is scored once, after this recipe was frozen, by python "
           "benchmarks/eval_chest224.py --sections metrics,dicom,gate,maps,compare --write-card")


def write_card(model_dir: str | Path, result: dict, version: str, selection_file: str) -> dict:
    """Record a frozen selection (``result``, as written by ``--out``) in the model's card.

    A changed recipe becomes card ``version``: threshold, threshold rule, temperature and the ``inference`` block
    (TTA views) change; the weights and their SHA-256 do not. The previous version's recipe and test figures move
    into ``selection_history``; the test figures of the new version are left pending (``metrics.test`` says how
    they are made). Either way a ``selection_history`` entry records the protocol, the candidate table and the
    choice. No test figure is read or written here."""
    card_path = Path(model_dir) / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    if card["weights_sha256"] != result["weights_sha256"] or card["version"] != result["from_version"]:
        raise SystemExit(f"{card_path} is not the card the selection started from ({result['from_version']})")
    chosen = result["chosen"]
    table = [{"tta": r["tta"], "rule": r["rule"], "views": r["views"],
              "val": {k: round(float(r["val"][k]), 4) for k in ("auc", "ba", "accuracy", "sensitivity",
                                                                 "specificity")},
              "smv": {k: round(float(r["smv"][k]), 4) for k in ("auc", "ba", "accuracy", "sensitivity",
                                                                 "specificity")},
              "smv_ba_gap_to_best_ci95": [round(float(v), 4) for v in r["smv_ba_gap_to_best_ci95"]],
              "within_noise": r["within_noise"], "guard": r["guard"]} for r in result["candidates"]]
    history = list(card.get("selection_history", []))
    entry: dict[str, Any] = {
        "version": card["version"] if chosen["current_recipe_kept"] else version,
        "date": time.strftime("%Y-%m-%d"),
        "statement": ("The test split had been seen before: card 2.0.0's test figures were computed and published. "
                      "This recipe was chosen by a criterion pre-registered in the selection script (committed "
                      "before its first full run) on validation and shift-mimicking validation only; the test "
                      "split was not read by the selection, and it is scored once afterwards, whatever the "
                      "figures are."),
        "script": result["script"], "selection_file": selection_file,
        "protocol": {
            "data": f"plain validation ({result['n_val']} films, {result['n_val_children']} children) and "
                    f"shift-mimicking validation ({result['n_smv']} films: {result['copies']} seeded copies per "
                    "validation film of geometry, noise, blur/sharpening, gamma and window/LUT, JPEG)",
            "estimation": f"thresholds cross-fitted over {result['folds']} folds of children; paired cluster "
                          f"bootstrap over children ({result['bootstrap']} resamples)",
            "criterion": "highest cross-fitted balanced accuracy on shift-mimicking validation; among the "
                         "candidates within bootstrap noise of it (95 % interval of the gap contains 0) and not "
                         "significantly worse than the current recipe on plain validation, the simplest (fewest "
                         "views, then val_youden < half < smv_youden < smv_platt, then SMV AUC); temperature by "
                         "cross-fitted NLL on shift-mimicking validation (the card's kept unless 0.002 nats worse)",
            "tta_sets": result["tta_sets"], "rules": result["rules"],
        },
        "candidates": table,
        "best_smv_ba": result["best_smv_ba"],
        "chosen": {k: chosen[k] for k in ("tta", "views", "rule", "threshold_rule", "temperature",
                                          "temperature_source", "threshold", "current_recipe_kept")},
        "chosen_in_sample": {"val": chosen["val"], "smv": chosen["smv"]},
        "temperature_nll_smv": result["temperature_nll_smv"],
    }
    if chosen["current_recipe_kept"]:
        entry["test_after_selection"] = "not scored: the recipe did not change"
        card["selection_history"] = history + [entry]
    else:
        m = card["metrics"]
        previous = {"version": card["version"], "weights_sha256": card["weights_sha256"],
                    "threshold": card["threshold"], "threshold_rule": card.get("threshold_rule", ""),
                    "temperature": card.get("temperature"),
                    "inference": card.get("inference", {"tta": ["identity"]}),
                    "metrics": {k: m[k] for k in ("test", "test_at_threshold_0.5", "val", "test_members_auc",
                                                  "targets") if k in m},
                    "note": "test figures of this version were computed before its successor was chosen; they "
                            "were known when the successor's candidates were listed"}
        entry["test_after_selection"] = PENDING
        card["selection_history"] = history + [previous, entry]
        card["version"] = version
        card["threshold"] = chosen["threshold"]
        card["threshold_rule"] = f"{chosen['threshold_rule']} (selected by {result['script']}, see selection_history)"
        card["temperature"] = chosen["temperature"]
        card["inference"] = {
            "tta": chosen["views"],
            "average": "mean of the views' logits, divided by the temperature (medviewer.inference.tta)",
            "ood_and_maps": "the first view (the film as it is)",
            "temperature_rule": {"card": "kept from the previous version", "val": "NLL on validation",
                                 "smv": "NLL on shift-mimicking validation"}[chosen["temperature_source"]]
                                + " with these views",
            "selection": selection_file,
        }
        val = chosen["val"]
        m["val"] = {"auc": val["auc"], "accuracy": val["accuracy"], "sensitivity": val["sensitivity"],
                    "specificity": val["specificity"], "balanced_accuracy": val["ba"], "ece": val["ece"],
                    "n": result["n_val"], "note": "in sample: the threshold was fitted on these data"}
        smv = chosen["smv"]
        m["val_shift_mimicking"] = {"auc": smv["auc"], "accuracy": smv["accuracy"],
                                    "sensitivity": smv["sensitivity"], "specificity": smv["specificity"],
                                    "balanced_accuracy": smv["ba"], "ece": smv["ece"], "n": result["n_smv"],
                                    "note": "in sample: the threshold was fitted on these data"}
        for k in ("test", "test_at_threshold_0.5"):
            m[k] = {"pending": PENDING}
        m.pop("test_members_auc", None)
        m["targets"] = {k: v for k, v in m.get("targets", {}).items() if k == "issue"}
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    print(f"written {card_path} (version {card['version']})")
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(kermany.DEFAULT_ROOT))
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--copies", type=int, default=COPIES)
    ap.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 2)))
    ap.add_argument("--limit", type=int, default=0, help="validation films used (a smoke test, not a selection)")
    ap.add_argument("--out", default="", help="write the candidate table and the choice as JSON")
    ap.add_argument("--write-card", metavar="VERSION", default="",
                    help="record the frozen selection of --from-json in the model's card as VERSION (no run)")
    ap.add_argument("--from-json", default="", help="a selection written by --out (with --write-card)")
    args = ap.parse_args(argv)
    if args.write_card:
        if not args.from_json:
            ap.error("--write-card needs --from-json")
        result = json.loads(Path(args.from_json).read_text(encoding="utf-8"))
        write_card(args.model, result, args.write_card, Path(args.from_json).name)
        return 0
    select(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
