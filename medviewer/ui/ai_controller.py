"""The image AI in the window: score the focused image (or its series) in the model process, show the call and
the heat map, keep results per image, and bring back stored results when a case is opened again.

Follows the session: the AI dock shows only the focused image's result (cleared the moment another image, series
or case is focused); a result arrives for the :class:`~medviewer.session.Context` it was computed for and is
dropped when that image is no longer shown (job kinds "ai" and "ai-stored").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from medviewer.inference.scorer import DEFAULT_MODEL
from medviewer.jobs import TaskState
from medviewer.session import Change, Context, ImageRef, Session
from medviewer.ui.ai_panel import METHOD_NAMES, AIPanel, ScoreRequest, run_scoring
from medviewer.ui.viewports import ViewportBinding
from medviewer.ui.workers import JobRunner, StoreWriter

log = logging.getLogger(__name__)

CacheKey = tuple  # (StudyInstanceUID, SOPInstanceUID, frame, model, weights SHA-256, method, class)


def stored_as_result(ai, shape: tuple[int, int]):  # noqa: ANN001, ANN201 - store AIResult -> ScoreResult
    """A stored :class:`medviewer.store.cases.AIResult` as a :class:`medviewer.inference.scorer.ScoreResult`
    for display: its heat map (stored as an 8-bit PNG of at most 256 px a side) resampled to the image's
    (rows, cols) ``shape`` the way the report overlays it (:func:`medviewer.report.render.resize_heatmap`)."""
    from medviewer.inference.scorer import ScoreResult
    from medviewer.report.render import resize_heatmap

    heat = ai.heatmap()
    if heat is not None:
        heat = resize_heatmap(heat, int(shape[0]), int(shape[1]))
    return ScoreResult(sop_instance_uid=ai.sop_instance_uid, model=ai.model, version=ai.model_version,
                       weights_sha256=ai.weights_sha256, probabilities=dict(ai.probabilities),
                       threshold=ai.threshold, positive_label=ai.positive_label, positive=ai.positive, frame=ai.frame,
                       heatmap=heat, heatmap_label=ai.heatmap_label, heatmap_method=ai.heatmap_method,
                       status=ai.status, scope_reason=ai.scope_reason, warnings=list(ai.warnings),
                       ood_score=ai.ood_score)


class AIController(QObject):
    """Signals: ``finished()`` when a run's results are shown (or there was nothing to compute); ``status(text)``."""

    finished = Signal()
    status = Signal(str)

    def __init__(self, session: Session, binding: ViewportBinding, panel: AIPanel, runner: JobRunner, store,
                 writer: StoreWriter, parent: QObject | None = None):  # noqa: ANN001 - CaseStore
        super().__init__(parent)
        self.session, self.binding, self.panel, self.runner = session, binding, panel, runner
        self.store, self.writer = store, writer
        self.cache: dict[CacheKey, object] = {}
        self.blocked: Callable[[], dict[str, str]] | None = None  # cases whose results must not be stored
        self._cards: dict[str, dict] = {}
        panel.run_requested.connect(self.run)
        panel.force_requested.connect(lambda: self.run(False, force=True))
        panel.cancel_requested.connect(self.cancel)
        panel.overlay_changed.connect(self._overlay_changed)
        session.subscribe(self._session_changed)

    # ------------------------------------------------------------------------------------------------ model card
    def card(self, name: str | None = None) -> dict:
        """The card of model ``name`` (default: the panel's) as JSON, {} when unreadable; read once per model
        (this runs on every slice change, which must not touch the disk)."""
        name = name or self.panel.model_name or DEFAULT_MODEL
        if name not in self._cards:
            from medviewer.config import models_dir

            try:
                self._cards[name] = json.loads((models_dir() / name / "card.json").read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("model card of %s unreadable: %s", name, exc)
                return {}
        return self._cards[name]

    def positive_label(self) -> str:
        return str(self.card().get("positive_label", "pneumonia"))

    def target(self) -> str | None:
        """The class the heat map explains: the panel's choice, else the model's positive label."""
        if self.panel.target:
            return self.panel.target
        card = self.card()
        labels = card.get("labels") or [None]
        return card.get("positive_label", labels[-1])

    def key(self, image: ImageRef | None) -> CacheKey | None:
        if image is None:
            return None
        name = self.panel.model_name
        return (image.study_uid, image.sop_instance_uid, image.frame, name,
                str(self.card(name).get("weights_sha256", "")), self.panel.method, self.target())

    def lookup(self, image: ImageRef | None):  # noqa: ANN201 - ScoreResult | None
        """The result for ``image`` with the current model, method and class; failing that, one with the same
        weights and another map (the call is the same; a reopened case's stored result)."""
        key = self.key(image)
        if key is None:
            return None
        if key in self.cache:
            return self.cache[key]
        return next((r for k, r in self.cache.items() if k[:5] == key[:5]), None)

    # ------------------------------------------------------------------------------------------------ running
    def run(self, series: bool = False, force: bool = False) -> None:
        """Score the focused image (or every decoded slice of its series) with a heat map, through the
        intended-use gate (``force``: "score anyway", recorded as such). Cached per image, model, weights,
        method and class."""
        from medviewer.inference.frames import frame_from_volume

        slot, image = self.session.active_slot, self.session.image
        viewer = self.binding.viewer(slot)
        vol, entry = viewer.volume, self.binding.entry(slot)
        if vol is None or image is None or entry is None or vol.stack is not entry.stack:
            self.status.emit("Run AI: open an image first")
            return
        if not self.panel.model_name:
            self.status.emit("Run AI: no model")
            return
        indices = range(vol.array.shape[0]) if series else [viewer.state.index]
        items = []
        for k in indices:
            if vol.ready is not None and not vol.ready[k]:
                continue
            ref = entry.stack.slices[k]
            key = self.key(ImageRef(image.study_uid, image.series_uid, image.stack_key,
                                    ref.instance.sop_instance_uid, ref.frame.index, k))
            if not force and key in self.cache:
                self._show(image.study_uid, self.cache[key])
                continue
            items.append((k, frame_from_volume(vol, k)))
        if not items:
            self.finished.emit()
            return
        request = ScoreRequest(self.panel.model_name, tuple(items), self.panel.method, self.target(), force)
        context = Context.of_series(image) if series else Context.of_image(image)
        self.runner.submit("ai", lambda state: run_scoring(request, state), context=context,
                           on_progress=lambda d, t, _m: self.panel.set_progress(d, t),
                           on_result=lambda results: self._scored(image, request, results),
                           on_failed=lambda msg: self._stopped("AI failed: " + msg.splitlines()[0]),
                           on_cancelled=lambda: self._stopped("AI run cancelled"))
        self.panel.set_busy(True)
        n = len(items)
        self.status.emit(f"Scoring {n} image{'s' if n != 1 else ''} with {self.panel.model_name}...")

    def cancel(self) -> None:
        self.runner.cancel("ai")

    def _stopped(self, message: str) -> None:
        self.panel.set_busy(False)
        self.panel.clear_result(message)

    def _scored(self, image: ImageRef, request: ScoreRequest, results: list) -> None:
        self.panel.set_busy(False)
        sha = str(self.card(request.model).get("weights_sha256", ""))
        study = image.study_uid
        for _k, res in results:
            self.cache[(study, res.sop_instance_uid, res.frame, request.model, sha, request.method,
                        request.target)] = res
            self._show(study, res)
            if self.can_store(study):
                self.writer.submit(self.store.add_ai_result, study, res, label=f"case:{study}")
        n = len(results)
        if self.session.is_focused(Context.of_series(image)):  # the status bar speaks of what is focused
            self.status.emit(f"AI: {n} image{'s' if n != 1 else ''} scored (research use only, not for diagnosis)")
        self.finished.emit()

    def _show(self, study_uid: str, res) -> None:  # noqa: ANN001 - ScoreResult
        """Draw ``res``'s heat map in every visible viewport whose stack holds its image (StudyInstanceUID,
        SOPInstanceUID, frame), on that image's slice; fill the dock only when the focused image is that one."""
        for slot in self.session.visible_slots():
            image, entry = self.session.viewports[slot].image, self.binding.entry(slot)
            viewer = self.binding.viewer(slot)
            vol = viewer.volume
            if image is None or entry is None or image.study_uid != study_uid or vol is None \
                    or vol.stack is not entry.stack:
                continue
            for k, ref in enumerate(entry.stack.slices):
                if (ref.instance.sop_instance_uid, ref.frame.index) != (res.sop_instance_uid, res.frame):
                    continue
                if res.heatmap is not None and res.heatmap.shape == vol.array.shape[1:3]:
                    caption = (f"{METHOD_NAMES.get(res.heatmap_method, res.heatmap_method)}: {res.heatmap_label} "
                               f"({res.model} {res.version})")
                    viewer.set_heatmap(k, res.heatmap, caption)
        focused = self.session.image
        if focused is not None and (focused.study_uid, focused.sop_instance_uid, focused.frame) == (
                study_uid, res.sop_instance_uid, res.frame):
            self.panel.show_result(res)

    def can_store(self, study_uid: str) -> bool:
        """False for a case the store cannot keep apart (see CaseController.blocked)."""
        return self.blocked is None or study_uid not in self.blocked()

    # ------------------------------------------------------------------------------------------------ session
    def _session_changed(self, change: Change) -> None:
        if change.what == "view" or not change.focus_level:
            return
        self.panel.set_busy(False)  # a run for the image left behind goes on for its viewport, not in this dock
        image = self.session.image
        res = self.lookup(image)
        if res is not None:
            self.panel.show_result(res)
        else:
            self.panel.clear_result("No result for this image yet" if image is not None else "No image")
        if image is not None and change.focus_level in ("case", "series"):
            self._load_stored(image)

    def _load_stored(self, image: ImageRef) -> None:
        """Bring the case's stored results (latest per image, current weights and card version) back into the
        cache and on screen: a reopened case shows its calls and heat maps without re-scoring."""
        entry = self.binding.entry(self.session.active_slot)
        if entry is None:
            return
        model = self.panel.model_name or DEFAULT_MODEL
        sha = str(self.card(model).get("weights_sha256", ""))
        version = str(self.card(model).get("version", ""))
        store, study = self.store, image.study_uid
        shapes = {(r.instance.sop_instance_uid, r.frame.index): (k, (r.instance.rows, r.instance.columns))
                  for k, r in enumerate(entry.stack.slices)}

        def work(state: TaskState) -> list:
            from medviewer.store.rescore import result_current

            out = []
            for ai in store.latest_ai_results(study, model):
                state.check()
                where = shapes.get((ai.sop_instance_uid, ai.frame))
                if where is not None and ai.weights_sha256 == sha and result_current(
                        ai.weights_sha256, ai.model_version, sha, version):
                    out.append((where[0], stored_as_result(ai, where[1])))
            return out

        self.runner.submit("ai-stored", work, context=Context.of_series(image),
                           on_result=lambda found: self._show_stored(image, found, sha))

    def _show_stored(self, image: ImageRef, found: list, sha: str) -> None:
        for _k, res in found:
            key = (image.study_uid, res.sop_instance_uid, res.frame, res.model, sha, res.heatmap_method,
                   res.heatmap_label)
            self.cache.setdefault(key, res)
            self._show(image.study_uid, self.cache[key])

    def volume_shown(self, slot: int) -> None:
        """Viewport ``slot`` got its (new) volume: draw the heat maps known for its images (a stored result may
        have arrived before the pixels)."""
        entry, image = self.binding.entry(slot), self.session.viewports[slot].image
        if entry is None or image is None or not self.cache:
            return
        for k, ref in enumerate(entry.stack.slices):
            res = self.lookup(ImageRef(image.study_uid, image.series_uid, image.stack_key,
                                       ref.instance.sop_instance_uid, ref.frame.index, k))
            if res is not None:
                self._show(image.study_uid, res)

    def _overlay_changed(self) -> None:
        panel = self.panel
        for v in self.binding.grid.viewers:
            v.set_overlay_opacity(panel.opacity.value() / 100.0)
            v.set_overlay_visible(panel.show_overlay.isChecked())
        image, viewer = self.session.image, self.binding.viewer(self.session.active_slot)
        if image is None or viewer.volume is None:
            return
        key = self.key(image)  # a new class or method for the image on screen: from the cache or computed
        if key in self.cache:
            self._show(image.study_uid, self.cache[key])
        elif viewer.heatmaps:
            self.run(False)

    def clear(self) -> None:
        """Forget cached results (the weights changed: a re-score wrote new ones)."""
        self.cache.clear()
