"""Studies with real Ray Tune, Optuna, nequip and MLflow at tiny sizes."""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from _studies import STUDY_SOURCE, tiny_study  # noqa: E402

from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.study import DataSource, Pretraining, PrunerSpec, SearchSpace
from mlptl.study.search import CellStudies

REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- validation
@pytest.mark.parametrize(
    "change, field",
    [
        (lambda: dict(target_element="Qq"), "target_element"),
        (lambda: dict(search=SearchSpace(freeze_depth=(0, 7))), "search.freeze_depth"),
        (lambda: dict(train_sizes=(4, 500)), "train_sizes"),
        (lambda: dict(target_data=DataSource(path="/nonexistent/ge.extxyz")), "target_data.path"),
        (lambda: dict(pruner=PrunerSpec(kind="oracle")), "pruner.kind"),
        (lambda: dict(inits=("scratch", "finetune")), "inits"),
        (lambda: dict(search=SearchSpace(lr=(1e-2, 1e-3))), "search.lr"),
        (lambda: dict(pretraining=Pretraining(pretrained="/nonexistent/si.nequip.zip")), "pretraining.pretrained"),
    ],
)
def test_invalid_study_is_rejected_before_ray_starts(tmp_path, change, field):
    import ray

    from mlptl.study.runner import run_study

    with pytest.raises(InputError, match=f"study field {field}"):
        run_study(replace(tiny_study(tmp_path), **change()))
    assert not ray.is_initialized()
    assert not (tmp_path / "store").exists()


def test_an_evaluation_that_needs_a_reference_is_rejected_without_one(tmp_path, tiny_ge):
    """Frames from a file name no reference; MD stability would be skipped in every trial without a word."""
    from mlptl.study import EvaluationSpec

    study = replace(tiny_study(tmp_path), target_data=DataSource(path=str(tiny_ge)), train_sizes=(2, 4),
                    val_size=2, test_size=2)
    with pytest.raises(InputError, match="study field target_reference: the evaluation asks for MD stability"):
        study.validate()
    replace(study, target_reference="sw").validate()
    replace(study, evaluation=EvaluationSpec(stability_temperatures=(), properties=False)).validate()


def test_stability_runs_too_short_for_the_rdf_criterion_are_named_at_launch(tmp_path):
    """40 MD steps never fill the RDF window: the study is valid and runs, but the user is told the
    criterion is off (a warning at launch, after every check: bad input stays one line)."""
    from mlptl.study import EvaluationSpec
    from mlptl.study.validate import study_warnings

    study = tiny_study(tmp_path)  # stability_steps=40
    (warning,) = study_warnings(study)
    assert warning.startswith("evaluation.stability_steps=40 is shorter than the RDF criterion needs (1000 steps")
    assert warning.endswith("no reference RDF is computed for it"), "40 steps end within the equilibration"
    (past,) = study_warnings(replace(study, evaluation=EvaluationSpec(  # some RDF frames: the reference is needed
        stability_temperatures=(300.0,), stability_steps=600, properties=False)))
    assert "no reference RDF" not in past
    assert not study_warnings(replace(study, evaluation=EvaluationSpec(
        stability_temperatures=(300.0,), stability_steps=1000, properties=False)))


def test_unreadable_target_data_is_rejected(tmp_path):
    bad = tmp_path / "ge.extxyz"
    bad.write_text("this is not an extxyz file\n")
    study = replace(tiny_study(tmp_path), target_data=DataSource(path=str(bad)))
    with pytest.raises(InputError, match="ge.extxyz"):
        study.validate()


