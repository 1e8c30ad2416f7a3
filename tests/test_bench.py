"""Benchmark rows, speedups, the command line, and deepsparse as a separate component: its
worker (skipped without its environment) and crashes that cost only deepsparse's rows."""
from __future__ import annotations

import json
import sys
import tempfile
import textwrap

import pytest

from mmakit import cli
from mmakit.runtime import bench, deepsparse_env, export
from mmakit.study import speed
from mmakit.study.params import Params, validate

DEEPSPARSE_READY, DEEPSPARSE_WHY = deepsparse_env.status()
needs_deepsparse = pytest.mark.skipif(not DEEPSPARSE_READY, reason=f"{DEEPSPARSE_WHY} (CI provisions it)")
ROW_KEYS = {"model", "runtime", "batch", "seq_len", "items_per_s", "spread", "threads", "calls", "status", "error"}


@pytest.fixture(scope="module")
def tiny_onnx(tiny_finetuned, tmp_path_factory):
    model, tokenizer, _ = tiny_finetuned
    return export.export_onnx(model, tokenizer, tmp_path_factory.mktemp("bench") / "tiny.onnx")


def _params(smoke, **overrides) -> Params:
    return Params(dict(smoke) | {"bench_seconds": 0.1, "bench_rounds": 2, "bench_threads": 1} | overrides)


