"""Evaluate the 224 x 224 chest model the way the product uses it (issue #10), printing each figure beside its
target:

1. **DICOM path**: the 624 Kermany test films scored directly (as in training) and wrapped as DICOM CR objects the
   way scanners write them (:data:`medviewer.training.dicomwrap.VARIANTS`), read back through the product's one
   frame path (:func:`medviewer.inference.frames.read_frame` -> :meth:`ImageModel.score_frame`); target: AUC
   within 0.005 of the direct evaluation for every variant.
2. **Intended-use gate** on real images nobody here made for the purpose (pydicom's and pydicom-data's CT, MR,
   US, NM, RT, SEG, secondary captures, the extremity CR; the two CT series in ``../shared/data``) plus blank
   and noise films, and on the test films; targets: >= 95 % of out-of-scope images gated, <= 3 % of test films
   gated. The image check alone is measured too, on the greyscale out-of-scope images re-labelled as CR chest PA
   (a header that lies).
3. **Maps**: Grad-CAM cascading-randomisation sanity check (Adebayo et al., "Sanity Checks for Saliency Maps",
   NeurIPS 2018: Spearman correlation of the map before and after re-initialising the layers from the top,
   cumulatively), a deletion curve (P(predicted class) as the top-k % of the map is replaced by the film's mean,
   against random pixels; Samek et al., IEEE TNNLS 2017) and the share of the map's mass inside the film (the
   central region without a 6 % margin on each side, where padding, rulers and burned-in labels sit).
4. **The 28 x 28 model** (``models/pneumonia-cnn``) on the same 624 films, beside the new one.

0. (``--sections metrics``, opt-in) **the card's test figures** through :meth:`ImageModel.predict` (the card's
   inference recipe: test-time augmentation, temperature): AUC and accuracy/sensitivity/specificity at the card's
   threshold with 95 % bootstrap intervals, the same at 0.5, ECE, each member's AUC, against issue #10's targets.
   Run it once per card version, after the recipe is frozen.

    .venv/bin/python benchmarks/eval_chest224.py [--model models/pneumonia-chest224]
        [--sections dicom,gate,maps,compare[,metrics]] [--limit N] [--write-card]

``--write-card`` records the figures under ``evaluation`` in the model's card, and with ``metrics`` the test
figures under ``metrics`` (the weights and their SHA-256 are not touched). Figures, not tests: PASS/MISS is
printed, nothing asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


# ------------------------------------------------------------------------------------------------ 0. test metrics
TARGETS = {"issue": "#10: AUC >= 0.985 and accuracy >= 0.93 on the 624 test films at the threshold fixed on "
                    "validation", "auc": 0.985, "accuracy_at_validation_threshold": 0.93}


def _members_auc(model, x: np.ndarray, y: np.ndarray) -> dict:  # noqa: ANN001
    """AUC of each ensemble member alone, under the card's test-time augmentation views."""
    import torch

    from medviewer.inference import tta

    views = model.card.tta_views
    out = {}
    for k, member in enumerate(model.network.members):
        scores = []
        with torch.inference_mode():
            for i in range(0, len(x), 128):
                xb = torch.from_numpy(x[i:i + 128])
                logits = tta.average(member(tta.expand(xb, views)), len(views))
                scores.append((logits[:, 1] - logits[:, 0]).numpy())
        pool = model.card.architecture.get("kwargs", {}).get("members", [{}] * (k + 1))[k].get("input_pool", "")
        out[f"member{k}_pool{pool}"] = _auc(y, np.concatenate(scores))
    return out


