"""Do a pruned model's token representations collapse? For every cached 03 pruning run (and
the dense baseline it started from), the spread of the hidden states across the tokens of
English dev sentences, layer by layer: the standard deviation over tokens of each hidden
dimension, averaged over dimensions. A model whose spread falls to ~0 maps every token to the
same vector, predicts one label everywhere (F1 0) and gets no token-specific gradient to recover
from; this is how movement pruning failed in the quick runs.

    MMAKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/token_spread.py [--sentences 64]

Writes JSON (default outputs/results/bench/token_spread.json, under MMAKIT_RESULTS_DIR when set).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from transformers import AutoModelForTokenClassification, AutoTokenizer

from mmakit.core.data import load_split
from mmakit.core.paths import cache_root, write_json_atomic
from mmakit.study.provenance import capture
from mmakit.study.records import now, results_root


def token_spread(folder: Path, words: list[list[str]]) -> list[float]:
    """Mean over hidden dimensions of the std over real tokens, for the embeddings and every layer."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=128, padding=True,
                    return_tensors="pt")
    with torch.no_grad():
        states = model(**enc, output_hidden_states=True).hidden_states
    real = enc["attention_mask"].bool()
    return [round(float(h[real].std(0).mean()), 5) for h in states]


def describe(meta: dict) -> dict:
    """The run a cached pruned model came from: method, sparsity, schedule, selection, seed, commit."""
    p = meta["pruning"]
    return {"method": p["method"], "sparsity": p["sparsity"], "schedule": p["schedule"],
            "initial_sparsity": p["initial_sparsity"], "selection": p.get("selection", "global"),
            "group_size": p["group_size"], "seed": (meta.get("training") or {}).get("train", {}).get("seed"),
            "started_from_other_model": meta.get("start") is not None, "cache": meta["key"],
            "git_commit": (meta.get("provenance") or {}).get("git_commit")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=64, help="English dev sentences (default 64)")
    parser.add_argument("--cache-dir", default=None, help="mmakit cache (default MMAKIT_CACHE_DIR or ~/.cache/mmakit)")
    parser.add_argument("--out", default=None, help="JSON output (default <results>/bench/token_spread.json)")
    args = parser.parse_args(argv)
    started = now()
    torch.manual_seed(0)
    words = [list(w) for w in load_split("en", "dev", max_samples=args.sentences)["tokens"]]
    root = cache_root(args.cache_dir)
    runs, baselines = [], {}
    for meta_path in sorted((root / "pruned").glob("*/mmakit.json")):
        meta = json.loads(meta_path.read_text())
        runs.append(describe(meta) | {"spread": token_spread(meta_path.parent, words)})
        base = meta["baseline"]["key"]
        if base not in baselines and (root / "checkpoints" / base).exists():
            baselines[base] = token_spread(root / "checkpoints" / base, words)
        print(runs[-1]["method"], runs[-1]["selection"], runs[-1]["sparsity"], runs[-1]["spread"][::3], flush=True)
    out = Path(args.out) if args.out else results_root() / "bench" / "token_spread.json"
    write_json_atomic({"started": started, "finished": now(), "sentences": args.sentences,
                       "dense": baselines, "runs": runs, "env": capture()}, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
