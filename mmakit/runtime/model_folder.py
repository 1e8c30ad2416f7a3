"""The folder a model is deployed as: what `python -m mmakit tag` needs, and nothing of the study.

    model.onnx             the graph: the tokenizer's inputs in, "logits" out (batch x tokens x labels)
    tokenizer.json         the fast tokenizer, with tokenizer_config.json (and whatever else
    tokenizer_config.json  save_pretrained writes)
    labels.json            {"labels": tag names in logit order, "scheme": "IOB2", "max_length": sub-token limit}
    README.md, card.json   the model card (mmakit.study.export_model writes them)
"""
from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

GRAPH = "model.onnx"
LABELS = "labels.json"
CARD = "README.md"
CARD_JSON = "card.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
REQUIRED = (GRAPH, *TOKENIZER_FILES, LABELS)
SCHEME = "IOB2"


class ModelFolderError(ValueError):
    """A model folder that cannot be used; the message names the folder and the file at fault."""


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder: its tag names in logit order, sub-token limit and tokenizer."""

    path: Path
    labels: list[str]
    max_length: int
    tokenizer: PreTrainedTokenizerBase

    @property
    def graph(self) -> Path:
        return self.path / GRAPH


def write_folder(dest: str | Path, graph: str | Path, tokenizer: PreTrainedTokenizerBase, labels: list[str],
                 max_length: int) -> Path:
    """Copy `graph` into `dest` as model.onnx beside the tokenizer's files and labels.json."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(graph, dest / GRAPH)
    tokenizer.save_pretrained(dest)
    (dest / LABELS).write_text(json.dumps({"labels": list(labels), "scheme": SCHEME, "max_length": int(max_length)},
                                          indent=2) + "\n")
    return dest


def _labels(path: Path) -> tuple[list[str], int]:
    try:
        spec = json.loads(path.read_text())
        labels, max_length = spec["labels"], int(spec["max_length"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFolderError(f"{path} is corrupt ({type(exc).__name__}: {exc}); it should hold "
                               '{"labels": [...], "max_length": n}') from None
    if not labels or not all(isinstance(x, str) for x in labels) or max_length < 2:
        raise ModelFolderError(f"{path} is corrupt: labels must be a non-empty list of tag names, max_length > 1")
    return labels, max_length


def load_folder(path: str | Path) -> ModelFolder:
    """The model folder at `path`, checked: ModelFolderError names what is missing or unreadable
    (the graph itself is read when a runtime opens it)."""
    path = Path(path)
    if not path.is_dir():
        raise ModelFolderError(f"no model folder at {path} (make one with `python -m mmakit export RUN --out DIR`)")
    missing = [name for name in REQUIRED if not (path / name).is_file()]
    if missing:
        raise ModelFolderError(f"model folder {path} lacks {', '.join(missing)}")
    labels, max_length = _labels(path / LABELS)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except Exception as exc:  # any parse error of the tokenizer's files
        raise ModelFolderError(f"the tokenizer files in {path} ({', '.join(TOKENIZER_FILES)}) cannot be read: "
                               f"{type(exc).__name__}: {exc}"[:500]) from None
    if not tokenizer.is_fast:
        raise ModelFolderError(f"{path / 'tokenizer.json'} does not give a fast tokenizer (needed for word alignment)")
    return ModelFolder(path, labels, max_length, tokenizer)
