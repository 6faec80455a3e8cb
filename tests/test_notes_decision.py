"""The notes model's decision rules (medviewer.notes.decision): the rules_margin rule, its per-note thresholds, and
its two ends (argmax, the rule labeler alone)."""

from __future__ import annotations

import numpy as np
import pytest

from medviewer.notes.decision import (
    ABSENT,
    NORMAL,
    PRESENT,
    UNCERTAIN,
    margin_states,
    margin_thresholds,
    rule_codes,
)
from medviewer.notes.labels import LABELS


def _random_notes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet([0.6, 0.6, 0.6], size=(n, len(LABELS)))  # absent, present, hedged
    p, u = probs[..., 1], probs[..., 2]
    rules = rng.integers(0, 3, size=(n, len(LABELS)))
    rules[:, NORMAL] = rng.integers(0, 2, size=n)
    return p, u, rules


def _state_by_thresholds(p: float, u: float, t: float, tu: float, normal: bool) -> int:
    """NoteResult.state's rule: present if p >= t, else hedged if u >= tu (never for normal), else absent."""
    if p >= t:
        return PRESENT
    if not normal and u >= tu:
        return UNCERTAIN
    return ABSENT


@pytest.mark.parametrize("margin", [0.0, 0.1, 0.35, 0.6, 0.9, 2.0])
def test_per_note_thresholds_reproduce_the_rule(margin):
    p, u, rules = _random_notes(400, seed=int(margin * 100))
    states = margin_states(p, u, rules, margin)
    for n in range(len(p)):
        t, tu = margin_thresholds(p[n], u[n], rules[n], margin)
        got = [_state_by_thresholds(p[n, i], u[n, i], t[k], tu[k], i == NORMAL) for i, k in enumerate(LABELS)]
        assert got == states[n].tolist()


def test_margin_zero_is_argmax_and_above_one_is_the_rules():
    p, u, rules = _random_notes(300, seed=7)
    argmax = np.stack([1 - p - u, p, u], -1).argmax(-1)
    argmax[:, NORMAL] = np.where(p[:, NORMAL] >= 0.5, PRESENT, ABSENT)
    assert (margin_states(p, u, rules, 0.0) == argmax).all()
    assert (margin_states(p, u, rules, 1.01) == rules).all()


def test_an_overturn_needs_the_margin():
    p = np.full((1, len(LABELS)), 0.05)
    u = np.full((1, len(LABELS)), 0.05)
    rules = np.zeros((1, len(LABELS)), dtype=np.int64)
    e = LABELS.index("Effusion")
    p[0, e], u[0, e] = 0.6, 0.1  # the model says present (0.6) where the rules say absent (P 0.3)
    rules[0, NORMAL] = ABSENT
    assert margin_states(p, u, rules, 0.2)[0, e] == PRESENT  # 0.6 - 0.3 >= 0.2
    assert margin_states(p, u, rules, 0.4)[0, e] == ABSENT  # not enough evidence to overturn
    rules[0, e] = UNCERTAIN  # the rules read a hedge: P 0.1
    assert margin_states(p, u, rules, 0.4)[0, e] == PRESENT  # 0.6 - 0.1 >= 0.4
    assert margin_states(p, u, rules, 0.6)[0, e] == UNCERTAIN


def test_rule_codes_read_present_hedged_and_negated_mentions():
    codes = rule_codes(["Small left pleural effusion. Possible pneumothorax. No consolidation.", ""])
    row = dict(zip(LABELS, codes[0]))
    assert row["Effusion"] == PRESENT and row["Pneumothorax"] == UNCERTAIN and row["Consolidation"] == ABSENT
    assert row["normal"] == ABSENT
    assert codes[1].tolist() == [ABSENT] * (len(LABELS) - 1) + [PRESENT]  # nothing abnormal: the rules' normal


def test_classifier_states_follow_the_rule(monkeypatch):
    """NoteClassifier.classify with decision "rules_margin" gives margin_states of its own scores and rule codes,
    for short, long (windowed) and typed notes."""
    pytest.importorskip("transformers")
    from medviewer.notes.model import NoteClassifier

    clf = NoteClassifier.load()
    texts = ["Small left pleural effusion. Possible pneumothorax. No consolidation.",
             "cardiomeg, ? RLL PNA. no ptx.",
             "No acute cardiopulmonary abnormality. " * 60 + "Small right pneumothorax.",
             "Lungs clear. Heart normal."]
    p, u, _ = clf.note_scores(texts)
    rules = clf.rule_codes(texts)
    names = {ABSENT: "absent", PRESENT: "present", UNCERTAIN: "uncertain"}
    for margin in (0.0, 0.3, 0.8):
        monkeypatch.setattr(clf, "decision", "rules_margin")
        monkeypatch.setattr(clf, "margin", margin)
        expected = margin_states(p, u, rules, margin)
        for res, row in zip(clf.classify(texts), expected):
            assert res.states == {k: names[int(c)] for k, c in zip(LABELS, row)}
