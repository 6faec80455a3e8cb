"""A synthetic archive made from real data, for the archive re-scoring tests and benchmark: each study is one real
Kermany chest film (``../shared/data/kermany-224``) wrapped as a CR object the way scanners write it
(:mod:`medviewer.training.dicomwrap`, variants cycled), with its own patient and study date, and a real Open-i
report as its note."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_archive(folder: Path, n: int, store, with_notes: bool = True) -> list[str]:  # noqa: ANN001 - CaseStore
    """Write ``n`` one-film studies under ``folder`` and register them (and their notes) in ``store``; returns
    the StudyInstanceUIDs in order."""
    import pydicom

    from medviewer.io.scan import scan
    from medviewer.training.dicomwrap import VARIANTS, wrap_film
    from medviewer.training.kermany import load_image, read_manifest

    root = SHARED / "kermany-224"
    films = [root / r["path"] for r in read_manifest(root)]
    notes: list[str] = []
    if with_notes:
        from medviewer.notes.data import load_reports

        train, test = load_reports(SHARED / "openi")
        notes = [r.text for r in train + test if r.text.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    uids = []
    day0 = dt.date(2020, 1, 1)
    for i in range(n):
        path = folder / f"s{i:05d}.dcm"
        if not path.exists():
            film = load_image(films[i % len(films)])
            wrap_film(film, VARIANTS[i % len(VARIANTS)], path)
            ds = pydicom.dcmread(path)
            ds.PatientID = f"ARCH{i:05d}"
            ds.PatientName = f"Archive^Patient{i:05d}"
            ds.StudyDate = (day0 + dt.timedelta(days=i % 2000)).strftime("%Y%m%d")
            ds.save_as(path, enforce_file_format=True)
        uids.append(str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID))
    index = scan([str(folder)])
    store.register_index(index, str(folder))
    if with_notes:
        for i, uid in enumerate(uids):
            store.save_text(uid, notes[i % len(notes)])
    return uids
