"""INT8 quantization on the tiny model: each method's graph agrees with fp32, the QAT graph
computes exactly what was trained and keeps pruned weights at zero, calibration uses the
data it was asked for, and the notebook writes a full record per method."""
from __future__ import annotations

import copy

import numpy as np
import onnx
import pytest
import torch

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.train import fine_tune
from mmakit.runtime import export
from mmakit.study import baseline, runner
from mmakit.study.records import read_records
from mmakit.techniques.pruning.scope import prunable_weights
from mmakit.techniques.quantization import (
    QATSpec,
    QuantSettings,
    calibration,
    pipeline,
    ptq,
    qat,
    quantize,
)

# Minimum share of real tokens whose argmax matches the fp32 graph's, per method, on 120
# English training sentences; and the largest mean |logit difference| as a share of mean |logit|.
AGREEMENT = {"dynamic": 0.98, "static": 0.97, "data-free": 0.90, "qat": 0.97}
LOGIT_TOLERANCE = 0.05
INT8_OPS = {"dynamic": "MatMulInteger", "static": "QLinearMatMul", "data-free": "QLinearMatMul", "qat": "QLinearMatMul"}


@pytest.fixture(scope="module")
def trained(smoke):
    """A tiny BERT trained until it predicts every entity type (the session's tiny baseline
    predicts only O, against which any graph would agree)."""
    model, tokenizer = baseline.fresh_model(smoke)
    train = tokenize_dataset(baseline.english_train(smoke), tokenizer, smoke.max_length)
    fine_tune(model, train, baseline.train_config(smoke, epochs=12, lr=3e-3), tokenizer.pad_token_id, desc="tiny for quantization")
    return model, tokenizer, train


@pytest.fixture(scope="module")
def fp32_graph(trained, tmp_path_factory):
    model, tokenizer, _ = trained
    return export.export_onnx(model, tokenizer, tmp_path_factory.mktemp("quant") / "fp32.onnx")


@pytest.fixture(scope="module")
def batches(smoke, trained):
    _, tokenizer, _ = trained
    data = tokenize_dataset(baseline.english_train(smoke).select(range(120)), tokenizer, smoke.max_length)
    return list(iterate(data, sorted_batches([len(x) for x in data["input_ids"]], 16), tokenizer.pad_token_id))


def _logits(fn, batches) -> np.ndarray:
    """Logits of the real (unpadded) tokens of every batch, stacked."""
    return np.concatenate([fn(b)[b["attention_mask"].numpy().astype(bool)] for b in batches])


def _fake_quant_logits(model, batches) -> np.ndarray:
    with torch.no_grad():
        return _logits(lambda b: model(**{k: v for k, v in b.items() if k != "labels"}).logits.numpy(), batches)


def _qat_spec(train, smoke, lr: float = 1e-6, epochs: float = 0.25) -> QATSpec:
    return QATSpec(train, baseline.train_config(smoke, epochs=epochs, lr=lr))


def test_the_fp32_reference_predicts_every_entity_type(fp32_graph, batches):
    labels = _logits(export.onnx_logits(fp32_graph, 1), batches).argmax(-1)
    assert len(set(labels.tolist())) >= 8  # agreement with a model that only says O would prove nothing


def test_plan_leaves_attention_scores_and_ffn_output_in_float(fp32_graph, tmp_path):
    graph = onnx.load(ptq.preprocess(fp32_graph, tmp_path / "pre.onnx"))
    plan = ptq.plan_nodes(graph, QuantSettings())
    assert sorted(plan.excluded["attention_scores"]) == sorted(
        n.name for n in graph.graph.node if n.op_type == "MatMul" and n.name.endswith(("self/MatMul", "self/MatMul_1")))
    assert sorted(plan.excluded["ffn_output"]) == sorted(
        n.name for n in graph.graph.node if n.op_type == "MatMul" and "/output/dense/" in n.name and "attention" not in n.name)
    assert len(plan.matmuls) == 2 * 5 + 1  # Q, K, V, attention output and FFN input per layer, and the classifier
    assert len(plan.gathers) == 3  # word, position and token-type embeddings
    everything = ptq.plan_nodes(graph, QuantSettings(exclude=()))
    assert len(everything.matmuls) == 2 * 8 + 1 and not everything.excluded_names


