"""The SLURM batch script at a time limit, run for real on this machine: no scheduler, but the signal
sequence a scheduler sends (SIGTERM to the batch shell, #SBATCH --signal=B:TERM@120), real Ray started
by the script, a real MLflow server and a real study. `srun` and `scontrol` are stand-ins that run the
step locally and record the requeue."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from _studies import STUDY_SOURCE

from mlptl import tracking as T

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
SBATCH = REPO / "clusters" / "slurm" / "mlptl.sbatch"


def _free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+), where Ray's own services pick theirs at
    random while the script starts: a port the OS handed out here could be taken again before MLflow
    binds it (seen: 'Address already in use')."""
    import random

    for port in random.sample(range(7000, 9900), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 7000-9900")


def _fakes(tmp_path: Path) -> Path:
    d = tmp_path / "bin"
    d.mkdir()
    (d / "srun").write_text(
        "#!/bin/sh\n# srun stand-in: drop srun's options, run the step here\n"
        'while [ $# -gt 0 ]; do case $1 in -w) shift 2;; -*) shift;; *) break;; esac; done\nexec "$@"\n'
    )
    (d / "scontrol").write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "show hostnames" ]; then echo localhost; exit 0; fi\n'
        f'if [ "$1" = requeue ]; then echo "$2" >> {tmp_path}/requeued; exit 0; fi\nexit 1\n'
    )
    for f in d.iterdir():
        f.chmod(0o755)
    return d


def _runs(tracking_db: Path):
    c = T.client(f"sqlite:///{tracking_db}")
    exp = c.get_experiment_by_name("slurm")
    if exp is None:
        return c, None, []
    return c, exp, c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=1000)


@pytest.fixture
def node_tmp():
    """The node's temp dir, where `ray start --head` records its address: a private one (short: Ray's socket
    paths must fit 107 bytes), so the script's clean-up is checked and this machine's /tmp/ray left alone."""
    d = Path(tempfile.mkdtemp(prefix="mlptl-slurm-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_time_limit_sigterm_stops_requeues_and_the_requeued_job_resumes(tmp_path, node_tmp):
    study = tmp_path / "slurm.py"
    # two cells (scratch-n4, transfer-n4), two search trials and two final replicates each: 4 finals
    src = (
        STUDY_SOURCE.format(name="slurm", search="SearchSpace(lr=(3e-3, 1e-2), freeze_depth=(0,))", trials=2, epochs=6,
                            storage=str(tmp_path / "unused"))
        .replace("train_sizes=(4, 10)", "train_sizes=(4,)")
        .replace("seeds=(0,)", "seeds=(0, 1)")
    )
    assert "train_sizes=(4,)" in src and "seeds=(0, 1)" in src
    study.write_text(src + "\nif __name__ == '__main__':\n    from mlptl import main\n    raise SystemExit(main(STUDY))\n")
    store = tmp_path / "store"
    record = node_tmp / "ray" / "ray_current_cluster"
    env = {
        **os.environ,
        "TMPDIR": str(node_tmp),
        "PATH": f"{_fakes(tmp_path)}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_CPUS_PER_TASK": "2",
        "MLPTL_HEAD_IP": "127.0.0.1",
        "MLPTL_STORE": str(store),
        "RAY_PORT": str(_free_port()),
        "MLFLOW_PORT": str(_free_port()),
    }
    env.pop("RAY_ADDRESS", None)
    env.pop("RAY_TMPDIR", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    db = store / "mlflow-server" / "mlflow.db"

    log1 = open(tmp_path / "job1.log", "w")  # noqa: SIM115
    job = subprocess.Popen(["bash", str(SBATCH), str(study)], env=env, stdout=log1, stderr=subprocess.STDOUT,
                           cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.time() + 900
        while time.time() < deadline:
            time.sleep(2)
            assert job.poll() is None, (tmp_path / "job1.log").read_text()[-4000:]
            if db.is_file() and (store / "trials").is_dir():
                _, _, runs = _runs(db)
                if any(r.data.tags.get(T.TAG_STATUS) == "finished" for r in runs):
                    break
        else:
            pytest.fail("no trial finished in time")
        assert record.read_text().endswith(f":{env['RAY_PORT']}"), "the head records its address in TMPDIR"
        # the scheduler's pre-kill signal, to the batch shell only
        job.send_signal(signal.SIGTERM)
        code = job.wait(timeout=300)
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGKILL)
        log1.close()
    out = (tmp_path / "job1.log").read_text()
    assert not record.exists(), f"the stopped job left its Ray address for ray.init(): {record.read_text()}"
    assert "mlptl: study exited with status 143" in out, out[-4000:]
    assert (tmp_path / "requeued").read_text().split() == ["4242"]
    assert code == 143, out[-3000:]
    c, exp, _ = _runs(db)
    parent = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")[0]
    assert parent.data.tags[T.TAG_STATUS] == "interrupted" and parent.info.status != "FINISHED"
    assert c.search_registered_models() == []

    # SLURM runs the requeued job with SLURM_RESTART_COUNT=1: it resumes the study to the end.
    r = subprocess.run(["bash", str(SBATCH), str(study)], env={**env, "SLURM_RESTART_COUNT": "1"}, cwd=tmp_path,
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    assert "--resume" in r.stdout
    c, exp, runs = _runs(db)
    keys = [x.data.tags[T.TAG_TRIAL_KEY] for x in runs]
    assert len(keys) == len(set(keys))
    final = [x for x in runs if x.data.tags.get(T.TAG_PHASE) == "final" and x.data.tags.get(T.TAG_STATUS) == "finished"]
    assert len(final) == 4
    parent = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")[0]
    assert parent.info.status == "FINISHED"
    assert not record.exists(), record.read_text()
