"""Head pruning: masks agree with physical removal, importance finds dead heads, the two
strategies keep their promises, and pruned models save, reload and export."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from transformers import (
    BertConfig,
    BertForTokenClassification,
    DistilBertConfig,
    DistilBertForTokenClassification,
    XLMRobertaConfig,
    XLMRobertaForTokenClassification,
)

from mmakit.techniques.heads import (
    HeadPruner,
    HeadPruningConfig,
    UnitMasks,
    blocks,
    importance,
    load_pruned,
    shape,
)
from mmakit.techniques.heads.anatomy import remove_heads, remove_neurons
from mmakit.techniques.heads.strategy import importance_plan, uniform_plan

SHAPE = dict(vocab_size=100, max_position_embeddings=40, num_labels=9)


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "distilbert":
        cfg = DistilBertConfig(dim=32, n_layers=2, n_heads=4, hidden_dim=48, **SHAPE)
        return DistilBertForTokenClassification(cfg).eval()
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=48, **SHAPE)
    if kind == "xlm-roberta":
        return XLMRobertaForTokenClassification(XLMRobertaConfig(pad_token_id=1, **common)).eval()
    return BertForTokenClassification(BertConfig(**common)).eval()


def _batch(labels: bool = False) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, 100, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    batch = {"input_ids": ids, "attention_mask": mask}
    if labels:
        batch["labels"] = torch.randint(0, 9, (3, 12), generator=g)
    return batch


def _logits(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model(**{k: v for k, v in batch.items() if k != "labels"}).logits


HEADS = [[1, 3], [0, 1, 2]]  # positions to remove per layer (layer 1 keeps one head)
NEURONS = [list(range(0, 48, 3)), [5, 7]]


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta", "distilbert"])
def test_physically_pruned_model_matches_masked_model(kind):
    model, batch = _model(kind), _batch()
    masks = UnitMasks(model)
    with torch.no_grad():
        for layer in range(2):
            masks.heads[layer][HEADS[layer]] = 0
            masks.neurons[layer][NEURONS[layer]] = 0
    with masks:
        masked = _logits(model, batch)
    assert not torch.allclose(masked, _logits(model, batch), atol=1e-3), "the masks changed nothing"
    for block, heads, neurons in zip(blocks(model), HEADS, NEURONS):
        remove_heads(block, heads)
        remove_neurons(block, neurons)
    assert shape(model) == {"heads": [2, 1], "intermediate": [32, 46]}
    torch.testing.assert_close(_logits(model, batch), masked, atol=1e-5, rtol=0)


def test_mask_gradient_is_the_taylor_score_of_the_output_columns():
    model, batch = _model("bert"), _batch(labels=True)
    scores = importance(model, [batch])
    model.zero_grad()
    model(**batch).loss.backward()
    block = blocks(model)[1]
    w = block.attention_output.weight
    taylor = (w.grad * w).sum(0).view(-1, block.head_size).sum(-1).abs()
    torch.testing.assert_close(scores.heads[1], taylor, atol=1e-6, rtol=1e-4)
    w2 = block.ffn_out.weight
    torch.testing.assert_close(scores.neurons[1], (w2.grad * w2).sum(0).abs(), atol=1e-6, rtol=1e-4)


def test_importance_ranks_a_dead_head_below_the_others():
    model, batch = _model("bert"), _batch(labels=True)
    block = blocks(model)[0]
    with torch.no_grad():  # head 2 of layer 0 outputs nothing: its values are zero
        block.value.weight[2 * block.head_size : 3 * block.head_size] = 0
        block.value.bias[2 * block.head_size : 3 * block.head_size] = 0
    scores = importance(model, [batch, _batch(labels=True)])
    assert scores.heads[0][2] == 0
    assert (scores.heads[0][[0, 1, 3]] > 0).all() and (scores.heads[1] > 0).all()
    assert importance_plan(scores.heads, 1) == [[2], []]
    assert all(p.requires_grad for p in model.parameters()), "importance left weights frozen"


def test_importance_plan_normalises_per_layer_and_keeps_one_head_per_layer():
    flat, peaked = torch.tensor([1.0, 1.0, 1.0, 1.0]), torch.tensor([1.0, 1.0, 1.0, 100.0])
    # normalised: flat -> 0.5 each, peaked -> ~0.01 for heads 0-2 and ~1 for head 3
    assert importance_plan([flat * 1e-6, peaked], 4) == [[0], [0, 1, 2]]
    assert importance_plan([flat, peaked], 7) == [[0, 1, 2], [0, 1, 2]]  # only 6 can go


def test_iterating_until_one_head_per_layer_is_left(tiny_finetuned, smoke):
    model = copy.deepcopy(tiny_finetuned[0])
    pruner = HeadPruner(model, HeadPruningConfig(strategy="importance", heads_per_iteration=3))
    batches = [_tiny_batch(tiny_finetuned[1])]
    while pruner.can_step():
        pruner.step(batches)
    assert pruner.heads_per_layer == [1, 1] and pruner.iteration == 2
    assert shape(model)["heads"] == [1, 1] and shape(model)["intermediate"] == [128, 128]
    with pytest.raises(ValueError, match="one per layer"):
        pruner.step(batches)


def _tiny_batch(tokenizer) -> dict[str, torch.Tensor]:
    words = [["Peter", "Blackburn", "visited", "Brussels", "."], ["EU", "rejects", "German", "call"]]
    enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
    batch = dict(enc)
    batch["labels"] = torch.where(enc["attention_mask"].bool(), 0, -100)
    batch["labels"][0, 1] = 1
    return batch


def test_uniform_strategy_removes_equal_heads_per_layer_and_shrinks_ffn(tiny_finetuned):
    model = copy.deepcopy(tiny_finetuned[0])
    pruner = HeadPruner(model, HeadPruningConfig(strategy="uniform", heads_per_iteration=2))
    assert pruner.ffn_step == pytest.approx(0.25)  # 1 of 4 heads per layer
    record = pruner.step([_tiny_batch(tiny_finetuned[1])])
    assert [len(r) for r in record["removed"]] == [1, 1]
    assert shape(model) == {"heads": [3, 3], "intermediate": [96, 96]}
    pruner.step([_tiny_batch(tiny_finetuned[1])])
    assert shape(model) == {"heads": [2, 2], "intermediate": [64, 64]}
    assert pruner.fraction_removed == pytest.approx(0.5)


def test_uniform_strategy_needs_a_multiple_of_the_layer_count(tiny_finetuned):
    with pytest.raises(ValueError, match="multiple of 2"):
        HeadPruner(copy.deepcopy(tiny_finetuned[0]), HeadPruningConfig(strategy="uniform", heads_per_iteration=3))
    with pytest.raises(ValueError, match="keep one"):
        uniform_plan([torch.ones(2), torch.ones(1)], 1)


def _pruned_unevenly(kind: str = "bert") -> torch.nn.Module:
    model = _model(kind)
    for block, heads, neurons in zip(blocks(model), HEADS, NEURONS):
        remove_heads(block, heads)
        remove_neurons(block, neurons)
    return model


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_save_and_load_round_trip_preserves_logits(tmp_path, kind):
    model, batch = _pruned_unevenly(kind), _batch()
    model.save_pretrained(tmp_path)
    loaded = load_pruned(tmp_path)
    assert shape(loaded) == shape(model)
    torch.testing.assert_close(_logits(loaded, batch), _logits(model, batch), atol=1e-6, rtol=0)


def test_onnx_export_of_a_pruned_model_runs(tmp_path, tiny_finetuned):
    from mmakit.runtime import export

    model, tokenizer = copy.deepcopy(tiny_finetuned[0]), tiny_finetuned[1]
    for block, heads, neurons in zip(blocks(model), HEADS, [list(range(0, 128, 3)), [5, 7]]):
        remove_heads(block, heads)
        remove_neurons(block, neurons)
    path = export.export_onnx(model, tokenizer, tmp_path / "pruned.onnx")
    batch = {k: v for k, v in _tiny_batch(tokenizer).items() if k != "labels"}
    np.testing.assert_allclose(export.onnx_logits(path, threads=1)(batch), _logits(model, batch).numpy(), atol=1e-4)


@pytest.mark.notebook
def test_notebook_runs_uniform_strategy_on_smoke_profile(work_dirs, tmp_path):
    """02_heads end to end with the strategy test_notebooks does not run; the record's curve
    follows the uniform schedule and every timed graph is tagged with its iteration."""
    from mmakit.report import heads as heads_report
    from mmakit.study import runner
    from mmakit.study.records import read_records

    overrides = {k: str(v) for k, v in work_dirs.items()} | {"strategy": "uniform", "run_name": "uniform-test"}
    runner.run_notebooks("smoke", ["02_heads"], overrides, out_dir=tmp_path)
    record = next(r for r in read_records(work_dirs["results_dir"], "02_heads") if r["run"] == "uniform-test")
    assert [p["heads_per_layer"] for p in record["curve"]] == [[4, 4], [3, 3], [2, 2], [1, 1]]
    assert [p["intermediate"] for p in record["curve"]] == [[128, 128], [96, 96], [64, 64], [32, 32]]
    assert [p["fraction_removed"] for p in record["curve"]] == [0, 0.25, 0.5, 0.75]
    assert all(set(p["f1"]) == {"en", "es", "nl"} for p in record["curve"])
    timed = {(r["iteration"], r["runtime"], r["batch"]) for r in record["throughput"]}
    assert {i for i, _, _ in timed} == {0, 2, 3} and {b for _, _, b in timed} == set(record["params"]["batches"])
    assert all(r["status"] == "ok" for r in record["throughput"] if r["runtime"] == "onnxruntime")
    assert set(record["f1"]["es"]) == {"dev", "test"}
    fig = heads_report.strategies_curve(read_records(work_dirs["results_dir"]))
    mine = [t for t in fig.data if t.name == "uniform-test (uniform)"]
    assert {tuple(t.y) for t in mine} == {tuple(p["f1"][lang] for p in record["curve"]) for lang in ("en", "es", "nl")}


def test_graphs_are_timed_in_small_runs_beside_the_unpruned_graph(monkeypatch, smoke):
    from mmakit.report import heads as heads_report
    from mmakit.study import heads, params, speed

    runs = []

    def fake(models, tokenizer, P):
        runs.append(list(models))
        speed = {"iter-00": 10.0, "iter-02": 15.0, "iter-04": 20.0, "iter-05": 30.0}
        return [{"model": m, "runtime": "onnxruntime", "batch": 1, "items_per_s": speed[m] * len(runs), "status": "ok"}
                for m in models]

    monkeypatch.setattr(speed, "benchmark", fake)
    graphs = {f"iter-{i:02d}": f"{i}.onnx" for i in (0, 2, 4, 5)}
    rows = heads.benchmark(graphs, None, params.Params(smoke, bench_group=2))
    assert runs == [["iter-00", "iter-02", "iter-04"], ["iter-00", "iter-05"]]
    curve = [{"iteration": i, "heads_removed": i, "fraction_removed": i / 10} for i in (0, 2, 4, 5)]
    record = {"throughput": heads._tag(rows, curve)}
    gains = heads_report.speedups(record, fraction=0.5)  # iter-05, timed in the second run (all speeds doubled)
    assert gains.fraction_removed.tolist() == [0.5] and gains.gain.tolist() == [3.0]
    assert gains.items_per_s.tolist() == [60.0] and gains.dense_items_per_s.tolist() == [20.0]
