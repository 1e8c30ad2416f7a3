"""CoNLL-2003 (en) and CoNLL-2002 (es, nl) as `datasets.Dataset`s with one shared IOB2 label set.

Local files are the primary source (a directory laid out as ``conll2003/eng.*`` and
``conll2002/{esp,ned}.*``, given by a parameter or ``MMAKIT_DATA_DIR``); the Hugging Face
hub is the fallback for users with network. Every malformed line is reported with its file
and line number, because a silent skip would change the evaluation.

Unlabelled generic text (``generic_text/<lang>.txt``, one sentence a line: software help, no
NER data) is read from the same directory or from its own folder; it has no hub fallback.
"""
from __future__ import annotations

import codecs
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

from datasets import ClassLabel, Dataset, Features, Sequence, Value

ENTITY_TYPES = ("PER", "ORG", "LOC", "MISC")
LABELS = ["O"] + [f"{p}-{t}" for t in ENTITY_TYPES for p in ("B", "I")]
LABEL2ID = {label: i for i, label in enumerate(LABELS)}
LANGUAGES = ("en", "es", "nl")
SPLITS = ("train", "dev", "test")
DATA_DIR_ENV = "MMAKIT_DATA_DIR"
FEATURES = Features({"tokens": Sequence(Value("string")), "ner_tags": Sequence(ClassLabel(names=LABELS))})


@dataclass(frozen=True)
class CorpusFile:
    """Where one language's files live and how they are written."""

    folder: str
    prefix: str
    n_columns: int
    scheme: str  # "IOB1" or "IOB2"
    hub: tuple[str, str | None]


CORPORA = {
    "en": CorpusFile("conll2003", "eng", 4, "IOB1", ("eriktks/conll2003", None)),
    "es": CorpusFile("conll2002", "esp", 3, "IOB2", ("conll2002", "es")),
    "nl": CorpusFile("conll2002", "ned", 3, "IOB2", ("conll2002", "nl")),
}
SPLIT_SUFFIX = {"train": "train", "dev": "testa", "test": "testb"}
GENERIC_LANGUAGES = ("en", "es", "nl", "de", "fr")
GENERIC_FOLDER = "generic_text"
GENERIC_TOOL = "../shared/tools/get-generic-text"
HUB_SPLIT = {"train": "train", "dev": "validation", "test": "test"}

Sentence = tuple[list[str], list[str]]


class ConllFormatError(ValueError):
    """A CoNLL file that cannot be read as the study expects; the message names file and line."""


class DataSourceError(RuntimeError):
    """No usable data source: neither a local directory nor the hub."""


def _read_text(path: Path) -> str:
    """The file's text: UTF-8 without a leading byte-order mark, else latin-1."""
    raw = path.read_bytes()
    raw = raw.removeprefix(codecs.BOM_UTF8)  # it would otherwise stay glued to the first token
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # the original CoNLL-2002 distribution


def _check_tag(tag: str, where: str) -> None:
    if tag not in LABEL2ID:
        raise ConllFormatError(f"{where}: unknown tag {tag!r}; expected one of {', '.join(LABELS)}")


def _check_iob2(tags: list[str], start_line: int, path: Path, repair: bool) -> list[str]:
    """IOB2 tags as read, or with each I- that opens an entity made B- (as conlleval reads it)."""
    out, prev = [], "O"
    for offset, tag in enumerate(tags):
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            where = f"{path}:{start_line + offset}: {tag} follows {prev}; IOB2 requires B-{tag[2:]} or {tag} before it"
            if not repair:
                raise ConllFormatError(where)
            warnings.warn(where + f" (read as B-{tag[2:]})", stacklevel=4)
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def iob1_to_iob2(tags: list[str]) -> list[str]:
    """Rewrite IOB1 tags (I- may open an entity) as IOB2 (every entity opens with B-)."""
    out, prev = [], "O"
    for tag in tags:
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        prev = tag
    return out


def read_conll(path: str | Path, n_columns: int, scheme: str = "IOB2", repair: bool = True) -> list[Sentence]:
    """Read one CoNLL file into (tokens, IOB2 tags) sentences; token first, NER tag last.

    In an IOB2 file an I- tag that opens an entity is an error; the real CoNLL-2002 files
    hold one such tag per Spanish file (an entity split by a sentence break), so by default
    it is read as B- with a warning naming file and line; `repair=False` raises instead.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CoNLL file not found: {path}")
    if scheme not in ("IOB1", "IOB2"):
        raise ValueError(f"scheme must be IOB1 or IOB2, not {scheme!r}")
    sentences: list[Sentence] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def flush() -> None:
        if tokens:
            fixed = iob1_to_iob2(tags) if scheme == "IOB1" else _check_iob2(tags, start, path, repair)
            sentences.append((list(tokens), fixed))
            tokens.clear()
            tags.clear()

    for lineno, line in enumerate(_read_text(path).splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            flush()
            continue
        if len(fields) != n_columns:
            raise ConllFormatError(f"{path}:{lineno}: expected {n_columns} columns, found {len(fields)}: {line!r}")
        _check_tag(fields[-1], f"{path}:{lineno}")
        if not tokens:
            start = lineno
        tokens.append(fields[0])
        tags.append(fields[-1])
    flush()
    if not sentences:
        raise ConllFormatError(f"{path}: no sentences (empty file?)")
    return sentences


def to_dataset(sentences: list[Sentence]) -> Dataset:
    """Sentences as a Dataset with the shared ClassLabel feature."""
    return Dataset.from_dict(
        {"tokens": [t for t, _ in sentences], "ner_tags": [[LABEL2ID[x] for x in g] for _, g in sentences]},
        features=FEATURES,
    )


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """The local data directory from the argument or MMAKIT_DATA_DIR, or None for the hub."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    if not chosen:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        raise DataSourceError(f"data directory {path} does not exist (set data_dir or {DATA_DIR_ENV})")
    return path


