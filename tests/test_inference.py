"""Image AI core: cards, safe weights, preprocessing of real DICOM, scoring, Grad-CAM registration, the shipped model.

Expected values come from independent computations (numpy, pydicom, scikit-learn); nothing is compared with a
number copied from the code under test.
"""

from __future__ import annotations

import json
import shutil
import pickle
from pathlib import Path

import numpy as np
import pydicom
import pytest

torch = pytest.importorskip("torch")

from medviewer.inference.card import ModelCardError, load_card, sha256_file  # noqa: E402
from medviewer.inference.model import SmallResNet  # noqa: E402
from medviewer.inference.preprocess import fit_to_input, prepare, to_unit_range  # noqa: E402
from medviewer.inference.frames import read_frame  # noqa: E402
from medviewer.inference.scorer import ImageModel, choose_device  # noqa: E402
from medviewer.inference.weights import UnsafeWeightsError, load_state_dict  # noqa: E402
from medviewer.io.sample import pydicom_data_file  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "pneumonia-cnn"
DATA = ROOT.parent / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist.npz"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """An untrained SmallResNet saved as safetensors with a valid card (fast, independent of the shipped one)."""
    from safetensors.torch import save_file

    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("tiny")
    net = SmallResNet(width=8)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(d / "model.safetensors"))
    card = {
        "name": "tiny", "version": "0", "task": "test", "labels": ["normal", "pneumonia"],
        "positive_label": "pneumonia",
        "architecture": {"name": "SmallResNet", "kwargs": {"width": 8}},
        "input": {"channels": 1, "height": 28, "width": 28, "mean": 0.5, "std": 0.25},
        "preprocessing": {}, "attribution_layer": "layer3", "threshold": 0.5, "training_data": {},
        "metrics": {}, "weights": "model.safetensors", "weights_sha256": sha256_file(d / "model.safetensors"),
        "intended_use": "tests",
    }
    (d / "card.json").write_text(json.dumps(card))
    return d


@pytest.fixture(scope="module")
def chest_cr():
    path = pydicom_data_file("RG1_UNCI.dcm")
    return str(path), pydicom.dcmread(path)


# ---------------------------------------------------------------------------------------------- weights and cards
def test_pickled_checkpoint_is_refused(tmp_path):
    net = SmallResNet(width=8)
    pt = tmp_path / "model.pt"
    torch.save(net.state_dict(), pt)
    with pytest.raises(UnsafeWeightsError):
        load_state_dict(pt)
    # A pickle renamed to .safetensors is refused by its header, not its name.
    disguised = tmp_path / "model.safetensors"
    disguised.write_bytes(pickle.dumps({"w": [1, 2, 3]}))
    with pytest.raises(UnsafeWeightsError):
        load_state_dict(disguised)
    disguised.write_bytes(pt.read_bytes())  # torch.save's zip format
    with pytest.raises(UnsafeWeightsError):
        load_state_dict(disguised)


def test_card_sha_mismatch_is_refused(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(tiny_model_dir, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match="SHA-256"):
        load_card(copy)
    card = json.loads((copy / "card.json").read_text())
    del card["threshold"]
    (copy / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match="threshold"):
        load_card(copy, verify_sha=False)


def test_device_choice():
    assert choose_device("cpu") == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        assert choose_device("auto") == expected
    if not torch.cuda.is_available():
        with pytest.raises(ValueError):
            choose_device("cuda")
    with pytest.raises(ValueError):
        choose_device("tpu")


# ---------------------------------------------------------------------------------------------- preprocessing
def test_preprocessing_real_chest_cr_inverts_monochrome1_shape_and_range(chest_cr):
    path, ds = chest_cr
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    mf = read_frame(path)
    values, window, mono1, uid = mf.values, mf.window, mf.monochrome1, mf.sop_instance_uid
    assert mono1 and uid == ds.SOPInstanceUID
    stored = ds.pixel_array.astype(np.float64)
    expected_values = stored * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
    np.testing.assert_allclose(values, expected_values, rtol=0, atol=1e-3)
    # Independent LINEAR window (PS3.3 C.11.2.1.2.1) then inversion.
    c, w = float(ds.WindowCenter), float(ds.WindowWidth)
    lin = np.clip((expected_values - (c - 0.5)) / (w - 1) + 0.5, 0, 1)
    unit = to_unit_range(values, window, mono1)
    np.testing.assert_allclose(unit, 1 - lin, atol=1e-5)
    # MONOCHROME1: low stored values are bright. The darkest stored pixel becomes the brightest unit pixel.
    lo = np.unravel_index(np.argmin(stored), stored.shape)
    hi = np.unravel_index(np.argmax(stored), stored.shape)
    assert unit[lo] > unit[hi]
    prep = prepare(values, input_shape=(1, 28, 28), mean=0.5, std=0.25, window=window, monochrome1=mono1)
    assert prep.array.shape == (1, 28, 28) and prep.array.dtype == np.float32
    # Range after normalisation: (unit - 0.5) / 0.25 lies in [-2, 2].
    assert prep.array.min() >= -2 - 1e-6 and prep.array.max() <= 2 + 1e-6
    # Aspect kept: 1955 x 1841 -> 28 x 26 content (rounded), padded by one column each side.
    rows, cols = stored.shape
    scale = min(28 / rows, 28 / cols)
    assert prep.transform.content_shape == (round(rows * scale), round(cols * scale))


def test_fit_transform_maps_a_hot_spot_back_to_its_place():
    rows, cols = 300, 200
    img = np.zeros((rows, cols), np.float32)
    fitted, tr = fit_to_input(img, 28, 28)
    heat = np.zeros((28, 28), np.float32)
    # A hot pixel at the centre of the content region ...
    r0, c0 = tr.offset
    rh, cw = tr.content_shape
    heat[r0 + rh // 2, c0 + cw // 2] = 1.0
    back = tr.to_original(heat)
    assert back.shape == (rows, cols)
    peak = np.unravel_index(np.argmax(back), back.shape)
    # ... lands at the centre of the original image (within one model pixel).
    assert abs(peak[0] - rows * (rh // 2 + 0.5) / rh) <= rows / rh
    assert abs(peak[1] - cols * (cw // 2 + 0.5) / cw) <= cols / cw
    # Padding columns are cut away: the content is 19 px wide for a 2:3 image.
    assert cw == round(200 * 28 / 300)


# ---------------------------------------------------------------------------------------------- scoring
def test_scoring_real_chest_cr_gives_probability_and_registered_map(tiny_model_dir, chest_cr):
    path, ds = chest_cr
    model = ImageModel.load(tiny_model_dir, device="cpu")
    res = model.score_frame(read_frame(path))
    p = res.probabilities
    assert set(p) == {"normal", "pneumonia"} and all(np.isfinite(v) and 0 <= v <= 1 for v in p.values())
    assert abs(sum(p.values()) - 1) < 1e-5
    assert res.heatmap.shape == ds.pixel_array.shape and res.heatmap.dtype == np.float32
    assert np.isfinite(res.heatmap).all() and 0 <= res.heatmap.min() and res.heatmap.max() <= 1 + 1e-6
    assert res.weights_sha256 == sha256_file(tiny_model_dir / "model.safetensors")
    d = res.to_dict()
    assert d["SOPInstanceUID"] == ds.SOPInstanceUID and d["probability"]["pneumonia"] == p["pneumonia"]


@pytest.mark.parametrize("method", ["gradcam", "integrated_gradients", "occlusion"])
def test_attribution_methods_release_hooks(tiny_model_dir, method):
    model = ImageModel.load(tiny_model_dir, device="cpu")
    x = np.random.default_rng(0).normal(size=(2, 1, 28, 28)).astype(np.float32)

    def hooks(module):
        return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                   + len(getattr(m, "_backward_pre_hooks", {})) for m in module.modules())

    before = hooks(model.network)
    maps = model.explain(x, target=1, method=method)
    assert maps.shape == (2, 28, 28) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert hooks(model.network) == before == 0
    assert not model.network.training


def test_gradcam_matches_a_hand_written_gradcam(tiny_model_dir):
    """Grad-CAM (Selvaraju et al. 2017) computed by hand with hooks equals captum's, upsampled the same way."""
    import torch.nn.functional as F

    model = ImageModel.load(tiny_model_dir, device="cpu")
    net = model.network
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(1, 1, 28, 28)).astype(np.float32))
    acts = {}
    h = net.layer3.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    try:
        out = net(x)
        a = acts["a"]
        (grad,) = torch.autograd.grad(out[0, 1], a)
    finally:
        h.remove()
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * a).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=(28, 28), mode="bilinear", align_corners=False)[0, 0]
    cam = (cam / cam.max().clamp(min=1e-12)).detach().numpy()
    ours = model.explain(x.numpy(), target=1, method="gradcam")[0]
    np.testing.assert_allclose(ours, cam, atol=1e-5)


