"""Sub-word tokenization with word-level labels: the first sub-token of each word carries the
word's label, every other position gets -100 so the loss and the metric both work per word."""
from __future__ import annotations

from datasets import Dataset
from transformers import PreTrainedTokenizerBase

IGNORE = -100
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def first_subtokens(word_ids: list[int | None]) -> list[int]:
    """For each token, the index of the word it starts, or IGNORE when it starts none."""
    out, previous = [], None
    for wid in word_ids:
        out.append(wid if wid is not None and wid != previous else IGNORE)
        previous = wid
    return out


def tokenize_dataset(ds: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int = 128) -> Dataset:
    """Tokenize pre-split words and align labels; works for WordPiece and SentencePiece fast tokenizers.

    Keeps `word_index` (the word each first sub-token starts) so evaluation maps predictions
    back to words, scoring words lost to truncation as predicted "O".
    """
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
