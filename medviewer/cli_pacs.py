"""``medviewer pacs ...``: echo, find, get, send, listen and the configured nodes (no Qt, no torch).

NODE is a configured node's name, ``AET@HOST:PORT`` (DIMSE) or an http(s) DICOMweb base URL. Exit status: 0 on
success, 2 for bad input (an unknown node, a malformed UID or date...), 1 for a failed operation (rejected,
unreachable, no matches, lost connection, some objects not transferred), with one line on stderr saying why.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from medviewer.net.nodes import PacsError

PROG = "medviewer pacs"


def _fail(exc: PacsError) -> int:
    print(f"{PROG}: {exc}", file=sys.stderr)
    return 2 if exc.cause == "bad-input" else 1


class _Progress:
    """Per-object progress on stderr (a rewritten line on a terminal, nothing otherwise)."""

    def __init__(self, verb: str):
        self.verb = verb
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, done: int, total: int | None, _message: str) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if total is not None and done < total and now - self.last < 0.1:
            return
        self.last = now
        sys.stderr.write(f"\r{self.verb} {done}/{total if total is not None else '?'}")
        if total is not None and done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _cancel_on_sigint() -> threading.Event:
    """An Event set by Ctrl-C (the transfer stops cleanly, what arrived is kept for a resume)."""
    cancel = threading.Event()

    def handler(_sig, _frame) -> None:  # noqa: ANN001
        cancel.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    return cancel


def _node(spec: str):  # noqa: ANN202 - PacsNode
    from medviewer.net.nodes import parse_node

    return parse_node(spec)


def cmd_echo(args: argparse.Namespace) -> int:
    from medviewer.net import service

    try:
        node = _node(args.node)
        seconds = service.echo(node)
    except PacsError as exc:
        return _fail(exc)
    print(f"{node.describe()}: {'QIDO-RS' if node.is_dicomweb else 'C-ECHO'} ok in {seconds * 1000:.0f} ms")
    return 0


def cmd_find(args: argparse.Namespace) -> int:
    from medviewer.net import service
    from medviewer.net.query import Query

    try:
        node = _node(args.node)
        query = Query(level=args.level.upper(), patient_id=args.patient_id or "",
                      patient_name=args.patient_name or "", study_date=args.study_date or "",
                      modality=args.modality or "", accession_number=args.accession or "",
                      study_description=args.description or "", study_uid=args.study or "",
                      series_uid=args.series or "").validated()
        rows = service.find(node, query)
    except PacsError as exc:
        return _fail(exc)
    if args.json:
        json.dump({"schema": "medviewer.pacs-find/1", "node": node.describe(), "level": query.level,
                   "query": query.matching(), "results": rows}, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
        return 0
    if not rows:
        print(f"no matches on {node.describe()}", file=sys.stderr)
        return 0
    columns = {"PATIENT": ("PatientID", "PatientName", "PatientBirthDate", "NumberOfPatientRelatedStudies"),
               "STUDY": ("StudyDate", "PatientID", "PatientName", "ModalitiesInStudy", "StudyDescription",
                         "AccessionNumber", "StudyInstanceUID"),
               "SERIES": ("SeriesNumber", "Modality", "SeriesDescription", "NumberOfSeriesRelatedInstances",
                          "SeriesInstanceUID"),
               "IMAGE": ("InstanceNumber", "SOPClassUID", "SOPInstanceUID")}[query.level]
    print("\t".join(columns))
    for r in rows:
        print("\t".join(r.get(c, "") for c in columns))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from medviewer.net import service
    from medviewer.store.cases import CaseStoreError, open_default_store

    try:
        node = _node(args.node)
        from medviewer.net.query import Query

        Query(level="SERIES" if args.series else "STUDY", study_uid=args.study, series_uid=args.series or ""
              ).validated()
        dest = Path(args.dest)
        if dest.exists() and not dest.is_dir():
            raise PacsError(f"--dest {dest} is not a folder", "bad-input")
        dest.mkdir(parents=True, exist_ok=True)
        result = service.retrieve(node, args.study, dest, series_uid=args.series or "", move=args.move,
                                  progress=_Progress("retrieved"), cancel=_cancel_on_sigint())
    except PacsError as exc:
        return _fail(exc)
    except OSError as exc:
        print(f"{PROG}: cannot use --dest {args.dest}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    how = "WADO-RS" if node.is_dicomweb else ("C-MOVE" if args.move else "C-GET")
    rate = len(result.files) / result.seconds if result.seconds > 0 else 0.0
    print(f"{how}: {len(result.files)} retrieved, {result.already} already here, {result.failed} failed, "
          f"of {result.total} ({rate:.1f} images/s)", file=sys.stderr)
    for m in result.messages:
        print(f"warning: {m}", file=sys.stderr)
    if result.cancelled:
        print(f"{PROG}: cancelled after {result.done} of {result.total}; run the same command again to resume",
              file=sys.stderr)
        return 1
    try:
        store = open_default_store()
    except CaseStoreError as exc:
        print(f"{PROG}: retrieved into {dest}, but the case store cannot be opened: {exc}", file=sys.stderr)
        return 1
    try:
        ids, notes = service.register_retrieved(store, dest, args.study)
    except PacsError as exc:
        return _fail(exc)
    finally:
        store.close()
    for n in notes:
        print(f"skipped: {n}", file=sys.stderr)
    from medviewer.net.files import study_folder

    print(study_folder(dest, args.study))
    if not ids:
        print(f"{PROG}: no images in what was retrieved; no case registered", file=sys.stderr)
        return 1
    return 1 if result.failed else 0


def cmd_send(args: argparse.Namespace) -> int:
    from medviewer.net import service

    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        print(f"{PROG}: no such file or folder: {missing[0]}", file=sys.stderr)
        return 2
    files = service.files_of(args.paths)
    if not files:
        print(f"{PROG}: no files to send in {' '.join(args.paths)}", file=sys.stderr)
        return 2
    try:
        node = _node(args.node)
        result = service.send(node, files, progress=_Progress("sent"), cancel=_cancel_on_sigint())
    except PacsError as exc:
        return _fail(exc)
    how = "STOW-RS" if node.is_dicomweb else "C-STORE"
    print(f"{how}: {len(result.files)} sent, {result.failed} failed, of {result.total}"
          + (f" ({result.skipped} files skipped: not DICOM objects to send)" if result.skipped else ""),
          file=sys.stderr)
    for m in result.messages:
        print(f"warning: {m}", file=sys.stderr)
    if result.cancelled:
        print(f"{PROG}: cancelled after {len(result.files)} of {result.total}", file=sys.stderr)
        return 1
    return 1 if result.failed else 0


def cmd_listen(args: argparse.Namespace) -> int:
    """Run our Storage SCP until Ctrl-C; every study received is registered as a case."""
    from medviewer.net.dimse import StorageSCP
    from medviewer.net.nodes import load_settings
    from medviewer.net.service import register_retrieved
    from medviewer.store.cases import CaseStoreError, open_default_store

    settings = load_settings()
    port = args.port if args.port is not None else settings.scp_port
    if not 1 <= port <= 65535:
        print(f"{PROG}: port {port} is not in 1..65535", file=sys.stderr)
        return 2
    dest = Path(args.dest) if args.dest else settings.cache_path()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"{PROG}: cannot use --dest {dest}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if not dest.is_dir():
        print(f"{PROG}: --dest {dest} is not a folder", file=sys.stderr)
        return 2
    try:
        store = open_default_store()
    except CaseStoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    lock = threading.Lock()

    def on_study(study_uid: str, paths: list[Path]) -> None:
        with lock:
            ids, _ = register_retrieved(store, dest, study_uid)
        print(f"received {len(paths)} objects of study {study_uid} -> case {ids}", file=sys.stderr)

    try:
        scp = StorageSCP(dest, settings.our_ae_title, port=port, host=args.host, on_study=on_study).start()
    except PacsError as exc:
        store.close()
        return _fail(exc)
    print(f"{settings.our_ae_title} listening on {args.host or '*'}:{scp.port}, files into {dest} (Ctrl-C stops)",
          file=sys.stderr)
    stop = _cancel_on_sigint()
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scp.stop()
        store.close()
    return 0


def cmd_nodes(args: argparse.Namespace) -> int:
    from medviewer.net.nodes import PacsNode, load_settings, save_settings

    settings = load_settings()
    try:
        if args.action == "add":
            if not args.name:
                raise PacsError("give the node's NAME", "bad-input")
            node = PacsNode(name=args.name, ae_title=args.aet or "", host=args.host or "", port=args.port or 0,
                            url=(args.url or "").rstrip("/"), our_ae_title=args.our_aet or settings.our_ae_title,
                            auth=args.auth or "", username=args.user or "",
                            secret_env=args.secret_env or "MEDVIEWER_PACS_SECRET").validated()
            settings.nodes = [n for n in settings.nodes if n.name.lower() != node.name.lower()] + [node]
            save_settings(settings)
            print(f"saved {node.describe()}")
        elif args.action == "remove":
            before = len(settings.nodes)
            settings.nodes = [n for n in settings.nodes if n.name.lower() != (args.name or "").lower()]
            if len(settings.nodes) == before:
                raise PacsError(f"no node called {args.name!r}", "bad-input")
            save_settings(settings)
        elif args.action == "local":
            from medviewer.net.nodes import check_ae_title

            if args.our_aet:
                settings.our_ae_title = check_ae_title(args.our_aet, "our AE title")
            if args.scp_port is not None:
                if not 1 <= args.scp_port <= 65535:
                    raise PacsError(f"port {args.scp_port} is not in 1..65535", "bad-input")
                settings.scp_port = args.scp_port
            save_settings(settings)
            print(f"our AE title {settings.our_ae_title}, Storage SCP port {settings.scp_port}")
        else:
            print(f"our AE title {settings.our_ae_title}, Storage SCP port {settings.scp_port}, cache "
                  f"{settings.cache_path()}")
            for n in settings.nodes:
                auth = f", {n.auth} auth (secret in ${n.secret_env})" if n.auth else ""
                print(f"{n.name}\t{n.url or f'{n.ae_title}@{n.host}:{n.port}'}\tcalling AE {n.our_ae_title}{auth}")
    except PacsError as exc:
        return _fail(exc)
    return 0


def add_pacs_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pacs", help="query, retrieve from and send to a PACS (DIMSE or DICOMweb)",
                       description="NODE: a configured node's name (see `medviewer pacs nodes`), AET@HOST:PORT "
                                   "(DIMSE) or an http(s) DICOMweb base URL. Exit 0 on success, 2 for bad input, "
                                   "1 for a failed operation.")
    ps = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)

    e = ps.add_parser("echo", help="test the connection (C-ECHO; a QIDO-RS search for DICOMweb)")
    e.add_argument("node", metavar="NODE")
    e.set_defaults(func=cmd_echo)

    f = ps.add_parser("find", help="C-FIND / QIDO-RS at patient, study or series level")
    f.add_argument("node", metavar="NODE")
    f.add_argument("--level", choices=["patient", "study", "series", "image"], default="study")
    f.add_argument("--patient-id", metavar="ID")
    f.add_argument("--patient-name", metavar="NAME", help="wildcards * and ? allowed, e.g. 'SMITH*'")
    f.add_argument("--study-date", metavar="YYYYMMDD[-YYYYMMDD]")
    f.add_argument("--modality", metavar="M")
    f.add_argument("--accession", metavar="NUMBER")
    f.add_argument("--description", metavar="TEXT", help="StudyDescription (wildcards allowed)")
    f.add_argument("--study", metavar="UID", help="StudyInstanceUID (needed at series level)")
    f.add_argument("--series", metavar="UID", help="SeriesInstanceUID (image level)")
    f.add_argument("--json", action="store_true", help="print the results as JSON (schema medviewer.pacs-find/1)")
    f.set_defaults(func=cmd_find)

    g = ps.add_parser("get", help="retrieve a study or series (C-GET, C-MOVE or WADO-RS) and register it as a case")
    g.add_argument("node", metavar="NODE")
    g.add_argument("--study", metavar="UID", required=True)
    g.add_argument("--series", metavar="UID")
    g.add_argument("--move", action="store_true", help="C-MOVE to our Storage SCP (the PACS must know our AE "
                                                       "title, host and port) instead of C-GET")
    g.add_argument("--dest", metavar="DIR", required=True, help="files land in DIR/<StudyInstanceUID>/...; objects "
                                                                "already there are skipped (resume)")
    g.set_defaults(func=cmd_get)

    s = ps.add_parser("send", help="C-STORE / STOW-RS files or folders")
    s.add_argument("node", metavar="NODE")
    s.add_argument("paths", metavar="PATH", nargs="+")
    s.set_defaults(func=cmd_send)

    listen = ps.add_parser("listen", help="run our Storage SCP (receives pushed studies and registers them)")
    listen.add_argument("--port", type=int, help="TCP port (default: the saved Storage SCP port)")
    listen.add_argument("--host", default="", help="address to listen on (default all interfaces)")
    listen.add_argument("--dest", metavar="DIR", help="where received files land (default the PACS cache)")
    listen.set_defaults(func=cmd_listen)

    n = ps.add_parser("nodes", help="list, add or remove configured nodes; set our AE title and SCP port")
    n.add_argument("action", nargs="?", choices=["list", "add", "remove", "local"], default="list")
    n.add_argument("name", nargs="?", metavar="NAME")
    n.add_argument("--aet", help="the PACS's AE title (DIMSE)")
    n.add_argument("--host")
    n.add_argument("--port", type=int)
    n.add_argument("--url", help="DICOMweb base URL")
    n.add_argument("--auth", choices=["basic", "bearer"])
    n.add_argument("--user", help="user name for basic authentication")
    n.add_argument("--secret-env", metavar="VAR", help="environment variable holding the password or token "
                                                       "(default MEDVIEWER_PACS_SECRET); never stored")
    n.add_argument("--our-aet", help="our calling AE title")
    n.add_argument("--scp-port", type=int, help="our Storage SCP port (with `local`)")
    n.set_defaults(func=cmd_nodes)


__all__ = ["add_pacs_parser"]