def _fake_worker(tmp_path, monkeypatch, body: str) -> None:
    """Make the benchmark start `body` (a Python script) instead of the real deepsparse worker."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(body))
    monkeypatch.setattr(deepsparse_env, "status", lambda: (True, "fake"))
    monkeypatch.setattr(deepsparse_env, "venv_python", lambda: sys.executable)
    monkeypatch.setattr(deepsparse_env, "WORKER", script)


def test_rows_for_every_model_runtime_and_batch(smoke, tiny_finetuned, tiny_onnx):
    _, tokenizer, _ = tiny_finetuned
    P = _params(smoke, runtimes=["onnxruntime"], batches=[1, 2, 4])
    rows = speed.benchmark({"a": tiny_onnx, "b": tiny_onnx}, tokenizer, P)
    assert [(r["model"], r["batch"]) for r in rows] == [(m, b) for m in "ab" for b in (1, 2, 4)]
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["status"] == "ok" and row["error"] is None
        assert row["items_per_s"] > 0 and row["spread"] >= 0 and row["calls"] >= 6
        assert (row["runtime"], row["seq_len"], row["threads"]) == ("onnxruntime", P.seq_len, 1)


def test_inputs_are_real_sentences_at_fixed_length(smoke, tiny_finetuned):
    _, tokenizer, _ = tiny_finetuned
    inputs = bench.bench_inputs(tokenizer, speed.english_sentences(4, smoke.data_dir), 16)
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"}
    assert all(v.shape == (4, 16) for v in inputs.values())
    assert (inputs["input_ids"] != tokenizer.unk_token_id).sum() > inputs["attention_mask"].sum() / 2


def test_speedups_are_against_the_reference_onnxruntime_row():
    rows = [{"model": m, "runtime": rt, "batch": b, "items_per_s": v}
            for m, rt, b, v in [("dense", "onnxruntime", 1, 10.0), ("dense", "deepsparse", 1, 12.0),
                                ("sparse", "deepsparse", 1, 40.0), ("sparse", "deepsparse", 4, 80.0),
                                ("sparse", "onnxruntime", 1, None)]]
    assert [r["speedup"] for r in bench.speedups(rows, "dense")] == [1.0, 1.2, 4.0, None, None]


def test_missing_deepsparse_environment_says_why(smoke, tiny_finetuned, tiny_onnx, tmp_path, monkeypatch):
    monkeypatch.setenv(deepsparse_env.VENV_ENV, str(tmp_path / "absent"))
    rows = speed.benchmark({"m": tiny_onnx}, tiny_finetuned[1], _params(smoke, batches=[1]))
    by_runtime = {r["runtime"]: r for r in rows}
    assert by_runtime["onnxruntime"]["status"] == "ok"
    assert by_runtime["deepsparse"]["status"] == "unavailable"
    assert "setup-deepsparse" in by_runtime["deepsparse"]["error"] or "Python" in by_runtime["deepsparse"]["error"]


@pytest.mark.parametrize("when", ["at start", "while timing"])
def test_a_deepsparse_crash_costs_only_its_rows(smoke, tiny_finetuned, tiny_onnx, tmp_path, monkeypatch, when):
    _fake_worker(tmp_path, monkeypatch, f"""
        import json, os, sys
        sys.stdin.readline()
        if {when == "while timing"}:
            print(json.dumps({{"ok": True, "deepsparse": "fake", "compile_seconds": {{}}}}), flush=True)
            sys.stdin.readline()
        sys.stderr.write("Assertion at planner.hpp:120\\n")
        os.abort()
    """)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    rows = speed.benchmark({"x": tiny_onnx, "y": tiny_onnx}, tiny_finetuned[1], _params(smoke, batches=[1, 2]))
    assert len(rows) == 8
    assert list(scratch.iterdir()) == []  # the dead workers' scratch folders are gone
    for row in rows:
        if row["runtime"] == "deepsparse":
            assert row["status"] == "failed" and row["items_per_s"] is None
            assert "SIGABRT" in row["error"] and "planner.hpp" in row["error"]
        else:
            assert row["status"] == "ok" and row["items_per_s"] > 0


def test_worker_error_answer_becomes_a_failed_row(smoke, tiny_finetuned, tiny_onnx, tmp_path, monkeypatch):
    _fake_worker(tmp_path, monkeypatch, """
        import json, sys
        sys.stdin.readline()
        print(json.dumps({"ok": False, "error": "RuntimeError: cannot compile"}), flush=True)
    """)
    rows = speed.benchmark({"x": tiny_onnx}, tiny_finetuned[1], _params(smoke, batches=[1]))
    failed = [r for r in rows if r["runtime"] == "deepsparse"]
    assert failed[0]["status"] == "failed" and "cannot compile" in failed[0]["error"]


def test_setup_says_why_without_a_suitable_python(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(deepsparse_env.VENV_ENV, str(tmp_path / "venv"))
    monkeypatch.setattr(deepsparse_env, "SUPPORTED_PYTHONS", ("2.7",))
    usable, why = deepsparse_env.status()
    assert not usable and "needs Python" in why
    assert cli.main(["setup-deepsparse"]) == 1
    assert "onnxruntime only" in capsys.readouterr().err
    assert not (tmp_path / "venv").exists()


def test_bench_command_prints_a_table_and_writes_a_record(tiny_finetuned, tiny_onnx, tmp_path, capsys):
    checkpoint = tiny_finetuned[2]["checkpoint"]
    code = cli.main(["bench", str(tiny_onnx), "--runtimes", "onnxruntime", "--batch", "1,2", "--seq-len", "16",
                     "--seconds", "0.1", "--rounds", "1", "--threads", "1", "--tokenizer", checkpoint,
                     "--results-dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "b1 items/s" in out and "b2 items/s" in out
    record = json.loads((tmp_path / "bench" / "tiny.json").read_text())
    assert [r["batch"] for r in record["throughput"]] == [1, 2]
    assert record["sizes"]["onnx_bytes"] == tiny_onnx.stat().st_size
    assert "deepsparse" in record["env"]


def test_batches_must_be_positive_integers():
    with pytest.raises(ValueError, match="batches"):
        validate({"batches": [1, 0]})


@needs_deepsparse
@pytest.mark.deepsparse
def test_deepsparse_worker_times_each_batch_size(tiny_finetuned, tiny_onnx):
    inputs = bench.bench_inputs(tiny_finetuned[1], [["EU", "rejects", "German", "call", "."]], 16)
    with deepsparse_env.DeepSparseWorker(tiny_onnx, inputs, [1, 3], 16, threads=1) as worker:
        assert worker.version == deepsparse_env.version() == "1.8.0"
        for batch in (1, 3):
            times = worker.time(batch, 0.05, warmup=1)
            assert len(times) >= 3 and all(t > 0 for t in times)


@needs_deepsparse
@pytest.mark.deepsparse
def test_real_deepsparse_abort_on_dynamic_int8_is_contained(smoke, tiny_finetuned, tiny_onnx, tmp_path):
    from onnxruntime.quantization import quantize_dynamic

    int8 = tmp_path / "dynamic.onnx"
    quantize_dynamic(tiny_onnx, int8)
    rows = speed.benchmark({"fp32": tiny_onnx, "int8": int8}, tiny_finetuned[1], _params(smoke, batches=[1]))
    status = {(r["model"], r["runtime"]): r["status"] for r in rows}
    assert status == {("fp32", "onnxruntime"): "ok", ("fp32", "deepsparse"): "ok",
                      ("int8", "onnxruntime"): "ok", ("int8", "deepsparse"): "failed"}


def test_worker_strips_opset_domains_no_node_uses():
    from onnx import helper

    from mmakit.runtime import deepsparse_worker

    node = helper.make_node("MatMulInteger", ["a", "b"], ["c"], domain="com.microsoft")
    graph = helper.make_graph([node], "g", [], [])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14), helper.make_opsetid("ai.onnx.ml", 3),
                                                    helper.make_opsetid("com.microsoft", 1)])
    deepsparse_worker.strip_unused_domains(model)
    assert [o.domain for o in model.opset_import] == ["", "com.microsoft"]


def test_sparse_speedup_script_checks_the_issue_targets():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sparse_speedup.py"
    spec = importlib.util.spec_from_file_location("sparse_speedup", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rates = {("dense", "onnxruntime"): 8.0, ("dense", "deepsparse"): 7.0, ("sparse", "deepsparse"): 25.0}
    rows = [{"model": m, "runtime": rt, "batch": 4, "items_per_s": v} for (m, rt), v in rates.items()]
    checks = {c["check"].split(" /")[0]: c for c in script.verdicts(rows)}
    assert checks["sparse deepsparse"]["ratio"] == 3.12 and checks["sparse deepsparse"]["pass"] is True
    assert checks["dense deepsparse"]["ratio"] == 0.88 and checks["dense deepsparse"]["pass"] is False