@pytest.mark.parametrize("method", list(AGREEMENT))
def test_every_method_gives_an_int8_graph_that_agrees_with_fp32(method, trained, fp32_graph, batches, smoke, tmp_path):
    model, tokenizer, train = trained
    source = model if method == "qat" else fp32_graph
    result = quantize(source, method, tmp_path / "int8.onnx", tokenizer, QuantSettings(calibration_size=64),
                      calibration=baseline.english_train(smoke), qat=_qat_spec(train, smoke))
    assert result.info["ops"][INT8_OPS[method]] == 11
    assert result.path.stat().st_size < 0.6 * fp32_graph.stat().st_size
    ref, int8 = _logits(export.onnx_logits(fp32_graph, 1), batches), _logits(export.onnx_logits(result.path, 1), batches)
    assert (ref.argmax(-1) == int8.argmax(-1)).mean() >= AGREEMENT[method]
    assert np.abs(ref - int8).mean() <= LOGIT_TOLERANCE * np.abs(ref).mean()


def test_qat_graph_computes_what_the_fake_quantized_model_computes(trained, fp32_graph, batches, tmp_path):
    """The ranges tracked in training reach the graph: its logits equal the fake-quantized
    model's up to rare rounding flips, over 10x closer than to fp32."""
    model = copy.deepcopy(trained[0])
    tokenizer = trained[1]
    graph = onnx.load(ptq.preprocess(fp32_graph, tmp_path / "pre.onnx"))
    linears, embeddings = pipeline.match_modules(model, graph, ptq.plan_nodes(graph, QuantSettings()))
    wrappers = qat.prepare(model, linears, embeddings)
    model.train()
    with torch.no_grad():
        for batch in batches[:4]:
            model(**batch)
    model.eval()
    fake = _fake_quant_logits(model, batches)
    ranges = qat.strip(model, wrappers)
    trained_fp32 = export.export_onnx(model, tokenizer, tmp_path / "trained.onnx")
    ptq.quantize_static_graph(trained_fp32, tmp_path / "int8.onnx", QuantSettings(), ranges=pipeline.tensor_ranges(linears, ranges))
    int8 = _logits(export.onnx_logits(tmp_path / "int8.onnx", 1), batches)
    ref = _logits(export.onnx_logits(fp32_graph, 1), batches)
    # Exact on a CPU with VNNI int8 kernels; elsewhere onnxruntime's u8s8 kernels flip a few
    # roundings (CI measured 61x closer). Ranges that did not reach the graph give about 1x.
    assert np.abs(int8 - fake).mean() < 0.1 * np.abs(int8 - ref).mean()
    assert (int8.argmax(-1) == fake.argmax(-1)).mean() >= 0.99


def test_linears_pruned_to_the_same_weights_each_find_their_matmul(trained, tmp_path):
    """Global OBS at 90% can zero whole query and key projections: in one layer they read one
    input (the graph may merge them into one MatMul), across layers they are told apart by bias."""
    model = copy.deepcopy(trained[0])
    layers = model.base_model.encoder.layer
    zeroed = [layers[i].attention.self.query for i in (0, 1)] + [layers[0].attention.self.key]
    with torch.no_grad():
        for linear in zeroed:
            linear.weight.zero_()
    fp32 = export.export_onnx(model, trained[1], tmp_path / "zeroed.onnx")
    graph = onnx.load(ptq.preprocess(fp32, tmp_path / "pre.onnx"))
    plan = ptq.plan_nodes(graph, QuantSettings())
    linears, _ = pipeline.match_modules(model, graph, plan)
    node = {name.split("encoder.")[-1]: n for name, n in linears.items()}
    assert node["layer.0.attention.self.query"].input[0] == node["layer.0.attention.self.key"].input[0]
    assert node["layer.0.attention.self.query"].input[0] != node["layer.1.attention.self.query"].input[0]
    assert {n.name for n in linears.values()} == {n.name for n in plan.matmuls if n.input[1] in
                                                   {t.name for t in graph.graph.initializer}}


