"""Slice geometry in LPS millimetres: normals, sorting positions, spacing runs, gaps and gantry tilt.

The slice normal is the cross product of the row and column direction cosines of ImageOrientationPatient
(PS3.3 C.7.6.2.1.1); a slice's location along the stack is the projection of its ImagePositionPatient on that
normal. This is how dcm2niix, GDCM and ITK order slices: never by InstanceNumber or file name.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Two positions whose projections on the normal differ by less than this are the same slice location (mm).
POSITION_TOLERANCE_MM = 0.01
#: Slice steps that differ by less than this fraction of the nominal spacing (or 0.01 mm) count as equal.
SPACING_RELATIVE_TOLERANCE = 0.01
#: A step this many times larger than its neighbours is a gap (missing slices).
GAP_FACTOR = 1.5
#: Shear below this angle (degrees) is rounding noise, not gantry tilt.
TILT_TOLERANCE_DEG = 0.1


def slice_normal(orientation: Sequence[float]) -> np.ndarray:
    """Unit normal (3,) float64 of a plane given by ImageOrientationPatient (row cosines, column cosines).

    Raises
    ------
    ValueError: orientation does not have 6 values or its two vectors are parallel / zero.
    """
    o = np.asarray(orientation, dtype=np.float64)
    if o.shape != (6,):
        raise ValueError(f"ImageOrientationPatient needs 6 values, got {o.shape}")
    n = np.cross(o[:3], o[3:])
    norm = np.linalg.norm(n)
    if norm < 1e-6:
        raise ValueError("ImageOrientationPatient row and column vectors are parallel or zero")
    return n / norm


def orientation_key(orientation: Sequence[float] | None, decimals: int = 3) -> tuple[float, ...] | None:
    """Rounded orientation used to decide whether two slices share a plane orientation."""
    if orientation is None:
        return None
    return tuple(round(float(v), decimals) + 0.0 for v in orientation)


@dataclass(frozen=True)
class SpacingRun:
    """Consecutive slice steps of (about) the same size: steps ``first``..``last`` (0-based step i goes from
    slice i to slice i+1), each ``spacing`` mm along the normal."""

    first: int
    last: int
    spacing: float


@dataclass(frozen=True)
class SpacingReport:
    """Spacing analysis of a sorted stack.

    Attributes
    ----------
    steps: (n-1,) float64, distance between consecutive slices along the normal, mm.
    nominal: median step, mm (0.0 for a single slice).
    runs: the steps grouped into runs of equal spacing.
    gaps: indices i of steps (slice i -> i+1) larger than GAP_FACTOR times the local spacing.
    uneven: True when more than one run exists.
    """

    steps: np.ndarray
    nominal: float
    runs: list[SpacingRun]
    gaps: list[int]

    @property
    def uneven(self) -> bool:
        return len(self.runs) > 1

    @property
    def min(self) -> float:
        return float(self.steps.min()) if self.steps.size else 0.0

    @property
    def max(self) -> float:
        return float(self.steps.max()) if self.steps.size else 0.0


def analyse_spacing(locations: np.ndarray) -> SpacingReport:
    """Analyse slice steps of sorted slice locations (n,) in mm (projections on the normal, ascending)."""
    loc = np.asarray(locations, dtype=np.float64)
    steps = np.diff(loc)
    if steps.size == 0:
        return SpacingReport(steps=steps, nominal=0.0, runs=[], gaps=[])
    nominal = float(np.median(steps))
    runs: list[SpacingRun] = []
    start = 0
    for i in range(1, steps.size + 1):
        if i == steps.size or not _same_step(steps[i], steps[start:i].mean()):
            runs.append(SpacingRun(start, i - 1, float(steps[start:i].mean())))
            start = i
    gaps = []
    for i, s in enumerate(steps):
        neighbours = np.concatenate([steps[max(0, i - 2):i], steps[i + 1:i + 3]])
        if neighbours.size == 0:
            continue
        local = float(np.median(neighbours))
        if local > 0 and s > GAP_FACTOR * local:
            gaps.append(i)
    return SpacingReport(steps=steps, nominal=nominal, runs=runs, gaps=gaps)


def _same_step(a: float, b: float) -> bool:
    return abs(a - b) <= max(POSITION_TOLERANCE_MM, SPACING_RELATIVE_TOLERANCE * max(abs(a), abs(b)))


def tilt_angle_deg(positions: np.ndarray, normal: np.ndarray) -> float:
    """Angle (degrees) between the slice-to-slice step and the slice normal: 0 for an orthogonal stack, the
    gantry tilt for a tilted CT acquisition (the stack is then sheared).

    positions: (n, 3) ImagePositionPatient of the sorted slices, mm. Returns 0.0 for fewer than 2 slices.
    """
    p = np.asarray(positions, dtype=np.float64)
    if p.shape[0] < 2:
        return 0.0
    step = p[-1] - p[0]
    length = np.linalg.norm(step)
    if length < 1e-9:
        return 0.0
    cosang = min(1.0, abs(float(step @ normal)) / length)
    return math.degrees(math.acos(cosang))


def format_position(p: Sequence[float] | np.ndarray) -> str:
    """``(x, y, z)`` in mm with 2 decimals, for warnings."""
    return "(" + ", ".join(f"{float(v):.2f}" for v in p) + ")"


def direction_label(vector: Sequence[float] | np.ndarray, threshold: float = 0.25) -> str:
    """Patient-orientation letters of a direction in LPS (DICOM PS3.3 C.7.6.1.1.1): L/R (x), P/A (y), H/F (z).

    Components whose magnitude exceeds ``threshold`` contribute, strongest first; e.g. (0.9, 0.4, 0) -> "LP".
    Returns "" for a zero vector.
    """
    v = np.asarray(vector, dtype=np.float64)
    letters = (("L", "R"), ("P", "A"), ("H", "F"))
    order = np.argsort(-np.abs(v), kind="stable")
    return "".join(letters[i][0 if v[i] > 0 else 1] for i in order if abs(v[i]) > threshold)


def screen_orientation_labels(orientation: Sequence[float]) -> dict[str, str]:
    """Orientation markers for an image displayed with rows left-to-right and columns top-to-bottom.

    Parameters
    ----------
    orientation: ImageOrientationPatient (row cosines, column cosines).

    Returns
    -------
    {"left", "right", "top", "bottom"}: e.g. an axial slice (1,0,0,0,1,0) gives right "L", left "R", top "A",
    bottom "P" (the radiological convention: the patient's left on the viewer's right).
    """
    o = np.asarray(orientation, dtype=np.float64)
    row, col = o[:3], o[3:]
    return {"right": direction_label(row), "left": direction_label(-row),
            "bottom": direction_label(col), "top": direction_label(-col)}


def patient_orientation_labels(patient_orientation: Sequence[str]) -> dict[str, str]:
    """Orientation markers from PatientOrientation (0020,0020) for images without ImageOrientationPatient
    (radiographs): the first value is the row direction (towards the right of the screen), the second the column
    direction (towards the bottom), PS3.3 C.7.6.1.1.1. Returns {} unless two values are given."""
    if len(patient_orientation) != 2:
        return {}
    opposite = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}

    def flip(code: str) -> str:
        return "".join(opposite.get(c, c) for c in code.upper())

    row, col = (str(v).upper() for v in patient_orientation)
    return {"right": row, "left": flip(row), "bottom": col, "top": flip(col)}
