"""The typed-note test set (tests/data/typed_notes.jsonl) and the three-state scoring of medviewer.notes.evaluate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from medviewer.notes.evaluate import f1_table, load_typed_notes, rule_states, three_state_scores
from medviewer.notes.labels import LABELS

DATA = Path(__file__).resolve().parent / "data"


def test_typed_set_is_well_formed_and_matches_its_source():
    notes = load_typed_notes(DATA / "typed_notes.jsonl")
    assert len(notes) >= 150
    assert len({n["id"] for n in notes}) == len(notes) and len({n["text"] for n in notes}) == len(notes)
    for n in notes:
        assert list(n["labels"]) == list(LABELS)
        assert set(n["labels"].values()) <= {"present", "absent", "uncertain"}
        assert n["labels"]["normal"] != "uncertain"
        if n["labels"]["normal"] == "present":
            assert all(v == "absent" for k, v in n["labels"].items() if k != "normal")
    # every finding has present examples, and hedged ones are there too
    for k in LABELS:
        assert any(n["labels"][k] == "present" for n in notes), k
    assert sum(v == "uncertain" for n in notes for v in n["labels"].values()) >= 30
    # the jsonl is what tests/data/typed_notes.py writes
    sys.path.insert(0, str(DATA))
    try:
        import typed_notes
    finally:
        sys.path.remove(str(DATA))
    assert typed_notes.records() == notes


def test_the_typed_set_is_not_in_the_training_code():
    """Kept apart from training: no typed note appears in the training scripts' text."""
    root = Path(__file__).resolve().parents[1] / "medviewer"
    code = "\n".join(p.read_text(encoding="utf-8") for p in (root / "training").glob("*.py"))
    code += (root / "notes" / "normalize.py").read_text(encoding="utf-8")
    for n in load_typed_notes(DATA / "typed_notes.jsonl"):
        if len(n["text"]) >= 20:  # "NAD", "PTX?" are words, not notes
            assert n["text"] not in code, n["id"]


def test_three_state_scores_both_ways():
    gold = [{"Effusion": "present"}, {"Effusion": "uncertain"}, {"Effusion": "absent", "normal": "present"}]
    pred = [{"Effusion": "present"}, {"Effusion": "present"}, {"Effusion": "uncertain", "normal": "present"}]
    sc = three_state_scores(gold, pred)
    a, b = sc["uncertain_as_absent"]["per_label"]["Effusion"], sc["uncertain_as_present"]["per_label"]["Effusion"]
    assert (a["precision"], a["recall"]) == (0.5, 1.0)
    assert (b["precision"], b["recall"]) == (2 / 3, 1.0)
    assert sc["uncertain_state"] == {"f1": 0.0, "support": 1, "predicted": 1, "correct": 0}
    assert sc["uncertain_as_absent"]["macro_over"] == ["Effusion", "normal"]


def test_f1_table_micro_pools_cells():
    gold = np.array([[1, 0], [1, 1]])
    pred = np.array([[1, 1], [0, 1]])
    t = f1_table(gold, pred, ("a", "b"))
    assert t["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_rule_labeler_on_the_typed_set():
    notes = load_typed_notes(DATA / "typed_notes.jsonl")
    sc = three_state_scores([n["labels"] for n in notes], rule_states([n["text"] for n in notes]))
    # measured when the set was written (rules with medviewer.notes.normalize, frozen before the set): 0.934
    assert sc["uncertain_as_absent"]["micro_f1"] >= 0.90


def test_evaluate_cli_help():
    out = subprocess.run([sys.executable, "-m", "medviewer.notes.evaluate", "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "uncertain" in out.stdout