def section_metrics(model, films: np.ndarray, y: np.ndarray, seed: int = 0) -> dict:  # noqa: ANN001
    """The card's test figures for the model as the product runs it (its inference recipe included): AUC and
    accuracy, sensitivity, specificity at the card's threshold with 95 % bootstrap intervals, the same at 0.5,
    ECE, each member's AUC, the targets."""
    from medviewer.training.metrics import card_test_metrics

    x = (films.astype(np.float32) / 255.0)[:, None]
    p = np.concatenate([model.predict(x[i:i + 128]) for i in range(0, len(x), 128)])[:, 1]
    out = card_test_metrics(p, y, model.card.threshold, seed=seed)
    test, half = out["test"], out["test_at_threshold_0.5"]
    out["test_members_auc"] = _members_auc(model, x, y) if hasattr(model.network, "members") else {}
    auc_ok = test["auc"] >= TARGETS["auc"]
    acc_ok = test["accuracy"] >= TARGETS["accuracy_at_validation_threshold"]
    out["targets"] = {"issue": TARGETS["issue"],
                      "auc": {"target": TARGETS["auc"], "value": test["auc"], "met": bool(auc_ok)},
                      "accuracy_at_validation_threshold": {"target": TARGETS["accuracy_at_validation_threshold"],
                                                           "value": test["accuracy"], "met": bool(acc_ok)},
                      "accuracy_at_0.5": half["accuracy"]}
    ci = test["ci95"]
    print(f"\n0. Test split ({len(y)} films, {int(y.sum())} pneumonia), views {', '.join(model.card.tta_views)}, "
          f"threshold {model.card.threshold:.5f}")
    print(f"   AUC {test['auc']:.4f} (95 % CI {ci['auc'][0]:.4f}-{ci['auc'][1]:.4f})  TARGET >= {TARGETS['auc']}"
          f"  -> {'PASS' if auc_ok else 'MISS'}")
    print(f"   accuracy at the validation threshold {test['accuracy']:.4f} ({ci['accuracy'][0]:.4f}-"
          f"{ci['accuracy'][1]:.4f})  TARGET >= {TARGETS['accuracy_at_validation_threshold']}  -> "
          f"{'PASS' if acc_ok else 'MISS'}")
    print(f"   sensitivity {test['sensitivity']:.4f} ({ci['sensitivity'][0]:.4f}-{ci['sensitivity'][1]:.4f}), "
          f"specificity {test['specificity']:.4f} ({ci['specificity'][0]:.4f}-{ci['specificity'][1]:.4f}), "
          f"ECE {test['ece']:.4f}, confusion {json.dumps(test['confusion'])}")
    print(f"   at 0.5: accuracy {half['accuracy']:.4f}, sensitivity {half['sensitivity']:.4f}, specificity "
          f"{half['specificity']:.4f}")
    print("   members alone: " + ", ".join(f"{k} {v:.4f}" for k, v in out["test_members_auc"].items()))
    return out


# ------------------------------------------------------------------------------------------------ 1. DICOM path
def section_dicom(model, films: np.ndarray, y: np.ndarray, workdir: Path) -> dict:  # noqa: ANN001
    from medviewer.inference.frames import read_frame
    from medviewer.inference.scorer import OUT_OF_SCOPE, SCORED
    from medviewer.training.dicomwrap import VARIANTS, wrap_film

    x = (films.astype(np.float32) / 255.0)[:, None]
    p_direct = np.concatenate([model.predict(x[i:i + 128]) for i in range(0, len(x), 128)])[:, 1]
    direct = _auc(y, p_direct)
    print(f"\n1. DICOM path: {len(y)} test films, AUC scored directly (as trained): {direct:.4f}")
    print(f"   {'variant':48s} {'AUC':>7s} {'diff':>8s} {'gated':>6s}  target |diff| <= 0.005")
    out = {"direct_auc": direct, "variants": {}}
    for variant in VARIANTS:
        t0 = time.perf_counter()
        probs, gated = [], 0
        for k, film in enumerate(films):
            path = wrap_film(film, variant, workdir / f"film{k}.dcm")
            res = model.score_frame(read_frame(path), explain=None, force=True)
            probs.append(res.probabilities[res.positive_label])
            gated += res.status != SCORED
            os.unlink(path)
        auc = _auc(y, np.asarray(probs))
        diff = auc - direct
        ok = abs(diff) <= 0.005
        print(f"   {variant.name:48s} {auc:7.4f} {diff:+8.4f} {gated / len(y):6.1%}  {'PASS' if ok else 'MISS'}"
              f"  ({(time.perf_counter() - t0) / len(y) * 1000:.0f} ms/film)")
        out["variants"][variant.name] = {"auc": auc, "diff": diff, "gated": gated / len(y), "pass": ok}
    del OUT_OF_SCOPE
    return out


