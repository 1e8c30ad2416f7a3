"""The predicted tags behind a record's F1, kept so any score can be recomputed from files
(another scorer, a significance test, an error analysis) without the model.

One file per record: `<predictions root>/<notebook>/<run>.jsonl.gz`, the predictions root being
the sibling `predictions/` of the results root (outputs/predictions in the repository; beside a
test's temporary results folder in tests). Gzip'd JSON lines, reproducible byte for byte: a
header `{"format": 1, "labels": [...]}`, then one line per scored set `{"lang", "split",
"gold_sha256", "tags"}` with `tags` the label indices of every word of every sentence. Gold tags
are not stored (they come from the data files); `gold_sha256` (`tags_sha256` of the gold) lets a
rescoring check it reads the very sentences and words that were scored. The record refers to
its file as `{"path", "sha256": of the file, "bytes": its size}`, the path relative to the folder
that holds the results root (`predictions/<notebook>/<run>.jsonl.gz`, under outputs/ in the
repository).
"""
from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from mmakit.core.data import LABEL2ID, LABELS, load_split
from mmakit.core.evaluation import gold_tags, score
from mmakit.core.paths import atomic_path
from mmakit.study.records import results_root

FORMAT = 1
Tags = list[list[str]]


def predictions_root(results_dir: str | Path | None = None) -> Path:
    """Where predictions go: the sibling `predictions/` of the results root."""
    return results_root(results_dir).parent / "predictions"


def tags_sha256(tags: Tags) -> str:
    """A hash of tag sequences: equal iff the same tags in the same sentences."""
    return hashlib.sha256(json.dumps(tags).encode()).hexdigest()


def write_predictions(notebook: str, run: str, predicted: Mapping[tuple[str, str], Tags],
                      gold: Mapping[tuple[str, str], Tags], results_dir: str | Path | None = None) -> dict:
    """Write the predicted tags of every scored set of run `run` atomically; return the record's
    reference to the file. `gold` holds the gold tags of the same sets (hashed, not stored)."""
    path = predictions_root(results_dir) / notebook / f"{run}.jsonl.gz"
    lines = [{"format": FORMAT, "labels": LABELS}] + [
        {"lang": lang, "split": split, "gold_sha256": tags_sha256(gold[(lang, split)]),
         "tags": [[LABEL2ID[t] for t in sentence] for sentence in tags]}
        for (lang, split), tags in predicted.items()
    ]
    with atomic_path(path) as tmp, open(tmp, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as f:
        f.writelines((json.dumps(line, separators=(",", ":")) + "\n").encode() for line in lines)
    data = path.read_bytes()
    return {"path": path.relative_to(results_root(results_dir).parent).as_posix(),
            "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def _read(record: Mapping, results_dir: str | Path | None) -> list[dict]:
    """The scored sets of a record's predictions file, tags as label names, after checking its hash."""
    ref = record.get("predictions")
    if not ref:
        raise ValueError(f"record {record.get('notebook')}/{record.get('run')} keeps no predictions")
    path = results_root(results_dir).parent / ref["path"]
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != ref["sha256"]:
        raise ValueError(f"{path} is not the predictions file its record names (sha256 differs)")
    header, *sets = (json.loads(line) for line in gzip.decompress(data).decode().splitlines())
    return [s | {"tags": [[header["labels"][i] for i in sentence] for sentence in s["tags"]]} for s in sets]


def load_predictions(record: Mapping, results_dir: str | Path | None = None) -> dict[tuple[str, str], Tags]:
    """The predicted tags of every set a record scored: {(lang, split): tags per sentence}."""
    return {(s["lang"], s["split"]): s["tags"] for s in _read(record, results_dir)}


def rescore(record: Mapping, results_dir: str | Path | None = None, data_dir: str | Path | None = None) -> dict:
    """{lang: {split: score(...)}} recomputed from a record's predictions file and the gold tags
    of the data files its parameters name (`data_dir` overrides theirs); raises when the gold
    read now is not the gold that was scored."""
    params = record["params"]
    out: dict = {}
    for s in _read(record, results_dir):
        lang, split = s["lang"], s["split"]
        gold = gold_tags(load_split(lang, split, data_dir or params.get("data_dir"), params.get("max_eval_samples")))
        if tags_sha256(gold) != s["gold_sha256"]:
            raise ValueError(f"{lang}/{split}: the gold tags read now differ from those the record was scored on")
        out.setdefault(lang, {})[split] = score(gold, s["tags"])
    return out
