"""Sub-word tokenization with word-level labels: the first sub-token of each word carries the
word's label, every other position gets -100 so the loss and the metric both work per word."""
from __future__ import annotations

import hashlib
from functools import lru_cache

from accelerate import PartialState
from datasets import Dataset, load_from_disk
from transformers import PreTrainedTokenizerBase

from mmakit.core.data import fingerprint
from mmakit.core.paths import atomic_path, cache_root

IGNORE = -100
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def first_subtokens(word_ids: list[int | None]) -> list[int]:
    """For each token, the index of the word it starts, or IGNORE when it starts none."""
    out, previous = [], None
    for wid in word_ids:
        out.append(wid if wid is not None and wid != previous else IGNORE)
        previous = wid
    return out


TOKENIZED_VERSION = 1  # bump when `_encode_all` changes what it writes


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """A hash of everything that decides how a fast tokenizer splits text."""
    return hashlib.sha256(f"{type(tokenizer).__name__}{tokenizer.backend_tokenizer.to_str()}".encode()).hexdigest()[:16]


def tokenize_dataset(ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int = 128) -> Dataset:
    """Tokenize pre-split words and align labels; works for WordPiece and SentencePiece fast tokenizers.

    Keeps `word_index` (the word each first sub-token starts) so evaluation maps predictions
    back to words, scoring words lost to truncation as predicted "O". Each split is tokenized
    once per tokenizer: the result is kept on disk under the cache, keyed by the tokenizer's
    and the data's fingerprints, and in memory for the process.
    """
    if not tokenizer.is_fast:
        raise TypeError("a fast tokenizer is needed (word_ids); load it with use_fast=True")
    key = f"{tokenizer_fingerprint(tokenizer)}-{fingerprint(ds)}-{max_length}-v{TOKENIZED_VERSION}"
    return _cached(key, ds, tokenizer, max_length)


def _cached(key: str, ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    folder = cache_root() / "tokenized" / key
    with PartialState().main_process_first():  # under `accelerate launch` one process writes, the others read
        if not folder.exists():
            with atomic_path(folder) as tmp:
                _encode_all(ds, tokenizer, max_length).save_to_disk(str(tmp))
    return _load(str(folder))


@lru_cache(maxsize=16)
def _load(folder: str) -> Dataset:
    return load_from_disk(folder, keep_in_memory=True)


def _encode_all(ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int) -> Dataset:
    if not tokenizer.is_fast:
        raise TypeError("a fast tokenizer is needed (word_ids); load it with use_fast=True")

    def encode(batch: dict) -> dict:
        enc = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        enc["word_index"] = [first_subtokens(enc.word_ids(i)) for i in range(len(batch["tokens"]))]
        enc["labels"] = [
            [tags[w] if w != IGNORE else IGNORE for w in index]
            for index, tags in zip(enc["word_index"], batch["ner_tags"])
        ]
        return enc

    return ds.map(encode, batched=True, remove_columns=ds.column_names, desc="tokenize", keep_in_memory=True)
