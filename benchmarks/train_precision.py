"""Training throughput in fp32 vs bf16 autocast: does mixed precision pay off for fine-tuning here?

A profile's model (default the quick profile's multilingual-e5-small) is trained for `--steps`
optimizer steps on the first English training sentences, on a fresh model each time, in fp32
and bf16, with frozen and with trainable word embeddings, in one process and interleaved rounds
(fp32 and bf16 alternate, so a machine that slows down mid-run hurts both): the median
sentences/s of each setting and the bf16/fp32 ratios. The measurement is
mmakit.study.baseline.train_speed, the probe 01_baselines records.

    MMAKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/train_precision.py [--steps 20 --rounds 2]

Prints the table and writes it as JSON (default outputs/results/bench/train_precision.json,
under MMAKIT_RESULTS_DIR when set). Each probe's time includes its first steps (no warm-up is
dropped), so use enough --steps for the ratio to mean something.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import yaml

from mmakit.core.hardware import resolve_device, resolve_precision
from mmakit.core.paths import write_json_atomic
from mmakit.study import baseline, common, params
from mmakit.study.provenance import capture
from mmakit.study.records import now, results_root

SETTINGS = ("fp32_frozen", "bf16_frozen", "fp32_full", "bf16_full")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", help="smoke | quick | paper, or a YAML path (default quick)")
    parser.add_argument("--model", default=None, help="which of the profile's models (default its `model`)")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps per probe (default the profile's speed_probe_steps)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; medians over them (default 2)")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter override (YAML value), e.g. -p threads 1 -p batch_size 16")
    parser.add_argument("--out", default=None, help="JSON output (default <results>/bench/train_precision.json)")
    args = parser.parse_args(argv)
    if (args.steps is not None and args.steps < 1) or args.rounds < 1:
        parser.error("--steps and --rounds must be at least 1")
    started, t0 = now(), time.perf_counter()

    overrides = {name: yaml.safe_load(value) for name, value in args.param}
    if args.steps is not None:
        overrides["speed_probe_steps"] = args.steps
    P = params.resolve({**overrides, "profile": args.profile}, "bench")
    if not P.get("speed_probe_steps"):
        parser.error(f"profile {args.profile} sets no speed_probe_steps; pass --steps")
    common.setup(P)  # torch threads of the profile, environment at the start
    device = resolve_device(P.get("device") or "auto")
    spec = P.model_spec(args.model)
    print(f"{spec.name} ({spec.source}) on {device}, {P.speed_probe_steps} steps x batch {P.batch_size}, "
          f"{args.rounds} round(s)", flush=True)

    speed = baseline.train_speed(P, args.model, rounds=args.rounds)
    ratios = {"bf16_over_fp32_frozen": speed["bf16_frozen"] / speed["fp32_frozen"],
              "bf16_over_fp32_full": speed["bf16_full"] / speed["fp32_full"]}
    print(f"{'setting':<12} {'sentences/s':>12}")
    for name in SETTINGS:
        print(f"{name:<12} {speed[name]:>12.1f}")
    for name, ratio in ratios.items():
        print(f"{name}: {ratio:.2f}")
    native = resolve_precision("auto", device) == "bf16"
    print(f"bf16 native on this {device}: {'yes' if native else 'no (emulated: expect bf16 slower)'}")
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")

    out = Path(args.out or results_root() / "bench" / "train_precision.json")
    write_json_atomic({"benchmark": "train_precision", "profile": P.profile, "model": spec.name,
                       "source": spec.source, "device": device, "bf16_native": native,
                       "batch_size": P.batch_size, "max_length": P.max_length, "threads": P.get("threads"),
                       "steps": P.speed_probe_steps, "rounds": args.rounds, "config": vars(args),
                       "sentences_per_s": {k: speed[k] for k in SETTINGS}, "ratios": ratios,
                       "load_average": load, "env": capture(device=P.get("device")), "started": started,
                       "seconds": round(time.perf_counter() - t0, 1)}, out)
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
