"""Re-scoring stored cases with the current models, and the histories that come out of it.

When a model's weights change (a new ``models/<name>/model.safetensors`` with a new card), or the same weights get
a new inference recipe (a new card version: test-time augmentation, temperature, threshold), the results already
in the case store were made by the old model. :func:`stale_models` finds those cases, :func:`rescore` runs the
current image model and notes classifier over them and *appends* the new results (nothing is overwritten, see
:mod:`medviewer.store.schema`), recording the run in ``rescore_runs``; :func:`case_history` lays a case's results
out per run and marks where the call flipped.

Headless (no Qt). torch/transformers are imported only when a model is loaded. The GUI runs the model side in the
model process (:mod:`medviewer.jobs.process`) through :func:`rescore_case_in_process`, passing it to
:func:`rescore` as ``run_case``, so the run bookkeeping stays here and torch never loads in the GUI process.

Times are UTC epoch seconds; scores are P(positive label) in [0, 1].
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from medviewer.jobs import Cancelled, TaskState
from medviewer.notes.states import ABSENT, PRESENT, UNCERTAIN, reviewed_states
from medviewer.store import schema as S
from medviewer.store.cases import AIResult, CaseStore

#: The image model re-scored by default (the bundled default image model).
DEFAULT_IMAGE_MODEL = "pneumonia-chest224"
#: The notes model's folder and card name (``models/notes-minilm``).
NOTES_MODEL = "notes-minilm"
#: Modalities of the 2-D projection radiographs an image model is run on when a case has no results of it yet.
RADIOGRAPH_MODALITIES = ("CR", "DX", "DR")

__all__ = ["DEFAULT_IMAGE_MODEL", "NOTES_MODEL", "RADIOGRAPH_MODALITIES", "case_history", "result_current",
           "images_to_score", "rescore", "rescore_case", "rescore_case_in_process", "stale_models"]


# ------------------------------------------------------------------------------------------------ helpers
def _models_dir(models_dir: str | Path | None) -> Path:
    from medviewer.config import models_dir as default

    return Path(models_dir) if models_dir is not None else default()


def _image_model_path(name_or_path: str | Path, models_dir: str | Path | None = None) -> Path:
    """Folder of an image model given by name (under ``models/``) or by its folder/card path (as ImageModel.load)."""
    path = Path(name_or_path)
    if path.exists():
        return path.parent if path.is_file() else path
    return _models_dir(models_dir) / str(name_or_path)


def _notes_card(models_dir: str | Path | None = None) -> dict:
    """The notes model's card.json (raises FileNotFoundError / JSONDecodeError)."""
    return json.loads((_models_dir(models_dir) / NOTES_MODEL / "card.json").read_text(encoding="utf-8"))


def _case_level(results: list[AIResult]) -> dict | None:
    """Case-level call of a group of image results: the latest result per (image, frame), then, among those with a
    call (not outside the intended use), the one with the highest P(positive). None for no call."""
    latest: dict[tuple[str, int], AIResult] = {}
    for r in results:
        latest[(r.sop_instance_uid, r.frame)] = r
    latest = {k: r for k, r in latest.items() if r.has_call}
    if not latest:
        return None
    top = max(latest.values(), key=lambda r: r.score)
    return {"score": float(top.score), "positive": bool(top.positive), "threshold": float(top.threshold),
            "n_images": len(latest), "top_sop_instance_uid": top.sop_instance_uid}


def _model_positives(findings: list[dict]) -> list[str]:
    """Labels the notes model called present (before the radiologist's decisions), in findings order."""
    return [k for k, st in reviewed_states(findings).items() if st == PRESENT]


def _model_uncertain(findings: list[dict]) -> list[str]:
    """Labels the notes model called uncertain (hedged in the note; before the radiologist's decisions)."""
    return [k for k, st in reviewed_states(findings).items() if st == UNCERTAIN]


