"""``medviewer rescore --all|--since DATE|--study UID... [--workers N | --scheduler ADDR]``: re-run the image model
and the notes classifier over many cases of the case store (``MEDVIEWER_DB_URL`` picks a shared PostgreSQL one), in
this process, on a dask LocalCluster of N workers, or on an existing dask scheduler. Cases already scored with the
current weights are skipped, so a killed run resumes by running it again.

Exit 0 when every case was done or skipped, 1 when some failed or the run was interrupted, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time

PROG = "medviewer rescore"


def cmd_rescore(args: argparse.Namespace) -> int:
    from medviewer.store.archive import rescore_archive, select_cases
    from medviewer.store.cases import CaseStoreError, display_url, open_default_store

    if args.workers is not None and args.scheduler:
        print(f"{PROG}: give --workers N or --scheduler ADDR, not both", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"{PROG}: --workers must be 1 or more", file=sys.stderr)
        return 2
    if args.scheduler:
        from medviewer.store.archive import check_scheduler_address

        try:
            check_scheduler_address(args.scheduler)
        except ValueError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
    try:
        store = open_default_store()
    except CaseStoreError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            uids = select_cases(store, all_cases=args.all, since=args.since or "", studies=args.study)
        except (CaseStoreError, ValueError) as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 2
        if not uids:
            print(f"{PROG}: no cases to re-score in {display_url(store.url)}", file=sys.stderr)
            return 0
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, lambda *_: stop.set())
        tty = sys.stderr.isatty()
        last = [0.0]

        def progress(done: int, total: int, _uid: str) -> None:
            now = time.monotonic()
            if tty and (done == total or now - last[0] > 0.2):
                last[0] = now
                sys.stderr.write(f"\rre-scored {done}/{total}")
                sys.stderr.write("\n" if done == total else "")
                sys.stderr.flush()

        where = (f"dask scheduler {args.scheduler}" if args.scheduler
                 else f"{args.workers} dask workers" if args.workers else "in this process")
        print(f"re-scoring {len(uids)} cases of {display_url(store.url)} ({where})", file=sys.stderr)
        summary = rescore_archive(store, uids, image_model_name=None if args.no_image else args.model,
                                  notes=not args.no_notes, workers=args.workers or 0, scheduler=args.scheduler or "",
                                  progress=progress, cancel=stop.is_set)
    except Exception as exc:  # noqa: BLE001 - a scheduler that cannot be reached, a model that cannot load...
        print(f"{PROG}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    if args.json:
        json.dump(summary.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    print(f"run {summary.run_id} ({summary.engine}): {summary.n_rescored} re-scored, {summary.n_skipped} already "
          f"current, {summary.n_failed} failed, {summary.n_flipped} calls changed, {summary.n_image_errors} images "
          f"not scored; {summary.seconds:.1f} s, {summary.studies_per_s:.1f} studies/s", file=sys.stderr)
    if summary.n_notes_flipped or summary.n_notes_uncertain_changed:
        print(f"notes: {summary.n_notes_flipped} cases with a finding flipped (present <-> absent), "
              f"{summary.n_notes_uncertain_changed} with a finding now or no longer uncertain", file=sys.stderr)
    for f in summary.failures[:10]:
        print(f"failed: {f}", file=sys.stderr)
    interrupted = summary.n_rescored + summary.n_skipped + summary.n_failed < summary.n_cases
    if interrupted:
        print(f"{PROG}: interrupted; run the same command again to resume", file=sys.stderr)
    return 1 if summary.n_failed or interrupted else 0


def add_rescore_parser(sub: argparse._SubParsersAction) -> None:
    from medviewer.store.rescore import DEFAULT_IMAGE_MODEL

    p = sub.add_parser("rescore", help="re-run the image model and notes classifier over many cases (dask optional)",
                       description=__doc__.split("\n\n")[0])
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every case")
    which.add_argument("--since", metavar="DATE", help="cases with StudyDate on or after DATE (YYYYMMDD)")
    which.add_argument("--study", metavar="UID", nargs="+", help="these StudyInstanceUIDs")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="a dask LocalCluster of N worker processes")
    where.add_argument("--scheduler", metavar="ADDR", help="an existing dask scheduler, e.g. tcp://host:8786")
    p.add_argument("--model", default=DEFAULT_IMAGE_MODEL, help=f"image model (default {DEFAULT_IMAGE_MODEL})")
    p.add_argument("--no-image", action="store_true", help="do not run the image model")
    p.add_argument("--no-notes", action="store_true", help="do not run the notes classifier")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.set_defaults(func=cmd_rescore)


__all__ = ["add_rescore_parser"]
