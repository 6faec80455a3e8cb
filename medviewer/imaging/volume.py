"""``Volume``: a stack's pixels as one array with its geometry in LPS millimetres, and loading it fast.

Array layout and geometry follow highdicom's ``Volume``: the array is indexed (z, y, x) = (slice, row, column);
``spacing`` and the columns of ``direction`` are in that same axis order; ``affine`` maps a homogeneous index
(k, i, j, 1) to LPS (x, y, z, 1) in mm.

Values are the output of the Modality LUT (PS3.3 C.11.1): Hounsfield units for CT, real-world values otherwise,
applied per slice/frame with that slice's RescaleSlope/RescaleIntercept (or its Modality LUT Sequence). Integral
rescales that fit stay int16 (like SimpleITK/GDCM); anything else becomes float32. No float64 copy of the volume
is ever made: the output is allocated once and each decoded slice is written into it.
"""

from __future__ import annotations

import math
import os
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from medviewer.imaging.lut import apply_modality_lut_sequence, lut_table, modality_lut_output_range
from medviewer.imaging.stacks import SliceRef, Stack
from medviewer.io.pixels import PixelDecodeError, can_decode_native_fast, decode_instance, decode_native
from medviewer.jobs import ProgressCallback, TaskState, as_task_state

__all__ = ["Volume", "load_volume", "SliceError"]


@dataclass(frozen=True)
class SliceError:
    """A slice that could not be decoded; the volume holds ``fill_value`` there."""

    index: int
    path: str
    reason: str


@dataclass
class Volume:
    """Pixel array plus geometry of one :class:`~medviewer.imaging.stacks.Stack`.

    Attributes
    ----------
    array: (z, y, x) int16/int32/float32 modality values (HU for CT), or (z, y, x, 3) uint8/uint16 RGB for colour.
    positions: (z, 3) float64, ImagePositionPatient of every slice, LPS mm (NaN rows when the stack has no
        geometry). Exact per slice, including uneven spacing and gantry tilt.
    origin: (3,) float64, position of voxel (0, 0, 0), LPS mm.
    spacing: (3,) float64, (slice, row, column) spacing in mm: slice spacing is the nominal step along the normal.
    direction: (3, 3) float64; column 0 the slice normal, column 1 the column direction (down the rows, i.e.
        ImageOrientationPatient[3:]), column 2 the row direction (ImageOrientationPatient[:3]).
    affine: (4, 4) float64 mapping (k, i, j, 1) to LPS mm. Its slice column is the mean step between slices, so
        a gantry-tilted stack gets a sheared affine that still hits every slice position when spacing is even.
    modality, photometric_interpretation, units: copied from the series ("HU" for CT).
    window_presets: [(center, width, explanation)] from WindowCenter/WindowWidth of the first slice.
    voi_lut_function: VOILUTFunction of the first slice ("LINEAR" when absent).
    padding: (lowest, highest) modality value of the pixel padding (PixelPaddingValue / PixelPaddingRangeLimit,
        PS3.3 C.7.5.1.1.2, through the first slice's linear Modality LUT), or None: those pixels are not image
        and are kept out of ROI statistics, the value readout and automatic windows.
    voi_luts: VOI LUT Sequence items of the first slice (PS3.3 C.11.2.1.1) as (LUTDescriptor, LUTData as a
        uint16/int array, LUTExplanation); used when the object offers a table instead of (or besides) windows.
    slice_errors: slices that failed to decode (filled with ``fill_value``).
    stack: the stack the volume came from (instances and per-slice headers).
    ready: (z,) bool, True for slices already decoded (all True once :func:`load_volume` returned).
    """

    array: np.ndarray
    positions: np.ndarray
    origin: np.ndarray
    spacing: np.ndarray
    direction: np.ndarray
    affine: np.ndarray
    modality: str = ""
    photometric_interpretation: str = ""
    units: str = ""
    window_presets: list[tuple[float, float, str]] = field(default_factory=list)
    voi_lut_function: str = "LINEAR"
    voi_luts: list[tuple[tuple[int, int, int], np.ndarray, str]] = field(default_factory=list)
    padding: tuple[float, float] | None = None  # modality values that are padding (PixelPaddingValue), inclusive
    slice_errors: list[SliceError] = field(default_factory=list)
    fill_value: float = 0.0
    warnings: list[str] = field(default_factory=list)
    stack: Stack | None = None
    ready: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    @property
    def is_color(self) -> bool:
        return self.array.ndim == 4

    @property
    def nbytes(self) -> int:
        return int(self.array.nbytes)

    def index_to_lps(self, k: int, i: float, j: float) -> np.ndarray:
        """LPS position (3,) mm of slice ``k``, row ``i``, column ``j``, using that slice's own position (exact
        for uneven spacing and tilt)."""
        p0 = self.positions[int(k)]
        return p0 + i * self.spacing[1] * self.direction[:, 1] + j * self.spacing[2] * self.direction[:, 2]


