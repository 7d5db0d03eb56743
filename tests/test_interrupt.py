"""Interrupt means stop: SIGINT (Ctrl-C) and SIGTERM (a scheduler's time limit) end a real study with exit
130/143, nothing registered, no report and the parent run not FINISHED; --resume then finishes it with no
trial run twice and every cell's replicates present.

The study is the smallest that still has every phase and both kinds of cell: one training size (a scratch
and a transfer cell), two search trials and two final replicates per cell; every count below follows from
CELLS, TRIALS and SEEDS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _studies import STUDY_SOURCE

from mlptl import tracking as T

pytestmark = pytest.mark.slow


CELLS, TRIALS, SEEDS = 2, 2, 2  # scratch-n4 and transfer-n4; search trials and final replicates per cell


def _study_file(tmp_path: Path) -> Path:
    src = (
        STUDY_SOURCE.format(
            name="intr", search="SearchSpace(lr=(3e-3, 1e-2), freeze_depth=(0, 1))", trials=TRIALS, epochs=6,
            storage=str(tmp_path / "store"),
        )
        .replace("train_sizes=(4, 10)", "train_sizes=(4,)")
        .replace("seeds=(0,)", "seeds=(0, 1)")
        .replace("stability_temperatures=(300.0,)", "stability_temperatures=()")
    )
    assert "train_sizes=(4,)" in src and "seeds=(0, 1)" in src  # the counts below rely on them
    f = tmp_path / "intr.py"
    f.write_text(src + "\nif __name__ == '__main__':\n    from mlptl import main\n    raise SystemExit(main(STUDY))\n")
    return f


def _client(store: Path):
    return T.client(T.default_tracking_uri(store))


def _trial_runs(store: Path):
    c = _client(store)
    exp = c.get_experiment_by_name("intr")
    if exp is None:
        return []
    return c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=1000)


def _start(study_file: Path, *extra: str) -> tuple[subprocess.Popen, Path]:
    log = study_file.parent / f"driver{len(list(study_file.parent.glob('driver*.log')))}.log"
    fh = open(log, "w")  # noqa: SIM115 (the child owns it)
    proc = subprocess.Popen([sys.executable, str(study_file), *extra], stdout=fh, stderr=subprocess.STDOUT,
                            start_new_session=True)
    return proc, log


def _wait_for(proc, log: Path, store: Path, ready, what: str, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1)
        if proc.poll() is not None:
            pytest.fail(f"the study ended before {what}:\n" + log.read_text()[-3000:])
        if not (store / "trials").is_dir():
            continue  # the driver is still creating the stores; do not race its schema migration
        if ready(_trial_runs(store)):
            return
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail(f"timed out waiting for {what}")


def _assert_stopped(store: Path, proc, log: Path, code: int) -> None:
    assert proc.wait(timeout=300) == code, log.read_text()[-3000:]
    out = log.read_text()
    assert "--resume" in out.strip().splitlines()[-1], out[-2000:]
    c = _client(store)
    exp = c.get_experiment_by_name("intr")
    parent = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")[0]
    assert parent.info.status != "FINISHED" and parent.data.tags[T.TAG_STATUS] == "interrupted"
    assert c.search_registered_models() == [], "an interrupted study must register nothing"
    assert not (store / "reports").exists(), "an interrupted study must write no report"
    assert not [r for r in _trial_runs(store) if r.info.status == "RUNNING"], "no run may be left RUNNING"


def _status(runs, phase: str, status: str) -> int:
    return sum(1 for r in runs if r.data.tags.get(T.TAG_PHASE) == phase and r.data.tags.get(T.TAG_STATUS) == status)


def test_sigint_in_search_and_sigterm_in_final_then_resume(tmp_path):
    f = _study_file(tmp_path)
    store = tmp_path / "store"

    # Ctrl-C in a terminal: SIGINT to the whole process group, while search trials run.
    proc, log = _start(f)
    _wait_for(proc, log, store, lambda rs: _status(rs, "search", "finished") >= 1 and _status(rs, "search", "running") >= 1,
              "a search trial finished")
    os.killpg(proc.pid, signal.SIGINT)
    _assert_stopped(store, proc, log, 130)
    listing = subprocess.run([sys.executable, "-m", "mlptl.cli", "studies", "--json", "--storage", str(store)],
                             capture_output=True, text=True, check=True)
    import json

    (row,) = json.loads(listing.stdout)
    assert row["state"] == "interrupted" and row["resume"].endswith("--resume")
    assert row["remaining"]["final_replicates"] == CELLS * SEEDS
    assert 0 < row["remaining"]["search_trials"] < CELLS * TRIALS

    # An impatient user: Ctrl-C twice. The second one ends the driver at once, without the bookkeeping;
    # the stores must still be good for the resumes below.
    proc, log = _start(f, "--resume")
    _wait_for(proc, log, store, lambda rs: any(r.info.status == "RUNNING" for r in rs), "a trial running again")
    os.killpg(proc.pid, signal.SIGINT)
    deadline = time.time() + 60
    while "SIGINT received: stopping the study" not in log.read_text() and time.time() < deadline:
        time.sleep(0.05)  # the first one is being handled: the second comes during its bookkeeping or exit
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    assert "second interrupt, stopping now" in log.read_text()

    # A scheduler's time limit: SIGTERM to the driver, while the final phase runs.
    proc, log = _start(f, "--resume")
    _wait_for(proc, log, store, lambda rs: _status(rs, "final", "running") >= 1, "the final phase started")
    os.kill(proc.pid, signal.SIGTERM)
    _assert_stopped(store, proc, log, 143)
    before = {r.info.run_id: r.info.end_time for r in _trial_runs(store) if r.data.tags[T.TAG_STATUS] == "finished"}

    proc, log = _start(f, "--resume")
    assert proc.wait(timeout=1200) == 0, log.read_text()[-3000:]
    runs = _trial_runs(store)
    keys = [r.data.tags[T.TAG_TRIAL_KEY] for r in runs]
    assert len(keys) == len(set(keys)), "a resumed study must not duplicate MLflow runs"
    assert _status(runs, "search", "finished") + _status(runs, "search", "pruned") == CELLS * TRIALS
    assert _status(runs, "final", "finished") == CELLS * SEEDS, "every cell's two replicates"
    for r in runs:  # finished trials were not re-run
        if r.info.run_id in before:
            assert r.info.end_time == before[r.info.run_id]
    c = _client(store)
    assert len(c.search_registered_models()) == CELLS
    assert (store / "reports" / "intr" / "report.md").is_file()


# ---------------------------------------------------------------- SIGKILL: no handler runs at all
KILL_MOMENTS = [
    ("pretraining", lambda store, rs: (store / "pretrained").is_dir()),
    ("first search trial running", lambda store, rs: _status(rs, "search", "running") >= 1),
    ("two search trials done", lambda store, rs: _status(rs, "search", "finished") + _status(rs, "search", "pruned") >= 2),
    ("final phase running", lambda store, rs: _status(rs, "final", "running") >= 1),
    ("a final replicate done", lambda store, rs: _status(rs, "final", "finished") >= 1),
]


def _wait_until(proc, log: Path, store: Path, ready, timeout: float = 900) -> bool:
    """Poll until ``ready``; False if the study ended first (the moment had passed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1)
        if proc.poll() is not None:
            return False
        if ready(store, _trial_runs(store) if (store / "trials").is_dir() else []):
            return True
    return False


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, ..., start time at [19]; None once gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _descendants(root: int) -> list[tuple[int, str]]:
    """Every process below ``root`` (its children, theirs, ...) as (pid, start time), from /proc."""
    children: dict[int, list[tuple[int, str]]] = {}
    for p in Path("/proc").iterdir():
        st = _stat(int(p.name)) if p.name.isdigit() else None
        if st:
            children.setdefault(int(st[1]), []).append((int(p.name), st[19]))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c[0])
    return out