def _note_changes(before: list[dict] | None, after: list[dict]) -> dict:
    """How the notes model's calls changed from the findings ``before`` (None: no earlier result) to ``after``.

    ``changes``: every label whose state changed, ``{"label", "before", "after"}`` (a label missing from one side is
    absent there), in ``after``'s label order then ``before``'s; ``appeared`` / ``disappeared``: absent -> present
    / present -> absent; ``flipped``: any of those (a call that changed between present and absent);
    ``uncertain_changed``: a label moved into or out of "uncertain" (present or absent <-> uncertain), which is
    listed in ``changes`` but is not a flip. All empty / False when there is no earlier result."""
    if before is None:
        return {"changes": [], "appeared": [], "disappeared": [], "flipped": False, "uncertain_changed": False}
    b, a = reviewed_states(before), reviewed_states(after)
    changes = [{"label": k, "before": b.get(k, ABSENT), "after": a.get(k, ABSENT)}
               for k in [*a, *(k for k in b if k not in a)] if b.get(k, ABSENT) != a.get(k, ABSENT)]
    appeared = [c["label"] for c in changes if (c["before"], c["after"]) == (ABSENT, PRESENT)]
    disappeared = [c["label"] for c in changes if (c["before"], c["after"]) == (PRESENT, ABSENT)]
    return {"changes": changes, "appeared": appeared, "disappeared": disappeared,
            "flipped": bool(appeared or disappeared),
            "uncertain_changed": any(UNCERTAIN in (c["before"], c["after"]) for c in changes)}


# ------------------------------------------------------------------------------------------------ what to score
def images_to_score(store: CaseStore, study_uid: str, model_name: str) -> list[tuple[str, int, str]]:
    """The images of a case to (re-)score with ``model_name``, as ``(SOPInstanceUID, frame, file path)``.

    The images that already have results of that model in the case (each (image, frame) once, in case image
    order; path ``""`` when the image is no longer in the case's image list); if there are none, the case's
    2-D radiographs: modality in :data:`RADIOGRAPH_MODALITIES` and a single frame, frame 0.

    Raises CaseStoreError for an unknown case.
    """
    images = store.case_images(study_uid)
    paths = {img["sop_instance_uid"]: img["path"] for img in images}
    order = {img["sop_instance_uid"]: k for k, img in enumerate(images)}
    seen: dict[tuple[str, int], None] = {}
    for r in store.ai_results(study_uid, model_name):
        seen.setdefault((r.sop_instance_uid, int(r.frame)), None)
    if seen:
        keys = sorted(seen, key=lambda k: (order.get(k[0], len(order)), k[0], k[1]))
        return [(sop, frame, paths.get(sop, "")) for sop, frame in keys]
    return [(img["sop_instance_uid"], 0, img["path"]) for img in images
            if str(img["modality"]).upper() in RADIOGRAPH_MODALITIES and int(img["number_of_frames"] or 1) <= 1]


# ------------------------------------------------------------------------------------------------ one case
def _rescore_images(store: CaseStore, study_uid: str, image_model, run_id: int | None,  # noqa: ANN001
                    errors: list[dict]) -> dict:
    from medviewer.inference.frames import read_frame

    card = image_model.card
    latest = store.latest_ai_results(study_uid, card.name)
    before = _case_level(latest)
    forced = {(r.sop_instance_uid, r.frame) for r in latest if r.status == "scored_anyway"}
    todo = images_to_score(store, study_uid, card.name)
    new_ids: list[int] = []
    new_results: list[AIResult] = []
    for sop, frame, path in todo:
        try:
            if not path:
                raise FileNotFoundError("the image is no longer in the case's image list")
            mf = read_frame(path, frame)
            if mf.sop_instance_uid and mf.sop_instance_uid != sop:
                raise ValueError(f"the file now holds SOPInstanceUID {mf.sop_instance_uid}, not {sop}")
            # the reader's "score anyway" on an image outside the intended use carries over to the new weights
            res = image_model.score_frame(mf, explain="gradcam", force=(sop, frame) in forced)
        except Exception as exc:  # noqa: BLE001 - one unreadable image must not stop the run; it is reported
            err = {"sop_instance_uid": sop, "frame": frame, "path": path, "model": card.name,
                   "error": f"{type(exc).__name__}: {exc}"}
            errors.append(err)
            store.log_event(study_uid, "rescore error", run_id=run_id, **err)
            continue
        rid = store.add_ai_result(study_uid, res, run_id=run_id)
        new_ids.append(rid)
        new_results.append(AIResult(
            id=rid, case_id=0, sop_instance_uid=sop, frame=frame, model=res.model, model_version=res.version,
            weights_sha256=res.weights_sha256, probabilities=res.probabilities, positive_label=res.positive_label,
            score=float(res.probabilities.get(res.positive_label, 0.0)), threshold=float(res.threshold),
            positive=bool(res.positive), status=res.status, scope_reason=res.scope_reason))
    after = _case_level(new_results)
    return {
        "model": card.name, "model_version": card.version, "weights_sha256": card.weights_sha256,
        "n_images": len(todo), "n_scored": len(new_ids), "result_ids": new_ids,
        "before": before, "after": after,
        "flipped": bool(before and after and before["positive"] != after["positive"]),
    }


