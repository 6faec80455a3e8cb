"""Training data for notes as radiologists type them: label-aware variants of the OpenI reports and synthetic
telegraphic notes with three-state labels known by construction.

Label states are integers: 0 absent, 1 present, 2 uncertain (hedged), per label in LABELS order.

:func:`augment_report` rewrites one report, keeping its labels right: sentences reordered or dropped (only those
that mention nothing), telegraphic style (articles / copulas dropped, lines, bullets, semicolons), abbreviations
(:data:`AUG_ABBREVIATIONS`, more forms than the normaliser knows, so the model sees some it must read itself),
typing errors, case changes, and two edits that change labels: a sentence whose only mentions are positive is
hedged ("possible ...", "... ?", "cannot exclude ...": those findings become uncertain) or replaced by its
negation ("No <finding>.": absent) when the finding is not mentioned elsewhere. The rule labeler finds the
mentions of each sentence.

:func:`synthetic_note` writes a short note from phrase tables: each finding drawn present, hedged, negated or not
mentioned, with sizes, sides and lobes, optional other abnormalities (devices, granuloma, spine), normal
statements, and a layout (sentences, lines, bullets, numbered list, commas, "finding: value" fragments).

Nothing here was written from the typed-note test set (tests/data/typed_notes.jsonl), which stays a test set.
"""

from __future__ import annotations

import random
import re

import numpy as np

from medviewer.notes.labels import FINDINGS, LABELS

ABSENT, PRESENT, UNCERTAIN = 0, 1, 2
NORMAL = LABELS.index("normal")

# ------------------------------------------------------------------------------------------------------------------
# Report variants
# ------------------------------------------------------------------------------------------------------------------

#: phrase (lower case, whole words) -> abbreviations typed for it; some are not in the normaliser on purpose.
AUG_ABBREVIATIONS: dict[str, list[str]] = {
    "pneumothorax": ["PTX", "ptx", "pneumo", "PTx", "pntx"],
    "pneumothoraces": ["PTXs", "ptxs"],
    "pleural effusions": ["pl effs", "effs", "pleural effs", "effusions"],
    "pleural effusion": ["pl eff", "eff", "pleural eff", "effusion", "PL EFF"],
    "effusions": ["effs", "effns"],
    "effusion": ["eff", "effn", "effus"],
    "atelectasis": ["atx", "atelect", "ATX", "atel"],
    "atelectatic": ["atx", "atelectatic"],
    "cardiomegaly": ["cardiomeg", "CMG", "cardiomeg."],
    "pneumonia": ["PNA", "pna", "pneumonia"],
    "consolidation": ["consol", "consolid", "consolidn"],
    "infiltrates": ["infilts", "infiltrates"],
    "infiltrate": ["infilt", "infiltr", "inf"],
    "emphysema": ["emphys", "emph"],
    "emphysematous": ["emphysematous", "emphys"],
    "pulmonary edema": ["pulm edema", "pulm. edema", "edema"],
    "interstitial edema": ["int edema", "interstitial edema"],
    "pleural thickening": ["pl thickening", "pl thick", "PT"],
    "hiatal hernia": ["HH", "hiatal hern", "HH"],
    "nodules": ["nods", "nodules"],
    "nodule": ["nod", "nodule"],
    "right lower lobe": ["RLL"], "left lower lobe": ["LLL"], "right upper lobe": ["RUL"],
    "left upper lobe": ["LUL"], "right middle lobe": ["RML"], "lingula": ["ling"],
    "right": ["R", "rt", "R."], "left": ["L", "lt", "L."], "bilateral": ["b/l", "bilat", "B/L", "bil"],
    "bilaterally": ["b/l", "bilat"], "bibasilar": ["bibas", "bibasilar", "b/l basilar"],
    "without": ["w/o", "w/out"], "with": ["w/", "w"], "status post": ["s/p"], "consistent with": ["c/w", "cw"],
    "no evidence of": ["no e/o", "neg for", "no"], "negative for": ["neg for", "neg"], "small": ["sm", "sml"],
    "moderate": ["mod", "mod."], "large": ["lg", "lrg"], "normal": ["nml", "nl", "norm"],
    "within normal limits": ["WNL", "wnl", "nml"], "history of": ["h/o", "hx"], "pulmonary": ["pulm"],
    "vascular": ["vasc"], "congestive heart failure": ["CHF"], "unchanged": ["unch", "unchgd", "no change"],
    "increased": ["incr", "inc"], "decreased": ["decr", "dec"], "possible": ["poss", "?"],
    "probable": ["prob", "probable"], "there is": ["", "there is"], "there are": ["", "there are"],
    "cardiomediastinal silhouette": ["cardiomediastinal silhouette", "CM silhouette", "heart/mediastinum"],
    "costophrenic angle": ["CPA", "CP angle"], "costophrenic angles": ["CPAs", "CP angles"],
    "endotracheal tube": ["ETT"], "nasogastric tube": ["NGT", "NG tube"], "heart size": ["heart", "heart sz"],
    "no acute cardiopulmonary abnormality": ["NACP", "no acute cp abnormality", "nad"],
    "no acute cardiopulmonary disease": ["no acute CP dz", "NAD"], "disease": ["dz"], "fracture": ["fx"],
}
_ABBR_RX = re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(AUG_ABBREVIATIONS, key=len, reverse=True))
                      + r")\b", re.IGNORECASE)
