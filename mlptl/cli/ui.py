"""`mlptl ui`: the MLflow UI as a child that never outlives mlptl.

``mlflow ui`` is a tree of processes (the mlflow command, uvicorn's master, its workers). Started with a
plain ``subprocess.call``, a SIGTERM from a process supervisor, or a SIGINT sent to mlptl alone, kills only
mlptl, and the tree keeps the port and the store open, orphaned. So the tree gets a process group of its
own, mlptl forwards SIGINT/SIGTERM/SIGHUP to the whole group, and on Linux two death signals cover the
cases where mlptl cannot act: mlptl asks for SIGTERM when *its* parent dies (a killed wrapper shell), and
the mlflow command asks for SIGTERM when mlptl dies (mlflow forwards it to uvicorn, which stops its
workers).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from mlptl import tracking as T

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
GRACE_SECONDS = 20.0  # uvicorn finishes open requests first; a loaded 2-core machine needs a few seconds


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _set_parent_death_signal(signum: int) -> bool:
    """Ask Linux for ``signum`` when this process's parent exits; False where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _child_setup(parent_pid: int) -> Callable[[], None]:
    def setup() -> None:  # runs in the child between fork and exec; the death signal survives exec
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        _set_parent_death_signal(signal.SIGTERM)
        if os.getppid() != parent_pid:  # mlptl died before the request took effect
            os._exit(1)

    return setup


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to every process of the child's group, SIGKILL to whatever is left after ``grace`` s."""
    pgid = proc.pid  # start_new_session: the child leads its own group
    if not _group_alive(pgid):
        proc.poll()
        return
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the leader so that it does not linger as a zombie member of the group
        if not _group_alive(pgid):
            return
        time.sleep(0.1)
    log.warning("the MLflow UI did not stop within %.0f s: killing its processes", grace)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def trials_view_url(base_url: str, experiment_id: str) -> str:
    """The study's trials in MLflow's model-training view: grouped by cell, metrics and status as columns."""
    return (
        f"{base_url}/#/experiments/{experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={T.TRIALS_VIEW}"
    )


def study_links(tracking_uri: str, base_url: str) -> dict[str, str]:
    """Each mlptl study in the store and its trials view; stores from an older mlptl get the view's tags."""
    c = T.client(tracking_uri)
    links = {}
    for exp in c.search_experiments():
        if T.TAG_STUDY in exp.tags or T.find_run(c, exp.experiment_id, **{T.TAG_ROLE: "study"}) is not None:
            T.ensure_experiment(c, exp.name, None)
            links[exp.name] = trials_view_url(base_url, exp.experiment_id)
    return links


def run_ui(tracking_uri: str, host: str, port: int) -> int:
    """Serve the MLflow UI over ``tracking_uri`` until the server exits or mlptl is told to stop.

    Returns the server's exit code, or 128 + the signal number when a signal stopped it.
    """
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", tracking_uri, "--host", host, "--port", str(port)]
    # The UI needs no background job runner (it would add seven processes to every `mlptl ui`).
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    base = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    log.info("MLflow UI on %s over %s", base, tracking_uri)
    try:
        for name, url in study_links(tracking_uri, base).items():
            log.info("study %s: %s", name, url)
    except Exception as e:  # the links are a convenience: a store the server can still open must not stop it
        log.warning("could not list the studies of %s: %s", tracking_uri, e)

    previous: dict[int, object] = {}
    if threading.current_thread() is threading.main_thread():

        def on_signal(signum: int, _frame: object) -> None:
            raise _Stop(signum)

        for s in _STOP_SIGNALS:
            previous[s] = signal.signal(s, on_signal)
        parent = os.getppid()
        if _set_parent_death_signal(signal.SIGTERM) and os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)  # the parent died before the request took effect
    else:
        log.warning("run_ui outside the main thread: signals are not forwarded to the MLflow UI")

    proc: subprocess.Popen | None = None
    try:
        # A stop signal during the fork would leave a server nobody knows of: hold signals until ``proc`` is set.
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=_child_setup(os.getpid()))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        code = proc.wait()
        stop_group(proc)  # workers of a server that exited on its own
        return code
    except _Stop as stop:
        log.info("stopping the MLflow UI (%s)", signal.Signals(stop.signum).name)
        for s in previous:  # a second Ctrl-C must not interrupt the shutdown
            signal.signal(s, signal.SIG_IGN)
        if proc is not None:
            stop_group(proc)
        return 128 + stop.signum
    finally:
        if proc is not None and proc.returncode is None:
            stop_group(proc)
        for s, h in previous.items():
            signal.signal(s, h)  # type: ignore[arg-type]
