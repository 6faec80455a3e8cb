"""Long notes: split into overlapping windows of whole sentences that each fit the encoder, so that nothing is
truncated away. The classifier scores every window and combines them (a finding present or hedged in any window
is present or hedged in the note; the note is "normal" only when every window is).

A note that fits (at most ``max_tokens`` word pieces) is one window, itself. A longer one is cut into sentences
(:func:`note_sentences`: at ``. ; ? !``, line breaks and list bullets); consecutive sentences are packed into
windows of at most ``max_tokens`` pieces and each window starts with the last ``overlap`` sentence(s) of the
previous one, so a sentence whose meaning leans on the one before keeps its context. A single sentence longer than
a window is cut into word runs of at most half a window, which overlap the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["note_sentences", "note_windows"]

# a list item: a bullet at the start of a line, or a number "1." / "2)" at the start of a line or after a sentence
_ITEM = re.compile(r"(?:^|(?<=\n))[ \t]*(?:[-*\u2022>]+|\d{1,2}[.)])[ \t]+(?=\S)"
                   r"|(?<=[.;:])[ \t]+\d{1,2}[.)][ \t]+(?=\S)")
_SPLIT = re.compile(r"(?<=[.;?!])\s+|\s*\n\s*")


def note_sentences(text: str) -> list[str]:
    """The sentences (and list items: lines, "- ...", "1. ...") of a raw note, stripped, empty ones dropped."""
    text = _ITEM.sub("\n", text)
    return [s.strip() for s in _SPLIT.split(text) if s and s.strip(" .;-*\u2022\t")]


def _pieces(sentence: str, n_tokens: int, limit: int, count: Callable[[list[str]], list[int]]) -> list[str]:
    """A sentence of ``n_tokens`` > ``limit`` cut into runs of words of at most ``limit // 2`` tokens each."""
    words = sentence.split()
    lens = count(words)
    out: list[str] = []
    cur: list[str] = []
    total = 0
    half = max(limit // 2, 1)
    for w, n in zip(words, lens):
        if cur and total + n > half:
            out.append(" ".join(cur))
            cur, total = [], 0
        cur.append(w)
        total += n
    if cur:
        out.append(" ".join(cur))
    return out


def note_windows(text: str, count: Callable[[list[str]], list[int]], max_tokens: int,
                 overlap: int = 1) -> list[str]:
    """Windows of ``text`` of at most ``max_tokens`` word pieces each (the text itself when it fits).

    ``count`` maps a list of strings to their lengths in word pieces, without special tokens (e.g.
    ``lambda xs: [len(i) for i in tokenizer(xs, add_special_tokens=False)["input_ids"]]``).
    """
    sentences = note_sentences(text)
    if not sentences:
        return [text]
    if count([text])[0] <= max_tokens:
        return [text]
    # list items and lines without a full stop keep a boundary once joined
    sentences = [s if s.endswith((".", ";", "?", "!", ":")) else s + "." for s in sentences]
    lens = count(sentences)
    units: list[str] = []
    unit_lens: list[int] = []
    for s, n in zip(sentences, lens):
        if n <= max_tokens:
            units.append(s)
            unit_lens.append(n)
        else:
            parts = _pieces(s, n, max_tokens, count)
            units.extend(parts)
            unit_lens.extend(count(parts))
    windows: list[str] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and total + unit_lens[j] <= max_tokens:
            total += unit_lens[j]
            j += 1
        j = max(j, i + 1)
        windows.append(" ".join(units[i:j]))
        if j >= len(units):
            break
        i = max(j - overlap, i + 1)
    return windows