# ---------------------------------------------------------------- pruning within cells (real Optuna)
def test_pruning_compares_trials_only_within_their_cell(tmp_path):
    study = replace(
        tiny_study(tmp_path),
        inits=("scratch",),
        train_sizes=(4, 10),
        trials_per_cell=3,
        pruner=PrunerSpec(kind="median", n_startup_trials=1, n_warmup_steps=0),
    )
    cells = CellStudies(study, f"sqlite:///{tmp_path / 'optuna.db'}", make_job=lambda cell, key, params: {"key": key})
    assert cells.plan() == 6
    jobs = {f"r{i}": cells.next_job(f"r{i}") for i in range(6)}
    by_cell = {}
    for rid in jobs:
        by_cell.setdefault(cells.live[rid].cell.id, []).append(rid)
    easy, hard = by_cell["scratch-n10"], by_cell["scratch-n4"]
    # the easy cell's first trial completes with low errors
    for epoch in (1, 2, 3):
        assert not cells.report(easy[0], epoch, 0.10)
    cells.complete(easy[0], {"best_val_forces_mae": 0.10}, False)
    # a hard-cell trial, ten times worse than anything in the easy cell, is not pruned: it is its cell's first
    for epoch in (1, 2, 3):
        assert not cells.report(hard[0], epoch, 1.0 - 0.01 * epoch)
    cells.complete(hard[0], {"best_val_forces_mae": 0.97}, False)
    # a second hard-cell trial, better than the first hard one, continues; a worse one is pruned
    assert not cells.report(hard[1], 1, 0.90)
    assert cells.report(hard[2], 1, 1.50)
    # and in the easy cell, a trial at 0.5 (good for the hard cell) is pruned
    assert cells.report(easy[1], 1, 0.50)


# ---------------------------------------------------------------- end to end
def _runs(store) -> pd.DataFrame:
    from mlptl.report import load_runs

    return load_runs(T.default_tracking_uri(store), "e2e")


@pytest.mark.slow
def test_study_end_to_end_with_pruning_and_failing_trials(e2e_study):
    """Scratch cells train; every transfer trial diverges (lr 1e4): recorded as failed, the study goes on."""
    result = e2e_study
    study = result.study
    runs = _runs(result.storage)
    search_runs = runs[runs.phase == "search"]
    # one MLflow run per trial, trials_per_cell per cell
    assert search_runs.trial_key.is_unique
    assert search_runs.groupby("cell").size().to_dict() == {c.id: 4 for c in study.cells()}
    # transfer trials failed with their reason; the scratch cells finished or were pruned
    tr = search_runs[search_runs.init == "transfer"]
    assert (tr.status == "failed").sum() == 8
    assert tr[f"tags.{T.TAG_REASON}"].str.contains("non-finite").all()
    assert (tr.status_mlflow == "FAILED").all()
    sc = search_runs[search_runs.init == "scratch"]
    assert set(sc.status) <= {"finished", "pruned"}
    pruned = sc[sc.status == "pruned"]
    assert len(pruned) >= 1, "the median pruner should stop the worst scratch trials"
    # a pruned run is shown as killed in MLflow, stopped before the epoch budget, at the epoch it records
    assert (pruned.status_mlflow == "KILLED").all()
    assert (pruned.epochs_run < study.max_epochs).all()
    assert (pd.to_numeric(pruned[f"tags.{T.TAG_PRUNED_EPOCH}"]) == pruned.epochs_run).all()
    assert (sc[sc.status == "finished"].status_mlflow == "FINISHED").all()
    # the search's MD check ran on every finished search trial, and the report says it constrained the search
    assert sc[sc.status == "finished"]["search_md_stable"].notna().all()
    assert "constrained by MD stability" in (result.report_dir / "report.md").read_text()
    # final phase: scratch cells re-trained and registered; the report shows the learning curve
    final = runs[(runs.phase == "final") & (runs.status == "finished")]
    assert set(final.cell) == {"scratch-n4", "scratch-n10"}
    # replicate 0 repeats the cell's best search trial exactly, so it reuses that training
    assert final[f"tags.{T.TAG_REUSED_FROM}"].notna().all()
    assert set(result.registered) == {"scratch-n4", "scratch-n10"}
    assert "stability_stable_fraction.T300" in final
    assert (result.report_dir / "learning_curve.png").is_file()
    assert "scratch-n4" in (result.report_dir / "report.md").read_text()
    assert result.counts["failed"] == 8
    # Ray Tune's per-trial results (where each trial ran: clusters/README.md), not its TensorBoard files
    assert list(result.storage.glob("ray/*/*/result.json")) and list(result.storage.glob("ray/*/*/progress.csv"))
    assert not list(result.storage.glob("ray/*/*/events.out.tfevents*"))


