"""The card's inference recipe (test-time augmentation views, temperature) as the product applies it: the views
against independent numpy computations, ImageModel.predict against the mean of the views' logits computed by hand,
the OOD score and the map from the film as it is, the card's temperature over the one saved with the weights, and
hostile ``inference`` blocks refused with a reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medviewer.inference import tta  # noqa: E402
from medviewer.inference.card import ModelCardError, load_card, sha256_file  # noqa: E402
from medviewer.inference.model import ChestEnsemble  # noqa: E402
from medviewer.inference.scorer import ImageModel  # noqa: E402

MEMBERS = [{"width": 4, "input_pool": 8, "blocks": [1, 1, 1]}, {"width": 4, "input_pool": 4, "blocks": [1, 1, 1]}]
VIEWS = ["identity", "hflip", "zoom0.92", "shift0.03,0", "gamma0.8"]


@pytest.fixture(scope="module")
def ensemble_dir(tmp_path_factory) -> Path:
    """An untrained two-member ChestEnsemble (224 x 224) with random OOD statistics, saved with temperature 2.0,
    and a card that runs it with five TTA views at temperature 1.5."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    net = ChestEnsemble(MEMBERS)
    net.temperature.fill_(2.0)
    dim = net.ood_precision.shape[0]
    net.ood_mean.copy_(torch.randn(2, dim))
    d = tmp_path_factory.mktemp("ens")
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(d / "model.safetensors"))
    card = {
        "name": "ens", "version": "1.1.0", "task": "test", "labels": ["normal", "pneumonia"],
        "positive_label": "pneumonia", "architecture": {"name": "ChestEnsemble", "kwargs": {"members": MEMBERS}},
        "input": {"channels": 1, "height": 224, "width": 224, "mean": 0.0, "std": 1.0, "fit": "squash"},
        "preprocessing": {}, "attribution_layer": "members.0.layer3,members.1.layer3", "threshold": 0.5,
        "training_data": {}, "metrics": {}, "weights": "model.safetensors",
        "weights_sha256": sha256_file(d / "model.safetensors"), "intended_use": "tests",
        "temperature": 1.5, "inference": {"tta": VIEWS}, "ood": {"threshold": 1e9},
    }
    (d / "card.json").write_text(json.dumps(card))
    return d


def _films(n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:224, 0:224] / 224.0
    base = 0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy)
    return np.stack([np.clip(base + 0.1 * rng.standard_normal((224, 224)), 0, 1) for _ in range(n)]
                    ).astype(np.float32)[:, None]


# ---------------------------------------------------------------------------------------------- views
def test_views_against_numpy():
    x = _films(2)
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(tta.apply_view(t, "identity").numpy(), x)
    np.testing.assert_array_equal(tta.apply_view(t, "hflip").numpy(), x[..., ::-1])
    np.testing.assert_allclose(tta.apply_view(t, "gamma0.8").numpy(), x ** 0.8, rtol=1e-6)
    # a shift of 1/8 of the width is 28 whole pixels: the content moves right, black comes in on the left
    shifted = tta.apply_view(t, "shift0.125,0").numpy()
    np.testing.assert_allclose(shifted[..., 28:], x[..., :-28], atol=5e-5)
    np.testing.assert_allclose(shifted[..., :27], 0, atol=1e-6)
    down = tta.apply_view(t, "shift0,-0.125").numpy()  # and up by 28 rows
    np.testing.assert_allclose(down[..., :-28, :], x[..., 28:, :], atol=5e-5)
    np.testing.assert_allclose(tta.apply_view(t, "zoom1").numpy(), x, atol=5e-5)
    flat = torch.full((1, 1, 224, 224), 0.7)
    small = tta.apply_view(flat, "zoom0.5").numpy()[0, 0]  # shrunk to the central half, black around it
    np.testing.assert_allclose(small[60:164, 60:164], 0.7, atol=1e-5)
    assert small[:50].max() == 0 and small[:, :50].max() == 0
    big = tta.apply_view(flat, "zoom1.5").numpy()  # cropped: no border
    np.testing.assert_allclose(big, 0.7, atol=1e-5)
    stacked = tta.expand(t, ["identity", "hflip"])
    assert stacked.shape == (4, 1, 224, 224)
    np.testing.assert_array_equal(stacked[2:].numpy(), x[..., ::-1])
    logits = torch.arange(8, dtype=torch.float32).reshape(4, 2)
    np.testing.assert_allclose(tta.average(logits, 2).numpy(), [[2, 3], [4, 5]])


