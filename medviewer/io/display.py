"""How header values are written on screen and paper: one way everywhere (pure Python, no Qt).

* Person names (PN, PS3.5 6.2): ``Family^Given^Middle^Prefix^Suffix`` -> ``"DOE, John A"`` (prefix before,
  suffix after; the first non-empty component group of ``alphabetic=ideographic=phonetic``).
* Dates (DA): ISO 8601 ``YYYY-MM-DD`` (``"20240301"`` and the old ACR-NEMA ``"2024.03.01"`` alike).
* Ages (AS ``nnnD/W/M/Y``, or birth date + study date): ``"45 y"``, ``"8 mo"``, ``"3 wk"``, ``"10 d"``.
* The overlay's patient lines, the main window title, the unit of the displayed pixel values (HU, Bq/ml, the
  file's RescaleType/Units) and the overlay caption that says which VOI window is shown.

The overlay (:mod:`medviewer.ui.browser`), the worklist, the case panel, the PACS dialogs and the PDF report use
these, so a name, date or age reads the same wherever it appears.
"""

from __future__ import annotations

import datetime as _dt
import re

__all__ = [
    "APP_NAME", "format_person_name", "format_da", "format_age", "age_from_dates", "patient_lines", "patient_line",
    "window_title", "value_units", "read_value_units", "format_value", "window_caption",
]

APP_NAME = "medviewer"


# ------------------------------------------------------------------------------------------------ names
def format_person_name(pn: object, empty: str = "") -> str:
    """DICOM PN -> ``"Family, Given Middle"`` with the name prefix before and the suffix after.

    ``"DOE^John^A^Dr^Jr"`` -> ``"Dr DOE, John A Jr"``; ``"DOE^John"`` -> ``"DOE, John"``; ``"DOE"`` -> ``"DOE"``;
    ``"^John"`` -> ``"John"``. Of the component groups (``alphabetic=ideographic=phonetic``) the first that holds
    a name is used. Case is kept as the file has it. ``empty`` is returned when there is no name at all.
    """
    for group in str(pn or "").split("="):
        parts = [p.strip() for p in group.split("^")] + [""] * 5
        family, given, middle, prefix, suffix = parts[:5]
        rest = " ".join(p for p in (given, middle) if p)
        core = f"{family}, {rest}" if family and rest else (family or rest)
        text = " ".join(x for x in (prefix, core, suffix) if x)
        if text:
            return text
    return empty


# ------------------------------------------------------------------------------------------------ dates
def _parse_da(da: object) -> _dt.date | None:
    s = str(da or "").strip().replace(".", "").replace("-", "")
    if len(s) == 8 and s.isdigit():
        try:
            return _dt.date(int(s[:4]), int(s[4:6]), int(s[6:]))
        except ValueError:
            return None
    return None


def format_da(da: object) -> str:
    """DICOM DA -> ISO 8601 ``YYYY-MM-DD``; ``"YYYYMM"`` -> ``"YYYY-MM"``; ``""`` for nothing; any other text is
    returned stripped, as it is (never guessed at)."""
    s = str(da or "").strip()
    compact = s.replace(".", "") if re.fullmatch(r"\d{4}\.\d{2}\.\d{2}", s) else s
    if len(compact) == 8 and compact.isdigit():
        return f"{compact[:4]}-{compact[4:6]}-{compact[6:]}"
    if len(compact) == 6 and compact.isdigit():
        return f"{compact[:4]}-{compact[4:]}"
    return s


# ------------------------------------------------------------------------------------------------ ages
_AS_UNITS = {"Y": "y", "M": "mo", "W": "wk", "D": "d"}


def age_from_dates(birth_date: object, on_date: object) -> str:
    """Age on ``on_date`` (DA) of someone born on ``birth_date`` (DA): whole years from 2 years on, whole months
    below, weeks below 2 months and days below 2 weeks. ``""`` when a date is missing or invalid, or the birth date
    is after ``on_date``."""
    born, on = _parse_da(birth_date), _parse_da(on_date)
    if born is None or on is None or born > on:
        return ""
    months = (on.year - born.year) * 12 + (on.month - born.month) - (1 if on.day < born.day else 0)
    if months >= 24:
        return f"{months // 12} y"
    if months >= 2:
        return f"{months} mo"
    days = (on - born).days
    if days >= 14:
        return f"{days // 7} wk"
    return f"{days} d"


