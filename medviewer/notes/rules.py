"""Rule-based radiology report labeler (NegBio / CheXpert style), pure Python ``re``.

``label_text(text)`` maps a report (IMPRESSION + FINDINGS) to ``{label: 0.0 | 1.0}`` for the 14 ChestX-ray14
findings plus "normal" (:data:`~medviewer.notes.labels.LABELS`), following the conventions of the OpenI gold
standard (NegBio, Peng et al. 2018) as learnt from its train/validation reports:

1. Pre-processing: lower case; the de-identification token ``XXXX`` is kept as a neutral word ``xxxx`` (so "No XXXX
   of effusion" still negates and "costophrenic XXXX blunting" still matches); ``x-XXXX`` becomes ``x-ray``.
2. Sentences are split on ``. ; ? !`` and numbered list items ("1. ... 2. ..."); each sentence is split again into
   clauses at scope breakers ("but", "however", "although", "which", "otherwise", "aside from", ...).
3. Mentions: per finding, a list of phrase patterns (synonyms, inflections, the gold standard's mappings such as
   "airspace disease" -> not a finding of its own, "hyperinflation consistent with COPD" -> Emphysema; see
   :data:`FINDING_PATTERNS`), plus a list of "other abnormality" patterns (granuloma, degenerative spine, surgical
   clips, tortuous aorta, lines and tubes, ...; :data:`OTHER_PATTERNS`) that only decide "normal".
4. Each mention is classified ``positive``, ``negative`` or ``uncertain``:
   * negative: a negation cue earlier in the clause ("no", "without", "negative for", "free of", "clear of",
     "resolution of", "removal of", "no evidence of", "rather than", ...), or a post-negation right after the
     mention ("... has resolved", "... is not seen", "... has cleared", "... removed"); pseudo-negations ("no
     change", "no significant interval change", "not changed") are neutralised first;
   * uncertain: a hedge before or after it in the clause ("may", "possible", "cannot exclude", "could represent",
     "question of", "? ", "differential", "not excluded", ...). In the gold standard uncertain mentions count as
     ABSENT, so :func:`label_text` gives 0.0 for them; ``RuleLabeler(uncertain_value=0.5)`` gives 0.5 instead (the
     value is then a third state, "mentioned but hedged", not a probability).
   * alternatives ("atelectasis versus infiltrate", "effusion or thickening") are positive for both: the gold
     standard labels both.
5. A finding is 1.0 when any mention is positive. "normal" is 1.0 only when no finding is positive (or uncertain)
   and no other abnormality is positively mentioned.

Hernia: the OpenI gold standard never labels Hernia (no positive in 3851 reports although ~40 mention a hiatal
hernia), so by default a hiatal hernia only makes a report non-normal; ``RuleLabeler(label_hernia=True)`` reports it
as Hernia instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medviewer.notes.labels import FINDINGS, LABELS

__all__ = ["RuleLabeler", "label_text", "Mention", "FINDING_PATTERNS", "OTHER_PATTERNS"]

POSITIVE, NEGATIVE, UNCERTAIN = "positive", "negative", "uncertain"

# --------------------------------------------------------------------------------------------------------------
# Mention patterns.  Plain regular expressions matched on the normalised lower-case sentence; word boundaries are
# added around each alternative.
# --------------------------------------------------------------------------------------------------------------

FINDING_PATTERNS: dict[str, list[str]] = {
    "Atelectasis": [
        r"atelecta\w*", r"volume loss", r"loss of volume", r"collapsed?", r"collapse of",
    ],
    "Cardiomegaly": [
        r"cardiomegaly",
        r"(heart|cardiac|cardiomediastinal) (silhouette |size |shadow |contour )?(is |are |appears |remains |xxxx )*"
        r"(\w+ly )?(enlarged|large|increased|prominent)",
        r"enlarge(d|ment of) (the )?(heart|cardiac silhouette|cardiac shadow)",
        r"(enlarged|large) (heart|cardiac silhouette)",
        r"(heart|cardiac) enlargement",
        r"borderline (heart|cardiac)",
        r"(heart|cardiac) (size )?(is )?borderline",
        r"(heart|cardiac) size borderline",
    ],
    "Effusion": [
        r"effusions?", r"pleural fluid", r"fluid in the (\w+ )?(pleural|costophrenic|fissure)\w*",
        r"hydropneumothora\w+", r"hydrothorax",
    ],
    "Infiltration": [r"infiltrat\w*"],
    "Mass": [r"mass(es)?", r"masslike", r"mass-like"],
    "Nodule": [r"nodules?"],
    "Pneumonia": [r"pneumonias?", r"pneumonitis", r"bronchopneumonia"],
    "Pneumothorax": [r"pneumothora(x|ces|xes)", r"hydropneumothora\w+"],
    "Consolidation": [r"consolidat\w*"],
    "Edema": [r"(?<!soft tissue )(?<!tissue )edema", r"oedema", r"chf", r"congestive (heart )?failure", r"fluid overload", r"volume overload"],
    "Emphysema": [r"(?<!subcutaneous )(?<!soft tissue )emphysema\w*"],
    "Fibrosis": [r"fibros[ie]s", r"fibrotic"],
    "Pleural_Thickening": [r"pleural thickening", r"thickening of the pleura", r"thickened pleura",
                           r"pleural (\w+ )?thickening", r"apical (pleural )?cap(ping)?", r"pleural scar\w*"],
    "Hernia": [r"(hiatal|hiatus|diaphragmatic|bochdalek|paraesophageal) hernias?", r"hernia"],
}

OTHER_PATTERNS: list[str] = [
    r"granulom\w*", r"calcifi\w+", r"calcific", r"scar\w*", r"tortu\w+", r"atherosclero\w+", r"degenerat\w+",
    r"spondylo\w+", r"osteophyt\w+", r"arthrit\w+", r"clips?", r"sternotomy", r"(post)?surgical", r"postop\w*",
    r"catheters?", r"tubes?", r"pacemaker", r"picc", r"port", r"mediport", r"leads", r"stents?", r"prosthe\w+",
    r"hypoinfla\w+", r"hypoventilat\w+", r"low lung volumes", r"lung volumes are (\w+ )?(low|decreased|diminished)",
    r"crowding", r"elevat\w+", r"eventration", r"scolio\w+", r"dextro\w+", r"levo\w+", r"kypho\w+", r"curvature",
    r"deformit\w+", r"fractures?", r"lymph", r"adenopathy", r"lymphadenopathy", r"prominen\w+", r"enlarge\w*",
    r"ectasia", r"ectatic", r"unfold\w+", r"aneurysm\w*", r"densit(y|ies)", r"opaci\w+", r"markings",
    r"infect\w+", r"cholecystectomy", r"osteopeni\w+", r"wedg\w+", r"compression", r"sclero\w+", r"cabg",
    r"valve", r"bullets?", r"foreign bod\w+", r"mastectomy", r"lobectomy", r"pneumonectomy", r"thoracotomy",
    r"bronchiectasis", r"thicken\w+", r"congestion", r"lucenc\w+", r"free air", r"lesions?", r"tuberculosis",
    r"sarcoid\w*", r"histoplasm\w*", r"blunt\w+", r"hernia\w*", r"cardiomegaly", r"airspace disease",
    r"air space disease", r"abnormalit(y|ies)", r"disease", r"streak\w*", r"interstitial", r"copd",
    r"chronic obstructive", r"artifacts?", r"rotat\w+", r"tip", r"sutures?", r"piercings?", r"nipples?", r"devices?",
    r"nondiagnostic", r"stimulator", r"implants?", r"dissection", r"syndesmophytes?", r"shunt", r"inspirat\w+",
    r"senescent", r"fusion", r"low", r"diminish\w*", r"decreased", r"upper limits? (of )?normal", r"aort\w+",
    r"endplate", r"xxxx change", r"osteodystrophy", r"underpenetra\w+", r"dextrocardia", r"uncertain", r"indeterminate", r"have xxxx xxxx in the interval", r"hyperinfla\w+", r"hyperexpan\w+", r"hyperaerat\w+", r"bullae", r"bullous", r"bullas?",
]

# --------------------------------------------------------------------------------------------------------------
# Negation / uncertainty cues.
# --------------------------------------------------------------------------------------------------------------

# Pseudo-negations: neutralised before cue detection.
_PSEUDO = re.compile(
    r"\b(no|without|not) (\w+ ){0,2}(change|changed|increase|increased|worsening|progression)\b"
    r"|\bnot (only|necessarily)\b|\bno longer\b(?= (enlarged|large))|\bgram negative\b",
)

_NEG_PRE = re.compile(
    r"\b(no|not|without|negative( for)?|free of|clear of|resolution of|resolved|removal of|removed|absence of|"
    r"absent|rather than|nor|neither|clearing of|cleared|exclude[sd]?|ruled out|never|none|"
    r"interval resolution|no evidence|no xxxx of|lack of|instead of|resolving)\b"
)
_NEG_POST = re.compile(
    r"^[^,;]{0,60}?\b((is|are|has|have|was|were|had) (\w+ ){0,2})?"
    r"(not (been )?(seen|identified|present|visuali[sz]ed|evident|demonstrated|appreciated|noted|detected|"
    r"visible|apparent|observed)|resolved|cleared|no longer (seen|present|visuali[sz]ed|evident|identified|"
    r"apparent|visible)|absent|removed|gone|disappeared|resolving)\b"
)
_UNC_PRE = re.compile(
    r"\b(may|might|possibl[ey]|cannot (be )?(exclude|excluded|rule out)|can not|could|question(able|ed)?|"
    r"equivocal|differential|rule[ -]out|r/o|detect\w*|uncertain|indeterminate|perhaps|vs\.?|not (be )?excluded|"
    r"difficult to exclude|concern(ing)? for|suspicious for|suspect\w*|worrisome for|"
    r"if (there is|present)|to exclude|evaluate for|assess for|suggest\w*)\b|\?"
)
_UNC_STRONG = re.compile(
    r"\b(cannot (be )?(exclude|excluded|rule out)|can not (be )?(exclude|excluded|rule out)|not (be )?excluded|"
    r"difficult to exclude|rule[ -]out|r/o|to exclude|not (entirely |completely )?(excluded|ruled out))\b"
)
_UNC_POST = re.compile(
    r"^[^,;.]{0,30}?\b(is |are )?(not (be )?(\w+ )?excluded|cannot be (excluded|ruled out)|is possible|is a possibility|"
    r"are possible|not ruled out|questioned|suspected|considered|may|might|could)\b|^\s*\?"
)
# Clause breakers: negation / uncertainty does not cross them.
_BREAK = re.compile(
    r"\b(but|however|although|though|except|aside from|apart from|otherwise|which|whereas|while|"
    r"there (is|are))\b|[;:]"
)

# An "other" mention that is described as normal ("aortic contours are within normal limits").
_OTHER_NORMAL_POST = re.compile(
    r"^[^,;]{0,40}?\b(is|are|appears?|remains?)( \w+)? (normal|unremarkable|within normal limits|intact|symmetric)"
)
_OTHER_NORMAL_PRE = re.compile(r"\bnormal (\w+ ){0,5}$")

_SENT_SPLIT = re.compile(r"(?<=[.?!;])\s+|\s+(?=\d{1,2}\.\s)|(?<=[a-z]\.)(?=[a-z]{2})")


def _compile(patterns: list[str]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(f"(?:{p})" for p in patterns) + r")\b")


@dataclass(frozen=True)
class Mention:
    """One matched phrase: the label ("other" for non-finding abnormalities), the text, and its status."""

    label: str
    text: str
    status: str
    sentence: str


def normalize(text: str) -> str:
    """Lower case, de-identification tokens and markup made neutral, whitespace collapsed."""
    t = text.lower()
    t = re.sub(r"<br\s*/?>", " ", t)
    t = re.sub(r"x-x{2,}", "x-ray", t)
    t = re.sub(r"x{2,}", "xxxx", t)
    return " ".join(t.split())


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENT_SPLIT.split(text) if s and s.strip(" .")]


class RuleLabeler:
    """Keyword + negation/uncertainty labeler; see the module docstring for the rules.

    Parameters
    ----------
    uncertain_value: the value given to a finding that is only mentioned with a hedge (default 0.0, as the gold
        standard counts uncertain mentions as absent; 0.5 marks them).
    label_hernia: report hiatal hernias as "Hernia" (default False: the OpenI gold standard never does).
    """

    def __init__(self, uncertain_value: float = 0.0, label_hernia: bool = False):
        self.uncertain_value = float(uncertain_value)
        self.label_hernia = bool(label_hernia)
        self._finding_re = {k: _compile(v) for k, v in FINDING_PATTERNS.items()}
        self._other_re = _compile(OTHER_PATTERNS)

    # -- mention classification -------------------------------------------------------------------------------
    @staticmethod
    def _clause_bounds(sentence: str, start: int, end: int) -> tuple[int, int]:
        lo, hi = 0, len(sentence)
        for m in _BREAK.finditer(sentence):
            if m.end() <= start:
                lo = m.end()
            elif m.start() >= end:
                hi = m.start()
                break
        return lo, hi

    def _status(self, sentence: str, start: int, end: int) -> str:
        lo, hi = self._clause_bounds(sentence, start, end)
        pre = sentence[lo:start]
        post = sentence[end:hi]
        if _NEG_POST.search(post):
            return NEGATIVE
        if _UNC_STRONG.search(pre) or _UNC_POST.search(post):
            return UNCERTAIN
        if _NEG_PRE.search(pre):
            return NEGATIVE
        if _UNC_PRE.search(pre) or _UNC_POST.search(post):
            return UNCERTAIN
        return POSITIVE

    def mentions(self, text: str) -> list[Mention]:
        out = []
        for sent in split_sentences(normalize(text)):
            s = _PSEUDO.sub(lambda m: "_" * len(m.group(0)), sent)
            for label, rx in self._finding_re.items():
                for m in rx.finditer(s):
                    out.append(Mention(label, m.group(0), self._status(s, m.start(), m.end()), sent))
            for m in self._other_re.finditer(s):
                st = self._status(s, m.start(), m.end())
                if st == POSITIVE and (_OTHER_NORMAL_POST.search(s, m.end()) or _OTHER_NORMAL_PRE.search(s, 0, m.start())):
                    st = NEGATIVE
                out.append(Mention("other", m.group(0), st, sent))
        return out

    # -- labels -----------------------------------------------------------------------------------------------
    def label(self, text: str) -> dict[str, float]:
        values = {k: 0.0 for k in LABELS}
        abnormal = False
        for m in self.mentions(text):
            if m.status == NEGATIVE:
                continue
            label = m.label
            if label == "Hernia" and not self.label_hernia:
                label = "other"
            if label == "other":
                abnormal = True
                continue
            abnormal = True
            v = 1.0 if m.status == POSITIVE else self.uncertain_value
            values[label] = max(values[label], v)
        values["normal"] = 0.0 if abnormal else 1.0
        return values

    __call__ = label

    def label_many(self, texts) -> list[dict[str, float]]:
        return [self.label(t) for t in texts]


_DEFAULT = RuleLabeler()


def label_text(text: str) -> dict[str, float]:
    """``{label: 1.0 | 0.0}`` for the 15 labels of :data:`~medviewer.notes.labels.LABELS` (uncertain -> 0.0)."""
    return _DEFAULT.label(text)
