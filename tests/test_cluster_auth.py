"""The tracking server the cluster configs expose to other nodes requires credentials (MLflow's basic-auth
app), and every node gets them the way it gets the Ray token.

- each cluster YAML: the password file is shipped to every node beside the Ray token, every node's shell
  exports it as MLFLOW_TRACKING_USERNAME/PASSWORD, and the head's ``mlflow server`` runs ``--app-name
  basic-auth`` with that user as its admin and its users on the shared disk;
- the configuration a config writes, served by a real ``mlflow server --app-name basic-auth`` on
  127.0.0.1: a client without the credentials (or with a wrong password) gets HTTP 401, mlptl's pre-launch
  check says what to set, and mlptl's client with the environment's credentials creates, logs and reads;
- the SLURM and PBS scripts, run for real with stand-ins for the scheduler, Ray, Python and MLflow (each
  records what it was given): the password and Flask key made once in private files in the store, the
  driver and every node's `ray start` (PBS: through a remote shell that passes no environment) with the
  user and password, the server alone with the admin password and key, the password on no command line;
  and the server the SLURM script starts, from exactly its arguments, environment and auth configuration,
  refuses requests without the credentials and admits the ones every node got.
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
from contextlib import contextmanager
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
    assert r"auth_cache_ttl_seconds = 60\n" in ini  # scrypt (~0.1 s of CPU) once a minute, not per request
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


@contextmanager
def _mlflow_server(args: list[str], env: dict, log: Path, url: str):
    """`mlflow ARGS` (this environment's mlflow) in its own process group until /health answers; killed after."""
    mlflow = str(Path(sys.executable).parent / "mlflow")
    with open(log, "w") as fh:
        proc = subprocess.Popen([mlflow, *args], env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
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
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _clean_env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_"))}


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
    env = _clean_env()
    env.update(HOME=str(home), MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false",
               MLFLOW_AUTH_CONFIG_PATH=str(home / "mlflow-auth.ini"), MLFLOW_AUTH_ADMIN_PASSWORD=password,
               MLFLOW_FLASK_SERVER_SECRET_KEY=os.urandom(16).hex())
    url = f"http://127.0.0.1:{port}"
    args = ["server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", f"sqlite:///{shared / 'mlflow' / 'mlflow.db'}",
            "--artifacts-destination", str(shared / "mlflow" / "artifacts"), "--app-name", "basic-auth"]
    with _mlflow_server(args, env, tmp_path / "mlflow.log", url):
        yield url, password, shared


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


# ================================================================ the SLURM and PBS scripts' server
SBATCH = CLUSTERS / "slurm" / "mlptl.sbatch"
PBS = CLUSTERS / "pbs" / "mlptl.pbs"


def _script_value(script: Path, name: str) -> str:
    """A value the batch script sets once (``name=value``): read from the script, not repeated here."""
    (value,) = re.findall(rf"^\s*{name}=(\S+)$", script.read_text(), re.M)
    return value


def _stand_ins(tmp_path: Path, records: Path) -> Path:
    """srun, scontrol, pbs_tmrsh and ssh that run the step here; mlflow, ray and python that record their
    arguments and environment in RECORDS and exit (the driver once both nodes' `ray start` have recorded, or
    the script's shutdown could stop them first). pbs_tmrsh and ssh start their command with an empty
    environment (a remote process inherits nothing from the batch script); ssh, like ssh, hands the remote
    shell one line."""
    d = tmp_path / "bin"
    d.mkdir()
    record = f'#!/bin/sh\nf={records}/$(basename "$0").$$\nenv > "$f.env"\nprintf "%s\\n" "$@" > "$f.args"\n'
    wait = (f'[ "$1" = -u ] && for _ in $(seq 100); do [ "$(cat {records}/ray.*.args | grep -cx start)" -ge 2 ] '
            "&& break; sleep 0.1; done\nexit 0\n")
    scripts = {
        "mlflow": record, "ray": record, "python": record + wait,
        "srun": "#!/bin/sh\nwhile [ $# -gt 0 ]; do case $1 in -w) shift 2;; -*) shift;; *) break;; esac; done\n"
                'exec "$@"\n',
        "scontrol": '#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "n1\\nn2\\n"\n',
        "pbs_tmrsh": '#!/bin/sh\nshift\nexec env -i "$@"\n',
        "ssh": '#!/bin/sh\nshift\nexec env -i bash -c "$*"\n',
    }
    for name, body in scripts.items():
        (d / name).write_text(body)
        (d / name).chmod(0o755)
    return d


def _recorded(records: Path, program: str, first_arg: str) -> list[tuple[list[str], dict]]:
    out = []
    for f in sorted(records.glob(f"{program}.*.args")):
        args = f.read_text().splitlines()
        if args and args[0] == first_arg:
            env = dict(line.split("=", 1) for line in f.with_suffix(".env").read_text().splitlines() if "=" in line)
            out.append((args, env))
    return out


def _run_script(script: Path, tmp_path: Path, store: Path, remote_shell: str = "pbs_tmrsh", **extra: str):
    """The batch script for real on two 'nodes' (n1, n2; both this machine) with the stand-ins; returns its
    output and the folder of what the stand-ins recorded (one per run)."""
    records = tmp_path / "records"
    records.mkdir()
    bin_dir = tmp_path / "bin"
    if not bin_dir.exists():
        _stand_ins(tmp_path, records)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path), "TMPDIR": str(tmp_path),
           "MLPTL_STORE": str(store), "MLPTL_HEAD_IP": "127.0.0.1", "MLFLOW_PORT": "5000", **extra}
    if script == SBATCH:
        env.update(SLURM_JOB_ID="11", SLURM_JOB_NODELIST="n[1-2]", SLURM_CPUS_PER_TASK="1")
        argv = ["bash", str(script), "study.py", "--smoke"]
    else:
        nodefile = tmp_path / "nodes"
        nodefile.write_text("n1\nn1\nn2\n")
        env.update(PBS_JOBID="11.pbs", PBS_NODEFILE=str(nodefile), PBS_O_WORKDIR=str(tmp_path), NCPUS="1",
                   MLPTL_STUDY="study.py", MLPTL_ARGS="--smoke", MLPTL_REMOTE_SHELL=remote_shell)
        argv = ["bash", str(script)]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    kept = tmp_path / f"records-{len(list(tmp_path.glob('records-*')))}"
    records.rename(kept)
    return r, kept


