"""Score the notes classifier and the rule labeler with three-state labels: on the project's typed-note test set
(``tests/data/typed_notes.jsonl``: present / absent / uncertain per finding, written by hand) and on the OpenI test
split (gold 0/1, where the gold standard counts uncertain mentions as absent).

    python -m medviewer.notes.evaluate [--typed FILE] [--openi] [--model DIR] [--threads 1]

F1 is given both ways:

* ``uncertain_as_absent``: a label counts as positive only when "present" (the OpenI gold standard's convention);
* ``uncertain_as_present``: "present" or "uncertain" counts as positive (a mention that was not negated).

On the typed set both sides (gold and prediction) are collapsed the same way; also the F1 of the "uncertain" state
itself and the exact three-state accuracy. On OpenI the gold is 0/1 and only the prediction is collapsed. Micro-F1
pools every (note, label) decision of the labels scored; macro-F1 averages the labels that have gold positives.
OpenI figures are given over the 14 labels its gold standard annotates (Hernia excluded: the gold never labels it,
although ~50 reports mention a hiatal hernia) and over all 15 labels as the gold has them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any
from pathlib import Path

import numpy as np

from medviewer.config import PROJECT_ROOT
from medviewer.notes.labels import LABELS

TYPED_NOTES = PROJECT_ROOT / "tests" / "data" / "typed_notes.jsonl"
PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"
OPENI_ANNOTATED = tuple(k for k in LABELS if k != "Hernia")


def load_typed_notes(path: str | Path = TYPED_NOTES) -> list[dict]:
    """``[{"id", "text", "labels": {label: state}}]`` of the typed-note test set."""
    with open(path, encoding="utf-8") as fp:
        return [json.loads(line) for line in fp if line.strip()]


def f1_table(gold: np.ndarray, pred: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Micro-F1 over all cells, macro-F1 over the labels with gold positives, per-label precision/recall/F1."""
    gold = gold.astype(bool)
    pred = pred.astype(bool)
    tp = (gold & pred).sum(0)
    fp = (~gold & pred).sum(0)
    fn = (gold & ~pred).sum(0)
    per = {}
    for i, k in enumerate(labels):
        p = tp[i] / (tp[i] + fp[i]) if tp[i] + fp[i] else 0.0
        r = tp[i] / (tp[i] + fn[i]) if tp[i] + fn[i] else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        per[k] = {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(gold[:, i].sum()),
                  "predicted": int(pred[:, i].sum())}
    t, f_p, f_n = tp.sum(), fp.sum(), fn.sum()
    micro = 2 * t / (2 * t + f_p + f_n) if t + f_p + f_n else 0.0
    with_pos = [k for i, k in enumerate(labels) if gold[:, i].any()]
    macro = float(np.mean([per[k]["f1"] for k in with_pos])) if with_pos else 0.0
    return {"micro_f1": float(micro), "macro_f1": macro, "macro_over": with_pos, "per_label": per}


def _states_matrix(states: list[dict[str, str]], labels: tuple[str, ...]) -> np.ndarray:
    return np.array([[s.get(k, ABSENT) for k in labels] for s in states], dtype=object)


def three_state_scores(gold: list[dict[str, str]], pred: list[dict[str, str]],
                       labels: tuple[str, ...] = LABELS) -> dict:
    """Scores of predicted states against gold states (both ``[{label: state}]``)."""
    g, p = _states_matrix(gold, labels), _states_matrix(pred, labels)
    out = {
        "n": len(gold),
        "uncertain_as_absent": f1_table(g == PRESENT, p == PRESENT, labels),
        "uncertain_as_present": f1_table(g != ABSENT, p != ABSENT, labels),
    }
    findings = [i for i, k in enumerate(labels) if k != "normal"]
    gu, pu = g[:, findings] == UNCERTAIN, p[:, findings] == UNCERTAIN
    tp, fp, fn = (gu & pu).sum(), (~gu & pu).sum(), (gu & ~pu).sum()
    out["uncertain_state"] = {"f1": float(2 * tp / (2 * tp + fp + fn)) if tp + fp + fn else 0.0,
                              "support": int(gu.sum()), "predicted": int(pu.sum()), "correct": int(tp)}
    out["three_state_accuracy"] = float((g == p).mean())
    out["notes_all_labels_right"] = int((g == p).all(axis=1).sum())
    return out


