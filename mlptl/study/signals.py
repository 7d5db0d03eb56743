"""SIGINT and SIGTERM mean stop: the first raises :class:`~mlptl.errors.Interrupted` in the driver, so the
runner can record the study as interrupted and exit 130/143; a second one ends the process at once.

Why not Python's default KeyboardInterrupt: Ray Tune catches the first SIGINT to save its own state and
then returns from ``fit()`` as if the search had ended, and SIGTERM (a scheduler's time limit) would kill
the driver without any bookkeeping. The stores stay consistent either way: Optuna and MLflow write in
sqlite transactions, and resume reconciles trials left running.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from mlptl.errors import Interrupted

log = logging.getLogger(__name__)

__all__ = ["stop_on_signals", "interrupted", "reinstall", "exit_on_next_signal", "held"]

# "held": store calls in progress (:func:`held`); "pending": a first signal that came during one
_state: dict[str, int | None] = {"signum": None, "active": 0, "held": 0, "pending": None}
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def interrupted() -> int | None:
    """The signal that interrupted this driver, if any (trial bookkeeping must not call that a failure)."""
    return _state["signum"]


def _exit_now(signum: int, frame) -> None:
    # Second signal: the user does not want to wait for the bookkeeping.
    os.write(2, b"mlptl: second interrupt, stopping now; finish with --resume\n")
    os._exit(128 + signum)


def _handler(signum: int, frame) -> None:
    if _state["signum"] is not None:
        _exit_now(signum, frame)
    _state["signum"] = signum
    log.warning("%s received: stopping the study (a second one stops at once)", signal.Signals(signum).name)
    if _state["held"]:
        _state["pending"] = signum  # raised as the store call in progress returns
        return
    raise Interrupted(signum)


@contextmanager
def held() -> Iterator[None]:
    """A store call in the driver finishes before a first signal raises, which then raises as it returns.

    Raised inside MLflow's sqlite write, the exception leaves that transaction open on a connection its
    traceback keeps alive, and the interruption's own bookkeeping then waits out sqlite's lock (20 s) and
    fails (a CI run, 2026-12-07). A second signal still ends the process at once.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["held"] += 1
    try:
        yield
    finally:
        _state["held"] -= 1
        if not _state["held"] and _state["pending"] is not None:
            signum, _state["pending"] = _state["pending"], None
            raise Interrupted(signum)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Install the handlers for the duration of a study (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in _SIGNALS}
    _state["signum"] = _state["pending"] = None
    _state["active"] = 1
    for s in old:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        _state["active"] = 0
        for s, h in old.items():
            signal.signal(s, h)


def reinstall() -> None:
    """Take SIGTERM back after ``ray.init``: Ray's C++ core installs a crash handler for it that aborts the
    driver (exit 134) without any bookkeeping."""
    if _state["active"] and threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, _handler)


def exit_on_next_signal() -> None:
    """For a process that exits because it was interrupted (the command line, not a library caller): a
    further SIGINT/SIGTERM, e.g. during Ray's shutdown at exit, which can take seconds after the study's
    own bookkeeping took milliseconds, ends it at once instead of raising inside an atexit hook."""
    if threading.current_thread() is threading.main_thread():
        for s in _SIGNALS:
            signal.signal(s, _exit_now)