@pytest.mark.parametrize(
    "script, remote_shell", [(SBATCH, None), (PBS, "pbs_tmrsh"), (PBS, "ssh")], ids=["slurm", "pbs", "pbs-ssh"]
)
def test_batch_scripts_server_requires_the_password_every_node_reads_from_the_store(script, remote_shell, tmp_path):
    store = tmp_path / "store"
    r, records = _run_script(script, tmp_path, store, remote_shell or "pbs_tmrsh")
    user = _script_value(script, "mlflow_user")
    files = {k: Path(_script_value(script, k).replace("$store", str(store))) for k in
             ("password_file", "secret_file", "auth_ini")}
    # the password and the Flask key: made once, private, in the store beside the server's runs
    for k in ("password_file", "secret_file"):
        assert files[k].parent == store / "mlflow-server"
        assert files[k].stat().st_mode & 0o777 == 0o600, k
    password = files["password_file"].read_text()
    assert len(password) >= 32
    # the server: basic-auth, its configuration, and its secrets in its environment
    ((server, server_env),) = _recorded(records, "mlflow", "server")
    assert "--app-name" in server and server[server.index("--app-name") + 1] == "basic-auth"
    assert server_env["MLFLOW_AUTH_CONFIG_PATH"] == str(files["auth_ini"])
    assert server_env["MLFLOW_AUTH_ADMIN_PASSWORD"] == password
    assert server_env["MLFLOW_FLASK_SERVER_SECRET_KEY"] == files["secret_file"].read_text()
    assert f"database_uri = sqlite:///{store}/mlflow-server/basic_auth.db" in files["auth_ini"].read_text()
    # the driver and every node's `ray start` (the environment its trials inherit): the user and the password,
    # not the server's secrets
    starts = _recorded(records, "ray", "start")
    assert len(starts) == 2 and sum("--head" in args for args, _ in starts) == 1
    drivers = [(args, env) for args, env in _recorded(records, "python", "-u") if "study.py" in args]
    assert len(drivers) == 1
    for _, env in [*starts, *drivers]:
        assert env["MLFLOW_TRACKING_USERNAME"] == user and env["MLFLOW_TRACKING_PASSWORD"] == password
        assert "MLFLOW_AUTH_ADMIN_PASSWORD" not in env and "MLFLOW_FLASK_SERVER_SECRET_KEY" not in env
        assert env["RAY_AUTH_MODE"] == "token"
    # the password on no command line and in no log line
    assert password not in r.stdout + r.stderr
    for f in records.glob("*.args"):
        assert password not in f.read_text(), f.name
    # a later job (a requeue, a resubmission) keeps the password: the auth database has the first one
    _, records2 = _run_script(script, tmp_path, store, remote_shell or "pbs_tmrsh")
    assert files["password_file"].read_text() == password
    ((_, server_env2),) = _recorded(records2, "mlflow", "server")
    assert server_env2["MLFLOW_AUTH_ADMIN_PASSWORD"] == password


@pytest.mark.slow
def test_slurm_scripts_server_refuses_strangers_and_admits_the_credentials_every_node_got(tmp_path):
    """The server exactly as the SLURM script starts it (arguments, environment, the auth configuration it
    wrote), one gunicorn worker instead of two: HTTP 401 without the credentials or with a wrong password,
    the UI included; the user and password a node's `ray start` got are admitted."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs mlflow[auth] (Flask-WTF)")
    store = tmp_path / "store"
    port = _free_port()
    _, records = _run_script(SBATCH, tmp_path, store, MLFLOW_PORT=str(port))
    ((server, server_env),) = _recorded(records, "mlflow", "server")
    ((_, node_env), _) = _recorded(records, "ray", "start")
    assert server[server.index("--workers") + 1] == "2"
    server[server.index("--workers") + 1] = "1"
    env = {**_clean_env(), **{k: v for k, v in server_env.items() if k.startswith("MLFLOW_")}}
    url = f"http://127.0.0.1:{port}"
    with _mlflow_server(server, env, tmp_path / "mlflow.log", url):
        api = f"{url}/api/2.0/mlflow/experiments/search?max_results=1"
        creds = (node_env["MLFLOW_TRACKING_USERNAME"], node_env["MLFLOW_TRACKING_PASSWORD"])
        assert _status(api) == 401
        assert _status(f"{url}/") == 401  # the UI: the browser asks for the user and password
        assert _status(api, (creds[0], "wrong-password")) == 401
        assert _status(api, creds) == 200
        assert (store / "mlflow-server" / "basic_auth.db").is_file()