_DROP_WORDS = re.compile(r"\b(there (is|are)|the|a|an|is|are|seen|noted|again|present|identified)\b\s*",
                         re.IGNORECASE)
_SENT = re.compile(r"(?<=[.;?!])\s+")
_KEYS = "qwertyuiopasdfghjklzxcvbnm"
_NEAR = {c: _KEYS[max(0, i - 1):i] + _KEYS[i + 1:i + 2] for i, c in enumerate(_KEYS)}

CANONICAL = {"Atelectasis": "atelectasis", "Cardiomegaly": "cardiomegaly", "Effusion": "pleural effusion",
             "Infiltration": "infiltrate", "Mass": "mass", "Nodule": "nodule", "Pneumonia": "pneumonia",
             "Pneumothorax": "pneumothorax", "Consolidation": "consolidation", "Edema": "edema",
             "Emphysema": "emphysema", "Fibrosis": "fibrosis", "Pleural_Thickening": "pleural thickening",
             "Hernia": "hiatal hernia"}
HEDGE_PREFIX = ["possible", "questionable", "? ", "?", "cannot exclude", "can't r/o", "r/o", "concerning for",
                "suspicious for", "may represent", "equivocal", "suggestive of", "possibly", "could be",
                "question of", "cannot rule out", "?early", "suspect"]
HEDGE_SUFFIX = ["?", " ?", ", possible", " - possible", ", not excluded", ", questionable", " cannot be excluded",
                " is possible", ": ?", " (?)", ", equivocal"]
HEDGE_CLAUSE = ["it is possible that", "cannot exclude that", "it is uncertain whether", "question whether"]


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    op = rng.random()
    if op < 0.3:  # swap
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if op < 0.55:  # delete
        return word[:i] + word[i + 1:]
    if op < 0.75:  # double
        return word[:i] + word[i] + word[i:]
    c = word[i].lower()
    return word[:i] + rng.choice(_NEAR.get(c, c) or c) + word[i + 1:]


def typos(text: str, rng: random.Random, rate: float = 0.08) -> str:
    return re.sub(r"[A-Za-z]{4,}", lambda m: _typo(m.group(0), rng) if rng.random() < rate else m.group(0), text)


