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
    p.add_argument("--only", nargs="+", default=None, metavar="EXPERIMENT",
                   help="only these experiments (names or shell patterns, e.g. 'obs-80-*')")
    p.add_argument("--commit", action="store_true",
                   help="git-commit outputs/ after each experiment, so an interrupted study keeps every finished run")


def _run(args: argparse.Namespace) -> int:
    import yaml

    from mmakit.study import runner
    from mmakit.study.provenance import commit_outputs

    overrides = {name: yaml.safe_load(value) for name, value in args.param}
    try:
        if args.list:
            for job in runner.plan(args.profile, args.notebooks, not args.defaults, args.force, only=args.only):
                print(("# current: " if job.current else "") + runner.command(job, args.profile, args.out))
        else:
            on_done = (lambda job, _: commit_outputs(f"{job.label} {args.profile}: records")) if args.commit else None
            runner.run_notebooks(args.profile, args.notebooks, overrides, args.out, not args.defaults, args.force,
                                 args.only, on_done)
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


def _runtimes(text: str) -> tuple[str, ...] | None:
    """The comma-separated runtimes of `text`, or None (after saying why) when one is unknown."""
    from mmakit.runtime.bench import RUNTIMES

    runtimes = tuple(r.strip() for r in text.split(","))
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        print(f"error: unknown runtime {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}", file=sys.stderr)
        return None
    return runtimes


def _bench(args: argparse.Namespace) -> int:
    from mmakit.report.tables import throughput_wide
    from mmakit.runtime.bench import BenchConfig
    from mmakit.study.speed import bench_file

    runtimes = _runtimes(args.runtimes)
    if runtimes is None:
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


def _configure_params(p: argparse.ArgumentParser) -> None:
    p.add_argument("--write-cells", action="store_true",
                   help="rewrite the notebooks' parameters cells from the table (after adding a parameter)")


def _params(args: argparse.Namespace) -> int:
    from mmakit.study import param_table, params

    if not args.write_cells:
        print(param_table.reference_markdown())
        return 0
    for name in params.sync_parameters_cells(write=True):
        print(f"rewrote the parameters cell of notebooks/{name}.ipynb")
    return 0


register("params", "every parameter: type, valid values, the notebooks that take it, what it does (Markdown)",
         _configure_params, _params)


def _configure_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("notebooks", nargs="*", help="executed notebooks (default: every one in outputs/notebooks)")
    p.add_argument("--out", default=None, help="folder for the HTML pages (default outputs/html)")
    p.add_argument("--profile", default="quick", help="whose records RESULTS.md and README show (default quick)")
    p.add_argument("--results-dir", default=None, help="where the records are (default MMAKIT_RESULTS_DIR or outputs/results)")
    p.add_argument("--data-dir", default=None, help="CoNLL data for bootstrap intervals from stored predictions "
                                                     "(default each record's, else MMAKIT_DATA_DIR)")
    p.add_argument("--results-md", default=None, help="where RESULTS.md goes (default outputs/RESULTS.md)")
    p.add_argument("--readme", action="store_true", help="also rewrite README.md's headline block from the records")


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mmakit.core.paths import REPO, atomic_path
    from mmakit.report import html, results
    from mmakit.report.bootstrap import Bootstrap
    from mmakit.study.records import read_records
    from mmakit.study.runner import EXECUTED_DIR
    from mmakit.study.text_speed import text_records

    pages, skipped = html.render_all([Path(p) for p in args.notebooks] or sorted(EXECUTED_DIR.glob("*.ipynb")), args.out)
    print(f"{len(pages)} pages and index.html in {Path(args.out or html.HTML_DIR)}")
    for path in skipped:
        print(f"skipped {path}: papermill is still writing it")
    records = [r for r in read_records(args.results_dir) if r["profile"] == args.profile]
    if not records:
        print(f"error: no records of the {args.profile} profile", file=sys.stderr)
        return 1
    bootstrap = Bootstrap(args.results_dir, args.data_dir)
    target = Path(args.results_md or REPO / "outputs" / "RESULTS.md")
    with atomic_path(target) as tmp:
        benches = [r for r in text_records(args.results_dir) if r.get("profile") == args.profile]
        tmp.write_text(results.results_markdown(records, args.profile, bootstrap, benches))
    print(target)
    if args.readme:
        changed = results.update_readme(REPO / "README.md", results.readme_block(records, bootstrap))
        print(f"README.md headline {'rewritten' if changed else 'already current'}")
    return 0


register("report", "render executed notebooks to HTML (outputs/html) and write outputs/RESULTS.md from the records "
         "(--readme: README's headline block too)", _configure_report, _report)


def _add_study_folders(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results-dir", default=None, help="where the records are (default outputs/results)")
    p.add_argument("--cache-dir", default=None, help="the cache of checkpoints and graphs (default the run's)")
    p.add_argument("--data-dir", default=None, help="the CoNLL data folder (default the run's)")


def _configure_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a record: <notebook>/<run> (e.g. 06_combined/me5-small-obs80-q) or a run name that "
                              "only one notebook has")
    p.add_argument("--out", required=True, help="the folder to write: model.onnx, tokenizer files, labels.json, "
                                                "README.md (the model card) and card.json")
    p.add_argument("--license", default="other", help="the licence the model card names (default other)")
    p.add_argument("--no-verify", action="store_true",
                   help="do not score the rebuilt graph on the run's evaluation sets against the record's F1")
    p.add_argument("--force", action="store_true", help="replace --out when it exists and is not empty")
    _add_study_folders(p)


