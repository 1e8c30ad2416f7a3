"""Command line of mmakit: `python -m mmakit <command>`.

Each command is a pair of functions, one adding its arguments and one running it, registered
in COMMANDS with `register`, so a new command is added in one place.
"""
from __future__ import annotations

import argparse
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
    p.add_argument("--out", default=None, help="folder for executed notebooks (default outputs/notebooks)")


def _run(args: argparse.Namespace) -> int:
    import yaml

    from .runner import NotebookFailed, run_notebooks

    overrides = {name: yaml.safe_load(value) for name, value in args.param}
    try:
        run_notebooks(args.profile, args.notebooks, overrides, args.out)
    except (NotebookFailed, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


register("run", "execute the notebooks with papermill, in order, stopping at the first failure", _configure_run, _run)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmakit", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, _, help_text) in COMMANDS.items():
        configure(sub.add_parser(name, help=help_text, description=help_text))
    args = parser.parse_args(argv)
    return COMMANDS[args.command][1](args)
