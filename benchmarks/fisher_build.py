"""OBS's Fisher inverse built two ways on the real model: Sherman-Morrison updates (oBERT's) or
each block's Fisher summed and inverted directly (batched Cholesky). Which is faster at the
quick profile's m and B, does building the inverse dominate a pruning step next to computing
the m gradients, and do the two agree where it matters (saliency masks)?

The fine-tuned baseline (cached by 01) gives m masked gradients per build, the same ones each
time (same seed); builds alternate over `--rounds`, in one process. Reported: gradient seconds
and inverse seconds per build (medians), the relative difference of the two inverses, and the
overlap of the one-shot OBS masks they give at 50% and 70% sparsity.

    MMAKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/fisher_build.py [--rounds 2]

Writes JSON (default outputs/results/bench/fisher_build.json, under MMAKIT_RESULTS_DIR when set).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.paths import write_json_atomic
from mmakit.study import common, params
from mmakit.study.provenance import capture
from mmakit.study.records import now, results_root
from mmakit.techniques.pruning.fisher import BUILDS
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.obs import fisher_inverse
from mmakit.techniques.pruning.scope import prunable_weights

SPARSITIES = (0.5, 0.7)


def saliency_mask(fisher, weights: dict, sparsity: float) -> torch.Tensor:
    """The keep-mask (flat) one-shot OBS would choose at `sparsity` from `fisher`."""
    w = fisher.to_blocks([x.detach() for x in weights.values()])
    scores = 0.5 * w * w / fisher.inv.diagonal(dim1=1, dim2=2)
    masks = Masks({n: torch.nn.Parameter(x.detach().clone()) for n, x in weights.items()})
    masks.select(dict(zip(weights, fisher.from_blocks(scores))), sparsity)
    return torch.cat([k.reshape(-1) for k in masks.keep.values()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both builds (default 2)")
    params.add_cli_options(parser, "-p num_grads 64 -p obs_block_size 16")
    parser.add_argument("--out", default=None, help="JSON output (default <results>/bench/fisher_build.json)")
    args = parser.parse_args(argv)
    started, t0 = now(), time.perf_counter()
    P = params.from_cli(args, "03_obs")
    common.setup(P)
    model, tokenizer, _ = common.fine_tuned(P)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    weights = prunable_weights(model, P.prune_scope)
    m, B, damp = int(P.num_grads), int(P.obs_block_size), float(P.obs_damp)
    print(f"{sum(w.numel() for w in weights.values()):,} weights, m={m}, B={B}, damp={damp}, {args.rounds} round(s)",
          flush=True)

    seconds: dict[str, dict[str, list[float]]] = {b: {"gradients": [], "inverse": []} for b in BUILDS}
    kept: dict[str, torch.Tensor] = {}
    for _ in range(args.rounds):
        for build in BUILDS:
            source = GradientSource(train, tokenizer.pad_token_id, m, int(P.grad_batch), P.seed)
            start = time.perf_counter()
            fisher = fisher_inverse(model, Masks(weights), source, 0, B, damp, int(P.obs_chunk_blocks), build)
            total = time.perf_counter() - start
            seconds[build]["inverse"].append(fisher.seconds)
            seconds[build]["gradients"].append(total - fisher.seconds)
            print(f"{build:<17} gradients {total - fisher.seconds:6.1f} s  inverse {fisher.seconds:6.1f} s", flush=True)
            if build not in kept:
                kept[build] = fisher.inv.clone()
                masks = {s: saliency_mask(fisher, weights, s) for s in SPARSITIES}
                kept[build + "-masks"] = masks
            del fisher

    a, b = kept["sherman-morrison"], kept["direct"]
    rel = float((a - b).norm() / b.norm())
    diag_rel = float(((a.diagonal(dim1=1, dim2=2) - b.diagonal(dim1=1, dim2=2)).abs()
                      / b.diagonal(dim1=1, dim2=2).abs()).max())
    overlap = {}
    for s in SPARSITIES:
        x, y = kept["sherman-morrison-masks"][s], kept["direct-masks"][s]
        overlap[str(s)] = float(((~x) & (~y)).sum() / (~y).sum())  # shared pruned / pruned
    medians = {build: {k: statistics.median(v) for k, v in parts.items()} for build, parts in seconds.items()}
    for build, parts in medians.items():
        print(f"median {build:<17} gradients {parts['gradients']:6.1f} s  inverse {parts['inverse']:6.1f} s")
    print(f"|F^-1(SM) - F^-1(direct)| / |F^-1(direct)| = {rel:.2e}; max relative diagonal difference {diag_rel:.2e}")
    print("pruned-weight overlap of the one-shot masks:", {k: round(v, 5) for k, v in overlap.items()})
    load = os.getloadavg()
    out = Path(args.out or results_root() / "bench" / "fisher_build.json")
    write_json_atomic({"benchmark": "fisher_build", "profile": P.profile, "model": P.model, "num_grads": m,
                       "block_size": B, "damp": damp, "grad_batch": int(P.grad_batch), "rounds": args.rounds,
                       "weights": sum(w.numel() for w in weights.values()), "seconds": seconds, "medians": medians,
                       "relative_difference": rel, "max_relative_diagonal_difference": diag_rel,
                       "mask_overlap": overlap, "load_average": load, "env": capture(device="cpu"),
                       "started": started, "wall_seconds": round(time.perf_counter() - t0, 1)}, out)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
