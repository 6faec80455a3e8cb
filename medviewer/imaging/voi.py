"""VOI LUT and display mapping: modality values -> display grey levels, pure numpy.

Implements DICOM PS3.3 C.11.2 (VOI LUT Module):

* WindowCenter/WindowWidth with VOILUTFunction LINEAR (C.11.2.1.2.1), LINEAR_EXACT (C.11.2.1.3.2) and
  SIGMOID (C.11.2.1.3.1); several window values in one object are offered as presets (C.11.2.1.2);
* the VOI LUT Sequence table (C.11.2.1.1);
* MONOCHROME1 inversion applied after the VOI transform (C.7.6.3.1.2: minimum value displayed white);

plus the usual CT presets (offered on CT only: :func:`presets_for`), the modality's default window
(:func:`default_window_source`), the windows a viewer offers for an image (:func:`window_choices`) and an automatic
window for images that carry none. The order of operations is
Modality LUT (:mod:`medviewer.imaging.lut`) -> VOI -> MONOCHROME1 inversion -> display, as PS3.4 N.2 specifies for
the greyscale pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "Window", "CT_PRESETS", "voi_window", "voi_lut_table", "to_display", "display_safe", "auto_window",
    "windows_from_header", "presets_for", "default_window_source", "WindowChoice", "window_choices",
]

#: Standard CT windows, (center, width) in HU.
CT_PRESETS: dict[str, tuple[float, float]] = {
    "Brain": (40.0, 80.0),
    "Subdural": (75.0, 215.0),
    "Stroke": (40.0, 40.0),
    "Soft tissue": (40.0, 400.0),
    "Mediastinum": (50.0, 350.0),
    "Lung": (-600.0, 1500.0),
    "Bone": (480.0, 2500.0),
    "Liver": (60.0, 160.0),
}

FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

#: Modalities whose default is the automatic window even when the file carries one (MR windows written by the
#: scanner are often unrelated to the stored range after scaling); the file's windows stay offered.
AUTO_DEFAULT_MODALITIES = frozenset({"MR"})


@dataclass(frozen=True)
class Window:
    """A VOI window: ``center`` and ``width`` in modality units (HU for CT), with its VOILUTFunction."""

    center: float
    width: float
    function: str = "LINEAR"
    name: str = ""


def voi_window(values: np.ndarray, center: float, width: float, function: str = "LINEAR",
               y_min: float = 0.0, y_max: float = 1.0) -> np.ndarray:
    """Apply a windowing VOI function (PS3.3 C.11.2.1.2.1 LINEAR, C.11.2.1.3.2 LINEAR_EXACT, C.11.2.1.3.1 SIGMOID).

    Parameters
    ----------
    values: modality values (any shape, any numeric dtype; HU for CT).
    center, width: WindowCenter and WindowWidth. LINEAR needs width >= 1, the others width > 0.
    function: "LINEAR" (default when VOILUTFunction is absent), "LINEAR_EXACT" or "SIGMOID".
    y_min, y_max: output range.

    Returns
    -------
    float32 array, same shape, in [y_min, y_max].

    Raises
    ------
    ValueError: unknown function or invalid width.
    """
    fn = (function or "LINEAR").upper()
    x = np.asarray(values, dtype=np.float32)
    c = np.float32(center)
    w = np.float32(width)
    span = np.float32(y_max - y_min)
    if fn == "LINEAR":
        if width < 1:
            raise ValueError(f"LINEAR window width must be >= 1 (PS3.3 C.11.2.1.2.1), got {width}")
        if width == 1:
            # Degenerate: a threshold at c - 0.5.
            return np.where(x <= c - np.float32(0.5), np.float32(y_min), np.float32(y_max)).astype(np.float32)
        y = (x - (c - np.float32(0.5))) / (w - np.float32(1)) + np.float32(0.5)
        np.clip(y, 0, 1, out=y)
        # Values exactly at the lower bound map to y_min (the standard's <= test); clip already does that.
    elif fn == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"LINEAR_EXACT window width must be > 0 (PS3.3 C.11.2.1.3.2), got {width}")
        y = (x - c) / w + np.float32(0.5)
        np.clip(y, 0, 1, out=y)
    elif fn == "SIGMOID":
        if width <= 0:
            raise ValueError(f"SIGMOID window width must be > 0 (PS3.3 C.11.2.1.3.1), got {width}")
        with np.errstate(over="ignore"):  # exp overflows to inf far below the centre: y -> 0, as it should
            y = np.float32(1) / (np.float32(1) + np.exp(np.float32(-4) * (x - c) / w))
    else:
        raise ValueError(f"unknown VOILUTFunction {function!r}; expected one of {FUNCTIONS}")
    y *= span
    if y_min:
        y += np.float32(y_min)
    return y.astype(np.float32, copy=False)


def voi_lut_table(values: np.ndarray, descriptor: Sequence[int], lut_data: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map values through a VOI LUT Sequence table (PS3.3 C.11.2.1.1), normalised to [0, 1].

    Parameters
    ----------
    values: modality values (integers after the Modality LUT).
    descriptor: LUTDescriptor = (number of entries (0 means 65536), first input value mapped, bits per entry).
    lut_data: LUTData, ``number of entries`` values.

    Returns
    -------
    float32 array of the same shape in [0, 1]: entry / (2**bits - 1). Inputs below the first mapped value take
    the first entry; inputs above the last take the last entry.

    Raises
    ------
    ValueError: descriptor and data disagree.
    """
    if len(descriptor) != 3:
        raise ValueError("LUTDescriptor needs 3 values")
    n_entries = int(descriptor[0]) or 65536
    first = int(descriptor[1])
    bits = int(descriptor[2])
    table = np.asarray(lut_data, dtype=np.float32).ravel()
    if table.size < n_entries:
        raise ValueError(f"LUTData has {table.size} entries, LUTDescriptor says {n_entries}")
    # Some writers declare 16 bits but use fewer; normalise by the declared depth unless data exceed it.
    max_out = max(float((1 << bits) - 1), float(table.max(initial=0)))
    idx = np.clip(np.rint(np.asarray(values, dtype=np.float64)).astype(np.int64) - first, 0, n_entries - 1)
    return (table[idx] / np.float32(max_out)).astype(np.float32)


