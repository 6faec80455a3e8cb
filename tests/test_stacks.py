"""Splitting series into stacks and ordering slices.

Expected orders come from this file's own projection of ImagePositionPatient on the normal (numpy), never from
medviewer's geometry helpers.
"""

from __future__ import annotations

import math
import os
import re

import numpy as np
import pydicom
import pytest

import dicomfactory as fac
from medviewer.imaging import build_stacks
from medviewer.io.scan import scan


def _normal(iop) -> np.ndarray:
    o = np.asarray(iop, dtype=np.float64)
    n = np.cross(o[:3], o[3:])
    return n / np.linalg.norm(n)


def _expected_order(positions, iop) -> list[int]:
    """Indices of ``positions`` sorted by their projection on the slice normal (ascending)."""
    proj = np.asarray(positions, dtype=np.float64) @ _normal(iop)
    return [int(i) for i in np.argsort(proj, kind="stable")]


def _stack_paths(stack) -> list[str]:
    return [os.path.realpath(s.instance.path) for s in stack.slices]


def _real(paths) -> list[str]:
    return [os.path.realpath(p) for p in paths]


_TUPLE = re.compile(r"\((-?\d+(?:\.\d+)?), (-?\d+(?:\.\d+)?), (-?\d+(?:\.\d+)?)\)")


def _positions_named(text: str) -> list[tuple[float, float, float]]:
    return [tuple(float(v) for v in m.groups()) for m in _TUPLE.finditer(text)]


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    ax, ay, az = np.radians([ax, ay, az])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _oblique_iop() -> tuple[float, ...]:
    r = _rotation(20, 30, 10)
    row, col = r @ np.array([1.0, 0, 0]), r @ np.array([0, 1.0, 0])
    # round to what a DS can carry so the file holds exactly these cosines
    return tuple(float(f"{v:.8f}") for v in (*row, *col))


# ----------------------------------------------------------------------------------------------------------------
# Ordering
# ----------------------------------------------------------------------------------------------------------------


def test_instance_numbers_running_against_positions(tmp_path, scan_stacks):
    z = [10.0 + 2.5 * k for k in range(7)]
    positions = [(-50.0, -40.0, v) for v in z]
    inums = [100 - k for k in range(7)]  # highest InstanceNumber at the lowest position
    files = fac.write_series(tmp_path, positions, instance_numbers=inums)

    (stack,) = scan_stacks(tmp_path)

    order = _expected_order(positions, fac.AXIAL)
    assert _stack_paths(stack) == _real([files[i] for i in order])
    assert [s.instance.instance_number for s in stack.slices] == [inums[i] for i in order]
    assert stack.kind == "volume"
    assert stack.label == ""
    assert stack.locations == pytest.approx([positions[i][2] for i in order])
    assert stack.slice_spacing == pytest.approx(2.5)
    assert stack.warnings == []
    assert stack.tilt_deg == pytest.approx(0.0, abs=1e-6)


def test_shuffled_files_are_sorted_by_position(tmp_path, scan_stacks):
    rng = np.random.default_rng(7)
    n = 12
    iop = fac.AXIAL
    positions = [(0.0, 0.0, -30.0 + 1.25 * k) for k in range(n)]
    perm = rng.permutation(n)
    positions = [positions[i] for i in perm]
    names = [f"{int(v):08x}" for v in rng.integers(0, 2**31, size=n)]  # random names, random file order
    inums = [int(v) for v in rng.permutation(n) + 1]  # InstanceNumber unrelated to position
    files = fac.write_series(tmp_path, positions, names=names, instance_numbers=inums)

    (stack,) = scan_stacks(tmp_path)

    order = _expected_order(positions, iop)
    assert _stack_paths(stack) == _real([files[i] for i in order])
    assert stack.n_slices == n
    assert stack.slice_spacing == pytest.approx(1.25)
    assert stack.warnings == []