def openi_scores(gold: np.ndarray, pred: list[dict[str, str]]) -> dict:
    """Scores of predicted states against OpenI 0/1 gold (N, 15) in LABELS order, both ways, over the 14
    annotated labels and over all 15."""
    p = _states_matrix(pred, LABELS)
    ann = [LABELS.index(k) for k in OPENI_ANNOTATED]
    out: dict[str, Any] = {"n": int(len(gold))}
    for name, positive in (("uncertain_as_absent", p == PRESENT), ("uncertain_as_present", p != ABSENT)):
        out[name] = f1_table(gold[:, ann], positive[:, ann], OPENI_ANNOTATED)
        out[name + "_all_15_labels"] = {k: v for k, v in f1_table(gold, positive, LABELS).items()
                                        if k in ("micro_f1", "macro_f1", "macro_over")}
    return out


def rule_states(texts: list[str]) -> list[dict[str, str]]:
    """States of the rule labeler alone (hedged mentions uncertain, hiatal hernias reported as Hernia)."""
    from medviewer.notes.decision import rule_codes
    from medviewer.notes.language import check_note

    names = (ABSENT, PRESENT, UNCERTAIN)  # the codes of medviewer.notes.decision
    out = []
    for t in texts:
        if not check_note(t).ok:
            out.append(dict.fromkeys(LABELS, ABSENT))
            continue
        out.append({k: names[int(c)] for k, c in zip(LABELS, rule_codes([t])[0])})
    return out


def model_states(clf, texts: list[str]) -> list[dict[str, str]]:  # noqa: ANN001
    """States of the shipped classifier (a note it refuses: every label absent)."""
    res = clf.classify(texts)
    return [r.states if r.classified else dict.fromkeys(LABELS, ABSENT) for r in res]


def summary_line(name: str, sc: dict) -> str:
    a, b = sc["uncertain_as_absent"], sc["uncertain_as_present"]
    line = (f"{name:28s} micro/macro-F1 uncertain=absent {a['micro_f1']:.3f} / {a['macro_f1']:.3f}   "
            f"uncertain=present {b['micro_f1']:.3f} / {b['macro_f1']:.3f}")
    if "uncertain_state" in sc:
        line += (f"   uncertain-state F1 {sc['uncertain_state']['f1']:.3f}   3-state accuracy "
                 f"{sc['three_state_accuracy']:.3f}")
    if "uncertain_as_absent_all_15_labels" in sc:
        line += f"   (all 15 labels: {sc['uncertain_as_absent_all_15_labels']['micro_f1']:.3f})"
    return line


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medviewer.notes.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--typed", default=str(TYPED_NOTES), help="typed-note set (default %(default)s)")
    ap.add_argument("--openi", action="store_true", help="also score the OpenI test split")
    ap.add_argument("--model", default=None, help="model folder (default: the shipped models/notes-minilm)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", metavar="FILE", help="write every figure to FILE")
    args = ap.parse_args(argv)
    from medviewer.notes.model import NoteClassifier

    clf = NoteClassifier.load(args.model, threads=args.threads)
    figures: dict = {"model": f"{clf.card['name']} {clf.card['version']}"}
    notes = load_typed_notes(args.typed)
    texts, gold = [n["text"] for n in notes], [n["labels"] for n in notes]
    t0 = time.perf_counter()
    figures["typed_model"] = three_state_scores(gold, model_states(clf, texts))
    figures["typed_model"]["seconds"] = round(time.perf_counter() - t0, 2)
    figures["typed_rules"] = three_state_scores(gold, rule_states(texts))
    print(f"typed-note set ({len(notes)} notes, {args.typed})")
    print(summary_line("  shipped classifier", figures["typed_model"]))
    print(summary_line("  rule labeler alone", figures["typed_rules"]))
    if args.openi:
        from medviewer.notes.data import load_reports

        _, test = load_reports()
        y = np.stack([r.labels for r in test])
        tt = [r.text for r in test]
        figures["openi_model"] = openi_scores(y, model_states(clf, tt))
        figures["openi_rules"] = openi_scores(y, rule_states(tt))
        print(f"OpenI test split ({len(test)} reports; Hernia not annotated by the gold standard)")
        print(summary_line("  shipped classifier", figures["openi_model"]))
        print(summary_line("  rule labeler alone", figures["openi_rules"]))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
