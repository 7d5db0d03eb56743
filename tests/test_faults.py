"""Faults inside a trial, on a real tiny study (Ray Tune, Optuna, nequip, MLflow; nothing mocked).

A trial that hangs: the study's own reference potential (registered in the study file, shipped to the
workers) blocks forever the first time a worker builds it, as a calculator waiting on a license server
or a dead socket would. The search's MD check builds it in a search trial, to compute the reference RDF.
With ``Resources(trial_timeout_s=...)`` that trial is stopped at its limit, recorded as failed with the
reason in MLflow and Optuna, Ray's retry of it does not run into the hang again, the other trials finish
and the study exits 0; ``--resume`` then runs nothing again. In the same study every other search trial's
process is SIGKILLed the first time it builds the reference (the OOM killer): Ray retries it from its
checkpoint.

A full disk, then the tracking server stopped twice, in one study. The trials' directories lie on a small
tmpfs; once the first trial has written its package, the test fills it: the next write of every trial fails
with ENOSPC, the trial is recorded as interrupted (not failed) and the study stops as interrupted with one
line. With space again, ``--resume`` runs on until a real ``mlflow server`` is SIGKILLed while search trials
log their epochs: down for longer than the bound, the study stops as interrupted. Started again on the same
port and database, ``--resume`` runs on, and a second, short outage is waited out (``T.OUTAGE_LIMIT_S``): the
study finishes with every trial, run and epoch exactly once, and no trial finished before a fault ran again.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from _studies import SCRATCH_STUDY  # noqa: E402
from optuna.trial import TrialState

from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.study import Resources
from mlptl.study.spec import StoreLayout
from mlptl.train.spec import MODEL_FILE

LIMIT_S = 45  # an ordinary trial here takes 3-12 s; on a machine loaded far beyond the CI's, more trials than
# the hung one may reach it, which the test accepts (at least one search trial and the final must finish)

FAULT_STUDY = """
import dataclasses
import os
import signal
import time

from mlptl import main
from mlptl.data.generate import preset
from mlptl.data.references import get_reference, register_reference
from mlptl.study import (DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace,
                         SearchStability, Study)

ARMED = {armed!r}  # removed by the one process that hangs: every later build works or kills
MARKS = {marks!r}  # one file per Ray trial killed: each trial's process is killed once, its retry lives