def _half_pruned(model):
    """A copy with the smaller half (by magnitude) of every encoder Linear weight set to zero."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for w in prunable_weights(model).values():
            w.masked_fill_(w.abs() <= w.abs().median(), 0.0)
    return model


def test_qat_keeps_pruned_weights_at_zero_while_training_the_rest(trained, smoke):
    model, tokenizer, train = trained
    sparse = _half_pruned(model)
    before = {n: w.detach().clone() for n, w in prunable_weights(sparse).items()}
    result = qat.train_qat(sparse, train, baseline.train_config(smoke, epochs=1, lr=1e-3), tokenizer.pad_token_id,
                           linears=list(prunable_weights(sparse)))
    assert result.sparsity == pytest.approx(0.5, abs=0.01)
    for name, w in prunable_weights(sparse).items():
        zero = before[name] == 0
        assert torch.equal(w[zero], torch.zeros_like(w[zero])), name
        assert not torch.equal(w[~zero], before[name][~zero]), f"{name} did not train"
    assert qat.sparsity_masks(model) is None  # a dense model gets no masks


def test_qat_graph_of_a_sparse_model_stays_sparse(trained, smoke, tmp_path):
    model, tokenizer, train = trained
    out = quantize(_half_pruned(model), "qat", tmp_path / "qat.onnx", tokenizer, QuantSettings(),
                   qat=_qat_spec(train, smoke, lr=1e-3, epochs=1))
    graph = onnx.load(out.path)
    constants = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer}
    weights = [constants[n.input[3]] for n in graph.graph.node if n.op_type == "QLinearMatMul" and "encoder" in n.name]
    assert len(weights) == 10 and all(w.dtype == np.int8 and (w == 0).mean() >= 0.5 for w in weights)


@pytest.mark.parametrize("method, n", [("static", 37), ("data-free", 20)])
def test_static_calibration_uses_the_requested_number_of_sentences(method, n, trained, fp32_graph, smoke, tmp_path):
    _, tokenizer, _ = trained
    result = quantize(fp32_graph, method, tmp_path / "int8.onnx", tokenizer, QuantSettings(calibration_size=n),
                      calibration=baseline.english_train(smoke))
    assert result.info["calibration_sentences"] == n


def test_random_token_sample_is_cls_random_ids_sep(trained):
    tokenizer = trained[1]
    data = calibration.random_token_sample(tokenizer, 5, length=128, seed=1)
    ids = np.array(data["input_ids"])
    assert ids.shape == (5, 128) and np.array(data["attention_mask"]).all()
    assert (ids[:, 0] == tokenizer.cls_token_id).all() and (ids[:, -1] == tokenizer.sep_token_id).all()
    assert not set(ids[:, 1:-1].ravel()) & set(tokenizer.all_special_ids)


def test_activation_ranges_move_only_while_observing_in_training():
    r = qat.ActivationRange().train()
    r(torch.tensor([-1.0, 2.0]))
    assert r.range() == (-1.0, 2.0)
    r(torch.tensor([-3.0, 4.0]))
    assert r.range() == pytest.approx((-1.02, 2.02))
    r.observing = False
    r(torch.tensor([-9.0, 9.0]))
    r.observing = True
    r.eval()(torch.tensor([-9.0, 9.0]))
    assert r.range() == pytest.approx((-1.02, 2.02))


def test_bad_requests_fail_with_the_valid_choices(trained, fp32_graph, tmp_path):
    tokenizer = trained[1]
    with pytest.raises(ValueError, match="attention_scores"):
        QuantSettings(exclude=("softmax",))
    with pytest.raises(ValueError, match="dynamic"):
        quantize(fp32_graph, "int4", tmp_path / "x.onnx", tokenizer)
    with pytest.raises(ValueError, match="QAT needs the PyTorch model"):
        quantize(fp32_graph, "qat", tmp_path / "x.onnx", tokenizer)
    with pytest.raises(ValueError, match="calibration sentences"):
        quantize(fp32_graph, "static", tmp_path / "x.onnx", tokenizer)


@pytest.mark.notebook
def test_notebook_writes_a_record_per_method_with_other_options(smoke, work_dirs, tmp_path):
    """The generic notebook test runs the defaults; this one QDQ, per-channel, percentile calibration."""
    options = {"quant_format": "qdq", "per_channel": True, "calibration_method": "percentile", "run_name": "variant"}
    runner.run_notebooks("smoke", ["05_quantization"], {k: str(v) for k, v in work_dirs.items()} | options, out_dir=tmp_path)
    records = {r["technique"]["method"]: r for r in read_records(work_dirs["results_dir"], "05_quantization")
               if r["run"].startswith("variant-")}
    assert set(records) == {"fp32", "dynamic", "static", "qat", "data-free"}
    for method, r in records.items():
        assert {lang: set(s) for lang, s in r["f1"].items()} == {lang: {"dev", "test"} for lang in ("en", "es", "nl")}
        assert set(r["mls_vs_fp32"]) == {"dev", "test"}
        assert {(t["runtime"], t["batch"]) for t in r["throughput"]} == {
            (rt, b) for rt in smoke.runtimes for b in smoke.batches}
        if method != "fp32":
            assert r["technique"]["settings"]["quant_format"] == "qdq" and r["technique"]["settings"]["per_channel"]
    assert records["static"]["technique"]["calibration_sentences"] == smoke.calibration_size
    assert records["qat"]["technique"]["qat"]["steps"] > 0