def _rescore_notes(store: CaseStore, study_uid: str, note_classifier, run_id: int | None) -> dict:  # noqa: ANN001
    card = note_classifier.card
    versions = store.note_versions(study_uid)
    base = {"model": str(card["name"]), "model_version": str(card["version"]),
            "weights_sha256": str(card.get("weights_sha256", ""))}
    if not versions or not versions[-1][1].strip():
        return {**base, "skipped": "no note", "result_id": None, "before": None, "after": None,
                "uncertain_before": None, "uncertain_after": None, "appeared": [], "disappeared": [], "changes": [],
                "decisions": {}, "flipped": False, "uncertain_changed": False}
    previous = store.note_results(study_uid)
    last = previous[-1] if previous else None
    decisions = dict(last.decisions) if last else {}
    findings = note_classifier.classify([versions[-1][1]])[0].to_dict()["findings"]
    rid = store.save_findings(study_uid, findings, decisions, base["model"], base["model_version"],
                              weights_sha256=base["weights_sha256"], run_id=run_id)
    return {**base, "skipped": "", "result_id": rid, "note_version_id": versions[-1][0],
            "before": _model_positives(last.findings) if last else None, "after": _model_positives(findings),
            "uncertain_before": _model_uncertain(last.findings) if last else None,
            "uncertain_after": _model_uncertain(findings), "decisions": decisions,
            **_note_changes(last.findings if last else None, findings)}


def rescore_case(store: CaseStore, study_uid: str, *, image_model=None, note_classifier=None,  # noqa: ANN001
                 run_id: int | None = None) -> dict:
    """Re-run the models on one case and append the results (tagged ``run_id``); returns a summary.

    ``image_model`` (a loaded :class:`medviewer.inference.scorer.ImageModel`) scores :func:`images_to_score` with a
    Grad-CAM heat map each (stored as a small PNG by ``add_ai_result``). ``note_classifier`` (a loaded
    :class:`medviewer.notes.model.NoteClassifier`) classifies the case's latest note version; the radiologist's
    decisions of the latest note result are carried over to the new one, and the findings are stored with their
    states (present / absent / uncertain). Either may be None (skipped).

    The summary (JSON-able, picklable)::

        {"study_instance_uid", "run_id",
         "image": None | {"model", "model_version", "weights_sha256", "n_images", "n_scored", "result_ids",
                          "before": None | {"score", "positive", "threshold", "n_images", "top_sop_instance_uid"},
                          "after": same, "flipped": bool},
         "notes": None | {"model", "model_version", "weights_sha256", "skipped" ("" or why), "result_id",
                          "before": [labels] | None, "after": [labels] | None (labels the model called present),
                          "uncertain_before", "uncertain_after" (labels it called uncertain), "changes",
                          "appeared", "disappeared", "decisions", "flipped": bool, "uncertain_changed": bool},
         "score_before", "score_after", "positive_before", "positive_after", "flipped" (image call changed),
         "errors": [{"sop_instance_uid", "frame", "path", "model", "error"}]}

    Case-level score = max P(positive) over the case's images (the latest result of each); its positive call is
    that image's. The notes' ``flipped`` counts a finding whose model call changed between present and absent;
    a finding that moved into or out of "uncertain" is in ``changes`` with ``uncertain_changed`` True, not a flip
    (see :func:`_note_changes`). The top-level ``flipped`` is the image call's. An image that cannot be read or
    scored is reported in ``errors`` (and as a "rescore error" event of the case), never raised.

    Raises CaseStoreError for an unknown case.
    """
    errors: list[dict] = []
    image = _rescore_images(store, study_uid, image_model, run_id, errors) if image_model is not None else None
    notes = _rescore_notes(store, study_uid, note_classifier, run_id) if note_classifier is not None else None
    before = image["before"] if image else None
    after = image["after"] if image else None
    return {
        "study_instance_uid": study_uid, "run_id": run_id, "image": image, "notes": notes,
        "score_before": before["score"] if before else None, "score_after": after["score"] if after else None,
        "positive_before": before["positive"] if before else None,
        "positive_after": after["positive"] if after else None,
        "flipped": bool(image and image["flipped"]), "errors": errors,
    }


