"""The ``mlptl`` command: parse arguments, call the same functions a study script calls.

One module per command group (data, train, evaluate, studies, export), each with an ``add_commands``
that registers its subcommands; handlers import lazily, so ``mlptl --help`` does not pay for importing
torch, ase or Ray. Errors follow one contract (:func:`mlptl.cli._common.run_with_errors`).
"""

from __future__ import annotations

import argparse

from mlptl.cli import data, evaluate, export, studies, train
from mlptl.cli._common import run_with_errors

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlptl", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    for group in (data, train, evaluate, studies, export):
        group.add_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_with_errors(args.func, args)