def conll_path(data_dir: Path, lang: str, split: str) -> Path:
    spec = CORPORA[lang]
    return data_dir / spec.folder / f"{spec.prefix}.{SPLIT_SUFFIX[split]}"


def _check_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {value!r}; choose from {', '.join(choices)}")


def _load_from_hub(lang: str, split: str) -> Dataset:
    import datasets

    name, config = CORPORA[lang].hub
    try:
        hub = datasets.load_dataset(name, config, split=HUB_SPLIT[split])
    except Exception as exc:  # network, missing script support, moved dataset
        raise DataSourceError(
            f"could not load {lang}/{split} from the Hugging Face hub ({name}): {exc}. "
            f"Point mmakit at local CoNLL files with the data_dir parameter or {DATA_DIR_ENV}."
        ) from exc
    names = hub.features["ner_tags"].feature.names
    sentences = [(row["tokens"], [names[i] for i in row["ner_tags"]]) for row in hub]
    return to_dataset([(t, iob1_to_iob2(g)) for t, g in sentences])


def load_split(lang: str, split: str, data_dir: str | Path | None = None, max_samples: int | None = None) -> Dataset:
    """One language/split as a Dataset of IOB2 sentences, optionally the first `max_samples`."""
    _check_choice(lang, LANGUAGES, "language")
    _check_choice(split, SPLITS, "split")
    local = resolve_data_dir(data_dir)
    if local is None:
        ds = _load_from_hub(lang, split)
    else:
        spec = CORPORA[lang]
        ds = to_dataset(read_conll(conll_path(local, lang, split), spec.n_columns, spec.scheme))
    if max_samples is not None and max_samples < len(ds):
        ds = ds.select(range(max_samples))
    return ds


def load_eval_sets(
    langs: tuple[str, ...] | list[str] = LANGUAGES,
    splits: tuple[str, ...] | list[str] = ("dev", "test"),
    data_dir: str | Path | None = None,
    max_samples: int | None = None,
) -> dict[tuple[str, str], Dataset]:
    """Every (language, split) evaluation set the study scores."""
    return {(lang, split): load_split(lang, split, data_dir, max_samples) for lang in langs for split in splits}


def sample(ds: Dataset, n: int | None, seed: int) -> Dataset:
    """`n` sentences drawn with `seed` (all of them when n is None or not smaller than the set)."""
    return ds if n is None or n >= len(ds) else ds.shuffle(seed=seed).select(range(n))


def fingerprint(ds: Dataset) -> str:
    """A content hash of every column of a dataset (raw or tokenized), for cache keys."""
    h = hashlib.sha256()
    for name in sorted(ds.column_names):
        h.update(name.encode())
        h.update(json.dumps(list(ds[name]), ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def resolve_generic_text_dir(generic_text_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Path:
    """The folder of generic text: `generic_text_dir`, else `generic_text/` in the CoNLL data
    directory (the data_dir argument or MMAKIT_DATA_DIR); fails naming both options and the tool
    that builds the corpus when there is none."""
    local = Path(generic_text_dir).expanduser() if generic_text_dir else None
    if local is None and (data := resolve_data_dir(data_dir)) is not None:
        local = data / GENERIC_FOLDER
    if local is None or not local.is_dir():
        where = f"{local} does not exist" if local else "no folder given"
        raise DataSourceError(
            f"generic text not found ({where}): set the generic_text_dir parameter, or {DATA_DIR_ENV} (or data_dir) "
            f"to a folder holding {GENERIC_FOLDER}/<lang>.txt; build the corpus with {GENERIC_TOOL} OUT_DIR")
    return local


def load_generic_text(lang: str, generic_text_dir: str | Path | None = None,
                      data_dir: str | Path | None = None) -> list[str]:
    """Every sentence of `lang`'s generic text (one a line, blank lines dropped), in file order."""
    _check_choice(lang, GENERIC_LANGUAGES, "generic-text language")
    path = resolve_generic_text_dir(generic_text_dir, data_dir) / f"{lang}.txt"
    if not path.is_file():
        raise DataSourceError(f"generic text file {path} not found: rebuild the corpus with "
                              f"{GENERIC_TOOL} OUT_DIR --langs {lang} (or set generic_text_dir)")
    lines = [line.strip() for line in _read_text(path).splitlines()]
    sentences = [line for line in lines if line]
    if not sentences:
        raise DataSourceError(f"{path}: no sentences (empty file?)")
    return sentences
