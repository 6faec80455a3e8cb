"""Modality LUT: stored values -> modality values (Hounsfield units for CT), PS3.3 C.11.1.

The linear form is ``value = stored * RescaleSlope + RescaleIntercept`` (C.11.1.1.2); a Modality LUT Sequence
(C.11.1.1.1) maps stored values through a table instead. It is applied before the VOI LUT (C.11.2) and before any
MONOCHROME1 inversion.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset


def stored_value_range(bits_stored: int, signed: bool) -> tuple[int, int]:
    """(min, max) representable stored value for BitsStored ``bits_stored`` and PixelRepresentation (signed)."""
    bits = max(1, int(bits_stored))
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def modality_lut_output_range(bits_stored: int, signed: bool, slope: float, intercept: float) -> tuple[float, float]:
    """(min, max) of ``stored * slope + intercept`` over all representable stored values."""
    lo, hi = stored_value_range(bits_stored, signed)
    a, b = lo * slope + intercept, hi * slope + intercept
    return (min(a, b), max(a, b))


def apply_rescale(stored: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """Linear Modality LUT (PS3.3 C.11.1.1.2) of an array of stored values.

    Parameters
    ----------
    stored: any shape, integer or float stored values.
    slope, intercept: RescaleSlope and RescaleIntercept.

    Returns
    -------
    float32 array of the same shape (HU for CT). Never float64.
    """
    out = np.multiply(stored, np.float32(slope), dtype=np.float32)
    if intercept:
        out += np.float32(intercept)
    return out


def lut_table(item: Dataset) -> np.ndarray:
    """The LUTData of a Modality or VOI LUT Sequence item as int64 (entries,), read with the LUTDescriptor's bits
    per entry (PS3.3 C.11.1.1.1 / C.11.2.1.1): as an OW byte string (little endian; 8-bit entries packed two to a
    word, first entry in the low byte) or as US/SS values. Only the declared number of entries is returned.

    Raises
    ------
    ValueError: descriptor or data missing, or fewer entries than declared.
    """
    desc = item.get("LUTDescriptor")
    data = item.get("LUTData")
    if desc is None or data is None or len(desc) != 3:
        raise ValueError("LUT Sequence item lacks LUTDescriptor/LUTData")
    n_entries = int(desc[0]) or 65536  # 0 means 2**16 entries
    bits = int(desc[2])
    if isinstance(data, (bytes, bytearray)):
        table = np.frombuffer(bytes(data), dtype="<u2" if bits > 8 else np.uint8).astype(np.int64)
    else:
        values = data if isinstance(data, (list, tuple)) or type(data).__name__ == "MultiValue" else [data]
        table = np.asarray(values, dtype=np.int64).ravel()
    if table.size < n_entries:
        raise ValueError(f"LUTData has {table.size} entries, LUTDescriptor says {n_entries}")
    return table[:n_entries]


def apply_modality_lut_sequence(stored: np.ndarray, item: Dataset) -> np.ndarray:
    """Map stored values through one Modality LUT Sequence item (PS3.3 C.11.1.1.1).

    ``item`` holds LUTDescriptor (entries, first stored value mapped, bits per entry) and LUTData. Values below
    the first mapped value take the first entry, values past the last take the last entry.

    Returns
    -------
    float32 array of the same shape as ``stored``.

    Raises
    ------
    ValueError: the descriptor or data are missing or inconsistent.
    """
    table = lut_table(item).astype(np.float32)
    first = int(item.LUTDescriptor[1])
    idx = np.clip(stored.astype(np.int64) - first, 0, table.size - 1)
    return table[idx]
