"""Encoders as token classifiers: any Hugging Face encoder from a hub name or a local folder,
or a tiny BERT built from a config with a WordPiece vocabulary trained on the fly (the smoke
profile), so that every code path runs without a download."""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertConfig,
    BertForTokenClassification,
    BertTokenizerFast,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core.data import LABEL2ID, LABELS
from mmakit.core.paths import file_sha256

SUPPORTED_TYPES = ("bert", "xlm-roberta", "distilbert")
TINY = "tiny"


@dataclass(frozen=True)
class ModelSpec:
    """A model of the study: a display name and where its weights come from.

    `source` is a hub id, a local folder (``~`` and environment variables expanded) or
    ``tiny`` for the smoke profile's model built from a config.
    """

    name: str
    source: str
    tiny: dict | None = None

    @property
    def location(self) -> str:
        if self.source == TINY:
            return TINY
        expanded = os.path.expandvars(os.path.expanduser(self.source))
        return expanded if Path(expanded).exists() else self.source

    @property
    def is_local(self) -> bool:
        return self.source == TINY or Path(self.location).exists()


def _check_type(model_type: str, where: str) -> None:
    if model_type not in SUPPORTED_TYPES:
        raise ValueError(f"{where}: unsupported model type {model_type!r}; supported: {', '.join(SUPPORTED_TYPES)}")


def _missing_model_message(spec: ModelSpec, exc: Exception) -> str:
    return (
        f"model {spec.name!r} could not be loaded from {spec.source!r} ({exc}). "
        "Give a local folder in the profile's `models` entry or with -p model_dir ...; "
        "for the quick profile build one with ../shared/tools/get-me5-small DIR."
    )


SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(sentences: list[list[str]], vocab_size: int = 2000) -> BertTokenizerFast:
    """A cased WordPiece tokenizer over `sentences`, the same for the same sentences on every run:
    every character (as a word start and as a ## continuation) so nothing becomes [UNK], then
    the most frequent words (ties by spelling) up to `vocab_size`. A deterministic vocabulary
    keeps the smoke model's cache keys stable from run to run."""
    words = Counter(w for s in sentences for w in s)
    chars = sorted({c for w in words for c in w})
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    known = set(vocab)
    frequent = [w for w, _ in sorted(words.items(), key=lambda kv: (-kv[1], kv[0])) if w not in known]
    vocab += frequent[: max(0, vocab_size - len(vocab))]
    # transformers 5 ignores vocab_file= here (every word became [UNK]): pass the vocabulary itself
    return BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=False, strip_accents=False)


def build_tiny(sentences: list[list[str]], seed: int = 0, **config: int) -> tuple[PreTrainedModel, BertTokenizerFast]:
    """A small randomly initialised BERT token classifier and its WordPiece tokenizer."""
    tokenizer = train_wordpiece(sentences, config.pop("vocab_size", 2000))
    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128) | config
    cfg = BertConfig(
        vocab_size=len(tokenizer), max_position_embeddings=130, num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)), label2id=LABEL2ID, **shape,
    )
    torch.manual_seed(seed)
    return BertForTokenClassification(cfg), tokenizer


def load_token_classifier(
    spec: ModelSpec, train_sentences: list[list[str]] | None = None, seed: int = 0
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The model and tokenizer of `spec`, with a fresh classifier head over the study's labels."""
    if spec.source == TINY:
        if train_sentences is None:
            raise ValueError("the tiny model needs training sentences to build its vocabulary")
        return build_tiny(train_sentences, seed=seed, **(spec.tiny or {}))
    try:
        config = AutoConfig.from_pretrained(spec.location)
    except OSError as exc:
        raise FileNotFoundError(_missing_model_message(spec, exc)) from exc
    _check_type(config.model_type, spec.name)
    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_pretrained(
        spec.location, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)), label2id=LABEL2ID
    )
    return model, AutoTokenizer.from_pretrained(spec.location)


def source_fingerprint(spec: ModelSpec) -> dict:
    """What identifies the starting weights: the hub id, or the content of the local folder's
    files (a folder rebuilt byte for byte on another machine keeps its cache keys)."""
    if spec.source == TINY:
        return {"tiny": spec.tiny or {}}
    path = Path(spec.location)
    if not path.exists():
        return {"hub": spec.source}
    return {"files": {p.name: _file_digest(p, p.stat().st_size, p.stat().st_mtime_ns)
                      for p in sorted(path.iterdir()) if p.is_file()}}


@lru_cache(maxsize=64)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file, computed once per (size, modification time)."""
    return file_sha256(path)


def freeze_word_embeddings(model: PreTrainedModel) -> None:
    """Stop gradients to the word-embedding matrix: the CPU shortcut for a 250k vocabulary."""
    model.get_input_embeddings().weight.requires_grad_(False)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Total and non-zero parameters (non-zero reflects pruning)."""
    total = sum(p.numel() for p in model.parameters())
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return {"params": total, "nonzero_params": nonzero}
