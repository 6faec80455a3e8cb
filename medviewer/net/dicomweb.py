"""DICOMweb with dicomweb-client (DICOM PS3.18): QIDO-RS search, WADO-RS retrieve, STOW-RS store.

Results and outcomes mirror :mod:`medviewer.net.dimse`: rows of keyword -> str, a
:class:`~medviewer.net.dimse.Transfer`, and :class:`~medviewer.net.nodes.PacsError` naming the cause (HTTP 401/403:
authentication; 404: no matches; connection refused; timeout). Retrieved objects are asked for in the transfer
syntax they are stored in (``transfer-syntax=*``, PS3.18 8.7.3.5) and land where DIMSE retrievals land
(:mod:`medviewer.net.files`), so a retrieval resumes the same way.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from medviewer.net.dimse import Progress, Transfer, sendable
from medviewer.net.files import present_sop_uids, safe_uid, write_object
from medviewer.net.nodes import PacsError, PacsNode
from medviewer.net.query import Query, row_from_dataset

if TYPE_CHECKING:
    from pydicom import Dataset

log = logging.getLogger(__name__)

_AS_STORED = (("application/dicom", "*"),)


def _session():  # noqa: ANN202 - requests.Session
    """A requests session that sends the QIDO-RS wildcards ``*`` and ``?`` literally in query strings.

    dicomweb-client percent-encodes them (``%2A``, ``%3F``); RFC 3986 3.4 allows ``*`` and ``?`` unencoded in a
    query, and some servers (Orthanc's DICOMweb plugin 1.7) match ``REM%2A`` literally instead of as the wildcard
    PS3.18 8.3.4.1 / PS3.4 C.2.2.2.4 define, finding nothing.
    """
    import requests

    class LiteralWildcards(requests.Session):
        def send(self, request, **kwargs):  # noqa: ANN001, ANN201 - requests' signature
            url = request.url or ""
            if "?" in url:
                base, query = url.split("?", 1)
                request.url = base + "?" + query.replace("%2A", "*").replace("%3F", "?")
            return super().send(request, **kwargs)

    return LiteralWildcards()


def client(node: PacsNode):  # noqa: ANN201 - dicomweb_client.DICOMwebClient
    """A DICOMweb client for ``node`` with its authentication (basic: ``username`` + the secret; bearer: the
    secret as token). Raises PacsError(cause="bad-input") for a DIMSE node or a missing secret."""
    from dicomweb_client import DICOMwebClient

    if not node.is_dicomweb:
        raise PacsError(f"{node.describe()} is not a DICOMweb node (give its http(s) base URL)", "bad-input")
    session = _session()
    if node.auth:
        secret = node.secret()
        if not secret:
            raise PacsError(f"{node.describe()} needs a {'password' if node.auth == 'basic' else 'token'}: set the "
                            f"environment variable {node.secret_env}", "bad-input")
        if node.auth == "basic":
            session.auth = (node.username, secret)
        else:
            session.headers["Authorization"] = f"Bearer {secret}"
    return DICOMwebClient(node.url, session=session, timeout=node.timeout_s)


def _http_error(node: PacsNode, what: str, exc: Exception) -> PacsError:
    import requests

    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        code = exc.response.status_code
        if code in (401, 403):
            return PacsError(f"{what} on {node.describe()}: access denied (HTTP {code}); check the user name and "
                             f"the secret in {node.secret_env}", "rejected")
        if code == 404:
            return PacsError(f"{what} on {node.describe()}: not found (HTTP 404, no matches)", "no-matches")
        return PacsError(f"{what} on {node.describe()} failed: HTTP {code} {exc.response.reason}", "failed")
    if isinstance(exc, requests.Timeout):
        return PacsError(f"{what} on {node.describe()}: no answer within {node.timeout_s:g} s", "timeout")
    if isinstance(exc, (requests.ConnectionError, OSError)):
        return PacsError(f"{what} on {node.describe()}: cannot connect or connection lost ({exc.__class__.__name__})",
                         "connection")
    return PacsError(f"{what} on {node.describe()} failed: {exc}", "failed")


def echo(node: PacsNode) -> float:
    """The DICOMweb counterpart of C-ECHO: a QIDO-RS study search limited to one result. Returns seconds."""
    t0 = time.perf_counter()
    try:
        client(node).search_for_studies(limit=1)
    except PacsError:
        raise
    except Exception as exc:  # noqa: BLE001 - requests/HTTP errors become PacsError with the cause
        raise _http_error(node, "QIDO-RS", exc) from exc
    return time.perf_counter() - t0


def _rows(results: list[dict], level: str) -> list[dict[str, str]]:
    from pydicom import Dataset

    rows = []
    for item in results:
        try:
            rows.append(row_from_dataset(Dataset.from_json(item), level))
        except Exception as exc:  # noqa: BLE001 - one malformed result is logged and left out
            log.warning("QIDO-RS result left out: %s", exc)
    return rows


def find(node: PacsNode, query: Query, limit: int = 0) -> list[dict[str, str]]:
    """QIDO-RS search (PS3.18 10.6) at study, series or instance level (patient level: studies grouped by
    PatientID). Returns rows like :func:`medviewer.net.dimse.find`."""
    from medviewer.net.query import RETURN_KEYS

    q = query.validated()
    c = client(node)
    level = q.level.upper()
    params = q.qido_params()
    fields = list(RETURN_KEYS["STUDY" if level == "PATIENT" else level])
    try:
        if level in ("PATIENT", "STUDY"):
            results = c.search_for_studies(search_filters=params, fields=fields, limit=limit or None,
                                           )
        elif level == "SERIES":
            params.pop("StudyInstanceUID", None)
            results = c.search_for_series(study_instance_uid=q.study_uid, search_filters=params, fields=fields,
                                          limit=limit or None)
        else:
            params.pop("StudyInstanceUID", None)
            series = params.pop("SeriesInstanceUID", None)
            results = c.search_for_instances(study_instance_uid=q.study_uid, series_instance_uid=series,
                                             search_filters=params, fields=fields, limit=limit or None,
                                             )
    except Exception as exc:  # noqa: BLE001 - requests/HTTP errors become PacsError with the cause
        raise _http_error(node, "QIDO-RS", exc) from exc
    rows = _rows(results, "STUDY" if level == "PATIENT" else level)
    if level == "PATIENT":
        patients: dict[str, dict[str, str]] = {}
        for r in rows:
            p = patients.setdefault(r.get("PatientID", ""), {k: r.get(k, "") for k in (
                "PatientName", "PatientID", "PatientBirthDate", "PatientSex")} | {"NumberOfPatientRelatedStudies": "0"})
            p["NumberOfPatientRelatedStudies"] = str(int(p["NumberOfPatientRelatedStudies"]) + 1)
        rows = list(patients.values())
    return rows


def _encode(ds) -> bytes:  # noqa: ANN001 - pydicom Dataset with file_meta
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def get(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str = "",
        progress: Progress | None = None, cancel: threading.Event | None = None) -> Transfer:
    """WADO-RS retrieve of a study (or series) into ``dest`` like :func:`medviewer.net.dimse.get`: objects already
    there are skipped (then the missing instances are fetched one by one), progress per object, ``cancel`` stops
    between objects (the HTTP stream is closed). Raises PacsError."""
    t0 = time.perf_counter()
    dest = Path(dest)
    result = Transfer()
    rows = find(node, Query(level="IMAGE", study_uid=study_uid, series_uid=series_uid))
    if not rows:
        what = f"series {series_uid}" if series_uid else f"study {study_uid}"
        raise PacsError(f"{node.describe()} has no objects for {what} (no matches)", "no-matches")
    present = present_sop_uids(dest, study_uid)
    missing = [r for r in rows if safe_uid(r.get("SOPInstanceUID", "")) not in present]
    result.total = len(rows)
    result.already = len(rows) - len(missing)
    if not missing:
        result.seconds = time.perf_counter() - t0
        return result
    c = client(node)
    if len(missing) == len(rows):
        stream: Iterable = (c.iter_series(study_uid, series_uid, media_types=_AS_STORED) if series_uid
                            else c.iter_study(study_uid, media_types=_AS_STORED))
    else:
        stream = (c.retrieve_instance(study_uid, r.get("SeriesInstanceUID", ""), r.get("SOPInstanceUID", ""),
                                      media_types=_AS_STORED) for r in missing)
    try:
        for ds in stream:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            path = write_object(dest, str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
                                str(ds.get("SOPInstanceUID", "")), _encode(ds))
            result.files.append(path)
            if progress is not None:
                progress(result.done, result.total, f"received {path.stem}")
    except Exception as exc:  # noqa: BLE001 - requests/HTTP errors become PacsError with the cause
        err = _http_error(node, "WADO-RS", exc)
        if err.cause == "connection":
            err = PacsError(f"WADO-RS from {node.describe()}: connection lost after {result.done} of {result.total} "
                            "objects", "connection")
        raise err from exc
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()
    result.seconds = time.perf_counter() - t0
    return result


def store(node: PacsNode, paths: Iterable[str | Path], *, progress: Progress | None = None,
          cancel: threading.Event | None = None, batch: int = 16) -> Transfer:
    """STOW-RS (PS3.18 10.5) of files, ``batch`` objects per request. Unreadable files are counted failed with the
    reason; objects the server refuses (FailedSOPSequence) are counted failed. Raises PacsError when a request
    fails as a whole."""
    import pydicom

    t0 = time.perf_counter()
    result = Transfer()
    files = [Path(p) for p in paths]
    result.total = len(files)
    c = client(node)
    pending: list[tuple[Path, Dataset]] = []

    def flush() -> None:
        if not pending:
            return
        try:
            rsp = c.store_instances([ds for _, ds in pending])
        except Exception as exc:  # noqa: BLE001 - requests/HTTP errors become PacsError with the cause
            raise _http_error(node, "STOW-RS", exc) from exc
        failed = {str(item.get("ReferencedSOPInstanceUID", "")) for item in rsp.get("FailedSOPSequence", [])}
        for path, ds in pending:
            if str(ds.SOPInstanceUID) in failed:
                result.failed += 1
                result.messages.append(f"{path.name}: refused by the server")
            else:
                result.files.append(path)
        pending.clear()
        if progress is not None:
            progress(len(result.files) + result.failed, result.total, "stored")

    for path in files:
        if cancel is not None and cancel.is_set():
            result.cancelled = True
            break
        kind = sendable(path)
        if kind != "ok":
            result.skipped += 1
            result.total -= 1
            result.messages.append(f"{path.name}: skipped: {kind}")
            continue
        try:
            ds = pydicom.dcmread(path)
            _ = ds.SOPInstanceUID
        except Exception as exc:  # noqa: BLE001 - a broken file is reported and skipped
            result.failed += 1
            result.messages.append(f"{path.name}: not sent: not a readable DICOM file ({exc})")
            continue
        pending.append((path, ds))
        if len(pending) >= batch:
            flush()
    if not result.cancelled:
        flush()
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["client", "echo", "find", "get", "store"]
