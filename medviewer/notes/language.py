"""What the notes classifier refuses to read: empty notes and notes not written in English.

:func:`check_note` is a small offline gate (pure Python, no dependency, well under a millisecond per note):

* ``no_text``: the note is empty, whitespace only, or has no word at all (only digits / punctuation).
* ``language_not_supported``: the note is not English. Two signals, in this order:

  1. Script: when more than 30 % of the letters are outside the Latin script (Cyrillic, Greek, CJK, Arabic,
     Hebrew, Devanagari, ...), the note is not English.
  2. Latin-script languages: words are counted against short lists of function words and common chest-report
     words of English and of German, French, Spanish, Italian, Portuguese, Dutch, Polish, Swedish/Danish/Norwegian
     and Turkish (:data:`FOREIGN_WORDS`). A word that is in the English list counts for English only (so "no",
     "a", "in" never count against English); a word with a diacritic that is in no list counts half for "some
     other language". The note is refused when the foreign evidence is at least 1 and larger than the English
     evidence. Shared medical Latin ("pneumothorax", "atelectasis") and abbreviations ("PTX", "RLL") are neutral,
     so a telegraphic English note ("PTX. RLL atx.") is accepted, and "Kein Pneumothorax." is refused.

Only English is supported: the encoder (all-MiniLM-L6-v2) and the training reports are English, and a negation
word the classifier cannot read ("kein", "pas de", "sin") would turn a negated finding into a positive one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

__all__ = ["Gate", "check_note", "OK", "NO_TEXT", "LANGUAGE_NOT_SUPPORTED", "SUPPORTED_LANGUAGES"]

OK, NO_TEXT, LANGUAGE_NOT_SUPPORTED = "classified", "no_text", "language_not_supported"
SUPPORTED_LANGUAGES = ("en",)

_EN = set("""
a about above after again against all also am an and any are as at away be because been before being below
between both but by can could did do does doing down during each either few for from further had has have having
he her here hers him his how however i if in into is it its itself just may me might more most much must my
neither nor not now of off on once only or other our out over own per same she should since so some still such
than that the their them then there these they this those through to too under until up upon very via was we
were what when where whether which while who whom why will with within without would yet you your
seen noted identified visualized demonstrated present absent evidence suggest suggests suggestive likely
unlikely possible possibly probable probably cannot exclude excluded concern concerning consistent compatible
represent represents representing new old prior previous previously interval unchanged stable change changes
changed improved improving worsened worsening increased increasing decreased decreasing resolved resolving
since again persistent persists remains remain appears appear appearance compared comparison study exam
heart lung lungs chest left right upper lower middle mid lobe lobes base bases apex apices side sided
bilateral bilaterally both small large tiny mild mildly moderate moderately severe severely minimal trace
enlarged enlargement size normal clear clearly unremarkable acute chronic findings finding impression
pleural fluid effusion effusions thickening heart silhouette cardiac mediastinal mediastinum contour contours
opacity opacities opacification airspace air space disease process volume volumes loss collapse scarring
scar streaky patchy focal diffuse basilar bibasilar perihilar hilar central peripheral pulmonary vascular
congestion edema edematous lesion spine bony bones soft tissues tube line catheter tip status post
well within limits limit no none negative positive question rule out follow up recommend recommended
""".split())

#: Function words and common chest-report words of other languages written in the Latin script.
FOREIGN_WORDS: dict[str, set[str]] = {
    "de": set("""
kein keine keinen keiner nicht und oder mit ohne der die das den dem des ein eine einer eines ist sind war
wurde wird im am zum zur bei beidseits beidseitig links rechts linker rechter linke rechte erguss pleuraerguss
pleuraergüsse ergüsse lunge lungen herz herzens vergrößert vergrössert vergrößerung unauffällig befund
befunde regelrecht verdacht auf kardiomegalie infiltrat infiltrate verschattung verschattungen belüftet
dystelektase dystelektasen zeichen stauung lungenstauung pneumonie hinweis hinweise für aktuell vorbefund
""".split()),
    "fr": set("""
pas de du des le la les un une et ou avec sans est sont aucun aucune signe signes gauche droit droite
épanchement épanchements poumon poumons cœur coeur cardiomégalie pleural pleurale foyer foyers condensation
opacité opacités élargi normal normale normaux discret discrète minime suspicion probable pneumopathie au aux
ni lobe inférieur supérieur moyen bilatéral bilatérale visible visibles individualisé
""".split()),
    "es": set("""
sin con de del la el los las un una y o es son hay se observa observan no se aprecia aprecian izquierdo
izquierda derecho derecha derrame derrames pulmón pulmones pulmonar corazón cardiomegalia neumotórax neumotorax
neumonía neumonia consolidación atelectasia infiltrado infiltrados signos lóbulo inferior superior medio leve
moderado moderada bilateral engrosamiento pleural hallazgos hallazgo normal evidencia
""".split()),
    "it": set("""
non senza con di del della dei delle il lo la gli le un una e o è sono si versamento versamenti polmone
polmoni polmonare cuore cardiomegalia pneumotorace polmonite addensamento addensamenti atelettasia sinistro
sinistra destro destra lobo inferiore superiore medio lieve bilaterale ispessimento pleurico segni reperti
""".split()),
    "pt": set("""
