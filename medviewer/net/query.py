"""Queries at patient, study, series and image level, as C-FIND identifiers (DICOM PS3.4 C.4.1, Annex C.6
Query/Retrieve Information Models) and as QIDO-RS parameters (PS3.18 10.6), and their results as plain rows.

Matching rules (PS3.4 C.2.2.2): PatientName with ``*`` and ``?`` wildcards; a date range ``YYYYMMDD-YYYYMMDD``
(either end may be left open); single values for the other keys. Results are decoded with the response's
SpecificCharacterSet (PS3.5 6.1): every row value is a ``str``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from medviewer.net.nodes import PacsError

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

#: Return keys asked for at each level (besides the matching keys), by DICOM keyword.
RETURN_KEYS: dict[str, tuple[str, ...]] = {
    "PATIENT": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "NumberOfPatientRelatedStudies"),
    "STUDY": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
              "StudyTime", "AccessionNumber", "StudyDescription", "ModalitiesInStudy", "StudyID",
              "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances"),
    "SERIES": ("StudyInstanceUID", "SeriesInstanceUID", "Modality", "SeriesNumber", "SeriesDescription",
               "BodyPartExamined", "NumberOfSeriesRelatedInstances"),
    "IMAGE": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID", "InstanceNumber"),
}

_DATE_RANGE = re.compile(r"^(\d{8})?(-)?(\d{8})?$")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Query:
    """What to look for. ``level``: PATIENT, STUDY, SERIES or IMAGE. Empty fields do not constrain.

    patient_name may hold ``*``/``?`` wildcards; study_date is ``YYYYMMDD`` or a range ``YYYYMMDD-YYYYMMDD``
    (open ends allowed); modality matches ModalitiesInStudy at study level and Modality at series level.
    Series and image level need ``study_uid`` (hierarchical query, PS3.4 C.4.1.2.1).
    """

    level: str = "STUDY"
    patient_id: str = ""
    patient_name: str = ""
    study_date: str = ""
    modality: str = ""
    accession_number: str = ""
    study_description: str = ""
    study_uid: str = ""
    series_uid: str = ""

    def validated(self) -> "Query":
        """This query after checking it; raises PacsError(cause="bad-input") naming the field."""
        level = self.level.upper()
        if level not in LEVELS:
            raise PacsError(f"level {self.level!r} is not one of patient, study, series, image", "bad-input")
        if self.study_date and not (_DATE_RANGE.match(self.study_date) and self.study_date != "-"):
            raise PacsError(f"study date {self.study_date!r} is not YYYYMMDD or YYYYMMDD-YYYYMMDD", "bad-input")
        for what, uid in (("study", self.study_uid), ("series", self.series_uid)):
            if uid and (len(uid) > 64 or not _UID.match(uid)):
                raise PacsError(f"{what} UID {uid!r} is not a DICOM UID (digits and dots, 64 characters at most)",
                                "bad-input")
        if level in ("SERIES", "IMAGE") and not self.study_uid:
            raise PacsError(f"a {level.lower()}-level query needs the StudyInstanceUID (--study UID)", "bad-input")
        return Query(level, *(getattr(self, k) for k in ("patient_id", "patient_name", "study_date", "modality",
                                                          "accession_number", "study_description", "study_uid",
                                                          "series_uid")))

    def matching(self) -> dict[str, str]:
        """The matching keys of this query at its level, by DICOM keyword (empty ones left out)."""
        m: dict[str, str] = {}
        level = self.level.upper()
        if level in ("PATIENT", "STUDY"):
            m.update(PatientID=self.patient_id, PatientName=self.patient_name)
        if level == "STUDY":
            m.update(StudyDate=self.study_date, ModalitiesInStudy=self.modality,
                     AccessionNumber=self.accession_number, StudyDescription=self.study_description,
                     StudyInstanceUID=self.study_uid)
        if level in ("SERIES", "IMAGE"):
            m.update(StudyInstanceUID=self.study_uid, SeriesInstanceUID=self.series_uid)
            if level == "SERIES":
                m["Modality"] = self.modality
        return {k: v for k, v in m.items() if v}

    def identifier(self):  # noqa: ANN201 - pydicom.Dataset
        """The C-FIND identifier (a pydicom Dataset): QueryRetrieveLevel, SpecificCharacterSet ``ISO_IR 192``
        (UTF-8, so a name with any characters can be matched; the PACS's answer states its own character set, which
        decodes it), the matching keys and the empty return keys of the level."""
        from pydicom import Dataset

        ds = Dataset()
        level = self.level.upper()
        ds.QueryRetrieveLevel = level
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the query may hold any name; PACSs answer in kind
        for kw in RETURN_KEYS[level]:
            setattr(ds, kw, "")
        for kw, value in self.matching().items():
            setattr(ds, kw, value)
        return ds

    def qido_params(self) -> dict[str, str]:
        """The QIDO-RS search parameters (PS3.18 8.3.4): the matching keys by keyword; ``fuzzymatching`` off."""
        return dict(self.matching())


def row_from_dataset(ds, level: str) -> dict[str, str]:  # noqa: ANN001 - pydicom.Dataset
    """A result row: keyword -> str for the level's return keys (and the matching keys) present in ``ds``,
    person names and texts decoded with the dataset's SpecificCharacterSet."""
    out: dict[str, str] = {}
    for kw in RETURN_KEYS[level.upper()] + ("QueryRetrieveLevel",):
        if kw in ds:
            value = ds[kw].value
            if value is None:
                out[kw] = ""
            elif type(value).__name__ == "MultiValue" or isinstance(value, (list, tuple)):
                out[kw] = "\\".join(str(v) for v in value)
            else:
                out[kw] = str(value)
    out.pop("QueryRetrieveLevel", None)
    return out


__all__ = ["Query", "LEVELS", "RETURN_KEYS", "row_from_dataset"]