def sw_that_hangs_once_then_kills_each_trial_once():
    from ray import tune

    try:
        os.rename(ARMED, ARMED + ".taken")  # atomic: one process only
    except FileNotFoundError:
        pass
    else:
        with open(ARMED + ".pid", "w") as f:
            f.write(str(os.getpid()))
        time.sleep(3600)  # a hang, not an error: no exception, no epoch, nothing
        raise AssertionError("unreachable")
    try:
        trial_id = tune.get_context().get_trial_id()
    except Exception:
        trial_id = None
    if trial_id is None:  # not inside a trial
        return get_reference("Ge", "sw").calculator()
    try:
        os.close(os.open(os.path.join(MARKS, trial_id), os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return get_reference("Ge", "sw").calculator()
    os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's out-of-memory killer does to a process


register_reference(dataclasses.replace(get_reference("Ge", "sw"), name="sw-faults",
                                       factory=sw_that_hangs_once_then_kills_each_trial_once))

STUDY = Study(
    name="faults",
    source_element="Si",
    target_element="Ge",
    inits=("scratch",),  # no source model is trained
    pretraining=Pretraining(data=DataSource(generate=preset("tiny", "Si", reference="sw"))),
    target_data=DataSource(generate=preset("tiny", "Ge", reference="sw", frames_per_temperature=10)),
    target_reference="sw-faults",
    train_sizes=(4,),
    search=SearchSpace(lr=(3e-3, 1e-2)),
    search_stability=SearchStability(steps=500, temperature=300.0),  # long enough to sample an RDF: the check
    # then builds the reference, to compare with its RDF, in the trial, after the trial's epochs
    trials_per_cell=3,
    seeds=(0,),
    max_epochs=2,
    pruner=PrunerSpec(kind="none"),
    evaluation=EvaluationSpec(stability_temperatures=(), properties=False),
    resources=Resources(cpus_per_trial=1, max_failures=1, trial_timeout_s={limit}),
    val_size=4,
    test_size=4,
    storage={storage!r},
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
"""


def test_the_time_limit_is_checked_when_the_resources_are_built():
    assert Resources(trial_timeout_s=None).trial_timeout_s is None
    assert Resources(trial_timeout_s=0.5).trial_timeout_s == 0.5
    for bad in (0, -1.0, float("nan"), float("inf"), True, "60"):
        with pytest.raises(InputError, match="study field resources.trial_timeout_s"):
            Resources(trial_timeout_s=bad)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _warm_reference_rdf(cache: Path, name: str) -> None:
    """The search MD check's reference RDF, cached as an earlier study would have left it, so that a trial
    spends its seconds on training, not on 1000 steps of reference MD. The trials still build the
    reference (its fingerprint is part of the cache key): that is where one of them hangs."""
    from mlptl.data.references import _REGISTRY, get_reference, register_reference
    from mlptl.evaluate.reference_rdf import reference_rdf
    from mlptl.evaluate.stability_config import StabilityConfig

    register_reference(dataclasses.replace(get_reference("Ge", "sw"), name=name), replace=True)
    try:
        cfg = StabilityConfig(temperatures=(300.0,), replicas=1, steps=500, reference_steps=1000)  # as md_check builds it
        reference_rdf("Ge", [300.0], cfg, reference=name, cache_dir=cache)
    finally:  # the test process's references as they were: tests/test_chemistry.py lists the registered ones
        _REGISTRY.pop(("Ge", name), None)


def _trial_runs(c, exp_id: str):
    return c.search_runs([exp_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=100)


@pytest.mark.slow
def test_a_hung_trial_fails_at_its_limit_and_killed_trial_processes_are_retried_from_their_checkpoints(
        tmp_path: Path):
    """Faults inside trials, in one study (each study start costs the suite half a minute). The first
    process to build the study's reference hangs: that trial is stopped at its time limit, recorded as failed
    in MLflow and Optuna, and Ray's retry of it does not run into the hang again. Every other search trial's
    process is SIGKILLed once, after its epochs, while its node lives on (what the OOM killer does): Ray Tune
    retries it (max_failures=1) from its last checkpoint in the same MLflow run, and it finishes without
    training or logging an epoch again. Meanwhile another process holds the Optuna store's write lock for
    longer than SQLite's default wait: the driver waits. The study exits 0; ``--resume`` runs nothing again."""
    import sqlite3

    store, marks, armed = tmp_path / "store", tmp_path / "marks", tmp_path / "armed"
    marks.mkdir()
    armed.touch()
    study = tmp_path / "faults.py"
    study.write_text(FAULT_STUDY.format(armed=str(armed), marks=str(marks), limit=LIMIT_S, storage=str(store)))
    _warm_reference_rdf(store / "cache", "sw-faults")
    rdfs = sorted((store / "cache").glob("rdf-*"))

    t0 = time.monotonic()
    log = tmp_path / "driver.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, str(study)], stdout=fh, stderr=subprocess.STDOUT)
        # the lock, once a search trial is running (the Optuna store has a trial): 8 s against SQLite's 5 s
        db, deadline, locked_at = store / "optuna.db", time.monotonic() + 300, None
        while proc.poll() is None and time.monotonic() < deadline and locked_at is None:
            time.sleep(0.2)
            try:
                con = sqlite3.connect(db, timeout=30, isolation_level=None)
                if con.execute("SELECT count(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]:
                    con.execute("BEGIN EXCLUSIVE")
                    locked_at = time.monotonic()
                    time.sleep(8)
                    con.execute("COMMIT")
                con.close()
            except sqlite3.OperationalError:  # no store or no table yet
                continue
        assert locked_at is not None, "the search never ran:\n" + log.read_text()[-3000:]
        # the hung trial's process ends with its Ray actor once the limit is recorded, while the study runs
        pid_file, hung_pid = Path(f"{armed}.pid"), None
        while proc.poll() is None and time.monotonic() < t0 + 600:
            if hung_pid is None and pid_file.is_file() and pid_file.read_text():
                hung_pid = int(pid_file.read_text())
            if hung_pid is not None and not _pid_alive(hung_pid):
                break
            time.sleep(0.5)
        if hung_pid is None and pid_file.is_file() and pid_file.read_text():
            hung_pid = int(pid_file.read_text())
        assert hung_pid is not None, "no trial built the reference that hangs:\n" + log.read_text()[-3000:]
        assert not _pid_alive(hung_pid), "the hung trial's process is still running:\n" + log.read_text()[-3000:]
        assert time.monotonic() - t0 < 600, "the study did not end:\n" + log.read_text()[-3000:]
        stopped_while_running = proc.poll() is None
        rc = proc.wait(timeout=max(1.0, 600 - (time.monotonic() - t0)))
    print(f"study: {time.monotonic() - t0:.0f} s (Optuna store locked {locked_at - t0:.0f}-{locked_at - t0 + 8:.0f} s)")
    assert rc == 0, log.read_text()[-4000:]
    assert stopped_while_running, "the hung process ended only with the study"
    assert sorted((store / "cache").glob("rdf-*")) == rdfs, "the trials computed their own reference RDF"

    c = T.client(T.default_tracking_uri(store))
    exp = c.get_experiment_by_name("faults")
    runs = _trial_runs(c, exp.experiment_id)
    by_key = {r.data.tags[T.TAG_TRIAL_KEY]: r for r in runs}
    assert len(by_key) == len(runs), "a trial has two MLflow runs"
    search = {k: r for k, r in by_key.items() if r.data.tags[T.TAG_PHASE] == "search"}
    assert len(search) == 3, sorted(by_key)
    outcomes = {k: (r.info.status, r.data.tags[T.TAG_STATUS], r.data.tags.get(T.TAG_REASON)) for k, r in search.items()}
    timed_out = {k for k, o in outcomes.items() if o == ("FAILED", "failed", f"time limit of {LIMIT_S} s exceeded")}
    finished = {k for k, o in outcomes.items() if o == ("FINISHED", "finished", None)}
    # the hung trial failed at its limit; on a machine loaded far beyond one busy core, a trial that merely
    # ran slower than the limit fails the same way, which is the limit doing its job too
    assert timed_out and finished and timed_out | finished == set(search), outcomes
    if len(timed_out) > 1:
        print(f"note: {len(timed_out) - 1} trial(s) besides the hung one ran past {LIMIT_S} s on this loaded machine")
    history = {k: [m.step for m in c.get_metric_history(r.info.run_id, "val_forces_mae")] for k, r in search.items()}
    for k in timed_out:
        # stopped in the MD check that follows its epochs (the hang is there), each epoch logged once;
        # Ray's retry of it found the recorded failure and reported it, training nothing
        assert search[k].data.tags[T.TAG_TIME_LIMIT] == str(LIMIT_S)
        assert history[k] == [1, 2], (k, history[k])
    assert "1" in {search[k].data.tags[T.TAG_ATTEMPTS] for k in timed_out}, "the hung trial was started again"
    for k in finished:
        assert search[k].data.tags[T.TAG_ATTEMPTS] == "2", f"{k}: killed once, so started twice"
        # killed after its last epoch (in the MD check): the retry resumed there, training and logging nothing
        assert history[k] == [1, 2], (k, history[k])
    assert len(list(marks.iterdir())) >= len(finished), "not every finished search trial's process was killed"
    final = [r for r in runs if r.data.tags[T.TAG_PHASE] == "final"]
    assert [r.data.tags[T.TAG_STATUS] for r in final] == ["finished"]

    # Optuna: the trials stopped at their limit are FAIL, the others COMPLETE, one Optuna trial per MLflow run
    url = f"sqlite:///{store / 'optuna.db'}"
    (name,) = optuna.get_all_study_names(url)
    trials = optuna.load_study(study_name=name, storage=url).trials
    assert {t.user_attrs["trial_key"]: t.state for t in trials} == {
        k: (TrialState.FAIL if k in timed_out else TrialState.COMPLETE) for k in search}

    # --resume runs nothing again: the hung trial is not retried, no run or Optuna trial is added
    armed.touch()  # a trial that built the reference again would hang again
    proc2 = subprocess.run([sys.executable, str(study), "--resume"], capture_output=True, text=True, timeout=300)
    assert proc2.returncode == 0, proc2.stderr[-4000:]
    assert armed.exists(), "the resumed study ran a trial again"
    assert sorted(r.info.run_id for r in _trial_runs(c, exp.experiment_id)) == sorted(by_key[k].info.run_id for k in by_key)
    assert {k: c.get_run(r.info.run_id).data.tags[T.TAG_ATTEMPTS] for k, r in search.items()} == {
        k: r.data.tags[T.TAG_ATTEMPTS] for k, r in search.items()}
    assert len(optuna.load_study(study_name=name, storage=url).trials) == len(trials)


# ---------------------------------------------------------------- the tracking server stopped mid-study
OUTAGE_S = 10  # how long the tracking server stays down: a restart, well inside the tracking layer's bound
EPOCHS, TRIALS = 3, 4



def _cli(study: Path, url: str, store: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.Popen(
        [sys.executable, "-m", "mlptl.cli", "run", str(study), "--tracking-uri", url, "--storage", str(store), *extra],
        env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def _wait(proc: subprocess.Popen, log: Path, ready, what: str, timeout: float) -> None:
    """Poll ``ready()`` until it holds; fail (and stop the study) if the study ended first or time ran out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the study ended or timed out before {what}:\n" + log.read_text()[-3000:])
        time.sleep(0.2)


class _LosesOneAnswer:
    """An MlflowClient whose first call of ``name`` reaches the store and then loses its answer, as a call
    does when the server dies between its commit and its reply."""

    def __init__(self, raw, name: str):
        self.raw, self.name, self.lost = raw, name, False

    def __getattr__(self, attr: str):
        method = getattr(self.raw, attr)
        if attr != self.name or self.lost:
            return method

        def call(*args, **kwargs):
            import requests
            from mlflow.exceptions import MlflowException

            self.lost = True
            method(*args, **kwargs)
            raise MlflowException("API request failed") from requests.exceptions.ConnectionError("Connection reset by peer")

        return call


def test_a_tracking_call_whose_answer_was_lost_is_not_written_twice_and_an_outage_is_bounded(
        tmp_path, monkeypatch, caplog):
    from mlflow.tracking import MlflowClient

    monkeypatch.setattr(T, "BACKOFF_S", (0.01, 0.02))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # what T.client sets; restored after the test
    raw = MlflowClient(tracking_uri=T.default_tracking_uri(tmp_path), registry_uri=T.default_tracking_uri(tmp_path))
    exp = T.Retrying(_LosesOneAnswer(raw, "create_experiment"), "http://lost").create_experiment("lost")
    run = T.Retrying(_LosesOneAnswer(raw, "create_run"), "http://lost").create_run(exp, run_name="cell-t000", tags={})
    T.log_metrics(T.Retrying(_LosesOneAnswer(raw, "log_batch"), "http://lost"), run.info.run_id, {"val": 1.0}, step=1)
    raw.create_registered_model("m")
    T.Retrying(_LosesOneAnswer(raw, "create_model_version"), "http://lost").create_model_version(
        "m", source="file:///model", run_id=run.info.run_id)
    assert [r.info.run_id for r in raw.search_runs([exp])] == [run.info.run_id]
    assert [m.step for m in raw.get_metric_history(run.info.run_id, "val")] == [1]
    assert len(raw.search_model_versions("name = 'm'")) == 1
    assert [r.message.count("retrying in") for r in caplog.records if r.name == "mlptl.tracking"] == [1] * 4

    # a server that stays down: one line per wait, then one error naming it, within the bound
    monkeypatch.setattr(T, "OUTAGE_LIMIT_S", 0.5)
    caplog.clear()
    t0 = time.monotonic()
    with pytest.raises(T.TrackingUnavailable, match=r"tracking server at http://127.0.0.1:9 is unreachable \(Connection refused"):
        T.client("http://127.0.0.1:9").get_experiment_by_name("lost")
    assert time.monotonic() - t0 < 5
    waits = [r.message for r in caplog.records if "retrying in" in r.message]
    assert len(waits) >= 3 and all("http://127.0.0.1:9" in w for w in waits), waits


def test_an_answer_cut_off_by_a_dying_server_is_waited_out_like_a_refused_connection(monkeypatch, caplog):
    """A server killed while it sends its reply leaves requests a broken chunked body (what CI once saw in the
    outage test): that is an outage too, not an error of the call."""
    import socket
    import threading

    monkeypatch.setattr(T, "BACKOFF_S", (0.01, 0.02))
    monkeypatch.setattr(T, "OUTAGE_LIMIT_S", 0.5)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    srv = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve():  # every request: headers and half a chunk, then the connection closes
        srv.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n10\r\n{\"experi")

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    url = f"http://127.0.0.1:{srv.getsockname()[1]}"
    try:
        with pytest.raises(T.TrackingUnavailable, match=r"unreachable \(answer cut off"):
            T.client(url).get_experiment_by_name("cut")
    finally:
        done.set()
        th.join()
        srv.close()
    assert len([r for r in caplog.records if "retrying in" in r.message]) >= 3


def _count(c, name: str, status: str) -> int:
    """How many of study ``name``'s trial runs have mlptl's status ``status``."""
    exp = c.get_experiment_by_name(name)
    return len(c.search_runs([exp.experiment_id], filter_string=(
        f"tags.`{T.TAG_ROLE}` = 'trial' and tags.`{T.TAG_STATUS}` = '{status}'"))) if exp else 0


def _assert_every_trial_once(c, store: Path, name: str, *, retried: bool = False) -> None:
    """The study finished with every trial one MLflow run, FINISHED, each epoch logged once, one COMPLETE
    Optuna trial per search run, its model registered; ``retried``: a trial stopped mid-way may have started
    twice, and its first Optuna trial was closed (FAIL) when the resume asked it again."""
    exp = c.get_experiment_by_name(name)
    trial_runs = _trial_runs(c, exp.experiment_id)
    keys = [r.data.tags[T.TAG_TRIAL_KEY] for r in trial_runs]
    assert len(keys) == len(set(keys)), f"a trial has two MLflow runs: {sorted(keys)}"
    search = [r for r in trial_runs if r.data.tags[T.TAG_PHASE] == "search"]
    final = [r for r in trial_runs if r.data.tags[T.TAG_PHASE] == "final"]
    why = {r.data.tags[T.TAG_TRIAL_KEY]: r.data.tags.get(T.TAG_REASON) for r in trial_runs}
    assert [(r.info.status, r.data.tags[T.TAG_STATUS]) for r in search] == [("FINISHED", "finished")] * TRIALS, why
    assert [(r.info.status, r.data.tags[T.TAG_STATUS]) for r in final] == [("FINISHED", "finished")], why
    for r in trial_runs:
        steps = [m.step for m in c.get_metric_history(r.info.run_id, "val_forces_mae")]
        assert len(steps) == len(set(steps)), f"{r.data.tags[T.TAG_TRIAL_KEY]} logged an epoch twice: {steps}"
        if r in search:
            assert sorted(steps) == list(range(1, EPOCHS + 1)), f"{r.data.tags[T.TAG_TRIAL_KEY]}: epochs {steps}"
        if not retried:
            assert r.data.tags[T.TAG_ATTEMPTS] == "1", "Ray ran a trial twice"
    url = f"sqlite:///{store / 'optuna.db'}"
    (optuna_name,) = optuna.get_all_study_names(url)
    trials = optuna.load_study(study_name=optuna_name, storage=url).trials
    complete = [t.user_attrs["trial_key"] for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(complete) == sorted(r.data.tags[T.TAG_TRIAL_KEY] for r in search)
    others = [(t.user_attrs["trial_key"], t.state) for t in trials if t.state != TrialState.COMPLETE]
    # a trial stopped by the fault was closed by the resume and asked again with its key (a new Optuna trial)
    assert not others if not retried else all(k in complete and s == TrialState.FAIL for k, s in others), others
    assert [m.name for m in c.search_registered_models()] == [f"{name}-scratch-n4"]
    parent = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")[0]
    assert (parent.info.status, parent.data.tags[T.TAG_STATUS]) == ("FINISHED", "finished")


def _ended(proc: subprocess.Popen, log: Path, timeout: float, what: str) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"the study did not end {what}:\n" + log.read_text()[-3000:])


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


@pytest.mark.slow
def test_a_full_disk_and_a_tracking_server_down_past_the_bound_stop_the_study_and_a_restart_is_waited_out(
        tmp_path, mlflow_server, monkeypatch):
    """Three faults in one study's life, each run resuming the one before (each study start costs the suite
    half a minute). 1. The trials' disk fills up: exit 143 with one line, a trial interrupted and none failed.
    2. With space again, ``--resume`` runs until its tracking server is down for longer than the bound
    (``MLPTL_TRACKING_OUTAGE_S``, here 5 s): exit 143, naming the server and the resume command. 3. With the
    server back, ``--resume`` (the default bound) runs on; the server is SIGKILLed again while its trials log,
    down for OUTAGE_S and restarted on the same port and database: the study waits it out and finishes, every
    trial, run and epoch exactly once."""
    name = "faults"
    study = tmp_path / f"{name}.py"
    study.write_text(SCRATCH_STUDY.format(name=name, trials=TRIALS, epochs=EPOCHS))
    store = tmp_path / "store"
    trials_fs = StoreLayout(store).trials  # the trials' run directories
    _mount_tmpfs(trials_fs, "32m")
    mlflow_server.start()
    c = T.client(mlflow_server.url)
    procs: list[subprocess.Popen] = []

    def run(log: Path, *extra: str) -> subprocess.Popen:
        procs.append(_cli(study, mlflow_server.url, store, log, *extra))
        return procs[-1]

    def resume_until_a_trial_finished_beside_a_running_one(log: Path) -> tuple[subprocess.Popen, Path]:
        finished_before = _count(c, name, "finished")
        proc = run(log, "--resume")
        _wait(proc, log, lambda: _count(c, name, "finished") > finished_before and _count(c, name, "running") >= 1,
              "the resume finished a trial beside a running one", 600)
        return proc, log

    def statuses() -> dict[str, str]:
        exp = c.get_experiment_by_name(name)
        return {r.data.tags[T.TAG_TRIAL_KEY]: r.data.tags.get(T.TAG_STATUS) for r in _trial_runs(c, exp.experiment_id)}

    try:
        # 1. the disk fills up once the first trial has trained to its package
        log = tmp_path / "driver.log"
        proc = run(log)
        _wait(proc, log, lambda: any(trials_fs.rglob(MODEL_FILE)), "a trial wrote its package", 480)
        ballast = _fill(trials_fs)
        rc = _ended(proc, log, 480, "with its disk full")
        out = log.read_text()
        assert rc == 143, f"exit {rc}, expected the interrupted exit (143):\n" + out[-4000:]
        assert name in out and "No space left on device" in out and "--resume" in out, out[-3000:]
        exp = c.get_experiment_by_name(name)
        (parent,) = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")
        assert parent.data.tags[T.TAG_STATUS] == "interrupted"
        after_disk = statuses()
        assert "interrupted" in after_disk.values(), after_disk  # the full disk stopped a trial...
        assert "failed" not in after_disk.values(), after_disk  # ...and failed none
        ballast.unlink()

        # 2. the tracking server down past the bound, while a resumed trial logs beside a finished one
        monkeypatch.setenv(T.OUTAGE_ENV, "5")  # the study's processes inherit it (_cli copies the environment)
        proc, log = resume_until_a_trial_finished_beside_a_running_one(tmp_path / "resume1.log")
        mlflow_server.kill()
        t_down = time.monotonic()
        rc = _ended(proc, log, 300, "with its tracking server down past the bound")
        print(f"the study stopped {time.monotonic() - t_down:.0f} s after the server died")
        out = log.read_text()
        assert rc == 143, f"exit {rc}, expected the interrupted exit (143):\n" + out[-4000:]
        assert f"the tracking server at {mlflow_server.url} is unreachable" in out and "--resume" in out, out[-3000:]

        # 3. a restart of the server, waited out
        mlflow_server.start()
        monkeypatch.delenv(T.OUTAGE_ENV)  # the resume waits out the restart below (T.OUTAGE_LIMIT_S)
        before = statuses()
        proc, log = resume_until_a_trial_finished_beside_a_running_one(tmp_path / "resume2.log")
        mlflow_server.kill()
        t_down = time.monotonic()
        time.sleep(OUTAGE_S)  # the outage itself
        mlflow_server.start()
        print(f"server down for {time.monotonic() - t_down:.0f} s")
        rc = _ended(proc, log, 600, "after the server came back")
        assert rc == 0, log.read_text()[-4000:]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        _unmount(trials_fs)
    _assert_every_trial_once(c, store, name, retried=True)
    exp = c.get_experiment_by_name(name)
    attempts = {r.data.tags[T.TAG_TRIAL_KEY]: r.data.tags[T.TAG_ATTEMPTS] for r in _trial_runs(c, exp.experiment_id)}
    # no trial finished before the full disk ran again; the restart was waited out: no trial that first
    # started in the last resume was started twice by Ray
    assert all(attempts[k] == "1" for k, status in after_disk.items() if status == "finished"), (after_disk, attempts)
    new_in_resume = set(attempts) - set(before)
    assert new_in_resume and all(attempts[k] == "1" for k in new_in_resume), attempts


# ---------------------------------------------------------------- a trial's process that died past its retries
def test_a_trial_whose_process_died_past_its_retries_is_recorded_with_rays_reason(tmp_path: Path):
    """The reason mlptl records for a trial Ray Tune gave up on comes from Ray's own error: for a process
    killed by a signal it says so, instead of "see the Ray logs"."""
    import signal as sig

    import ray
    from ray import tune

    from mlptl.study.tune import UNKNOWN_ERROR, error_reason

    def killed(config):
        os.kill(os.getpid(), sig.SIGKILL)

    reasons = []

    class Reason(tune.Callback):
        def on_trial_error(self, iteration, trials, trial, **info):
            reasons.append(error_reason(trial))

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tune.Tuner(
            killed,
            run_config=tune.RunConfig(storage_path=str(tmp_path), callbacks=[Reason()],
                                      failure_config=tune.FailureConfig(max_failures=0), verbose=0),
        ).fit()
    finally:
        ray.shutdown()
    (reason,) = reasons
    print(reason)
    assert reason != UNKNOWN_ERROR and "died" in reason.lower(), reason
    assert "\n" not in reason and len(reason) <= 1000
