"""The ``mlptl`` command: parse arguments, call the same functions a study script calls.

Each command group has one ``_add_*`` function that registers its subcommands. An
:class:`~mlptl.errors.InputError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mlptl.errors import InputError

log = logging.getLogger("mlptl")


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# ---------------------------------------------------------------- data
def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    pass


# ---------------------------------------------------------------- train
def _add_train_commands(sub: argparse._SubParsersAction) -> None:
    pass


# ---------------------------------------------------------------- evaluate
def _add_evaluate_commands(sub: argparse._SubParsersAction) -> None:
    pass


# ---------------------------------------------------------------- studies
def _add_study_commands(sub: argparse._SubParsersAction) -> None:
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlptl", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_train_commands(sub)
    _add_evaluate_commands(sub)
    _add_study_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc = args.func(args)
    except InputError as e:
        print(f"mlptl: error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
