"""Speed target of the study's runtime set-up: does unstructured sparsity pay off on this CPU?

A bert-base-shaped token classifier (12 layers, hidden 768, random weights: speed does not
depend on the values) is exported dense and with 90% of every encoder Linear weight set to
zero, and both are timed in onnxruntime and deepsparse at batch 1/4/8, sequence 128, in one
interleaved run. Targets (issue 3): the sparse model in deepsparse at least 3x the dense model
in onnxruntime at batch 4, and dense deepsparse no more than 10% slower than dense onnxruntime.

    MMAKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/sparse_speedup.py [--seconds 9]

Prints the table and the verdicts, and writes them as JSON (default
outputs/benchmarks/sparse_speedup.json beside the results folder).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import BertConfig, BertForTokenClassification

from mmakit.core.data import LABELS
from mmakit.core.models import train_wordpiece
from mmakit.core.paths import write_json_atomic
from mmakit.report.tables import throughput_wide
from mmakit.runtime import bench, export
from mmakit.study import speed
from mmakit.study.provenance import capture
from mmakit.study.records import now, results_root

BERT_BASE = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                 intermediate_size=3072, max_position_embeddings=512)
TARGET_SPARSE = 3.0      # sparse deepsparse over dense onnxruntime, batch 4
TARGET_DENSE = 0.9       # dense deepsparse over dense onnxruntime, every batch


def sparsify(model: BertForTokenClassification, sparsity: float) -> None:
    """Zero the smallest-magnitude `sparsity` fraction of every encoder Linear weight."""
    with torch.no_grad():
        for module in model.bert.encoder.modules():
            if isinstance(module, torch.nn.Linear):
                w = module.weight
                k = int(sparsity * w.numel())
                threshold = w.abs().flatten().kthvalue(k).values
                w[w.abs() <= threshold] = 0.0


def verdicts(rows: list[dict]) -> list[dict]:
    """The issue's two targets, checked on ratios from this run."""
    rate = {(r["model"], r["runtime"], r["batch"]): r["items_per_s"] for r in rows}
    out = []
    for batch in sorted({r["batch"] for r in rows}):
        base = rate.get(("dense", "onnxruntime", batch))
        checks = [("sparse deepsparse / dense onnxruntime", ("sparse", "deepsparse", batch), TARGET_SPARSE if batch == 4 else None),
                  ("dense deepsparse / dense onnxruntime", ("dense", "deepsparse", batch), TARGET_DENSE)]
        for name, key, target in checks:
            ratio = rate.get(key) / base if base and rate.get(key) else None
            passed = None if target is None or ratio is None else ratio >= target
            out.append({"check": name, "batch": batch, "ratio": ratio and round(ratio, 2), "target": target, "pass": passed})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9)
    parser.add_argument("--batches", default="1,4,8")
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=9.0, help="timed seconds per model x runtime x batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="default: all cores")
    parser.add_argument("--out", default=None, help="JSON output (default outputs/benchmarks/sparse_speedup.json)")
    args = parser.parse_args(argv)
    started, t0 = now(), time.perf_counter()

    sentences = speed.english_sentences(16, os.environ.get("MMAKIT_DATA_DIR") or "tests/fixtures/data")
    tokenizer = train_wordpiece(sentences, vocab_size=500)  # any ids below the model's vocabulary will do
    config = bench.BenchConfig(batches=tuple(int(b) for b in args.batches.split(",")), seq_len=args.seq_len,
                               seconds=args.seconds, rounds=args.rounds, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        graphs = {}
        for name in ("dense", "sparse"):
            torch.manual_seed(0)
            model = BertForTokenClassification(BertConfig(**BERT_BASE, num_labels=len(LABELS))).eval()
            if name == "sparse":
                sparsify(model, args.sparsity)
            graphs[name] = export.export_onnx(model, tokenizer, Path(tmp) / f"{name}.onnx")
            print(f"{name}: {export.model_sizes(model, graphs[name])}", flush=True)
            del model
        inputs = bench.bench_inputs(tokenizer, sentences, config.seq_len)
        rows = bench.speedups(bench.run_benchmark(graphs, inputs, config), "dense")

    checks = verdicts(rows)
    print(throughput_wide(rows).to_string(float_format=lambda v: f"{v:.2f}"))
    for c in checks:
        target = f"target >= {c['target']}" if c["target"] else "no target"
        mark = {True: "PASS", False: "MISS", None: "-"}[c["pass"]]
        print(f"{mark:4}  batch {c['batch']}: {c['check']} = {c['ratio']}  ({target})")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")
    out = Path(args.out or results_root().parent / "benchmarks" / "sparse_speedup.json")
    write_json_atomic({"benchmark": "sparse_speedup", "shape": BERT_BASE, "sparsity": args.sparsity,
                       "config": vars(args), "rows": rows, "checks": checks, "load_average": load,
                       "env": capture(), "started": started, "seconds": round(time.perf_counter() - t0, 1)}, out)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
