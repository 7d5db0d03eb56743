"""`mlptl ui` never leaves the MLflow server behind: stopped by SIGINT, by SIGTERM, or by the death of
whatever started it (a wrapper shell killed with SIGKILL, the way a supervisor or a closed terminal goes).

Every process of the UI's tree inherits a unique environment variable; after each stop the test scans
/proc for it, so a server process that the test never saw (a worker started late) is found as well.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

START_TIMEOUT = 300  # three UIs import MLflow in five processes each at once: slow on a loaded 2-core machine
STOP_TIMEOUT = 60

UI_SCRIPT = (
    "import logging, sys; logging.basicConfig(level=logging.INFO); "
    "from mlptl.cli.ui import run_ui; sys.exit(run_ui(sys.argv[1], '127.0.0.1', int(sys.argv[2])))"
)


def _alive_with(token: str) -> list[int]:
    """Processes (not zombies) whose environment carries ``token``."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if f"MLPTL_UI_TEST={token}".encode() not in (d / "environ").read_bytes().split(b"\0"):
                continue
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # gone meanwhile, or not ours to read
        if state not in ("Z", "X"):
            found.append(int(d.name))
    return found


def _kill_all(token: str) -> None:
    for pid in _alive_with(token):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _wait_until_served(url: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the UI exited with {proc.returncode} before serving:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"the UI did not serve {url} within {START_TIMEOUT} s:\n{log.read_text()[-3000:]}")


def _settled_tree(token: str, minimum: int) -> list[int]:
    """The UI's processes once their number stopped changing (uvicorn starts its workers one by one)."""
    last: list[int] = []
    stable_since = time.monotonic()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        now = sorted(_alive_with(token))
        if now != last:
            last, stable_since = now, time.monotonic()
        elif len(now) >= minimum and time.monotonic() - stable_since > 3:
            return now
        time.sleep(0.5)
    pytest.fail(f"the UI's process tree did not settle: {last}")


def _wait_gone(token: str) -> list[int]:
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline:
        left = _alive_with(token)
        if not left:
            return []
        time.sleep(0.5)
    return _alive_with(token)


def _cmdlines(pids: list[int]) -> str:
    out = []
    for pid in pids:
        try:
            out.append(f"{pid}: " + Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160])
        except OSError:
            pass
    return "\n".join(out)


HOWS = ["SIGINT", "SIGTERM", "parent SIGKILL"]


def _free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (the sockets are held until all are picked)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def started_uis(tmp_path_factory):
    """One UI per case, all started at once: each start imports MLflow in five processes, mostly on one core
    at a time, so three side by side take little longer than one. Each case then stops its own."""
    uis = {}
    for how, port in zip(HOWS, _free_ports(len(HOWS))):
        tmp = tmp_path_factory.mktemp("ui")
        token = uuid.uuid4().hex
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        log = tmp / "ui.log"
        env = {**os.environ, "MLPTL_UI_TEST": token}
        ui_cmd = [sys.executable, "-c", UI_SCRIPT, uri, str(port)]
        if how == "parent SIGKILL":
            # `; exit $?` keeps bash alive as the UI's parent instead of exec'ing python.
            proc = subprocess.Popen(
                ["bash", "-c", '"$@"; exit $?', "wrapper", *ui_cmd], env=env, stdout=log.open("w"),
                stderr=subprocess.STDOUT,
            )
        else:
            proc = subprocess.Popen(ui_cmd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        uis[how] = (proc, token, port, log)
    try:
        yield uis
    finally:
        for proc, token, _, _ in uis.values():
            _kill_all(token)
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow  # about a minute on 2 shared cores for the three: the UI imports MLflow in five processes
@pytest.mark.parametrize("how", HOWS)
def test_ui_stops_its_whole_tree(started_uis, how):
    proc, token, port, log = started_uis[how]
    try:
        _wait_until_served(f"http://127.0.0.1:{port}", proc, log)
        # run_ui, the mlflow command, uvicorn's master and at least one worker (plus bash for the wrapper)
        tree = _settled_tree(token, minimum=4 + (how == "parent SIGKILL"))
        if how == "parent SIGKILL":
            wrapper = proc
            ui_pid = next(p for p in tree if p != wrapper.pid and Path(f"/proc/{p}/stat").read_text().split()[3] == str(wrapper.pid))
            wrapper.send_signal(signal.SIGKILL)
            wrapper.wait(timeout=10)
        else:
            ui_pid = proc.pid
            proc.send_signal(getattr(signal, how))  # to run_ui alone, not to its process group
            assert proc.wait(timeout=STOP_TIMEOUT) == 128 + getattr(signal, how)
        left = _wait_gone(token)
        assert not left, f"survived {how}:\n{_cmdlines(left)}\n--- log:\n{log.read_text()[-3000:]}"
        assert ui_pid in tree
        with socket.socket() as s:  # nothing listens on the port any more (TIME_WAIT of our requests aside)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        assert "stopping the MLflow UI" in log.read_text() or how == "parent SIGKILL"
    finally:
        _kill_all(token)
        if proc.poll() is None:
            proc.kill()


def test_ui_binds_loopback_unless_told_otherwise():
    from mlptl.cli import build_parser

    assert build_parser().parse_args(["ui"]).host == "127.0.0.1"
    assert build_parser().parse_args(["ui", "--host", "10.0.0.5"]).host == "10.0.0.5"
