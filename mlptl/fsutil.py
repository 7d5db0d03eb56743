"""Files written so that a reader never sees half of one, and the one cache directory.

Several processes (Ray workers, a resumed driver, a second study) read what others write: every file
mlptl writes for another process to read goes through :func:`atomic_write` (a temporary file in the same
directory, then ``os.replace``, which POSIX makes atomic), and every cache lives under :func:`cache_dir`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "atomic_write_text", "atomic_copy", "cache_dir", "expand_path", "no_space", "CACHE_ENV",
           "fetch_shared", "share"]

log = logging.getLogger(__name__)

#: The one environment variable for caches: ``$MLPTL_CACHE/<kind>`` (default ``~/.cache/mlptl/<kind>``).
CACHE_ENV = "MLPTL_CACHE"


def no_space(e: BaseException | None) -> str | None:
    """Why ``e`` (or an exception it was raised from) means the disk or the quota is full, else None.

    A full disk is not a fault of what was being written: the study stops as interrupted, to be resumed
    once there is space, instead of recording failures that ``--resume`` would not redo.
    """
    import errno

    seen = 0
    while e is not None and seen < 16:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            where = f": {e.filename}" if e.filename else ""
            return f"{os.strerror(e.errno)}{where}"
        if "database or disk is full" in str(e):  # SQLite's SQLITE_FULL, through sqlite3 or SQLAlchemy
            return f"database or disk is full ({type(e).__name__})"
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


@contextlib.contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_write(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def atomic_copy(src: str | Path, dest: str | Path) -> Path:
    with atomic_write(dest) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dest)


def expand_path(path: str | Path) -> Path:
    """A path as a user wrote it, ``~`` and ``$VARS`` expanded: every path a spec or a flag names goes
    through here, so ``$SCRATCH/store`` means the same in every field."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))


def cache_dir(kind: str) -> Path:
    """Where cached ``kind`` (``data``, ``rdf``, ...) lives: ``$MLPTL_CACHE/<kind>`` or ``~/.cache/mlptl/<kind>``."""
    env = os.environ.get(CACHE_ENV)
    root = expand_path(env) if env else Path.home() / ".cache" / "mlptl"
    return root / kind


def _shared(path: Path, kind: str) -> Path | None:
    shared = cache_dir(kind) / path.name
    return None if shared.resolve() == path.resolve() else shared


def fetch_shared(path: str | Path, kind: str) -> bool:
    """Whether ``path``, a file of a store's own cache named by its spec's hash, exists, after copying it
    from the user cache of ``kind`` if only that has it. Stores hold what their studies used, and the user
    cache lets a second store (a new study, a test) reuse what the first one made."""
    path = Path(path)
    if path.is_file():
        return True
    shared = _shared(path, kind)
    if shared is None or not shared.is_file():
        return False
    atomic_copy(shared, path)
    return True


def share(path: str | Path, kind: str) -> None:
    """Copy ``path``, just made in a store's cache, into the user cache of ``kind``; a user cache that cannot
    be written (read-only, full) costs only the sharing."""
    path = Path(path)
    shared = _shared(path, kind)
    if shared is None or shared.is_file():
        return
    try:
        atomic_copy(path, shared)
    except OSError as e:
        log.warning("cannot share %s in the cache %s: %s", path.name, shared.parent, e)