# ------------------------------------------------------------------------------------------------ 2. gate
def _out_of_scope_files() -> list[tuple[str, str]]:
    """(source, path) of the real out-of-scope DICOM images: every image object in pydicom's test files and in
    pydicom-data except the chest films, and every slice of the two shared CT series."""
    import pydicom
    from pydicom.data import get_testdata_file

    from medviewer.io.sample import pydicom_data_file

    folders = [("pydicom", Path(get_testdata_file("CT_small.dcm")).parent),
               ("pydicom-data", pydicom_data_file("RG1_UNCI.dcm").parent)]
    out = []
    for source, folder in folders:
        for f in sorted(folder.iterdir()):
            if not f.is_file() or f.suffix.lower() not in (".dcm", ""):
                continue
            try:
                ds = pydicom.dcmread(f, stop_before_pixels=True)
            except Exception:  # noqa: BLE001 - not DICOM (README, dumps, json)
                continue
            if "Rows" not in ds or str(ds.get("BodyPartExamined", "")).upper() == "CHEST":
                continue
            out.append((source, str(f)))
    for name in ("ct-head-ge", "ct-phantom-philips"):
        folder = SHARED / name
        if folder.is_dir():
            out += [(name, str(p)) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "DIRFILE"
                    and not p.name.startswith(("LICENSE", "README"))]
    return out


def _synthetic_films(workdir: Path) -> list[tuple[str, str]]:
    """Blank and noise films with an in-scope header (CR, chest, PA): only the image check can refuse them."""
    from medviewer.training.dicomwrap import Variant, wrap_film

    rng = np.random.default_rng(0)
    films = {"blank black": np.zeros((224, 224), np.uint8), "blank white": np.full((224, 224), 255, np.uint8),
             "blank grey": np.full((224, 224), 128, np.uint8)}
    for k in range(5):
        films[f"uniform noise {k}"] = rng.integers(0, 256, (224, 224)).astype(np.uint8)
        films[f"gaussian noise {k}"] = np.clip(rng.normal(128, 40, (224, 224)), 0, 255).astype(np.uint8)
    v = Variant("synthetic", bits=8, window=False)
    return [("synthetic", wrap_film(img, v, workdir / f"{name.replace(' ', '_')}.dcm", view_position="PA"))
            for name, img in films.items()]


def _relabelled(path: str, workdir: Path) -> str | None:
    """A copy of a single-frame greyscale image with a header claiming CR chest PA (None for other objects)."""
    import pydicom

    ds = pydicom.dcmread(path)
    if int(ds.get("SamplesPerPixel", 1)) != 1 or int(ds.get("NumberOfFrames", 1) or 1) != 1:
        return None
    ds.Modality = "CR"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    for kw in ("SeriesDescription", "ProtocolName", "StudyDescription"):
        if kw in ds:
            del ds[kw]
    out = workdir / f"relabelled_{Path(path).parent.name}_{Path(path).name}"
    ds.save_as(out)
    return str(out)