def test_a_study_driver_imports_no_torch():
    """The driver and the ``mlptl`` command train nothing: importing torch (over a second) is left to the
    processes that do, through the lazy names of mlptl.model and mlptl.train."""
    code = ("import sys; import mlptl, mlptl.cli, mlptl.cli.run, mlptl.study.runner, mlptl.study.inputs, "
            "mlptl.study.final, mlptl.report; from mlptl.train import TrainSpec, prepare; "
            "from mlptl.model import ModelSpec; print(sorted(m for m in ('torch', 'nequip') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr[-2000:]
    from mlptl.model import load_source, transfer
    from mlptl.train import loop, train

    assert train is loop.train and load_source is transfer.load_source, "a lazy name is what it names"


def test_study_file_loads_and_overrides(tmp_path):
    import argparse

    from mlptl.study.load import add_override_arguments, apply_overrides, load_study

    f = tmp_path / "s.py"
    f.write_text(textwrap.dedent(STUDY_SOURCE.format(name="x", search="SearchSpace()", trials=3, epochs=5, storage="s")))
    study = load_study(f)
    p = argparse.ArgumentParser()
    add_override_arguments(p)
    over = apply_overrides(study, p.parse_args(["--max-epochs", "2", "--trials-per-cell", "1", "--seeds", "3,4"]))
    assert (over.max_epochs, over.trials_per_cell, over.seeds) == (2, 1, (3, 4))
    assert apply_overrides(study, p.parse_args(["--trial-timeout", "90"])).resources.trial_timeout_s == 90
    with pytest.raises(InputError, match="resources.trial_timeout_s"):
        apply_overrides(study, p.parse_args(["--trial-timeout", "-1"]))
    smoke = apply_overrides(study, p.parse_args(["--smoke"]))
    assert smoke.name == "x-smoke" and smoke.max_epochs == 2
    (tmp_path / "bad.py").write_text("STUDY = 3\n")
    with pytest.raises(InputError, match="must define STUDY"):
        load_study(tmp_path / "bad.py")


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "studies").glob("*.py")))
def test_every_shipped_study_loads_and_validates_as_written_and_in_smoke_mode(path, monkeypatch, mlearn_dir):
    """A shipped study file with a typo, an unknown reference or an impossible size fails here, not on a
    user's cluster; the mlearn study reads the data where MLPTL_MLEARN_DIR points."""
    from mlptl.study.load import load_study, smoke

    monkeypatch.setenv("MLPTL_MLEARN_DIR", str(mlearn_dir))
    study = load_study(REPO / path)
    study.validate()
    smoke(study).validate()


# ---------------------------------------------------------------- several sources for one target
def test_source_selection_makes_a_transfer_cell_per_source(tmp_path):
    from mlptl.study.load import load_study

    study = load_study("studies/source_selection.py")
    study.validate()
    ids = [c.id for c in study.cells()]
    assert ids == ["scratch-n4", "scratch-n16", "Si-transfer-n4", "C-transfer-n4", "Si-transfer-n16", "C-transfer-n16"]
    with pytest.raises(InputError, match="study field pretraining: one Pretraining per source"):
        replace(study, pretraining={"Si": study.pretraining["Si"]}).validate()
    with pytest.raises(InputError, match="study field source_element: unknown element 'Xx'"):
        replace(study, source_element=("Si", "Xx"), pretraining={**study.pretraining, "Xx": study.pretraining["C"]}).validate()
    # one source keeps the single-source cell names
    single = replace(study, source_element="Si", pretraining=study.pretraining["Si"])
    assert [c.id for c in single.cells()][2:] == ["transfer-n4", "transfer-n16"]


# ---------------------------------------------------------------- stability inside the search, warm start
def test_the_optuna_store_locked_by_another_process_is_waited_for(tmp_path):
    """Another process (a dashboard, a user's script) holds the Optuna store's write lock for longer than
    SQLite's default 5 s wait: the driver's next write waits for it instead of ending the study."""
    import subprocess
    import sys
    import time

    hold_s = 8.0
    study = replace(tiny_study(tmp_path), inits=("scratch",), train_sizes=(4,), trials_per_cell=2)
    db = tmp_path / "optuna.db"
    cells = CellStudies(study, f"sqlite:///{db}", make_job=lambda cell, key, params: key)
    cells.plan()
    locker = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time\n"
         f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True)\n"
         f"time.sleep({hold_s}); c.execute('COMMIT')"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        key = cells.next_job("r0")  # Optuna writes the new trial: blocked until the lock goes
        waited = time.monotonic() - t0
    finally:
        locker.wait(timeout=60)
    assert key == "scratch-n4-t000" and waited > hold_s - 1.0, waited
    cells.complete("r0", {"best_val_forces_mae": 0.1}, False)
    assert [t.state.name for t in cells.studies["scratch-n4"].trials] == ["COMPLETE"]


