"""The 224 x 224 chest model (issue #10): its data protocol and that its card's figures reproduce from the shipped
weights on the 624 Kermany test films."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from medviewer.inference.scorer import ImageModel  # noqa: E402
from medviewer.training import kermany  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "models" / "pneumonia-chest224"
HAVE_DATA = (kermany.DEFAULT_ROOT / "manifest.csv").is_file()


@pytest.fixture(scope="module")
def data():
    if not HAVE_DATA:
        pytest.skip("../shared/data/kermany-224 is not beside the checkout")
    return kermany.load(verify_md5=False)


def test_split_is_by_child_deduplicated_and_seeded(data):
    assert len(data.test) == 624 and int(data.test.labels.sum()) == 390
    assert not set(data.train.patient_keys) & set(data.val.patient_keys)
    assert len(data.train) + len(data.val) + data.duplicates_dropped == 5216
    assert data.duplicates_dropped > 0
    again = kermany.load(verify_md5=False)
    assert again.val_patients == data.val_patients
    other = kermany.load(verify_md5=False, seed=1)
    assert other.val_patients != data.val_patients
    # no byte-identical film on both sides of the train/validation split
    import hashlib

    def digests(split):  # noqa: ANN001, ANN202
        return {hashlib.md5(img.tobytes()).hexdigest() for img in split.images}

    assert not digests(data.train) & digests(data.val)


def test_shipped_card_reproduces_on_the_test_films(data):
    if not (SHIPPED / "card.json").is_file():
        pytest.skip("the 224 model is not shipped in this checkout")
    from sklearn.metrics import roc_auc_score

    card = json.loads((SHIPPED / "card.json").read_text())
    model = ImageModel.load(SHIPPED, device="cpu")
    x = (data.test.images.astype(np.float32) / 255.0)[:, None]
    p = np.concatenate([model.predict(x[i:i + 128]) for i in range(0, len(x), 128)])[:, 1]
    y = data.test.labels
    auc = roc_auc_score(y, p)
    acc = float(np.mean((p >= model.card.threshold) == (y == 1)))
    test = card["metrics"]["test"]
    assert auc == pytest.approx(test["auc"], abs=1e-4)
    assert acc == pytest.approx(test["accuracy"], abs=1e-4)
    assert card["training_data"]["splits"] == {"train": len(data.train), "val": len(data.val), "test": 624}
    # the map layer has at least 14 x 14 cells
    from medviewer.inference.attribution import _layer

    shapes: list = []
    hooks = [_layer(model.network, name).register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
             for name in model.card.attribution_layer.split(",")]
    with torch.inference_mode():
        model.network(torch.from_numpy(x[:1]))
    for h in hooks:
        h.remove()
    assert len(shapes) == 3 and all(s[-2:] == (14, 14) for s in shapes)
