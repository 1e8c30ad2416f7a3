"""Text to tag, read as sentences of words.

Two inputs are understood: raw text, one sentence a line, split into words at whitespace and
punctuation (each word's character span is kept, so an entity can point back into its line),
and pre-tokenized CoNLL input, blank-line-separated token lines with the word in the first
column (what the study's data files and conlleval use). `detect_format` tells them apart.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

TEXT, CONLL = "text", "conll"
FORMATS = (TEXT, CONLL)
DOCSTART = "-DOCSTART-"
MAX_CONLL_COLUMNS = 4  # word POS chunk NER: CoNLL-2003's widest line

_WORD = re.compile(r"""
      (?:[^\W\d_]\.){2,}        # abbreviations: U.S., e.g.
    | \d+(?:[.,:/]\d+)+         # numbers, times and dates: 3.5, 1,000, 12:30, 1/2
    | \w+(?:['’-]\w+)*          # words, with inner hyphens and apostrophes: Jean-Pierre, O'Neil
    | [^\w\s]                   # any other character on its own: punctuation, symbols
""", re.VERBOSE)
_TAG = re.compile(r"^(O|[BIES]-\S+)$")


@dataclass(frozen=True)
class Sentence:
    """Words to tag; for raw text also the line they come from and each word's [start, end)
    character span in it (None for CoNLL input). `line` is the 1-based input line it starts on."""

    words: list[str]
    line: int
    text: str | None = None
    spans: list[tuple[int, int]] | None = None


def split_words(line: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The words of a line of raw text and their character spans."""
    found = list(_WORD.finditer(line))
    return [m.group() for m in found], [m.span() for m in found]


def _blocks(lines: list[str]) -> list[list[tuple[int, str]]]:
    """Runs of non-blank lines (with their 0-based line numbers), split at blank lines."""
    blocks, current = [], []
    for number, line in enumerate(lines):
        if line.strip():
            current.append((number, line))
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def detect_format(text: str) -> str:
    """CONLL or TEXT: CoNLL when a -DOCSTART- line is present, or when every non-blank line has
    the same number of columns (at most four), some sentence spans several lines, and sentences
    are separated by blank lines or every line ends in a tag (O, B-X, I-X). Anything else is
    raw text; pass the format explicitly where a text could be read either way."""
    lines = text.splitlines()
    fields = [line.split() for line in lines if line.strip()]
    if any(f[0] == DOCSTART for f in fields):
        return CONLL
    blocks = _blocks(lines)
    if not fields or len({len(f) for f in fields}) != 1 or len(fields[0]) > MAX_CONLL_COLUMNS:
        return TEXT
    if not any(len(block) > 1 for block in blocks):
        return TEXT
    tagged = len(fields[0]) > 1 and all(_TAG.match(f[-1]) for f in fields)
    return CONLL if len(blocks) > 1 or tagged else TEXT


def read_sentences(text: str, fmt: str = "auto") -> list[Sentence]:
    """The sentences of `text` read as `fmt` (TEXT, CONLL or "auto": `detect_format`). Raw text
    gives one sentence per line with words (blank lines give none); CoNLL gives one per block,
    the first column of each line, -DOCSTART- lines dropped."""
    if fmt == "auto":
        fmt = detect_format(text)
    if fmt not in FORMATS:
        raise ValueError(f"unknown input format {fmt!r}; choose from auto, {', '.join(FORMATS)}")
    lines = text.splitlines()
    if fmt == TEXT:
        out = []
        for number, line in enumerate(lines):
            words, spans = split_words(line)
            if words:
                out.append(Sentence(words, number + 1, line, spans))
        return out
    sentences = []
    for block in _blocks(lines):
        tokens = [(number, line.split()[0]) for number, line in block if line.split()[0] != DOCSTART]
        if tokens:
            sentences.append(Sentence([word for _, word in tokens], tokens[0][0] + 1))
    return sentences
