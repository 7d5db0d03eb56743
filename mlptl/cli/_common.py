"""What every command shares: logging, the one-line error contract, store arguments and JSON output."""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from mlptl.errors import InputError, StudyFailed
from mlptl.study.spec import DEFAULT_STORAGE

__all__ = ["print_json", "run_with_errors", "add_store_arguments", "tracking_uri", "DEFAULT_STORAGE"]


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def add_store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=DEFAULT_STORAGE, help=f"the study store directory (default: ./{DEFAULT_STORAGE})")
    p.add_argument("--tracking-uri", help="an MLflow tracking URI (default: sqlite in the storage dir)")


def tracking_uri(args: argparse.Namespace) -> str:
    from mlptl.tracking import resolve_tracking_uri

    return resolve_tracking_uri(Path(args.storage).resolve(), args.tracking_uri)


def run_with_errors(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Logging set up, then ``func(args)``.

    Bad input is one line on stderr and exit code 2; a study that produced nothing to report is one line
    and exit code 1; an interrupt is exit 130 (SIGINT) or 143 (SIGTERM), the shell's convention.
    """
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from mlptl.errors import Interrupted
    from mlptl.study.signals import exit_on_next_signal

    # Registered before Ray's, so it runs after Ray's shutdown at exit (atexit runs last-in first-out;
    # logging's flush still follows): the interpreter's final garbage collections then skip the heap torch,
    # MLflow and pandas built (2 s of a study driver's exit; bench/README.md, "Driver start-up and exit").
    # Objects freed by reference counting still are; only cycles are left to the process's end, and mlptl
    # writes every file atomically and closes it.
    atexit.register(gc.freeze)
    try:
        return int(func(args) or 0)
    except InputError as e:
        print(f"mlptl: error: {e}", file=sys.stderr)
        return 2
    except StudyFailed as e:
        print(f"mlptl: study failed: {e}", file=sys.stderr)
        return 1
    except Interrupted as e:
        exit_on_next_signal()
        print(f"mlptl: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        exit_on_next_signal()
        print("mlptl: interrupted", file=sys.stderr)
        return 130