# ------------------------------------------------------------------------------------------------ a run
def rescore(store: CaseStore, study_uids: list[str] | None = None, *,
            image_model_name: str | None = DEFAULT_IMAGE_MODEL, notes: bool = True, reason: str = "on demand",
            state: TaskState | None = None, image_model=None, note_classifier=None,  # noqa: ANN001
            run_case: Callable[[str, int], dict] | None = None,
            on_case: Callable[[dict], None] | None = None) -> int:
    """Re-score cases as one recorded run; returns the ``rescore_runs`` id.

    study_uids: the cases, in order (None: every case, newest study first).
    image_model_name: the image model to run (a name under ``models/`` or a model folder/card path), None for
        none. ``image_model`` (already loaded) takes its place when given.
    notes: also re-classify the latest note of each case with the notes model (``note_classifier`` when given).
    reason: why, stored with the run ("on demand", "weights changed: pneumonia-cnn", ...).
    state: progress ``state.progress(done, total, study uid)`` after each case; cancellation is checked between
        cases: on :class:`medviewer.jobs.Cancelled` the run is marked "cancelled", what is done is kept, and the
        exception is re-raised. (With ``run_case`` through the model process, a case in flight when the cancel
        came is still finished and written by the child; it is not counted in ``n_done``.)
    run_case: ``run_case(study_uid, run_id) -> summary`` replaces the in-process :func:`rescore_case` (the GUI
        passes a call of :func:`rescore_case_in_process` in the model process); models are then not loaded here.
    on_case: called with each case's summary (see :func:`rescore_case`).

    The run row records {model name: weights SHA-256} of the cards, the number of cases and of cases done, and
    ends "finished", "cancelled" or "failed" (any other exception, re-raised). Unreadable images do not fail a
    run: they are in the case summaries.
    """
    state = state or TaskState()
    uids = list(study_uids) if study_uids is not None else [c.study_instance_uid for c in store.cases()]
    models: dict[str, str] = {}
    if image_model is not None:
        models[image_model.card.name] = image_model.card.weights_sha256
    elif image_model_name:
        from medviewer.inference.card import load_card

        card = load_card(_image_model_path(image_model_name), verify_sha=False)
        models[card.name] = card.weights_sha256
    if note_classifier is not None:
        models[str(note_classifier.card["name"])] = str(note_classifier.card.get("weights_sha256", ""))
    elif notes:
        ncard = _notes_card()
        models[str(ncard["name"])] = str(ncard.get("weights_sha256", ""))
    run_id = store.start_run(reason, models, len(uids))
    done = 0
    try:
        if run_case is None:
            if image_model is None and image_model_name:
                from medviewer.inference.scorer import ImageModel

                image_model = ImageModel.load(image_model_name)
            if note_classifier is None and notes:
                from medviewer.notes.model import NoteClassifier

                note_classifier = NoteClassifier.load()
        state.progress(0, len(uids), "")
        for uid in uids:
            state.check()
            if run_case is not None:
                summary = run_case(uid, run_id)
            else:
                summary = rescore_case(store, uid, image_model=image_model, note_classifier=note_classifier,
                                       run_id=run_id)
            done += 1
            store.update_run(run_id, n_done=done)
            if on_case is not None:
                on_case(summary)
            state.progress(done, len(uids), uid)
    except Cancelled:
        store.update_run(run_id, n_done=done, state="cancelled")
        raise
    except BaseException:
        store.update_run(run_id, n_done=done, state="failed")
        raise
    store.update_run(run_id, n_done=done, state="finished")
    return run_id


