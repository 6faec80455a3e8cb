"""De-identification of report content by the DICOM PS3.15 Annex E Basic Application Level Confidentiality
Profile.

Source: DICOM PS3.15 (Security and System Management Profiles), Annex E "Attribute Confidentiality Profiles",
Table E.1-1 "Application Level Confidentiality Profile Attributes", column "Basic Prof.". Action codes (E.1.1):

* ``D`` replace with a non-zero length dummy value consistent with the VR;
* ``Z`` replace with a zero length value (or a dummy value consistent with the VR);
* ``X`` remove;
* ``K`` keep; ``C`` clean (replace with values of similar meaning known not to identify);
* ``U`` replace with a non-zero length UID that is internally consistent within the set of instances;
* combined codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``...) let an application pick; for a report (not an IOD that
  must stay valid) the first, most conservative one is applied.

What this module does to a report (:func:`deidentify_report`):

1. the header attributes are treated by :data:`BASIC_PROFILE`; attributes the table does not list are kept only
   when they are in :data:`SAFE_KEEP` (Modality, Manufacturer...), every other one is removed;
2. every UID (Study, Series, SOP Instance...) is replaced by a deterministic new UID
   (``pydicom.uid.generate_uid(entropy_srcs=[salt, uid])``) everywhere in the report, so the same original UID
   always maps to the same new one (action U);
3. free text (the note, annotation texts, the radiologist's comments, warnings, error messages) is cleaned of the
   identifying tokens of :func:`identifying_tokens`, each replaced by ``XXXX``:

   * person names: the patient's (PatientName, OtherPatientNames, PatientBirthName, PatientMotherBirthName), the
     readers' (the sign-off and the radiologist scores) and the other people of the header
     (ReferringPhysicianName, PerformingPhysicianName, NameOfPhysiciansReadingStudy, OperatorsName...), split into
     parts on ``^ = , . ;`` and spaces (hyphenated parts also in pieces); titles such as Dr, Mr, Prof, MD are not
     tokens (in free-form names such as a reader's "Dr. Sancho Panza", and in the prefix and suffix components of
     DICOM names), so "Called Dr Watson" becomes "Called Dr XXXX". Parts of 3 characters or more are removed
     wherever they occur, also inside words ("JürgenMüller", "Müllers", "ミュラーさん"); shorter parts ("Ge", "Li")
     only as whole words (a part glued to a removed one counts as a whole word: "WeiBo" goes entirely). This
     over-redacts ordinary words that contain a name ("Wei" in "weighted"), on purpose. Parts of 2 characters
     written in scripts without spaces between words (Han, kana, Hangul) are removed inside words too. The full
     name ("Family Given", "Given Family", "Family, Given", joined without space, as written) is removed
     everywhere;
   * places: the header's InstitutionName, InstitutionAddress, InstitutionalDepartmentName, StationName... as a
     whole, and their distinctive words (3 characters or more, not generic words such as "Hospital", "Medical",
     "University") as whole words;
   * IDs: PatientID, OtherPatientIDs, AccessionNumber, StudyID as whole words, and PatientID / OtherPatientIDs
     also inside words when they are distinctive (6 digits or more, or 4 characters or more with a non-digit);
     the birth date (``YYYYMMDD``, ``YYYY-MM-DD``, ``DD/MM/YYYY``, ``MM/DD/YYYY``, ``DD.MM.YYYY``) as whole words.

     **Short numbers are not tokens.** A purely numeric StudyID, AccessionNumber or PatientID (or other ID) of
     fewer than 6 digits is removed from the header (Z) but not looked for in free text: a StudyID "10" would
     otherwise turn "Nodule 10 mm" into "Nodule XXXX mm" and change the clinical content. The trade-off: such a
     short number written in the note (e.g. "study 10") stays in the report; on its own, without the name, date
     or the other identifiers (all removed), it does not single out a patient;

   Matching is Unicode-aware: text and tokens are normalised (NFC, then compatibility forms, NFKC, per character)
   and compared case-insensitively by :meth:`str.casefold` ("MÜLLER", or "Müller" written decomposed (NFD), for
   "Müller"; "GROSS" for "Groß"); invisible characters (zero-width space and joiners, soft hyphen) are removed
   first. Values that are not free text are not searched for name parts and words: the report's own vocabulary
   (model names, labels, statuses, image labels, fixed texts: :data:`_STRUCTURAL_KEYS`) and the header values kept on
   purpose (:data:`SAFE_KEEP`: Modality, Manufacturer, ManufacturerModelName, BodyPartExamined; so patient
   "Ge^Wei" keeps Manufacturer "GE MEDICAL SYSTEMS"); there only the full names and distinctive IDs are removed;
   The identifiers come from every instance of the case, not the first image only: each attribute above holds
   the distinct values of all instances, and ``PersonNamesElsewhere`` every other person name (VR PN) found
   anywhere in the headers, nested sequences and private elements included;
   * Safe-Harbor-style identifiers in free text (45 CFR 164.514(b)(2)): telephone numbers (7 digits or more in
     a phone-like layout) become ``XXXX``, ages over 89 become "90+", and dates written in the text
     (YYYY-MM-DD, DD/MM/YYYY, MM/DD/YYYY, DD.MM.YYYY, YYYYMMDD) are shifted like the header dates (item 5);
   * no file path or file name is written into report content (a key image that cannot be read says "the image
     file");
4. the readers' names (sign-off, radiologist scores) are emptied (the table's "Name of Physician(s) Reading
   Study" (0008,1060) and "Verifying Observer Name" (0040,A075));
5. the report's own times (case, note, AI, sign-off, generation) are shifted by a secret whole number of days per
   patient, keeping intervals (the "Retain Longitudinal Temporal Information with Modified Dates Option", E.3.6);
   the PDF's metadata dates are the shifted generation time (:mod:`medviewer.report.pdf`);
6. PatientIdentityRemoved (0012,0062) = YES and DeidentificationMethod (0012,0063) / the method code sequence
   (CID 7050: 113100 Basic Application Confidentiality Profile, 113107 Modified Dates, 113105 Clean Descriptors)
   are recorded in the report's ``deidentification`` section with a pseudonym of the patient.

Fail closed: after cleaning, :func:`residual_identifiers` looks for every token again with the same rules (and
for the full names, distinctive IDs and original UIDs in every value and key); anything found stops the export
(:class:`DeidentificationError`).

Pixels are not cleaned (the "Clean Pixel Data Option" is not offered): the key images are drawn without any
patient text, and images whose BurnedInAnnotation (0028,0301) is YES are flagged with a warning.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path

from medviewer.report.model import Report

__all__ = ["BASIC_PROFILE", "SAFE_KEEP", "DeidentificationError", "installation_salt", "new_uid", "pseudonym",
           "deidentify_report", "deidentify_header", "identifying_tokens", "scrub_text", "residual_identifiers",
           "safe_basename", "REDACTED", "Tokens", "PERSON_NAME_ATTRIBUTES", "PLACE_ATTRIBUTES", "ID_ATTRIBUTES"]

#: What replaces an identifying token in free text (the convention of the Open-i reports; neutral for the notes
#: classifier's rules).
REDACTED = "XXXX"

#: DICOM PS3.15 Table E.1-1, Basic Profile column: keyword -> (tag, action), for every attribute a medviewer report
#: can carry (the case header and the extras read from the image header) plus the usual patient/visit identifiers.
BASIC_PROFILE: dict[str, tuple[str, str]] = {
    # Patient
    "PatientName": ("(0010,0010)", "Z"),
    "PatientID": ("(0010,0020)", "Z"),
    "IssuerOfPatientID": ("(0010,0021)", "X"),
    "PatientBirthDate": ("(0010,0030)", "Z"),
    "PatientBirthTime": ("(0010,0032)", "X"),
    "PatientSex": ("(0010,0040)", "Z"),
    "OtherPatientIDs": ("(0010,1000)", "X"),
    "OtherPatientNames": ("(0010,1001)", "X"),
    "OtherPatientIDsSequence": ("(0010,1002)", "X"),
    "PatientBirthName": ("(0010,1005)", "X"),
    "PatientAge": ("(0010,1010)", "X"),
    "PatientSize": ("(0010,1020)", "X"),
    "PatientWeight": ("(0010,1030)", "X"),
    "PatientAddress": ("(0010,1040)", "X"),
    "PatientMotherBirthName": ("(0010,1060)", "X"),
    "MedicalRecordLocator": ("(0010,1090)", "X"),
    "PatientTelephoneNumbers": ("(0010,2154)", "X"),
    "EthnicGroup": ("(0010,2160)", "X"),
    "Occupation": ("(0010,2180)", "X"),
    "AdditionalPatientHistory": ("(0010,21B0)", "X"),
    "PatientComments": ("(0010,4000)", "X"),
    # Study / visit
    "StudyDate": ("(0008,0020)", "Z"),
    "StudyTime": ("(0008,0030)", "Z"),
    "SeriesDate": ("(0008,0021)", "X/D"),
    "SeriesTime": ("(0008,0031)", "X/D"),
    "AcquisitionDate": ("(0008,0022)", "X/Z"),
    "AcquisitionTime": ("(0008,0032)", "X/Z"),
    "ContentDate": ("(0008,0023)", "Z/D"),
    "ContentTime": ("(0008,0033)", "Z/D"),
    "InstanceCreationDate": ("(0008,0012)", "X/D"),
    "InstanceCreationTime": ("(0008,0013)", "X/Z/D"),
    "TimezoneOffsetFromUTC": ("(0008,0201)", "X"),
    "AccessionNumber": ("(0008,0050)", "Z"),
    "StudyID": ("(0020,0010)", "Z"),
    "StudyDescription": ("(0008,1030)", "X"),
    "SeriesDescription": ("(0008,103E)", "X"),
    "ProtocolName": ("(0018,1030)", "X/D"),
    "RequestedProcedureDescription": ("(0032,1060)", "X/Z"),
    "PerformedProcedureStepDescription": ("(0040,0254)", "X"),
    "AdmittingDiagnosesDescription": ("(0008,1080)", "X"),
    "StudyComments": ("(0032,4000)", "X"),
    "ImageComments": ("(0020,4000)", "X"),
    # People and places
    "InstitutionName": ("(0008,0080)", "X/Z/D"),
    "InstitutionAddress": ("(0008,0081)", "X"),
    "InstitutionalDepartmentName": ("(0008,1040)", "X"),
    "ReferringPhysicianName": ("(0008,0090)", "Z"),
    "ReferringPhysicianAddress": ("(0008,0092)", "X"),
    "ReferringPhysicianTelephoneNumbers": ("(0008,0094)", "X"),
    "PhysiciansOfRecord": ("(0008,1048)", "X"),
    "PerformingPhysicianName": ("(0008,1050)", "X"),
    "NameOfPhysiciansReadingStudy": ("(0008,1060)", "X"),
    "OperatorsName": ("(0008,1070)", "X/Z/D"),
    "RequestingPhysician": ("(0032,1032)", "X"),
    "VerifyingObserverName": ("(0040,A075)", "D"),
    "StationName": ("(0008,1010)", "X/Z/D"),
    "DeviceSerialNumber": ("(0018,1000)", "X/Z/D"),
    # UIDs
    "StudyInstanceUID": ("(0020,000D)", "U"),
    "SeriesInstanceUID": ("(0020,000E)", "U"),
    "SOPInstanceUID": ("(0008,0018)", "U"),
    "MediaStorageSOPInstanceUID": ("(0002,0003)", "U"),
    "FrameOfReferenceUID": ("(0020,0052)", "U"),
    "ReferencedSOPInstanceUID": ("(0008,1155)", "U"),
}

#: Header attributes absent from Table E.1-1 (so kept by the Basic Profile) that a report may show.
SAFE_KEEP = frozenset({"ModalitiesInStudy", "Modality", "Manufacturer", "ManufacturerModelName", "BodyPartExamined"})

#: Attributes the Clean Descriptors Option (PS3.15 E.3.5) keeps after cleaning (action C instead of X).
CLEAN_DESCRIPTORS = frozenset({"StudyDescription", "SeriesDescription"})

PROFILE_NAME = ("DICOM PS3.15 Annex E Basic Application Level Confidentiality Profile (Table E.1-1, "
                "Basic Profile column)")
_METHOD_BASIC = {"CodeValue": "113100", "CodingSchemeDesignator": "DCM",
                 "CodeMeaning": "Basic Application Confidentiality Profile"}
_METHOD_MODIFIED_DATES = {"CodeValue": "113107", "CodingSchemeDesignator": "DCM",
                          "CodeMeaning": "Retain Longitudinal Temporal Information Modified Dates Option"}
_METHOD_CLEAN_DESCRIPTORS = {"CodeValue": "113105", "CodingSchemeDesignator": "DCM",
                             "CodeMeaning": "Clean Descriptors Option"}

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})Z$")
_UID_RE = re.compile(r"^[0-9]+(\.[0-9]+)+$")
#: Keys of report fields whose values come from medviewer's own vocabulary (model names, labels, measurement
#: labels, statuses...), not from people: UIDs and full names/IDs are still replaced there, name parts are not.
_STRUCTURAL_KEYS = frozenset({
    "schema", "model", "version", "model_version", "weights_sha256", "positive_label", "heatmap_method",
    "heatmap_label", "label", "labels", "kind", "status", "call", "reason", "decision", "units", "function",
    "photometric_interpretation", "modality", "name", "task", "threshold_rule", "training_data", "intended_use",
    "not_for_diagnostic_use", "disclaimer", "summary", "warning", "measurement_source", "positives", "image",
    "pseudonym", "burned_in_annotation", "note", "state", "uncertain",
})
#: Keys of report fields that name a person (emptied).
_PERSON_KEYS = frozenset({"reader"})


class DeidentificationError(RuntimeError):
    """De-identification could not remove every identifier (the report is not written)."""


def installation_salt() -> str:
    """The installation's secret for pseudonyms, new UIDs and date shifts: 64 hex characters kept in
    ``<data dir>/deid-secret`` (created on first use, readable by the user only). Keeping it secret is what makes
    the pseudonyms impossible to recompute from a known patient ID; deleting it changes every pseudonym.

    Raises OSError when the data dir cannot be written.
    """
    from medviewer.config import data_dir

    path = Path(data_dir()) / "deid-secret"
    try:
        value = path.read_text(encoding="ascii").strip()
        if len(value) >= 32:
            return value
    except (OSError, UnicodeDecodeError):
        pass
    value = secrets.token_hex(32)
    tmp = path.with_name(f".deid-secret.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fp:
        fp.write(value + "\n")
    try:
        os.link(tmp, path)  # atomic "create if absent": a concurrent first use keeps the first secret
    except FileExistsError:
        pass
    except OSError:
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.read_text(encoding="ascii").strip()


def new_uid(uid: str, salt: str) -> str:
    """Deterministic replacement UID (PS3.15 action U): ``generate_uid(entropy_srcs=[salt, uid])`` under pydicom's
    UID root, at most 64 characters. Same ``uid`` and ``salt`` -> same result."""
    from pydicom.uid import generate_uid

    return str(generate_uid(entropy_srcs=[salt, uid]))


def _keyed(salt: str, text: str) -> str:
    return hmac.new(salt.encode("utf-8"), text.encode("utf-8"), hashlib.sha256).hexdigest()


def pseudonym(patient_id: str, patient_name: str, salt: str, study_instance_uid: str = "") -> str:
    """The patient's pseudonym ``ANON-XXXXXXXXXX`` (keyed SHA-256 of ID and name; see
    :func:`medviewer.report.content.case_pseudonym`)."""
    from medviewer.report.content import case_pseudonym

    return case_pseudonym(patient_id, patient_name, study_instance_uid, salt)


def _date_shift_days(salt: str, patient_key: str) -> int:
    """A secret shift of 365..3649 days into the past, the same for every report of one patient."""
    return 365 + int(_keyed(salt, f"date-shift|{patient_key}")[:8], 16) % 3285


# ------------------------------------------------------------------------------------------------------------------
# Identifying tokens in free text
# ------------------------------------------------------------------------------------------------------------------


#: Titles and degrees written with names: not tokens (a reader "Dr. Watson" must not turn every "Dr" into XXXX).
_HONORIFICS = frozenset({
    "dr", "drs", "mr", "mrs", "ms", "mx", "miss", "mme", "mlle", "prof", "professor", "sir", "dame", "herr", "frau",
    "md", "phd", "mbbs", "frcr", "frcp", "facr", "dds", "rn", "rt", "jr", "sr", "ii", "iii", "iv",
})
#: Header attributes holding person names (DICOM PN: ``Family^Given^Middle^Prefix^Suffix``, ``=`` between the
#: alphabetic, ideographic and phonetic forms, ``\`` between values).
PERSON_NAME_ATTRIBUTES = (
    "PatientName", "OtherPatientNames", "PatientBirthName", "PatientMotherBirthName", "ReferringPhysicianName",
    "PerformingPhysicianName", "NameOfPhysiciansReadingStudy", "OperatorsName", "PhysiciansOfRecord",
    "RequestingPhysician", "VerifyingObserverName",
    "PersonNamesElsewhere",  # not a DICOM attribute: every other PN value of every instance (sequences, private)
)
#: Header attributes naming places and devices.
PLACE_ATTRIBUTES = ("InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
                    "PatientAddress", "ReferringPhysicianAddress",
                    "AddressesElsewhere")  # not a DICOM attribute: other addresses/phones of every instance
#: Header attributes holding IDs (PatientID and OtherPatientIDs also as substrings when distinctive).
ID_ATTRIBUTES = ("PatientID", "OtherPatientIDs", "AccessionNumber", "StudyID", "MedicalRecordLocator",
                 "DeviceSerialNumber", "PatientTelephoneNumbers", "ReferringPhysicianTelephoneNumbers")
#: Generic words of institution names and addresses: not tokens on their own (the whole name still is).
_PLACE_STOPWORDS = frozenset({
    "the", "and", "for", "von", "der", "die", "das", "und", "des", "del", "los", "las", "san", "santa", "saint",
    "hospital", "hospitals", "hopital", "hôpital", "krankenhaus", "klinik", "klinikum", "clinic", "clinics",
    "clinical", "clinique", "center", "centre", "centro", "medical", "medicine", "medizin", "university",
    "universität", "universitat", "universite", "université", "universitario", "univ", "institute", "institut",
    "department", "dept", "radiology", "radiologie", "imaging", "diagnostic", "diagnostics", "health", "healthcare",
    "general", "regional", "national", "memorial", "community", "children", "childrens", "county", "city",
    "royal", "foundation", "trust", "nhs", "inc", "ltd", "llc", "gmbh", "corp", "street", "road", "avenue",
    "ave", "str", "suite", "floor", "building", "unit", "room", "station", "console", "main", "north", "south",
    "east", "west", "ward", "wing", "campus", "site", "group", "practice", "services", "service",
})
#: Scripts written without spaces between words: name parts of 2 characters are looked for inside words too.
_NO_SPACE_SCRIPTS = ((0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF), (0xF900, 0xFAFF),
                     (0x20000, 0x2FA1F))


def _fold(text: str) -> tuple[str, list[int]]:
    """``text`` (NFC) folded for matching, per character: NFKC then :meth:`str.casefold`; with, for each folded
    character, the index of the character of ``text`` it comes from."""
    import unicodedata

    out: list[str] = []
    idx: list[int] = []
    for i, ch in enumerate(text):
        f = unicodedata.normalize("NFKC", ch).casefold() if not ch.isascii() else ch.lower()
        out.append(f)
        idx.extend([i] * len(f))
    return "".join(out), idx


#: Invisible characters that split a name for a matcher but not for a reader (zero-width space/joiners, word
#: joiner, byte order mark, soft hyphen): removed from free text before matching.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad\u180e"), None)


def _nfc(text: str) -> str:
    """NFC normalised, invisible characters removed."""
    import unicodedata

    return unicodedata.normalize("NFC", text).translate(_INVISIBLE)


# Safe-Harbor-style identifiers in free text (45 CFR 164.514(b)(2): telephone numbers; ages over 89; dates).
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,5}\)[\s.-]?|\d{2,5}[\s.-])"
                    r"\d{2,4}[\s.-]?\d{3,5}(?![\w.])")
_AGE_OVER_89 = re.compile(r"(?i)\b(9\d|1[0-4]\d)(\s*-?\s*)(years?|yrs?|y\.?\s?o\.?|year-old|years-old|jahre?)\b")
_AGED_OVER_89 = re.compile(r"(?i)\b(aged?|age:)\s*(9\d|1[0-4]\d)\b")
_DATES = (
    (re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)"), "%Y-%m-%d", (1, 2, 3)),
    (re.compile(r"(?<![\d/.])(\d{1,2})([/.])(\d{1,2})\2(\d{4})(?![\d/.])"), None, None),
    (re.compile(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?!\d)"), "%Y%m%d", (1, 2, 3)),
)


def clean_free_text_identifiers(text: str, shift: timedelta) -> str:
    """Telephone numbers replaced by :data:`REDACTED`, ages over 89 written as "90+", and dates (YYYY-MM-DD,
    DD/MM/YYYY or MM/DD/YYYY, DD.MM.YYYY, YYYYMMDD) moved back by ``shift`` like the header dates (PS3.15 E.3.6
    Retain Longitudinal Temporal Information with Modified Dates)."""
    if not text:
        return text
    text = _PHONE.sub(lambda m: REDACTED if sum(c.isdigit() for c in m.group(0)) >= 7 else m.group(0), text)
    text = _AGE_OVER_89.sub(lambda m: f"90+{m.group(2)}{m.group(3)}", text)
    text = _AGED_OVER_89.sub(lambda m: f"{m.group(1)} 90+", text)

    def shifted(y: int, mo: int, d: int) -> str | None:
        try:
            return (datetime(y, mo, d) - shift).strftime("%Y-%m-%d")
        except ValueError:
            return None

    def iso(m: re.Match) -> str:
        out = shifted(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return out if out else m.group(0)

    def slashed(m: re.Match) -> str:
        a, sep, b, y = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        day, month = (a, b) if a > 12 or sep == "." else (b, a) if b > 12 else (a, b)
        out = shifted(y, month, day)
        if not out:
            return REDACTED
        y2, m2, d2 = out.split("-")
        return f"{d2}{sep}{m2}{sep}{y2}" if (day, month) == (a, b) else f"{m2}{sep}{d2}{sep}{y2}"

    def compact(m: re.Match) -> str:
        out = shifted(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        return out.replace("-", "") if out else m.group(0)

    text = _DATES[0][0].sub(iso, text)
    text = _DATES[1][0].sub(slashed, text)
    return _DATES[2][0].sub(compact, text)


@functools.lru_cache(maxsize=4096)
def _fold_token(tok: str) -> str:
    return _fold(_nfc(tok))[0]


def _usable(tok: str) -> bool:
    """A token worth looking for: 2 characters or more once folded, not only ``x`` (the redaction mark)."""
    f = _fold_token(tok).strip()
    return len(f) >= 2 and set(f) != {"x"}


def _short_number(tok: str) -> bool:
    """A purely numeric token of fewer than 6 digits (not looked for in free text: see the module docstring)."""
    return tok.isdigit() and len(tok) < 6


def _no_space_script(tok: str) -> bool:
    return bool(tok) and all(any(a <= ord(c) <= b for a, b in _NO_SPACE_SCRIPTS) for c in tok)


def _split_values(value) -> list[str]:  # noqa: ANN001
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v]
    return [v for v in str(value).split("\\") if v.strip()]


_TRANSLIT = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue", "ß": "ss",
                           "æ": "ae", "Æ": "Ae", "ø": "oe", "Ø": "Oe", "å": "aa", "Å": "Aa"})


def _ascii_variants(part: str) -> set[str]:
    """The usual Latin transliterations of a name part with diacritics: German/Scandinavian digraphs
    ("Müller" -> "Mueller") and the letters without their marks ("Müller" -> "Muller", "José" -> "Jose")."""
    import unicodedata

    if part.isascii():
        return set()
    stripped = "".join(c for c in unicodedata.normalize("NFKD", part) if not unicodedata.combining(c))
    return {v for v in (part.translate(_TRANSLIT), stripped) if v and v != part}


def _name_tokens(name: str, words: set[str], glued: set[str], strong: set[str]) -> None:
    """Add the tokens of one person name (DICOM PN or free form such as "Dr. Sancho Panza")."""
    name = _nfc(name.strip())
    if not name:
        return
    def split(text: str) -> list[str]:
        return [p for p in re.split(r"[\^=,;.\s]+", text) if p]

    for group in name.split("="):
        comps = [c.strip() for c in group.split("^")]
        if len(comps) > 1:  # DICOM PN: titles only in the prefix and suffix components
            parts = [p for c in comps[:3] for p in split(c)]
            parts += [p for c in comps[3:5] for p in split(c) if _fold_token(p) not in _HONORIFICS]
        else:  # free form ("Dr. Sancho Panza"): titles anywhere
            parts = [p for p in split(group) if _fold_token(p) not in _HONORIFICS]
        pieces = set(parts)
        for p in parts:
            if "-" in p or "'" in p or "\u2019" in p:
                pieces.update(x for x in re.split(r"[-'\u2019]+", p) if x)
        for p in set(pieces):
            pieces.update(_ascii_variants(p))  # "Müller" is also written "Mueller" and "Muller"
        for p in pieces:
            if _short_number(p) or not _usable(p):
                continue
            words.add(p)
            if len(p) >= 3 or _no_space_script(p):
                glued.add(p)
        if len(parts) >= 2:
            family = comps[0] if len(comps) >= 2 and comps[0] else parts[0]
            given = comps[1] if len(comps) >= 2 and comps[1] else parts[1]
            strong.update({group.strip(), " ".join(parts), " ".join(reversed(parts)), ", ".join(parts),
                           f"{family} {given}", f"{given} {family}", f"{family}, {given}", f"{family}{given}",
                           f"{given}{family}"})
    if "=" in name or "^" in name:
        strong.add(name)


def _place_tokens(value: str, words: set[str], glued: set[str]) -> None:
    value = _nfc(value.strip())
    if len(value) >= 3 and not _short_number(value):
        glued.add(value)
    for w in re.split(r"[\s,;:./()\[\]\"'^&+-]+", value):
        if len(w) >= 3 and not _short_number(w) and _fold_token(w) not in _PLACE_STOPWORDS and \
                _fold_token(w) not in _HONORIFICS:
            words.add(w)


def _id_tokens(value: str, words: set[str], strong: set[str], anywhere: bool) -> None:
    value = _nfc(value.strip())
    if len(value) < 2 or _short_number(value):
        return
    words.add(value)
    if anywhere and ((value.isdigit() and len(value) >= 6) or (not value.isdigit() and len(value) >= 4)):
        strong.add(value)


class Tokens(tuple):
    """The identifying tokens of a report: ``(words, subs)`` (see :func:`identifying_tokens`), with ``strong``,
    the substring tokens looked for in every value (full names, distinctive IDs), a subset of ``subs``."""

    strong: list[str]

    def __new__(cls, words: list[str], subs: list[str], strong: list[str]) -> Tokens:
        self = super().__new__(cls, (words, subs))
        self.strong = strong
        return self

    @property
    def words(self) -> list[str]:
        return self[0]

    @property
    def subs(self) -> list[str]:
        return self[1]


def identifying_tokens(header: dict, readers=()) -> Tokens:  # noqa: ANN001 - iterable of str
    """(word tokens, substring tokens) to remove from free text, from the identified header and the readers'
    names (see the module docstring, item 3, for the rules).

    Word tokens are removed as whole words (not inside a longer word or number, a removed token counting as a
    word boundary): every name part, the IDs, AccessionNumber, StudyID, the birth date forms, the distinctive
    words of place names. Substring tokens are removed wherever they occur: name parts of 3 characters or more
    (2 in Han, kana and Hangul), the full names, whole place names, the distinctive patient IDs. The result also
    has ``.strong``: the substring tokens also looked for outside free text (full names, distinctive IDs).
    Purely numeric IDs of fewer than 6 digits are not tokens.
    """
    words: set[str] = set()
    glued: set[str] = set()
    strong: set[str] = set()
    for kw in PERSON_NAME_ATTRIBUTES:
        for name in _split_values(header.get(kw)):
            _name_tokens(name, words, glued, strong)
    for name in readers:
        if name and str(name).strip():
            _name_tokens(str(name), words, glued, strong)
    for kw in PLACE_ATTRIBUTES:
        for value in _split_values(header.get(kw)):
            _place_tokens(value, words, glued)
    for kw in ID_ATTRIBUTES:
        for value in _split_values(header.get(kw)):
            _id_tokens(value, words, strong, anywhere=kw in ("PatientID", "OtherPatientIDs"))
    bd = str(header.get("PatientBirthDate") or "").strip()
    if re.fullmatch(r"\d{8}", bd):
        words.update({bd, f"{bd[:4]}-{bd[4:6]}-{bd[6:]}", f"{bd[6:]}/{bd[4:6]}/{bd[:4]}",
                      f"{bd[4:6]}/{bd[6:]}/{bd[:4]}", f"{bd[6:]}.{bd[4:6]}.{bd[:4]}"})
    strong = {s.strip() for s in strong if _usable(s) and not _short_number(s.strip())}
    words = {w for w in words if _usable(w)}
    subs = {s for s in glued if _usable(s)} | strong
    order = (lambda t: (-len(t), t))  # noqa: E731
    return Tokens(sorted(words, key=order), sorted(subs, key=order), sorted(strong, key=order))


def _matches(text: str, words, subs) -> tuple[list[tuple[int, int]], set[str]]:  # noqa: ANN001
    """(spans of ``text`` to redact, merged and sorted; the tokens found). ``text`` must be NFC.

    Substring tokens match anywhere; word tokens where the folded characters on both sides are not letters or
    digits, or are part of a match or of an existing ``XXXX`` (repeated until nothing new matches)."""
    if not text:
        return [], set()
    folded, idx = _fold(text)
    n = len(folded)
    hit = bytearray(n)
    pre = bytearray(n)
    found: set[str] = set()
    mark = REDACTED.casefold()
    k = folded.find(mark)
    while k >= 0:
        pre[k:k + len(mark)] = b"\x01" * len(mark)
        k = folded.find(mark, k + 1)

    def occurrences(tok: str):  # noqa: ANN202
        j = folded.find(tok)
        while j >= 0:
            yield j
            j = folded.find(tok, j + 1)

    for orig in subs:
        ft = _fold_token(orig)
        for j in occurrences(ft):
            hit[j:j + len(ft)] = b"\x01" * len(ft)
            found.add(orig)
    folded_words = [(orig, _fold_token(orig)) for orig in words]

    def boundary(p: int) -> bool:
        return p < 0 or p >= n or bool(hit[p]) or bool(pre[p]) or not folded[p].isalnum()

    changed = True
    while changed:
        changed = False
        for orig, ft in folded_words:
            for j in occurrences(ft):
                e = j + len(ft)
                if boundary(j - 1) and boundary(e) and not all(hit[j:e]):
                    hit[j:e] = b"\x01" * len(ft)
                    found.add(orig)
                    changed = True
    spans: list[tuple[int, int]] = []
    p = 0
    while p < n:
        if hit[p]:
            q = p
            while q < n and hit[q]:
                q += 1
            s, e = idx[p], idx[q - 1] + 1
            if spans and s <= spans[-1][1]:
                spans[-1] = (spans[-1][0], max(e, spans[-1][1]))
            else:
                spans.append((s, e))
            p = q
        else:
            p += 1
    return spans, found


def scrub_text(text: str, words: Sequence[str], subs: Sequence[str] = ()) -> str:
    """``text`` (normalised to NFC) with every word token (not inside a longer word or number) and every
    substring token (anywhere) replaced by :data:`REDACTED`, both case-insensitive (casefold) and Unicode
    normalised (see the module docstring); a run of adjacent tokens becomes one :data:`REDACTED`."""
    if not text:
        return text
    text = _nfc(text)
    spans, _ = _matches(text, words, subs)
    for s, e in reversed(spans):
        text = text[:s] + REDACTED + text[e:]
    return text


def _uid_key(key: str) -> bool:
    return key.lower().endswith("uid")


def residual_identifiers(content, identifiers: list[str], words: Sequence[str] = (),  # noqa: ANN001 - JSON-able
                         skip_word_keys: frozenset[str] = frozenset(), *, subs: Sequence[str] = (),
                         uids: Sequence[str] = ()) -> list[str]:
    """The identifiers still in ``content``, by the rules of :func:`scrub_text`:

    * each of ``identifiers`` (full names, distinctive IDs) as a substring of any string value or key, except
      the values of UID keys (``..._uid``, ``...UID``);
    * each of ``uids`` (original UIDs) as a substring of any string or key;
    * each of ``words`` as a whole word and each of ``subs`` as a substring of a string value whose key is not
      in ``skip_word_keys`` (the report's own vocabulary, header values kept on purpose) nor a UID key.

    Matching is case-insensitive (casefold) on NFC/NFKC-normalised text, like :func:`scrub_text`.
    """
    found: set[str] = set()
    strong = [i for i in identifiers if i and _usable(i)]
    uid_list = [u for u in uids if u]
    words = [w for w in words if w and _usable(w)]
    subs = [s for s in subs if s and _usable(s)]

    def check(s: str, toks_words, toks_subs) -> None:  # noqa: ANN001
        _, f = _matches(_nfc(s), toks_words, toks_subs)
        found.update(f)

    def walk(v, key: str = "", is_key: bool = False) -> None:  # noqa: ANN001
        if isinstance(v, dict):
            for k, x in v.items():
                walk(str(k), "", True)
                walk(x, str(k))
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, key)
        elif isinstance(v, str):
            for u in uid_list:
                if u in v:
                    found.add(u)
            if is_key:
                check(v, (), strong)
            elif _uid_key(key):
                return
            elif key in skip_word_keys:
                check(v, (), strong)
            else:
                check(v, words, list(subs) + strong)

    walk(content)
    return sorted(found)


# ------------------------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------------------------


def deidentify_header(header: dict, salt: str, clean_descriptors: bool = False,
                      words: Sequence[str] = (), subs: Sequence[str] = ()) -> tuple[dict, dict[str, str]]:
    """Apply :data:`BASIC_PROFILE` to a report header {keyword: value}.

    Returns (new header, {keyword: action applied}). Z -> "", X -> removed, D -> "ANONYMIZED", U ->
    :func:`new_uid`; with ``clean_descriptors`` Study/Series descriptions are kept, cleaned of the identifying
    tokens (action C). Keywords neither in the table nor in :data:`SAFE_KEEP` are removed.
    """
    out: dict = {}
    applied: dict[str, str] = {}
    for kw, value in header.items():
        if kw in CLEAN_DESCRIPTORS and clean_descriptors:
            out[kw] = scrub_text(str(value), list(words), list(subs))
            applied[kw] = "C"
            continue
        if kw in BASIC_PROFILE:
            action = BASIC_PROFILE[kw][1].split("/")[0]
        elif kw in SAFE_KEEP:
            action = "K"
        else:
            action = "X"
        applied[kw] = action
        if action == "K":
            out[kw] = value
        elif action == "Z":
            out[kw] = ""
        elif action == "D":
            out[kw] = "ANONYMIZED"
        elif action == "U":
            out[kw] = new_uid(str(value), salt) if value else ""
        # "X": removed
    return out, applied


def _strings(v, key: str = ""):  # noqa: ANN001, ANN202
    """Yield (key, string) for every string value of a JSON-able structure (list items get their list's key)."""
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _strings(x, str(k))
    elif isinstance(v, list):
        for x in v:
            yield from _strings(x, key)
    elif isinstance(v, str):
        yield key, v


def _collect_uids(content) -> set[str]:  # noqa: ANN001
    """Every UID-like value of a report (under keys naming a UID, and the header's UID attributes)."""
    return {v for k, v in _strings(content) if "uid" in k.lower() and _UID_RE.match(v) and k != "uid"}


def _map_strings(v, fn, key: str = ""):  # noqa: ANN001, ANN202
    """Apply fn(key, string) to every string value (not keys) of a JSON-able structure, returning a copy."""
    if isinstance(v, dict):
        return {k: _map_strings(x, fn, str(k)) for k, x in v.items()}
    if isinstance(v, list):
        return [_map_strings(x, fn, key) for x in v]
    if isinstance(v, str):
        return fn(key, v)
    return v


def _person_values(content) -> list[str]:  # noqa: ANN001
    """The strings under :data:`_PERSON_KEYS` (the readers' names) anywhere in ``content``, first seen first."""
    return list(dict.fromkeys(v for k, v in _strings(content) if k in _PERSON_KEYS and v.strip()))


def deidentify_report(report: Report, salt: str | None = None, *, clean_descriptors: bool = False) -> Report:
    """A de-identified copy of ``report`` (from :func:`medviewer.report.content.build_report`); the input is not
    changed. See the module docstring for what is done and the PS3.15 sources.

    The rules work on the report's JSON form (:meth:`Report.to_dict <medviewer.report.model.Report.to_dict>`:
    every string value, under its key) and the result is read back with :meth:`Report.from_dict
    <medviewer.report.model.Report.from_dict>`, so no field of the model can escape them.

    salt: the secret (default :func:`installation_salt`): the same salt gives the same pseudonym, UIDs and date
    shift for the same patient, so de-identified reports of one patient stay linkable to each other and to a
    de-identified worklist. clean_descriptors: keep the study/series descriptions, cleaned (PS3.15 E.3.5 Clean
    Descriptors Option) instead of removing them.

    Raises DeidentificationError when the patient name, ID or an original UID would still be in the result.
    A report that is already de-identified is returned unchanged (a copy).
    """
    if report.deidentified:
        return copy.deepcopy(report)
    salt = salt if salt is not None else installation_salt()
    content = report.to_dict()
    src = copy.deepcopy(content)
    header = src.get("header", {})
    tokens = identifying_tokens(header, _person_values(src))
    patient_key = f"{header.get('PatientID', '')}|{str(header.get('PatientName', '')).upper()}"
    shift = timedelta(days=_date_shift_days(salt, patient_key))
    uids = _collect_uids(src)
    uid_map = {u: new_uid(u, salt) for u in uids}
    uid_re = None
    if uid_map:
        alternatives = "|".join(re.escape(u) for u in sorted(uid_map, key=len, reverse=True))
        uid_re = re.compile(r"(?<![0-9.])(?:" + alternatives + r")(?![0-9]|\.[0-9])")

    new_header, applied = deidentify_header(header, salt, clean_descriptors, tokens.words, tokens.subs)
    src.pop("header", None)
    # Values that are not free text: the report's own vocabulary, and every header value but the cleaned (C)
    # descriptions (kept on purpose, K, or dummies, D). Only full names and distinctive IDs are looked for there;
    # the same rule is used below by the residual check.
    not_free = _STRUCTURAL_KEYS | frozenset(kw for kw, a in applied.items() if a != "C")

    def scrub_value(key: str, s: str) -> str:
        if _uid_key(key):
            return s
        if key in not_free:
            return scrub_text(s, [], tokens.strong)
        # the header's identifiers first (a birth date goes entirely), then phones, ages and other dates
        return clean_free_text_identifiers(scrub_text(s, tokens.words, tokens.subs), shift)

    def clean(key: str, s: str) -> str:
        if uid_re is not None:
            s = uid_re.sub(lambda m: uid_map[m.group(0)], s)
        if key in _PERSON_KEYS:
            return ""
        if key == "series_description" and not clean_descriptors:
            return ""
        m = _ISO.match(s)
        if m:
            t = datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc) - shift
            return t.strftime("%Y-%m-%dT%H:%M:%SZ")
        return scrub_value(key, s)

    out = _map_strings(src, clean)
    # Annotation uids are medviewer's own random ids, but they link back to the case store: key them too.
    for entry in out.get("key_images", []) + out.get("other_annotations", []):
        for ann in entry.get("annotations", []) if "annotations" in entry else [entry]:
            if ann.get("uid"):
                ann["uid"] = _keyed(salt, "annotation|" + ann["uid"])[:32]
    # The header goes back where it was (after the pseudonym), for a readable JSON.
    cleaned_header = {k: (scrub_value(k, v) if isinstance(v, str) and applied.get(k) in ("K", "C") else v)
                      for k, v in new_header.items()}
    ordered: dict = {}
    for k in content:
        ordered[k] = cleaned_header if k == "header" else out.get(k)
    out = ordered
    # Fail closed: nothing identifying may survive (checked before medviewer adds its own de-identification text).
    left = residual_identifiers(out, tokens.strong, tokens.words, not_free, subs=tokens.subs, uids=sorted(uids))
    if left:
        raise DeidentificationError(f"de-identification left {len(left)} identifier(s) in the report")
    methods = [_METHOD_BASIC, _METHOD_MODIFIED_DATES] + ([_METHOD_CLEAN_DESCRIPTORS] if clean_descriptors else [])
    pseudo = content.get("pseudonym") or pseudonym(str(header.get("PatientID", "")),
                                                   str(header.get("PatientName", "")), salt,
                                                   str(header.get("StudyInstanceUID", "")))
    out["deidentification"] = {
        "profile": PROFILE_NAME,
        "PatientIdentityRemoved": "YES",
        "DeidentificationMethod": "PS3.15 E.1 Basic Profile; report times shifted by a secret number of whole days "
                                  "per patient; names (patient, readers, header people), places, IDs, accession "
                                  "number and birth date cleaned from free text",
        "DeidentificationMethodCodeSequence": methods,
        "pseudonym": pseudo,
        "actions": {kw: f"{applied[kw]} (table: {BASIC_PROFILE[kw][1]}, {BASIC_PROFILE[kw][0]})"
                    if kw in BASIC_PROFILE else applied[kw] for kw in applied},
        "uids_replaced": len(uid_map),
        "pixels_cleaned": False,
    }
    out["pseudonym"] = pseudo
    out["deidentified"] = True
    return Report.from_dict(out)


def safe_basename(report: Report) -> str:
    """A file name stem for a report, derived from the patient's pseudonym and a hash of the (possibly new)
    StudyInstanceUID, never from the patient's name or ID: ``medviewer-report-ANON-XXXXXXXXXX-1a2b3c4d``.
    Only ``[A-Za-z0-9._-]`` characters."""
    deid = report.deidentification
    pseudo = str(report.pseudonym or (deid.pseudonym if deid is not None else "") or "ANON")
    study = str(report.header.get("StudyInstanceUID") or report.generated_at or "")
    digest = hashlib.sha256(study.encode("utf-8")).hexdigest()[:8]
    stem = f"medviewer-report-{pseudo}-{digest}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)
