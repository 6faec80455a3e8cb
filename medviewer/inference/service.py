"""Functions run in the model process (:mod:`medviewer.jobs.process`): image models stay loaded there."""

from __future__ import annotations

_MODELS: dict = {}


def score_items(model_name: str, items: tuple, method: str, target: str | None, force: bool = False) -> list:
    """Score ``items`` ((slice index, :class:`~medviewer.inference.frames.ModelFrame`), ...) through the
    intended-use gate (``force``: "score anyway"), with a heat map each; returns [(slice index, ScoreResult), ...]."""
    from medviewer.inference.scorer import ImageModel

    model = _MODELS.get(model_name)
    if model is None:
        model = _MODELS[model_name] = ImageModel.load(model_name)
    return [(k, model.score_frame(frame, explain=method, target=target, force=force)) for k, frame in items]
