"""One entry point per PACS operation, whatever the node speaks (DIMSE or DICOMweb), and retrieval into cases.

:func:`retrieve` lands a study in a folder (``<dest>/<StudyInstanceUID>/...``), then :func:`register_retrieved`
scans it with the same scanner as "Open folder" and registers it as a case in the case store, so a retrieved study
opens like any other.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

from medviewer.net import dicomweb, dimse
from medviewer.net.dimse import Progress, StorageSCP, Transfer
from medviewer.net.files import study_folder
from medviewer.net.nodes import NetSettings, PacsError, PacsNode, load_settings
from medviewer.net.query import Query

log = logging.getLogger(__name__)


def echo(node: PacsNode) -> float:
    """C-ECHO, or a minimal QIDO-RS search for a DICOMweb node. Returns seconds; raises PacsError."""
    return dicomweb.echo(node) if node.is_dicomweb else dimse.echo(node)


def find(node: PacsNode, query: Query, limit: int = 0) -> list[dict[str, str]]:
    """C-FIND or QIDO-RS. Returns rows (keyword -> str); raises PacsError."""
    return dicomweb.find(node, query, limit) if node.is_dicomweb else dimse.find(node, query, limit)


def retrieve(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str = "", move: bool = False,
             scp: StorageSCP | None = None, settings: NetSettings | None = None, progress: Progress | None = None,
             cancel: threading.Event | None = None) -> Transfer:
    """Retrieve a study (or one series) into ``dest``: WADO-RS for DICOMweb nodes, C-GET by default for DIMSE
    ones, C-MOVE when ``move`` (to ``scp`` when given, which must write into ``dest``; else a Storage SCP started
    for the transfer on the settings' port with our AE title). Objects already in ``dest`` are skipped (resume).
    Raises PacsError."""
    if node.is_dicomweb:
        if move:
            raise PacsError("C-MOVE needs a DIMSE node; a DICOMweb node retrieves with WADO-RS", "bad-input")
        return dicomweb.get(node, study_uid, dest, series_uid=series_uid, progress=progress, cancel=cancel)
    if not move:
        return dimse.get(node, study_uid, dest, series_uid=series_uid, progress=progress, cancel=cancel)
    if scp is not None:
        if Path(scp.root).resolve() != Path(dest).resolve():
            raise PacsError(f"the running Storage SCP writes into {scp.root}, not {dest}", "bad-input")
        return dimse.move(node, study_uid, scp, series_uid=series_uid, progress=progress, cancel=cancel)
    settings = settings if settings is not None else load_settings()
    with StorageSCP(dest, node.our_ae_title, port=settings.scp_port, host="") as own:
        return dimse.move(node, study_uid, own, series_uid=series_uid, progress=progress, cancel=cancel)


def send(node: PacsNode, paths: Iterable[str | Path], *, progress: Progress | None = None,
         cancel: threading.Event | None = None) -> Transfer:
    """C-STORE or STOW-RS of files. Raises PacsError."""
    if node.is_dicomweb:
        return dicomweb.store(node, paths, progress=progress, cancel=cancel)
    return dimse.store(node, paths, progress=progress, cancel=cancel)


def files_of(paths: Iterable[str | Path]) -> list[Path]:
    """Regular files of ``paths`` (folders walked, sorted); hidden files and partial ``.part`` files left out."""
    out: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            out.extend(sorted(f for f in path.rglob("*") if f.is_file() and not f.name.startswith(".")
                              and not f.name.endswith(".part")))
        elif path.is_file():
            out.append(path)
    return out


def register_retrieved(store, dest: str | Path, study_uid: str) -> tuple[list[int], list[str]]:  # noqa: ANN001
    """Scan ``<dest>/<StudyInstanceUID>`` and register its study as a case in ``store``
    (:class:`medviewer.store.cases.CaseStore`), with the findings and measurements of medviewer SRs it holds
    (:func:`medviewer.report.dicom_objects.register_index_with_results`). Returns (case ids, messages about
    skipped files)."""
    from medviewer.io.scan import scan
    from medviewer.report.dicom_objects import register_index_with_results

    folder = study_folder(dest, study_uid)
    if not folder.is_dir():
        raise PacsError(f"nothing was retrieved into {folder}", "failed")
    index = scan([str(folder)])
    ids = register_index_with_results(store, index, str(folder))
    notes = [f"{Path(s.path).name}: {s.reason}" for s in index.skipped]
    for n in notes:
        log.warning("retrieved file skipped: %s", n)
    return ids, notes


__all__ = ["echo", "find", "retrieve", "send", "files_of", "register_retrieved"]
