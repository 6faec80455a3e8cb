"""Functions run in the model process (:mod:`medviewer.jobs.process`): the classifier stays loaded there."""

from __future__ import annotations

_CACHE: dict = {}


def classify_texts(texts: list[str]) -> list:
    """NoteResult per text, with the shipped notes model (loaded on first call, 1 torch thread)."""
    if "m" not in _CACHE:
        from medviewer.notes.model import NoteClassifier

        _CACHE["m"] = NoteClassifier.load(threads=1)
    return _CACHE["m"].classify(list(texts))
