"""Rule-based radiology report labeler (NegBio / CheXpert style), pure Python ``re``, no dependencies.

:func:`label_text` maps a report (IMPRESSION + FINDINGS) to ``{label: 0.0 | 1.0}`` for the 14 ChestX-ray14 findings
plus "normal" (:data:`~medviewer.notes.labels.LABELS`), following the conventions of the OpenI gold standard
(NegBio, Peng et al. 2018) as learnt from its train/validation reports only (never the test split):

1. Pre-processing: run-on IMPRESSION/FINDINGS ("No acute findings Heart size ...") are split where a capitalised
   word follows a lower-case content word; then lower case; the de-identification token ``XXXX`` becomes a neutral
   word ``xxxx`` (so "No XXXX of effusion" still negates, "costophrenic XXXX blunting" still matches, "less XXXX"
   reads as the hedge "less likely") and ``x-XXXX`` becomes ``x-ray``.
2. Sentences are split at ``. ; ? !`` and numbered items ("1. ... 2. ..."); a negation or hedge only reaches to
   the next scope breaker in its sentence (:data:`SCOPE_BREAKERS`: "but", "however", "although", "which",
   "otherwise", "there is", ";" ...).
3. Mentions: phrase patterns per finding (:data:`FINDING_PATTERNS`) and "other abnormality" patterns that only
   decide "normal" (:data:`OTHER_PATTERNS`: granuloma, degenerative spine, clips, lines and tubes, tortuous aorta,
   low lung volumes, ...). The gold standard's own vocabulary, not the radiological one, decides: e.g. Emphysema is
   "emphysema" only (not COPD nor hyperinflation), Edema is "edema" only (not CHF or vascular congestion), an
   enlarged *cardiac silhouette* is not Cardiomegaly but a "borderline" heart is, any "thickening" (pleural,
   fissural, bronchial wall) and peribronchial cuffing is Pleural_Thickening, "nodular opacity" is not a Nodule.
4. Each mention is ``negative``, ``uncertain`` or ``positive``, checked in this order:
   * a post-negation right after it (:data:`NEGATION_POST`: "... has resolved", "... is not seen", "... removed");
   * a "cannot exclude"-type hedge (:data:`UNCERTAIN_STRONG`, also after the mention: "... is not excluded");
     these contain a negation word but are uncertain;
   * a negation cue earlier in the clause (:data:`NEGATION_PRE`: "no", "without", "negative for", "free of",
     "clear of", "resolution of", "removal of", "rather than", ...). Pseudo-negations (:data:`PSEUDO_NEGATIONS`:
     "no change", "no significant interval increase") are masked first;
   * a hedge earlier in the clause (:data:`UNCERTAIN_PRE`: "may", "possible", "could", "questionable", "suggestive
     of" (but not "most/strongly suggestive of"), "concerning for", "correlate clinically", "less likely") or right
     after it ("... is possible");
   * otherwise positive. Alternatives ("atelectasis versus infiltrate", "effusion and/or thickening") are positive
     for both, as in the gold standard; "probable", "likely", "consistent with", "compatible with" are positive.
5. A finding is 1.0 when any of its mentions is positive. Uncertain mentions count as ABSENT in the gold standard,
   so they give 0.0 by default; ``RuleLabeler(uncertain_value=0.5)`` returns 0.5 for a finding whose best mention
   is uncertain (a third state, "mentioned but hedged", not a probability).
6. "normal" is 1.0 only when no finding and no other abnormality is mentioned positively or uncertainly (an "other"
   mention described as normal, "aortic contours are within normal limits", does not count), and no phrase of
   :data:`ALWAYS_ABNORMAL` occurs.

Hernia: the OpenI gold standard never labels Hernia (no positive in its 3851 reports although ~40 of them mention a
hiatal hernia), so by default a hernia only makes a report non-normal; ``RuleLabeler(label_hernia=True)`` reports
it as Hernia instead.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from medviewer.notes.labels import LABELS

__all__ = [
    "RuleLabeler", "label_text", "Mention", "normalize", "split_sentences",
    "FINDING_PATTERNS", "OTHER_PATTERNS", "ALWAYS_ABNORMAL",
    "NEGATION_PRE", "NEGATION_POST", "PSEUDO_NEGATIONS", "UNCERTAIN_PRE", "UNCERTAIN_POST", "UNCERTAIN_STRONG",
    "SCOPE_BREAKERS", "FRAGMENT_NEGATIVE", "FRAGMENT_UNCERTAIN",
]

POSITIVE, NEGATIVE, UNCERTAIN = "positive", "negative", "uncertain"
OTHER = "other"

# ------------------------------------------------------------------------------------------------------------------
# Mention patterns: regular expressions on the normalised lower-case text, wrapped in word boundaries.
# ------------------------------------------------------------------------------------------------------------------

FINDING_PATTERNS: dict[str, tuple[str, ...]] = {
    "Atelectasis": (r"atelecta\w*", r"collapsed?", r"collapse of"),
    # "cardiomegaly", an enlarged / large / borderline *heart*; not an enlarged "cardiac silhouette" (the gold
    # standard leaves those, often "cardiomegaly versus pericardial effusion" or technique, unlabelled).
    "Cardiomegaly": (
        r"cardiomegaly",
        r"heart (size )?(is |appears |remains |xxxx |at xxxx |has |been )*((?!not )\w+ )?(enlarged|large)",
        r"enlarge(d|ment of) (the )?heart", r"enlarged heart", r"large heart", r"heart enlargement",
        r"cardiac enlargement",
        r"borderline heart", r"borderline cardiac", r"heart (size )?(is )?borderline", r"increase in heart size",
    ),
    "Effusion": (
        r"(?<!pericardial )effusions?", r"pleural fluid", r"fluid in the (\w+ )?(pleural|costophrenic|fissure)\w*",
        r"hydropneumothora\w+", r"hydrothorax",
    ),
    "Infiltration": (r"infiltrat\w*",),
    "Mass": (r"(?<!nodule/)mass(es)?", r"masslike", r"mass-like"),
    # "nodular opacity/density" is not a Nodule in the gold standard (9 of 40 training mentions are).
    "Nodule": (r"nodules?",),
    "Pneumonia": (r"pneumonias?", r"pneumonitis", r"bronchopneumonia"),
    "Pneumothorax": (r"pneumothora(x|ces|xes)",),
    "Consolidation": (r"consolidat\w*",),
    "Edema": (r"(?<!soft tissue )(?<!tissue )edema", r"oedema"),
    "Emphysema": (r"(?<!subcutaneous )(?<!soft tissue )emphysema\w*",),
    "Fibrosis": (r"(?<!cystic )fibros[ie]s", r"fibrotic"),
    "Pleural_Thickening": (r"thicken\w*", r"apical (pleural )?cap(ping)?", r"capping", r"peribronchial cuffing"),
    "Hernia": (r"hiatal hernias?", r"hiatus hernias?", r"hernia\w*"),
}

OTHER_PATTERNS: tuple[str, ...] = (
    # chronic lung / pleura / heart findings outside the 14
    r"granulom\w*", r"calcifi\w+", r"calcific", r"scar\w*", r"volume loss", r"loss of volume", r"chf",
    r"heart failure", r"overload", r"congest\w+", r"cystic fibrosis", r"copd", r"chronic obstructive",
    r"hyperinfla\w+", r"hyperexpan\w+", r"hyperaerat\w+", r"bullae", r"bullous", r"bullas?", r"bronchiectasis",
    r"lucenc\w+", r"free air", r"lesions?", r"tuberculosis", r"sarcoid\w*", r"histoplasm\w*", r"blunt\w+",
    r"airspace disease", r"air space disease", r"abnormalit(y|ies)", r"disease", r"streak\w*", r"interstitial",
    r"densit(y|ies)", r"opaci\w+", r"markings", r"infect\w+", r"dextrocardia", r"prominen\w+", r"enlarge\w*",
    r"lymph", r"adenopathy", r"lymphadenopathy",
    # aorta and vessels
    r"tortu\w+", r"atherosclero\w+", r"aort\w+", r"ectasia", r"ectatic", r"unfold\w+", r"aneurysm\w*",
    r"dissection",
    # volumes, diaphragm, technique
    r"hypoinfla\w+", r"hypoventilat\w+", r"low lung volumes", r"lung volumes are (\w+ )?(low|decreased|diminished)",
    r"low", r"diminish\w*", r"decreased", r"crowding", r"elevat\w+", r"eventration", r"inspirat\w+",
    r"underpenetra\w+", r"rotat\w+", r"artifacts?", r"nondiagnostic", r"uncertain", r"indeterminate",
    r"xxxx change",
    # bones
    r"degenerat\w+", r"spondylo\w+", r"osteophyt\w+", r"arthrit\w+", r"spurs?", r"spurring", r"syndesmophytes?",
    r"endplate", r"senescent", r"scolio\w+", r"dextro\w+", r"levo\w+", r"kypho\w+", r"curvature", r"deformit\w+",
    r"fractures?", r"osteopeni\w+", r"osteodystrophy", r"wedg\w+", r"compression", r"sclero\w+", r"fusion",
    # surgery, lines, tubes, devices, foreign bodies
    r"clips?", r"sternotomy", r"surgical", r"postsurgical", r"postop\w*", r"cabg", r"valve", r"cholecystectomy",
    r"mastectomy", r"lobectomy", r"pneumonectomy", r"thoracotomy", r"catheters?", r"tubes?", r"tips?",
    r"generator", r"pacemaker", r"picc", r"port", r"mediport", r"leads", r"stents?", r"prosthe\w+", r"shunt",
    r"stimulator", r"implants?", r"devices?", r"sutures?", r"bullets?", r"foreign bod\w+", r"piercings?",
    r"nipples?",
    # hernia (see the module docstring)
    r"hernia\w*",
)

# Phrases that make a report non-normal whatever their context. Gold-standard conventions seen in the training
# reports: a "noncalcified nodule" mention is never normal, even negated ("No airspace disease, effusion or
# noncalcified nodule."); "the heart and lungs have XXXX XXXX in the interval" (de-identified template) never is.
ALWAYS_ABNORMAL: tuple[str, ...] = (r"non-?calcified", r"have xxxx xxxx in the interval")

# ------------------------------------------------------------------------------------------------------------------
# Negation and uncertainty cues.
# ------------------------------------------------------------------------------------------------------------------

#: Masked before cue detection: they contain a negation word but do not negate.
PSEUDO_NEGATIONS: tuple[str, ...] = (
    r"(no|without|not) (\w+ ){0,2}(change|changed|increase|increased|worsening|progression)",
    r"not (only|necessarily)", r"gram negative",
)

#: A negation cue anywhere before the mention in its clause.
NEGATION_PRE: tuple[str, ...] = (
    r"no", r"not", r"without", r"negative( for)?", r"free of", r"clear of", r"resolution of", r"resolved",
    r"removal of", r"removed", r"absence of", r"absent", r"rather than", r"nor", r"neither", r"clearing of",
    r"cleared", r"exclude[sd]?", r"ruled out", r"never", r"none", r"no evidence", r"no xxxx of", r"lack of",
    r"instead of", r"resolving", r"clear(?= (focal )?air ?space)",
)

#: Right after the mention (within 60 characters, same clause, no comma): "... has resolved", "... is not seen".
NEGATION_POST: tuple[str, ...] = (
    r"((is|are|has|have|was|were|had) (\w+ ){0,2})?(not (been )?(\w+ly )?(seen|identified|present|visuali[sz]ed|"
    r"evident|demonstrated|appreciated|noted|detected|visible|apparent|observed)|resolved|cleared|"
    r"no longer (seen|present|visuali[sz]ed|evident|identified|apparent|visible)|absent|removed|gone|disappeared|"
    r"resolving)",
)

#: Hedges that contain a negation word; they win over NEGATION_PRE (before the mention, or after it).
UNCERTAIN_STRONG: tuple[str, ...] = (
    r"can ?not (be )?(exclude|excluded|rule out|ruled out)", r"not (be )?(entirely |completely )?excluded",
    r"difficult to (\w+ )?exclude", r"rule[ -]out", r"r/o", r"to exclude", r"not (entirely |completely )?ruled out",
)

#: A hedge before the mention in its clause.
UNCERTAIN_PRE: tuple[str, ...] = (
    r"may", r"might", r"maybe", r"possibl[ey]", r"could", r"question(able|ed)?", r"equivocal", r"differential",
    r"detect\w*", r"uncertain", r"indeterminate", r"perhaps", r"vs\.?", r"concern(ing)? for", r"suspicious for",
    r"suspect\w*", r"worrisome for", r"if (there is|present)", r"(?<!most )(?<!strongly )suggest\w*",
    r"less xxxx", r"less likely", r"correlat\w+", r"clinical setting", r"evaluat\w* (for|of)", r"assess for", r"\?",
)

#: A hedge right after the mention (within 30 characters of its clause).
UNCERTAIN_POST: tuple[str, ...] = (
    r"(is |are )?(not (be )?(\w+ )?excluded|difficult to (\w+ )?exclude|cannot be (excluded|ruled out)|"
    r"(is|are) (\w+ )?possible|is a possibility|not ruled out|questioned|suspected|considered|"
    r"(may|might|could) (also )?(be )?(present|seen|noted|exist))",
    r"\?",
)

#: Negation and hedges do not reach across these.
SCOPE_BREAKERS: tuple[str, ...] = (
    r"but", r"however", r"although", r"though", r"except", r"aside from", r"apart from", r"otherwise", r"which",
    r"whereas", r"while", r"there (is|are)", r";", r":",
)

#: Fragments typed as "finding: value" ("PTX: none", "effusion - neg", "nodule: ?"): the value right after the
#: mention, alone up to the end of its clause, decides.
FRAGMENT_NEGATIVE: tuple[str, ...] = (
    r"none", r"negative", r"no", r"absent", r"nil", r"not seen", r"not present", r"not identified", r"resolved",
    r"gone", r"0",
)
FRAGMENT_UNCERTAIN: tuple[str, ...] = (
    r"possible", r"questionable", r"equivocal", r"cannot exclude", r"can't exclude", r"not excluded",
    r"rule out", r"maybe", r"uncertain", r"indeterminate",
)
_FRAGMENT_SEP = r"\s*(?:[:=\u2013-]\s*|(?:is|are)\s+)?"
_FRAGMENT_END = r"\s*(?=[.,;)]|$)"

# An "other" mention described as normal ("aortic contours are within normal limits", "normal ... aorta").
_OTHER_NORMAL_POST = re.compile(
    r"[^,;]{0,40}?\b(is|are|appears?|remains?)( \w+)? (normal|unremarkable|within normal limits|intact|symmetric)"
)
_OTHER_NORMAL_PRE = re.compile(r"\bnormal (\w+ ){0,5}$")

_RUN_ON = re.compile(r"\b([a-z]+),? (?=[A-Z][a-z]{2,})")
_FUNCTION_WORDS = frozenset(
    "a an the no not of and or with without for is are was were in on at to by from as be has have than nor any "
    "acute".split()
)
_SENT_END = re.compile(r"(?<=[.?!;])\s+|\s+(?=\d{1,2}\.\s)|(?<=[a-z]\.)(?=[a-z]{2})")


def _words(alternatives) -> str:
    return r"\b(?:" + "|".join(f"(?:{a})" for a in alternatives) + r")(?!\w)"


def _anchor(pattern: str) -> str | None:
    """The literal text any match of ``pattern`` starts with (after leading lookbehinds), if 3+ characters long;
    used to skip patterns whose anchor is absent from a report (a fast ``in`` test)."""
    p = re.sub(r"^(\(\?<[!=][^)]*\))+", "", pattern)
    m = re.match(r"[a-z /-]+", p)
    if not m:
        return None
    lit = m.group(0)
    if len(p) > len(lit) and p[len(lit)] in "?*{":
        lit = lit[:-1]
    return lit if len(lit) >= 3 else None


def _split_run_on(m: re.Match) -> str:
    return m.group(0) if m.group(1) in _FUNCTION_WORDS else m.group(1) + ". "


# a line break, with the list bullet or item number that may start the next line
_LINE_BREAK = re.compile(r"[ \t]*\n\s*(?:(?:[-*\u2022>]+|\d{1,2}[.)])[ \t]+)?")


def _line_break(m: re.Match) -> str:
    """A line break ends a sentence (notes typed as lists / lines rarely end them with a full stop)."""
    before = m.string[:m.start()].rstrip()
    return " " if not before or before[-1] in ".;:?!" else ". "


def normalize(text: str) -> str:
    """Abbreviations expanded and finding words' misspellings corrected (:func:`medviewer.notes.normalize.
    expand_note`), lines and list items made sentences, run-on sections split, lower case, de-identification
    tokens made neutral, whitespace collapsed."""
    from medviewer.notes.normalize import expand_note

    text = expand_note(text)
    if "\n" in text:
        text = _LINE_BREAK.sub(_line_break, text.strip())
    t = _RUN_ON.sub(_split_run_on, text).lower()
    t = re.sub(r"<br\s*/?>", " ", t)
    t = re.sub(r"x-x{2,}", "x-ray", t)
    t = re.sub(r"x{2,}", "xxxx", t)
    return " ".join(t.split())


def _sentence_spans(t: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for m in _SENT_END.finditer(t):
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(t)))
    return [(a, b) for a, b in spans if t[a:b].strip(" .")]


def split_sentences(text: str) -> list[str]:
    """The sentences of a normalised text."""
    return [text[a:b] for a, b in _sentence_spans(text)]


@dataclass(frozen=True)
class Mention:
    """One matched phrase: its label (a finding, or "other" for an abnormality outside the 14), the matched text,
    its status ("positive", "negative" or "uncertain") and the sentence it is in."""

    label: str
    text: str
    status: str
    sentence: str


class RuleLabeler:
    """Keyword + negation/uncertainty labeler; see the module docstring for the rules.

    Parameters
    ----------
    uncertain_value: the value of a finding mentioned only with a hedge (default 0.0: the gold standard counts
        uncertain mentions as absent; 0.5 marks them as a third state).
    label_hernia: report hernias as "Hernia" (default False: the OpenI gold standard never does).

    The module-level pattern tables are compiled when the labeler is made, so a labeler built after changing them
    uses the changed rules.
    """

    def __init__(self, uncertain_value: float = 0.0, label_hernia: bool = False):
        self.uncertain_value = float(uncertain_value)
        self.label_hernia = bool(label_hernia)
        # (label, anchor or None, compiled pattern), one per pattern so that absent anchors skip the regex.
        self._patterns: list[tuple[str, str | None, re.Pattern]] = []
        for label, pats in FINDING_PATTERNS.items():
            for p in pats:
                self._patterns.append((label, _anchor(p), re.compile(_words([p]))))
        for p in OTHER_PATTERNS:
            self._patterns.append((OTHER, _anchor(p), re.compile(_words([p]))))
        self._always = re.compile(_words(ALWAYS_ABNORMAL))
        self._pseudo = re.compile(_words(PSEUDO_NEGATIONS))
        self._neg_pre = re.compile(_words(NEGATION_PRE))
        self._neg_post = re.compile(r"[^,;]{0,60}?\b" + _words(NEGATION_POST))
        self._unc_strong = re.compile(_words(UNCERTAIN_STRONG))
        self._unc_strong_post = re.compile(r"[^,;.]{0,30}?" + _words(UNCERTAIN_STRONG))
        self._unc_pre = re.compile(_words(UNCERTAIN_PRE[:-1]) + "|" + UNCERTAIN_PRE[-1])
        self._unc_post = re.compile(r"[^,;.]{0,30}?\b" + _words(UNCERTAIN_POST[:-1]) + r"|\s*" + UNCERTAIN_POST[-1])
        self._break = re.compile(_words(SCOPE_BREAKERS[:-2]) + "|[;:]")
        self._frag_neg = re.compile(_FRAGMENT_SEP + _words(FRAGMENT_NEGATIVE) + _FRAGMENT_END)
        self._frag_unc = re.compile(_FRAGMENT_SEP + r"(?:\?|" + _words(FRAGMENT_UNCERTAIN) + ")" + _FRAGMENT_END)

    # -- mentions ------------------------------------------------------------------------------------------------
    def _status(self, t: str, lo: int, hi: int, start: int, end: int, breaks: list[int]) -> str:
        """Status of the mention t[start:end] in the sentence t[lo:hi] whose scope breaks are at ``breaks``."""
        i = bisect.bisect_right(breaks, start)
        c_lo = breaks[i - 1] if i else lo
        j = bisect.bisect_left(breaks, end)
        c_hi = breaks[j] if j < len(breaks) else hi
        if self._frag_neg.match(t, end, hi):
            return NEGATIVE
        if self._frag_unc.match(t, end, hi):
            return UNCERTAIN
        if self._neg_post.match(t, end, c_hi):
            return NEGATIVE
        if self._unc_strong.search(t, c_lo, start) or self._unc_strong_post.match(t, end, c_hi):
            return UNCERTAIN
        if self._neg_pre.search(t, c_lo, start):
            return NEGATIVE
        if self._unc_pre.search(t, c_lo, start) or self._unc_post.match(t, end, c_hi):
            return UNCERTAIN
        return POSITIVE

    @staticmethod
    def _finditer(rx: re.Pattern, anchor: str | None, t: str):
        """``rx.finditer(t)``, but trying ``rx`` only where its literal anchor occurs (``str.find`` is much faster
        than letting ``re`` try every alternative at every word)."""
        if anchor is None:
            yield from rx.finditer(t)
            return
        pos = t.find(anchor)
        while pos != -1:
            m = rx.match(t, pos)
            if m:
                yield m
                pos = t.find(anchor, m.end())
            else:
                pos = t.find(anchor, pos + 1)

    def mentions(self, text: str) -> list[Mention]:
        """Every finding and "other" mention of a report, with its status, in pattern order."""
        return self._mentions(normalize(text))

    def _mentions(self, t: str) -> list[Mention]:
        masked = self._pseudo.sub(lambda m: "_" * len(m.group(0)), t)
        spans = _sentence_spans(t)
        starts = [a for a, _ in spans]
        breaks_cache: dict[int, list[int]] = {}
        out = []
        for label, anchor, rx in self._patterns:
            if anchor is not None and anchor not in masked:
                continue
            for m in self._finditer(rx, anchor, masked):
                k = bisect.bisect_right(starts, m.start()) - 1
                lo, hi = spans[k]
                if m.end() > hi:
                    continue
                breaks = breaks_cache.get(k)
                if breaks is None:
                    breaks = breaks_cache[k] = [
                        x for b in self._break.finditer(masked, lo, hi) for x in (b.start(), b.end())
                    ]
                st = self._status(masked, lo, hi, m.start(), m.end(), breaks)
                if label == OTHER and st == POSITIVE and (
                    _OTHER_NORMAL_POST.match(masked, m.end(), hi) or _OTHER_NORMAL_PRE.search(masked, lo, m.start())
                ):
                    st = NEGATIVE
                out.append(Mention(label, t[m.start():m.end()], st, t[lo:hi]))
        return out

    # -- labels --------------------------------------------------------------------------------------------------
    def label(self, text: str) -> dict[str, float]:
        """``{label: value}`` for the 15 labels (1.0 present, 0.0 absent, ``uncertain_value`` hedged)."""
        t = normalize(text)
        values = dict.fromkeys(LABELS, 0.0)
        abnormal = self._always.search(t) is not None
        for m in self._mentions(t):
            if m.status == NEGATIVE:
                continue
            abnormal = True
            label = m.label
            if label == OTHER or (label == "Hernia" and not self.label_hernia):
                continue
            v = 1.0 if m.status == POSITIVE else self.uncertain_value
            if v > values[label]:
                values[label] = v
        values["normal"] = 0.0 if abnormal else 1.0
        return values

    __call__ = label

    def label_many(self, texts) -> list[dict[str, float]]:
        return [self.label(t) for t in texts]


_DEFAULT: RuleLabeler | None = None


def label_text(text: str) -> dict[str, float]:
    """``{label: 1.0 | 0.0}`` for the 15 labels of :data:`~medviewer.notes.labels.LABELS` (uncertain -> 0.0)."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RuleLabeler()
    return _DEFAULT.label(text)