def test_an_md_unstable_trial_cannot_be_its_cells_best(tmp_path):
    from mlptl.study.spec import SearchStability

    study = replace(tiny_study(tmp_path), inits=("scratch",), train_sizes=(4,), trials_per_cell=3,
                    search_stability=SearchStability(steps=50))
    cells = CellStudies(study, f"sqlite:///{tmp_path / 'optuna.db'}", make_job=lambda cell, key, params: key)
    cells.plan()
    for rid, (value, stable) in {"a": (0.10, 0.0), "b": (0.30, 1.0), "c": (0.50, 1.0)}.items():
        cells.next_job(rid)
        cells.complete(rid, {"best_val_forces_mae": value, "search_md_stable": stable}, False)
    params, key = cells.best_trials()["scratch-n4"]
    assert key == "scratch-n4-t001", "the most accurate trial was MD-unstable: the stable runner-up wins"
    assert cells.best_values()["scratch-n4"] == pytest.approx(0.30)
    # Optuna's TPE sees the constraint too (its constraints_func reads what complete() recorded)
    st = cells.studies["scratch-n4"]
    assert [t.system_attrs.get("constraints") for t in st.trials] == [[1.0], [0.0], [0.0]]


def test_warm_start_seeds_each_cell_with_a_finished_studys_best(tmp_path):
    from mlptl.study.spec import WarmStart

    old = replace(tiny_study(tmp_path / "old"), name="old", inits=("scratch",), train_sizes=(4, 10), trials_per_cell=3)
    db = tmp_path / "old" / "optuna.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    cells = CellStudies(old, f"sqlite:///{db}", make_job=lambda cell, key, params: params)
    cells.plan()
    lrs = {}
    for i in range(6):
        params = cells.next_job(f"r{i}")
        lrs[f"r{i}"] = (cells.live[f"r{i}"].cell.id, params["lr"])
        cells.complete(f"r{i}", {"best_val_forces_mae": params["lr"]}, False)  # lower lr, lower error
    best = {cid: sorted(lr for c, lr in lrs.values() if c == cid)[:2] for cid in ("scratch-n4", "scratch-n10")}

    # a new study at sizes 4 and 20: n4 takes n4's best, n20 the nearest size's (n10)
    new = replace(old, name="new", train_sizes=(4, 20), warm_start=WarmStart(storage=str(db.parent), study="old"))
    new.validate(check_data=False)
    fresh = CellStudies(new, f"sqlite:///{tmp_path / 'new.db'}", make_job=lambda cell, key, params, **kw: (params, kw))
    assert fresh.warm_started == 4
    fresh.plan()
    got: dict[str, list] = {}
    for i in range(6):
        params, kw = fresh.next_job(f"n{i}")
        got.setdefault(fresh.live[f"n{i}"].cell.id, []).append((params["lr"], kw.get("warm_start_from")))
    for cid, src in (("scratch-n4", "scratch-n4"), ("scratch-n20", "scratch-n10")):
        assert [lr for lr, _ in got[cid][:2]] == best[src]
        assert [w for _, w in got[cid][:2]] == [f"old/{src}"] * 2 and got[cid][2][1] is None
    with pytest.raises(InputError, match="study field warm_start.study"):
        replace(new, warm_start=WarmStart(storage=str(db.parent), study="nope")).validate(check_data=False)


KEY = "scratch-n4-t000"


def _trial_run(tmp_path, study: str, **tags: str):
    """A store whose MLflow already holds trial KEY's run, as an earlier attempt of a study left it."""
    store = tmp_path / "store"
    store.mkdir()
    uri = T.default_tracking_uri(store)
    c = T.client(uri)
    exp = T.ensure_experiment(c, study, store / "artifacts")
    run = c.create_run(exp, run_name=KEY, tags={T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: KEY, **tags})
    return uri, c, exp, run