@pytest.mark.parametrize("plane", ["sagittal", "coronal", "oblique", "axial-feet-first"])
def test_plane_orientations(tmp_path, scan_stacks, plane):
    iop = {"sagittal": fac.SAGITTAL, "coronal": fac.CORONAL, "oblique": _oblique_iop(),
           "axial-feet-first": (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0)}[plane]
    n_vec = _normal(iop)
    origin = np.array([-12.0, 33.0, 101.5])
    spacing = 1.5
    rng = np.random.default_rng(3)
    ks = rng.permutation(9)
    positions = [tuple(origin + spacing * float(k) * n_vec) for k in ks]
    files = fac.write_series(tmp_path, positions, iop=iop, instance_numbers=[int(k) + 1 for k in ks[::-1]])

    (stack,) = scan_stacks(tmp_path)

    order = _expected_order(positions, iop)
    assert _stack_paths(stack) == _real([files[i] for i in order])
    expected_loc = np.asarray(positions)[order] @ n_vec
    assert np.allclose(stack.locations, expected_loc, atol=1e-4)
    assert np.all(np.diff(stack.locations) > 0)
    assert stack.slice_spacing == pytest.approx(spacing, abs=1e-4)
    assert stack.tilt_deg == pytest.approx(0.0, abs=0.05)
    assert stack.warnings == []
    assert stack.orientation == pytest.approx(iop, abs=1e-7)


def test_acquisition_number_per_slice_with_unique_positions_is_one_stack(tmp_path, scan_stacks):
    positions = [(0.0, 0.0, float(z)) for z in range(6)]
    files = fac.write_series(tmp_path, positions, per_slice={"acquisition_number": [1, 2, 3, 4, 5, 6]})
    stacks = scan_stacks(tmp_path)
    assert len(stacks) == 1
    assert _stack_paths(stacks[0]) == _real(files)
    assert stacks[0].warnings == []


# ----------------------------------------------------------------------------------------------------------------
# Splitting
# ----------------------------------------------------------------------------------------------------------------