def format_age(age: object = "", birth_date: object = "", on_date: object = "") -> str:
    """PatientAge (AS, PS3.5: ``nnnD``, ``nnnW``, ``nnnM``, ``nnnY``) -> ``"45 y"`` / ``"8 mo"`` / ``"3 wk"`` /
    ``"10 d"``; without a usable AS, the age computed from ``birth_date`` on ``on_date`` (the study date, see
    :func:`age_from_dates`). An AS that is present but not of that form is returned stripped, as it is."""
    s = str(age or "").strip().upper()
    m = re.fullmatch(r"(\d{1,3})\s*([DWMY])", s)
    if m:
        return f"{int(m.group(1))} {_AS_UNITS[m.group(2)]}"
    if s:
        return str(age).strip()
    return age_from_dates(birth_date, on_date)


# ------------------------------------------------------------------------------------------------ patient
def patient_lines(name: object = "", patient_id: object = "", birth_date: object = "", sex: object = "",
                  age: object = "", study_date: object = "") -> list[str]:
    """The overlay's patient block: ``["DOE, John", "ID 12345", "Born 1940-03-05, 64 y, M"]`` (empty lines
    dropped; the age from PatientAge, else from the birth date on the study date)."""
    born = format_da(birth_date)
    years = format_age(age, birth_date, study_date)
    who = ", ".join(x for x in (f"Born {born}" if born else "", years, str(sex or "").strip()) if x)
    pid = str(patient_id or "").strip()
    return [x for x in (format_person_name(name), f"ID {pid}" if pid else "", who) if x]


def patient_line(name: object = "", patient_id: object = "", birth_date: object = "", sex: object = "",
                 age: object = "", study_date: object = "") -> str:
    """:func:`patient_lines` on one line, parts separated by two spaces."""
    return "  ".join(patient_lines(name, patient_id, birth_date, sex, age, study_date))


def window_title(patient_name: object = "", patient_id: object = "", study_description: object = "",
                 study_date: object = "", app: str = APP_NAME) -> str:
    """The main window title: ``"DOE, John (12345) - CT CHEST - 2024-03-01 - medviewer"``; parts that are empty
    are left out (just ``"medviewer"`` with nothing open)."""
    name = format_person_name(patient_name)
    pid = str(patient_id or "").strip()
    who = f"{name} ({pid})" if name and pid else (name or (f"ID {pid}" if pid else ""))
    parts = [who, str(study_description or "").strip(), format_da(study_date), app]
    return " - ".join(p for p in parts if p)


# ------------------------------------------------------------------------------------------------ units
#: Units (0054,1001) of PET/NM images (PS3.3 C.8.9.1.1.3) as they are written on screen.
PET_UNITS = {
    "BQML": "Bq/ml", "CNTS": "counts", "GML": "SUVbw g/ml", "CM2ML": "SUVbsa cm2/ml", "GMLBSA": "SUVbsa cm2/ml",
    "GMLLBM": "SUVlbm g/ml", "PROPCNTS": "prop. counts", "CPS": "counts/s", "NONE": "", "CM2": "cm2",
    "PCNT": "%", "MGMINML": "mg/min/ml", "UMOLMINML": "umol/min/ml", "MLMING": "ml/min/g", "MLG": "ml/g",
    "1CM": "1/cm", "UMOLML": "umol/ml", "MLMINML": "ml/min/ml", "MLMIN": "ml/min",
}

#: RescaleType (0028,1054) values (PS3.3 C.11.1.1.2) spelled for the screen; others are shown as written.
RESCALE_TYPES = {"HU": "HU", "US": "", "OD": "OD", "MGML": "mg/ml", "PCT": "%", "Z_EFF": "Zeff", "ED": "e/ml",
                 "EDW": "EDW", "HU_MOD": "HU (mod.)", "": ""}


