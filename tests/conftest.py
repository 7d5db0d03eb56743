"""Shared fixtures: where the external mlearn data lives, one tiny generated data set per session, and a real
MLflow tracking server that a test can stop and start again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _one_user_cache_per_session(tmp_path_factory):
    """mlptl's user cache (``$MLPTL_CACHE``) is the session's own, for this process and every process a test
    starts: the suite never reads or fills the caller's ``~/.cache/mlptl``, and its studies, each in a store
    of its own, label a data set or compute a reference RDF once per session, as a user's studies do once
    per machine (a test that needs an empty cache sets its own)."""
    from mlptl.fsutil import CACHE_ENV

    before = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(tmp_path_factory.mktemp("user-cache"))
    yield
    if before is None:
        os.environ.pop(CACHE_ENV, None)
    else:
        os.environ[CACHE_ENV] = before


@pytest.fixture(scope="session")
def mlearn_dir() -> Path:
    """The read-only mlearn DFT data (never copied into the repo); tests using it skip without it."""
    env = os.environ.get("MLPTL_MLEARN_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mlearn"
    if not path.is_dir():
        pytest.skip(f"mlearn data not found at {path} (set MLPTL_MLEARN_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_ge(tmp_path_factory) -> Path:
    """The 'tiny' preset for Ge, generated once per session into a private cache (a few seconds)."""
    from mlptl.data.generate import generate, preset

    return generate(preset("tiny", "Ge", reference="sw"), tmp_path_factory.mktemp("cache"), progress=False)


E2E_SEARCH = (
    '{"scratch": SearchSpace(lr=(1e-5, 3e-2)), '
    '"transfer": SearchSpace(lr=(1e4, 1e5), freeze_depth=(0,))}'  # lr 1e4: every transfer trial diverges
)


@pytest.fixture(scope="session")
def e2e_study(tmp_path_factory):
    """One real tiny study (Ray Tune, Optuna, nequip, MLflow), shared by the study and browser tests."""
    from dataclasses import replace

    from _studies import tiny_study

    from mlptl import run
    from mlptl.study import SearchStability

    study = tiny_study(tmp_path_factory.mktemp("e2e"), name="e2e", trials=4, epochs=4, search=E2E_SEARCH)
    # the search's MD check on: every finished search trial runs 40 MD steps, the report shows the constraint
    result = run(replace(study, search_stability=SearchStability(steps=40)))
    _shutdown_ray()  # run() leaves its local Ray up (a notebook's next study reuses it); a test must not
    return result


def _shutdown_ray() -> None:
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(autouse=True, scope="module")
def _no_ray_left_by_a_module():
    """A file's tests may share the local Ray one of them started in this process; the next file starts
    without it (tests check that bad input is refused before Ray starts)."""
    yield
    _shutdown_ray()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1 with a sqlite backend in ``root``, in its own process group, so
    that a test can stop it outright and start it again on the same port and stores."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.backend_uri = f"sqlite:///{root / 'mlflow-server.db'}"
        self.proc = None
        self.starts = 0

    def start(self, timeout: float = 180) -> None:
        import subprocess
        import sys
        import time
        import urllib.request

        exe = Path(sys.executable).parent / "mlflow"
        (self.root / "mlartifacts").mkdir(parents=True, exist_ok=True)
        log = self.root / f"mlflow-server{self.starts}.log"
        self.starts += 1
        self.proc = subprocess.Popen(
            [str(exe), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", self.backend_uri, "--artifacts-destination", str(self.root / "mlartifacts")],
            # mlptl uses no MLflow server jobs: no job runner and its huey consumer processes
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.kill()
                raise RuntimeError("mlflow server did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL the server and its workers at once, as a crashed or rebooted host would."""
        import signal

        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait()


@pytest.fixture
def mlflow_server(tmp_path):
    """An :class:`MlflowServer` (not started), killed at the end of the test whatever happened."""
    server = MlflowServer(tmp_path / "mlflow-server")
    server.root.mkdir()
    yield server
    server.kill()
