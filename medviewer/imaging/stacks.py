"""Split a series into image stacks and order their slices.

Rules (see ``../shared/DESIGN.md``, "Radiology conventions"):

* a SeriesInstanceUID is split when plane orientation, image size (Rows/Columns), PixelSpacing, colour model or
  the enhanced StackID differ, or when slice positions repeat (echoes, cardiac phases, time points, repeated
  acquisitions). AcquisitionNumber alone never splits a series (CT scanners number each rotation);
* slices are sorted by the projection of ImagePositionPatient on the slice normal (ascending);
* uneven spacing, gaps and gantry tilt become warnings that name the slices and positions involved.

Objects without a spatial position (radiographs, ultrasound cine, secondary captures) form ``frames`` stacks ordered
by InstanceNumber and frame number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from medviewer.imaging.geometry import (
    POSITION_TOLERANCE_MM,
    TILT_TOLERANCE_DEG,
    analyse_spacing,
    format_position,
    orientation_key,
    slice_normal,
    tilt_angle_deg,
)
from medviewer.io.model import FrameInfo, Instance, Series

__all__ = ["SliceRef", "Stack", "build_stacks"]


@dataclass(frozen=True, slots=True)
class SliceRef:
    """One 2D image of a stack: frame ``frame.index`` of ``instance``."""

    instance: Instance
    frame: FrameInfo

    @property
    def position(self) -> tuple[float, float, float] | None:
        """ImagePositionPatient (x, y, z) mm, LPS, or None."""
        return self.frame.image_position_patient

    @property
    def orientation(self) -> tuple[float, ...] | None:
        """ImageOrientationPatient (6 direction cosines) or None."""
        return self.frame.image_orientation_patient


@dataclass
class Stack:
    """An ordered set of same-sized, same-orientation images of one series.

    Attributes
    ----------
    series_instance_uid: the series it comes from.
    label: what distinguishes it from its siblings ("" when the series is one stack), e.g. "EchoNumbers 2".
    kind: "volume" (spatially sorted slices with geometry), "frames" (no spatial order: cine, radiographs) or
        "single" (one image).
    slices: the slices in display order.
    warnings: human-readable warnings (uneven spacing, gaps, tilt, missing geometry) naming slices and positions.
    locations: (n,) float64 projections on the normal, mm (volume stacks only, else None).
    slice_spacing: nominal (median) step along the normal, mm (volume stacks with >= 2 slices, else None).
    tilt_deg: angle between the slice step and the normal, degrees (0 when not tilted).
    """

    series_instance_uid: str
    label: str
    kind: str
    slices: list[SliceRef]
    warnings: list[str] = field(default_factory=list)
    locations: np.ndarray | None = None
    slice_spacing: float | None = None
    spacing_range: tuple[float, float] | None = None
    tilt_deg: float = 0.0

    @property
    def n_slices(self) -> int:
        return len(self.slices)

    @property
    def rows(self) -> int:
        return self.slices[0].instance.rows

    @property
    def columns(self) -> int:
        return self.slices[0].instance.columns

    @property
    def pixel_spacing(self) -> tuple[float, float] | None:
        """(row spacing, column spacing) in mm, or None when the images carry no spacing."""
        return self.slices[0].frame.pixel_spacing

    @property
    def spacing_note(self) -> str:
        """What :attr:`pixel_spacing` measures on a projection radiograph ("" as written, "at the detector",
        "estimated at the patient (ERMF ...)", "calibrated (...)"); see :func:`medviewer.io.scan.projection_spacing`."""
        return self.slices[0].frame.spacing_note

    @property
    def orientation(self) -> tuple[float, ...] | None:
        return self.slices[0].orientation

    @property
    def instances(self) -> list[Instance]:
        """Distinct instances in slice order."""
        seen: dict[str, Instance] = {}
        for s in self.slices:
            seen.setdefault(s.instance.sop_instance_uid, s.instance)
        return list(seen.values())

    @property
    def is_color(self) -> bool:
        inst = self.slices[0].instance
        return inst.samples_per_pixel == 3 or inst.photometric_interpretation == "PALETTE COLOR"

    @property
    def spacing(self) -> tuple[float, float, float] | None:
        """(slice, row, column) spacing in mm in the array's (z, y, x) order; slice spacing 0 when unknown."""
        ps = self.pixel_spacing
        if ps is None:
            return None
        return (float(self.slice_spacing or 0.0), float(ps[0]), float(ps[1]))


def _is_color(inst: Instance) -> bool:
    return inst.samples_per_pixel == 3 or inst.photometric_interpretation == "PALETTE COLOR"


def _group_key(ref: SliceRef) -> tuple:
    inst = ref.instance
    spacing = tuple(round(v, 4) for v in ref.frame.pixel_spacing) if ref.frame.pixel_spacing else None
    has_geometry = ref.position is not None and ref.orientation is not None
    return (
        inst.rows,
        inst.columns,
        _is_color(inst),
        orientation_key(ref.orientation) if has_geometry else None,
        spacing,
        ref.frame.stack_id,
        # Legacy multi-frame objects without per-frame geometry (cine loops) are one stack each.
        inst.sop_instance_uid if (inst.number_of_frames > 1 and not inst.is_enhanced) else None,
    )