# ------------------------------------------------------------------------------------------------ model process
_STORES: dict[str, CaseStore] = {}


def _cached_image_model(name_or_path: str):  # noqa: ANN202
    """The image model from the model process's cache (shared with :mod:`medviewer.inference.service`), reloaded
    when the card on disk now names other weights or another version (so a run after a weights or recipe change
    uses the new ones)."""
    from medviewer.inference import service
    from medviewer.inference.card import load_card
    from medviewer.inference.scorer import ImageModel

    cached = service._MODELS.get(name_or_path)  # noqa: SLF001 - the process-wide cache of loaded image models
    card = load_card(_image_model_path(name_or_path), verify_sha=False)
    if cached is None or not result_current(cached.card.weights_sha256, cached.card.version,
                                                  card.weights_sha256, card.version):
        cached = service._MODELS[name_or_path] = ImageModel.load(name_or_path)  # noqa: SLF001
    return cached


def _cached_note_classifier():  # noqa: ANN202
    """The notes classifier from :mod:`medviewer.notes.service`'s cache, reloaded when the card on disk names other
    weights or another version (a new decision rule) than the loaded one."""
    from medviewer.notes import service
    from medviewer.notes.model import NoteClassifier

    cached = service._CACHE.get("m")  # noqa: SLF001 - the process-wide cache of the loaded classifier
    card = _notes_card()
    if cached is None or not result_current(str(cached.card.get("weights_sha256", "")), str(cached.card["version"]),
                                            str(card.get("weights_sha256", "")), str(card.get("version", ""))):
        cached = service._CACHE["m"] = NoteClassifier.load(_models_dir(None) / NOTES_MODEL, threads=1)  # noqa: SLF001
    return cached


def rescore_case_in_process(db_url: str, study_uid: str, image_model_name: str | None, notes: bool,
                            run_id: int | None) -> dict:
    """:func:`rescore_case` for the model process (:data:`medviewer.jobs.process.MODEL_PROCESS`): module-level,
    picklable arguments and result. The store (``CaseStore(db_url)``) and the models are cached per process; a
    model is reloaded when its card on disk names other weights than the loaded one.

    Use from a GUI worker thread::

        rescore(store, uids, state=state, run_case=lambda uid, run: MODEL_PROCESS.call(
            state, rescore_case_in_process, store.url, uid, DEFAULT_IMAGE_MODEL, True, run))
    """
    store = _STORES.get(db_url)
    if store is None:
        store = _STORES[db_url] = CaseStore(db_url)
    image_model = _cached_image_model(image_model_name) if image_model_name else None
    note_classifier = _cached_note_classifier() if notes else None
    return rescore_case(store, study_uid, image_model=image_model, note_classifier=note_classifier, run_id=run_id)