def value_units(modality: object, rescale_type: object = "", units: object = "", *, has_rescale: bool = True,
                is_color: bool = False) -> str:
    """The unit of the values the Modality LUT gives (what the pixel readout and the window are in).

    * CT: ``"HU"`` when RescaleType is HU or absent (the CT Image module defines Hounsfield units), otherwise the
      RescaleType (nothing for US, "unspecified");
    * PT/NM: Units (0054,1001), e.g. BQML -> ``"Bq/ml"``, GML -> ``"SUVbw g/ml"``;
    * others: the RescaleType when it names a unit, else Units when present;
    * ``""`` for colour and for plain stored values (no rescale, no RescaleType, no Units).
    """
    if is_color:
        return ""
    mod = str(modality or "").strip().upper()
    rtype = str(rescale_type or "").strip().upper()
    unit = str(units or "").strip().upper()
    if mod == "CT" and rtype in ("", "HU"):
        return "HU"
    if rtype:
        return RESCALE_TYPES.get(rtype, str(rescale_type).strip())
    if unit:
        return PET_UNITS.get(unit, str(units).strip())
    return "HU" if mod == "CT" and has_rescale else ""


def read_value_units(path: str, modality: object = "", *, is_color: bool = False) -> str:
    """:func:`value_units` of the file at ``path`` (RescaleType (0028,1054), Units (0054,1001) and whether it has
    RescaleSlope/Intercept, read from its header). A header that cannot be read gives what the modality alone
    says (``"HU"`` for CT, ``""`` otherwise)."""
    if is_color:
        return ""
    try:
        import pydicom

        ds = pydicom.dcmread(path, stop_before_pixels=True,
                             specific_tags=["Modality", "RescaleType", "Units", "RescaleSlope", "RescaleIntercept"])
    except Exception:  # noqa: BLE001 - any unreadable header: fall back to the modality
        return value_units(modality)
    mod = str(modality or ds.get("Modality", "") or "")
    has_rescale = "RescaleSlope" in ds or "RescaleIntercept" in ds
    return value_units(mod, ds.get("RescaleType", ""), ds.get("Units", ""), has_rescale=has_rescale)


def format_value(value: object) -> str:
    """A pixel value for the readout: integers as they are, reals with at most 2 decimals (trailing zeros cut),
    ``12345.678`` -> ``"12345.68"``, ``0.5`` -> ``"0.5"``."""
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if f != f or f in (float("inf"), float("-inf")):
        return str(f)
    if f.is_integer() and abs(f) < 1e15:
        return str(int(f))
    text = f"{f:.2f}".rstrip("0").rstrip(".")
    return text if text not in ("0", "-0") else f"{f:.3g}"


# ------------------------------------------------------------------------------------------------ windows
def window_caption(source: str, name: str = "", center: float | None = None, width: float | None = None,
                   units: str = "", *, lut: bool = False) -> str:
    """The overlay line that says which VOI window is shown.

    ``source`` is where it came from: "dicom" (one of the file's windows, or its VOI LUT table when ``lut``),
    "preset", "auto" or "manual". ``"W 400  L 40 HU  (DICOM: 'ABDOMEN')"``, ``"W 1500  L -600 HU  (preset:
    Lung)"``, ``"W 2321  L 1310  (auto)"``, ``"VOI LUT  (DICOM: 'NORMAL')"``. Unnamed DICOM windows read
    ``"(DICOM window 2)"``.
    """
    if source == "dicom":
        if name and not re.fullmatch(r"DICOM (window|LUT) \d+", name):
            why = f"(DICOM: '{name}')"
        else:
            why = f"({name})" if name else "(DICOM)"
    elif source == "preset":
        why = f"(preset: {name})" if name else "(preset)"
    elif source in ("auto", "manual"):
        why = f"({source})"
    else:
        why = f"({name})" if name else ""
    if lut:
        head = "VOI LUT"
    elif center is None or width is None:
        head = ""
    else:
        head = f"W {width:.0f}  L {center:.0f}" + (f" {units}" if units else "")
    return "  ".join(x for x in (head, why) if x)