# Attributes that can tell apart images acquired at the same position, tried in this order.
_DISCRIMINATORS: list[tuple[str, Callable[[SliceRef], object]]] = [
    ("TemporalPositionIndex", lambda r: r.frame.temporal_position),
    ("EchoNumbers", lambda r: r.instance.echo_numbers),
    ("TemporalPositionIdentifier", lambda r: r.instance.temporal_position_identifier),
    ("TriggerTime", lambda r: r.instance.trigger_time),
    ("AcquisitionNumber", lambda r: r.instance.acquisition_number),
    ("ImageType", lambda r: "\\".join(r.instance.image_type) or None),
]


def _instance_order(ref: SliceRef) -> tuple:
    n = ref.instance.instance_number
    return (n is None, n if n is not None else 0, ref.instance.path, ref.frame.index)


def build_stacks(series: Series) -> list[Stack]:
    """Split ``series`` into ordered :class:`Stack` objects (image instances only).

    Returns stacks ordered by their first slice's InstanceNumber. Never raises on odd geometry: what cannot be
    ordered spatially becomes a ``frames`` stack with a warning.
    """
    refs = [SliceRef(inst, fr) for inst in series.image_instances for fr in inst.frames]
    groups: dict[tuple, list[SliceRef]] = defaultdict(list)
    for ref in refs:
        groups[_group_key(ref)].append(ref)

    stacks: list[Stack] = []
    multiple_groups = len(groups) > 1
    for key, members in groups.items():
        try:
            label = _group_label(key, members) if multiple_groups else ""
            if key[3] is None:
                stacks.append(_frames_stack(series, label, members))
            else:
                stacks.extend(_spatial_stacks(series, label, members))
        except (ValueError, ArithmeticError) as exc:  # geometry the scan let through but maths cannot use
            st = _frames_stack(series, "", members)
            st.warnings.append(f"geometry unusable ({exc}): shown in file order")
            stacks.append(st)
    stacks.sort(key=lambda s: _instance_order(min(s.slices, key=_instance_order)))
    # Labels must tell sibling stacks apart: number the ones that would otherwise read the same.
    counts: dict[str, int] = defaultdict(int)
    for s in stacks:
        counts[s.label] += 1
    seen: dict[str, int] = defaultdict(int)
    for s in stacks:
        if counts[s.label] > 1:
            seen[s.label] += 1
            s.label = f"{s.label} #{seen[s.label]}".strip()
    for s in stacks:
        read_warned = [sl.instance for sl in s.slices if sl.instance.read_warnings]
        if read_warned:
            first = read_warned[0]
            s.warnings.append(f"{len({i.path for i in read_warned})} file(s) read with pydicom warnings, e.g. "
                              f"{first.path.rsplit('/', 1)[-1]}: {first.read_warnings[0]}")
    return stacks


def primary_first(stacks: list[Stack]) -> list[Stack]:
    """``stacks`` of one or more series with, per series, the stack a viewer should open first in front of its
    siblings: the largest spatial ("volume") stack, else the largest stack (a stray localiser or a single image
    that sorts first by InstanceNumber is not what a reader wants to see). The other stacks keep their order."""
    by_series: dict[str, list[Stack]] = {}
    for st in stacks:
        by_series.setdefault(st.series_instance_uid, []).append(st)
    out: list[Stack] = []
    for group in by_series.values():
        best = max(group, key=lambda st: (st.kind == "volume", st.n_slices))
        out += [best] + [st for st in group if st is not best]
    return out


def _group_label(key: tuple, members: list[SliceRef]) -> str:
    rows, cols, color, orient, spacing, stack_id, cine_uid = key
    parts = []
    if orient is not None:
        parts.append(_plane_name(orient))
    parts.append(f"{cols}x{rows}")
    if stack_id:
        parts.append(f"StackID {stack_id}")
    if cine_uid:
        n = members[0].instance.instance_number
        parts.append(f"instance {n}" if n is not None else "multi-frame")
    return " ".join(parts)


def _plane_name(orient: tuple[float, ...]) -> str:
    n = slice_normal(orient)
    axis = int(np.argmax(np.abs(n)))
    oblique = abs(n[axis]) < 0.95
    name = ("sagittal", "coronal", "axial")[axis]
    return f"oblique {name}" if oblique else name


def _frames_stack(series: Series, label: str, members: list[SliceRef]) -> Stack:
    members = sorted(members, key=_instance_order)
    kind = "single" if len(members) == 1 else "frames"
    warnings = []
    if any(m.position is not None for m in members) and any(m.position is None for m in members):
        warnings.append("some images lack ImagePositionPatient/ImageOrientationPatient: ordered by InstanceNumber")
    return Stack(series.series_instance_uid, label, kind, members, warnings)