def section_gate(model, films: np.ndarray, workdir: Path) -> dict:  # noqa: ANN001
    from medviewer.inference.frames import FrameReadError, read_frame
    from medviewer.inference.scorer import OUT_OF_SCOPE
    from medviewer.io.sample import pydicom_data_file
    from medviewer.training.dicomwrap import VARIANTS, wrap_film

    files = _out_of_scope_files() + _synthetic_films(workdir)
    by_source: dict[str, list[int]] = {}
    unreadable = []
    reasons: dict[str, int] = {}
    relabelled = []
    for source, path in files:
        try:
            res = model.score_frame(read_frame(path), explain=None)
        except FrameReadError as exc:
            unreadable.append(f"{os.path.basename(path)}: {exc}")
            continue
        gated = res.status == OUT_OF_SCOPE
        by_source.setdefault(source, [0, 0])
        by_source[source][0] += gated
        by_source[source][1] += 1
        kind = res.scope_reason.split(" ")[0] if gated else "NOT GATED"
        reasons[kind] = reasons.get(kind, 0) + 1
        if source != "synthetic":
            r = _relabelled(path, workdir)
            if r:
                relabelled.append(r)
    n_gated = sum(v[0] for v in by_source.values())
    n = sum(v[1] for v in by_source.values())
    print(f"\n2. Intended-use gate: {n} real or synthetic out-of-scope images ({len(unreadable)} files not readable "
          "as images, left out)")
    for source, (g, t) in by_source.items():
        print(f"   {source:22s} {g:4d} / {t:4d} gated")
    share = n_gated / max(n, 1)
    print(f"   first reason word: {json.dumps(reasons)}")
    print(f"   TARGET >= 95 % of out-of-scope images gated: {share:.1%}  -> {'PASS' if share >= 0.95 else 'MISS'}")

    img_gated = 0
    for path in relabelled:
        res = model.score_frame(read_frame(path), explain=None)
        img_gated += res.status == OUT_OF_SCOPE
    img_share = img_gated / max(len(relabelled), 1)
    print(f"   image check alone (greyscale images re-labelled CR chest PA): {img_gated} / {len(relabelled)} gated "
          f"({img_share:.1%})")

    v = VARIANTS[1]
    test_gated = 0
    for k, film in enumerate(films):
        path = wrap_film(film, v, workdir / f"t{k}.dcm")
        test_gated += model.score_frame(read_frame(path), explain=None).status == OUT_OF_SCOPE
        os.unlink(path)
    t_share = test_gated / len(films)
    print(f"   TARGET <= 3 % of the {len(films)} test films gated: {t_share:.1%}  -> "
          f"{'PASS' if t_share <= 0.03 else 'MISS'}")
    adult = model.score_frame(read_frame(str(pydicom_data_file("RG1_UNCI.dcm"))), explain=None)
    print(f"   adult PA chest CR (pydicom-data RG1, out of the training population): status {adult.status}"
          f"{', ' + adult.scope_reason if adult.scope_reason else ''}; OOD score {adult.ood_score:.1f}")
    return {"out_of_scope_gated": share, "n_out_of_scope": n, "by_source": {k: v for k, v in by_source.items()},
            "image_check_alone_gated": img_share, "n_relabelled": len(relabelled), "test_films_gated": t_share,
            "adult_chest_status": adult.status, "unreadable": len(unreadable)}


# ------------------------------------------------------------------------------------------------ 3. maps
def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a.ravel(), b.ravel()).statistic
    return float(r) if np.isfinite(r) else 0.0


