"""The graph a record timed, rebuilt: find a record by name, take its run's parameters, and make
(or load from the cache) the ONNX graph that run scored and timed, beside its tokenizer.

No driver keeps its int8 graphs (05 and 06 build them in temporary folders), but what comes
before quantization is cached (fine-tuned baselines, pruned models, students), so a graph is
rebuilt by the driver's own steps: 01 the baseline's graph (kept in its checkpoint as
model.onnx), 03 a gradual run's pruned model, 04 the student, 05 the baseline's fp32 graph
quantized by the record's method, 06 the pipeline as its driver builds it (QAT with its KD hook; every MatMul int8
for an `-int8all` record). Each is cached under <cache>/graphs/<run>-<key>, the key covering
the run's parameters, the code versions its notebook depends on and the training libraries,
and `verify` scores it on the run's evaluation sets against the record's F1.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mmakit.core.paths import atomic_path, cache_root
from mmakit.runtime import export
from mmakit.runtime.model_folder import GRAPH
from mmakit.study import combined, common, distillation, params, pruning, quantization
from mmakit.study.code_version import code_version, versions_for
from mmakit.study.params import Params
from mmakit.study.predictions import load_predictions
from mmakit.study.provenance import training_libraries
from mmakit.study.records import LEGACY_SCORER, record_scorer, results_root
from mmakit.techniques.quantization.pipeline import FP32

GRAPH_META = "graph.json"
PATH_PARAMS = ("cache_dir", "results_dir", "data_dir")  # where a run read and wrote, not what it made
TOLERANCE = 1e-3  # largest F1 difference on any set for a rebuilt graph to count as the record's


class RecordError(ValueError):
    """A record name that matches no record, or several, or a record with no single graph."""


def record_name(record: dict) -> str:
    """`<notebook>/<run>`: how a record is named on the command line."""
    return f"{record['notebook']}/{record['run']}"


def find_record(name: str, results_dir: str | Path | None = None) -> dict:
    """The record `name`: `<notebook>/<run>` (e.g. 06_combined/me5-small-obs80-q) or a run name
    that only one notebook has."""
    root = results_root(results_dir)
    if "/" in name:
        path = root / f"{name}.json"
        found = [path] if path.is_file() else []
    else:
        found = sorted(root.glob(f"[0-9][0-9]_*/{name}.json"))
    if len(found) > 1:
        raise RecordError(f"run {name!r} is in several notebooks; name one of: "
                          + ", ".join(f"{p.parent.name}/{p.stem}" for p in found))
    if not found:
        known = [f"{p.parent.name}/{p.stem}" for p in root.glob("[0-9][0-9]_*/*.json")]
        close = difflib.get_close_matches(name, known, n=5, cutoff=0.4) or difflib.get_close_matches(
            name, [k.split("/", 1)[1] for k in known], n=5, cutoff=0.4)
        hint = f"; closest: {', '.join(close)}" if close else ""
        raise RecordError(f"no record {name!r} under {root}{hint}")
    return json.loads(found[0].read_text())


def run_params(record: dict, cache_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Params:
    """The parameters the record's run had, over its profile's current values (so a parameter
    added since then takes its default), with the cache and data folders given here, if any."""
    try:
        base = params.load_profile(record["profile"])
    except ValueError:  # a profile file that is no longer there
        base = {}
    given = {k: str(v) for k, v in {"cache_dir": cache_dir, "data_dir": data_dir}.items() if v}
    return Params(base | record["params"] | given)


def source_run(record: dict) -> str:
    """The run whose model a record's graph is: a seed aggregate's speed comes from its first seed."""
    return record.get("speed_from") or record["run"]


def graph_key(record: dict, P: Params) -> str:
    """`<run>-<hash>` of the run's parameters (not its folders), notebook, code versions (the
    notebook's and this module's own: a fix to the rebuild must not reuse graphs the old one
    built) and training libraries: a change to any of them rebuilds the graph."""
    payload = {"notebook": record["notebook"], "run": source_run(record),
               "params": {k: v for k, v in P.items() if k not in PATH_PARAMS},
               "code": versions_for(record["notebook"]), "rebuild": code_version("rebuild"),
               "libraries": training_libraries()}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{source_run(record)}-{digest}"


def baseline_folder(P: Params, name: str | None = None, seed: int | None = None) -> Path:
    """The checkpoint folder of a fine-tuned baseline (default: the run's model at its
    `baseline_seed`) with its graph, model.onnx, exported there as 01_baselines does if absent."""
    model, tokenizer, meta = common.fine_tuned(P, name, seed=seed)
    folder = Path(meta["checkpoint"])
    if not (folder / GRAPH).exists():
        export.export_onnx(model, tokenizer, folder / GRAPH)
    return folder


Builder = Callable[[dict, Params, Path], tuple[Path, PreTrainedTokenizerBase]]


def _pruned(record: dict, P: Params, tmp: Path) -> tuple[Path, PreTrainedTokenizerBase]:
    if record["technique"].get("mode") != "gradual":
        raise RecordError(f"{record_name(record)} is a one-shot pruning sweep: its pruned models are not kept")
    model, _, tokenizer, _ = pruning.prune(P, pruning.start_model(P))
    return export.export_onnx(model, tokenizer, tmp / GRAPH), tokenizer


def _student(record: dict, P: Params, tmp: Path) -> tuple[Path, PreTrainedTokenizerBase]:
    model, tokenizer, _ = distillation.distil(P)
    return export.export_onnx(model, tokenizer, tmp / GRAPH), tokenizer


def _quantized(record: dict, P: Params, tmp: Path) -> tuple[Path, PreTrainedTokenizerBase]:
    method = record["technique"]["method"]
    model, tokenizer, _ = common.fine_tuned(P)
    fp32 = export.export_onnx(model, tokenizer, tmp / f"{FP32}.onnx")
    if method == FP32:
        return fp32, tokenizer
    source = model if method == "qat" else fp32
    return quantization.quantize_model(P, source, tokenizer, method, tmp / GRAPH).path, tokenizer


def _combined(record: dict, P: Params, tmp: Path) -> tuple[Path, PreTrainedTokenizerBase]:
    built = combined.build(combined.with_pipeline_seed(P), tmp)
    return built.graphs[record["technique"]["coverage"]][0], built.tokenizer


BUILDERS: dict[str, Builder] = {"03_obs": _pruned, "04_distillation": _student, "05_quantization": _quantized,
                                "06_combined": _combined}
SUPPORTED = ("01_baselines", *BUILDERS)


def graph_folder(record: dict, P: Params) -> Path:
    """A folder holding the record's graph as model.onnx and its tokenizer's files: the
    baseline's checkpoint for 01, else the graph cache (built by the driver's steps if absent).
    P are the run's parameters (`run_params`), after `common.setup`."""
    notebook = record["notebook"]
    if notebook not in SUPPORTED:
        raise RecordError(f"{record_name(record)}: export supports records with one deployed graph, those of "
                          f"{', '.join(SUPPORTED)} (02_heads times a graph per pruning iteration)")
    if notebook == "01_baselines":
        return baseline_folder(P, record["technique"].get("baseline") or P.model, int(P.seed))
    folder = cache_root(P.get("cache_dir")) / "graphs" / graph_key(record, P)
    if not (folder / GRAPH_META).exists():
        with tempfile.TemporaryDirectory(prefix="mmakit-graph-") as scratch, atomic_path(folder) as tmp:
            graph, tokenizer = BUILDERS[notebook](record, P, Path(scratch))
            tmp.mkdir()
            shutil.move(str(graph), tmp / GRAPH)
            tokenizer.save_pretrained(tmp)
            meta = {"record": record_name(record), "run": source_run(record), "key": folder.name,
                    "code_versions": versions_for(notebook), "libraries": training_libraries()}
            (tmp / GRAPH_META).write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def expected_f1(record: dict) -> dict:
    """The F1 of the run whose graph is rebuilt: a seed aggregate's first seed's, else the record's."""
    seed = (record.get("per_seed") or {}).get(record.get("speed_from") or "")
    return (seed or {}).get("f1") or record["f1"]


