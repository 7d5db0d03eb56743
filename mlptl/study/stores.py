"""The stores a study writes to, checked in seconds before anything starts.

A study writes to its storage directory (the Optuna studies in ``optuna.db``, by default the MLflow store
``mlflow.db`` + ``artifacts/``, trial directories, Ray Tune's results) and to its tracking store (that
sqlite file, or a tracking server). Each fault found here is an :class:`~mlptl.errors.InputError`: one
line that names the store and what to do, before Ray starts, instead of minutes of retries and a
traceback from deep inside MLflow or Optuna:

- a storage directory that cannot be created or written;
- a store written by a newer mlptl (``mlptl-store.json`` records the store's format; older mlptl wrote
  none, and a store without one gets one);
- ``optuna.db`` or ``mlflow.db`` that is not a sqlite database or fails SQLite's ``quick_check``, that is
  another program's database, or whose schema belongs to another Optuna or MLflow version;
- a tracking server that does not answer within seconds, refuses the credentials, or is not MLflow; a
  database server (``postgresql://...``) whose port does not accept a connection.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import sqlite3
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.fsutil import atomic_write_text
from mlptl.study.sections import StoreLayout

log = logging.getLogger(__name__)

__all__ = ["check_stores", "STORE_FILE", "STORE_FORMAT", "TIMEOUT_S"]

STORE_FILE = "mlptl-store.json"
#: The layout of a storage directory. Raise it when a change makes a store unreadable to an older mlptl.
STORE_FORMAT = 1
#: Seconds a server gets to answer one request of the check.
TIMEOUT_S = 5.0
#: SQLite's quick_check reads every page (under a read lock that running studies' writers wait for); above
#: this size only the schema is read.
QUICK_CHECK_MAX_BYTES = 256 << 20
_DB_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mssql": 1433}


def check_stores(storage_dir: Path, tracking_uri: str | None, *, resume: bool) -> None:
    """Raise :class:`InputError` unless the study's stores can be used: see the module's docstring.

    ``tracking_uri`` is the study's (None: ``MLFLOW_TRACKING_URI``, else ``mlflow.db`` in the storage).
    Creates the storage directory and its ``mlptl-store.json`` when missing; writes nothing else.
    """
    storage = Path(storage_dir)
    T.outage_limit_s()  # a bad bound in the environment is bad input, not a fault found mid-study
    _check_writable(storage)
    _check_format(storage)
    advice = "restore it from a backup" + (" (the study to resume is in it)" if resume else "")
    _check_sqlite(StoreLayout(storage).optuna_db, "Optuna", {"studies", "version_info"}, advice)
    uri = T.resolve_tracking_uri(storage.resolve(), tracking_uri)
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if path is not None and str(path) not in ("", ":memory:"):
            _check_sqlite(path, "MLflow", {"experiments", "runs"}, advice)
    elif scheme in ("http", "https"):
        _check_server(uri)
    elif scheme.split("+")[0] in _DB_PORTS:
        _check_port(uri, _DB_PORTS[scheme.split("+")[0]])


# ---------------------------------------------------------------- the storage directory
def _check_writable(storage: Path) -> None:
    try:
        storage.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".mlptl-write-check-", dir=storage)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise InputError(
            f"the storage directory cannot be written ({e.strerror or e}): make it a writable directory or choose "
            "another --storage", path=storage,
        ) from None


def _mlptl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlptl")
    except PackageNotFoundError:
        return "unknown"


def _check_format(storage: Path) -> None:
    marker = storage / STORE_FILE
    try:
        info = json.loads(marker.read_text())
        fmt = int(info["format"])
    except FileNotFoundError:
        atomic_write_text(marker, json.dumps({"format": STORE_FORMAT, "written_by": f"mlptl {_mlptl_version()}"}) + "\n")
        return
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(
            f"unreadable store description ({type(e).__name__}: {e}); if this is an mlptl store, delete the "
            f"file and mlptl writes it again", path=marker,
        ) from None
    if fmt > STORE_FORMAT:
        raise InputError(
            f"this store has format {fmt}, written by {info.get('written_by', 'a newer mlptl')}; this mlptl "
            f"({_mlptl_version()}) reads format {STORE_FORMAT} at most: use that mlptl version or choose "
            "another --storage", path=storage,
        )


# ---------------------------------------------------------------- sqlite stores (Optuna, MLflow)
def _check_sqlite(path: Path, what: str, tables_expected: set[str], advice: str) -> None:
    if not path.exists():
        return  # a new store: the library creates it
    damaged = f"the {what} store is damaged"
    todo = f"{advice}, or choose another --storage"
    if not path.is_file():
        raise InputError(f"the {what} store is not a file: {todo}", path=path)
    if not os.access(path, os.R_OK | os.W_OK):
        raise InputError(f"the {what} store cannot be read and written (permissions): fix them or choose "
                         "another --storage", path=path)
    try:
        # Read-write, as the library will open it: a journal left by a killed writer is rolled back, not
        # mistaken for damage. mode=rw never creates the file.
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
        try:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            check = "ok"
            if path.stat().st_size <= QUICK_CHECK_MAX_BYTES:
                check = con.execute("PRAGMA quick_check(1)").fetchone()[0]
            version = con.execute("SELECT version_num FROM alembic_version").fetchone() if "alembic_version" in tables else None
        finally:
            con.close()
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            log.warning("%s: the %s store is locked by another process; not checked (%s)", path, what, e)
            return
        raise InputError(f"{damaged} ({e}): {todo}", path=path) from None
    except sqlite3.DatabaseError as e:
        raise InputError(f"{damaged}: not a readable SQLite database ({e}): {todo}", path=path) from None
    if check != "ok":
        raise InputError(f"{damaged}: SQLite's integrity check says {check!r}: {todo}", path=path)
    if tables and not tables_expected & tables:
        raise InputError(f"this SQLite database is not an {what} store (no {' or '.join(sorted(tables_expected))} "
                         "table): choose another --storage or --tracking-uri", path=path)
    if version is not None:
        _check_schema(path, what, version[0])


def _migrations_folder(what: str) -> Path | None:
    """The library's Alembic folder (both libraries ship their migration scripts in the wheel)."""
    if what == "MLflow":
        import mlflow.store

        folder = Path(mlflow.store.__file__).parent / "db_migrations"
    else:
        import optuna.storages

        folder = Path(optuna.storages.__file__).parent / "_rdb" / "alembic"
    return folder if (folder / "versions").is_dir() else None