def _geometry(stack: Stack) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = stack.n_slices
    orient = stack.orientation
    ps = stack.pixel_spacing or (1.0, 1.0)
    if orient is not None and all(s.position is not None for s in stack.slices):
        o = np.asarray(orient, dtype=np.float64)
        row_dir, col_dir = o[:3], o[3:]
        normal = np.cross(row_dir, col_dir)
        normal /= np.linalg.norm(normal)
        positions = np.array([s.position for s in stack.slices], dtype=np.float64)
        step = (positions[-1] - positions[0]) / (n - 1) if n > 1 else normal * float(
            stack.slices[0].frame.slice_thickness or 1.0)
        slice_spacing = float(stack.slice_spacing) if stack.slice_spacing else float(abs(step @ normal)) or 1.0
    else:
        row_dir, col_dir, normal = np.array([1.0, 0, 0]), np.array([0, 1.0, 0]), np.array([0, 0, 1.0])
        positions = np.full((n, 3), np.nan)
        step = normal.copy()
        slice_spacing = 1.0
    direction = np.column_stack([normal, col_dir, row_dir])
    spacing = np.array([slice_spacing, float(ps[0]), float(ps[1])])
    origin = positions[0].copy() if not np.isnan(positions[0]).any() else np.zeros(3)
    affine = np.eye(4)
    affine[:3, 0] = step
    affine[:3, 1] = col_dir * spacing[1]
    affine[:3, 2] = row_dir * spacing[2]
    affine[:3, 3] = origin
    return positions, origin, spacing, direction, affine


def _padding_range(ref: SliceRef) -> tuple[float, float] | None:
    """The instance's pixel padding (stored values) in modality values, through its linear Modality LUT (a
    Modality LUT Sequence maps padding to arbitrary values: not converted, None)."""
    pad = ref.instance.pixel_padding
    if pad is None or ref.instance.has_modality_lut_sequence:
        return None
    f = ref.frame
    a, b = (v * f.rescale_slope + f.rescale_intercept for v in pad)
    return (min(a, b), max(a, b))


