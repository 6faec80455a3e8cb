"""Image AI speed: per-image latency on the 1955x1841 chest CR, split into DICOM read + decode (the one frame
path, :func:`medviewer.inference.frames.read_frame`), preprocessing, forward and Grad-CAM; batch throughput;
Grad-CAM cost as a ratio to the plain forward pass (target <= 3x) and the time without the map (target <= 100 ms,
issue #10). Every bundled image model is measured side by side (the 224 x 224 default and the 28 x 28 model); the
GPU path runs too when torch sees a CUDA device.

    .venv/bin/python benchmarks/bench_inference.py [--model NAME_OR_FOLDER ...] [--repeats 20]

Figures, not tests: PASS/MISS is printed, nothing asserts.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _median_ms(fn, repeats: int) -> tuple[float, float]:  # noqa: ANN001
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def run(model_path: str, repeats: int, device: str) -> dict:
    import torch

    from medviewer.inference.frames import read_frame
    from medviewer.inference.scorer import ImageModel
    from medviewer.io.sample import pydicom_data_file

    model = ImageModel.load(model_path, device=device)
    path = str(pydicom_data_file("RG1_UNCI.dcm"))
    frame = read_frame(path)
    values = frame.values
    prepared = model.prepare_frame(frame)
    batch1 = prepared.array[None]
    target = model.card.labels.index(str(model.card.extra.get("positive_label", model.card.labels[-1])))

    figures = {"device": device, "image": f"{values.shape[1]}x{values.shape[0]}", "model": model.card.name,
               "version": model.card.version, "views": model.card.tta_views}
    figures["decode_ms"] = _median_ms(lambda: read_frame(path), max(3, repeats // 4))
    figures["preprocess_ms"] = _median_ms(lambda: model.prepare_frame(frame), repeats)
    figures["forward_ms"] = _median_ms(lambda: model.predict(batch1), repeats)
    figures["gradcam_ms"] = _median_ms(lambda: model.explain(batch1, target, "gradcam"), repeats)
    heat = model.explain(batch1, target, "gradcam")[0]
    figures["map_back_ms"] = _median_ms(lambda: prepared.transform.to_original(heat), repeats)
    figures["no_map_ms"] = _median_ms(lambda: model.score_frame(read_frame(path), explain=None, force=True),
                                      max(3, repeats // 4))
    figures["end_to_end_ms"] = _median_ms(lambda: model.score_frame(frame, explain="gradcam", force=True),
                                          max(5, repeats // 2))
    for n in (32, 256):
        batch = np.repeat(batch1, n, axis=0)
        med, _ = _median_ms(lambda: model.predict(batch), max(3, repeats // 4))
        figures[f"throughput_{n}"] = n / (med / 1000)
    figures["gradcam_ratio"] = figures["gradcam_ms"][0] / figures["forward_ms"][0]
    figures["threads"] = torch.get_num_threads()
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", nargs="+", default=[str(ROOT / "models" / "pneumonia-chest224"),
                                                  str(ROOT / "models" / "pneumonia-cnn")])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    import torch

    print("medviewer image-AI benchmark (medians over --repeats runs after a warm-up)")
    print(f"machine   : {platform.machine()}, os.cpu_count()={os.cpu_count()}, torch {torch.__version__}, "
          f"CUDA {'yes: ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no'}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev, model_path in [(d, m) for d in devices for m in args.model]:
        f = run(model_path, args.repeats, dev)
        print(f"\n== {f['model']} {f['version']} on {dev}"
              f"{' (' + torch.cuda.get_device_name(0) + ')' if dev == 'cuda' else ''}  (image {f['image']}, "
              f"torch threads {f['threads']}, {len(f['views'])} test-time view(s): {', '.join(f['views'])})")
        print(f"   {'stage':34s} {'median ms':>10s} {'p95 ms':>8s}")
        for key, name in (("decode_ms", "read + decode DICOM"), ("preprocess_ms", "preprocess (VOI, invert, fit)"),
                          ("forward_ms", "forward, batch 1 (all views)"), ("gradcam_ms", "Grad-CAM, batch 1"),
                          ("map_back_ms", "map back to 1955x1841"),
                          ("no_map_ms", "read + gate + score, no map"),
                          ("end_to_end_ms", "score_frame (prep+gate+fwd+CAM+map)")):
            med, p95 = f[key]
            print(f"   {name:34s} {med:10.2f} {p95:8.2f}")
        print(f"   batch throughput: {f['throughput_32']:.0f} images/s at 32, {f['throughput_256']:.0f} at 256 "
              "(forward only, preprocessed)")
        ratio = f["gradcam_ratio"]
        print(f"   TARGET Grad-CAM / forward <= 3.0x: {ratio:.2f}x  -> {'PASS' if ratio <= 3.0 else 'MISS'}")
        nm = f["no_map_ms"][0]
        print(f"   TARGET read + score without the map <= 100 ms: {nm:.1f} ms  -> {'PASS' if nm <= 100 else 'MISS'}")
    if not torch.cuda.is_available():
        print("\n(no CUDA device here: the GPU path (bf16 autocast) was not exercised)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
