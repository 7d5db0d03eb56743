"""Errors that mean "the user's input is wrong", as opposed to bugs.

The command line turns an :class:`InputError` into one line on stderr and exit code 2; anything else
is a bug and keeps its traceback. Messages name the file (and frame or field) and say what to do.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input from the user: a file, a flag or a study field."""

    def __init__(self, message: str, *, path: str | Path | None = None, frame: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}"
            if frame is not None:
                where += f" (frame {frame})"
            where += ": "
        super().__init__(where + message)
        self.path = None if path is None else Path(path)
        self.frame = frame


class StudyFailed(RuntimeError):
    """A study ran but produced nothing to answer with (e.g. no trial finished): exit code 1, not a report."""


class Interrupted(KeyboardInterrupt):
    """The user or the scheduler stopped the run (SIGINT, SIGTERM); state is saved, ``--resume`` finishes it.

    A KeyboardInterrupt, because that is the one exception Ray's C++ core lets a signal handler raise
    through a blocking ``ray.get``/``ray.wait`` (any other becomes a SystemError there); Ray Tune's own
    SIGINT handler, which would swallow it, is disabled (``TUNE_DISABLE_SIGINT_HANDLER``).
    """

    def __init__(self, signum: int, message: str = ""):
        import signal

        self.signum = signum
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        super().__init__(message or f"interrupted by {name}")