def abbreviate(text: str, rng: random.Random, rate: float = 0.6) -> str:
    def sub(m: re.Match) -> str:
        if rng.random() > rate:
            return m.group(0)
        return rng.choice(AUG_ABBREVIATIONS[m.group(0).lower()])

    return re.sub(r"\s{2,}", " ", _ABBR_RX.sub(sub, text)).strip()


def telegraphic(sentence: str) -> str:
    out = _DROP_WORDS.sub("", sentence).strip()
    return out if re.search(r"[A-Za-z]{3}", out) else sentence


def _layout(sentences: list[str], rng: random.Random) -> str:
    style = rng.random()
    if style < 0.35:
        return " ".join(sentences)
    stripped = [s.rstrip(" .") for s in sentences]
    if style < 0.55:
        return "\n".join(stripped)
    if style < 0.7:
        return "\n".join("- " + s for s in stripped)
    if style < 0.8:
        return "\n".join(f"{i}. {s}" for i, s in enumerate(stripped, 1))
    if style < 0.9:
        return "; ".join(stripped)
    return ". ".join(stripped) + "."


def _sentence_mentions(rules, sentence: str) -> dict[str, set[str]]:  # noqa: ANN001
    """{finding: {statuses}} of the finding mentions of one sentence (other abnormalities under "other")."""
    out: dict[str, set[str]] = {}
    for m in rules.mentions(sentence):
        out.setdefault(m.label, set()).add(m.status)
    return out


def augment_report(text: str, states: np.ndarray, rng: random.Random, rules) -> tuple[str, np.ndarray]:  # noqa: ANN001
    """A variant of one report and its labels (see the module docstring). ``rules``: a RuleLabeler
    (uncertain_value=0.5, label_hernia=True)."""
    states = states.copy()
    sentences = [s for s in _SENT.split(text) if s.strip()]
    if not sentences:
        return text, states
    mentions = [_sentence_mentions(rules, s) for s in sentences]
    # where each finding is mentioned positively
    positive_in: dict[str, list[int]] = {}
    for i, ms in enumerate(mentions):
        for lab, st in ms.items():
            if "positive" in st:
                positive_in.setdefault(lab, []).append(i)
    # label-changing edit: hedge or negate one sentence whose only mentions are positive findings
    edit = rng.random()
    if edit < 0.3:
        cands = []
        for i, ms in enumerate(mentions):
            labs = [k for k in ms if k != "other"]
            if not labs or any(st != {"positive"} for st in ms.values()):
                continue
            if all(states[LABELS.index(k)] == PRESENT and positive_in.get(k) == [i] for k in labs):
                cands.append((i, labs))
        if cands:
            i, labs = rng.choice(cands)
            s = sentences[i].strip()
            remaining = [k for k in FINDINGS if states[LABELS.index(k)] == PRESENT and k not in labs]
            if edit < 0.2 or not remaining:
                body = s.rstrip(" .")
                if re.search(r"\b(is|are|was|were|has|have)\b", body):
                    s = rng.choice(HEDGE_CLAUSE) + " " + body[0].lower() + body[1:] + "."
                elif rng.random() < 0.6:
                    s = rng.choice(HEDGE_PREFIX).rstrip() + " " + body[0].lower() + body[1:] + "."
                else:
                    s = body + rng.choice(HEDGE_SUFFIX) + "."
                for k in labs:
                    states[LABELS.index(k)] = UNCERTAIN
            else:
                phrase = " or ".join(CANONICAL[k] for k in labs)
                s = rng.choice(["No ", "no ", "Negative for ", "No evidence of ", "Without "]) + phrase + "."
                if rng.random() < 0.3:
                    s = phrase + rng.choice([": none.", " - neg.", ": no.", " not seen.", " resolved."])
                for k in labs:
                    states[LABELS.index(k)] = ABSENT
            sentences[i] = s
    # label-keeping edits
    if rng.random() < 0.15 and len(sentences) > 2:
        quiet = [i for i, ms in enumerate(mentions) if not ms]
        if quiet:
            del sentences[rng.choice(quiet)]
    if rng.random() < 0.3:
        rng.shuffle(sentences)
    if rng.random() < 0.4:
        sentences = [telegraphic(s) for s in sentences]
    out = _layout(sentences, rng)
    if rng.random() < 0.6:
        out = abbreviate(out, rng, rate=rng.choice([0.3, 0.6, 0.9]))
    if rng.random() < 0.4:
        out = typos(out, rng, rate=rng.choice([0.03, 0.08, 0.15]))
    r = rng.random()
    if r < 0.15:
        out = out.lower()
    elif r < 0.2:
        out = out.upper()
    return out, states


