"""Model 1.x only: combine the fine-tuned transformer with the rule labeler after the fact and record it in the
notes model card. Model 2.x learns the combination itself (the rule labeler's reading is an input of its head,
:mod:`medviewer.training.train_notes`), so this script refuses a three-state card.

    python -m medviewer.training.fuse_notes [--model models/notes-minilm]

The shipped classifier outputs ``p = w * p_transformer + (1 - w) * r`` per finding, where ``r`` is the rule
labeler's 0/1 decision for the same text (negation- and uncertainty-aware, :mod:`medviewer.notes.rules`). ``w``
and the per-finding thresholds are chosen on the validation split only (best micro-F1, then per-finding F1); the
test split is scored once for the card: transformer alone, rules alone and the combination, side by side.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from medviewer.config import PROJECT_ROOT
from medviewer.notes.labels import LABELS


def rule_matrix(texts: list[str]) -> np.ndarray:
    from medviewer.notes.rules import RuleLabeler

    labeler = RuleLabeler()
    return np.array([[d[k] for k in LABELS] for d in labeler.label_many(texts)], dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(PROJECT_ROOT / "models" / "notes-minilm"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    from medviewer.modelfiles import sha256_file
    from medviewer.notes.data import load_reports, split_validation
    from medviewer.notes.model import NoteClassifier
    from medviewer.training.train_notes import f1_report, tune_thresholds

    model_dir = Path(args.model)
    card_path = model_dir / "card.json"
    card = json.loads(card_path.read_text())
    if card.get("architecture", {}).get("outputs") == "three_state":
        print("fuse_notes: this card is a three-state model (2.x) that takes the rule labeler as an input; "
              "there is nothing to fuse", file=sys.stderr)
        return 2
    card.pop("fusion", None)
    (model_dir / "card.json").write_text(json.dumps(card, indent=2))
    clf = NoteClassifier.load(model_dir, threads=2)
    rest, test = load_reports()
    _, val = split_validation(rest, 0.15, args.seed)
    y_val = np.stack([r.labels for r in val])
    y_test = np.stack([r.labels for r in test])
    p_val = clf.probabilities([r.text for r in val])
    p_test = clf.probabilities([r.text for r in test])
    r_val, r_test = rule_matrix([r.text for r in val]), rule_matrix([r.text for r in test])

    best = None
    for w in np.round(np.arange(0.0, 1.0001, 0.1), 2):
        fused = w * p_val + (1 - w) * r_val
        thr = tune_thresholds(y_val, fused)
        micro = f1_report(y_val, fused >= np.array([thr[k] for k in LABELS]))["micro_f1"]
        print(f"w={w:.1f} val micro-F1 {micro:.4f}")
        if best is None or micro > best[0] + 1e-9:
            best = (micro, float(w), thr)
    if best is None:  # the weight grid is not empty
        raise RuntimeError("no fusion weight was evaluated")
    _, w, thr = best
    t_arr = np.array([thr[k] for k in LABELS])
    t0 = time.perf_counter()
    hybrid_test = f1_report(y_test, (w * p_test + (1 - w) * r_test) >= t_arr)
    model_thr = np.array([card["thresholds"][k] for k in LABELS])
    alone_test = f1_report(y_test, p_test >= model_thr)
    rules_test = f1_report(y_test, r_test >= 1.0)
    card["fusion"] = {"rule_weight": round(1 - w, 3), "transformer_weight": w, "thresholds": thr,
                      "rule_labeler": "medviewer.notes.rules.RuleLabeler()",
                      "selection": "w on a 0.1 grid and per-finding thresholds: best F1 on the validation split"}
    card["metrics"]["test_transformer_alone"] = alone_test
    card["metrics"]["test_rule_labeler"] = rules_test
    card["metrics"]["test"] = hybrid_test
    card["metrics"]["val_hybrid_micro_f1"] = best[0]
    card["weights_sha256"] = sha256_file(model_dir / card["weights"])
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    del t0
    for name, m in (("transformer alone", alone_test), ("rule labeler", rules_test), ("hybrid (shipped)", hybrid_test)):
        print(f"test {name:18s} micro-F1 {m['micro_f1']:.4f}  macro-F1 {m['macro_f1']:.4f}")
    print(f"chosen w = {w} (transformer weight) on validation")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