def to_display(values: np.ndarray, window: Window | None = None, *, invert: bool = False,
               lut: tuple[Sequence[int], Sequence[int]] | None = None) -> np.ndarray:
    """Modality values -> 8-bit display grey levels.

    Parameters
    ----------
    values: (rows, cols) modality values (HU for CT).
    window: the VOI window; ignored when ``lut`` is given. None -> :func:`auto_window`.
    invert: True for MONOCHROME1 (PS3.3 C.7.6.3.1.2), applied after the VOI transform; also used for a user
        "invert" toggle (XOR it with the photometric flag).
    lut: (LUTDescriptor, LUTData) of a VOI LUT Sequence item.

    Returns
    -------
    uint8 array (rows, cols), 0 = black.
    """
    if lut is not None:
        y = voi_lut_table(values, lut[0], lut[1])
    else:
        if window is None:
            window = auto_window(values)
        y = voi_window(values, window.center, window.width, window.function)
    if invert:
        y = np.float32(1) - y
    y *= np.float32(255)
    y += np.float32(0.5)
    return y.astype(np.uint8)


def display_safe(values: np.ndarray, window: Window | None = None, *, invert: bool = False,
                 lut: tuple[Sequence[int], Sequence[int]] | None = None,
                 exclude: tuple[float, float] | None = None) -> tuple[np.ndarray, str]:
    """:func:`to_display` that never raises for a bad window or table: an invalid window (non-finite centre or
    width, a width below the function's minimum, an unknown VOILUTFunction) or a VOI LUT that cannot be applied
    (short or inconsistent table) falls back to :func:`auto_window`, and the reason is returned for the viewer to
    show. ``exclude``: the pixel padding, left out of the automatic window.

    Returns
    -------
    (uint8 (rows, cols), note): note is "" when the requested window or table was used.
    """
    note = ""
    if lut is None and window is not None and not (np.isfinite(window.center) and np.isfinite(window.width)):
        note = f"window C {window.center} W {window.width} is not finite"
    else:
        try:
            return to_display(values, window, invert=invert, lut=lut), ""
        except (ValueError, IndexError, TypeError) as exc:
            note = str(exc).split("\n")[0]
    return (to_display(values, auto_window(values, exclude=exclude), invert=invert),
            f"{note}: automatic window shown")


def auto_window(values: np.ndarray, lower_pct: float = 1.0, upper_pct: float = 99.0,
                max_samples: int = 262144, exclude: tuple[float, float] | None = None) -> Window:
    """A robust window for images without one: the [lower_pct, upper_pct] percentile range of the pixel values.

    Values in ``exclude`` (the pixel padding, ``Volume.padding``, inclusive) are left out; the most frequent value
    is ignored when it is the minimum (undeclared padding or air outside the field of view), so a CT with -2000
    padding still gets a useful window. A sample of at most ``max_samples`` pixels is used.

    Returns
    -------
    Window with function LINEAR_EXACT, width >= 1, name "Auto".
    """
    v = np.asarray(values).ravel()
    if v.size > max_samples:
        v = v[:: int(np.ceil(v.size / max_samples))]
    v = v[np.isfinite(v)] if v.dtype.kind == "f" else v
    if exclude is not None:
        v = v[(v < exclude[0]) | (v > exclude[1])]
    if v.size == 0:
        return Window(0.0, 1.0, "LINEAR_EXACT", "Auto")
    vmin = v.min()
    at_min = np.count_nonzero(v == vmin)
    if at_min > 0.05 * v.size and at_min < v.size:
        v = v[v != vmin]
    lo, hi = np.percentile(v, [lower_pct, upper_pct])
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    width = max(float(hi - lo), 1.0)
    return Window(float(lo) + width / 2.0, width, "LINEAR_EXACT", "Auto")


