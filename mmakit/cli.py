"""Command line of mmakit: `python -m mmakit <command>`.

Each command is a pair of functions, one adding its arguments and one running it, registered
in COMMANDS with `register`, so a new command is added in one place.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

Command = tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]
COMMANDS: dict[str, Command] = {}


def register(name: str, help: str, configure: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> None:
    """Add a command: `configure(parser)` declares its arguments, `run(args)` returns an exit code."""
    COMMANDS[name] = (configure, run, help)


def _configure_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebooks", nargs="*", help="notebook names or numbers (default: all, in order)")
    p.add_argument("--profile", default="quick", help="smoke | quick | paper, or a YAML path (default quick)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter override passed to every notebook (YAML value)")
    p.add_argument("--defaults", action="store_true",
                   help="run each notebook once with the profile's defaults instead of over its experiment files")
    p.add_argument("--force", action="store_true", help="re-run experiments whose records are current")
    p.add_argument("--list", action="store_true",
                   help="print the papermill command of every job (and whether it is current) instead of running")
    p.add_argument("--out", default=None, help="folder for executed notebooks (default outputs/notebooks)")


def _run(args: argparse.Namespace) -> int:
    import yaml

    from mmakit.study import runner

    overrides = {name: yaml.safe_load(value) for name, value in args.param}
    try:
        if args.list:
            for job in runner.plan(args.profile, args.notebooks, not args.defaults, args.force):
                print(("# current: " if job.current else "") + runner.command(job, args.profile, args.out))
        else:
            runner.run_notebooks(args.profile, args.notebooks, overrides, args.out, not args.defaults, args.force)
    except (runner.NotebookFailed, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    stray = runner.orphans(args.profile)
    if stray:
        print(f"{len(stray)} records of the {args.profile} profile come from no experiment file (regenerate or remove "
              f"them): {', '.join(stray)}", file=sys.stderr)
    return 0


register("run", "run the study: each notebook over its experiment files, in order, skipping current ones",
         _configure_run, _run)


def _configure_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="an ONNX file exported from a token classifier")
    p.add_argument("--runtimes", default="onnxruntime,deepsparse", help="comma-separated (default both)")
    p.add_argument("--batch", default="1,4,8", help="comma-separated batch sizes (default 1,4,8)")
    p.add_argument("--seq-len", type=int, default=128, help="fixed sequence length (default 128)")
    p.add_argument("--seconds", type=float, default=6.0, help="timed seconds per runtime x batch (default 6)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds the seconds are split over (default 3)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default all cores)")
    p.add_argument("--tokenizer", default=None, help="tokenizer folder or hub id (default the ONNX file's folder)")
    p.add_argument("--results-dir", default=None, help="records go to RESULTS_DIR/bench/ (default outputs/results)")


def _bench(args: argparse.Namespace) -> int:
    from mmakit.report.tables import throughput_wide
    from mmakit.runtime.bench import RUNTIMES, BenchConfig
    from mmakit.study.speed import bench_file

    runtimes = tuple(r.strip() for r in args.runtimes.split(","))
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        print(f"error: unknown runtime {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}", file=sys.stderr)
        return 2
    config = BenchConfig(runtimes=runtimes, batches=tuple(int(b) for b in args.batch.split(",")), seq_len=args.seq_len,
                         seconds=args.seconds, rounds=args.rounds, threads=args.threads)
    rows, record = bench_file(args.model, config, args.tokenizer, args.results_dir)
    print(throughput_wide(rows).to_string())
    print(f"record: {record}")
    return 0 if any(r["status"] == "ok" for r in rows) else 1


def _configure_setup_side_env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="hide pip's output")


def _setup_side_env(package: str, without: str) -> Callable[[argparse.Namespace], int]:
    """The command that provisions `package`'s own venv (runtime/<package>_env.py); `without`
    says what the study loses when that fails."""
    def setup(args: argparse.Namespace) -> int:
        module = importlib.import_module(f"mmakit.runtime.{package}_env")
        try:
            where = module.setup(quiet=args.quiet)
        except RuntimeError as exc:
            print(f"{package} environment not created: {exc}\n{without}", file=sys.stderr)
            return 1
        print(f"{package} {module.version()} ready in {where}")
        return 0
    return setup


def _configure_sparseml_check(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default=None, help="record file (default RESULTS_DIR/bench/sparseml_obs_check.json)")


def _sparseml_check(args: argparse.Namespace) -> int:
    import json

    from mmakit.runtime.sparseml_env import WorkerFailed
    from mmakit.study.sparseml_check import run_check

    try:
        record = run_check(out=args.out)
    except WorkerFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({k: record[k] for k in ("versions", "loss_dense", "fisher_degeneracy", "model_parity")}, indent=2))
    for row in record["results"]:
        print(f"damp {row['damp']:g} (degeneracy {row['fisher_degeneracy']:.3f}), "
              f"sparsity {row['sparsity']:.0%}: overlap {row['overlap']:.4f} (ours vs magnitude "
              f"{row['overlap_ours_magnitude']:.4f}), held-out loss ours {row['loss_ours']:.4f} SparseML "
              f"{row['loss_sparseml']:.4f} magnitude {row['loss_magnitude']:.4f} (dense {record['loss_dense']:.4f}), "
              f"update relative difference {row['update_rel_diff']:.2e}")
    return 0


def _configure_fine_tune(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="quick", help="smoke | quick | paper, or a YAML path (default quick)")
    p.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="a parameter override (YAML value), e.g. -p epochs 2 -p precision bf16")
    p.add_argument("--model", default=None, help="which of the profile's models (default its `model`)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default the profile's baseline_seed)")


def _fine_tune(args: argparse.Namespace) -> int:
    """Train (or load from the cache) one baseline. Under `accelerate launch` / torchrun every
    process runs this; they train together and the main process saves and prints."""
    import yaml
    from accelerate import PartialState

    from mmakit.core.hardware import resolve_device
    from mmakit.study import common, params

    overrides = {name: yaml.safe_load(value) for name, value in args.param}
    try:
        P = params.resolve({**overrides, "profile": args.profile}, "fine-tune")
        device = resolve_device(P.get("device") or "auto")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # Join the launcher's processes first, on the run's device: a later bare PartialState() (the
    # tokenized-data cache) would otherwise fix a CPU-only torchrun launch as N separate runs.
    state = PartialState(cpu=device == "cpu")
    common.setup(P)
    _, _, meta = common.fine_tuned(P, args.model, seed=args.seed)
    if state.is_main_process:
        print(f"checkpoint: {meta['checkpoint']}")
        for key in ("precision", "device", "processes", "steps"):
            print(f"{key}: {meta.get(key)}")
        seconds, rate = meta.get("train_seconds"), meta.get("train_sentences_per_s")
        if seconds is not None:
            print(f"train_seconds: {seconds:.1f}  sentences/s: {rate:.1f}  (of the run that made the checkpoint)")
        if state.num_processes != meta.get("processes"):
            print(f"note: cache hit, trained by {meta.get('processes')} process(es); this launch has "
                  f"{state.num_processes}", flush=True)
    return 0


register("fine-tune", "fine-tune (or load from the cache) a profile's baseline and print its checkpoint; "
         "works under `accelerate launch` / torchrun", _configure_fine_tune, _fine_tune)
register("bench", "items/s of an ONNX model in onnxruntime and deepsparse; prints a table, writes a JSON record",
         _configure_bench, _bench)
register("setup-deepsparse", "create deepsparse's own virtual environment (pinned deepsparse 1.8.0, Python 3.8-3.11)",
         _configure_setup_side_env, _setup_side_env("deepsparse", "Speed tables will show onnxruntime only."))
register("setup-sparseml", "create sparseml's own virtual environment (pinned sparseml 1.8.0, Python 3.8-3.11)",
         _configure_setup_side_env, _setup_side_env("sparseml", "The SparseML cross-check of OBS will be skipped."))
register("sparseml-check", "cross-check our OBS pruning against SparseML's on a tiny BERT; prints and writes a record",
         _configure_sparseml_check, _sparseml_check)


def _configure_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebooks", nargs="*", help="executed notebooks (default: every one in outputs/notebooks)")
    p.add_argument("--out", default=None, help="folder for the HTML pages (default outputs/html)")


def _report(args: argparse.Namespace) -> int:
    from mmakit.report import html
    from mmakit.study.runner import EXECUTED_DIR

    paths = args.notebooks or sorted(EXECUTED_DIR.glob("*.ipynb"))
    for path in paths:
        print(html.render(path, args.out))
    return 0 if paths else 1


register("report", "render executed notebooks to self-contained HTML pages (outputs/html)", _configure_report, _report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmakit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _, help_text) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)
