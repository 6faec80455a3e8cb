"""Binary-classifier metrics shared by the image-model training and evaluation scripts (numpy + scikit-learn)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["expected_calibration_error", "metrics_at", "bootstrap_intervals", "card_test_metrics", "youden_threshold",
           "youden_midpoint_threshold"]


def expected_calibration_error(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """ECE (Naeini et al., AAAI 2015) of the positive-class probability over equal-width bins."""
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & ((p < hi) if hi < 1 else (p <= hi))
        if m.any():
            ece += m.mean() * abs(p[m].mean() - y[m].mean())
    return float(ece)


def metrics_at(p: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    from sklearn.metrics import roc_auc_score

    pred = p >= threshold
    tp = int(np.sum(pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    sens = tp / max(tp + fn, 1)
    spec = tn / max(tn + fp, 1)
    return {"auc": float(roc_auc_score(y, p)), "accuracy": float((tp + tn) / len(y)), "sensitivity": float(sens),
            "specificity": float(spec), "balanced_accuracy": float((sens + spec) / 2),
            "ece": expected_calibration_error(p, y), "n": int(len(y)), "n_positive": int(y.sum()),
            "confusion": {"tp": tp, "tn": tn, "fp": fp, "fn": fn}}


def bootstrap_intervals(p: np.ndarray, y: np.ndarray, threshold: float, n: int = 2000, seed: int = 0) -> dict:
    """95 % percentile bootstrap intervals (Efron & Tibshirani 1993) of AUC, accuracy, sensitivity, specificity."""
    rng = np.random.default_rng(seed)
    keys = ("auc", "accuracy", "sensitivity", "specificity")
    draws: dict[str, list[float]] = {k: [] for k in keys}
    for _ in range(n):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        m = metrics_at(p[idx], y[idx], threshold)
        for k in keys:
            draws[k].append(m[k])
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in draws.items()}


def card_test_metrics(p: np.ndarray, y: np.ndarray, threshold: float, seed: int = 0) -> dict:
    """What a model card records for its test split: ``{"test": metrics at ``threshold`` (the one fixed on
    validation) with 95 % bootstrap intervals under "ci95", "test_at_threshold_0.5": metrics at 0.5}``."""
    test = metrics_at(p, y, threshold)
    test["ci95"] = bootstrap_intervals(p, y, threshold, seed=seed)
    return {"test": test, "test_at_threshold_0.5": metrics_at(p, y, 0.5)}


def youden_midpoint_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """Midpoint, in logit space, of the interval of thresholds maximising Youden's J = sensitivity + specificity
    - 1 (Youden, Cancer 1950) on (p, y). On a nearly separable validation split many thresholds tie; the midpoint
    keeps the largest margin to both classes instead of hugging the lowest positive."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    j = tpr - fpr
    best = int(np.argmax(j))
    hi = float(min(thr[best], 1 - 1e-6))  # lowest threshold of the best operating point (positives >= hi)
    below = p[p < hi]
    lo = float(below.max()) if below.size else hi
    lo_l, hi_l = math.log(max(lo, 1e-6) / (1 - max(lo, 1e-6))), math.log(hi / (1 - hi))
    t = 1 / (1 + math.exp(-(lo_l + hi_l) / 2))
    return min(max(t, 1e-6), 1 - 1e-6)


def youden_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """Threshold maximising sensitivity + specificity - 1 on (p, y) (Youden, Cancer 1950): the lowest threshold of
    the best operating point."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thr = roc_curve(y, p)
    best = int(np.argmax(tpr - fpr))
    return min(max(float(thr[best]), 1e-6), 1 - 1e-6)
