"""The rule labeler's reading of a text as features for the transformer's head (the rules help, the transformer
decides): per finding whether the rules found a positive, a hedged and a negated mention of it, plus whether they
found another abnormality (positive / hedged), an always-abnormal phrase, and their "normal" call. 0/1 values,
:data:`FEATURE_NAMES` order. Pure Python (:mod:`medviewer.notes.rules`)."""

from __future__ import annotations

import numpy as np

from medviewer.notes.labels import FINDINGS

FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{f}:{s}" for f in FINDINGS for s in ("positive", "uncertain", "negative")
) + ("other:positive", "other:uncertain", "always_abnormal", "rules:normal")

_LABELER = None


def rule_labeler():  # noqa: ANN201
    """The one shared ``RuleLabeler(uncertain_value=0.5, label_hernia=True)``: the reading the features and the
    ``rules_margin`` decision (:mod:`medviewer.notes.decision`) use."""
    global _LABELER
    if _LABELER is None:
        from medviewer.notes.rules import RuleLabeler

        _LABELER = RuleLabeler(uncertain_value=0.5, label_hernia=True)
    return _LABELER


def rule_features(texts: list[str]) -> np.ndarray:
    """(N, len(FEATURE_NAMES)) float32 features of each text."""
    from medviewer.notes.rules import normalize

    lab = rule_labeler()
    index = {k: i for i, k in enumerate(FEATURE_NAMES)}
    out = np.zeros((len(texts), len(FEATURE_NAMES)), dtype=np.float32)
    for n, text in enumerate(texts):
        t = normalize(text)
        abnormal = lab._always.search(t) is not None  # noqa: SLF001 - same module family
        if abnormal:
            out[n, index["always_abnormal"]] = 1.0
        for m in lab._mentions(t):  # noqa: SLF001
            if m.label == "other":
                if m.status != "negative":
                    out[n, index[f"other:{m.status}"]] = 1.0
                    abnormal = True
                continue
            out[n, index[f"{m.label}:{m.status}"]] = 1.0
            if m.status != "negative":
                abnormal = True
        out[n, index["rules:normal"]] = 0.0 if abnormal else 1.0
    return out