def _alive(pid: int, start: str) -> bool:
    """``pid`` is still the process that started at ``start`` and has not ended (a zombie counts as ended)."""
    st = _stat(pid)
    return st is not None and st[19] == start and st[0] not in ("Z", "X")


def _kill(procs: list[tuple[int, str]]) -> None:
    """SIGKILL each of ``procs`` that is still the process it was. Ray's daemons and workers run outside the
    driver's process group; left alone, the busiest end only when they notice the raylet gone (measured: up
    to 26 s after the driver)."""
    for pid, start in procs:
        if _alive(pid, start):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _wait_gone(procs: list[tuple[int, str]], timeout: float = 60) -> None:
    """Until none of ``procs`` runs any more (a zombie or a reused pid counts as gone), or ``timeout``."""
    deadline = time.monotonic() + timeout
    while any(_alive(*p) for p in procs) and time.monotonic() < deadline:
        time.sleep(0.1)


def test_sigkill_at_five_moments_then_resume_loses_and_duplicates_nothing(tmp_path):
    """The driver and its Ray processes killed outright (a node lost, OOM killer) at five moments; each time
    --resume picks up, and the finished study has every trial exactly once and no finished trial redone."""
    f = _study_file(tmp_path)
    store = tmp_path / "store"
    finished: dict[str, int] = {}
    killed = []
    for i, (moment, ready) in enumerate(KILL_MOMENTS):
        proc, log = _start(f, *(["--resume"] if i else []))
        hit = _wait_until(proc, log, store, ready)
        tree = _descendants(proc.pid)  # Ray's processes: the node's whole tree dies at once, as in a node lost
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill(tree)
        proc.wait()
        if hit:
            killed.append(moment)
        _wait_gone(tree)
        if (store / "trials").is_dir():
            for r in _trial_runs(store):
                if r.data.tags.get(T.TAG_STATUS) == "finished":
                    finished.setdefault(r.info.run_id, r.info.end_time)
    assert len(killed) >= 4, f"killed only at {killed}"
    proc, log = _start(f, "--resume")
    assert proc.wait(timeout=1800) == 0, log.read_text()[-3000:]
    runs = _trial_runs(store)
    keys = [r.data.tags[T.TAG_TRIAL_KEY] for r in runs]
    assert len(keys) == len(set(keys)), "no MLflow run duplicated"
    assert _status(runs, "search", "finished") + _status(runs, "search", "pruned") == CELLS * TRIALS
    assert _status(runs, "final", "finished") == CELLS * SEEDS
    c = _client(store)
    for r in runs:
        if r.info.run_id in finished:
            assert r.info.end_time == finished[r.info.run_id], "a finished trial was run again"
        steps = [m.step for m in c.get_metric_history(r.info.run_id, "val_forces_mae")]
        assert len(steps) == len(set(steps)), f"{r.data.tags[T.TAG_TRIAL_KEY]} logged an epoch twice: {steps}"
    import pandas as pd

    for d in (store / "trials").glob("*/*/*"):
        if (d / "history.csv").exists():
            epochs = list(pd.read_csv(d / "history.csv").epoch)
            assert epochs == list(range(1, len(epochs) + 1)), d
    assert len(_client(store).search_registered_models()) == CELLS
    assert (store / "reports" / "intr" / "report.md").is_file()