def _is_head(folder: Path, revision: str) -> bool:
    """Whether ``revision`` is surely a head of the scripts in ``folder``: one script defines it and no other
    names it (a child names its parent as ``down_revision``). Read as text, because Alembic imports every
    script to answer and MLflow does so again when it opens the store (bench/README.md, "The schema check
    of a resumed store"); only this common case is answered here, anything else goes to Alembic."""
    texts = (f.read_text(errors="replace") for f in (folder / "versions").glob("*.py"))
    named = [t for t in texts if revision in t]
    defines = re.compile(rf"^revision\b[^=\n]*=\s*['\"]{re.escape(revision)}['\"]", re.M)
    return len(named) == 1 and bool(defines.search(named[0]))


def _library_version(what: str) -> str:
    import importlib

    return getattr(importlib.import_module(what.lower()), "__version__", "?")


def _check_schema(path: Path, what: str, revision: str) -> None:
    """The database's schema revision against the installed library's: both refuse any other."""
    try:
        folder = _migrations_folder(what)
        if folder is None or _is_head(folder, revision):
            return
        from alembic.script import ScriptDirectory

        script = ScriptDirectory(str(folder))
        heads = set(script.get_heads())
        known = {r.revision for r in script.walk_revisions()}
    except Exception as e:  # the check is a courtesy; the library still checks for itself
        log.debug("could not read the %s migrations: %s", what, e)
        return
    if revision in heads:
        return
    installed = f"{what} {_library_version(what)}"
    if revision in known:
        command = (f"mlflow db upgrade sqlite:///{path}" if what == "MLflow"
                   else f"optuna storage upgrade --storage sqlite:///{path}")
        raise InputError(f"the {what} store has an older schema ({revision}) than {installed} uses: back it up, "
                         f"then upgrade it with `{command}`", path=path)
    raise InputError(f"the {what} store was written by a newer {what} (schema {revision}, unknown to "
                     f"{installed}): use the {what} (and mlptl) that wrote it, or choose another --storage", path=path)


# ---------------------------------------------------------------- servers
def _shown(uri: str) -> str:
    """A URI without its password, for messages."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()


def _auth_headers() -> dict[str, str]:
    """The credentials MLflow's client sends, from the same environment variables."""
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    token = os.environ.get("MLFLOW_TRACKING_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _check_server(uri: str) -> None:
    """One GET of an MLflow API endpoint (get-by-name answers on every MLflow server, with auth too)."""
    url = uri.rstrip("/") + "/api/2.0/mlflow/experiments/get-by-name?experiment_name=Default"
    todo = "start it, or fix --tracking-uri (or MLFLOW_TRACKING_URI)"
    request = urllib.request.Request(url, headers={"Accept": "application/json", **_auth_headers()})
    status, body = None, b""
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as r:  # noqa: S310 (http(s) only, checked)
            status, body = r.status, r.read(65536)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read(65536)
    except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
        raise InputError(f"the MLflow tracking server at {_shown(uri)} does not answer ({reason}): {todo}") from None
    except TimeoutError:
        raise InputError(f"the MLflow tracking server at {_shown(uri)} did not answer within {TIMEOUT_S:.0f} s: "
                         f"{todo}") from None
    except (OSError, ValueError) as e:
        raise InputError(f"the MLflow tracking server at {_shown(uri)} cannot be reached ({e}): {todo}") from None
    if status in (401, 403):
        raise InputError(f"the MLflow tracking server at {_shown(uri)} refused the request (HTTP {status}): set "
                         "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD to an account on it")
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not ({"experiment", "error_code"} & answer.keys()):
        text = " ".join(body[:120].decode("utf-8", "replace").split())
        raise InputError(f"{_shown(uri)} answers, but not as an MLflow tracking server (HTTP {status} on "
                         f"{urlsplit(url).path}: {text!r}): fix --tracking-uri (or MLFLOW_TRACKING_URI)")
    if status >= 500:
        raise InputError(f"the MLflow tracking server at {_shown(uri)} fails (HTTP {status}: "
                         f"{answer.get('message', '')[:200]}): see its log")


def _check_port(uri: str, default_port: int) -> None:
    parts = urlsplit(uri)
    host, port = parts.hostname, parts.port or default_port
    if not host:
        return
    try:
        with socket.create_connection((host, port), timeout=TIMEOUT_S):
            pass
    except OSError as e:
        raise InputError(f"the tracking database server {host}:{port} ({_shown(uri)}) does not accept a connection "
                         f"({e.strerror or e}): start it, or fix --tracking-uri (or MLFLOW_TRACKING_URI)") from None