def _cluster_locations(loc: np.ndarray, order: np.ndarray) -> list[list[int]]:
    """Group indices (in ``order``, sorted by location) whose locations are within POSITION_TOLERANCE_MM."""
    clusters: list[list[int]] = []
    last = None
    for i in order:
        if last is None or loc[i] - last > POSITION_TOLERANCE_MM:
            clusters.append([int(i)])
            last = loc[i]
        else:
            clusters[-1].append(int(i))
    return clusters


def _spatial_stacks(series: Series, label: str, members: list[SliceRef],
                    used: frozenset[str] = frozenset()) -> list[Stack]:
    normal = slice_normal(members[0].orientation)  # type: ignore[arg-type]
    positions = np.array([m.position for m in members], dtype=np.float64)
    loc = positions @ normal
    order = np.argsort(loc, kind="stable")
    clusters = _cluster_locations(loc, order)
    if all(len(c) == 1 for c in clusters):
        return [_make_volume_stack(series, label, [members[i] for i in order], normal)]

    # Positions repeat: find an attribute that separates the images at each position.
    for name, getter in _DISCRIMINATORS:
        if name in used:
            continue
        values = [getter(m) for m in members]
        if any(v is None for v in values) or len(set(values)) < 2:
            continue
        # It must take several values at some repeated position (else it does not explain the repeats), and no
        # more values than images at one position (else it cuts each pass into pieces, e.g. a CT scanner that
        # numbers each rotation with its own AcquisitionNumber).
        if (any(len({values[i] for i in c}) > 1 for c in clusters if len(c) > 1)
                and len(set(values)) <= max(len(c) for c in clusters)):
            by_value: dict[object, list[SliceRef]] = defaultdict(list)
            for i in order:
                by_value[values[i]].append(members[i])
            out = []
            for value in sorted(by_value, key=lambda v: (str(type(v)), v)):
                sub_label = " ".join(p for p in (label, f"{name} {value}") if p)
                out.extend(_spatial_stacks(series, sub_label, by_value[value], used | {name}))
            return out
    # Nothing separates them: n-th occurrence at each position (in InstanceNumber order) goes to stack n.
    buckets: dict[int, list[SliceRef]] = defaultdict(list)
    for c in clusters:
        for k, i in enumerate(sorted(c, key=lambda j: _instance_order(members[j]))):
            buckets[k].append(members[i])
    out = []
    for k in sorted(buckets):
        sub_label = " ".join(p for p in (label, f"repeat {k + 1}") if p)
        stacks = [_make_volume_stack(series, sub_label, buckets[k], normal)]
        for s in stacks:
            s.warnings.append("slice positions repeat with no EchoNumbers/TemporalPositionIdentifier/TriggerTime/"
                              "AcquisitionNumber to tell them apart: split by InstanceNumber order")
        out.extend(stacks)
    return out


def _make_volume_stack(series: Series, label: str, ordered: list[SliceRef], normal: np.ndarray) -> Stack:
    positions = np.array([m.position for m in ordered], dtype=np.float64)
    loc = positions @ normal
    kind = "single" if len(ordered) == 1 else "volume"
    stack = Stack(series.series_instance_uid, label, kind, ordered, locations=loc)
    if len(ordered) < 2:
        return stack
    report = analyse_spacing(loc)
    stack.slice_spacing = report.nominal
    stack.spacing_range = (report.min, report.max)
    if report.uneven:
        runs = "; ".join(
            f"{r.spacing:.2f} mm between slices {r.first + 1}-{r.last + 2} "
            f"{format_position(positions[r.first])}..{format_position(positions[r.last + 1])}"
            for r in report.runs
        )
        stack.warnings.append(
            f"uneven slice spacing: {report.min:.2f} to {report.max:.2f} mm (nominal {report.nominal:.2f} mm): "
            f"{runs}")
    for i in report.gaps:
        step = report.steps[i]
        neighbours = np.concatenate([report.steps[max(0, i - 2):i], report.steps[i + 1:i + 3]])
        local = float(np.median(neighbours))
        missing = max(1, int(round(step / local)) - 1)
        stack.warnings.append(
            f"gap: {step:.2f} mm between slice {i + 1} {format_position(positions[i])} and slice {i + 2} "
            f"{format_position(positions[i + 1])} where neighbours are {local:.2f} mm apart "
            f"(about {missing} slice{'s' if missing > 1 else ''} missing)")
    tilt = tilt_angle_deg(positions, normal)
    stack.tilt_deg = tilt
    if tilt > TILT_TOLERANCE_DEG:
        header_tilt = ordered[0].instance.gantry_detector_tilt
        header = f" (GantryDetectorTilt {header_tilt:+.1f})" if header_tilt is not None else ""
        stack.warnings.append(
            f"gantry tilt: slices step {tilt:.1f} degrees off the slice normal{header}; the stack is sheared, "
            f"geometry is kept per slice (first {format_position(positions[0])}, "
            f"last {format_position(positions[-1])})")
    return stack
