"""How an image model's calls agree with the radiologist's, over the cases of the store.

The radiologist's latest call on a finding is the reference; the model's case-level result is the worklist's
(max P(positive) over the latest result of each image, and that image's thresholded call). Headless, numpy only.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from medviewer.store import schema as S
from medviewer.store.cases import CaseStore

__all__ = ["agreement", "auc_mann_whitney"]


def auc_mann_whitney(scores, positive) -> float | None:  # noqa: ANN001 - array-likes
    """Area under the ROC curve of ``scores`` against the binary reference ``positive``.

    AUC = U / (n_pos * n_neg), where U is the Mann-Whitney statistic: the number of (positive, negative) pairs in
    which the positive scores higher, ties counted 1/2 (Hanley & McNeil, "The meaning and use of the area under a
    receiver operating characteristic (ROC) curve", Radiology 143:29-36, 1982). Computed from mid-ranks,
    U = R_pos - n_pos (n_pos + 1) / 2 with R_pos the sum of the positives' mid-ranks, in O(n log n).
    Returns None when either class is empty.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(positive, dtype=bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        return None
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1  # 1-based rank of the first member of each tie group
    midrank = first_rank + (counts - 1) / 2.0
    r_pos = float(midrank[inverse][y].sum())
    u = r_pos - n_pos * (n_pos + 1) / 2.0
    return u / (n_pos * n_neg)


def agreement(store: CaseStore, model_name: str, label: str) -> dict:
    """Agreement of ``model_name``'s case-level calls with the radiologist's latest call on ``label``.

    Over the cases that have both (cases missing either are left out), with the radiologist as reference::

        {"model", "label", "n", "n_positive", "n_negative" (radiologist calls),
         "tp", "fp", "tn", "fn" (AI positive vs radiologist positive),
         "sensitivity" tp/(tp+fn), "specificity" tn/(tn+fp) (None when the denominator is 0),
         "auc" (of the AI case score, P(positive) in [0, 1], against the radiologist's calls; Mann-Whitney,
                see :func:`auc_mann_whitney`; None when one class is empty),
         "overrides" (cases whose latest radiologist call was recorded as overriding the AI result it reviewed),
         "study_uids" (the cases counted, worklist order)}

    Raises nothing for an empty store (n = 0, rates None).
    """
    rad: dict[int, tuple[bool, bool]] = {}
    with store.engine.begin() as conn:
        for r in conn.execute(select(S.radiologist_scores.c.case_id, S.radiologist_scores.c.positive,
                                     S.radiologist_scores.c.override)
                              .where(S.radiologist_scores.c.label == label).order_by(S.radiologist_scores.c.id)):
            rad[int(r.case_id)] = (bool(r.positive), bool(r.override))
    uids: list[str] = []
    scores: list[float] = []
    ai_pos: list[bool] = []
    ref: list[bool] = []
    overrides = 0
    for row in store.worklist(model_name):
        call = rad.get(row.case.id)
        if call is None or row.ai_score is None or row.ai_model != model_name:
            continue
        uids.append(row.case.study_instance_uid)
        scores.append(float(row.ai_score))
        ai_pos.append(bool(row.ai_positive))
        ref.append(call[0])
        overrides += int(call[1])
    a = np.asarray(ai_pos, dtype=bool)
    y = np.asarray(ref, dtype=bool)
    tp = int(np.sum(a & y))
    fp = int(np.sum(a & ~y))
    tn = int(np.sum(~a & ~y))
    fn = int(np.sum(~a & y))
    return {
        "model": model_name, "label": label, "n": int(y.size), "n_positive": int(y.sum()),
        "n_negative": int((~y).sum()), "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
        "auc": auc_mann_whitney(scores, ref) if uids else None,
        "overrides": overrides, "study_uids": uids,
    }
