"""DIMSE services with pynetdicom: C-ECHO, C-FIND, C-GET, C-MOVE (to our Storage SCP), C-STORE, and the Storage SCP.

Rules followed:
- Query/Retrieve (PS3.4 Annex C): Patient Root model for patient-level C-FIND, Study Root for the rest; hierarchical
  keys; UID lists in an IMAGE-level retrieve identifier (C.4.2.2.1 / C.4.3.2.1) to fetch only missing instances.
- C-GET (PS3.4 C.4.3) receives its C-STORE sub-operations on the same association, which needs SCP/SCU Role
  Selection (PS3.7 D.3.3.4) for each storage SOP class: those the study holds (an IMAGE-level C-FIND tells them),
  each with uncompressed transfer syntaxes and, as separate presentation contexts while the 128-context limit
  (PS3.8 9.3.2.2, pynetdicom ``MAX_CONTEXTS``) allows, every compressed syntax this installation decodes, so a PACS
  can send compressed files as stored.
- Status codes: PS3.4 C.4.1.1.4 (find), C.4.2.1.5 (move), C.4.3.1.4 (get), B.2.3 (store); PS3.7 C.

Every failure raises :class:`~medviewer.net.nodes.PacsError` naming the cause. Progress callbacks get
``(done, total, message)``; ``cancel`` is a :class:`threading.Event` which aborts the association when set (files
received so far are complete and kept: see :mod:`medviewer.net.files`; a later retrieval resumes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medviewer.net.files import present_sop_uids, safe_uid, write_object
from medviewer.net.nodes import PacsError, PacsNode
from medviewer.net.query import Query, row_from_dataset

if TYPE_CHECKING:
    from pynetdicom.events import EventHandlerType
    from pynetdicom.transport import ThreadedAssociationServer

log = logging.getLogger(__name__)

Progress = Callable[[int, "int | None", str], None]

UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
#: Most common compressed syntaxes first: they get contexts first when the 128 limit bites.
_COMPRESSED_ORDER = ["1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.90",
                     "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.5",
                     "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
                     "1.2.840.10008.1.2.1.99"]
MAX_CONTEXTS = 128
#: UIDs per IMAGE-level retrieve request when resuming.
UID_LIST_CHUNK = 200


@dataclass
class Transfer:
    """The outcome of a retrieval or a send.

    files: objects received (retrieval) or sent (send) in this run; already: objects that were present before
    (a resumed retrieval skips them); total: objects in the request (None if the PACS did not say); failed:
    sub-operations the PACS reported failed, or files that could not be sent; cancelled: the user stopped it;
    messages: what went wrong per object, in words.
    """

    files: list[Path] = field(default_factory=list)
    already: int = 0
    total: int | None = None
    failed: int = 0
    cancelled: bool = False
    messages: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: int = 0  # (send) files that are not DICOM objects to send: no DICOM header, or a DICOMDIR

    @property
    def done(self) -> int:
        return len(self.files) + self.already


def compressed_syntaxes() -> list[str]:
    """Compressed transfer syntaxes this installation decodes, most common first."""
    from medviewer.io.pixels import decodable_transfer_syntaxes

    have = [ts for ts in decodable_transfer_syntaxes() if ts not in UNCOMPRESSED]
    return [ts for ts in _COMPRESSED_ORDER if ts in have] + [ts for ts in have if ts not in _COMPRESSED_ORDER]


# --------------------------------------------------------------------------------------------- associations
def _ae(node: PacsNode):  # noqa: ANN202 - pynetdicom.AE
    from pynetdicom import AE

    ae = AE(ae_title=node.our_ae_title)
    ae.acse_timeout = node.timeout_s
    ae.dimse_timeout = node.timeout_s
    ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    ae.maximum_pdu_size = 0  # no limit on what we receive: fewer, larger P-DATA PDUs
    return ae


def _associate(ae, node: PacsNode, what: str, ext_neg=None, handlers=None):  # noqa: ANN001, ANN202
    """An established association with ``node``, or PacsError naming why not (rejected with the PACS's reason,
    refused or unreachable, aborted)."""
    from pynetdicom import evt

    if node.is_dicomweb:
        raise PacsError(f"{node.describe()} is a DICOMweb node: {what} needs a DIMSE node (AET@HOST:PORT)",
                        "bad-input")
    seen: dict[str, object] = {}

    def on_acse(event) -> None:  # noqa: ANN001 - pynetdicom Event
        prim = event.primitive
        if getattr(prim, "result", None) in (1, 2):
            seen["rejection"] = prim

    def on_open(_event) -> None:  # noqa: ANN001
        seen["opened"] = True

    handlers = list(handlers or []) + [(evt.EVT_ACSE_RECV, on_acse), (evt.EVT_CONN_OPEN, on_open)]
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.ae_title, ext_neg=ext_neg, evt_handlers=handlers)
    except (OSError, ValueError) as exc:
        raise PacsError(f"cannot reach {node.describe()}: {exc}", "connection") from exc
    if assoc.is_established:
        return assoc
    rej = seen.get("rejection")
    if assoc.is_rejected or rej is not None:
        reason = getattr(rej, "reason_str", "no reason given")
        transient = getattr(rej, "result", 1) == 2
        cause = "unknown-ae" if "AE title not recognised" in reason else "rejected"
        hint = ""
        if "Calling AE title" in reason:
            hint = f" (add our AE title {node.our_ae_title} to the PACS's known modalities)"
        elif "Called AE title" in reason:
            hint = f" (check the PACS's AE title; we called {node.ae_title})"
        raise PacsError(f"{node.describe()} rejected the association{' for now' if transient else ''}: "
                        f"{reason}{hint}", cause)
    if not seen.get("opened"):
        raise PacsError(f"cannot connect to {node.describe()}: connection refused or no answer within "
                        f"{node.timeout_s:g} s (is the PACS running, and are the host and port right?)",
                        "connection")
    if assoc.is_aborted:
        raise PacsError(f"{node.describe()} closed the connection during association negotiation: it does not "
                        f"accept our association for {what} (check the PACS's AE title, we called {node.ae_title}, "
                        f"and that it knows our AE title {node.our_ae_title})", "rejected")
    raise PacsError(f"cannot connect to {node.describe()}: connection refused or no answer within "
                    f"{node.timeout_s:g} s", "connection")


def _status_text(status) -> str:  # noqa: ANN001 - pydicom Dataset
    code = int(getattr(status, "Status", -1))
    comment = str(getattr(status, "ErrorComment", "") or "").strip()
    return f"0x{code:04X}" + (f" ({comment})" if comment else "")


def _refused(node: PacsNode, what: str) -> PacsError:
    """The error for a PACS that aborts the association on our first request: it does not serve ``what`` to our
    AE title (Orthanc, dcm4chee and most PACSs do so for AE titles not among their known modalities)."""
    return PacsError(f"{node.describe()} aborted the association on our {what} request: it does not serve "
                     f"{what} to our AE title {node.our_ae_title} (is {node.our_ae_title} among the PACS's known "
                     "modalities?)", "unknown-ae")


def _accepted(assoc, sop_class: str, what: str, node: PacsNode) -> None:  # noqa: ANN001
    if not any(cx.abstract_syntax == sop_class for cx in assoc.accepted_contexts):
        assoc.release()
        raise PacsError(f"{node.describe()} does not offer {what} to {node.our_ae_title} (presentation context "
                        "not accepted)", "refused")


# --------------------------------------------------------------------------------------------- echo / find
def echo(node: PacsNode) -> float:
    """C-ECHO (PS3.4 A.4, Verification). Returns the round trip in seconds (association included)."""
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import through globals()

    ae = _ae(node)
    ae.add_requested_context(Verification)
    t0 = time.perf_counter()
    assoc = _associate(ae, node, "C-ECHO")
    try:
        _accepted(assoc, Verification, "C-ECHO", node)
        status = assoc.send_c_echo()
        if not status or int(getattr(status, "Status", -1)) != 0:
            raise PacsError(f"C-ECHO to {node.describe()} failed: "
                            f"{_status_text(status) if status else 'no response (connection lost or timeout)'}",
                            "failed")
    finally:
        if assoc.is_established:
            assoc.release()
    return time.perf_counter() - t0


def _find_model(level: str) -> str:
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import through globals()
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
    )

    return PatientRootQueryRetrieveInformationModelFind if level == "PATIENT" \
        else StudyRootQueryRetrieveInformationModelFind


def find(node: PacsNode, query: Query, limit: int = 0) -> list[dict[str, str]]:
    """C-FIND (PS3.4 C.4.1). Returns one row per match (keyword -> str, decoded with the response's
    SpecificCharacterSet), at most ``limit`` rows when > 0 (the rest is cancelled with C-CANCEL)."""
    q = query.validated()
    model = _find_model(q.level)
    ae = _ae(node)
    ae.add_requested_context(model)
    assoc = _associate(ae, node, "C-FIND")
    rows: list[dict[str, str]] = []
    try:
        _accepted(assoc, model, f"{q.level.lower()}-level C-FIND", node)
        t_request = time.perf_counter()
        for status, identifier in assoc.send_c_find(q.identifier(), model):
            if not status:
                if not rows and time.perf_counter() - t_request < 0.9 * node.timeout_s:
                    raise _refused(node, "C-FIND")
                raise PacsError(f"C-FIND on {node.describe()}: connection lost or no answer within "
                                f"{node.timeout_s:g} s", "connection")
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):
                if identifier is not None:
                    rows.append(row_from_dataset(identifier, q.level))
                if limit and len(rows) >= limit:
                    assoc.send_c_cancel(1, None, query_model=model)
                continue
            if code == 0x0000 or code == 0xFE00:
                break
            raise PacsError(f"C-FIND on {node.describe()} failed with status {_status_text(status)}"
                            + (" (the PACS may not allow queries from our AE title)" if code in (0xA700, 0xC000,
                                                                                                 0x0122) else ""),
                            "refused" if code == 0x0122 else "failed")
    finally:
        if assoc.is_established:
            assoc.release()
    return rows[:limit] if limit else rows


def list_instances(node: PacsNode, study_uid: str, series_uid: str = "") -> list[dict[str, str]]:
    """IMAGE-level C-FIND of a study (or one series): SOPInstanceUID, SOPClassUID, SeriesInstanceUID per object.
    Raises PacsError(cause="no-matches") when the PACS holds nothing for it."""
    rows = find(node, Query(level="IMAGE", study_uid=study_uid, series_uid=series_uid))
    if not rows:
        what = f"series {series_uid}" if series_uid else f"study {study_uid}"
        raise PacsError(f"{node.describe()} has no objects for {what} (no matches)", "no-matches")
    return rows


# --------------------------------------------------------------------------------------------- retrieve
def storage_contexts(sop_classes: Sequence[str], budget: int = MAX_CONTEXTS - 1) -> list[tuple[str, list[str]]]:
    """(abstract syntax, [transfer syntaxes]) for receiving ``sop_classes``: one uncompressed context per class,
    then one context per (class, compressed syntax) while ``budget`` allows, round-robin so every class gets the
    most common compressed syntaxes first."""
    classes = list(dict.fromkeys(c for c in sop_classes if c))[:budget]
    out: list[tuple[str, list[str]]] = [(c, list(UNCOMPRESSED)) for c in classes]
    for ts in compressed_syntaxes():
        for c in classes:
            if len(out) >= budget:
                return out
            out.append((c, [ts]))
    return out


class _Receiver:
    """The C-STORE handler of a retrieval: writes each object under ``root`` and counts."""

    def __init__(self, root: Path, result: Transfer, progress: Progress | None, lock: threading.Lock):
        self.root, self.result, self.progress, self.lock = root, result, progress, lock

    def __call__(self, event) -> int:  # noqa: ANN001 - pynetdicom Event
        try:
            ds = event.dataset
            path = write_object(self.root, str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", "")),
                                str(ds.get("SOPInstanceUID", "")), event.encoded_dataset())
        except Exception as exc:  # noqa: BLE001 - answer the PACS with a failure status, keep going
            log.warning("received object could not be written: %s", exc)
            with self.lock:
                self.result.messages.append(f"a received object could not be written: {exc}")
            return 0xA700
        with self.lock:
            self.result.files.append(path)
            done, total = self.result.done, self.result.total
        if self.progress is not None:
            self.progress(done, total, f"received {safe_uid(str(ds.get('SOPInstanceUID', '')))}")
        return 0x0000


def _watch_cancel(assoc, cancel: threading.Event | None, finished: threading.Event) -> None:  # noqa: ANN001
    if cancel is None:
        return

    def run() -> None:
        while not finished.is_set():
            if cancel.wait(0.05):
                if not finished.is_set():
                    log.info("transfer cancelled: aborting the association")
                    # wake the request waiting for its next response first (pynetdicom's DIMSE queue returns
                    # (None, None) for "aborted"; a local abort does not post it, and the abort itself may fail
                    # when the peer's data is in flight)
                    assoc.dimse.msg_queue.put((None, None))
                    try:
                        assoc.abort()
                    except Exception:  # noqa: BLE001 - the association is going away either way
                        log.debug("abort after cancel raised", exc_info=True)
                return

    threading.Thread(target=run, name="pacs-cancel", daemon=True).start()


def _plan(node: PacsNode, study_uid: str, series_uid: str, dest: Path, result: Transfer
          ) -> tuple[list[str], list[str]] | None:
    """(missing SOPInstanceUIDs or [] for "all of it", SOP classes) for a retrieval, or None if nothing is
    missing. Fills ``result.total`` and ``result.already``."""
    rows = list_instances(node, study_uid, series_uid)
    present = present_sop_uids(dest, study_uid)
    wanted = [r.get("SOPInstanceUID", "") for r in rows]
    missing = [u for u in wanted if safe_uid(u) not in present]
    result.total = len(wanted)
    result.already = len(wanted) - len(missing)
    classes = sorted({r.get("SOPClassUID", "") for r in rows} - {""})
    if not classes:
        from pynetdicom import StoragePresentationContexts

        log.warning("%s did not return SOPClassUID at image level: offering the common storage classes",
                    node.describe())
        classes = [str(cx.abstract_syntax) for cx in StoragePresentationContexts if cx.abstract_syntax][:40]
    if not missing:
        return None
    return ([] if len(missing) == len(wanted) else missing), classes


def _identifiers(study_uid: str, series_uid: str, missing: list[str]):  # noqa: ANN202 - Iterator[Dataset]
    from pydicom import Dataset

    if not missing:
        ds = Dataset()
        ds.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        ds.StudyInstanceUID = study_uid
        if series_uid:
            ds.SeriesInstanceUID = series_uid
        yield ds
        return
    for i in range(0, len(missing), UID_LIST_CHUNK):
        ds = Dataset()
        ds.QueryRetrieveLevel = "IMAGE"
        ds.StudyInstanceUID = study_uid
        if series_uid:
            ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = missing[i:i + UID_LIST_CHUNK]
        yield ds


def _run_retrieve(assoc, node: PacsNode, requests, model: str, result: Transfer,  # noqa: ANN001
                  cancel: threading.Event | None, move_destination: str = "") -> None:
    """Send the C-GET requests (or C-MOVE ones to ``move_destination``) and read their responses; raise PacsError
    on failure."""
    what = "C-MOVE" if move_destination else "C-GET"
    finished = threading.Event()
    _watch_cancel(assoc, cancel, finished)
    t_request = time.perf_counter()
    try:
        for n, identifier in enumerate(requests, start=1):
            responses = assoc.send_c_move(identifier, move_destination, model, msg_id=n) if move_destination \
                else assoc.send_c_get(identifier, model, msg_id=n)
            for status, _ident in responses:
                if cancel is not None and cancel.is_set():
                    result.cancelled = True
                    return
                if not status:
                    if not result.files and time.perf_counter() - t_request < 0.9 * node.timeout_s:
                        raise _refused(node, what)
                    lost = "the association was aborted" if assoc.is_aborted else "no answer"
                    raise PacsError(f"{what} from {node.describe()}: connection lost after {result.done} of "
                                    f"{result.total} objects ({lost})", "connection")
                code = int(status.Status)
                if code == 0xFF00:
                    continue
                failed = int(getattr(status, "NumberOfFailedSuboperations", 0) or 0)
                result.failed += failed
                if code == 0x0000:
                    break
                if code == 0xB000:
                    result.messages.append(f"{what}: {failed} sub-operations failed (status {_status_text(status)})")
                    break
                if code == 0xFE00:
                    result.cancelled = True
                    return
                if code == 0xA801:
                    raise PacsError(f"{node.describe()} does not know the move destination "
                                    f"{move_destination} (add it to the PACS's "
                                    "modalities with our host and Storage SCP port)", "unknown-ae")
                if code in (0xA701, 0xA702):
                    raise PacsError(f"{what} from {node.describe()}: the PACS is out of resources "
                                    f"({_status_text(status)})", "failed")
                if move_destination and (code & 0xF000) in (0xA000, 0xC000) and not result.files:
                    raise PacsError(f"{node.describe()} refused to move to {move_destination} (status "
                                    f"{_status_text(status)}): it does not know the move destination "
                                    f"{move_destination} or does not allow C-MOVE for {node.our_ae_title}; the "
                                    "PACS must list that AE title with our host and Storage SCP port",
                                    "unknown-ae")
                if code == 0xC000 and failed == 0 and result.done == 0:
                    raise PacsError(f"{what} from {node.describe()} failed: {_status_text(status)} (the PACS may "
                                    f"not allow {what} for {node.our_ae_title})", "refused")
                raise PacsError(f"{what} from {node.describe()} failed: {_status_text(status)}", "failed")
    finally:
        finished.set()
    if cancel is not None and cancel.is_set():
        result.cancelled = True


def get(node: PacsNode, study_uid: str, dest: str | Path, *, series_uid: str = "",
        progress: Progress | None = None, cancel: threading.Event | None = None) -> Transfer:
    """C-GET a study (or one series) into ``dest`` (``<dest>/<Study>/<Series>/<SOP>.dcm``).

    Objects already in ``dest`` are skipped (resume). Returns a :class:`Transfer`; raises PacsError
    (``no-matches``, ``rejected``, ``unknown-ae``, ``connection``, ``refused``, ``failed``).
    """
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import through globals()
        StudyRootQueryRetrieveInformationModelGet as model,
    )

    t0 = time.perf_counter()
    dest = Path(dest)
    result = Transfer()
    plan = _plan(node, study_uid, series_uid, dest, result)
    if plan is None:
        result.seconds = time.perf_counter() - t0
        return result
    missing, classes = plan
    ae = _ae(node)
    ae.add_requested_context(model)
    contexts = storage_contexts(classes)
    for sop, syntaxes in contexts:
        ae.add_requested_context(sop, syntaxes)
    roles = [build_role(sop, scp_role=True) for sop in dict.fromkeys(s for s, _ in contexts)]
    receiver = _Receiver(dest, result, progress, threading.Lock())
    assoc = _associate(ae, node, "C-GET", ext_neg=roles, handlers=[(evt.EVT_C_STORE, receiver)])
    try:
        _accepted(assoc, model, "C-GET", node)
        _run_retrieve(assoc, node, _identifiers(study_uid, series_uid, missing), model, result, cancel)
    finally:
        if assoc.is_established:
            assoc.release()
        # the C-STORE handler runs on the association's thread: after a cancel or a lost connection, let an object
        # being written finish, so that what get() reports is what is on disk
        assoc.join(timeout=node.timeout_s)
    result.seconds = time.perf_counter() - t0
    return result


def move(node: PacsNode, study_uid: str, scp: "StorageSCP", *, series_uid: str = "",
         progress: Progress | None = None, cancel: threading.Event | None = None) -> Transfer:
    """C-MOVE a study (or one series) to our running Storage SCP ``scp`` (move destination = its AE title; the
    PACS must know it with our host and port). Files land under ``scp.root``; objects already there are skipped.
    Returns a :class:`Transfer`; raises PacsError as :func:`get` does, and ``unknown-ae`` when the PACS does not
    know our destination.
    """
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]  # made at import through globals()
        StudyRootQueryRetrieveInformationModelMove as model,
    )

    t0 = time.perf_counter()
    result = Transfer()
    plan = _plan(node, study_uid, series_uid, scp.root, result)
    if plan is None:
        result.seconds = time.perf_counter() - t0
        return result
    missing, _classes = plan
    lock = threading.Lock()

    def on_file(path: Path) -> None:
        with lock:
            result.files.append(path)
            done, total = result.done, result.total
        if progress is not None:
            progress(done, total, f"received {path.stem}")

    ae = _ae(node)
    ae.add_requested_context(model)
    assoc = _associate(ae, node, "C-MOVE")
    try:
        _accepted(assoc, model, "C-MOVE", node)
        with scp.listening(study_uid, on_file):
            _run_retrieve(assoc, node, _identifiers(study_uid, series_uid, missing), model, result, cancel,
                          move_destination=scp.ae_title)
            scp.wait_idle(study_uid, timeout=node.timeout_s)
    finally:
        if assoc.is_established:
            assoc.release()
    result.seconds = time.perf_counter() - t0
    return result


# --------------------------------------------------------------------------------------------- storage SCP
class StorageSCP:
    """Our Storage SCP (PS3.4 B): the C-MOVE destination, and where other systems push studies to us.

    root: where objects land (``<root>/<Study>/<Series>/<SOP>.dcm``). ae_title: our AE title. port: the TCP port
    (0 = any free one; see :attr:`port` after :meth:`start`). host: the address to listen on (default loopback;
    ``""`` listens on all interfaces). on_study: called with (StudyInstanceUID, [paths]) when an association that
    sent objects is released (e.g. to register pushed studies as cases).
    """

    def __init__(self, root: str | Path, ae_title: str, port: int = 0, host: str = "127.0.0.1",
                 on_study: Callable[[str, list[Path]], None] | None = None):
        self.root = Path(root)
        self.ae_title = ae_title
        self.host = host
        self.port = int(port)
        self.on_study = on_study
        self._server: ThreadedAssociationServer | None = None
        self._lock = threading.Lock()
        self._listeners: dict[str, Callable[[Path], None]] = {}
        self._last_store: dict[str, float] = {}
        self._pending: dict[int, dict[str, list[Path]]] = {}
        self.received = 0

    def start(self) -> "StorageSCP":
        """Start listening (non-blocking). Raises PacsError(cause="connection") when the port is taken."""
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]  # made at import through globals()

        from medviewer.io.pixels import decodable_transfer_syntaxes

        ae = AE(ae_title=self.ae_title)
        ae.maximum_pdu_size = 0
        syntaxes = decodable_transfer_syntaxes()
        for cx in AllStoragePresentationContexts:
            if cx.abstract_syntax:  # always set on pynetdicom's ready-made contexts
                ae.add_supported_context(cx.abstract_syntax, syntaxes)
        ae.add_supported_context(Verification)
        handlers: list[EventHandlerType] = [(evt.EVT_C_STORE, self._on_store), (evt.EVT_RELEASED, self._on_end),
                    (evt.EVT_ABORTED, self._on_end)]
        try:
            server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsError(f"our Storage SCP cannot listen on {self.host or 'all interfaces'}:{self.port}: {exc}",
                            "connection") from exc
        if server is None:  # start_server returns None only with block=True
            raise PacsError("our Storage SCP did not start", "connection")
        self._server = server
        self.port = int(server.server_address[1])
        log.info("Storage SCP %s listening on %s:%d, files into %s", self.ae_title, self.host or "*", self.port,
                 self.root)
        return self

    def stop(self) -> None:
        """Stop listening (associations in progress are ended)."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def __enter__(self) -> "StorageSCP":
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_store(self, event) -> int:  # noqa: ANN001 - pynetdicom Event
        try:
            ds = event.dataset
            study = str(ds.get("StudyInstanceUID", ""))
            path = write_object(self.root, study, str(ds.get("SeriesInstanceUID", "")),
                                str(ds.get("SOPInstanceUID", "")), event.encoded_dataset())
        except Exception as exc:  # noqa: BLE001 - a failure status to the sender; the SCP keeps running
            log.warning("Storage SCP: object from %s not stored: %s", event.assoc.requestor.ae_title, exc)
            return 0xA700
        with self._lock:
            self.received += 1
            self._last_store[study] = time.monotonic()
            listener = self._listeners.get(study)
            self._pending.setdefault(id(event.assoc), {}).setdefault(study, []).append(path)
        if listener is not None:
            listener(path)
        return 0x0000

    def _on_end(self, event) -> None:  # noqa: ANN001
        with self._lock:
            done = self._pending.pop(id(event.assoc), {})
        if self.on_study is not None:
            for study, paths in done.items():
                try:
                    self.on_study(study, paths)
                except Exception:  # noqa: BLE001 - a failing callback must not stop the SCP
                    log.exception("Storage SCP: handling study %s failed", study)

    class _Listening:
        def __init__(self, scp: "StorageSCP", study: str, fn: Callable[[Path], None]):
            self.scp, self.study, self.fn = scp, study, fn

        def __enter__(self) -> None:
            with self.scp._lock:
                self.scp._listeners[self.study] = self.fn

        def __exit__(self, *exc: object) -> None:
            with self.scp._lock:
                self.scp._listeners.pop(self.study, None)

    def listening(self, study_uid: str, fn: Callable[[Path], None]) -> "StorageSCP._Listening":
        """Context manager: call ``fn(path)`` for each object of ``study_uid`` received meanwhile."""
        return StorageSCP._Listening(self, study_uid, fn)

    def wait_idle(self, study_uid: str, timeout: float, quiet_s: float = 0.2) -> None:
        """Wait until no object of ``study_uid`` arrived for ``quiet_s`` (the PACS's C-STORE sub-operations run on
        their own association and may trail the final C-MOVE response), at most ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            with self._lock:
                last = self._last_store.get(study_uid, 0.0)
            if time.monotonic() - last >= quiet_s:
                return
            time.sleep(0.05)


# --------------------------------------------------------------------------------------------- send
def _file_header(path: Path):  # noqa: ANN202 - (sop class, transfer syntax) or None
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID", "SOPInstanceUID"])
    sop = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "1.2.840.10008.1.2")
    if not sop:
        raise ValueError("no SOPClassUID")
    return sop, ts


def sendable(path: Path) -> str:
    """"ok" for a file to send; else why it is left out without counting as a failure: not a DICOM file (no
    DICM prefix: a LICENSE, a README...) or a DICOMDIR (Media Storage Directory, PS3.10: a media index, not an
    object a PACS stores)."""
    from medviewer.io.sopclass import MEDIA_STORAGE_DIRECTORY

    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if len(head) < 132 or head[128:132] != b"DICM":
        import pydicom

        try:  # a DICOM file without the Part 10 preamble is still sent
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["SOPClassUID"])
            if "SOPClassUID" not in ds:
                return "not a DICOM object"
        except Exception:  # noqa: BLE001 - not DICOM at all
            return "not a DICOM file"
        return "ok"
    import pydicom

    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - a damaged header: let the send report it
        return "ok"
    if str(meta.get("MediaStorageSOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY:
        return "a DICOMDIR (media index), not an object to store"
    return "ok"


def store(node: PacsNode, paths: Iterable[str | Path], *, progress: Progress | None = None,
          cancel: threading.Event | None = None) -> Transfer:
    """C-STORE files to ``node`` (PS3.4 B.2). Each file is offered in its own transfer syntax and uncompressed; a
    file the PACS accepts only uncompressed is decompressed before sending. Unreadable files are counted failed
    with the reason; the rest is sent. Raises PacsError when no association can be made or it is lost."""
    import pydicom

    t0 = time.perf_counter()
    result = Transfer()
    plan: list[tuple[Path, str, str]] = []
    for p in paths:
        path = Path(p)
        kind = sendable(path)
        if kind != "ok":
            result.skipped += 1
            result.messages.append(f"{path.name}: skipped: {kind}")
            continue
        try:
            sop, ts = _file_header(path)
        except Exception as exc:  # noqa: BLE001 - a broken file is reported and skipped
            result.failed += 1
            result.messages.append(f"{path.name}: not sent: not a readable DICOM file ({exc})")
            continue
        plan.append((path, sop, ts))
    result.total = len(plan) + result.failed
    if not plan:
        return result
    pairs = list(dict.fromkeys((sop, ts) for _, sop, ts in plan))
    classes = list(dict.fromkeys(sop for sop, _ in pairs))
    ae = _ae(node)
    requested = 0
    for sop in classes:
        ae.add_requested_context(sop, list(UNCOMPRESSED))
        requested += 1
    for sop, ts in pairs:
        if ts not in UNCOMPRESSED and requested < MAX_CONTEXTS:
            ae.add_requested_context(sop, [ts])
            requested += 1
    if len(classes) > MAX_CONTEXTS:
        raise PacsError(f"{len(classes)} SOP classes in one send: more than {MAX_CONTEXTS} presentation contexts; "
                        "send fewer series at once", "bad-input")
    assoc = _associate(ae, node, "C-STORE")
    finished = threading.Event()
    _watch_cancel(assoc, cancel, finished)
    try:
        accepted = {(cx.abstract_syntax, cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
        for path, sop, ts in plan:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                break
            if not assoc.is_established:
                raise PacsError(f"C-STORE to {node.describe()}: connection lost after {len(result.files)} of "
                                f"{len(plan)} files", "connection")
            try:
                if (sop, ts) in accepted:
                    status = assoc.send_c_store(path)
                elif any(a == sop for a, _ in accepted):
                    ds = pydicom.dcmread(path)
                    if ds.file_meta.TransferSyntaxUID.is_compressed:
                        ds.decompress()
                    status = assoc.send_c_store(ds)
                else:
                    result.failed += 1
                    result.messages.append(f"{path.name}: not sent: {node.describe()} does not accept "
                                           f"SOP class {sop}")
                    continue
            except Exception as exc:  # noqa: BLE001 - one file's failure is reported; the others go on
                result.failed += 1
                result.messages.append(f"{path.name}: not sent: {exc}")
                continue
            if not status:
                if cancel is not None and cancel.is_set():
                    result.cancelled = True
                    break
                raise PacsError(f"C-STORE to {node.describe()}: connection lost after {len(result.files)} of "
                                f"{len(plan)} files", "connection")
            code = int(status.Status)
            if code == 0x0000 or (code & 0xF000) == 0xB000:
                result.files.append(path)
                if code != 0:
                    result.messages.append(f"{path.name}: stored with warning {_status_text(status)}")
            else:
                result.failed += 1
                result.messages.append(f"{path.name}: refused by the PACS: {_status_text(status)}")
            if progress is not None:
                progress(len(result.files) + result.failed, result.total, f"sent {path.name}")
    finally:
        finished.set()
        if assoc.is_established:
            assoc.release()
    result.seconds = time.perf_counter() - t0
    return result


__all__ = ["Transfer", "echo", "find", "list_instances", "get", "move", "store", "StorageSCP",
           "storage_contexts", "compressed_syntaxes"]
