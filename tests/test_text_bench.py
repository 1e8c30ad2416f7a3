"""Real-text throughput (bench-text): sentences/s and words/s of study models on the test sets
at their real lengths, batched by length, beside the dense baseline in one interleaved run; the
record, the report's table and the model card's real-text rows."""
from __future__ import annotations

import json

import pytest

from mmakit import cli
from mmakit.report.text_speed import latest_text_bench, text_speed_table
from mmakit.runtime import deepsparse_env
from mmakit.runtime.text_bench import TextBenchConfig, speedups, totals
from mmakit.study import export_model, text_speed

DEEPSPARSE_READY, DEEPSPARSE_WHY = deepsparse_env.status()
needs_deepsparse = pytest.mark.skipif(not DEEPSPARSE_READY, reason=f"{DEEPSPARSE_WHY} (CI provisions it)")
RUN = "05_quantization/export-dynamic"


@pytest.fixture(scope="module")
def benched(export_records):
    config = TextBenchConfig(runtimes=("onnxruntime",), batches=(4, 16), rounds=2, threads=1)
    return text_speed.bench_text([RUN], config, name="text-test")


def test_rows_give_sentences_and_words_per_second_per_set_and_over_all(benched):
    rows, _ = benched
    assert {(r["model"], r["lang"], r["batch"]) for r in rows} == {
        (m, lang, b) for m in ("dense", RUN) for lang in ("en", "es", "nl", "all") for b in (4, 16)}
    for r in rows:
        assert r["status"] == "ok" and r["sentences_per_s"] > 0 and r["words_per_s"] > r["sentences_per_s"]
        assert r["words_per_s"] / r["sentences_per_s"] == pytest.approx(r["words"] / r["sentences"], rel=0.01)
        assert r["tokens"] <= r["padded_tokens"] and r["threads"] == 1
    per_set = [r for r in rows if r["lang"] != "all"]
    assert all(r["passes"] == 2 for r in per_set)
    for total in (r for r in rows if r["lang"] == "all"):
        same = ("model", "runtime", "batch")
        parts = [r for r in per_set if all(r[k] == total[k] for k in same)]
        assert total["sentences"] == sum(p["sentences"] for p in parts)
        assert total["seconds_per_pass"] == pytest.approx(sum(p["seconds_per_pass"] for p in parts), abs=1e-3)
    assert all(r["speedup"] == 1.0 for r in rows if r["model"] == "dense")


def test_record_names_each_model_and_its_fixed_length_speed(benched, export_records):
    _, path = benched
    record = json.loads(path.read_text())
    assert path.parent.name == "bench" and record["technique"]["method"] == "bench-text"
    assert set(record["models"]) == {"dense", RUN}
    assert record["models"][RUN]["fixed_length"] == export_records["export-dynamic"]["throughput"]
    assert record["params"]["runs"] == [RUN] and record["params"]["bucket"] == 16
    assert latest_text_bench(name="text-test")["run"] == "text-test"
    table = text_speed_table(record)
    assert list(table.index.names) == ["model", "runtime", "batch"] and len(table) == 4
    row = table.loc[(RUN, "onnxruntime", 4)]
    assert row["sentences/s"] > 0 and row["fixed batch"] == 1 and row["speedup (fixed length)"] is not None
    assert table.loc[("dense", "onnxruntime", 16), "speedup (real text)"] == 1.0


def test_the_model_card_shows_the_real_text_rows(benched, tmp_path):
    assert text_speed.rows_for(RUN) == [r for r in benched[0] if r["model"] == RUN]
    folder, card = export_model.export(RUN, tmp_path / "card", verify=False)
    assert card["speed"]["real_text"] == text_speed.rows_for(RUN)
    assert "Real text" in (folder / "README.md").read_text()


def test_totals_and_speedups_over_the_dense_model():
    def row(model, runtime, lang, rate, sentences=10, words=100):
        seconds = sentences / rate if rate else None
        return {"model": model, "runtime": runtime, "lang": lang, "batch": 8, "sentences": sentences, "words": words,
                "tokens": 150, "padded_tokens": 160, "seconds_per_pass": seconds, "sentences_per_s": rate,
                "words_per_s": words / seconds if seconds else None, "status": "ok" if rate else "failed",
                "error": None if rate else "boom"}

    rows = [row("dense", "onnxruntime", "en", 10.0), row("dense", "onnxruntime", "es", 5.0),
            row("fast", "onnxruntime", "en", 40.0), row("fast", "onnxruntime", "es", 20.0),
            row("fast", "deepsparse", "en", 80.0), row("fast", "deepsparse", "es", None)]
    out = {(r["model"], r["runtime"]): r for r in totals(rows)}
    assert out["dense", "onnxruntime"]["seconds_per_pass"] == pytest.approx(3.0)
    assert out["dense", "onnxruntime"]["sentences_per_s"] == pytest.approx(20 / 3, abs=0.01)
    assert out["fast", "deepsparse"]["sentences_per_s"] is None and out["fast", "deepsparse"]["status"] == "failed"
    ups = {(r["model"], r["runtime"], r["lang"]): r["speedup"] for r in speedups(rows + totals(rows), "dense")}
    assert ups["fast", "onnxruntime", "en"] == 4.0 and ups["fast", "onnxruntime", "all"] == 4.0
    assert ups["fast", "deepsparse", "en"] == 8.0 and ups["fast", "deepsparse", "es"] is None


def test_command_prints_the_table_and_refuses_an_unknown_runtime(export_records, capsys):
    assert cli.main(["bench-text", "export-dynamic", "--runtimes", "onnxruntime", "--batch", "8", "--rounds", "1",
                     "--threads", "1", "--max-sentences", "10", "--name", "text-cli"]) == 0
    out = capsys.readouterr().out
    assert "sentences/s" in out and "speedup (fixed length)" in out and "text-cli.json" in out
    assert cli.main(["bench-text", "export-dynamic", "--runtimes", "onnxruntime,tvm"]) == 2
    assert "unknown runtime tvm; choose from onnxruntime, deepsparse" in capsys.readouterr().err


@needs_deepsparse
@pytest.mark.deepsparse
def test_both_runtimes_in_one_run_and_a_graph_deepsparse_cannot_run_costs_only_its_rows(export_records):
    config = TextBenchConfig(batches=(8,), rounds=1, threads=1)
    rows, _ = text_speed.bench_text(["05_quantization/export-fp32", RUN], config, max_sentences=12, name="text-ds")
    status = {(r["model"], r["runtime"]) for r in rows if r["status"] == "ok"}
    assert status == {("dense", "onnxruntime"), ("dense", "deepsparse"), ("05_quantization/export-fp32", "onnxruntime"),
                      ("05_quantization/export-fp32", "deepsparse"), (RUN, "onnxruntime")}
    failed = [r for r in rows if r["status"] != "ok"]
    assert failed and all(r["model"] == RUN and r["runtime"] == "deepsparse" and r["error"] for r in failed)
    fp32 = [r for r in rows if r["model"] == "05_quantization/export-fp32" and r["runtime"] == "deepsparse"]
    assert all(r["sentences_per_s"] > 0 and r["padded_tokens"] % 8 == 0 for r in fp32)
