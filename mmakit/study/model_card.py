"""The model card of an exported model, from its record alone: `card.json` (everything, for
programs) and `README.md` in Hugging Face's model-card layout (YAML front matter with language,
license, tags, datasets, metrics and a model-index of the F1 scores; then the text).

It says what the model is (languages, labels, technique), how good it is (entity F1 per language
and split with the seed spread where the record aggregates seeds, mls), how fast (the record's
fixed-length items/s per runtime and batch; real-text sentences/s where bench-text measured it),
what it learnt from (the data setting: whether es/nl are zero-shot) and where it comes from
(record, commit, code and library versions, every parameter).
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from mmakit.core.data import ENTITY_TYPES, LABELS, LANGUAGES
from mmakit.core.paths import file_sha256
from mmakit.runtime.export import graph_inputs
from mmakit.runtime.model_folder import GRAPH, LABELS as LABELS_FILE, TOKENIZER_FILES
from mmakit.study.code_version import versions_for
from mmakit.study.data_setting import ENGLISH_ONLY, GENERIC_MULTILINGUAL, TARGET_UNLABELLED, record_data_setting
from mmakit.study.provenance import run_environment
from mmakit.study.records import now, record_scorer

LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "nl": "Dutch"}
DATASETS = {"en": ("conll2003", None, "CoNLL-2003"), "es": ("conll2002", "es", "CoNLL-2002"),
            "nl": ("conll2002", "nl", "CoNLL-2002")}
HUB_SPLITS = {"dev": "validation", "test": "test"}
SETTING_TEXT = {
    ENGLISH_ONLY: "fine-tuned on labelled English CoNLL-2003 only: its Spanish and Dutch scores are zero-shot",
    GENERIC_MULTILINGUAL: "fine-tuned on labelled English CoNLL-2003, and also taught on task-agnostic "
                          "multilingual text (no CoNLL-2002): its Spanish and Dutch scores are zero-shot for the task",
    TARGET_UNLABELLED: "fine-tuned on labelled English CoNLL-2003, and also taught on unlabelled Spanish and Dutch "
                       "CoNLL-2002 training sentences (tags dropped): not zero-shot in the strict sense",
}
LICENSE_NOTE = ("mmakit does not set a licence: it follows from the base encoder's licence and from the data's terms "
                "(CoNLL-2002 is for research use only). Pass `--license` to `python -m mmakit export` to name it.")
ENV_KEYS = ("python", "torch", "transformers", "onnxruntime", "onnx", "deepsparse", "numpy", "cpu", "cores")


def own_throughput(record: dict) -> list[dict]:
    """The fixed-length speed rows of the record's own graph (03 and 04 time a dense reference
    named "dense" in the same rows; 06 keeps it apart)."""
    return [r for r in record.get("throughput") or [] if r.get("model") != "dense"]


def quality(record: dict) -> dict:
    """{lang: {split: {"f1", "std", "seeds", "min", "max"}}}: the record's F1 and, for a seed
    aggregate, the sample standard deviation and range over its seeds (None otherwise)."""
    std = record.get("f1_std") or {}
    seeds = [s["f1"] for s in (record.get("per_seed") or {}).values()]
    out: dict = {}
    for lang, splits in record["f1"].items():
        for split, value in splits.items():
            values = [s[lang][split] for s in seeds if split in s.get(lang, {})]
            out.setdefault(lang, {})[split] = {
                "f1": value, "std": std.get(lang, {}).get(split), "seeds": len(values) or 1,
                "min": min(values) if len(values) > 1 else None, "max": max(values) if len(values) > 1 else None}
    return out


def technique_tags(record: dict) -> list[str]:
    """Hub tags for what was done to the model."""
    t = record["technique"]
    tags = []
    if t.get("student") or t.get("method") == "distil":
        tags.append("distillation")
    if t.get("sparsity"):
        tags += ["pruned", "sparse"]
    if t.get("int8") or t.get("quantization") or t.get("method") in ("dynamic", "static", "qat", "data-free"):
        tags.append("int8")
    return tags


def card_data(record: dict, name: str, graph: Path, max_length: int, verification: dict | None,
              real_text: list[dict], license: str = "other") -> dict:
    """Everything the card says, as card.json holds it."""
    setting = record_data_setting(record)
    env = record.get("env") or {}
    exported = run_environment()
    return {
        "name": name, "record": f"{record['notebook']}/{record['run']}", "profile": record["profile"],
        "note": record.get("note"), "task": "token-classification", "labels": LABELS, "scheme": "IOB2",
        "entity_types": list(ENTITY_TYPES), "languages": [lang for lang in LANGUAGES if lang in record["f1"]],
        "base_model": record["model"], "license": license, "data_setting": setting,
        "zero_shot": setting != TARGET_UNLABELLED, "technique": record["technique"],
        "quality": {"scorer": record_scorer(record), "f1": quality(record), "mls": record.get("mls"),
                    "mls_std": record.get("mls_std"), "mls_reference": record.get("mls_reference"),
                    "seeds": record.get("aggregate_of"), "model_of_seed": record.get("speed_from")},
        "speed": {"fixed_length": own_throughput(record),
                  "dense_reference": record.get("dense_throughput") or
                  [r for r in record.get("throughput") or [] if r.get("model") == "dense"],
                  "real_text": real_text},
        "graph": {"file": GRAPH, "bytes": graph.stat().st_size, "sha256": file_sha256(graph), "inputs": graph_inputs(graph),
                  "output": "logits", "max_length": max_length},
        "verification": verification,
        "provenance": {
            "started": record["started"], "seconds": record["seconds"], "git_commit": env.get("git_commit"),
            "dirty": env.get("dirty"), "code_versions": record.get("code_versions"),
            "libraries": {k: env.get(k) for k in ENV_KEYS if k in env}, "params": record["params"],
            "exported": {"at": now(), "git_commit": exported.get("git_commit"), "dirty": exported.get("dirty"),
                         "code_versions": versions_for(record["notebook"]),
                         "same_code": (record.get("code_versions") or {}) == versions_for(record["notebook"])},
        },
    }


def front_matter(card: dict) -> dict:
    """The README's YAML metadata in the hub's model-card fields."""
    results = []
    for lang, splits in card["quality"]["f1"].items():
        dataset, config, title = DATASETS[lang]
        for split, q in splits.items():
            results.append({
                "task": {"type": "token-classification", "name": "Named Entity Recognition"},
                "dataset": {"name": f"{title} ({LANGUAGE_NAMES[lang]})", "type": dataset,
                            **({"config": config} if config else {}), "split": HUB_SPLITS.get(split, split)},
                "metrics": [{"type": "f1", "value": round(q["f1"], 4),
                             "name": f"entity F1 ({card['quality']['scorer']})"}],
            })
    return {"language": card["languages"], "license": card["license"], "library_name": "onnxruntime",
            "pipeline_tag": "token-classification",
            "tags": ["token-classification", "named-entity-recognition", "onnx", "mmakit", card["data_setting"],
                     *technique_tags({"technique": card["technique"]})],
            "datasets": sorted({DATASETS[lang][0] for lang in card["languages"]}), "metrics": ["f1"],
            "model-index": [{"name": card["name"], "results": results}]}


def _f1_cell(q: dict) -> str:
    if q["std"] is None:
        return f"{q['f1']:.3f}"
    return f"{q['f1']:.3f} ± {q['std']:.3f} ({q['seeds']} seeds, {q['min']:.3f}-{q['max']:.3f})"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join("-" if v is None else str(v) for v in row) + " |" for row in rows]


def _quality_lines(card: dict) -> list[str]:
    q = card["quality"]
    splits = sorted({s for splits in q["f1"].values() for s in splits})
    lines = [f"Entity F1 ({q['scorer']}), per language and split"
             + (f"; mean ± sd over the seeds {', '.join(q['seeds'])}, this model being {q['model_of_seed']}'s"
                if q.get("seeds") else "") + ":", ""]
    lines += _table(["language", *splits], [[LANGUAGE_NAMES[lang], *(_f1_cell(q["f1"][lang][s]) if s in q["f1"][lang]
                                                                    else None for s in splits)]
                                            for lang in card["languages"]])
    if q.get("mls"):
        spread = q.get("mls_std") or {}
        values = ", ".join(f"{s} {v:+.3f}" + (f" ± {spread[s]:.3f}" if spread.get(s) is not None else "")
                           for s, v in q["mls"].items())
        lines += ["", f"mls (Spanish and Dutch F1 summed, less the reference {q.get('mls_reference')}): {values}."]
    return lines


def _speed_lines(card: dict) -> list[str]:
    fixed = [r for r in card["speed"]["fixed_length"] if r.get("status") == "ok"]
    lines = ["Items/s on fixed-length rows (real English sentences padded or cut to the length), "
             "and the speedup over the dense fp32 model in onnxruntime timed in the same run:", ""]
    lines += _table(["runtime", "batch", "tokens", "items/s", "speedup", "threads"],
                    [[r["runtime"], r["batch"], r["seq_len"], r["items_per_s"], r.get("speedup"), r["threads"]]
                     for r in fixed]) if fixed else ["(the record has no speed rows)"]
    real = [r for r in card["speed"]["real_text"] if r.get("status") == "ok"]
    if real:
        lines += ["", "Real text: the test sets' sentences at their real lengths, batched by length (`python -m "
                      "mmakit bench-text`), speedup over the dense fp32 model in onnxruntime in the same run:", ""]
        lines += _table(["runtime", "set", "sentences", "batch", "sentences/s", "words/s", "speedup"],
                        [[r["runtime"], r["lang"], r["sentences"], r["batch"], r["sentences_per_s"], r["words_per_s"],
                          r.get("speedup")] for r in real])
    return lines


def _provenance_lines(card: dict) -> list[str]:
    p, check = card["provenance"], card["verification"]
    made = p["exported"]
    lines = [f"- record `{card['record']}` (profile {card['profile']}), started {p['started']}, {p['seconds']:.0f} s",
             f"- code: commit {p['git_commit']}" + (" with uncommitted changes" if p["dirty"] else "")
             + f"; code versions {json.dumps(p['code_versions'])}",
             f"- exported {made['at']} at commit {made['git_commit']}"
             + ("" if made["same_code"] else f", by other code versions ({json.dumps(made['code_versions'])}): "
                                             "the graph was rebuilt by code that differs from the record's"),
             "- libraries: " + ", ".join(f"{k} {v}" for k, v in p["libraries"].items())]
    if check:
        verdict = "equals" if check["matches"] else "DIFFERS FROM"
        lines.append(f"- check: this graph's F1 through onnxruntime on the run's {check['sets']} sets {verdict} the "
                     f"record's (largest difference {check['max_abs_diff']:.2g}, tolerance {check['tolerance']:g})")
        if check.get("tags"):
            tags = check["tags"]
            lines.append(f"- its tags differ from the record's stored predictions in {tags['differing']} of "
                         f"{tags['sentences']} sentences")
    lines.append("- every parameter of the run: `card.json`, `provenance.params`")
    return lines


def markdown(card: dict) -> str:
    """README.md: YAML front matter, then the card's text."""
    g = card["graph"]
    lines = ["---", yaml.safe_dump(front_matter(card), sort_keys=False, allow_unicode=True).rstrip(), "---", "",
             f"# {card['name']}", "",
             f"Named-entity recognizer ({', '.join(card['entity_types'])}; {card['scheme']} tags) for "
             f"{', '.join(LANGUAGE_NAMES[lang] for lang in card['languages'])}, exported by mmakit from the study "
             f"record `{card['record']}`: an ONNX graph for CPU inference in onnxruntime or deepsparse, its "
             "tokenizer and its label map.", ""]
    if card.get("note"):
        lines += [f"> {card['note']}", ""]
    lines += ["## Data setting", "", f"`{card['data_setting']}`: {SETTING_TEXT[card['data_setting']]}.", "",
              "## Quality", "", *_quality_lines(card), "", "## Speed", "", *_speed_lines(card), "",
              "## Use", "", "```bash",
              "python -m mmakit tag --model . sentences.txt               # one sentence a line; CoNLL columns out",
              "python -m mmakit tag --model . --format json corpus.conll  # CoNLL input (word first); entity spans out",
              "python -m mmakit tag --model . --runtime deepsparse -      # standard input, deepsparse",
              "```", "",
              f"Each word is tagged at its first sub-token; a sentence longer than {g['max_length']} sub-tokens "
              "is tagged in pieces split at word boundaries.", "",
              "## Technique", "", "```json", json.dumps(card["technique"], indent=2), "```", "",
              "## Provenance", "", *_provenance_lines(card), "",
              "## Files", "",
              f"- `{g['file']}`: {g['bytes']:,} bytes, sha256 {g['sha256']}, inputs {', '.join(g['inputs'])}, output "
              f"{g['output']}",
              f"- `{'`, `'.join(TOKENIZER_FILES)}`: the tokenizer", f"- `{LABELS_FILE}`: tag names in logit order",
              "- `card.json`: this card as data", "",
              "## Licence", "", f"`{card['license']}`. {LICENSE_NOTE}", ""]
    return "\n".join(lines)
