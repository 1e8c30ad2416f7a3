"""Batches of tokenized sentences: length-grouped order for training, dynamic padding."""
from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import torch
from datasets import Dataset

from mmakit.core.alignment import IGNORE, MODEL_INPUTS


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int) -> list[list[int]]:
    """Shuffled batches of similar-length sentences: less padding, same randomness across runs."""
    rng = random.Random(seed)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mega = batch_size * 50
    batches = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Batches in decreasing length order: the fastest order for inference."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def collate(rows: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of tokenized rows to the longest one; labels padded with IGNORE."""
    width = max(len(r["input_ids"]) for r in rows)
    pad_value = {"input_ids": pad_id, "attention_mask": 0, "token_type_ids": 0, "labels": IGNORE}
    batch = {}
    for key in (*MODEL_INPUTS, "labels"):
        if key in rows[0]:
            batch[key] = torch.tensor([r[key] + [pad_value[key]] * (width - len(r[key])) for r in rows])
    return batch


def iterate(ds: Dataset, batches: list[list[int]], pad_id: int) -> Iterator[dict[str, torch.Tensor]]:
    """Collated batches in the given order."""
    columns = [c for c in (*MODEL_INPUTS, "labels") if c in ds.column_names]
    table = ds.select_columns(columns).to_dict()
    for idx in batches:
        yield collate([{c: table[c][i] for c in columns} for i in idx], pad_id)