# ------------------------------------------------------------------------------------------------ staleness
def _latest_per_case(store: CaseStore, table, model: str) -> dict[str, Any]:  # noqa: ANN001 - sqlalchemy Table
    """{StudyInstanceUID: latest row (id order) of ``table`` (ai_results / note_results) for ``model``}."""
    q = (select(S.cases.c.study_instance_uid, table.c.id, table.c.weights_sha256, table.c.model_version)
         .join(S.cases, S.cases.c.id == table.c.case_id).where(table.c.model == model).order_by(table.c.id))
    latest: dict[str, Any] = {}
    with store.engine.begin() as conn:
        for r in conn.execute(q):
            latest[r.study_instance_uid] = r
    return latest


def _supersedes(card) -> list[str]:  # noqa: ANN001 - ModelCard
    """Names of the models this one replaces (the card's ``supersedes`` list)."""
    return [str(n) for n in card.extra.get("supersedes", []) if str(n) != card.name]


def result_current(result_sha: str, result_version: str, card_sha: str, card_version: str) -> bool:
    """True when a stored result (image or notes model) was made by the card's weights *and* under the card's
    version (a result that records no weights SHA-256 is judged by its version alone).

    The same weights can be run another way (an image model's inference recipe: test-time augmentation,
    temperature, threshold, see the card's ``inference``; the notes model's decision rule, see its card's
    ``decision``), which the card marks with a new version; results of the old version are then stale even though
    the weights SHA-256 is the same. Used by :func:`stale_models`, the archive run's ``is_current``, the model
    process's caches and the viewer's stored results."""
    return str(result_version) == str(card_version) and (not result_sha or result_sha == card_sha)


def _stale(latest: dict[str, Any], sha: str, version: str) -> list[str]:
    return [uid for uid, r in latest.items() if not result_current(r.weights_sha256, r.model_version, sha, version)]


def stale_models(store: CaseStore, models_dir: str | Path | None = None) -> dict[str, list[str]]:
    """{model name: StudyInstanceUIDs of the cases whose latest result of that model was made by other weights
    or another inference recipe / decision rule}.

    Covers every image model card under ``models_dir`` (default :func:`medviewer.config.models_dir`) and the
    notes model (``notes-minilm/card.json``, its ``weights_sha256`` is the adapter's SHA-256). A case's latest
    result (highest id) of a model is stale unless it records the card's weights SHA-256 and the card's version
    (:func:`result_current`: a new version of the same weights is a new recipe; a result that records no SHA-256,
    e.g. notes findings saved by the notes pane, is judged by its version alone). Every model with a card is a
    key, with an empty list when nothing is stale. Only JSON is read (no torch).
    """
    from medviewer.inference.card import find_cards

    directory = _models_dir(models_dir)
    out: dict[str, list[str]] = {}
    for card in find_cards(directory):
        stale = _stale(_latest_per_case(store, S.ai_results, card.name), card.weights_sha256, card.version)
        # A model that replaces others (the card's "supersedes"): cases whose latest result came from a model it
        # replaced are stale too (a new default model re-scores what the old default scored).
        for old in _supersedes(card):
            latest_new = _latest_per_case(store, S.ai_results, card.name)
            for uid, r_old in _latest_per_case(store, S.ai_results, old).items():
                r_new = latest_new.get(uid)
                if (r_new is None or r_new.id < r_old.id) and uid not in stale:
                    stale.append(uid)
        out[card.name] = sorted(stale)
    try:
        ncard = _notes_card(directory)
    except (OSError, ValueError):
        return out
    name = str(ncard.get("name", NOTES_MODEL))
    out[name] = _stale(_latest_per_case(store, S.note_results, name), str(ncard.get("weights_sha256", "")),
                       str(ncard.get("version", "")))
    return out


