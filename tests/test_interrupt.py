"""Interrupt means stop: SIGINT (Ctrl-C) and SIGTERM (a scheduler's time limit) end a real study with exit
130/143, nothing registered, no report and the parent run not FINISHED; SIGKILL of the node's whole process
tree loses nothing finished; --resume then finishes the study with no trial run twice and every cell's
replicates present.

The study is the smallest that still has every phase and both kinds of cell: one training size (a scratch
and a transfer cell), two search trials and two final replicates per cell; every count below follows from
CELLS, TRIALS and SEEDS. Its model is a custom architecture (a ModelSpec, not a preset), and the finished
study also shows what replicates are: new draws of the training data, paired across the cells, with the
validation and test frames fixed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from _studies import STUDY_SOURCE

from mlptl import tracking as T

pytestmark = pytest.mark.slow


CELLS, TRIALS, SEEDS = 2, 2, 2  # scratch-n4 and transfer-n4; search trials and final replicates per cell
# smaller than the "tiny" preset in every dimension, so that a preset used in its place would show
CUSTOM = "ModelSpec(num_layers=1, num_scalar_features=8, num_tensor_features=4, radial_chemical_embed_dim=4)"


def _study_file(tmp_path: Path) -> Path:
    src = (
        STUDY_SOURCE.format(
            name="intr", search="SearchSpace(lr=(3e-3, 1e-2), freeze_depth=(0, 1))", trials=TRIALS, epochs=6,
            storage=str(tmp_path / "store"),
        )
        .replace("train_sizes=(4, 10)", "train_sizes=(4,)")
        .replace("seeds=(0,)", "seeds=(0, 1)")
        .replace("stability_temperatures=(300.0,)", "stability_temperatures=()")
        .replace("max_epochs=3, lr=5e-3,", f"model={CUSTOM}, max_epochs=3, lr=5e-3,")
        .replace("from mlptl.study import", "from mlptl.model.spec import ModelSpec\nfrom mlptl.study import", 1)
    )
    assert "train_sizes=(4,)" in src and "seeds=(0, 1)" in src  # the counts below rely on them
    assert f"model={CUSTOM}" in src
    f = tmp_path / "intr.py"
    f.write_text(src + "\nif __name__ == '__main__':\n    from mlptl import main\n    raise SystemExit(main(STUDY))\n")
    return f


def _client(store: Path):
    return T.client(T.default_tracking_uri(store))


def _trial_runs(store: Path):
    """The study's trial runs; none while the driver is still creating the stores (do not race its schema
    migration)."""
    if not (store / "trials").is_dir():
        return []
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
    """Poll until ``ready(store, runs)``; the test fails if the study ends first or the time runs out."""
    if _wait_until(proc, log, store, ready, timeout):
        return
    if proc.poll() is not None:
        pytest.fail(f"the study ended before {what}:\n" + log.read_text()[-3000:])
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


def _done(runs, phase: str) -> int:
    return _status(runs, phase, "finished") + _status(runs, phase, "pruned")


# ---------------------------------------------------------------- polling, and SIGKILL of a whole process tree
def _wait_until(proc, log: Path, store: Path, ready, timeout: float = 900) -> bool:
    """Poll until ``ready``; False if the study ended first (the moment had passed)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(1)
        if proc.poll() is not None:
            return False
        if ready(store, _trial_runs(store)):
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




