"""Orientation markers from ImageOrientationPatient (PS3.3 C.7.6.1.1.1), radiological convention."""

import numpy as np
import pytest

from medviewer.imaging.geometry import direction_label, screen_orientation_labels


@pytest.mark.parametrize(
    "iop, expected",
    [
        # Axial, patient supine, viewed from the feet: patient's left on screen right, anterior at the top.
        ((1, 0, 0, 0, 1, 0), {"right": "L", "left": "R", "top": "A", "bottom": "P"}),
        # Sagittal: rows run posterior, columns run to the feet.
        ((0, 1, 0, 0, 0, -1), {"right": "P", "left": "A", "top": "H", "bottom": "F"}),
        # Coronal: rows to the patient's left, columns to the feet.
        ((1, 0, 0, 0, 0, -1), {"right": "L", "left": "R", "top": "H", "bottom": "F"}),
    ],
)
def test_standard_planes(iop, expected):
    assert screen_orientation_labels(iop) == expected


def test_oblique_tilted_ct_uses_both_letters_strongest_first():
    # The GE head CT's orientation: column direction 18.5 degrees off the y axis towards the feet.
    tilt = np.radians(18.5)
    col = (0.0, np.cos(tilt), -np.sin(tilt))
    labels = screen_orientation_labels((1.0, 0.0, 0.0) + col)
    assert labels["bottom"] == "PF" and labels["top"] == "AH"
    assert direction_label((0.0, 0.0, 0.0)) == ""


def test_radiograph_patient_orientation_markers():
    from medviewer.imaging.geometry import patient_orientation_labels

    # A PA chest radiograph viewed as usual: PatientOrientation "L\F" (rows to the patient's left, columns down).
    assert patient_orientation_labels(["L", "F"]) == {"right": "L", "left": "R", "bottom": "F", "top": "H"}
    assert patient_orientation_labels(["AL", "F"])["left"] == "PR"
    assert patient_orientation_labels([]) == {}