def section_maps(model, films: np.ndarray, n: int) -> dict:  # noqa: ANN001
    import copy

    import torch

    from medviewer.inference.attribution import attribution_maps

    x = (films[:n].astype(np.float32) / 255.0)[:, None]
    probs = model.predict(x)
    pred = probs.argmax(1)
    layer = model.card.attribution_layer
    net = model.network

    def maps(network, xs: np.ndarray) -> np.ndarray:
        out = []
        for i in range(len(xs)):
            t = torch.from_numpy(xs[i:i + 1])
            out.append(attribution_maps(network, t, int(pred[i]), method="gradcam", layer=layer)[0])
        return np.stack(out)

    base = maps(net, x)
    # Cascading randomisation from the top: fc, layer3, layer2, layer1, stem of every member, cumulatively.
    print(f"\n3. Maps on {n} test films (Grad-CAM of the predicted class, layer {layer}, 14 x 14 cells)")
    print("   cascading randomisation (Adebayo et al. 2018), mean Spearman correlation with the trained map:")
    randomised = copy.deepcopy(net)
    torch.manual_seed(0)
    cascade = {}
    for block in ("fc", "layer3", "layer2", "layer1", "stem"):
        for m in randomised.members:
            for mod in getattr(m, block).modules():
                if hasattr(mod, "reset_parameters"):
                    mod.reset_parameters()
        r = float(np.mean([_spearman(a, b) for a, b in zip(base, maps(randomised, x))]))
        cascade[block] = r
        print(f"     up to {block:7s} re-initialised: {r:+.3f}")
    ok_cascade = abs(cascade["stem"]) < 0.3
    print(f"   TARGET correlation falls towards 0 when every layer is random: {cascade['stem']:+.3f}  -> "
          f"{'PASS' if ok_cascade else 'MISS'}")

    # Deletion curve.
    rng = np.random.default_rng(0)
    h, w = x.shape[-2:]
    fill = x.mean(axis=(1, 2, 3), keepdims=True)
    p0 = probs[np.arange(n), pred]
    curve = {}
    print("   deletion: P(predicted class) with the top-k % of the map (or random pixels) set to the film's mean")
    print(f"     {'k':>4s} {'map':>7s} {'random':>7s}")
    order = np.argsort(-base.reshape(n, -1), axis=1, kind="stable")
    for frac in (0.0, 0.05, 0.1, 0.2, 0.3, 0.5):
        k = int(round(frac * h * w))
        m_map = np.zeros((n, h * w), bool)
        np.put_along_axis(m_map, order[:, :k], True, axis=1)
        m_rand = np.zeros((n, h * w), bool)
        for i in range(n):
            m_rand[i, rng.choice(h * w, k, replace=False)] = True
        pm = model.predict(np.where(m_map.reshape(n, 1, h, w), fill, x).astype(np.float32))[np.arange(n), pred]
        pr = model.predict(np.where(m_rand.reshape(n, 1, h, w), fill, x).astype(np.float32))[np.arange(n), pred]
        curve[f"{frac:.2f}"] = {"map": float(pm.mean()), "random": float(pr.mean())}
        print(f"     {frac:4.0%} {pm.mean():7.3f} {pr.mean():7.3f}")
    auc_map = float(np.mean([v["map"] for v in curve.values()]))
    auc_rand = float(np.mean([v["random"] for v in curve.values()]))
    print(f"   TARGET map-guided deletion lowers P faster than random (mean over k): {auc_map:.3f} vs {auc_rand:.3f}"
          f"  -> {'PASS' if auc_map < auc_rand else 'MISS'}   (P before deletion {p0.mean():.3f})")

    margin = int(round(0.06 * h))
    inside = base[:, margin:h - margin, margin:w - margin].sum(axis=(1, 2)) / np.maximum(base.sum(axis=(1, 2)),
                                                                                       1e-12)
    area = (h - 2 * margin) * (w - 2 * margin) / (h * w)
    print(f"   map mass inside the film (central region, {area:.0%} of the pixels): {inside.mean():.1%} "
          f"(median {np.median(inside):.1%})")
    return {"n": n, "cascading_randomisation_spearman": cascade, "deletion": curve,
            "deletion_mean_map": auc_map, "deletion_mean_random": auc_rand,
            "mass_inside_film": float(inside.mean()), "film_region_area_share": area}


