"""Stores and servers checked before a study launches (issue 23): a wrong or dead tracking server, a damaged
``optuna.db``/``mlflow.db``, a storage directory that cannot be written and a store from a newer mlptl are
each one line on stderr and exit 2, in seconds, with the damaged file left as it was."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from _studies import STUDY_SOURCE

from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.study import stores
from mlptl.study.stores import STORE_FILE, STORE_FORMAT, check_stores

CLI_LIMIT_S = 15.0


def _real_stores(storage: Path) -> None:
    """An MLflow and an Optuna store as the libraries write them."""
    import optuna

    storage.mkdir(parents=True, exist_ok=True)
    T.client(T.default_tracking_uri(storage)).create_experiment("x")
    optuna.create_study(storage=f"sqlite:///{storage / 'optuna.db'}", study_name="x/scratch-n4")


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("real") / "store"
    _real_stores(store)
    return store


def _copy(store: Path, dest: Path) -> Path:
    import shutil

    shutil.copytree(store, dest)
    return dest


# ---------------------------------------------------------------- the storage directory and its databases
def test_a_new_store_and_a_real_one_pass_and_get_their_format(tmp_path, real_store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    check_stores(tmp_path / "new" / "store", None, resume=False)
    info = json.loads((tmp_path / "new" / "store" / STORE_FILE).read_text())
    assert info["format"] == STORE_FORMAT and info["written_by"].startswith("mlptl ")
    store = _copy(real_store, tmp_path / "store")
    t0 = time.monotonic()
    check_stores(store, None, resume=True)
    assert time.monotonic() - t0 < 5
    assert (store / STORE_FILE).is_file()


@pytest.mark.parametrize("db", ["optuna.db", "mlflow.db"])
@pytest.mark.parametrize("damage", ["garbage", "torn page"])
def test_a_damaged_database_is_refused_naming_it(tmp_path, real_store, monkeypatch, db, damage):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = _copy(real_store, tmp_path / "store")
    if damage == "garbage":
        (store / db).write_bytes(b"garbage")
    else:  # a valid header, then a page of noise: what a torn write or a bad disk block leaves
        data = bytearray((store / db).read_bytes())
        page = int.from_bytes(data[16:18], "big") or 65536
        assert len(data) >= 3 * page
        data[page: 2 * page] = os.urandom(page)
        (store / db).write_bytes(bytes(data))
    before = (store / db).read_bytes()
    with pytest.raises(InputError, match=rf"{db}: the (Optuna|MLflow) store is damaged.*restore it from a backup.*--storage"):
        check_stores(store, None, resume=True)
    assert (store / db).read_bytes() == before, "the check must not touch a damaged store"


def test_another_programs_database_is_not_taken_for_a_store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (tmp_path / "store").mkdir()
    con = sqlite3.connect(tmp_path / "store" / "optuna.db")
    con.execute("create table notes (x)")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="not an Optuna store"):
        check_stores(tmp_path / "store", None, resume=False)


def test_a_schema_of_another_library_version_is_refused_with_what_to_do(tmp_path, real_store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    store = _copy(real_store, tmp_path / "store")

    def set_revision(db: str, rev: str) -> None:
        con = sqlite3.connect(store / db)
        con.execute("update alembic_version set version_num = ?", (rev,))
        con.commit()
        con.close()

    set_revision("mlflow.db", "ffffffffffff")
    with pytest.raises(InputError, match=r"mlflow.db: the MLflow store was written by a newer MLflow"):
        check_stores(store, None, resume=True)
    set_revision("mlflow.db", "451aebb31d03")  # MLflow 1.x: the first migration
    with pytest.raises(InputError, match=r"older schema .*`mlflow db upgrade sqlite:///"):
        check_stores(store, None, resume=True)


@pytest.mark.parametrize("what", ["MLflow", "Optuna"])
def test_the_quick_head_check_agrees_with_alembic_on_every_revision(what):
    """The schema check reads the migration scripts as text to spare Alembic's import of each one: it must
    find exactly Alembic's heads (a revision it wrongly took for one would pass an outdated store)."""
    from alembic.script import ScriptDirectory

    from mlptl.study.stores import _is_head, _migrations_folder

    folder = _migrations_folder(what)
    script = ScriptDirectory(str(folder))
    known = {r.revision for r in script.walk_revisions()}
    assert len(known) > 1
    assert {r for r in known if _is_head(folder, r)} == set(script.get_heads())
    assert not _is_head(folder, "ffffffffffff")