def windows_from_header(centers: Sequence[float], widths: Sequence[float], function: str = "LINEAR",
                        explanations: Sequence[str] = ()) -> list[Window]:
    """Windows offered by WindowCenter/WindowWidth (several values = several presets, PS3.3 C.11.2.1.2).

    Pairs with a non-positive width are dropped; a single center with several widths (or vice versa) pairs
    element-wise up to the shorter list.
    """
    out = []
    for i, (c, w) in enumerate(zip(centers, widths)):
        if float(w) <= 0:
            continue
        name = explanations[i] if i < len(explanations) and explanations[i] else f"DICOM {i + 1}"
        out.append(Window(float(c), float(w), (function or "LINEAR").upper(), name))
    return out


# ------------------------------------------------------------------------------------------------ per modality
def presets_for(modality: str) -> dict[str, tuple[float, float]]:
    """The fixed presets offered for ``modality``: the CT windows (HU) on CT only; none elsewhere (HU presets
    mean nothing on CR/DX/MR/PT/US values)."""
    return dict(CT_PRESETS) if str(modality or "").strip().upper() == "CT" else {}


def default_window_source(modality: str, has_dicom_window: bool) -> str:
    """Which window an image opens with: ``"dicom"`` (its first WindowCenter/Width, or its VOI LUT table) when it
    has one, ``"auto"`` (:func:`auto_window`, 1st-99th percentile) otherwise; MR always opens with ``"auto"``.
    CT, CR/DX, PT and the rest open with the file's window (CR/DX fall back to the percentile window)."""
    mod = str(modality or "").strip().upper()
    if mod in AUTO_DEFAULT_MODALITIES or not has_dicom_window:
        return "auto"
    return "dicom"


@dataclass(frozen=True)
class WindowChoice:
    """A window a viewer offers for its image.

    ``source``: "preset" (a fixed modality preset) or "dicom" (one of the file's windows; ``lut`` True for a VOI
    LUT Sequence table); ``name``: the preset name or the WindowCenterWidthExplanation / LUTExplanation (or
    "DICOM window n" / "DICOM LUT n" when the file names none); ``index``: position of the window in
    ``Volume.window_presets`` (or of the table in ``Volume.voi_luts``), -1 for presets.
    """

    source: str
    name: str
    center: float | None = None
    width: float | None = None
    index: int = -1
    lut: bool = False

    @property
    def label(self) -> str:
        """Menu text: ``"Lung (W 1500, L -600)"``, ``"DICOM: ABDOMEN (W 400, L 40)"``, ``"DICOM LUT: NORMAL"``."""
        named = self.name and not self.name.startswith(("DICOM window ", "DICOM LUT "))
        if self.lut:
            return f"DICOM LUT: {self.name}" if named else self.name
        wl = f" (W {self.width:g}, L {self.center:g})" if self.center is not None and self.width is not None else ""
        if self.source == "dicom":
            return (f"DICOM: {self.name}" if named else self.name) + wl
        return self.name + wl


def window_choices(modality: str, dicom_windows: Sequence[tuple[float, float, str]] = (),
                   lut_names: Sequence[str] = ()) -> list[WindowChoice]:
    """The windows offered for an image: the modality's presets (:func:`presets_for`), then the file's windows
    (``Volume.window_presets``: (center, width, explanation); a window equal to an earlier one is offered once),
    then its VOI LUT tables (their LUTExplanation)."""
    out = [WindowChoice("preset", name, c, w) for name, (c, w) in presets_for(modality).items()]
    seen: set[tuple[float, float]] = set()
    for i, (c, w, name) in enumerate(dicom_windows):
        if (float(c), float(w)) in seen:
            continue
        seen.add((float(c), float(w)))
        out.append(WindowChoice("dicom", name or f"DICOM window {i + 1}", float(c), float(w), i))
    for i, name in enumerate(lut_names):
        out.append(WindowChoice("dicom", name or f"DICOM LUT {i + 1}", index=i, lut=True))
    return out
