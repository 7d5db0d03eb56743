"""A full disk under a running study, on a real tiny study (Ray Tune, Optuna, nequip, MLflow; nothing mocked).

The trials' directories lie on a small tmpfs; once the first search trial has finished, the test fills it.
The next checkpoint, split or package write of every trial then fails with ENOSPC: the trial is recorded as
interrupted (not failed), the study stops as interrupted with one line, and every file already written is
whole. After the space is freed, ``--resume`` finishes the study: no finished trial is run again, the stopped
ones continue from their last epoch, and no epoch is logged twice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from _studies import SCRATCH_STUDY  # noqa: E402
from optuna.trial import TrialState

from mlptl import tracking as T
from mlptl.study.spec import StoreLayout
from mlptl.train.spec import MODEL_FILE

TRIALS, EPOCHS = 4, 3



def _mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            pytest.fail("this test mounts a small tmpfs: run it as root (CI does) or with passwordless sudo")
        cmd = ["sudo", "-n", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, f"could not mount a tmpfs at {path}: {r.stderr.strip()}"


def _unmount(path: Path) -> None:
    cmd = ["umount", "-l", str(path)]
    subprocess.run(cmd if os.geteuid() == 0 else ["sudo", "-n", *cmd], capture_output=True)


def _fill(path: Path) -> Path:
    """Write a file on ``path``'s filesystem until not one more byte fits (unbuffered, smaller and smaller)."""
    ballast = path / ".ballast"
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        size = 1 << 20
        while size:
            try:
                os.write(fd, b"\0" * size)
            except OSError:
                size //= 2
    finally:
        os.close(fd)
    return ballast


def _trial_runs(c, exp_id: str) -> list:
    return c.search_runs([exp_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=1000)


@pytest.mark.slow
def test_a_full_disk_stops_the_study_as_interrupted_and_resume_finishes_it(tmp_path: Path):
    study = tmp_path / "full.py"
    study.write_text(SCRATCH_STUDY.format(name="full", trials=TRIALS, epochs=EPOCHS))
    store = tmp_path / "store"
    trials_fs = StoreLayout(store).trials  # the trials' run directories
    _mount_tmpfs(trials_fs, "32m")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    cmd = [sys.executable, "-m", "mlptl.cli", "run", str(study), "--storage", str(store)]
    try:
        log = tmp_path / "driver.log"
        t0 = time.monotonic()
        with open(log, "w") as fh:
            proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
            # the first trial trained to its package (the MLflow store is not read while the study creates it)
            deadline = time.monotonic() + 480
            while proc.poll() is None and time.monotonic() < deadline and not any(trials_fs.rglob(MODEL_FILE)):
                time.sleep(0.2)
            assert any(trials_fs.rglob(MODEL_FILE)), "no trial trained before the study ended:\n" + log.read_text()[-3000:]
            ballast = _fill(trials_fs)
            rc = proc.wait(timeout=max(1.0, 480 - (time.monotonic() - t0)))
        out = log.read_text()
        print(f"first run: {time.monotonic() - t0:.0f} s; its last lines:\n" + "\n".join(out.splitlines()[-3:]))
        assert rc == 143, f"exit {rc}, expected the interrupted exit (143):\n" + out[-4000:]
        assert "full" in out and "No space left on device" in out and "--resume" in out, out[-3000:]

        c = T.client(T.default_tracking_uri(store))
        exp = c.get_experiment_by_name("full")
        (parent,) = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")
        assert parent.data.tags[T.TAG_STATUS] == "interrupted"
        runs = _trial_runs(c, exp.experiment_id)
        statuses = {r.data.tags[T.TAG_TRIAL_KEY]: r.data.tags.get(T.TAG_STATUS) for r in runs}
        assert "interrupted" in statuses.values(), statuses  # the full disk stopped a trial...
        assert "failed" not in statuses.values(), statuses  # ...and failed none
        finished_before = {r.data.tags[T.TAG_TRIAL_KEY]: r.info.run_id for r in runs if r.data.tags.get(T.TAG_STATUS) == "finished"}

        # space again: the resumed study finishes every trial, running none of the finished ones again
        ballast.unlink()
        r = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=480)
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
        _unmount(trials_fs)
    print(f"with the resume: {time.monotonic() - t0:.0f} s")

    runs = _trial_runs(c, exp.experiment_id)
    keys = [r.data.tags[T.TAG_TRIAL_KEY] for r in runs]
    assert len(keys) == len(set(keys)) == TRIALS + 1, sorted(keys)  # one run per trial: 4 search, 1 final
    assert {r.data.tags[T.TAG_STATUS] for r in runs} == {"finished"}, {k: r.data.tags[T.TAG_STATUS] for k, r in zip(keys, runs)}
    for run in runs:
        steps = [m.step for m in c.get_metric_history(run.info.run_id, "val_forces_mae")]
        if run.data.tags.get(T.TAG_REUSED_FROM):
            continue  # the final replicate that took its search trial's training logs no epochs of its own
        assert steps == list(range(1, EPOCHS + 1)), (run.data.tags[T.TAG_TRIAL_KEY], steps)
    for key, run_id in finished_before.items():
        assert c.get_run(run_id).data.tags[T.TAG_ATTEMPTS] == "1", f"{key} finished before the fault and ran again"
    # Optuna: every search trial COMPLETE once; the stopped ones were closed and asked again with their keys
    url = f"sqlite:///{store / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(url)
    trials = optuna.load_study(study_name=name, storage=url).trials
    complete = [t.user_attrs["trial_key"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(k for k in keys if "final" not in k)
    assert c.search_model_versions("name = 'full-scratch-n4'"), "no model was registered"