def test_a_storage_that_cannot_be_written_is_refused(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match=r"file/store: the storage directory cannot be written \(Not a directory\)"):
        check_stores(tmp_path / "file" / "store", None, resume=False)

    def denied(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(stores.tempfile, "mkstemp", denied)  # root ignores chmod: fake the refusal
    with pytest.raises(InputError, match=r"cannot be written \(Permission denied\)"):
        check_stores(tmp_path / "store", None, resume=False)


def test_a_store_from_a_newer_mlptl_is_refused(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    (store / STORE_FILE).write_text(json.dumps({"format": STORE_FORMAT + 1, "written_by": "mlptl 9.9"}))
    with pytest.raises(InputError, match=rf"format {STORE_FORMAT + 1}, written by mlptl 9.9.*use that mlptl version"):
        check_stores(store, "http://127.0.0.1:9", resume=True)  # refused before any server is asked
    (store / STORE_FILE).write_text("{")
    with pytest.raises(InputError, match="unreadable store description"):
        check_stores(store, None, resume=False)


# ---------------------------------------------------------------- tracking servers
class _Server:
    """A local HTTP server answering every GET with one canned response."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/json"):
        seen = self.paths = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def make(*a, **k):
        made.append(_Server(*a, **k))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_a_tracking_server_that_is_not_there_is_refused_at_once(tmp_path):
    t0 = time.monotonic()
    with pytest.raises(InputError, match=r"server at http://127.0.0.1:9/ does not answer \(Connection refused\): start it"):
        check_stores(tmp_path / "store", "http://127.0.0.1:9/", resume=False)
    assert time.monotonic() - t0 < 3


def test_a_tracking_server_that_hangs_is_refused_after_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(stores, "TIMEOUT_S", 1.0)
    with socket.socket() as s:  # accepts connections (the backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        t0 = time.monotonic()
        with pytest.raises(InputError, match=r"(did not answer within 1 s|does not answer \(timed out\))"):
            check_stores(tmp_path / "store", f"http://127.0.0.1:{s.getsockname()[1]}", resume=False)
        assert time.monotonic() - t0 < 4


def test_a_server_that_is_not_mlflow_is_named_as_such(tmp_path, server):
    web = server(404, b"<html><h1>Not Found</h1></html>", "text/html")
    with pytest.raises(InputError, match=r"answers, but not as an MLflow tracking server \(HTTP 404 .*Not Found"):
        check_stores(tmp_path / "store", web.url, resume=False)


def test_an_mlflow_server_passes_and_gets_the_users_credentials(tmp_path, server, monkeypatch):
    ok = server(404, b'{"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no experiment Default"}')
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ana")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "s3cret")
    check_stores(tmp_path / "store", ok.url + "/", resume=False)
    (path, auth), = ok.paths
    assert path.startswith("/api/2.0/mlflow/experiments/get-by-name") and auth.startswith("Basic ")
    denied = server(401, b"You are not authenticated.", "text/plain")
    with pytest.raises(InputError, match=r"refused the request \(HTTP 401\): set MLFLOW_TRACKING_USERNAME"):
        check_stores(tmp_path / "store", denied.url, resume=False)
    broken = server(500, b'{"error_code": "INTERNAL_ERROR", "message": "database disk image is malformed"}')
    with pytest.raises(InputError, match=r"fails \(HTTP 500: database disk image is malformed\)"):
        check_stores(tmp_path / "store", broken.url, resume=False)


def test_a_database_server_that_is_not_there_is_refused_without_its_password(tmp_path):
    with pytest.raises(InputError, match=r"127.0.0.1:9 \(postgresql://mlflow:\*\*\*@127.0.0.1:9/mlflow\) does not accept") as e:
        check_stores(tmp_path / "store", "postgresql://mlflow:hunter2@127.0.0.1:9/mlflow", resume=False)
    assert "hunter2" not in str(e.value)


# ---------------------------------------------------------------- the command line
def _study_file(tmp_path: Path) -> Path:
    src = STUDY_SOURCE.format(name="ok", search="SearchSpace(lr=(1e-3, 1e-2))", trials=1, epochs=1,
                              storage=str(tmp_path / "unused-store"))
    f = tmp_path / "ok.py"
    f.write_text(src)
    return f


def _mlptl(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    t0 = time.monotonic()
    # Its own process group: if the check regresses, a timed-out run is killed with whatever it started.
    proc = subprocess.Popen([sys.executable, "-m", "mlptl.cli", *args], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=4 * CLI_LIMIT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    r = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    return r, time.monotonic() - t0


def _assert_one_line(r: subprocess.CompletedProcess, seconds: float, *needles: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr[-3000:])
    assert lines[0].startswith("mlptl: error: ") and all(n in lines[0] for n in needles), lines[0]
    assert seconds < CLI_LIMIT_S, f"{seconds:.1f} s"


def test_cli_run_with_a_dead_tracking_server_is_one_line(tmp_path):
    f = _study_file(tmp_path)
    r, seconds = _mlptl(tmp_path, "run", str(f), "--tracking-uri", "http://127.0.0.1:9/")
    _assert_one_line(r, seconds, "http://127.0.0.1:9/", "does not answer", "--tracking-uri")
    assert not (tmp_path / "unused-store" / "optuna.db").exists()


@pytest.mark.parametrize("db", ["optuna.db", "mlflow.db"])
def test_cli_resume_with_a_garbage_database_is_one_line_and_keeps_it(tmp_path, db):
    f = _study_file(tmp_path)
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / db).write_bytes(b"garbage")
    r, seconds = _mlptl(tmp_path, "run", str(f), "--storage", "st", "--resume")
    _assert_one_line(r, seconds, db, "damaged", "--storage")
    assert (tmp_path / "st" / db).read_bytes() == b"garbage"
    assert sorted(p.name for p in (tmp_path / "st").iterdir()) == sorted([db, STORE_FILE])


def test_cli_run_with_a_negative_stability_temperature_is_one_line_before_anything_starts(tmp_path):
    """Every study field is checked when the study is built: the bad temperature never reaches Ray."""
    f = _study_file(tmp_path)
    f.write_text(f.read_text().replace("stability_temperatures=(300.0,)", "stability_temperatures=(-300.0,)"))
    assert "(-300.0,)" in f.read_text()
    r, seconds = _mlptl(tmp_path, "run", str(f))
    _assert_one_line(r, seconds, "study field evaluation", "temperatures must be positive", "-300")
    assert not (tmp_path / "unused-store").exists()


def test_cli_run_with_a_bad_outage_bound_in_the_environment_is_one_line(tmp_path, monkeypatch):
    """The tracking layer's outage bound comes from the environment: a value that is not a positive number
    of seconds is bad input found before launch, not a fault mid-study."""
    f = _study_file(tmp_path)
    for bad in ("ten", "-5", "inf"):
        monkeypatch.setenv(T.OUTAGE_ENV, bad)
        r, seconds = _mlptl(tmp_path, "run", str(f))
        _assert_one_line(r, seconds, T.OUTAGE_ENV, "positive number of seconds", repr(bad))
        assert not (tmp_path / "unused-store" / "optuna.db").exists()
    monkeypatch.setenv(T.OUTAGE_ENV, "42.5")
    assert T.outage_limit_s() == 42.5
    monkeypatch.delenv(T.OUTAGE_ENV)
    assert T.outage_limit_s() == T.OUTAGE_LIMIT_S