# ---------------------------------------------------------------------------------------------- the shipped model
@pytest.mark.skipif(not DATA.is_file(), reason="../shared/data is not beside the checkout")
def test_shipped_model_card_matches_an_independent_test_evaluation():
    from sklearn.metrics import roc_auc_score

    from medviewer.inference.preprocess import prepare_training_images

    card = json.loads((SHIPPED / "card.json").read_text())
    assert "PneumoniaMNIST" in json.dumps(card["training_data"])
    model = ImageModel.load(SHIPPED, device="cpu")
    data = np.load(DATA)
    x = prepare_training_images(data["test_images"], model.card.input.mean, model.card.input.std)
    y = data["test_labels"].ravel()
    p = model.predict(x)[:, model.card.labels.index("pneumonia")]
    auc = roc_auc_score(y, p)
    acc = float(np.mean((p >= model.card.threshold) == (y == 1)))
    assert auc == pytest.approx(card["metrics"]["test"]["auc"], abs=1e-4)
    assert acc == pytest.approx(card["metrics"]["test"]["accuracy"], abs=1e-4)
    # The targets.
    assert auc >= 0.975 and acc >= 0.92


# ---------------------------------------------------------------------------------------------- hostile cards
@pytest.mark.parametrize("change, words", [
    ({"weights": "../other/model.safetensors"}, "own folder"),
    ({"weights": "/dev/zero"}, "own folder"),
    ({"threshold": float("nan")}, "not a probability"),
    ({"threshold": 7}, "not a probability"),
    ({"threshold": "high"}, "not a number"),
    ({"input": {"channels": 1, "height": 10 ** 7, "width": 28}}, "out of range"),
    ({"input": {"channels": 1, "height": 28, "width": 28, "std": 0}}, "out of range"),
    ({"ood": {"threshold": float("inf")}}, "ood threshold"),
])
def test_hostile_cards_are_refused_with_a_reason(tiny_model_dir, tmp_path, change, words):
    from medviewer.inference.card import ModelCardError, load_card

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    card = json.loads((d / "card.json").read_text())
    card.update(change)
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelCardError, match=words):
        load_card(d)


def test_weights_that_are_not_a_regular_file_are_refused(tiny_model_dir, tmp_path):
    import os

    from medviewer.inference.card import ModelCardError, load_card

    d = tmp_path / "m"
    shutil.copytree(tiny_model_dir, d)
    (d / "model.safetensors").unlink()
    os.mkfifo(d / "model.safetensors")  # reading it would block forever
    with pytest.raises(ModelCardError, match="not a regular file"):
        load_card(d)
