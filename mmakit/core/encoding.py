"""Sentences of words to model inputs for tagging text of any length, as the study scores it.

Each word is tagged at its first sub-token (alignment.first_subtokens), as in evaluation. A
sentence with more sub-tokens than the model's limit is split at word boundaries into pieces
that fit (never truncated, never an error). Rows are batched by length and padded to a few
bucket widths: less padding than one fixed length, and few enough shapes for deepsparse's
fixed-shape engines, so both runtimes run exactly the same batches.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from transformers import PreTrainedTokenizerBase

from mmakit.core.alignment import IGNORE, first_subtokens
from mmakit.core.batching import sorted_batches

PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}  # input_ids pad with the tokenizer's pad id


@dataclass
class Encoded:
    """Tokenized rows (one per piece of a sentence) and how they map back to words.

    `rows[i]` holds the tokenizer's model inputs of row i, `word_index[i]` for each of its
    positions the word (numbered within its sentence) it starts or IGNORE, `origin[i]` its
    sentence, `words[s]` the number of words of sentence s.
    """

    rows: list[dict[str, list[int]]]
    word_index: list[list[int]]
    origin: list[int]
    words: list[int]

    @property
    def lengths(self) -> list[int]:
        return [len(r["input_ids"]) for r in self.rows]


def pieces(counts: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Word ranges [start, end) covering all words in order, each with at most `budget`
    sub-tokens in all (`counts` per word), filled greedily; a word longer than the budget on
    its own is a piece by itself (the tokenizer cuts it, its first sub-token still tags it)."""
    out, start, used = [], 0, 0
    for i, n in enumerate(counts):
        if i > start and used + n > budget:
            out.append((start, i))
            start, used = i, 0
        used += n
    return out + ([(start, len(counts))] if len(counts) > start else [])


def subtoken_counts(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]]) -> list[list[int]]:
    """Sub-tokens per word of every sentence, special tokens left out."""
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, add_special_tokens=False)
    out = []
    for i, words in enumerate(sentences):
        counts = [0] * len(words)
        for wid in enc.word_ids(i):
            if wid is not None:
                counts[wid] += 1
        out.append(counts)
    return out


def encode(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]], max_length: int) -> Encoded:
    """Every sentence as rows of at most `max_length` sub-tokens: one row when it fits, else one
    per piece (`pieces`, the budget being `max_length` less the special tokens)."""
    if not tokenizer.is_fast:
        raise TypeError("a fast tokenizer is needed (word_ids); load it with use_fast=True")
    budget = max(1, max_length - tokenizer.num_special_tokens_to_add(pair=False))
    parts = [(s, start, end) for s, counts in enumerate(subtoken_counts(tokenizer, sentences))
             for start, end in pieces(counts, budget)]
    enc = tokenizer([list(sentences[s][start:end]) for s, start, end in parts], is_split_into_words=True,
                    truncation=True, max_length=max_length)
    names = [n for n in tokenizer.model_input_names if n in enc]
    rows = [{n: enc[n][i] for n in names} for i in range(len(parts))]
    index = [[w + start if w != IGNORE else IGNORE for w in first_subtokens(enc.word_ids(i))]
             for i, (_, start, _) in enumerate(parts)]
    return Encoded(rows, index, [s for s, _, _ in parts], [len(s) for s in sentences])


def bucket_width(length: int, bucket: int, max_length: int) -> int:
    """`length` rounded up to a multiple of `bucket`, at most `max_length` (never below `length`)."""
    return max(length, min(math.ceil(length / bucket) * bucket, max_length))


@dataclass
class Batch:
    """The rows of one batch (indices into Encoded.rows) and the padded arrays fed to the graph."""

    rows: list[int]
    feed: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return next(iter(self.feed.values())).shape


def batches(encoded: Encoded, batch_size: int, bucket: int, names: Sequence[str], pad_id: int,
            max_length: int) -> list[Batch]:
    """Rows in decreasing length, `batch_size` at a time, each batch padded to the bucket width
    of its longest row; `names` are the graph's inputs (one the tokenizer does not make is fed
    zeros, as the benchmark does)."""
    out = []
    for idx in sorted_batches(encoded.lengths, batch_size):
        width = bucket_width(max(encoded.lengths[i] for i in idx), bucket, max_length)
        feed = {}
        for name in names:
            pad = pad_id if name == "input_ids" else PAD_VALUES.get(name, 0)
            array = np.full((len(idx), width), pad, dtype=np.int64)
            for r, i in enumerate(idx):
                values = encoded.rows[i].get(name)
                if values is not None:
                    array[r, :len(values)] = values
            feed[name] = array
        out.append(Batch(idx, feed))
    return out


def fill_rows(feed: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
    """`feed` with its last row repeated up to `rows` rows: a fixed-batch engine's input."""
    have = len(next(iter(feed.values())))
    if have >= rows:
        return feed
    return {k: np.concatenate([v, np.repeat(v[-1:], rows - have, axis=0)]) for k, v in feed.items()}


def word_tags(encoded: Encoded, done: Sequence[tuple[Batch, np.ndarray]], labels: Sequence[str]) -> list[list[str]]:
    """Tags per word from each batch's logits: the argmax at the word's first sub-token, "O"
    for a word without one (as EvalSet.predict scores it)."""
    tags = [["O"] * n for n in encoded.words]
    for batch, logits in done:
        best = logits.argmax(-1)
        for r, row in enumerate(batch.rows):
            sentence = tags[encoded.origin[row]]
            for pos, word in enumerate(encoded.word_index[row]):
                if word != IGNORE:
                    sentence[word] = labels[best[r, pos]]
    return tags