@pytest.mark.parametrize("views, words", [
    ([], "start with 'identity'"),
    (["hflip", "identity"], "start with 'identity'"),
    (["identity", "rotate10"], "unknown TTA view"),
    (["identity", "zoom9"], "zoom outside"),
    (["identity", "shift0.5,0"], "shift over"),
    (["identity", "gamma0.1"], "gamma outside"),
])
def test_bad_views_are_refused(views, words):
    with pytest.raises(ValueError, match=words):
        tta.check_views(views)


# ---------------------------------------------------------------------------------------------- the product
def test_predict_applies_the_cards_views_and_temperature(ensemble_dir):
    model = ImageModel.load(ensemble_dir, device="cpu")
    assert model.card.tta_views == VIEWS and model.card.temperature == 1.5
    assert float(model.network.temperature) == 1.5  # the card's recipe, not the 2.0 saved with the weights
    x = _films(3)
    probs, ood = model.predict_with_ood(x)

    # Independently: a fresh network from the same weights, the views made apart, logits averaged by hand.
    from medviewer.inference.weights import load_state_dict

    net = ChestEnsemble(MEMBERS)
    net.load_state_dict(load_state_dict(ensemble_dir / "model.safetensors"))
    net.eval()
    # (zoom and shift are checked against numpy in test_views_against_numpy)
    views = [x, x[..., ::-1].copy(), tta.apply_view(torch.from_numpy(x), "zoom0.92").numpy(),
             tta.apply_view(torch.from_numpy(x), "shift0.03,0").numpy(), x ** 0.8]
    with torch.inference_mode():
        logits = np.mean([(net(torch.from_numpy(np.ascontiguousarray(v))) * 2.0).numpy() for v in views], 0)
        expect_ood = net.ood_score(torch.from_numpy(x)).numpy()
    z = logits / 1.5
    expect = np.exp(z - z.max(1, keepdims=True))
    expect /= expect.sum(1, keepdims=True)
    np.testing.assert_allclose(probs, expect, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(ood, expect_ood, rtol=1e-4)  # the film as it is, not the views
    # the views change the call's probability: without them it differs
    with torch.inference_mode():
        plain = torch.softmax(net(torch.from_numpy(x)) * 2.0 / 1.5, 1).numpy()
    assert np.abs(plain - probs).max() > 1e-6


def test_score_frame_is_predict_on_the_prepared_frame(ensemble_dir):
    from medviewer.inference.frames import ModelFrame

    model = ImageModel.load(ensemble_dir, device="cpu")
    values = (_films(1)[0, 0] * 4000).astype(np.int16)
    frame = ModelFrame(values=values, window=None, voi_lut=None, monochrome1=False, sop_instance_uid="1.2.3",
                       path="", frame=0, modality="CR", photometric_interpretation="MONOCHROME2")
    res = model.score_frame(frame, explain="gradcam")
    p = model.predict(model.prepare_frame(frame).array[None])[0]
    assert res.probabilities["pneumonia"] == pytest.approx(float(p[1]), abs=1e-7)
    assert res.heatmap is not None and res.heatmap.shape == values.shape
    assert res.version == "1.1.0"


@pytest.mark.parametrize("change, words", [
    ({"inference": {"tta": ["identity", "spin"]}}, "unknown TTA view"),
    ({"inference": {"tta": ["hflip"]}}, "start with 'identity'"),
    ({"inference": ["identity"]}, "JSON object"),
    ({"temperature": 0}, "temperature"),
    ({"temperature": "warm"}, "temperature"),
])
def test_hostile_inference_blocks_are_refused(ensemble_dir, tmp_path, change, words):
    d = tmp_path / "m"
    shutil.copytree(ensemble_dir, d)
    card = json.loads((d / "card.json").read_text())
    card.update(change)
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=words):
        load_card(d)


def test_gamma_views_need_an_input_in_unit_range(ensemble_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(ensemble_dir, d)
    card = json.loads((d / "card.json").read_text())
    card["input"]["mean"] = 0.5
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="gamma"):
        load_card(d)
    card["inference"]["tta"] = ["identity", "hflip"]
    (d / "card.json").write_text(json.dumps(card))
    assert load_card(d).tta_views == ["identity", "hflip"]
