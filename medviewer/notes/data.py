"""OpenI chest X-ray reports (Demner-Fushman et al., JAMIA 2016) joined to the NegBio gold labels.

The tarball holds one XML file per report (``ecgen-radiology/<id>.xml``) with AbstractText sections; the text used
is IMPRESSION followed by FINDINGS. ``openi_gld_std14.csv`` gives 0/1 labels for the 14 findings and "normal" of
3851 reports (``CXR<id>``); ``openi-testset.txt`` lists the 771 test ids (CRLF line endings, no final newline).
"""

from __future__ import annotations

import csv
import tarfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medviewer.notes.labels import LABELS

DEFAULT_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "openi"


@dataclass(frozen=True)
class Report:
    """One labelled report: ``id`` ("CXR<n>"), ``text`` (IMPRESSION + FINDINGS), ``labels`` (15,) uint8 in
    :data:`~medviewer.notes.labels.LABELS` order."""

    id: str
    text: str
    labels: np.ndarray
    mesh: tuple[str, ...] = ()


def _mesh(xml_bytes: bytes) -> tuple[str, ...]:
    """The report's major MeSH headings ("Hernia, Hiatal", "Pleural Effusion/right/small", ...)."""
    root = ET.fromstring(xml_bytes)
    return tuple(" ".join("".join(n.itertext()).split()) for n in root.iter("major"))


def _sections(xml_bytes: bytes) -> dict[str, str]:
    root = ET.fromstring(xml_bytes)
    out = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").upper()
        out[label] = " ".join("".join(node.itertext()).split())
    return out


def report_text(sections: dict[str, str]) -> str:
    """IMPRESSION then FINDINGS, joined (either may be missing)."""
    return " ".join(t for t in (sections.get("IMPRESSION", ""), sections.get("FINDINGS", "")) if t).strip()


def read_test_ids(path: str | Path) -> set[str]:
    """The test split ids; tolerant of CRLF/LF endings and a missing final newline."""
    text = Path(path).read_bytes().decode("utf-8")
    return {line.strip() for line in text.splitlines() if line.strip()}


def _member_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """The content of a regular-file member of ``tar`` (callers check ``member.isfile()``)."""
    fp = tar.extractfile(member)
    if fp is None:
        raise ValueError(f"{member.name} is not a regular file")
    return fp.read()


def load_unlabelled_reports(directory: str | Path = DEFAULT_DIR) -> list[Report]:
    """Reports of the tarball that have text but no gold labels and are not test ids (their ``labels`` are all 0:
    unknown), with their MeSH headings; sorted by numeric id."""
    directory = Path(directory)
    with open(directory / "openi_gld_std14.csv", newline="", encoding="utf-8") as fp:
        gold = {row["filename"].strip() for row in csv.DictReader(fp)}
    test_ids = read_test_ids(directory / "openi-testset.txt")
    out = []
    with tarfile.open(directory / "NLMCXR_reports.tgz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            rid = "CXR" + Path(member.name).stem
            if rid in gold or rid in test_ids:
                continue
            xml = _member_bytes(tar, member)
            text = report_text(_sections(xml))
            if text:
                out.append(Report(rid, text, np.zeros(len(LABELS), dtype=np.uint8), _mesh(xml)))
    return sorted(out, key=lambda r: int(r.id[3:]))


def load_reports(directory: str | Path = DEFAULT_DIR) -> tuple[list[Report], list[Report]]:
    """(train+val reports, test reports), each sorted by numeric id; only reports with gold labels and text.

    Raises
    ------
    FileNotFoundError: the data files are missing.
    """
    directory = Path(directory)
    labels: dict[str, np.ndarray] = {}
    with open(directory / "openi_gld_std14.csv", newline="", encoding="utf-8") as fp:
        for row in csv.DictReader(fp):
            labels[row["filename"].strip()] = np.array([int(row[k]) for k in LABELS], dtype=np.uint8)
    test_ids = read_test_ids(directory / "openi-testset.txt")
    texts: dict[str, str] = {}
    mesh: dict[str, tuple[str, ...]] = {}
    with tarfile.open(directory / "NLMCXR_reports.tgz") as tar:
        for member in tar:
            if not member.isfile() or not member.name.endswith(".xml"):
                continue
            rid = "CXR" + Path(member.name).stem
            if rid in labels:
                xml = _member_bytes(tar, member)
                texts[rid] = report_text(_sections(xml))
                mesh[rid] = _mesh(xml)
    train: list[Report] = []
    test: list[Report] = []
    for rid in sorted(labels, key=lambda r: int(r[3:])):
        text = texts.get(rid, "")
        if not text:
            continue
        (test if rid in test_ids else train).append(Report(rid, text, labels[rid], mesh.get(rid, ())))
    return train, test


def split_validation(reports: list[Report], fraction: float = 0.15, seed: int = 0) -> tuple[list[Report], list[Report]]:
    """Deterministic (train, validation) split of the non-test reports."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(reports))
    n_val = int(round(fraction * len(reports)))
    val = sorted(idx[:n_val])
    train = sorted(idx[n_val:])
    return [reports[i] for i in train], [reports[i] for i in val]
