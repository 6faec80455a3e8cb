"""Model files, shared by the image and the notes models: SHA-256 of a file and safetensors-only loading.

Pickled checkpoints (``.pt``/``.pth``/``.bin``/``.ckpt``, or anything whose header is not safetensors) are refused:
unpickling can run arbitrary code.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt"}


class UnsafeWeightsError(ValueError):
    """The weights file is a pickle (or not safetensors): refused."""


class ModelFileError(ValueError):
    """A model file does not match what its card says (SHA-256)."""


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fp:
        for chunk in iter(lambda: fp.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path: str | Path) -> dict:
    """Read a ``.safetensors`` file into a dict of CPU tensors.

    Raises
    ------
    UnsafeWeightsError: the file is not safetensors (pickled ``.pt``/``.pth``/``.bin`` checkpoints are refused,
        whatever their name says: the header is checked, not only the suffix).
    FileNotFoundError: no such file.
    """
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise UnsafeWeightsError(f"{path.name}: pickled checkpoints are refused (they can run code when loaded); "
                                 "convert the weights to .safetensors")
    if not path.is_file():
        raise FileNotFoundError(path)
    with open(path, "rb") as fp:
        head = fp.read(16)
    # safetensors: 8-byte little-endian header length, then a JSON object.
    if len(head) < 9 or head[8:9] != b"{" or head[:2] in (b"PK", b"\x80\x02", b"\x80\x03", b"\x80\x04"):
        raise UnsafeWeightsError(f"{path.name}: not a safetensors file (zip/pickle checkpoints are refused)")
    from safetensors.torch import load_file

    return load_file(str(path), device="cpu")
