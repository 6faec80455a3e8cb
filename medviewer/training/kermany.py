"""Kermany et al. 2018 paediatric chest films at 224 x 224 (``../shared/data/kermany-224``): loading,
deduplication and the patient-wise validation split.

The copy's README: 5,216 train / 624 test films, each original film squashed to 224 x 224 (aspect ratio not kept),
8-bit JPEG with grey content in RGB channels; ``manifest.csv`` has path, split, label (normal/pneumonia), kind,
patient_key (one child within a split; numbering restarts per split) and the file's md5. 62 files fall into 30
groups of byte-identical images, each within one split.
"""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.config import PROJECT_ROOT

DEFAULT_ROOT = PROJECT_ROOT.parent / "shared" / "data" / "kermany-224"
LABELS = ("normal", "pneumonia")


@dataclass
class Split:
    """Films of one split: ``images`` uint8 (n, 224, 224) grey, ``labels`` int64 (n,) (1 = pneumonia),
    ``paths`` and ``patient_keys`` (n,) strings."""

    images: np.ndarray
    labels: np.ndarray
    paths: list[str]
    patient_keys: list[str]

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class KermanyData:
    train: Split
    val: Split
    test: Split
    duplicates_dropped: int
    val_patients: list[str]


def read_manifest(root: Path) -> list[dict[str, str]]:
    with open(root / "manifest.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_image(path: Path) -> np.ndarray:
    """One film as uint8 (224, 224) grey (the mean of the JPEG's channels, which carry the same content)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.uint8)


def _split(rows: list[dict[str, str]], root: Path) -> Split:
    images = np.stack([load_image(root / r["path"]) for r in rows]) if rows else np.zeros((0, 224, 224), np.uint8)
    return Split(images, np.array([LABELS.index(r["label"]) for r in rows], dtype=np.int64),
                 [r["path"] for r in rows], [r["patient_key"] for r in rows])


def load(root: str | Path = DEFAULT_ROOT, *, val_fraction: float = 0.15, seed: int = 0,
         verify_md5: bool = True) -> KermanyData:
    """Load every film, drop byte-identical duplicates from train (first file of each md5 group kept; the test
    split keeps all 624 films, the published benchmark, and its 6 in-split duplicates are reported), and carve a
    validation
    split out of train by patient_key: within each label, ``val_fraction`` of the children (seeded shuffle of the
    sorted keys) go to validation with all their films.

    Raises
    ------
    FileNotFoundError: the folder or its manifest is missing.
    ValueError: a file's md5 differs from the manifest (``verify_md5``).
    """
    root = Path(root)
    rows = read_manifest(root)
    seen: set[str] = set()
    kept: list[dict[str, str]] = []
    for r in sorted(rows, key=lambda r: r["path"]):
        if verify_md5:
            digest = hashlib.md5((root / r["path"]).read_bytes()).hexdigest()
            if digest != r["md5"]:
                raise ValueError(f"{r['path']}: md5 {digest} differs from the manifest's {r['md5']}")
        if r["split"] == "train" and r["md5"] in seen:
            continue
        seen.add(r["md5"])
        kept.append(r)
    train_rows = [r for r in kept if r["split"] == "train"]
    test_rows = [r for r in kept if r["split"] == "test"]
    rng = random.Random(seed)
    val_keys: set[str] = set()
    for label in LABELS:
        keys = sorted({r["patient_key"] for r in train_rows if r["label"] == label})
        rng.shuffle(keys)
        val_keys.update(keys[: round(len(keys) * val_fraction)])
    val_rows = [r for r in train_rows if r["patient_key"] in val_keys]
    train_rows = [r for r in train_rows if r["patient_key"] not in val_keys]
    return KermanyData(_split(train_rows, root), _split(val_rows, root), _split(test_rows, root),
                       duplicates_dropped=len(rows) - len(kept), val_patients=sorted(val_keys))
