"""Entity-level F1 per language and split (seqeval, IOB2, strict) and the multilingual score.

Scoring is backend-neutral: anything that maps a padded batch to logits (a PyTorch model,
an onnxruntime session) can be evaluated, so quantized graphs are scored as deployed.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from datasets import Dataset
from seqeval.metrics import classification_report, f1_score
from seqeval.scheme import IOB2
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import IGNORE, tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import LABELS

LogitsFn = Callable[[dict[str, torch.Tensor]], np.ndarray]
ZERO_SHOT = ("es", "nl")


def torch_logits(model: PreTrainedModel) -> LogitsFn:
    """A no-grad logits function over a PyTorch token classifier."""
    model.eval()

    def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            return model(**inputs).logits.float().numpy()

    return run


def score(true: list[list[str]], pred: list[list[str]]) -> dict:
    """Micro F1, precision, recall and per-type F1 of IOB2 tag sequences (strict matching)."""
    report = classification_report(true, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    return {
        "f1": float(f1_score(true, pred, mode="strict", scheme=IOB2, zero_division=0)),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "per_type": {k: float(v["f1-score"]) for k, v in report.items() if k.isupper()},
    }


@dataclass
class EvalSet:
    """One language/split: the gold word tags and the tokenized sentences.

    `max_length` is the sub-token limit the sentences were tokenized with (None: unknown, then
    every word after the last one with a first sub-token counts as cut by truncation).
    """

    gold: list[list[str]]
    tokenized: Dataset
    max_length: int | None = None

    @cached_property
    def truncated(self) -> dict[str, int]:
        """{"words": words past the truncation limit, "sentences": sentences that lost any}.

        Those words get no prediction and are scored as "O". A sentence counts only when its
        sub-tokens fill `max_length`, so a last word with no sub-token of its own (which the
        tokenizer dropped, not the limit) is not taken for truncation.
        """
        words = sentences = 0
        for gold, index, ids in zip(self.gold, self.tokenized["word_index"], self.tokenized["input_ids"]):
            if self.max_length is not None and len(ids) < self.max_length:
                continue
            kept = max((w for w in index if w != IGNORE), default=-1) + 1
            if kept < len(gold):
                words += len(gold) - kept
                sentences += 1
        return {"words": words, "sentences": sentences}

    def predict(self, logits_fn: LogitsFn, pad_id: int, batch_size: int = 64) -> list[list[str]]:
        """Word-level tags: the argmax at each word's first sub-token; words cut by truncation get O."""
        pred = [["O"] * len(g) for g in self.gold]
        index = self.tokenized["word_index"]
        batches = sorted_batches([len(x) for x in index], batch_size)
        for ids, batch in zip(batches, iterate(self.tokenized, batches, pad_id)):
            labels = logits_fn(batch).argmax(-1)
            for row, i in enumerate(ids):
                for pos, word in enumerate(index[i]):
                    if word != IGNORE:
                        pred[i][word] = LABELS[labels[row, pos]]
        return pred


class EvalSuite:
    """Every evaluation set of a run, tokenized once for one tokenizer."""

    def __init__(self, sets: Mapping[tuple[str, str], Dataset], tokenizer: PreTrainedTokenizerBase, max_length: int = 128):
        names = sets[next(iter(sets))].features["ner_tags"].feature.names
        self.pad_id = tokenizer.pad_token_id
        self.sets = {
            key: EvalSet([[names[t] for t in tags] for tags in ds["ner_tags"]], tokenize_dataset(ds, tokenizer, max_length),
                         max_length)
            for key, ds in sets.items()
        }

    def evaluate(self, logits_fn: LogitsFn, keys: list[tuple[str, str]] | None = None, batch_size: int = 64) -> dict:
        """F1, detail and truncation of the chosen sets.

        {"f1": {lang: {split: f1}}, "detail": {lang: {split: score(...)}},
        "truncated": {lang: {split: {"words": n, "sentences": k}}}}: the words past the
        sub-token limit (scored as "O") and the sentences that lost any, per set.
        """
        f1: dict = {}
        detail: dict = {}
        truncated: dict = {}
        chosen = keys or list(self.sets)
        for lang, split in tqdm(chosen, desc="evaluate", unit="set", leave=False):
            s = self.sets[(lang, split)]
            result = score(s.gold, s.predict(logits_fn, self.pad_id, batch_size))
            f1.setdefault(lang, {})[split] = result["f1"]
            detail.setdefault(lang, {})[split] = result
            truncated.setdefault(lang, {})[split] = dict(s.truncated)
        return {"f1": f1, "detail": detail, "truncated": truncated}


def mls(f1: Mapping[str, Mapping[str, float]], reference: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Multilingual score per split: sum over es and nl of (F1 - reference F1).

    Splits missing for either language in `f1` or `reference` are left out.
    """
    splits = set.intersection(*(set(f1.get(lang, {})) & set(reference.get(lang, {})) for lang in ZERO_SHOT))
    return {s: float(sum(f1[lang][s] - reference[lang][s] for lang in ZERO_SHOT)) for s in sorted(splits)}
