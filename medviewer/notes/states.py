"""The three states of a finding in a note (as CheXpert's and NegBio's labelers give them): "present" (the note
states it), "absent" (not mentioned, or negated) and "uncertain" (mentioned with a hedge: "possible", "?",
"cannot exclude"). The same strings as :data:`medviewer.notes.model.STATES`.

Stored findings are dicts as ``NoteResult.to_dict()["findings"]``; findings saved before three states have no
``"state"`` and read as "present" when ``positive`` else "absent". The radiologist's decision on a finding
("confirmed" / "rejected") makes it present / absent, an uncertain one included. Pure Python, no imports: the
store, the worklist and the report writers use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"
STATES = (PRESENT, ABSENT, UNCERTAIN)

__all__ = ["PRESENT", "ABSENT", "UNCERTAIN", "STATES", "finding_state", "reviewed_state", "reviewed_states",
           "labels_with_state"]


def finding_state(f: Mapping[str, Any]) -> str:
    """The model's state of one stored finding: its ``"state"`` when it has a known one, else (findings saved
    before three states) "present" when ``positive`` else "absent"."""
    state = f.get("state")
    if state in STATES:
        return str(state)
    return PRESENT if f.get("positive") else ABSENT


def reviewed_state(f: Mapping[str, Any], decisions: Mapping[str, str]) -> str:
    """The state after the radiologist's review: "confirmed" -> present, "rejected" -> absent, else the model's."""
    d = decisions.get(str(f.get("label", "")))
    if d == "confirmed":
        return PRESENT
    if d == "rejected":
        return ABSENT
    return finding_state(f)


def reviewed_states(findings: Iterable[Mapping[str, Any]], decisions: Mapping[str, str] | None = None
                    ) -> dict[str, str]:
    """{label: state} of the findings, in findings order, after the review (``decisions`` None: the model's)."""
    if decisions is None:
        return {str(f["label"]): finding_state(f) for f in findings}
    return {str(f["label"]): reviewed_state(f, decisions) for f in findings}


def labels_with_state(findings: Iterable[Mapping[str, Any]], state: str,
                      decisions: Mapping[str, str] | None = None) -> list[str]:
    """Labels whose state (after the review when ``decisions`` is given, else the model's) is ``state``, in
    findings order."""
    return [k for k, s in reviewed_states(findings, decisions).items() if s == state]