def test_two_orientations_in_one_series_make_two_stacks(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    axial_pos = [(0.0, 0.0, 3.0 * k) for k in (3, 0, 2, 1)]
    sag_pos = [(4.0 * k, -10.0, 20.0) for k in (2, 0, 1)]
    axial = fac.write_series(tmp_path, axial_pos, ids, names=[f"A{k}" for k in range(4)],
                             instance_numbers=[1, 2, 3, 4])
    sag = fac.write_series(tmp_path, sag_pos, ids, iop=fac.SAGITTAL, names=[f"S{k}" for k in range(3)],
                           instance_numbers=[5, 6, 7])

    stacks = scan_stacks(tmp_path)

    assert len(stacks) == 2
    by_orientation = {tuple(round(v, 3) for v in s.orientation): s for s in stacks}
    a, s = by_orientation[tuple(fac.AXIAL)], by_orientation[tuple(fac.SAGITTAL)]
    assert _stack_paths(a) == _real([axial[i] for i in _expected_order(axial_pos, fac.AXIAL)])
    assert _stack_paths(s) == _real([sag[i] for i in _expected_order(sag_pos, fac.SAGITTAL)])
    assert a.label and s.label and a.label != s.label
    assert "sagittal" in s.label.lower() and "axial" in a.label.lower()


def test_different_image_sizes_are_split(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    positions = [(0.0, 0.0, float(z)) for z in (2, 0, 1)]
    small = fac.write_series(tmp_path, positions, ids, rows=8, cols=8, names=["s0", "s1", "s2"])
    large = fac.write_series(tmp_path, positions, ids, rows=16, cols=12, names=["l0", "l1", "l2"],
                             instance_numbers=[4, 5, 6])
    stacks = scan_stacks(tmp_path)
    assert len(stacks) == 2
    by_size = {(s.rows, s.columns): s for s in stacks}
    order = _expected_order(positions, fac.AXIAL)
    assert _stack_paths(by_size[(8, 8)]) == _real([small[i] for i in order])
    assert _stack_paths(by_size[(16, 12)]) == _real([large[i] for i in order])
    # the repeated positions are explained by the size split: no "repeat" stacks, no warnings
    assert all(s.warnings == [] for s in stacks)


def test_different_pixel_spacing_is_split(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    positions = [(0.0, 0.0, float(z)) for z in range(3)]
    fac.write_series(tmp_path, positions, ids, pixel_spacing=(0.5, 0.5), names=["a0", "a1", "a2"])
    fac.write_series(tmp_path, positions, ids, pixel_spacing=(0.8, 0.8), names=["b0", "b1", "b2"],
                     instance_numbers=[4, 5, 6])
    stacks = scan_stacks(tmp_path)
    assert sorted(s.pixel_spacing[0] for s in stacks) == pytest.approx([0.5, 0.8])
    assert all(s.n_slices == 3 for s in stacks)


def test_repeated_positions_with_echo_numbers_make_one_stack_per_echo(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    rng = np.random.default_rng(11)
    z = [float(v) for v in rng.permutation(5) * 4.0]
    positions = [(0.0, 0.0, v) for v in z] * 2
    echoes = [1] * 5 + [2] * 5
    inums = [int(v) for v in rng.permutation(10) + 1]  # echoes interleaved in InstanceNumber
    files = fac.write_series(tmp_path, positions, ids, instance_numbers=inums, modality="MR",
                             sop_class=fac.MR_IMAGE, per_slice={"echo_numbers": echoes})

    stacks = scan_stacks(tmp_path)

    assert len(stacks) == 2
    for echo in (1, 2):
        (stack,) = [s for s in stacks if {sl.instance.echo_numbers for sl in s.slices} == {str(echo)}]
        members = [k for k in range(10) if echoes[k] == echo]
        order = _expected_order([positions[k] for k in members], fac.AXIAL)
        assert _stack_paths(stack) == _real([files[members[i]] for i in order])
        assert "echo" in stack.label.lower() and str(echo) in stack.label
        assert stack.warnings == []
        assert stack.slice_spacing == pytest.approx(4.0)


def test_repeated_positions_without_discriminator_split_by_occurrence(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    rng = np.random.default_rng(5)
    z = [0.0, 2.0, 4.0, 6.0]
    positions = [(0.0, 0.0, v) for v in z] + [(0.0, 0.0, v) for v in z]
    inums = [int(v) for v in rng.permutation(8) + 1]
    names = [f"F{int(v):03d}" for v in rng.permutation(8)]
    files = fac.write_series(tmp_path, positions, ids, instance_numbers=inums, names=names)

    stacks = scan_stacks(tmp_path)

    # expected: at each position, the image with the lower InstanceNumber goes to the first stack
    first, second = [], []
    for v in z:
        here = sorted((inums[k], k) for k in range(8) if positions[k][2] == v)
        first.append(files[here[0][1]])
        second.append(files[here[1][1]])
    assert len(stacks) == 2
    assert _stack_paths(stacks[0]) == _real(first)
    assert _stack_paths(stacks[1]) == _real(second)
    for s in stacks:
        assert any("repeat" in w.lower() for w in s.warnings)
        assert s.slice_spacing == pytest.approx(2.0)


def test_repeated_pass_with_one_acquisition_number_each_splits_by_acquisition(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    z = [0.0, 2.0, 4.0, 6.0]
    positions = [(0.0, 0.0, v) for v in z] * 2
    acq = [1] * 4 + [2] * 4
    files = fac.write_series(tmp_path, positions, ids, instance_numbers=[8, 7, 6, 5, 4, 3, 2, 1],
                             per_slice={"acquisition_number": acq})
    stacks = scan_stacks(tmp_path)
    assert len(stacks) == 2
    for number in (1, 2):
        (stack,) = [s for s in stacks if {sl.instance.acquisition_number for sl in s.slices} == {number}]
        assert _stack_paths(stack) == _real([files[k] for k in range(8) if acq[k] == number])
        assert "acquisition" in stack.label.lower()


def test_repeated_pass_with_acquisition_number_per_rotation_is_not_fragmented(tmp_path, scan_stacks):
    """CT scanners may number each rotation (here 2 slices each): that must not cut a pass into pieces."""
    ids = fac.SeriesIds()
    z = [0.0, 2.0, 4.0, 6.0]
    positions = [(0.0, 0.0, v) for v in z] * 2
    acq = [1, 1, 2, 2, 3, 3, 4, 4]
    files = fac.write_series(tmp_path, positions, ids, per_slice={"acquisition_number": acq})
    stacks = scan_stacks(tmp_path)
    assert [s.n_slices for s in stacks] == [4, 4]
    assert _stack_paths(stacks[0]) == _real(files[:4])
    assert _stack_paths(stacks[1]) == _real(files[4:])


def test_enhanced_stack_id_splits(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 500, size=(3, 4, 4)).astype(np.int16)
    fac.enhanced_ct(tmp_path / "e1", ids, positions=[(0, 0, z) for z in (0, 1, 2)], frames=frames, stack_id="1")
    fac.enhanced_ct(tmp_path / "e2", ids, positions=[(0, 0, z) for z in (0, 1, 2)], frames=frames, stack_id="2")
    stacks = scan_stacks(tmp_path)
    assert len(stacks) == 2
    assert sorted(s.slices[0].frame.stack_id for s in stacks) == ["1", "2"]
    assert all(len({sl.instance.path for sl in s.slices}) == 1 for s in stacks)


# ----------------------------------------------------------------------------------------------------------------
# Spacing problems and tilt
# ----------------------------------------------------------------------------------------------------------------


def test_missing_slice_gives_a_gap_warning_naming_the_positions(tmp_path, scan_stacks):
    z = [0.0, 2.0, 4.0, 6.0, 10.0, 12.0, 14.0, 16.0]  # 8.0 missing
    positions = [(5.0, -7.5, v) for v in z]
    fac.write_series(tmp_path, positions)

    (stack,) = scan_stacks(tmp_path)

    assert stack.n_slices == len(z)
    steps = np.diff(sorted(z))
    gap_at = int(np.argmax(steps))
    gaps = [w for w in stack.warnings if "gap" in w.lower()]
    assert len(gaps) == 1
    named = _positions_named(gaps[0])
    assert named == [positions[gap_at], positions[gap_at + 1]]
    assert f"{steps[gap_at]:.2f}" in gaps[0]


def test_no_gap_warning_for_even_spacing(tmp_path, scan_stacks):
    fac.write_series(tmp_path, [(0.0, 0.0, 3.0 * k) for k in range(8)])
    (stack,) = scan_stacks(tmp_path)
    assert stack.warnings == []
    assert stack.spacing_range == pytest.approx((3.0, 3.0))


def test_uneven_spacing_warning(tmp_path, scan_stacks):
    z = [0.0, 1.0, 2.0, 3.0, 5.0, 7.0, 9.0]
    positions = [(0.0, 0.0, v) for v in z]
    fac.write_series(tmp_path, positions)

    (stack,) = scan_stacks(tmp_path)

    steps = np.diff(z)
    assert stack.spacing_range == pytest.approx((steps.min(), steps.max()))
    assert stack.slice_spacing == pytest.approx(float(np.median(steps)))
    uneven = [w for w in stack.warnings if "uneven" in w.lower()]
    assert len(uneven) == 1
    assert f"{steps.min():.2f}" in uneven[0] and f"{steps.max():.2f}" in uneven[0]
    # the warning names the slice where the spacing changes
    assert positions[3] in _positions_named(uneven[0])
    assert not any("gap" in w.lower() for w in stack.warnings)


@pytest.mark.parametrize("how", ["sheared-positions", "tilted-orientation"])
def test_gantry_tilt_warning_with_the_angle(tmp_path, scan_stacks, how):
    tilt = 15.0
    t = math.radians(tilt)
    if how == "sheared-positions":
        iop = fac.AXIAL
        positions = [(0.0, 2.0 * k * math.tan(t), 2.0 * k) for k in range(8)]
    else:  # GE style: the image plane is tilted, positions step along z only
        iop = (1.0, 0.0, 0.0, 0.0, round(math.cos(t), 8), round(-math.sin(t), 8))
        positions = [(0.0, 0.0, 2.0 * k) for k in range(8)]
    rng = np.random.default_rng(9)
    perm = [int(i) for i in rng.permutation(8)]
    positions = [positions[i] for i in perm]
    files = fac.write_series(tmp_path, positions, iop=iop, gantry_tilt=tilt)

    (stack,) = scan_stacks(tmp_path)

    order = _expected_order(positions, iop)
    assert _stack_paths(stack) == _real([files[i] for i in order])
    p = np.asarray(positions)[order]
    step = p[-1] - p[0]
    expected = math.degrees(math.acos(abs(step @ _normal(iop)) / np.linalg.norm(step)))
    assert expected == pytest.approx(tilt, abs=1e-3)  # sanity of the construction
    assert stack.tilt_deg == pytest.approx(expected, abs=1e-4)
    tilt_warnings = [w for w in stack.warnings if "tilt" in w.lower()]
    assert len(tilt_warnings) == 1
    assert f"{expected:.1f}" in tilt_warnings[0]


# ----------------------------------------------------------------------------------------------------------------
# Multi-frame
# ----------------------------------------------------------------------------------------------------------------


def test_enhanced_ct_frames_in_shuffled_order_are_sorted(tmp_path, scan_stacks):
    rng = np.random.default_rng(21)
    n = 7
    z = [float(v) for v in rng.permutation(n) * 1.5 - 20.0]
    positions = [(-100.0, -120.0, v) for v in z]
    frames = rng.integers(-1000, 2000, size=(n, 6, 5)).astype(np.int16)
    fac.enhanced_ct(tmp_path / "enhanced", positions=positions, frames=frames)

    (stack,) = scan_stacks(tmp_path)

    order = _expected_order(positions, fac.AXIAL)
    assert stack.kind == "volume"
    assert [s.frame.index for s in stack.slices] == order
    assert [s.position for s in stack.slices] == [pytest.approx(positions[i]) for i in order]
    assert stack.slice_spacing == pytest.approx(1.5)
    assert (stack.rows, stack.columns) == (6, 5)
    assert stack.warnings == []


def test_legacy_multiframe_without_positions_is_a_frames_stack(tmp_path, scan_stacks):
    rng = np.random.default_rng(4)
    frames = rng.integers(0, 255, size=(6, 5, 7)).astype(np.uint8)
    path = fac.legacy_multiframe(tmp_path / "cine", frames=frames)

    (stack,) = scan_stacks(tmp_path)

    assert stack.kind == "frames"
    assert stack.n_slices == 6
    assert [s.frame.index for s in stack.slices] == list(range(6))
    assert {os.path.realpath(s.instance.path) for s in stack.slices} == {os.path.realpath(path)}
    assert stack.locations is None


def test_two_cine_loops_in_one_series_are_two_stacks(tmp_path, scan_stacks):
    ids = fac.SeriesIds()
    rng = np.random.default_rng(4)
    a = fac.legacy_multiframe(tmp_path / "a", ids, frames=rng.integers(0, 255, (4, 5, 7)).astype(np.uint8),
                              instance_number=2)
    b = fac.legacy_multiframe(tmp_path / "b", ids, frames=rng.integers(0, 255, (3, 5, 7)).astype(np.uint8),
                              instance_number=1)
    stacks = scan_stacks(tmp_path)
    assert [s.n_slices for s in stacks] == [3, 4]  # ordered by InstanceNumber
    assert [os.path.realpath(s.slices[0].instance.path) for s in stacks] == _real([b, a])


def test_single_image(tmp_path, scan_stacks):
    fac.write_series(tmp_path, [(0.0, 0.0, 0.0)])
    (stack,) = scan_stacks(tmp_path)
    assert stack.kind == "single"
    assert stack.n_slices == 1


# ----------------------------------------------------------------------------------------------------------------
# Real data
# ----------------------------------------------------------------------------------------------------------------


def test_ge_head_tilt_and_uneven_spacing(ge_index, ge_reference):
    (series,) = [s for _, _, s in ge_index.iter_series() if s.image_instances]
    (stack,) = build_stacks(series)
    assert stack.n_slices == 28
    assert _stack_paths(stack) == _real([p for p, _ in ge_reference])

    iop = [float(v) for v in ge_reference[0][1].ImageOrientationPatient]
    pos = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in ge_reference])
    n = _normal(iop)
    step = pos[-1] - pos[0]
    angle = math.degrees(math.acos(abs(step @ n) / np.linalg.norm(step)))
    assert angle == pytest.approx(18.5, abs=0.05)  # the data set's documented tilt
    assert stack.tilt_deg == pytest.approx(angle, abs=1e-6)
    assert any("tilt" in w.lower() and f"{angle:.1f}" in w for w in stack.warnings)

    steps = np.diff(pos @ n)
    assert steps.min() == pytest.approx(1.08, abs=0.01) and steps.max() == pytest.approx(7.0, abs=0.01)
    assert stack.spacing_range == pytest.approx((steps.min(), steps.max()))
    uneven = [w for w in stack.warnings if "uneven" in w.lower()]
    assert len(uneven) == 1
    assert f"{steps.min():.2f}" in uneven[0] and f"{steps.max():.2f}" in uneven[0]


def test_philips_phantom_is_one_even_stack(philips_index, philips_reference):
    (series,) = [s for _, _, s in philips_index.iter_series() if s.image_instances]
    stacks = build_stacks(series)
    assert len(stacks) == 1
    (stack,) = stacks
    assert stack.n_slices == 140
    assert _stack_paths(stack) == _real([p for p, _ in philips_reference])
    iop = [float(v) for v in philips_reference[0][1].ImageOrientationPatient]
    pos = np.array([[float(v) for v in ds.ImagePositionPatient] for _, ds in philips_reference])
    steps = np.diff(pos @ _normal(iop))
    assert float(np.median(steps)) == pytest.approx(1.0, abs=1e-3)
    assert stack.slice_spacing == pytest.approx(float(np.median(steps)), abs=1e-6)
    assert stack.warnings == []
    assert stack.tilt_deg == pytest.approx(0.0, abs=0.1)


# ---------------------------------------------------------------------------------------------- one bad file
@pytest.mark.parametrize("iop", [[0, 0, 0, 0, 0, 0], ["nan", 0, 0, 0, 1, 0], [1, 0, 0, 1, 0, 0]])
def test_a_degenerate_orientation_sets_one_file_apart_and_the_series_loads(ge_dir, tmp_path, iop):
    import shutil
    import warnings

    from medviewer.imaging.volume import load_volume

    files = sorted(p for p in ge_dir.iterdir() if p.suffix == ".dcm")
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    ds = pydicom.dcmread(tmp_path / files[5].name)
    ds.ImageOrientationPatient = iop
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(tmp_path / files[5].name)
    [(_, _, series)] = list(scan(str(tmp_path)).iter_series())
    stacks = build_stacks(series)
    big = max(stacks, key=lambda s: s.n_slices)
    assert big.kind == "volume" and big.n_slices == len(files) - 1
    apart = [s for s in stacks if s is not big]
    assert len(apart) == 1 and apart[0].n_slices == 1
    assert any("ImageOrientationPatient" in w and "set apart" in w for w in apart[0].warnings)
    assert load_volume(big).array.shape[0] == len(files) - 1


def test_non_finite_rescale_is_set_apart_with_its_reason(ge_dir, tmp_path):
    import shutil
    import warnings

    files = sorted(p for p in ge_dir.iterdir() if p.suffix == ".dcm")
    for f in files:
        shutil.copy(f, tmp_path / f.name)
    ds = pydicom.dcmread(tmp_path / files[3].name)
    ds.RescaleSlope = "inf"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(tmp_path / files[3].name)
    index = scan(str(tmp_path))
    assert [s.reason for s in index.skipped] == ["RescaleSlope inf is not a finite number: the pixel values cannot "
                                                 "be computed"]
    [(_, _, series)] = list(index.iter_series())
    assert max(s.n_slices for s in build_stacks(series)) == len(files) - 1


def test_primary_first_puts_the_largest_volume_of_each_series_in_front():
    from types import SimpleNamespace

    from medviewer.imaging.stacks import primary_first

    def st(series: str, kind: str, n: int):  # noqa: ANN202
        return SimpleNamespace(series_instance_uid=series, kind=kind, n_slices=n)

    loc, vol, other, cr = st("a", "single", 1), st("a", "volume", 140), st("a", "volume", 3), st("b", "frames", 1)
    assert primary_first([loc, other, vol, cr]) == [vol, loc, other, cr]
    assert primary_first([cr]) == [cr]
