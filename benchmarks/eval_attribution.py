"""Faithfulness of the Grad-CAM maps on the PneumoniaMNIST test split (a deletion check in the spirit of
Samek et al., "Evaluating the visualization of what a deep neural network has learned", IEEE TNNLS 2017).

For each test image: the predicted class's probability p0; then the top 20 % of pixels by Grad-CAM set to the
image's mean (the "removed" value) -> p_cam; and 20 % of pixels chosen uniformly at random (5 draws, averaged) set
the same way -> p_rand. A faithful map removes evidence the model used, so the mean drop p0 - p_cam must exceed the
mean drop p0 - p_rand by a clear margin. Integrated Gradients is printed beside it for comparison.

    .venv/bin/python benchmarks/eval_attribution.py [--model models/pneumonia-cnn] [--fraction 0.2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "pneumoniamnist" / "pneumoniamnist.npz"


def masked(x: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Replace masked pixels (N, H, W bool) of x (N, 1, H, W) by each image's mean."""
    fill = x.mean(axis=(1, 2, 3), keepdims=True)
    return np.where(masks[:, None], fill, x).astype(np.float32)


def top_fraction_masks(maps: np.ndarray, fraction: float) -> np.ndarray:
    n, h, w = maps.shape
    k = int(round(fraction * h * w))
    flat = maps.reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")[:, :k]
    m = np.zeros_like(flat, dtype=bool)
    np.put_along_axis(m, order, True, axis=1)
    return m.reshape(n, h, w)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "pneumonia-cnn"))
    ap.add_argument("--fraction", type=float, default=0.2)
    ap.add_argument("--data", default=str(DATA))
    args = ap.parse_args(argv)

    from medviewer.inference.preprocess import prepare_training_images
    from medviewer.inference.scorer import ImageModel

    model = ImageModel.load(args.model, device="cpu")
    data = np.load(args.data)
    x = prepare_training_images(data["test_images"], model.card.input.mean, model.card.input.std)
    probs = model.predict(x)
    pred = probs.argmax(1)
    p0 = probs[np.arange(len(x)), pred]
    rng = np.random.default_rng(0)
    n, _, h, w = x.shape
    k = int(round(args.fraction * h * w))
    rand_drop = []
    for _ in range(5):
        m = np.zeros((n, h * w), dtype=bool)
        for i in range(n):
            m[i, rng.choice(h * w, size=k, replace=False)] = True
        p = model.predict(masked(x, m.reshape(n, h, w)))[np.arange(n), pred]
        rand_drop.append(p0 - p)
    rand_drop = np.mean(rand_drop, axis=0)
    print(f"PneumoniaMNIST test split, {n} images, masking {args.fraction:.0%} of pixels with the image mean; "
          "drop of the predicted class's probability (mean over images):")
    print(f"   {'method':24s} {'map-guided drop':>16s} {'random drop':>12s} {'margin':>8s}  faithful?")
    results = {}
    for method in ("gradcam", "integrated_gradients"):
        maps = np.concatenate([
            np.concatenate([model.explain(x[j:j + 1], int(pred[j]), method) for j in range(i, min(i + 64, n))])
            for i in range(0, n, 64)])
        p = model.predict(masked(x, top_fraction_masks(maps, args.fraction)))[np.arange(n), pred]
        drop = p0 - p
        margin = float(drop.mean() - rand_drop.mean())
        # Paired comparison per image: share of images where the map-guided drop beats the random one.
        wins = float(np.mean(drop > rand_drop))
        ok = margin > 0.05 and wins > 0.5
        results[method] = margin
        print(f"   {method:24s} {drop.mean():16.4f} {rand_drop.mean():12.4f} {margin:8.4f}  "
              f"{'YES' if ok else 'NO'} (map beats random on {wins:.0%} of images)")
    print("TARGET Grad-CAM drop > random drop by a clear margin (> 0.05): "
          f"{'PASS' if results['gradcam'] > 0.05 else 'MISS'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
