"""The tracking server the cluster configs expose to other nodes requires credentials (MLflow's basic-auth
app), and every node gets them the way it gets the Ray token.

- each cluster YAML: the password file is shipped to every node beside the Ray token, every node's shell
  exports it as MLFLOW_TRACKING_USERNAME/PASSWORD, and the head's ``mlflow server`` runs ``--app-name
  basic-auth`` with that user as its admin and its users on the shared disk;
- the configuration a config writes, served by a real ``mlflow server --app-name basic-auth`` on
  127.0.0.1: a client without the credentials (or with a wrong password) gets HTTP 401, mlptl's pre-launch
  check says what to set, and mlptl's client with the environment's credentials creates, logs and reads.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from base64 import b64encode
from pathlib import Path

import pytest
import yaml

from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.study.stores import check_stores

REPO = Path(__file__).resolve().parents[1]
CLUSTERS = REPO / "clusters"
YAMLS = ["aws.yaml", "gcp.yaml", "onprem.yaml"]
PASSWORD_FILE = "~/.mlptl/mlflow-password"


def _config(name: str) -> dict:
    return yaml.safe_load((CLUSTERS / name).read_text())


def _server_command(config: dict) -> str:
    (cmd,) = [c for c in config["head_start_ray_commands"] if "mlflow server" in c]
    return cmd


def _ini_command(config: dict) -> str:
    (cmd,) = [c for c in config["head_start_ray_commands"] if "mlflow-auth.ini" in c and c.startswith("printf")]
    return cmd


@pytest.mark.parametrize("name", YAMLS)
def test_the_exposed_tracking_server_requires_the_credentials_every_node_gets(name):
    config = _config(name)
    server = _server_command(config)
    assert "--host 0.0.0.0" in server, "this config exposes its server: the check below is the point"
    # the server: MLflow's basic-auth app, the admin created with the shipped password
    assert re.search(r"mlflow server .*--app-name basic-auth\b", server), server
    assert f'MLFLOW_AUTH_ADMIN_PASSWORD="$(cat {PASSWORD_FILE})"' in server
    assert "MLFLOW_AUTH_CONFIG_PATH=$HOME/mlflow-auth.ini" in server
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY=" in server  # the auth app refuses to start without one
    # its configuration: the admin is the user every node logs in as; users beside the runs, on the shared disk
    ini = _ini_command(config)
    backend = re.search(r"--backend-store-uri sqlite:///(\S+)/mlflow\.db", server).group(1)
    assert f"database_uri = sqlite:///{backend}/basic_auth.db" in ini
    assert r"admin_username = mlptl\n" in ini
    assert "default_permission = NO_PERMISSIONS" in ini
    assert config["head_start_ray_commands"].index(ini) < config["head_start_ray_commands"].index(server)
    # every node: the password shipped like the Ray token, exported to every shell (driver, `ray start`, trials)
    mounts = config["file_mounts"]
    assert mounts["~/.ray/auth_token"] == "~/.ray/auth_token"
    assert mounts[PASSWORD_FILE] == PASSWORD_FILE
    setup = "\n".join(config["setup_commands"])
    assert f"export MLFLOW_TRACKING_USERNAME=mlptl MLFLOW_TRACKING_PASSWORD=\"$(cat {PASSWORD_FILE})\"" in setup
    assert "~/.bashrc" in setup
    assert '"mlflow[auth]"' in setup  # Flask-WTF: the basic-auth app does not start without it
    for cmd in (ini, server, *config["setup_commands"]):
        r = subprocess.run(["bash", "-n", "-c", cmd], capture_output=True, text=True)
        assert r.returncode == 0, (cmd, r.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(url: str, auth: tuple[str, str] | None = None) -> int:
    req = urllib.request.Request(url)
    if auth is not None:
        req.add_header("Authorization", "Basic " + b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def auth_server(tmp_path):
    """The on-prem config's own ini command and server environment, served on 127.0.0.1 (one worker)."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF)")
    config = _config("onprem.yaml")
    home = tmp_path / "home"
    (home / ".mlptl").mkdir(parents=True)
    password = "pw-" + os.urandom(12).hex()
    (home / ".mlptl" / "mlflow-password").write_text(password + "\n")
    shared = tmp_path / "shared"
    (shared / "mlflow").mkdir(parents=True)
    ini_cmd = _ini_command(config).replace("/shared/mlptl", str(shared))
    subprocess.run(["bash", "-c", ini_cmd], env={**os.environ, "HOME": str(home)}, check=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(HOME=str(home), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_AUTH_CONFIG_PATH=str(home / "mlflow-auth.ini"), MLFLOW_AUTH_ADMIN_PASSWORD=password,
               MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(16).hex())
    mlflow = str(Path(sys.executable).parent / "mlflow")
    log = tmp_path / "mlflow.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{shared / 'mlflow' / 'mlflow.db'}",
             "--artifacts-destination", str(shared / "mlflow" / "artifacts"), "--app-name", "basic-auth"],
            env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert proc.poll() is None, "mlflow server exited:\n" + log.read_text()[-3000:]
            try:
                _status(f"{url}/health")
                break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not answer:\n" + log.read_text()[-3000:])
        yield url, password, shared
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.mark.slow
def test_the_configs_server_refuses_strangers_and_admits_mlptl_with_the_environments_credentials(
    auth_server, tmp_path, monkeypatch
):
    url, password, shared = auth_server
    api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert _status(api) == 401
    assert _status(api, ("mlptl", "wrong-password")) == 401
    assert _status(api, ("mlptl", password)) == 200
    # the users live where the config says, on the shared disk
    assert (shared / "mlflow" / "basic_auth.db").is_file()

    # mlptl without credentials: its pre-launch check names what to set, before anything starts
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InputError, match="MLFLOW_TRACKING_USERNAME"):
        check_stores(tmp_path / "store", url, resume=False)

    # with the credentials every node's shell exports, mlptl's client works as in a study
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "mlptl")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    check_stores(tmp_path / "store", url, resume=False)
    c = T.client(url)
    exp = T.ensure_experiment(c, "auth-check", None)
    run_id, _ = T.find_or_create_run(c, exp, name="t0", tags={T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: "t0"})
    T.log_metrics(c, run_id, {"val_forces_mae": 0.5}, step=1)
    T.set_status(c, run_id, "finished")
    assert c.get_run(run_id).data.tags[T.TAG_STATUS] == "finished"
    assert [m.value for m in c.get_metric_history(run_id, "val_forces_mae")] == [0.5]