def _read_voi_luts(path: str) -> list[tuple[tuple[int, int, int], np.ndarray, str]]:
    """VOI LUT Sequence items of one file (header only); [] when unreadable."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        out = []
        for item in ds.get("VOILUTSequence") or []:
            n_entries, first, bits = (int(v) for v in item.LUTDescriptor)  # lut_table checks there are 3
            out.append(((n_entries, first, bits), lut_table(item), str(item.get("LUTExplanation", "") or "VOI LUT")))
        return out
    except Exception:  # noqa: BLE001 - a broken table must not stop the load; windows/auto still work
        return []


def _output_dtype(stack: Stack) -> np.dtype:
    inst = stack.slices[0].instance
    if stack.is_color:
        if inst.bits_allocated <= 8 or inst.photometric_interpretation == "PALETTE COLOR":
            return np.dtype(np.uint8)
        return np.dtype(np.uint32 if inst.bits_allocated > 16 else np.uint16)  # 32-bit RGB must not wrap
    if any(s.instance.has_modality_lut_sequence or s.instance.float_pixel_data for s in stack.slices):
        return np.dtype(np.float32)
    lo, hi = np.inf, -np.inf
    integral = True
    for s in stack.slices:
        f = s.frame
        if float(f.rescale_slope).is_integer() is False or float(f.rescale_intercept).is_integer() is False:
            integral = False
            break
        a, b = modality_lut_output_range(s.instance.bits_stored or s.instance.bits_allocated,
                                         s.instance.pixel_representation == 1, f.rescale_slope, f.rescale_intercept)
        lo, hi = min(lo, a), max(hi, b)
    if integral:
        if lo >= np.iinfo(np.int16).min and hi <= np.iinfo(np.int16).max:
            return np.dtype(np.int16)
        if lo >= np.iinfo(np.int32).min and hi <= np.iinfo(np.int32).max:
            return np.dtype(np.int32)
    return np.dtype(np.float32)


def _write_slice(out: np.ndarray, frame_pixels: np.ndarray, ref: SliceRef, ds, is_color: bool) -> None:
    if is_color:
        out[...] = frame_pixels
        return
    f = ref.frame
    if ref.instance.has_modality_lut_sequence and ds is not None and "ModalityLUTSequence" in ds:
        out[...] = apply_modality_lut_sequence(frame_pixels, ds.ModalityLUTSequence[0])
        return
    slope, intercept = f.rescale_slope, f.rescale_intercept
    if out.dtype.kind == "i":
        if slope == 1 and intercept == 0:
            out[...] = frame_pixels
        else:
            tmp = frame_pixels.astype(np.int32)
            if slope != 1:
                tmp *= int(slope)
            if intercept != 0:
                tmp += int(intercept)
            out[...] = tmp
    else:
        np.multiply(frame_pixels, np.float32(slope), out=out, dtype=np.float32, casting="unsafe")
        if intercept != 0:
            out += np.float32(intercept)


def load_volume(
    stack: Stack,
    *,
    progress: ProgressCallback | None = None,
    cancel: threading.Event | Callable[[], bool] | None = None,
    state: TaskState | None = None,
    workers: int | None = None,
    on_slice: Callable[[int], None] | None = None,
    on_allocated: Callable[[Volume], None] | None = None,
    first_slice: int | None = None,
) -> Volume:
    """Decode every slice of ``stack`` into a :class:`Volume` (files decoded in parallel threads).

    Parameters
    ----------
    stack: from :func:`~medviewer.imaging.stacks.build_stacks`.
    progress: ``progress(done_files, total_files, path)``.
    cancel / state: cooperative cancellation (see :mod:`medviewer.jobs`).
    workers: decoding threads (default: number of CPUs, at most 8). pydicom and the codecs release the GIL in
        their C parts (file reads, numpy copies, JPEG/J2K decoding).
    on_slice: called with the slice index as soon as that slice is written and ``Volume.ready[k]`` is True (lets
        a viewer show a slice before the whole series is decoded). Called from worker threads.
    on_allocated: called once with the :class:`Volume` (geometry, presets, an allocated but not yet filled array,
        ``ready`` all False) before decoding starts. Each slice is written once, then marked ready; readers must
        only read slices whose ``ready`` flag is set until the load returns.
    first_slice: decode the file holding this slice first, then the others by distance from it (default: the
        middle slice, the one a viewer shows first).

    Returns
    -------
    Volume. Files that fail to decode (missing codec, truncated or damaged pixel data) do not stop the load: their
    slices are filled with the lowest value and listed in ``Volume.slice_errors`` and ``Volume.warnings``.

    Raises
    ------
    medviewer.jobs.Cancelled: cancellation was requested.
    PixelDecodeError: every slice failed (nothing to show).
    """
    task = as_task_state(state, progress, cancel)
    n = stack.n_slices
    is_color = stack.is_color
    dtype = _output_dtype(stack)
    shape: tuple[int, ...] = (n, stack.rows, stack.columns) + ((3,) if is_color else ())
    try:
        array = np.empty(shape, dtype=dtype)
    except MemoryError:
        raise PixelDecodeError(stack.slices[0].instance.path, f"not enough memory for a {' x '.join(map(str, shape))}"
                                                              f" {dtype} volume") from None
    positions, origin, spacing, direction, affine = _geometry(stack)

    first = stack.slices[0]
    inst = first.instance
    names = first.frame.window_explanation
    presets = [
        (float(c), float(w), names[i] if i < len(names) and names[i] else f"DICOM window {i + 1}")
        for i, (c, w) in enumerate(zip(first.frame.window_center, first.frame.window_width))
        if math.isfinite(float(c)) and math.isfinite(float(w)) and float(w) > 0
    ]
    voi_luts = _read_voi_luts(inst.path) if inst.has_voi_lut_sequence else []
    ready = np.zeros(n, dtype=bool)
    vol = Volume(
        array=array, positions=positions, origin=origin, spacing=spacing, direction=direction, affine=affine,
        modality=inst.modality, photometric_interpretation=inst.photometric_interpretation,
        units="HU" if inst.modality == "CT" and not is_color else "",
        window_presets=presets, voi_lut_function=inst.voi_lut_function or "LINEAR", voi_luts=voi_luts,
        slice_errors=[], fill_value=0.0, warnings=list(stack.warnings), stack=stack,
        ready=ready, padding=_padding_range(first) if not is_color else None,
    )
    if on_allocated is not None:
        on_allocated(vol)

    # One job per file: multi-frame files are decoded once and their frames scattered to their slices.
    by_path: dict[str, list[tuple[int, SliceRef]]] = defaultdict(list)
    for k, ref in enumerate(stack.slices):
        by_path[ref.instance.path].append((k, ref))
    start = n // 2 if first_slice is None else int(np.clip(first_slice, 0, n - 1))
    jobs = sorted(by_path.items(), key=lambda item: min(abs(k - start) for k, _ in item[1]))
    errors: list[SliceError] = []
    lock = threading.Lock()
    done = [0]

    def run(item: tuple[str, list[tuple[int, SliceRef]]]) -> None:
        path, targets = item
        if task.cancelled:
            return
        try:
            inst = targets[0][1].instance
            if can_decode_native_fast(inst):
                ds, pixels = None, decode_native(inst)
            else:
                ds, pixels = decode_instance(path)
            for k, ref in targets:
                if ref.frame.index >= pixels.shape[0]:
                    raise PixelDecodeError(path, f"frame {ref.frame.index + 1} missing (file has {pixels.shape[0]})")
                if pixels.shape[1:3] != (stack.rows, stack.columns):
                    raise PixelDecodeError(path, f"decoded size {pixels.shape[1:3]} differs from Rows/Columns")
                _write_slice(array[k], pixels[ref.frame.index], ref, ds, is_color)
                ready[k] = True
                if on_slice is not None:
                    on_slice(k)
        except PixelDecodeError as exc:
            with lock:
                errors.extend(SliceError(k, path, exc.reason) for k, _ in targets)
        except Exception as exc:  # noqa: BLE001 - one broken file never stops the series
            with lock:
                errors.extend(SliceError(k, path, f"{type(exc).__name__}: {exc}") for k, _ in targets)
        with lock:
            done[0] += 1
            count = done[0]
        task.progress(count, len(jobs), path)

    n_workers = max(1, min(workers or min(os.cpu_count() or 1, 8), len(jobs)))
    if n_workers == 1:
        for job in jobs:
            run(job)
            task.check()
    else:
        with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="medviewer-decode") as pool:
            for _ in pool.map(run, jobs):
                pass
    task.check()

    fill = 0.0
    if errors:
        if len(errors) == n:
            raise PixelDecodeError(errors[0].path, f"no slice could be decoded: {errors[0].reason}")
        bad = {e.index for e in errors}
        good = [k for k in range(n) if k not in bad]
        fill = float(min(array[k].min() for k in good))
        for k in bad:
            array[k] = fill
            ready[k] = True
    errors.sort(key=lambda e: e.index)
    vol.slice_errors = errors
    vol.fill_value = fill

    for e in errors:
        vol.warnings.append(f"slice {e.index + 1} ({os.path.basename(e.path)}) not shown: {e.reason}")
    return vol