def tag_agreement(record: dict, predicted: dict, results_dir: str | Path | None = None) -> dict | None:
    """{"sentences", "differing"}: how many of the record's stored predicted sentences the rebuilt
    graph tags differently (`predicted` as EvalSuite.evaluate gives it); None when the record
    keeps no predictions of its own (a seed aggregate, an older record)."""
    if not record.get("predictions") or record.get("speed_from"):
        return None
    stored = load_predictions(record, results_dir)
    pairs = [(a, b) for key, tags in stored.items() if key in predicted for a, b in zip(tags, predicted[key], strict=True)]
    return {"sentences": len(pairs), "differing": sum(a != b for a, b in pairs)}


def verify(record: dict, P: Params, folder: str | Path, results_dir: str | Path | None = None) -> dict:
    """Score the graph in `folder` through onnxruntime on the run's evaluation sets, with the
    scorer of the record's F1: {"f1", "expected", "max_abs_diff", "matches" (within TOLERANCE),
    "tags" (`tag_agreement` with the record's stored predictions)}."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    result = common.eval_suite(P, tokenizer).evaluate(export.onnx_logits(Path(folder) / GRAPH, P.get("threads")))
    got = result["f1_strict" if record_scorer(record) == LEGACY_SCORER else "f1"]
    expected = expected_f1(record)
    diffs = [abs(got[lang][split] - value) for lang, splits in expected.items() for split, value in splits.items()
             if split in got.get(lang, {})]
    worst = max(diffs, default=None)
    return {"f1": got, "expected": expected, "sets": len(diffs), "max_abs_diff": worst,
            "matches": worst is not None and worst <= TOLERANCE, "tolerance": TOLERANCE,
            "tags": tag_agreement(record, result["predictions"], results_dir)}