def _fit_trial(tmp_path, uri: str, exp: str, study: str, data: str, study_status: str = "running"):
    """Trial KEY (3 epochs of the tiny model) run by a real Ray Tune, as a study or its resume asks it."""
    from ray import tune

    from mlptl.study.job import TrialJob
    from mlptl.study.trial import run_trial
    from mlptl.study.tune import init_ray
    from mlptl.train import TrainSpec

    c = T.client(uri)
    parent = c.create_run(exp, tags={T.TAG_ROLE: "study", T.TAG_STATUS: study_status}).info.run_id  # the study's run
    job = TrialJob(
        study=study, trial_key=KEY, cell="scratch-n4", phase="search", replicate=0,
        train=TrainSpec(element="Ge", data=data, out=str(tmp_path / "run"), init="scratch", train_size=4, lr=1e-3,
                        seed=0, subset_seed=0, max_epochs=3, val_size=2, test_size=2, split_seed=0, model="tiny"),
        tracking_uri=uri, experiment_id=exp, parent_run_id=parent,
    )
    init_ray()  # as a study does (a stale `ray start` record on the machine must not make ray.init wait)
    results = tune.Tuner(
        run_trial, param_space={"job": job.to_dict()},
        run_config=tune.RunConfig(storage_path=str(tmp_path / "ray"), name=study, verbose=0),
    ).fit()
    assert results[0].error is None, results[0].error
    return results[0]


def test_a_trial_finished_before_the_driver_heard_of_it_is_not_run_again(tmp_path):
    """A driver killed after a trial's MLflow run finished but before Optuna was told: the resume asks the
    trial again with its key, and the trainable reports the recorded result instead of training again
    (nothing is trained: the job's data does not even exist) and leaves the run exactly as it was."""
    import time

    uri, c, exp, run = _trial_run(tmp_path, "killed", **{T.TAG_STATUS: "finished", T.TAG_EPOCHS_RUN: "3"})
    T.log_metrics(c, run.info.run_id, {"best_val_forces_mae": 0.125, "test_forces_mae": 0.2})
    T.set_status(c, run.info.run_id, "finished")
    before = c.get_run(run.info.run_id).info
    time.sleep(1.1)  # a second finish would move end_time
    res = _fit_trial(tmp_path, uri, exp, "killed", str(tmp_path / "missing.extxyz"))
    assert res.metrics["recorded"] == 1 and res.metrics["mlptl_status"] == "finished"
    assert res.metrics["best_val_forces_mae"] == 0.125 and res.metrics["epoch"] == 3
    after = c.get_run(run.info.run_id)
    assert (after.info.status, after.info.end_time) == (before.status, before.end_time)
    assert not (tmp_path / "run").exists(), "nothing may be trained or written"


def test_a_retried_trial_logs_each_epoch_to_mlflow_once(tmp_path, tiny_ge):
    """An attempt can die after logging epoch k to MLflow but before Ray holds epoch k's checkpoint (or a
    resumed driver restores an older checkpoint): the retry trains those epochs again but must not log them a
    second time, or the run's learning curve shows two points per step. The lost attempt's epochs 1-2 are
    in MLflow (marked by an impossible value); the retry trains 3 epochs from nothing."""
    uri, c, exp, run = _trial_run(tmp_path, "retried", **{T.TAG_STATUS: "running"})
    for step in (1, 2):
        T.log_metrics(c, run.info.run_id, {"val_forces_mae": 99.0}, step=step)
    _fit_trial(tmp_path, uri, exp, "retried", str(tiny_ge))
    points = c.get_metric_history(run.info.run_id, "val_forces_mae")
    assert sorted(m.step for m in points) == [1, 2, 3], [(m.step, m.value) for m in points]
    assert [m.value for m in sorted(points, key=lambda m: m.step)][:2] == [99.0, 99.0]
    assert c.get_run(run.info.run_id).data.tags[T.TAG_STATUS] == "finished"


