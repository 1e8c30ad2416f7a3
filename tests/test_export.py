"""ONNX export: faithful logits, the tokenizer's input names, F1 through onnxruntime equal to
PyTorch's, size figures, and no half-written file; `python -m mmakit export`: a record's graph
rebuilt into a folder with its tokenizer, labels and model card."""
from __future__ import annotations

import copy
import json

import onnx
import pytest
import torch

from mmakit import cli
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import LABELS, load_eval_sets
from mmakit.core.evaluation import EvalSuite, torch_logits
from mmakit.runtime import export
from mmakit.study import common


@pytest.fixture(scope="module")
def tiny_onnx(tiny_finetuned, tmp_path_factory):
    model, tokenizer, _ = tiny_finetuned
    return export.export_onnx(model, tokenizer, tmp_path_factory.mktemp("onnx") / "tiny.onnx")


def _batches(suite, pad_id: int, size: int = 7) -> list[dict[str, torch.Tensor]]:
    data = suite.sets["en", "dev"].tokenized
    return list(iterate(data, sorted_batches([len(x) for x in data["input_ids"]], size), pad_id))


def test_graph_has_dynamic_axes_and_tokenizer_inputs(tiny_onnx):
    graph = onnx.load(tiny_onnx).graph
    assert [i.name for i in graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    assert [o.name for o in graph.output] == ["logits"]
    for tensor in (*graph.input, *graph.output):
        dims = tensor.type.tensor_type.shape.dim
        assert (dims[0].dim_param, dims[1].dim_param) == ("batch", "sequence")
    assert {o.domain: o.version for o in onnx.load(tiny_onnx).opset_import}[""] == export.OPSET


def test_logits_match_pytorch_on_real_batches(smoke, tiny_finetuned, tiny_onnx):
    model, tokenizer, _ = tiny_finetuned
    batches = _batches(common.eval_suite(smoke, tokenizer), tokenizer.pad_token_id)
    assert len({b["input_ids"].shape for b in batches}) > 1  # several batch sizes and lengths
    assert export.parity(model, tiny_onnx, batches) < 1e-4


def test_onnx_f1_equals_pytorch_f1_on_sets_with_real_entities(smoke, tiny_finetuned, tiny_onnx):
    model, tokenizer, _ = tiny_finetuned
    sets = load_eval_sets(splits=smoke.eval_splits, data_dir=smoke.get("data_dir"), max_samples=smoke.get("max_eval_samples"))
    # the training sentences, which the tiny model has memorised: F1 well above 0 to compare
    suite = EvalSuite({**sets, ("en", "train"): common.english_train(smoke)}, tokenizer, smoke.max_length)
    ours, theirs = suite.evaluate(torch_logits(model)), suite.evaluate(export.onnx_logits(tiny_onnx, threads=1))
    assert ours["f1"]["en"]["train"] > 0.5, f"the model barely finds entities, parity would say little: {ours['f1']}"
    assert theirs["f1"] == ours["f1"]
    assert theirs["detail"] == ours["detail"]
    assert set(ours["f1"]) == {"en", "es", "nl"}


def test_no_token_type_ids_where_the_tokenizer_has_none(tiny_finetuned, tmp_path):
    model, tokenizer, _ = tiny_finetuned
    xlmr_like = copy.deepcopy(tokenizer)
    xlmr_like.model_input_names = ["input_ids", "attention_mask"]
    path = export.export_onnx(model, xlmr_like, tmp_path / "two.onnx")
    assert [i.name for i in onnx.load(path).graph.input] == ["input_ids", "attention_mask"]
    batch = dict(tokenizer([["EU", "rejects", "German", "call"]], is_split_into_words=True, return_tensors="pt"))
    assert export.onnx_logits(path, threads=1)(batch).shape == (1, batch["input_ids"].shape[1], model.config.num_labels)


def test_sizes_count_zeros_and_file_bytes(tiny_finetuned, tiny_onnx):
    model, _, _ = tiny_finetuned
    sizes = export.model_sizes(model, tiny_onnx)
    assert sizes["onnx_bytes"] == tiny_onnx.stat().st_size
    assert sizes["params"] == sum(p.numel() for p in model.parameters()) >= sizes["nonzero_params"]
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        pruned.classifier.weight.zero_()
    assert export.model_sizes(pruned)["nonzero_params"] == sizes["nonzero_params"] - model.classifier.weight.count_nonzero()
    assert export.model_sizes(pruned)["onnx_bytes"] is None


def test_failed_export_leaves_no_file(tiny_finetuned, tmp_path, monkeypatch):
    model, tokenizer, _ = tiny_finetuned

    def broken(*args, **kwargs):
        raise RuntimeError("exporter failed")

    monkeypatch.setattr(torch.onnx, "export", broken)
    model.train()
    try:
        with pytest.raises(RuntimeError, match="exporter failed"):
            export.export_onnx(model, tokenizer, tmp_path / "model.onnx")
        assert model.training  # the caller's mode is restored
    finally:
        model.eval()
    assert list(tmp_path.iterdir()) == []


# python -m mmakit export: a record's graph rebuilt into a self-contained folder with a model card


def _front_matter(readme: str) -> dict:
    import yaml

    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_export_writes_graph_tokenizer_labels_and_card(exported, export_records):
    folder, card = exported
    record = export_records["export-dynamic"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "card.json", "labels.json", "model.onnx", "tokenizer.json", "tokenizer_config.json"]
    assert json.loads((folder / "card.json").read_text()) == json.loads(json.dumps(card, default=str))
    labels = json.loads((folder / "labels.json").read_text())
    assert labels == {"labels": LABELS, "scheme": "IOB2", "max_length": record["params"]["max_length"]}
    assert [o.op_type for o in onnx.load(folder / "model.onnx").graph.node if o.op_type == "MatMulInteger"]
    assert card["verification"]["matches"] and card["verification"]["max_abs_diff"] == 0.0
    assert card["verification"]["sets"] == 6


def test_card_names_languages_f1_speed_data_setting_and_provenance(exported, export_records):
    folder, card = exported
    record = export_records["export-dynamic"]
    meta = _front_matter((folder / "README.md").read_text())
    assert meta["language"] == ["en", "es", "nl"] and meta["license"] == "other" and meta["metrics"] == ["f1"]
    assert {"token-classification", "onnx", "int8", "english-only"} <= set(meta["tags"])
    results = meta["model-index"][0]["results"]
    assert len(results) == 6 and {r["dataset"]["split"] for r in results} == {"validation", "test"}
    assert card["languages"] == ["en", "es", "nl"] and card["data_setting"] == "english-only" and card["zero_shot"]
    shown = {lang: {s: q["f1"] for s, q in splits.items()} for lang, splits in card["quality"]["f1"].items()}
    assert shown == record["f1"]
    assert card["quality"]["mls"] == record["mls"] and card["quality"]["scorer"] == "conlleval"
    assert card["speed"]["fixed_length"] == record["throughput"] and card["speed"]["fixed_length"][0]["items_per_s"] > 0
    prov = card["provenance"]
    assert prov["params"] == record["params"] and prov["git_commit"] == record["env"]["git_commit"]
    assert prov["libraries"]["onnxruntime"] and prov["exported"]["same_code"]
    readme = (folder / "README.md").read_text()
    for heading in ("## Data setting", "## Quality", "## Speed", "## Use", "## Provenance", "## Files", "## Licence"):
        assert heading in readme
    assert "smoke profile" in readme and "zero-shot" in readme and card["graph"]["sha256"] in readme


def test_a_seed_aggregate_shows_its_spread():
    from mmakit.study import model_card

    record = {"f1": {"en": {"test": 0.8}}, "f1_std": {"en": {"test": 0.02}},
              "per_seed": {"r-s42": {"f1": {"en": {"test": 0.78}}}, "r-s43": {"f1": {"en": {"test": 0.82}}}}}
    q = model_card.quality(record)["en"]["test"]
    assert (q["f1"], q["std"], q["seeds"], q["min"], q["max"]) == (0.8, 0.02, 2, 0.78, 0.82)
    assert model_card._f1_cell(q) == "0.800 ± 0.020 (2 seeds, 0.780-0.820)"
    assert model_card.quality({"f1": {"en": {"test": 0.8}}})["en"]["test"]["std"] is None


def test_export_by_run_name_reuses_the_cached_graph(export_records, exported, tmp_path, monkeypatch):
    from mmakit.study import export_model, rebuild

    monkeypatch.setattr(rebuild, "BUILDERS", {})  # a second export must not rebuild
    out, card = export_model.export("export-dynamic", tmp_path / "again", verify=False)
    assert (out / "model.onnx").read_bytes() == (exported[0] / "model.onnx").read_bytes()
    assert card["verification"] is None


def test_export_refuses_unknown_ambiguous_and_unsupported_records(tmp_path, capsys):
    from mmakit.study import rebuild

    for notebook, run, technique in [("03_obs", "x-oneshot", {"mode": "one_shot"}), ("02_heads", "x-heads", {}),
                                     ("04_distillation", "x-oneshot", {})]:
        (tmp_path / notebook).mkdir(exist_ok=True)
        (tmp_path / notebook / f"{run}.json").write_text(json.dumps({"notebook": notebook, "run": run,
                                                                      "technique": technique}))
    with pytest.raises(rebuild.RecordError, match="no record 'x-onesht'.*closest: .*x-oneshot"):
        rebuild.find_record("x-onesht", tmp_path)
    with pytest.raises(rebuild.RecordError, match="several notebooks.*03_obs/x-oneshot, 04_distillation/x-oneshot"):
        rebuild.find_record("x-oneshot", tmp_path)
    heads = rebuild.find_record("x-heads", tmp_path)
    with pytest.raises(rebuild.RecordError, match="02_heads times a graph per pruning iteration"):
        rebuild.graph_folder(heads, rebuild.Params({}))
    one_shot = rebuild.find_record("03_obs/x-oneshot", tmp_path)
    with pytest.raises(rebuild.RecordError, match="one-shot"):
        rebuild.BUILDERS["03_obs"](one_shot, rebuild.Params({}), tmp_path)
    assert cli.main(["export", "nothing-here", "--out", str(tmp_path / "o"), "--results-dir", str(tmp_path)]) == 2
    assert "no record 'nothing-here'" in capsys.readouterr().err


def test_export_will_not_overwrite_a_folder_unasked(exported, capsys):
    folder, _ = exported
    assert cli.main(["export", "05_quantization/export-dynamic", "--out", str(folder)]) == 2
    assert "pass --force" in capsys.readouterr().err


def test_graph_cache_key_follows_the_rebuild_code_not_only_the_drivers(monkeypatch):
    """A fix to how export rebuilds a graph must not reuse graphs the old rebuild cached (the
    drivers' versions alone did not change when QAT's KD hook was added to the rebuild)."""
    from mmakit.study import code_version, rebuild

    record, P = {"notebook": "06_combined", "run": "x-qkd-s42"}, rebuild.Params({"seed": 42})
    before = rebuild.graph_key(record, P)
    assert before == rebuild.graph_key(record, P) and before.startswith("x-qkd-s42-")
    monkeypatch.setattr(code_version, "VERSIONS", code_version.VERSIONS | {"rebuild": (99, "")})
    assert rebuild.graph_key(record, P) != before
    assert "rebuild" not in code_version.versions_for("06_combined")  # records do not go stale with it
