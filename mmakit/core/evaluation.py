"""Entity-level F1 per language and split and the multilingual score.

The headline F1 is the CoNLL shared tasks' own: conlleval.pl's chunking, as seqeval's default
mode implements it (an I-X that does not continue an X chunk opens one). Beside it are the
strict IOB2 F1 (such chunks do not exist) and the number of predicted chunks on which the two
readings differ, so a model that emits ill-formed tag sequences shows.

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
from mmakit.core.data import LABELS, iob1_to_iob2

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


def ill_formed_chunks(pred: list[list[str]]) -> int:
    """Predicted chunks opened by an I- tag: an I-X first in its sentence or after a tag that is
    not B-X or I-X (O; another type, as in B-X I-Y or I-X I-Y). conlleval reads each such I-X
    as the start of an X chunk, strict IOB2 reads no chunk there; every other chunk both read
    alike. They are exactly the tags that IOB1-to-IOB2 rewriting turns into B-X.
    """
    return sum(a != b for tags in pred for a, b in zip(tags, iob1_to_iob2(tags)))


def score(true: list[list[str]], pred: list[list[str]]) -> dict:
    """Micro F1, precision, recall and per-type F1 as conlleval scores them (seqeval's default
    mode), the strict IOB2 F1 (`f1_strict`) and the count of `ill_formed_chunks` in `pred`."""
    report = classification_report(true, pred, output_dict=True, zero_division=0)
    micro = report["micro avg"]
    return {
        "f1": float(f1_score(true, pred, zero_division=0)),
        "f1_strict": float(f1_score(true, pred, mode="strict", scheme=IOB2, zero_division=0)),
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "per_type": {k: float(v["f1-score"]) for k, v in report.items() if k.isupper()},
        "ill_formed": ill_formed_chunks(pred),
    }


def gold_tags(ds: Dataset) -> list[list[str]]:
    """The tag names of every sentence of a CoNLL Dataset."""
    names = ds.features["ner_tags"].feature.names
    return [[names[t] for t in tags] for tags in ds["ner_tags"]]


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
        self.pad_id = tokenizer.pad_token_id
        self.sets = {key: EvalSet(gold_tags(ds), tokenize_dataset(ds, tokenizer, max_length), max_length)
                     for key, ds in sets.items()}

    def evaluate(self, logits_fn: LogitsFn, keys: list[tuple[str, str]] | None = None, batch_size: int = 64) -> dict:
        """Scores, truncation and predicted tags of the chosen sets.

        {"f1" (conlleval), "f1_strict", "ill_formed": {lang: {split: value}},
        "detail": {lang: {split: score(...)}}, "truncated": {lang: {split: {"words": n,
        "sentences": k}}} (the words past the sub-token limit, scored as "O", and the sentences
        that lost any), "predictions": {(lang, split): word tags per sentence}}.
        """
        out: dict = {name: {} for name in ("f1", "f1_strict", "ill_formed", "detail", "truncated", "predictions")}
        for lang, split in tqdm(keys or list(self.sets), desc="evaluate", unit="set", leave=False):
            s = self.sets[(lang, split)]
            pred = s.predict(logits_fn, self.pad_id, batch_size)
            result = score(s.gold, pred)
            values = {"f1": result["f1"], "f1_strict": result["f1_strict"], "ill_formed": result["ill_formed"],
                      "detail": result, "truncated": dict(s.truncated)}
            for name, value in values.items():
                out[name].setdefault(lang, {})[split] = value
            out["predictions"][(lang, split)] = pred
        return out


def mls(f1: Mapping[str, Mapping[str, float]], reference: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
    """Multilingual score per split: sum over es and nl of (F1 - reference F1).

    Splits missing for either language in `f1` or `reference` are left out.
    """
    splits = set.intersection(*(set(f1.get(lang, {})) & set(reference.get(lang, {})) for lang in ZERO_SHOT))
    return {s: float(sum(f1[lang][s] - reference[lang][s] for lang in ZERO_SHOT)) for s in sorted(splits)}
