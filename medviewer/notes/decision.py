"""How the notes model's three-state probabilities become a finding's state.

Two decision rules, both written into the model card (``decision``, ``decision_margin``):

* ``"argmax"``: each finding takes its most probable state (absent = 1 - P(present) - P(hedged)); "normal" is
  present when P(normal) >= 0.5.
* ``"rules_margin"``: the rule labeler's reading of the same (prepared) note is the prior, and the model replaces
  it only where its own most probable state is at least ``m`` more probable than the rules' state:
  ``state = s if s == r or P(s) - P(r) >= m else r`` with ``s`` the model's argmax state and ``r`` the rules'
  state. ``m = 0`` is argmax, ``m > 1`` is the rule labeler alone. It is a stacking decision: the head was
  trained on reports whose rule reading is nearly always right (the rules were written on them), so it is
  overconfident when it overturns the rules on unseen text; how much evidence an overturn needs is chosen on
  validation only (``medviewer.training.train_notes.choose_decision``).

:class:`medviewer.notes.model.NoteResult` decides a state by thresholds (present when P(present) >= threshold,
else uncertain when P(hedged) >= its threshold): :func:`margin_thresholds` gives, for one note, the thresholds
that reproduce the rule exactly, so a stored or displayed finding's probability and threshold still say why it
is in its state. State codes (arrays): 0 absent, 1 present, 2 uncertain. Pure numpy.
"""

from __future__ import annotations

import numpy as np

from medviewer.notes.labels import LABELS

ABSENT, PRESENT, UNCERTAIN = 0, 1, 2
CODES = {"absent": ABSENT, "present": PRESENT, "uncertain": UNCERTAIN}
NORMAL = LABELS.index("normal")


def rule_codes(texts: list[str]) -> np.ndarray:
    """(N, 15) int64 codes of the rule labeler's reading of each text (``RuleLabeler(uncertain_value=0.5,
    label_hernia=True)``, the reading the model's rule features encode): 1 where it finds the label, 2 where its
    best mention is hedged, else 0."""
    from medviewer.notes.features import rule_labeler

    labeler = rule_labeler()
    out = np.zeros((len(texts), len(LABELS)), dtype=np.int64)
    for n, text in enumerate(texts):
        d = labeler.label(text)
        out[n] = [PRESENT if d[k] >= 1.0 else UNCERTAIN if d[k] > 0 else ABSENT for k in LABELS]
    return out


def state_codes(states: list[dict[str, str]]) -> np.ndarray:
    """(N, 15) int64 codes of state dicts ({label: "present" | "absent" | "uncertain"}, LABELS order)."""
    return np.array([[CODES[s[k]] for k in LABELS] for s in states], dtype=np.int64).reshape(-1, len(LABELS))


def _state_probabilities(p: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(N, 15, 3) P(absent), P(present), P(hedged); "normal" has only present / absent (hedged -inf)."""
    probs = np.stack([1.0 - p - u, p, u], axis=-1)
    probs[:, NORMAL, ABSENT] = 1.0 - p[:, NORMAL]
    probs[:, NORMAL, UNCERTAIN] = -np.inf
    return probs


def margin_states(p: np.ndarray, u: np.ndarray, rules: np.ndarray, margin: float) -> np.ndarray:
    """(N, 15) state codes by the ``rules_margin`` rule.

    p, u: (N, 15) float P(present), P(hedged) (u of "normal" ignored); rules: (N, 15) int codes of the rule
    labeler's states; margin: in [0, 1] (0: argmax; above 1: the rules' states).
    """
    probs = _state_probabilities(np.asarray(p, float), np.asarray(u, float))
    model = probs.argmax(-1)
    model[:, NORMAL] = np.where(p[:, NORMAL] >= 0.5, PRESENT, ABSENT)
    p_model = np.take_along_axis(probs, model[..., None], -1)[..., 0]
    p_rules = np.take_along_axis(probs, rules[..., None], -1)[..., 0]
    keep_rules = (model != rules) & (p_model - p_rules < margin)
    return np.where(keep_rules, rules, model)


def margin_thresholds(p: np.ndarray, u: np.ndarray, rules: np.ndarray, margin: float
                      ) -> tuple[dict[str, float], dict[str, float]]:
    """One note's thresholds ({label: threshold on P(present)}, {label: threshold on P(hedged)}) under which
    "present if P(present) >= t, else uncertain if P(hedged) >= t_u, else absent" gives :func:`margin_states`.

    p, u, rules: (15,) for one note. Derivation, with a = 1 - p - u and m the margin: rules present -> present
    iff p >= max(a, u) - m, i.e. t = max((1 - u - m) / 2, u - m); rules absent -> present iff p is the argmax
    and p - a >= m, t = max(u, (1 - u + m) / 2); rules hedged -> present iff p >= a and p - u >= m,
    t = max((1 - u) / 2, u + m). When not present: rules present -> the model's state, hedged iff u >= a,
    t_u = (1 - p) / 2; rules absent -> hedged iff u is the argmax and u - a >= m, t_u = max(p, (1 - p + m) / 2);
    rules hedged -> absent only if a is the argmax and a - u >= m, t_u = (1 - p - m) / 2 (0 when a < p: stays
    hedged). "normal": t = (1 - m) / 2 when the rules call the note normal, else (1 + m) / 2.
    """
    thr: dict[str, float] = {}
    uthr: dict[str, float] = {}
    m = float(margin)
    for i, k in enumerate(LABELS):
        pk, uk, r = float(p[i]), float(u[i]), int(rules[i])
        if i == NORMAL:
            thr[k] = (1.0 - m) / 2.0 if r == PRESENT else (1.0 + m) / 2.0
            uthr[k] = 0.5
            continue
        if r == PRESENT:
            thr[k] = max((1.0 - uk - m) / 2.0, uk - m)
            uthr[k] = (1.0 - pk) / 2.0
        elif r == ABSENT:
            thr[k] = max(uk, (1.0 - uk + m) / 2.0)
            uthr[k] = max(pk, (1.0 - pk + m) / 2.0)
        else:
            thr[k] = max((1.0 - uk) / 2.0, uk + m)
            uthr[k] = (1.0 - pk - m) / 2.0 if (1.0 - pk - uk) >= pk else 0.0
    return thr, uthr
