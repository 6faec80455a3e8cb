"""Archive-scale re-scoring: the image model and the notes classifier over many cases, in this process or on a
``dask.distributed`` cluster (a LocalCluster of N worker processes, or an existing scheduler), writing to the
shared case store.

Each case is one task (:func:`rescore_if_stale`), run where the workers are: it opens the store from its URL,
reads the case's DICOM files from their paths and appends results tagged with the run, so workers need the store's
URL (PostgreSQL for several machines; an SQLite file works for workers on this machine) and the files' paths.

Idempotent per case and weights: a case whose latest results were made with the current weights of each model (and,
for notes, on the current note version) is skipped, so a run killed half-way is resumed by running it again: the
cases it finished are committed and skipped, the rest are done. The run is recorded in ``rescore_runs``.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from medviewer.store.cases import CaseStore, CaseStoreError
from medviewer.store.rescore import (DEFAULT_IMAGE_MODEL, _image_model_path, _notes_card, result_current,
                                     images_to_score, rescore_case_in_process)

log = logging.getLogger(__name__)


@dataclass
class ArchiveSummary:
    """What a run did: cases asked, re-scored, skipped as current, failed (the task raised), flipped (image call
    changed), note flips (cases where a note finding's model call changed between present and absent), note
    uncertain changes (cases where a note finding moved into or out of "uncertain": not counted as flips), images
    that could not be scored, wall time (s) and cases/s, where it ran."""

    run_id: int
    engine: str
    n_cases: int = 0
    n_rescored: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    n_flipped: int = 0
    n_image_errors: int = 0
    n_notes_flipped: int = 0
    n_notes_uncertain_changed: int = 0
    seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    @property
    def studies_per_s(self) -> float:
        return self.n_cases / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "studies_per_s": round(self.studies_per_s, 2)}


def select_cases(store: CaseStore, *, all_cases: bool = False, since: str = "",
                 studies: list[str] | None = None) -> list[str]:
    """StudyInstanceUIDs to re-score: ``studies`` (each must be a case), or every case with StudyDate on or after
    ``since`` (``YYYYMMDD`` or ``YYYY-MM-DD``), or every case (``all_cases``). Raises CaseStoreError for an
    unknown study and ValueError for a malformed date or no selection."""
    if studies:
        missing = [u for u in studies if store.get_case(u) is None]
        if missing:
            raise CaseStoreError(f"no case for StudyInstanceUID {missing[0]}")
        return list(dict.fromkeys(studies))
    if since:
        text = since.replace("-", "")
        try:
            _dt.datetime.strptime(text, "%Y%m%d")
        except ValueError:
            raise ValueError(f"--since {since!r} is not a date (YYYYMMDD or YYYY-MM-DD)") from None
        return [c.study_instance_uid for c in store.cases() if (c.study_date or "") >= text]
    if all_cases:
        return [c.study_instance_uid for c in store.cases()]
    raise ValueError("say which cases: --all, --since DATE or --study UID...")


def current_weights(image_model_name: str | None, notes: bool) -> dict[str, str]:
    """{model name: weights SHA-256} of the cards on disk for the models a run uses."""
    from medviewer.inference.card import load_card

    out: dict[str, str] = {}
    if image_model_name:
        card = load_card(_image_model_path(image_model_name), verify_sha=False)
        out[card.name] = card.weights_sha256
    if notes:
        ncard = _notes_card()
        out[str(ncard["name"])] = str(ncard.get("weights_sha256", ""))
    return out


def is_current(store: CaseStore, study_uid: str, weights: dict[str, str], image_model: str | None,
               notes_model: str | None, image_version: str | None = None, notes_version: str | None = None) -> bool:
    """True when the case needs nothing: every image to score with ``image_model`` has a latest result made with
    its current weights (and, when ``image_version`` is given, under that card version: a new version of the same
    weights is a new inference recipe, see :func:`medviewer.store.rescore.result_current`; none to score counts as
    current), and its latest note (if any) has a result of ``notes_model``'s current weights (and, when
    ``notes_version`` is given, that card version: a new decision rule) made on that note version."""
    if image_model:
        sha = weights[image_model]
        todo = images_to_score(store, study_uid, image_model)
        if todo:
            latest = {(r.sop_instance_uid, int(r.frame)): r for r in store.latest_ai_results(study_uid, image_model)}
            for sop, frame, _ in todo:
                r = latest.get((sop, frame))
                if r is None or r.weights_sha256 != sha:
                    return False
                if image_version is not None and not result_current(r.weights_sha256, r.model_version, sha,
                                                                    image_version):
                    return False
    if notes_model:
        versions = store.note_versions(study_uid)
        if versions and versions[-1][1].strip():
            results = [r for r in store.note_results(study_uid) if r.model == notes_model]
            last = results[-1] if results else None
            if last is None or last.weights_sha256 != weights[notes_model] or last.note_version_id != versions[-1][0]:
                return False
            if notes_version is not None and str(last.model_version) != str(notes_version):
                return False
    return True


_STORES: dict[str, CaseStore] = {}


def rescore_if_stale(db_url: str, study_uid: str, image_model_name: str | None, notes: bool, run_id: int,
                     weights: dict[str, str], one_thread: bool = False) -> dict:
    """One case, on whichever process runs it (module-level, picklable arguments and result): ``{"skipped": True}``
    when :func:`is_current`, else :func:`medviewer.store.rescore.rescore_case`'s summary. The store and the models
    are cached per process; ``one_thread``: torch uses one thread (a dask worker is one core)."""
    if one_thread:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    store = _STORES.get(db_url)
    if store is None:
        store = _STORES[db_url] = CaseStore(db_url)
    image_name = image_version = None
    if image_model_name:
        from medviewer.inference.card import load_card

        image_card = load_card(_image_model_path(image_model_name), verify_sha=False)
        image_name, image_version = image_card.name, image_card.version
    notes_card = _notes_card() if notes else None
    notes_name = str(notes_card["name"]) if notes_card else None
    notes_version = str(notes_card.get("version", "")) if notes_card else None
    if is_current(store, study_uid, weights, image_name, notes_name, image_version, notes_version):
        return {"study_instance_uid": study_uid, "skipped": True}
    summary = rescore_case_in_process(db_url, study_uid, image_model_name, notes, run_id)
    return {**summary, "skipped": False}


class SchedulerError(RuntimeError):
    """The dask scheduler address is malformed or nothing that speaks dask answers there."""


def check_scheduler_address(address: str) -> str:
    """``address`` if it looks like a dask scheduler address (``tcp://host:port``, ``tls://host:port`` or
    ``host:port``); raises ValueError naming what is wrong."""
    import re

    text = address.strip()
    m = re.match(r"^(?:(tcp|tls|inproc|ucx|ws|wss)://)?(\[[0-9a-fA-F:]+\]|[^:/\s]+):(\d{1,5})$", text)
    if not m or not 1 <= int(m.group(3)) <= 65535:
        raise ValueError(f"--scheduler {address!r} is not a dask scheduler address (tcp://HOST:PORT)")
    return text


def _client(workers: int, scheduler: str):  # noqa: ANN202 - (distributed.Client, cluster or None)
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(check_scheduler_address(scheduler), timeout="15s"), None
        except (OSError, TimeoutError, MemoryError, ValueError) as exc:
            # MemoryError: a non-dask service (e.g. an HTTP server) answered and its bytes were read as a frame size
            raise SchedulerError(f"no dask scheduler at {scheduler}: {type(exc).__name__}: "
                                 f"{' '.join(str(exc).split())[:200]}") from exc
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.WARNING)
    return Client(cluster), cluster


def rescore_archive(store: CaseStore, study_uids: list[str], *, image_model_name: str | None = DEFAULT_IMAGE_MODEL,
                    notes: bool = True, workers: int = 0, scheduler: str = "", reason: str = "archive re-score",
                    progress: Callable[[int, int, str], None] | None = None,
                    cancel: Callable[[], bool] | None = None) -> ArchiveSummary:
    """Re-score ``study_uids`` as one recorded run; returns its :class:`ArchiveSummary`.

    workers = 0 and no scheduler: in this process, one case after another. workers = N: a dask LocalCluster of N
    single-threaded worker processes started for the run. scheduler: an existing dask scheduler's address
    (``tcp://host:8786``); its workers must reach the store URL and the DICOM paths. progress(done, total, uid)
    after each case; cancel() checked between results (a cancelled run keeps what is done; rerun to resume).
    A task that raises is counted failed with its message; it does not stop the run.
    """
    weights = current_weights(image_model_name, notes)
    run_id = store.start_run(reason, weights, len(study_uids))
    engine = f"dask scheduler {scheduler}" if scheduler else (f"dask LocalCluster {workers} workers" if workers
                                                               else "in-process")
    summary = ArchiveSummary(run_id=run_id, engine=engine, n_cases=len(study_uids))
    t0 = time.perf_counter()
    done = 0
    state = "finished"

    def account(uid: str, result: dict | None, error: str = "") -> None:
        nonlocal done
        done += 1
        if error:
            summary.n_failed += 1
            summary.failures.append(f"{uid}: {error}")
            log.warning("re-score of %s failed: %s", uid, error)
        elif result is not None and result.get("skipped"):
            summary.n_skipped += 1
        elif result is not None:
            summary.n_rescored += 1
            summary.n_flipped += int(bool(result.get("flipped")))
            notes = result.get("notes") or {}
            summary.n_notes_flipped += int(bool(notes.get("flipped")))
            summary.n_notes_uncertain_changed += int(bool(notes.get("uncertain_changed")))
            summary.n_image_errors += len(result.get("errors") or [])
        if done % 25 == 0 or done == len(study_uids):
            store.update_run(run_id, n_done=done)
        if progress is not None:
            progress(done, len(study_uids), uid)

    try:
        if not workers and not scheduler:
            for uid in study_uids:
                if cancel is not None and cancel():
                    state = "cancelled"
                    break
                try:
                    account(uid, rescore_if_stale(store.url, uid, image_model_name, notes, run_id, weights))
                except Exception as exc:  # noqa: BLE001 - one case's failure is counted, the run goes on
                    account(uid, None, f"{type(exc).__name__}: {exc}")
        else:
            from distributed import as_completed

            client, cluster = _client(workers, scheduler)
            try:
                futures = {client.submit(rescore_if_stale, store.url, uid, image_model_name, notes, run_id, weights,
                                         True, key=f"rescore-{run_id}-{uid}", pure=False): uid
                           for uid in study_uids}
                for fut in as_completed(futures):
                    uid = futures[fut]
                    if cancel is not None and cancel():
                        state = "cancelled"
                        client.cancel(list(futures))
                        break
                    try:
                        account(uid, fut.result())
                    except Exception as exc:  # noqa: BLE001 - one case's failure is counted, the run goes on
                        account(uid, None, f"{type(exc).__name__}: {exc}")
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
    except BaseException:
        store.update_run(run_id, n_done=done, state="failed")
        raise
    summary.seconds = time.perf_counter() - t0
    store.update_run(run_id, n_done=done, state=state)
    return summary


__all__ = ["ArchiveSummary", "SchedulerError", "check_scheduler_address", "select_cases", "current_weights",
           "is_current", "rescore_if_stale", "rescore_archive"]