def test_signals_and_sigkill_in_every_phase_then_resume_loses_and_duplicates_nothing(tmp_path):
    """One study stopped seven times, each resumed from where the last left it: SIGKILL of the node's whole
    process tree (a node lost, the OOM killer: no handler runs) in pretraining, in the search and in the
    final phase; Ctrl-C in the search; Ctrl-C twice; a scheduler's SIGTERM in the final phase. The orderly
    stops exit 130/143 with the resume command, register nothing and write no report; the last resume
    finishes the study with every trial exactly once, no finished trial redone and no epoch logged twice.

    Each moment counts only progress made after its own start (``base``): trials a SIGKILL left tagged
    "running" would otherwise satisfy the next condition at once."""
    f = _study_file(tmp_path)
    store = tmp_path / "store"
    finished: dict[str, int] = {}
    killed: list[str] = []

    def note_finished() -> None:
        for r in _trial_runs(store):
            if r.data.tags.get(T.TAG_STATUS) == "finished":
                finished.setdefault(r.info.run_id, r.info.end_time)

    starts: list[int] = []

    def start():
        starts.append(len(starts))
        return _start(f, *(["--resume"] if len(starts) > 1 else []))

    def sigkill_at(moment: str, ready) -> None:
        base = _trial_runs(store)
        proc, log = start()
        hit = _wait_until(proc, log, store, lambda s, rs: ready(s, rs, base))
        tree = _descendants(proc.pid)  # Ray's processes: the node's whole tree dies at once, as in a node lost
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        _kill(tree)
        proc.wait()
        if hit:
            killed.append(moment)
        _wait_gone(tree)
        note_finished()

    sigkill_at("pretraining", lambda s, rs, base: (s / "pretrained").is_dir())

    # Ctrl-C in a terminal: SIGINT to the whole process group, while search trials run.
    base = _trial_runs(store)
    proc, log = start()
    _wait_for(proc, log, store, lambda s, rs: _status(rs, "search", "finished") > _status(base, "search", "finished")
              and _status(rs, "search", "running") >= 1, "a search trial finished")
    os.killpg(proc.pid, signal.SIGINT)
    _assert_stopped(store, proc, log, 130)
    note_finished()
    listing = subprocess.run([sys.executable, "-m", "mlptl.cli", "studies", "--json", "--storage", str(store)],
                             capture_output=True, text=True, check=True)
    (row,) = json.loads(listing.stdout)
    assert row["state"] == "interrupted" and row["resume"].endswith("--resume")
    assert row["remaining"]["final_replicates"] == CELLS * SEEDS
    assert 0 < row["remaining"]["search_trials"] < CELLS * TRIALS

    # An impatient user: Ctrl-C twice. The second one ends the driver at once, without the bookkeeping;
    # the stores must still be good for the resumes below. (The orderly stop above left no run RUNNING.)
    proc, log = start()
    _wait_for(proc, log, store, lambda s, rs: any(r.info.status == "RUNNING" for r in rs), "a trial running again")
    os.killpg(proc.pid, signal.SIGINT)
    deadline = time.time() + 60
    while "SIGINT received: stopping the study" not in log.read_text() and time.time() < deadline:
        time.sleep(0.05)  # the first one is being handled: the second comes during its bookkeeping or exit
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130, log.read_text()[-3000:]
    assert "second interrupt, stopping now" in log.read_text()
    note_finished()

    sigkill_at("a search trial done", lambda s, rs, base: _done(rs, "search") > _done(base, "search")
               or any(r.data.tags.get(T.TAG_PHASE) == "final" for r in rs))

    # A scheduler's time limit: SIGTERM to the driver, while the final phase runs.
    proc, log = start()
    _wait_for(proc, log, store, lambda s, rs: _status(rs, "final", "running") >= 1, "the final phase started")
    os.kill(proc.pid, signal.SIGTERM)
    _assert_stopped(store, proc, log, 143)
    note_finished()

    sigkill_at("final phase running", lambda s, rs, base: _status(rs, "final", "running") >= 1)
    sigkill_at("a final replicate done",
               lambda s, rs, base: _status(rs, "final", "finished") > _status(base, "final", "finished"))
    # the last replicate may finish the study before the poll sees it: that moment may pass unhit
    assert killed[:3] == ["pretraining", "a search trial done", "final phase running"], killed

    proc, log = start()
    assert proc.wait(timeout=1800) == 0, log.read_text()[-3000:]
    runs = _trial_runs(store)
    keys = [r.data.tags[T.TAG_TRIAL_KEY] for r in runs]
    assert len(keys) == len(set(keys)), "no MLflow run duplicated"
    assert _done(runs, "search") == CELLS * TRIALS
    assert _status(runs, "final", "finished") == CELLS * SEEDS, "every cell's two replicates"
    c = _client(store)
    for r in runs:
        if r.info.run_id in finished:
            assert r.info.end_time == finished[r.info.run_id], "a finished trial was run again"
        steps = [m.step for m in c.get_metric_history(r.info.run_id, "val_forces_mae")]
        assert len(steps) == len(set(steps)), f"{r.data.tags[T.TAG_TRIAL_KEY]} logged an epoch twice: {steps}"
    for d in (store / "trials").glob("*/*/*"):
        if (d / "history.csv").exists():
            epochs = list(pd.read_csv(d / "history.csv").epoch)
            assert epochs == list(range(1, len(epochs) + 1)), d
    assert len(c.search_registered_models()) == CELLS
    assert (store / "reports" / "intr" / "report.md").is_file()
    _replicates_are_draws_and_the_registry_chooses_by_validation(store, runs)


def _replicates_are_draws_and_the_registry_chooses_by_validation(store: Path, runs) -> None:
    """Replicate r trains on draw r of the training data, shared by scratch and transfer (so they pair), while
    validation and test frames stay fixed for the study; each cell registers its replicate with the lowest
    validation error, whatever the test error says; every replicate ran the study's own architecture."""
    trials = store / "trials" / "intr"

    def frames(cell: str, r: int, split: str) -> str:
        return (trials / cell / f"{cell}-final-r{r}" / "data" / f"{split}.extxyz").read_text()

    for cell in ("scratch-n4", "transfer-n4"):
        assert frames(cell, 0, "train") != frames(cell, 1, "train"), "replicates must draw different subsets"
        assert frames(cell, 0, "val") == frames(cell, 1, "val")
        assert frames(cell, 0, "test") == frames(cell, 1, "test")
    for r in range(SEEDS):
        assert frames("scratch-n4", r, "train") == frames("transfer-n4", r, "train"), "pairs share their subset"
    final = [r for r in runs if r.data.tags[T.TAG_PHASE] == "final"]
    assert {r.data.params["model"] for r in final} == {"custom"}
    assert all(r.data.tags[T.TAG_SELECTION].startswith("best_val_forces_mae") for r in final)
    c = _client(store)
    for cell in ("scratch-n4", "transfer-n4"):
        (version,) = c.search_model_versions(f"name = 'intr-{cell}'")
        reps = [r for r in final if r.data.tags[T.TAG_CELL] == cell]
        assert version.run_id == min(reps, key=lambda r: r.data.metrics["best_val_forces_mae"]).info.run_id
    exp = c.get_experiment_by_name("intr")
    (parent,) = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")
    assert parent.info.status == "FINISHED" and parent.data.tags[T.TAG_STATUS] == "finished"
