"""medviewer.io.display: names, dates, ages, titles, units and window captions written one way everywhere; and the
modality-aware window choices of medviewer.imaging.voi. Units are checked on real files (the Philips CT, the
pydicom-data chest CR and MR) and on a PET slice derived here from a real CT slice."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from medviewer.imaging.voi import (
    CT_PRESETS,
    WindowChoice,
    default_window_source,
    presets_for,
    window_choices,
)
from medviewer.io.display import (
    age_from_dates,
    format_age,
    format_da,
    format_person_name,
    format_value,
    patient_line,
    patient_lines,
    read_value_units,
    value_units,
    window_caption,
    window_title,
)

PHILIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "ct-phantom-philips"


@pytest.fixture
def pydicom_data_file():
    """``pydicom_data_file(name)``: a pydicom-data file (skips when the package is not installed)."""
    from medviewer.io.sample import pydicom_data_file as find

    def get(name: str) -> Path:
        try:
            return find(name)
        except FileNotFoundError as exc:
            pytest.skip(str(exc))

    return get


# ------------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("pn, expected", [
    ("DOE^John", "DOE, John"),
    ("Doe^John^Adam", "Doe, John Adam"),
    ("DOE^John^A^Dr^Jr", "Dr DOE, John A Jr"),
    ("DOE", "DOE"),
    ("^John", "John"),
    ("DOE^^^^", "DOE"),
    ("  DOE ^ John ", "DOE, John"),
    ("=山田^太郎", "山田, 太郎"),  # alphabetic group empty: the ideographic one
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", "Yamada, Tarou"),
    ("", ""),
    (None, ""),
    ("^^^^", ""),
])
def test_person_names(pn, expected):
    assert format_person_name(pn) == expected


def test_person_name_empty_placeholder():
    assert format_person_name("", empty="(no name)") == "(no name)"
    assert format_person_name(pydicom.valuerep.PersonName("DOE^Jane")) == "DOE, Jane"


# ------------------------------------------------------------------------------------------------ dates, ages
@pytest.mark.parametrize("da, expected", [
    ("20240301", "2024-03-01"), ("2024.03.01", "2024-03-01"), (" 20240301 ", "2024-03-01"), ("202403", "2024-03"),
    ("", ""), (None, ""), ("unknown", "unknown"), ("2024-03-01", "2024-03-01"),
])
def test_dates_iso(da, expected):
    assert format_da(da) == expected


@pytest.mark.parametrize("age, expected", [
    ("045Y", "45 y"), ("003M", "3 mo"), ("002W", "2 wk"), ("010D", "10 d"), ("45Y", "45 y"), ("045y", "45 y"),
    ("about 40", "about 40"),
])
def test_age_string(age, expected):
    assert format_age(age) == expected


@pytest.mark.parametrize("born, on, expected", [
    ("19400305", "20040826", "64 y"),
    ("19400827", "20040826", "63 y"),  # the day before the birthday
    ("19400826", "20040826", "64 y"),
    ("20230101", "20240301", "14 mo"),
    ("20240101", "20240301", "2 mo"),
    ("20240201", "20240301", "4 wk"),
    ("20240225", "20240301", "5 d"),
    ("20240301", "20240101", ""),  # born after the study
    ("", "20240101", ""), ("19400305", "", ""), ("1940", "20240101", ""),
])
def test_age_from_dates(born, on, expected):
    assert age_from_dates(born, on) == expected
    assert format_age("", born, on) == expected


def test_age_string_wins_over_dates():
    assert format_age("030Y", "19400305", "20040826") == "30 y"


def test_patient_lines_and_line():
    lines = patient_lines("DOE^John", "12345", "19400305", "M", study_date="20040826")
    assert lines == ["DOE, John", "ID 12345", "Born 1940-03-05, 64 y, M"]
    assert patient_line("DOE^John", "12345", "19400305", "M", study_date="20040826") == \
        "DOE, John  ID 12345  Born 1940-03-05, 64 y, M"
    assert patient_lines("", "", "", "F", age="024Y") == ["24 y, F"]
    assert patient_lines() == []


def test_window_title():
    assert window_title("DOE^John", "", "CT CHEST", "20240301") == "DOE, John - CT CHEST - 2024-03-01 - medviewer"
    assert window_title("DOE^John", "12345", "CT CHEST", "20240301") == \
        "DOE, John (12345) - CT CHEST - 2024-03-01 - medviewer"
    assert window_title("", "12345") == "ID 12345 - medviewer"
    assert window_title() == "medviewer"


# ------------------------------------------------------------------------------------------------ units
@pytest.mark.parametrize("modality, rtype, units, has_rescale, expected", [
    ("CT", "", "", True, "HU"), ("CT", "HU", "", True, "HU"), ("CT", "US", "", True, ""),
    ("CT", "MGML", "", True, "mg/ml"),
    ("PT", "", "BQML", True, "Bq/ml"), ("PT", "", "GML", True, "SUVbw g/ml"), ("NM", "", "CNTS", True, "counts"),
    ("PT", "", "XYZ", True, "XYZ"),
    ("MR", "US", "", True, ""), ("MR", "", "", False, ""), ("CR", "", "", True, ""), ("CR", "OD", "", True, "OD"),
])
def test_value_units(modality, rtype, units, has_rescale, expected):
    assert value_units(modality, rtype, units, has_rescale=has_rescale) == expected


def test_value_units_colour_is_none():
    assert value_units("US", "", "", is_color=True) == ""
    assert read_value_units("/nonexistent/file.dcm", "CT") == "HU"
    assert read_value_units("/nonexistent/file.dcm", "MR") == ""


def test_units_of_real_files(pydicom_data_file):
    if PHILIPS.is_dir():
        ct = next(p for p in sorted(PHILIPS.iterdir()) if p.name.startswith("I"))
        assert read_value_units(str(ct), "CT") == "HU"
    mr = pydicom_data_file("MR2_UNCI.dcm")
    assert pydicom.dcmread(mr, stop_before_pixels=True).RescaleType == "US"
    assert read_value_units(str(mr), "MR") == ""  # US = unspecified: no unit shown
    cr = pydicom_data_file("RG1_UNCI.dcm")
    assert read_value_units(str(cr), "CR") == ""


def test_units_of_a_pet_slice_derived_from_real_ct(tmp_path):
    if not PHILIPS.is_dir():
        pytest.skip("../shared/data is absent")
    src = next(p for p in sorted(PHILIPS.iterdir()) if p.name.startswith("I"))
    ds = pydicom.dcmread(src)
    ds.Modality = "PT"
    ds.Units = "BQML"
    ds.pop("RescaleType", None)  # absent in PET objects (the Units attribute says what the values are)
    path = tmp_path / "pt.dcm"
    ds.save_as(path)
    assert read_value_units(str(path), "PT") == "Bq/ml"
    ds.Units = "GML"
    ds.save_as(path)
    assert read_value_units(str(path), "PT") == "SUVbw g/ml"


@pytest.mark.parametrize("value, expected", [
    (-1000, "-1000"), (12345.678, "12345.68"), (0.5, "0.5"), (2.0, "2"), (0.001234, "0.00123"), ("x", "x"),
])
def test_format_value(value, expected):
    assert format_value(value) == expected


# ------------------------------------------------------------------------------------------------ captions
def test_window_captions():
    assert window_caption("dicom", "ABDOMEN", 40, 400, "HU") == "W 400  L 40 HU  (DICOM: 'ABDOMEN')"
    assert window_caption("dicom", "DICOM window 2", 40, 80, "HU") == "W 80  L 40 HU  (DICOM window 2)"
    assert window_caption("preset", "Lung", -600, 1500, "HU") == "W 1500  L -600 HU  (preset: Lung)"
    assert window_caption("auto", "", 836.2, 1664.4) == "W 1664  L 836  (auto)"
    assert window_caption("manual", "", 10, 20, "Bq/ml") == "W 20  L 10 Bq/ml  (manual)"
    assert window_caption("dicom", "NORMAL", lut=True) == "VOI LUT  (DICOM: 'NORMAL')"


# ------------------------------------------------------------------------------------------------ window choices
def test_presets_are_for_ct_only():
    assert presets_for("CT") == CT_PRESETS and presets_for("ct") == CT_PRESETS
    for modality in ("CR", "DX", "MR", "PT", "US", "MG", ""):
        assert presets_for(modality) == {}


def test_default_window_per_modality():
    assert default_window_source("CT", True) == "dicom"
    assert default_window_source("CT", False) == "auto"
    assert default_window_source("CR", True) == "dicom" and default_window_source("DX", True) == "dicom"
    assert default_window_source("CR", False) == "auto" and default_window_source("DX", False) == "auto"
    assert default_window_source("MR", True) == "auto" and default_window_source("MR", False) == "auto"


def test_window_choices_ct_and_cr():
    ct = window_choices("CT", [(40.0, 400.0, "ABDOMEN"), (-600.0, 1500.0, "LUNG"), (40.0, 400.0, "AGAIN")])
    assert [c.name for c in ct if c.source == "preset"] == list(CT_PRESETS)
    dicom = [c for c in ct if c.source == "dicom"]
    assert [(c.name, c.index) for c in dicom] == [("ABDOMEN", 0), ("LUNG", 1)]  # the repeated window once
    assert dicom[0].label == "DICOM: ABDOMEN (W 400, L 40)"
    assert ct[5].label == "Lung (W 1500, L -600)"
    cr = window_choices("CR", [(15000.0, 30000.0, "DICOM window 1")], ["NORMAL"])
    assert [c.source for c in cr] == ["dicom", "dicom"]
    assert cr[0].label == "DICOM window 1 (W 30000, L 15000)"
    assert cr[1] == WindowChoice("dicom", "NORMAL", index=0, lut=True) and cr[1].label == "DICOM LUT: NORMAL"
    assert window_choices("MR") == []
