"""ONNX export: faithful logits, the tokenizer's input names, F1 through onnxruntime equal to
PyTorch's, size figures, and no half-written file."""
from __future__ import annotations

import copy

import onnx
import pytest
import torch

from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import load_eval_sets
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