não sem com de do da dos das o os a as um uma e ou é são há se observa derrame derrames pulmão pulmões
pulmonar coração cardiomegalia pneumotórax pneumonia consolidação atelectasia esquerdo esquerda direito direita
lobo inferior superior médio leve bilateral espessamento pleural sinais achados
""".split()),
    "nl": set("""
geen niet zonder met van de het een en of is zijn er links rechts linker rechter vocht pleuravocht long
longen hart vergroot vergroting cardiomegalie pneumothorax infiltraat consolidatie atelectase beiderzijds
afwijkingen bevindingen normaal bij
""".split()),
    "pl": set("""
brak bez z w i oraz lub jest są nie płyn płynu opłucnej opłucna płuco płuca płucach serce serca
powiększone powiększenie odma odmy zapalenie niedodma zmiany zmian lewej prawej lewa prawa obustronnie
""".split()),
    "sv": set("""
ingen inga inte utan med och eller är av på vänster höger vänster höger vätska pleuravätska lunga lungor
hjärta hjärtat förstorat ikke uden og eller er af venstre højre væske lunge lunger hjerte forstørret uten
""".split()),
    "tr": set("""
yok ve ile veya bir sol sağ akciğer akciğerler kalp efüzyon plevral pnömotoraks pnömoni büyümüş normal
izlenmedi izlenmektedir saptanmadı bulgu bulgular
""".split()),
}
#: Words that count for no language: medical Latin and terms spelt alike in English and the languages above, and
#: short words that are common English abbreviations (w/ = with, y/o = years old, IM, AF, est.).
_NEUTRAL = set("""
no a in is an de la
pneumothorax pneumonia normal bilateral pleural lobe inferior superior posterior anterior lateral medial segment
infiltrate infiltrates hilar cardiomegalie medio son est os im af av met long med links den er van
""".split())
_EN_FINDINGS = set("""
atelectasis atelectatic cardiomegaly effusion effusions infiltration infiltrates mass masses nodule nodules
consolidation edema emphysema emphysematous fibrosis fibrotic thickening hernia hiatal opacity opacities
""".split())
_EN |= _EN_FINDINGS
_EN -= _NEUTRAL
for _words in FOREIGN_WORDS.values():
    _words -= _EN | _NEUTRAL
    for _w in [w for w in _words if len(w) < 2]:
        _words.discard(_w)

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)
_LATIN_MAX = 0x024F  # end of Latin Extended-B


@dataclass(frozen=True)
class Gate:
    """Whether a note is classified: ``status`` (``"classified"``, ``"no_text"`` or ``"language_not_supported"``),
    ``reason`` in words (empty when classified) and ``language`` (ISO 639-1 guess, ``"en"`` when classified, a
    script name such as ``"cyrillic"`` for a non-Latin script, ``""`` for no text or an unknown language)."""

    status: str
    reason: str = ""
    language: str = "en"

    @property
    def ok(self) -> bool:
        return self.status == OK


def _script(ch: str) -> str:
    try:
        return unicodedata.name(ch).split()[0].lower()
    except ValueError:
        return "unknown"


def check_note(text: str | None) -> Gate:
    """The gate of one note (see the module docstring)."""
    if text is None or not text.strip():
        return Gate(NO_TEXT, "the note is empty", "")
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return Gate(NO_TEXT, "the note has no words", "")
    non_latin = [ch for ch in letters if ord(ch) > _LATIN_MAX]
    if len(non_latin) > 0.3 * len(letters):
        scripts: dict[str, int] = {}
        for ch in non_latin:
            s = _script(ch)
            scripts[s] = scripts.get(s, 0) + 1
        script = max(scripts, key=lambda k: scripts[k])
        return Gate(LANGUAGE_NOT_SUPPORTED, f"language not supported ({script} script); only English notes are "
                    "classified", script)
    english = 0.0
    foreign: dict[str, float] = {}
    other = 0.0
    for word in _WORD.findall(text.lower()):
        word = word.replace("’", "'")
        if word in _EN:
            english += 1
            continue
        if word in _NEUTRAL:
            continue
        base = word.split("'")[-1]
        hits = [lang for lang, words in FOREIGN_WORDS.items() if word in words or base in words]
        if not hits and "'" in word and word.split("'")[0] in ("d", "l", "qu", "n", "s", "j", "c", "dell", "un"):
            hits = ["fr"]  # French / Italian elision: d'épanchement, l'aorta
        if hits:
            for lang in hits:
                foreign[lang] = foreign.get(lang, 0.0) + 1.0 / len(hits)
            other += 1
        elif any(ord(ch) > 127 for ch in word):
            other += 0.5
    if other >= 1 and other > english:
        lang = max(foreign, key=lambda k: foreign[k]) if foreign else ""
        name = f" (looks like {lang})" if lang else ""
        return Gate(LANGUAGE_NOT_SUPPORTED, f"language not supported{name}; only English notes are classified",
                    lang)
    return Gate(OK)
