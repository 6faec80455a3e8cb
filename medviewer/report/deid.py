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
3. free text (the note, annotation texts, the radiologist's comments, warnings) is cleaned: the patient's name
   parts (split on ``^``, ``=``, commas and spaces), IDs, accession number and birth date, of 2 characters or more,
   are replaced by ``XXXX`` (case-insensitive, whole words); the full name and ID are also removed wherever they
   occur as substrings in any text of the report;
4. the reader's name (sign-off, radiologist scores) is removed (the table's "Name of Physician(s) Reading Study"
   (0008,1060) and "Verifying Observer Name" (0040,A075));
5. the report's own times (case, note, AI, sign-off, generation) are shifted by a secret whole number of days per
   patient, keeping intervals (the "Retain Longitudinal Temporal Information with Modified Dates Option", E.3.6);
6. PatientIdentityRemoved (0012,0062) = YES and DeidentificationMethod (0012,0063) / the method code sequence
   (CID 7050: 113100 Basic Application Confidentiality Profile, 113107 Modified Dates, 113105 Clean Descriptors)
   are recorded in the report's ``deidentification`` section with a pseudonym of the patient.

Pixels are not cleaned (the "Clean Pixel Data Option" is not offered): the key images are drawn without any
patient text, and images whose BurnedInAnnotation (0028,0301) is YES are flagged with a warning.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
import re
import secrets
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = ["BASIC_PROFILE", "SAFE_KEEP", "DeidentificationError", "installation_salt", "new_uid", "pseudonym",
           "deidentify_report", "deidentify_header", "identifying_tokens", "scrub_text", "residual_identifiers",
           "safe_basename", "REDACTED"]

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
    "not_for_diagnostic_use", "disclaimer", "summary", "warning", "measurement_source", "positives",
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


def identifying_tokens(header: dict) -> tuple[list[str], list[str]]:
    """(word tokens, substring tokens) to remove from free text, from the identified header.

    Word tokens (removed as whole words): the parts of PatientName / OtherPatientNames / PatientBirthName split on
    ``^``, ``=``, commas and spaces, the IDs (PatientID, OtherPatientIDs split on ``\\``), AccessionNumber,
    StudyID and the birth date (``YYYYMMDD`` and ``YYYY-MM-DD``), each of 2 characters or more. Substring tokens
    (removed wherever they occur): the full name as written and in ``Given Family``/``Family Given`` order, and the
    patient ID.
    """
    words: set[str] = set()
    subs: set[str] = set()
    for kw in ("PatientName", "OtherPatientNames", "PatientBirthName"):
        value = str(header.get(kw) or "")
        for name in value.split("\\"):
            parts = [p for p in re.split(r"[\^=,\s]+", name) if p]
            words.update(p for p in parts if len(p) >= 2)
            if len(parts) >= 2:
                subs.update({name.strip(), " ".join(parts), " ".join(reversed(parts)), ", ".join(parts)})
    for kw in ("PatientID", "OtherPatientIDs"):
        for pid in str(header.get(kw) or "").split("\\"):
            pid = pid.strip()
            if len(pid) >= 2:
                words.add(pid)
                subs.add(pid)
    for kw in ("AccessionNumber", "StudyID"):
        v = str(header.get(kw) or "").strip()
        if len(v) >= 2:
            words.add(v)
    bd = str(header.get("PatientBirthDate") or "").strip()
    if re.fullmatch(r"\d{8}", bd):
        words.update({bd, f"{bd[:4]}-{bd[4:6]}-{bd[6:]}", f"{bd[6:]}/{bd[4:6]}/{bd[:4]}",
                      f"{bd[4:6]}/{bd[6:]}/{bd[:4]}", f"{bd[6:]}.{bd[4:6]}.{bd[:4]}"})
    subs = {s for s in subs if len(s) >= 2}
    return sorted(words, key=len, reverse=True), sorted(subs, key=len, reverse=True)


def scrub_text(text: str, words: list[str], subs: list[str] = ()) -> str:
    """``text`` with every word token (case-insensitive, not inside a longer word or number) and every substring
    token (anywhere, case-insensitive) replaced by :data:`REDACTED`."""
    if not text:
        return text
    for tok in subs:
        text = re.sub(re.escape(tok), REDACTED, text, flags=re.IGNORECASE)
    for tok in words:
        text = re.sub(r"(?<![^\W_])" + re.escape(tok) + r"(?![^\W_])", REDACTED, text, flags=re.IGNORECASE)
    return text


def residual_identifiers(content, identifiers: list[str], words: list[str] = (),  # noqa: ANN001 - JSON-able
                         skip_word_keys: frozenset[str] = frozenset()) -> list[str]:
    """The identifiers still in ``content``: each of ``identifiers`` (2 characters or more) found
    case-insensitively as a substring of any string or key, and each of ``words`` found as a whole word in a string
    value whose key is not in ``skip_word_keys`` (keys are the report's own vocabulary)."""
    found: set[str] = set()
    low = [(i, i.lower()) for i in identifiers if i and len(i) >= 2]
    word_res = [(w, re.compile(r"(?<![^\W_])" + re.escape(w) + r"(?![^\W_])", re.IGNORECASE))
                for w in words if w and len(w) >= 2]

    def walk(v, key: str = "", is_key: bool = False) -> None:  # noqa: ANN001
        if isinstance(v, dict):
            for k, x in v.items():
                walk(str(k), "", True)
                walk(x, str(k))
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x, key)
        elif isinstance(v, str):
            s = v.lower()
            for orig, lo in low:
                if lo in s:
                    found.add(orig)
            if not is_key and key not in skip_word_keys:
                for orig, rx in word_res:
                    if rx.search(v):
                        found.add(orig)

    walk(content)
    return sorted(found)