# ------------------------------------------------------------------------------------------------ 4. 28 x 28
def section_compare(films: np.ndarray, y: np.ndarray) -> dict:
    from medviewer.inference.preprocess import fit_to_input, normalise
    from medviewer.inference.scorer import ImageModel
    from medviewer.training.metrics import metrics_at

    old = ImageModel.load(ROOT / "models" / "pneumonia-cnn", device="cpu")
    spec = old.card.input
    x = np.stack([normalise(fit_to_input(f.astype(np.float32) / 255.0, spec.height, spec.width, spec.fit)[0],
                            spec.mean, spec.std)[None] for f in films])
    p = old.predict(x)[:, 1]
    m = metrics_at(p, y, old.card.threshold)
    print(f"\n4. {old.card.name} {old.card.version} (28 x 28) on the same {len(y)} films: AUC {m['auc']:.4f}, accuracy "
          f"{m['accuracy']:.3f} at its threshold {old.card.threshold:.3f} (sensitivity {m['sensitivity']:.3f}, "
          f"specificity {m['specificity']:.3f})")
    return {"model": f"{old.card.name} {old.card.version}", **{k: m[k] for k in ("auc", "accuracy", "sensitivity",
                                                                                 "specificity")}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "pneumonia-chest224"))
    ap.add_argument("--sections", default="dicom,gate,maps,compare",
                    help="comma-separated; 'metrics' (the card's test figures: AUC, accuracy at the card's "
                         "threshold and at 0.5 with bootstrap intervals, ECE, members) is opt-in")
    ap.add_argument("--limit", type=int, default=0, help="test films used (0: all 624)")
    ap.add_argument("--maps-n", type=int, default=100, help="films used for the map checks")
    ap.add_argument("--write-card", action="store_true")
    args = ap.parse_args(argv)
    import warnings

    import torch

    from medviewer.inference.scorer import ImageModel
    from medviewer.training import kermany

    warnings.filterwarnings("ignore", module="pydicom")  # the test files' own oddities, not our findings
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    model = ImageModel.load(args.model, device="cpu")
    data = kermany.load(verify_md5=False)
    films, y = data.test.images, data.test.labels
    if args.limit:
        films, y = films[:args.limit], y[:args.limit]
    print(f"{model.card.name} {model.card.version}, weights {model.card.weights_sha256[:12]}, threshold "
          f"{model.card.threshold:.3f}")
    sections = set(args.sections.split(","))
    results = {}
    metrics = None
    with tempfile.TemporaryDirectory(prefix="medviewer-eval-") as tmp:
        work = Path(tmp)
        if "metrics" in sections:
            metrics = section_metrics(model, films, y)
        if "dicom" in sections:
            results["dicom_path"] = section_dicom(model, films, y, work)
        if "gate" in sections:
            results["gate"] = section_gate(model, films, work)
        if "maps" in sections:
            results["maps"] = section_maps(model, films, min(args.maps_n, len(films)))
        if "compare" in sections:
            results["pneumonia_cnn_28_on_same_films"] = section_compare(films, y)
    if args.write_card:
        card_path = Path(model.card.path)
        card = json.loads(card_path.read_text(encoding="utf-8"))
        card.setdefault("evaluation", {}).update(results)
        card["evaluation"]["script"] = "python benchmarks/eval_chest224.py --write-card"
        if metrics is not None:
            if args.limit:
                raise SystemExit("--write-card with --limit: the card's test figures need all the test films")
            card["metrics"].update({k: metrics[k] for k in ("test", "test_at_threshold_0.5", "test_members_auc")})
            card["metrics"]["targets"] = {**card["metrics"].get("targets", {}), **metrics["targets"]}
            card["metrics"]["test_scored_by"] = ("python benchmarks/eval_chest224.py --sections metrics,... "
                                                 "--write-card (the product's ImageModel.predict, inference "
                                                 "recipe included)")
            history = card.get("selection_history") or []
            if history and str(history[-1].get("test_after_selection", "")).startswith("pending"):
                test, ci = metrics["test"], metrics["test"]["ci95"]
                history[-1]["test_after_selection"] = {
                    "date": time.strftime("%Y-%m-%d %H:%M"), "auc": test["auc"], "auc_ci95": ci["auc"],
                    "accuracy": test["accuracy"], "accuracy_ci95": ci["accuracy"],
                    "sensitivity": test["sensitivity"], "specificity": test["specificity"], "ece": test["ece"],
                    "accuracy_at_0.5": metrics["test_at_threshold_0.5"]["accuracy"],
                    "targets_met": {"auc": metrics["targets"]["auc"]["met"],
                                    "accuracy": metrics["targets"]["accuracy_at_validation_threshold"]["met"]},
                    "note": "scored once, after the recipe was frozen; recorded whatever the figures"}
        card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        print(f"\nwritten to {card_path} (evaluation)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