def test_after_an_interrupt_the_command_line_stops_at_once_on_the_next_signal():
    """The study's bookkeeping after Ctrl-C can take milliseconds and Ray's shutdown at exit seconds: a
    second Ctrl-C in that time must end the process, not raise inside an atexit hook. The command line
    (not a library caller, whose handlers are restored) installs that for the rest of the process."""
    import signal

    from mlptl.cli._common import run_with_errors
    from mlptl.errors import Interrupted
    from mlptl.study import signals

    def interrupted_study(args):
        raise Interrupted(signal.SIGINT)

    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert run_with_errors(interrupted_study, argparse.Namespace()) == 130
        assert signal.getsignal(signal.SIGINT) is signals._exit_now
        assert signal.getsignal(signal.SIGTERM) is signals._exit_now
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ---------------------------------------------------------------- checkpoints
def test_a_staged_checkpoint_holds_the_epoch_and_is_removed_after_its_report(tmp_path):
    """Each epoch's checkpoint is staged for ``tune.report`` in a directory of its own; the stage must go
    once the report has copied it (left behind, every epoch of every trial stayed in /tmp), and a stage
    left by a process killed mid-report goes with the next epoch's."""
    from mlptl.study.checkpoints import STAGE_PREFIX, staged_checkpoint
    from mlptl.train.spec import BEST_CHECKPOINT, CHECKPOINT_DIR, HISTORY_FILE, LAST_CHECKPOINT

    run_dir = tmp_path / "run"
    with staged_checkpoint(run_dir) as checkpoint:
        assert checkpoint is None  # before the first epoch there is nothing to stage
    (run_dir / CHECKPOINT_DIR).mkdir(parents=True)
    for name in (LAST_CHECKPOINT, BEST_CHECKPOINT):
        (run_dir / CHECKPOINT_DIR / name).write_bytes(name.encode())
    (run_dir / HISTORY_FILE).write_text("epoch\n1\n")
    killed = run_dir / f"{STAGE_PREFIX}killed"
    (killed / LAST_CHECKPOINT).parent.mkdir(parents=True)
    (killed / LAST_CHECKPOINT).write_bytes(b"an older epoch")
    with staged_checkpoint(run_dir) as checkpoint:
        stage = Path(checkpoint.path)
        assert stage.parent == run_dir and not killed.exists()
        assert sorted(p.name for p in stage.iterdir()) == sorted([LAST_CHECKPOINT, BEST_CHECKPOINT, HISTORY_FILE])
        assert (stage / LAST_CHECKPOINT).read_bytes() == LAST_CHECKPOINT.encode()
    assert not stage.exists()
    assert (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT).read_bytes() == LAST_CHECKPOINT.encode()  # the trial's own files stay
    assert not list(run_dir.glob(f"{STAGE_PREFIX}*"))


def test_a_trial_that_starts_as_the_study_is_interrupted_finds_it_marked(tmp_path):
    """The driver marks the study interrupted, then sweeps the trial runs tagged running; a trial that tagged
    its run after the sweep (CI, 2026-12-06: created 15 ms after SIGINT) asks the study's run and stops."""
    from types import SimpleNamespace

    from mlptl.study.trial_runs import study_interrupted

    c = T.client(T.default_tracking_uri(tmp_path / "store"))
    exp = T.ensure_experiment(c, "s", tmp_path / "store" / "artifacts")
    parent = c.create_run(exp, tags={T.TAG_ROLE: "study", T.TAG_STATUS: "running"}).info.run_id
    job = SimpleNamespace(parent_run_id=parent)
    assert not study_interrupted(c, job)
    c.set_tag(parent, T.TAG_STATUS, "interrupted")
    assert study_interrupted(c, job)
    c.set_tag(parent, T.TAG_STATUS, "running")  # --resume marks it running before any trial starts
    assert not study_interrupted(c, job)


def test_a_trial_that_starts_after_the_study_was_marked_interrupted_opens_no_run(tmp_path):
    """The driver marked the study interrupted, swept the runs tagged running and is exiting, which kills its
    trial processes; an attempt that starts now (CI stress, 2026-12-07: 380 ms after SIGINT) must not open a
    run that the exit would leave RUNNING: it opens none and reports itself stopped."""
    store = tmp_path / "store"
    store.mkdir()
    uri = T.default_tracking_uri(store)
    exp = T.ensure_experiment(T.client(uri), "late", store / "artifacts")
    res = _fit_trial(tmp_path, uri, exp, "late", str(tmp_path / "missing.extxyz"), study_status="interrupted")
    assert res.metrics["mlptl_status"] == "stopped" and "interrupted" in res.metrics["reason"]
    runs = T.client(uri).search_runs([exp], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'")
    assert runs == [], [r.data.tags for r in runs]