def _export(args: argparse.Namespace) -> int:
    from mmakit.study.export_model import export
    from mmakit.study.rebuild import RecordError

    try:
        out, card = export(args.run, args.out, args.results_dir, args.cache_dir, args.data_dir, args.license,
                           verify=not args.no_verify, force=args.force)
    except (RecordError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    check = card["verification"]
    if check and not check["matches"]:
        print(f"warning: the rebuilt graph's F1 differs from the record's by up to {check['max_abs_diff']:.3g} "
              f"(see README.md, Provenance)", file=sys.stderr)
    for lang, splits in card["quality"]["f1"].items():
        print(f"F1 {lang}: " + ", ".join(f"{split} {q['f1']:.3f}" for split, q in splits.items()))
    print(f"model folder: {out}")
    return 0


def _configure_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", nargs="?", default="-",
                   help="raw text (one sentence a line) or CoNLL (a word per line, first column, blank line between "
                        "sentences); - or nothing: standard input")
    p.add_argument("--model", required=True, help="a model folder written by `python -m mmakit export`")
    p.add_argument("--runtime", default="onnxruntime", help="onnxruntime (default) or deepsparse")
    p.add_argument("--format", default="conll",
                   help="conll: `word tag` lines, a blank line after each sentence (default); json: one object per "
                        "sentence with its tags and entity spans")
    p.add_argument("--input-format", default="auto", help="auto (default: detected), text or conll")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch, batched by length (default 32)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default all cores)")


def _read_input(name: str) -> str:
    """The text of file `name`, or of standard input for "-"."""
    from pathlib import Path

    if name == "-":
        return sys.stdin.read()
    return Path(name).read_text(encoding="utf-8", errors="replace")


def _tag(args: argparse.Namespace) -> int:
    from mmakit.core.text import read_sentences
    from mmakit.runtime.tagger import OUTPUT_FORMATS, Tagger, render

    if args.format not in OUTPUT_FORMATS:
        print(f"error: unknown output format {args.format!r}; choose from {', '.join(OUTPUT_FORMATS)}", file=sys.stderr)
        return 2
    try:
        text = _read_input(args.input)
        sentences = read_sentences(text, args.input_format)
        if not sentences:
            where = "standard input" if args.input == "-" else args.input
            raise ValueError(f"empty input: {where} has no words to tag")
        with Tagger(args.model, args.runtime, args.batch_size, threads=args.threads) as tagger:
            tags = tagger.tag([s.words for s in sentences])
    except (OSError, ValueError, RuntimeError) as exc:  # a bad model folder, runtime or input; deepsparse failing
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sys.stdout.writelines(render(sentences, tags, args.format))
    return 0


def _configure_bench_text(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="records (<notebook>/<run> or a unique run name); the dense fp32 baseline "
                                           "of the first is timed with them as the reference")
    p.add_argument("--runtimes", default="onnxruntime,deepsparse", help="comma-separated (default both)")
    p.add_argument("--batch", default="32", help="comma-separated batch sizes (default 32)")
    p.add_argument("--bucket", type=int, default=16, help="batches are padded to a multiple of this many sub-tokens "
                                                          "(default 16)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    p.add_argument("--seconds", type=float, default=0.0,
                   help="timed seconds per model x runtime x set x round, at least one pass (default 0: one pass)")
    p.add_argument("--max-sentences", type=int, default=None,
                   help="sentences per language (default the run's max_eval_samples: every one on the quick profile)")
    p.add_argument("--split", default="test", help="dev or test (default test)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default all cores)")
    p.add_argument("--name", default=None, help="the record's name (default text-<run>+<run>...)")
    _add_study_folders(p)


def _bench_text(args: argparse.Namespace) -> int:
    import json

    from mmakit.report.text_speed import text_speed_table
    from mmakit.runtime.text_bench import TextBenchConfig
    from mmakit.study.rebuild import RecordError
    from mmakit.study.text_speed import bench_text

    runtimes = _runtimes(args.runtimes)
    if runtimes is None:
        return 2
    config = TextBenchConfig(runtimes=runtimes, batches=tuple(int(b) for b in args.batch.split(",")),
                             bucket=args.bucket, rounds=args.rounds, seconds=args.seconds, threads=args.threads)
    try:
        rows, path = bench_text(args.runs, config, args.max_sentences, args.split, args.results_dir, args.cache_dir,
                                args.data_dir, args.name)
    except (RecordError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(text_speed_table(json.loads(path.read_text())).to_string())
    print(f"record: {path}")
    return 0 if any(r["status"] == "ok" for r in rows) else 1


register("export", "rebuild a run's deployed graph and write it with its tokenizer, labels and a model card to a "
         "folder", _configure_export, _export)
register("tag", "tag raw text or CoNLL input with an exported model folder; prints CoNLL columns or JSON entity spans",
         _configure_tag, _tag)
register("bench-text", "sentences/s and words/s of runs' models on the real test sets, batched by length, in both "
         "runtimes beside the dense fp32 baseline; prints a table, writes a record under bench/",
         _configure_bench_text, _bench_text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmakit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _, help_text) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)