# ------------------------------------------------------------------------------------------------------------------
# The report
# ------------------------------------------------------------------------------------------------------------------


def deidentify_header(header: dict, salt: str, clean_descriptors: bool = False,
                      words: list[str] = (), subs: list[str] = ()) -> tuple[dict, dict[str, str]]:
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


def _collect_uids(content) -> set[str]:  # noqa: ANN001
    """Every UID-like value of a report (under keys naming a UID, and the header's UID attributes)."""
    found: set[str] = set()

    def walk(v, key: str = "") -> None:  # noqa: ANN001
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, str(k))
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and ("uid" in key.lower()) and _UID_RE.match(v) and key != "uid":
            found.add(v)

    walk(content)
    return found


def _map_strings(v, fn, key: str = ""):  # noqa: ANN001, ANN202
    """Apply fn(key, string) to every string value (not keys) of a JSON-able structure, returning a copy."""
    if isinstance(v, dict):
        return {k: _map_strings(x, fn, str(k)) for k, x in v.items()}
    if isinstance(v, list):
        return [_map_strings(x, fn, key) for x in v]
    if isinstance(v, str):
        return fn(key, v)
    return v


def deidentify_report(content: dict, salt: str | None = None, *, clean_descriptors: bool = False) -> dict:
    """A de-identified copy of report ``content`` (from :func:`medviewer.report.content.build_report`); the input is
    not changed. See the module docstring for what is done and the PS3.15 sources.

    salt: the secret (default :func:`installation_salt`): the same salt gives the same pseudonym, UIDs and date
    shift for the same patient, so de-identified reports of one patient stay linkable to each other and to a
    de-identified worklist. clean_descriptors: keep the study/series descriptions, cleaned (PS3.15 E.3.5 Clean
    Descriptors Option) instead of removing them.

    Raises DeidentificationError when the patient name, ID or an original UID would still be in the result.
    Content that is already de-identified is returned unchanged (a copy).
    """
    if content.get("deidentified"):
        return copy.deepcopy(content)
    salt = salt if salt is not None else installation_salt()
    src = copy.deepcopy(content)
    header = src.get("header", {})
    words, subs = identifying_tokens(header)
    patient_key = f"{header.get('PatientID', '')}|{str(header.get('PatientName', '')).upper()}"
    shift = timedelta(days=_date_shift_days(salt, patient_key))
    uids = _collect_uids(src)
    uid_map = {u: new_uid(u, salt) for u in uids}
    uid_re = None
    if uid_map:
        alternatives = "|".join(re.escape(u) for u in sorted(uid_map, key=len, reverse=True))
        uid_re = re.compile(r"(?<![0-9.])(?:" + alternatives + r")(?![0-9]|\.[0-9])")

    new_header, applied = deidentify_header(header, salt, clean_descriptors, words, subs)
    src.pop("header", None)

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
        return scrub_text(s, [] if key in _STRUCTURAL_KEYS else words, subs)

    out = _map_strings(src, clean)
    # Annotation uids are medviewer's own random ids, but they link back to the case store: key them too.
    for entry in out.get("key_images", []) + out.get("other_annotations", []):
        for ann in entry.get("annotations", []) if "annotations" in entry else [entry]:
            if ann.get("uid"):
                ann["uid"] = _keyed(salt, "annotation|" + ann["uid"])[:32]
    # The header goes back where it was (after the pseudonym), for a readable JSON.
    cleaned_header = {k: (scrub_text(v, [], subs) if isinstance(v, str) and applied.get(k) == "K" else v)
                      for k, v in new_header.items()}
    ordered: dict = {}
    for k in content:
        ordered[k] = cleaned_header if k == "header" else out.get(k)
    out = ordered
    # Fail closed: nothing identifying may survive (checked before medviewer adds its own de-identification text).
    left = residual_identifiers(out, list(subs) + sorted(uids), words, _STRUCTURAL_KEYS)
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
                                  "per patient; names, IDs, accession number and birth date cleaned from free text",
        "DeidentificationMethodCodeSequence": methods,
        "pseudonym": pseudo,
        "actions": {kw: f"{applied[kw]} (table: {BASIC_PROFILE[kw][1]}, {BASIC_PROFILE[kw][0]})"
                    if kw in BASIC_PROFILE else applied[kw] for kw in applied},
        "uids_replaced": len(uid_map),
        "pixels_cleaned": False,
    }
    out["pseudonym"] = pseudo
    out["deidentified"] = True
    return out


def safe_basename(content: dict) -> str:
    """A file name stem for a report, derived from the patient's pseudonym and a hash of the (possibly new)
    StudyInstanceUID, never from the patient's name or ID: ``medviewer-report-ANON-XXXXXXXXXX-1a2b3c4d``.
    Only ``[A-Za-z0-9._-]`` characters."""
    pseudo = str(content.get("pseudonym") or (content.get("deidentification") or {}).get("pseudonym") or "ANON")
    study = str((content.get("header") or {}).get("StudyInstanceUID") or content.get("generated_at") or "")
    digest = hashlib.sha256(study.encode("utf-8")).hexdigest()[:8]
    stem = f"medviewer-report-{pseudo}-{digest}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", stem)
