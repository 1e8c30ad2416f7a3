"""Why movement pruning scores F1 0, in both of 03's regimes. From the converged fine-tuned
baseline: its accumulated scores (-sum g w over English mini-batches at the cached baseline)
against each weight's importance (w^2 E[g^2] from other mini-batches): the share of negative
scores, their median signal-to-noise ratio, the rank correlation of |S| and of sign(S) with
importance; then one per-tensor cut (10% by default) by movement, the sign flipped, |S| with
shuffled signs, magnitude and random: the share of the 1% most important weights each removes
and dev F1 per language without retraining. In Sanh et al.'s regime (`--trained-steps`, default
one epoch): the same after fine-tuning the pre-trained encoder with trained scores, before any cut.

    MMAKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/movement_diagnostics.py [--batches 110]

Writes JSON (default outputs/results/bench/movement_diagnostics.json, under MMAKIT_RESULTS_DIR
when set); the 03 notebook shows it (mmakit.report.pruning.movement_diagnostics_*).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from mmakit.core.paths import write_json_atomic
from mmakit.core.train import total_steps
from mmakit.study import common, params
from mmakit.study.movement_diagnostics import RESULT, diagnose, diagnose_trained
from mmakit.study.provenance import capture
from mmakit.study.records import now, results_root

NAME = "movement_diagnostics"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=110,
                        help="mini-batches of grad_batch sentences for the scores (default 110: 03's warm-up steps)")
    parser.add_argument("--sparsity", type=float, default=0.1, help="the per-tensor cut (default 0.1)")
    parser.add_argument("--top", type=float, default=0.01, help="the most important share watched (default 0.01)")
    parser.add_argument("--trained-steps", type=int, default=None,
                        help="steps of fine-tuning with trained scores before the cut (default: one epoch; 0: skip)")
    params.add_cli_options(parser, "-p grad_batch 16")
    parser.add_argument("--out", default=None, help="JSON output (default <results>/bench/movement_diagnostics.json)")
    args = parser.parse_args(argv)
    started, t0 = now(), time.perf_counter()
    P = params.from_cli(args, "03_obs")
    common.setup(P)
    torch.manual_seed(0)
    found = diagnose(P, args.batches, args.sparsity, args.top)
    show("fine-tuned baseline, accumulated scores", found, args.top)
    steps = args.trained_steps
    if steps is None:  # one epoch of English
        steps = total_steps(len(common.english_train(P)), common.train_config(P, epochs=1))
    if steps > 0:
        found["trained"] = diagnose_trained(P, steps, args.batches, args.sparsity, args.top)
        show(f"pre-trained encoder after {steps} steps, trained scores", found["trained"], args.top)
    out = Path(args.out or results_root() / RESULT)
    write_json_atomic({"benchmark": NAME, **found, "env": capture(device="cpu"), "started": started,
                       "wall_seconds": round(time.perf_counter() - t0, 1)}, out)
    print(f"written: {out}")
    return 0


def show(title: str, found: dict, top: float) -> None:
    print(title, found["scores"], "dense dev F1", found["dense_f1"], flush=True)
    for name, row in found["criteria"].items():
        print(f"  {name:<28} top {top:.0%} removed {row['top_removed']:.3f}  dev F1 {row['f1']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