# ------------------------------------------------------------------------------------------------------------------
# Synthetic notes
# ------------------------------------------------------------------------------------------------------------------

SIDES = ["L", "R", "left", "right", "b/l", "bilat", "bilateral", "lt", "rt"]
LOBES = ["RLL", "LLL", "RUL", "LUL", "RML", "lingula", "R base", "L base", "bibasilar", "L apex", "R apex",
         "right lower lobe", "left lower lobe", "right upper lobe", "left upper lobe", "perihilar", "retrocardiac",
         "L basilar", "R basilar", "upper lobes", "lower lobes", "both bases"]
SIZES = ["small", "sm", "tiny", "trace", "mild", "moderate", "mod", "large", "lg", "minimal", "extensive"]

#: finding -> (forms, where: "side" | "lobe" | "" , sized)
FORMS: dict[str, tuple[list[str], str, bool]] = {
    "Atelectasis": (["atelectasis", "atx", "atelectatic change", "subsegmental atelectasis", "plate-like atx",
                     "collapse", "discoid atelectasis", "atelect"], "lobe", True),
    "Cardiomegaly": (["cardiomegaly", "cardiomeg", "enlarged heart", "heart enlargement", "cardiac enlargement",
                      "enlarged cardiac size", "cardiomegaly"], "", True),
    "Effusion": (["effusion", "pleural effusion", "eff", "pl eff", "effusions", "effs", "pleural fluid",
                  "pl effusion"], "side", True),
    "Infiltration": (["infiltrate", "infiltrates", "infilt", "infiltration", "patchy infiltrate",
                      "interstitial infiltrate"], "lobe", False),
    "Mass": (["mass", "3 cm mass", "hilar mass", "spiculated mass", "5 cm mass", "soft tissue mass"], "lobe",
             False),
    "Nodule": (["nodule", "nod", "nodules", "6 mm nodule", "pulmonary nodule", "SPN", "1 cm nodule",
                "small nodule"], "lobe", False),
    "Pneumonia": (["pneumonia", "PNA", "pna", "bronchopneumonia", "aspiration pneumonia", "multifocal PNA",
                   "pneumonic process"], "lobe", False),
    "Pneumothorax": (["pneumothorax", "PTX", "ptx", "pneumo", "apical ptx", "apical pneumothorax", "PTx"], "side",
                     True),
    "Consolidation": (["consolidation", "consol", "airspace consolidation", "focal consolidation",
                       "dense consolidation"], "lobe", False),
    "Edema": (["edema", "pulmonary edema", "pulm edema", "interstitial edema", "alveolar edema", "IS edema"], "",
              True),
    "Emphysema": (["emphysema", "emphysematous changes", "centrilobular emphysema", "bullous emphysema",
                   "emphysematous lungs"], "", True),
    "Fibrosis": (["fibrosis", "fibrotic changes", "pulmonary fibrosis", "interstitial fibrosis", "fibrotic change"],
                 "lobe", True),
    "Pleural_Thickening": (["pleural thickening", "pl thickening", "apical pleural thickening", "apical capping",
                            "pleural thick"], "side", True),
    "Hernia": (["hiatal hernia", "HH", "hiatus hernia", "hiatal hern"], "", True),
}
OTHER = ["ETT in good position", "ETT 5 cm above carina", "NGT tip in stomach", "R IJ line tip in SVC", "L PICC",
         "sternotomy wires", "calcified granuloma", "degenerative changes of the spine", "scoliosis",
         "old rib fx", "surgical clips", "pacemaker in place", "aortic calcification", "tortuous aorta",
         "low lung volumes", "hyperinflation", "COPD", "vascular congestion", "opacity L base", "scarring R apex",
         "chest tube in place", "CHF", "granulomatous disease", "osteopenia", "AICD", "port in place",
         "hyperinflated lungs", "streaky opacity", "dextroscoliosis", "vasc congestion", "R chest tube"]
