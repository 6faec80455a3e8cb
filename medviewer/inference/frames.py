"""One frame path: (file, frame) or (volume, slice) -> the image a model scores, for every caller.

The viewer (from its loaded :class:`~medviewer.imaging.volume.Volume`), ``medviewer score``, report export and
re-score (from a file path, through :func:`read_frame`) all get their model input from :func:`frame_from_volume`,
so one image has one probability wherever it is scored. :func:`read_frame` loads the file with the viewer's own
loader (:func:`medviewer.io.scan.scan` -> :func:`medviewer.imaging.stacks.build_stacks` ->
:func:`medviewer.imaging.volume.load_volume`), which applies, per frame:

1. the Modality LUT: RescaleSlope/Intercept (per-frame Pixel Value Transformation in enhanced objects,
   PS3.3 C.7.6.16.2.9) or the Modality LUT Sequence (PS3.3 C.11.1);
2. nothing else: the VOI and MONOCHROME1 steps stay with the model's preprocessing
   (:func:`medviewer.inference.preprocess.prepare`), which receives the choice made here:

* VOI (PS3.3 C.11.2): the object's first window (WindowCenter/WindowWidth with VOILUTFunction), else its first
  VOI LUT Sequence table, else none (the model's percentile scaling);
* MONOCHROME1 (PS3.3 C.7.6.3.1.2): inverted after VOI.

No Qt and no torch here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

__all__ = ["ModelFrame", "FrameReadError", "frame_from_volume", "read_frame"]


class FrameReadError(ValueError):
    """The file holds no image frame that can be scored (not DICOM, no pixels, frame out of range, decode failed)."""


@dataclass(frozen=True)
class ModelFrame:
    """One frame ready for a model's preprocessing.

    Attributes
    ----------
    values: (rows, cols) modality values (after the Modality LUT; the volume's dtype, int16/int32/float32), or
        (rows, cols, 3) RGB.
    window: (center, width, VOILUTFunction) of the object's first window, or None.
    voi_lut: (LUTDescriptor, LUTData) of the first VOI LUT Sequence item when the object has no window, or None.
    monochrome1: PhotometricInterpretation is MONOCHROME1 (invert after VOI).
    sop_instance_uid, path, frame: where the pixels came from (frame 0-based).
    number_of_frames, samples_per_pixel, modality, photometric_interpretation: header facts the intended-use gate
        checks.
    pixel_spacing, spacing_note: (row, column) mm of this frame and what they measure (see
        :func:`medviewer.io.scan.projection_spacing`); units: of ``values`` ("HU" for CT, else "").
    padding: modality values that are pixel padding (``Volume.padding``), or None. us_regions: calibrated
        ultrasound regions (``Instance.us_regions``).
    """

    values: np.ndarray
    window: tuple[float, float, str] | None
    voi_lut: tuple[tuple[int, int, int], np.ndarray] | None
    monochrome1: bool
    sop_instance_uid: str
    path: str
    frame: int
    number_of_frames: int = 1
    samples_per_pixel: int = 1
    modality: str = ""
    photometric_interpretation: str = ""
    pixel_spacing: tuple[float, float] | None = None
    spacing_note: str = ""
    units: str = ""
    padding: tuple[float, float] | None = None
    us_regions: tuple = ()


def frame_from_volume(volume, k: int) -> ModelFrame:  # noqa: ANN001 - medviewer.imaging.volume.Volume
    """Slice ``k`` of a loaded volume as a :class:`ModelFrame` (the viewer's and every other caller's path).

    Raises
    ------
    IndexError: ``k`` outside the volume.
    """
    if not 0 <= k < volume.array.shape[0]:
        raise IndexError(f"slice {k} outside the volume's {volume.array.shape[0]} slices")
    ref = volume.stack.slices[k]
    inst = ref.instance
    window = None
    voi_lut = None
    frame_info = ref.frame
    if frame_info.window_center and frame_info.window_width and frame_info.window_width[0] > 0:
        window = (float(frame_info.window_center[0]), float(frame_info.window_width[0]),
                  inst.voi_lut_function or volume.voi_lut_function or "LINEAR")
    elif volume.window_presets:
        c, w, _ = volume.window_presets[0]
        window = (float(c), float(w), volume.voi_lut_function or "LINEAR")
    elif volume.voi_luts:
        desc, data, _ = volume.voi_luts[0]
        voi_lut = ((int(desc[0]), int(desc[1]), int(desc[2])), np.asarray(data))
    values = np.asarray(volume.array[k])  # a view: the GUI thread copies nothing (preprocessing casts)
    photometric = (inst.photometric_interpretation or volume.photometric_interpretation or "").upper()
    return ModelFrame(values=values, window=window, voi_lut=voi_lut, monochrome1=photometric == "MONOCHROME1",
                      sop_instance_uid=inst.sop_instance_uid, path=inst.path, frame=int(ref.frame.index),
                      number_of_frames=int(inst.number_of_frames or 1),
                      samples_per_pixel=int(inst.samples_per_pixel or 1), modality=inst.modality or "",
                      photometric_interpretation=photometric,
                      pixel_spacing=tuple(frame_info.pixel_spacing) if frame_info.pixel_spacing else None,
                      spacing_note=frame_info.spacing_note, units=volume.units, padding=volume.padding,
                      us_regions=tuple(inst.us_regions))


def read_frame(path: str | os.PathLike, frame: int = 0) -> ModelFrame:
    """Frame ``frame`` (0-based) of the DICOM file at ``path``, loaded exactly as the viewer loads it.

    Raises
    ------
    FrameReadError: not a readable DICOM image, ``frame`` out of range, or its pixels could not be decoded (the
        message names the file and the reason).
    """
    from medviewer.imaging.stacks import build_stacks
    from medviewer.imaging.volume import load_volume
    from medviewer.io.pixels import PixelDecodeError
    from medviewer.io.scan import scan

    path = os.fspath(path)
    index = scan([path])
    if index.skipped:
        raise FrameReadError(f"{os.path.basename(path)}: {index.skipped[0].reason}")
    for _patient, _study, series in index.iter_series():
        for stack in build_stacks(series):
            for k, ref in enumerate(stack.slices):
                if ref.instance.path != path and os.path.abspath(ref.instance.path) != os.path.abspath(path):
                    continue
                if ref.frame.index != frame:
                    continue
                # Every frame of this file in one volume, decoded once: the next frames of a multi-frame file
                # (``score`` walks them in order) come from the cache instead of decoding the file again.
                mine = [j for j, r in enumerate(stack.slices) if r.instance is ref.instance]
                key = _cache_key(path)
                cached = _LAST_FILE.get("entry")
                frames = tuple(stack.slices[j].frame.index for j in mine)
                if cached is not None and cached[0] == key and cached[1] == frames:
                    volume = cached[2]
                else:
                    try:
                        volume = load_volume(_slices_stack(stack, mine), workers=1)
                    except PixelDecodeError as exc:
                        # remembered too: the other frames of a file that cannot be decoded fail at once
                        volume = FrameReadError(f"{os.path.basename(path)}: {_short(exc.reason)}")
                    _LAST_FILE["entry"] = (key, frames, volume)
                if isinstance(volume, FrameReadError):
                    raise volume
                pos = mine.index(k)
                gap = next((e for e in volume.slice_errors if e.index == pos), None)
                if gap is not None:
                    raise FrameReadError(f"{os.path.basename(path)}: {_short(gap.reason)}")
                return frame_from_volume(volume, pos)
    raise FrameReadError(f"{os.path.basename(path)}: no image frame {frame + 1} in this file")


def _short(text: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters (a decoder's message may quote whole byte strings)."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


#: The last file read by :func:`read_frame`: {"entry": ((path, mtime_ns, size), frame indices, Volume)}.
_LAST_FILE: dict = {}


def _cache_key(path: str) -> tuple:
    try:
        st = os.stat(path)
        return (os.path.abspath(path), st.st_mtime_ns, st.st_size)
    except OSError:
        return (os.path.abspath(path), None, None)


def _slices_stack(stack, indices: list[int]):  # noqa: ANN001, ANN202 - Stack
    """A copy of ``stack`` holding only the slices ``indices`` (the frames of one file: a multi-file stack is not
    decoded whole)."""
    import dataclasses

    return dataclasses.replace(stack, slices=[stack.slices[j] for j in indices])
