"""Calibration inputs for static INT8 quantization: real English sentences, or random token
ids for the data-free variant, fed to onnxruntime's calibrator in padded batches.

The reader counts the sentences it hands out, so a run can record (and a test can check)
how much data the activation ranges really came from.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from datasets import Dataset
from onnxruntime.quantization import CalibrationDataReader
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import sample


def english_sample(sentences: Dataset, tokenizer: PreTrainedTokenizerBase, n: int, seed: int,
                   max_length: int = 128) -> Dataset:
    """`n` sentences drawn at random (fixed seed) from a CoNLL split, tokenized for `tokenizer`."""
    if n > len(sentences):
        raise ValueError(f"{n} calibration sentences requested, only {len(sentences)} available")
    return tokenize_dataset(sample(sentences, n, seed), tokenizer, max_length)


def random_token_sample(tokenizer: PreTrainedTokenizerBase, n: int, length: int = 128, seed: int = 0) -> Dataset:
    """`n` sequences of `length` tokens: CLS, uniformly random non-special ids, SEP; no data needed."""
    rng = np.random.default_rng(seed)
    special = set(tokenizer.all_special_ids)
    vocabulary = np.array([i for i in range(len(tokenizer)) if i not in special])
    body = rng.choice(vocabulary, size=(n, length - 2))
    ids = np.concatenate([np.full((n, 1), tokenizer.cls_token_id), body, np.full((n, 1), tokenizer.sep_token_id)], axis=1)
    return Dataset.from_dict({
        "input_ids": ids.tolist(), "attention_mask": np.ones_like(ids).tolist(),
        "token_type_ids": np.zeros_like(ids).tolist(),
    })


class BatchReader(CalibrationDataReader):
    """Padded batches of a tokenized dataset as onnxruntime feeds, with a progress bar.

    Only the graph's inputs are fed. `len()` counts batches and `set_range` restricts the
    batches read next, which lets onnxruntime calibrate in chunks (CalibStridedMinMax) instead
    of holding every intermediate tensor of every batch in memory at once.
    """

    def __init__(self, data: Dataset, input_names: Sequence[str], pad_id: int, batch_size: int = 16,
                 desc: str = "calibrate"):
        self.data, self.input_names, self.pad_id = data, list(input_names), pad_id
        self.batches = sorted_batches([len(x) for x in data["input_ids"]], batch_size)
        self.sentences = 0
        self.bar = tqdm(total=len(data), desc=desc, unit="sentence")
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._todo = iterate(self.data, self.batches[start_index:end_index], self.pad_id)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._todo, None)
        if batch is None:
            return None
        size = len(batch["input_ids"])
        self.sentences += size
        self.bar.update(size)
        if self.sentences >= len(self.data):
            self.bar.close()
        return {name: batch[name].numpy().astype(np.int64) for name in self.input_names}