NORMAL_BITS = ["lungs clear", "heart nml", "heart size normal", "no acute process", "NAD", "mediastinum nml",
               "no acute cardiopulmonary abnormality", "unremarkable", "bones intact", "trachea midline",
               "heart nl size", "lungs are clear", "cardiomediastinal silhouette wnl", "no acute disease",
               "normal heart size", "clear lungs", "no acute findings"]
HEADERS = ["", "", "", "Findings:", "Impression:", "CXR:", "Portable AP:", "PA/lat:", "Prelim:", "IMP:", "Wet read:"]
PRESENT_TPL = ["{x}", "{x}", "{x}", "{s} {x}", "{w} {x}", "{s} {w} {x}", "{x} {w}", "likely {x}", "probable {x}",
               "c/w {x}", "{x} unchanged", "stable {x}", "new {x}", "persistent {x}", "{x} again seen",
               "{x}, improving", "findings c/w {x}", "{x} present", "{x}: yes", "{x}: {w}", "+ {x}",
               "{x} - {s}", "{x} is seen", "there is {s} {x}", "{x} noted", "consistent with {x}", "{x} increased",
               "{x} persists", "known {x}", "{x} ({w})"]
UNCERTAIN_TPL = ["possible {x}", "?{x}", "? {x}", "{x}?", "questionable {x}", "cannot exclude {x}",
                 "can't r/o {x}", "r/o {x}", "{x} not excluded", "concerning for {x}", "suspicious for {x}",
                 "may represent {x}", "could be {x}", "equivocal {x}", "{x}: ?", "{x} - possible",
                 "suggestive of {x}", "?early {x}", "possible {w} {x}", "{w} ?{x}", "cannot rule out {x}",
                 "{x} cannot be excluded", "might be {x}", "poss {x}", "question of {x}", "{x} vs artifact",
                 "subtle {x}?", "maybe {x}", "early {x} not excluded", "{x} is possible"]
NEGATED_TPL = ["no {x}", "No {x}", "w/o {x}", "without {x}", "neg for {x}", "negative for {x}", "{x}: none",
               "{x} - neg", "{x}: no", "no evidence of {x}", "no e/o {x}", "{x} resolved", "resolved {x}",
               "{x} not seen", "{x} no longer seen", "no definite {x}", "{x}: negative", "no {w} {x}",
               "{x} has resolved", "no sign of {x}", "{x} absent", "free of {x}", "clear of {x}", "{x} - none",
               "interval resolution of {x}", "{x} gone", "no residual {x}"]


def _phrase(finding: str, rng: random.Random) -> tuple[str, str, str]:
    """(form, size, where) of one finding."""
    forms, where, sized = FORMS[finding]
    x = rng.choice(forms)
    s = rng.choice(SIZES) if sized else rng.choice(["", "new", "old"])
    w = rng.choice(SIDES if where == "side" else LOBES) if where else rng.choice(["", "mild", "stable"])
    return x, s, w


def _fill(tpl: str, x: str, s: str, w: str) -> str:
    return " ".join(tpl.format(x=x, s=s, w=w).split())