# ------------------------------------------------------------------------------------------------ history
def _image_history(results: list[AIResult]) -> list[dict]:
    groups: list[list[AIResult]] = []
    by_run: dict[int, list[AIResult]] = {}
    last_key: tuple | None = None
    for r in results:
        if r.run_id is not None:
            if r.run_id not in by_run:
                by_run[r.run_id] = []
                groups.append(by_run[r.run_id])
            by_run[r.run_id].append(r)
            last_key = None
        else:  # interactive scoring: consecutive results of the same weights are one entry
            key = (r.model, r.weights_sha256, r.model_version)
            if key != last_key:
                groups.append([])
                last_key = key
            groups[-1].append(r)
    out: list[dict] = []
    for g in groups:
        level = _case_level(g)
        last = g[-1]
        prev = next((e for e in reversed(out) if e["score"] is not None), None)
        if level is None:  # every image outside the model's intended use: no call to compare
            out.append({
                "kind": "image", "model": last.model, "model_version": last.model_version,
                "weights_sha256": last.weights_sha256, "run_id": last.run_id, "time": max(r.created_at for r in g),
                "score": None, "positive": None, "threshold": last.threshold,
                "n_images": len({(r.sop_instance_uid, r.frame) for r in g}), "result_ids": [r.id for r in g],
                "score_change": None, "flipped": False, "status": "out_of_scope", "scope_text": last.scope_text(),
            })
            continue
        out.append({
            "kind": "image", "model": last.model, "model_version": last.model_version,
            "weights_sha256": last.weights_sha256, "run_id": last.run_id, "time": max(r.created_at for r in g),
            "score": level["score"], "positive": level["positive"], "threshold": level["threshold"],
            "n_images": level["n_images"], "result_ids": [r.id for r in g],
            "score_change": level["score"] - prev["score"] if prev else None,
            "flipped": bool(prev is not None and prev["positive"] != level["positive"]),
            "status": "scored",
        })
    return out


def case_history(store: CaseStore, study_uid: str, model_name: str) -> list[dict]:
    """The case's results of ``model_name`` per run, oldest first.

    For an image model, one entry per re-score run (results sharing a ``run_id``) or per block of interactive
    results made with the same weights, including the results of the models its card ``supersedes`` (so the
    history shows where the call flipped when the default model changed): ``{"kind": "image", "model",
    "model_version", "weights_sha256", "run_id",
    "time" (UTC epoch s), "score" (case-level max P(positive) over the entry's images), "positive" (that image's
    call), "threshold", "n_images", "result_ids", "score_change" (vs the previous entry, None first), "flipped"
    (the positive call differs from the previous entry's)}``.

    For the notes model (when the case has no image results of ``model_name`` but note results), one entry per
    note result: ``{"kind": "notes", "model", "model_version", "weights_sha256", "run_id", "time",
    "note_version_id", "result_id", "positives" (labels the model called present), "uncertain" (labels it called
    uncertain: hedged in the note), "effective", "effective_uncertain" (the same with the radiologist's
    decisions), "decisions", "changes" ([{"label", "before", "after"}] model states that changed vs the previous
    entry), "appeared" (absent -> present), "disappeared" (present -> absent), "flipped" (any appeared or
    disappeared), "uncertain_changed" (a finding moved into or out of uncertain: shown, not a flip)}``. Findings
    stored before three states read as present when positive, else absent.

    Raises CaseStoreError for an unknown case.
    """
    names = [model_name]
    try:
        from medviewer.inference.card import load_card

        names += _supersedes(load_card(_image_model_path(model_name), verify_sha=False))
    except (OSError, ValueError):
        pass  # no card (a model no longer installed): its own results only
    results = sorted((r for n in names for r in store.ai_results(study_uid, n)), key=lambda r: r.id)
    if results:
        return _image_history(results)
    out: list[dict] = []
    prev: list[dict] | None = None
    for r in store.note_results(study_uid):
        if r.model != model_name:
            continue
        out.append({"kind": "notes", "model": r.model, "model_version": r.model_version,
                    "weights_sha256": r.weights_sha256, "run_id": r.run_id, "time": r.created_at,
                    "note_version_id": r.note_version_id, "result_id": r.id,
                    "positives": _model_positives(r.findings), "uncertain": _model_uncertain(r.findings),
                    "effective": r.positives, "effective_uncertain": r.uncertain, "decisions": dict(r.decisions),
                    **_note_changes(prev, r.findings)})
        prev = r.findings
    return out
