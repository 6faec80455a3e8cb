"""Functions run in the model process (:mod:`medviewer.jobs.process`): image models stay loaded there."""

from __future__ import annotations

_MODELS: dict = {}


def score_items(model_name: str, items: tuple, method: str, target: str | None) -> list:
    """Score ``items`` ((slice index, SOPInstanceUID, frame, values, window, monochrome1), ...) with a heat map
    each; returns [(slice index, ScoreResult), ...]."""
    from medviewer.inference.scorer import ImageModel

    model = _MODELS.get(model_name)
    if model is None:
        model = _MODELS[model_name] = ImageModel.load(model_name)
    out = []
    for k, uid, frame, values, window, mono1 in items:
        out.append((k, model.score_image(values, sop_instance_uid=uid, window=window, monochrome1=mono1,
                                         explain=method, target=target, frame=frame)))
    return out