def synthetic_note(rng: random.Random) -> tuple[str, np.ndarray]:
    """One synthetic note and its states (see the module docstring)."""
    states = np.zeros(len(LABELS), dtype=np.int64)
    k = rng.choices([0, 1, 2, 3, 4], weights=[2, 4, 3, 2, 1])[0]
    chosen = rng.sample(list(FINDINGS), k)
    items: list[str] = []
    negated: list[str] = []
    for f in chosen:
        r = rng.random()
        x, s, w = _phrase(f, rng)
        if r < 0.5:
            items.append(_fill(rng.choice(PRESENT_TPL), x, s, w))
            states[LABELS.index(f)] = PRESENT
        elif r < 0.75:
            items.append(_fill(rng.choice(UNCERTAIN_TPL), x, s, w))
            states[LABELS.index(f)] = UNCERTAIN
        else:
            negated.append(f)
    # a differential: both sides hedged
    free = [f for f in FINDINGS if states[LABELS.index(f)] == ABSENT and f not in negated]
    if rng.random() < 0.12 and len(free) >= 2:
        a, b = rng.sample(free, 2)
        xa, xb = _phrase(a, rng)[0], _phrase(b, rng)[0]
        items.append(rng.choice(["{a} vs {b}", "{a} or {b}", "? {a} vs {b}", "{a} versus {b}?",
                                 "{w} opacity, {a} vs {b}"]).format(a=xa, b=xb, w=rng.choice(LOBES)))
        states[LABELS.index(a)] = states[LABELS.index(b)] = UNCERTAIN
    # negations: one by one, or as a list
    extra_neg = rng.sample([f for f in FINDINGS if states[LABELS.index(f)] == ABSENT and f not in negated],
                           rng.choice([0, 0, 1, 2, 3]))
    negated += extra_neg
    if negated:
        if len(negated) > 1 and rng.random() < 0.5:
            xs = [_phrase(f, rng)[0] for f in negated]
            joined = ", ".join(xs[:-1]) + rng.choice([" or ", " nor ", ", or ", "/"]) + xs[-1]
            items.append(rng.choice(["no ", "No ", "neg for ", "without ", "no evidence of "]) + joined)
        else:
            for f in negated:
                x, s, w = _phrase(f, rng)
                items.append(_fill(rng.choice(NEGATED_TPL), x, s, w))
    other = rng.random() < 0.35
    if other:
        items += rng.sample(OTHER, rng.choice([1, 1, 2]))
    if not items or rng.random() < 0.4:
        items += rng.sample(NORMAL_BITS, rng.choice([1, 1, 2]))
    rng.shuffle(items)
    if any(states[:NORMAL] != ABSENT) or other:
        states[NORMAL] = ABSENT
    else:
        states[NORMAL] = PRESENT
    style = rng.random()
    if style < 0.3:
        body = ". ".join(items) + rng.choice([".", "", "."])
    elif style < 0.5:
        body = "\n".join(items)
    elif style < 0.65:
        body = "\n".join(rng.choice(["- ", "* ", "\u2022 "]) + i for i in items)
    elif style < 0.75:
        body = "\n".join(f"{n}. {i}" for n, i in enumerate(items, 1))
    elif style < 0.88:
        body = "; ".join(items)
    else:
        # commas: negations last, so that no "no ..." reads as negating the items after it
        neg = re.compile(r"^(no|neg|without|w/o|negative|free|clear|interval resolution)\b", re.IGNORECASE)
        body = ", ".join(sorted(items, key=lambda i: bool(neg.match(i))))
    header = rng.choice(HEADERS)
    text = (header + (" " if header and rng.random() < 0.5 else "\n" if header else "") + body).strip()
    text = text[0].upper() + text[1:] if rng.random() < 0.5 else text
    if rng.random() < 0.25:
        text = typos(text, rng, rate=0.06)
    r = rng.random()
    if r < 0.1:
        text = text.upper()
    elif r < 0.3:
        text = text.lower()
    return text, states
