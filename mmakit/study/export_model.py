"""`python -m mmakit export RUN --out DIR`: a run's deployed model as a self-contained folder.

The record's graph is rebuilt (study.rebuild: from the cache, or by the driver's own steps),
checked against the record's F1, and written with its tokenizer and label map
(runtime.model_folder) and a model card (study.model_card). The folder appears only when
complete.
"""
from __future__ import annotations

import json
from pathlib import Path

from transformers import AutoTokenizer

from mmakit.core.data import LABELS
from mmakit.core.paths import atomic_path
from mmakit.runtime.model_folder import CARD, CARD_JSON, GRAPH, write_folder
from mmakit.study import common, model_card, rebuild, text_speed


def export(name: str, out: str | Path, results_dir: str | Path | None = None, cache_dir: str | Path | None = None,
           data_dir: str | Path | None = None, license: str = "other", verify: bool = True,
           force: bool = False) -> tuple[Path, dict]:
    """Write the model of record `name` (`<notebook>/<run>` or a unique run name) to `out`; returns
    the folder and its card. An existing non-empty `out` is replaced only with `force`."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise FileExistsError(f"{out} exists and is not empty; choose another --out or pass --force to replace it")
    record = rebuild.find_record(name, results_dir)
    P = rebuild.run_params(record, cache_dir, data_dir)
    common.setup(P)
    folder = rebuild.graph_folder(record, P)
    check = rebuild.verify(record, P, folder, results_dir) if verify else None
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    real_text = text_speed.rows_for(rebuild.record_name(record), results_dir)
    with atomic_path(out) as tmp:
        write_folder(tmp, folder / GRAPH, tokenizer, LABELS, int(P.max_length))
        card = model_card.card_data(record, record["run"], tmp / GRAPH, int(P.max_length), check, real_text, license)
        (tmp / CARD_JSON).write_text(json.dumps(card, indent=2, default=str) + "\n")
        (tmp / CARD).write_text(model_card.markdown(card))
    return out, card
