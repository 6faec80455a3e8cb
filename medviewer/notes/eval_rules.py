"""Evaluate the rule-based labeler (:mod:`medviewer.notes.rules`) on the OpenI gold standard.

``python -m medviewer.notes.eval_rules [--data DIR] [--split val|test|both]`` prints, for the validation split of the
non-test reports (:func:`~medviewer.notes.data.split_validation`) and for the held-out NegBio test split: micro-F1
over the 15 labels, macro-F1 over the labels that have positives in that split, per-label precision / recall / F1
(sklearn.metrics) and the labelling time. The rules were developed on the non-test reports only.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass

import numpy as np

from medviewer.notes.data import DEFAULT_DIR, Report, load_reports, split_validation
from medviewer.notes.labels import LABELS
from medviewer.notes.rules import RuleLabeler


@dataclass
class Scores:
    """F1 figures of one split."""

    n: int
    micro_f1: float
    macro_f1: float
    macro_labels: list[str]
    per_label: dict[str, tuple[float, float, float, int]]  # label -> (precision, recall, f1, support)
    seconds: float


def predict(reports: list[Report], labeler: RuleLabeler | None = None) -> tuple[np.ndarray, float]:
    """(n, 15) 0/1 predictions in LABELS order, and the seconds labelling took."""
    labeler = labeler or RuleLabeler()
    t0 = time.perf_counter()
    out = [labeler.label(r.text) for r in reports]
    seconds = time.perf_counter() - t0
    return np.array([[1 if d[k] >= 1.0 else 0 for k in LABELS] for d in out], dtype=np.uint8), seconds


def score(reports: list[Report], labeler: RuleLabeler | None = None) -> Scores:
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    pred, seconds = predict(reports, labeler)
    gold = np.array([r.labels for r in reports], dtype=np.uint8)
    has = gold.sum(axis=0) > 0
    micro = f1_score(gold, pred, average="micro", zero_division=0)
    macro = f1_score(gold[:, has], pred[:, has], average="macro", zero_division=0)
    p, r, f, s = precision_recall_fscore_support(gold, pred, average=None, zero_division=0)
    per = {k: (float(p[i]), float(r[i]), float(f[i]), int(s[i])) for i, k in enumerate(LABELS)}
    return Scores(len(reports), float(micro), float(macro), [k for k, h in zip(LABELS, has) if h], per, seconds)


def format_scores(name: str, sc: Scores) -> str:
    lines = [
        f"{name}: {sc.n} reports, micro-F1 {sc.micro_f1:.3f} (15 labels), macro-F1 {sc.macro_f1:.3f} "
        f"({len(sc.macro_labels)} labels with positives), labelled in {sc.seconds * 1000:.0f} ms",
        f"  {'label':20s} {'prec':>6s} {'recall':>6s} {'F1':>6s} {'n':>5s}",
    ]
    for k in LABELS:
        p, r, f, s = sc.per_label[k]
        note = "" if s else "   (no positives: not in macro)"
        lines.append(f"  {k:20s} {p:6.3f} {r:6.3f} {f:6.3f} {s:5d}{note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medviewer.notes.eval_rules", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(DEFAULT_DIR), help="folder of the OpenI files (default: %(default)s)")
    ap.add_argument("--split", choices=("val", "test", "both"), default="both")
    args = ap.parse_args(argv)
    try:
        non_test, test = load_reports(args.data)
    except FileNotFoundError as exc:
        print(f"OpenI data not found: {exc}", file=sys.stderr)
        return 2
    labeler = RuleLabeler()
    if args.split in ("val", "both"):
        _, val = split_validation(non_test)
        print(format_scores("val", score(val, labeler)))
    if args.split in ("test", "both"):
        print(format_scores("test", score(test, labeler)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
