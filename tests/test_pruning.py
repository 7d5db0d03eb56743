"""Epoch numbering against real Optuna pruners: warm-up and rungs mean what Optuna documents.

Optuna's steps are 0-based ("the earliest a trial can be pruned is at step == n_warmup_steps"), mlptl's
epochs 1-based. With ``n_warmup_steps=2`` the first two epochs are warm-up and the third is the first
that may be pruned; reporting epochs as steps unchanged would prune at the second.
"""

from __future__ import annotations

from dataclasses import replace

import optuna
import pytest
from _studies import tiny_study

from mlptl.study import PrunerSpec
from mlptl.study.pruners import make_pruner, optuna_step, report_epoch
from mlptl.study.search import CellStudies

GOOD = [0.50, 0.30, 0.20, 0.15]  # a completed trial's validation force MAE per epoch
BAD = [5.0, 5.0, 5.0, 5.0]  # far worse than GOOD at every epoch: prunable as soon as pruning is allowed


class _Job(dict):
    """What make_job returns: the search only hands it on (``to_dict`` for Ray's config)."""

    def to_dict(self) -> dict:
        return dict(self)


def _study_with_one_completed_trial(spec: PrunerSpec) -> optuna.Study:
    study = optuna.create_study(direction="minimize", pruner=make_pruner(spec), study_name="cell")
    t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    for epoch, v in enumerate(GOOD, start=1):
        assert not report_epoch(t, epoch, v)
    study.tell(t, min(GOOD))
    return study


def _first_pruned_epoch(study: optuna.Study, curve: list[float]) -> int | None:
    t = study.ask({"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)})
    for epoch, v in enumerate(curve, start=1):
        if report_epoch(t, epoch, v):
            study.tell(t, state=optuna.trial.TrialState.PRUNED)
            return epoch
    study.tell(t, min(curve))
    return None


def test_first_epoch_is_optuna_step_zero():
    assert [optuna_step(e) for e in (1, 2, 3)] == [0, 1, 2]
    with pytest.raises(ValueError):
        optuna_step(0)


@pytest.mark.parametrize(
    "spec, first_prunable_epoch",
    [
        # warm-up of w epochs: pruned after epoch w + 1 at the earliest
        (PrunerSpec(kind="median", n_startup_trials=1, n_warmup_steps=2), 3),
        (PrunerSpec(kind="median", n_startup_trials=1, n_warmup_steps=0), 1),
        (PrunerSpec(kind="percentile", n_startup_trials=1, n_warmup_steps=2, options={"percentile": 50.0}), 3),
        # successive halving: the first rung is step min_resource, i.e. after epoch min_resource + 1
        (PrunerSpec(kind="successive_halving", n_warmup_steps=2), 3),
        (PrunerSpec(kind="successive_halving", n_warmup_steps=1, options={"reduction_factor": 2}), 2),
    ],
)
def test_warmup_counts_the_first_epoch_as_step_zero(spec, first_prunable_epoch):
    study = _study_with_one_completed_trial(spec)
    assert _first_pruned_epoch(study, BAD) == first_prunable_epoch


def test_hyperband_max_resource_is_the_epoch_budget():
    # 'auto' takes the last step of the first completed trial + 1: the number of epochs only if step 0 is epoch 1
    study = _study_with_one_completed_trial(PrunerSpec(kind="hyperband", n_warmup_steps=1))
    _first_pruned_epoch(study, BAD)  # initialises the brackets
    assert study.pruner._max_resource == len(GOOD)


def test_cell_studies_report_epochs_as_optuna_steps(tmp_path):
    """The path a study takes (Ray result -> CellStudies.report -> Optuna), with a real pruner."""
    study = replace(
        tiny_study(tmp_path),
        inits=("scratch",),
        train_sizes=(4,),
        trials_per_cell=2,
        pruner=PrunerSpec(kind="median", n_startup_trials=1, n_warmup_steps=2),
        max_epochs=6,  # epoch 3 is not the last: a trial at its last epoch is finished, never pruned
    )
    cells = CellStudies(study, f"sqlite:///{tmp_path / 'optuna.db'}", make_job=lambda cell, key, params: _Job(key=key))
    assert cells.plan() == 2
    cells.next_job("good")
    cells.next_job("bad")
    for epoch, v in enumerate(GOOD, start=1):
        assert not cells.report("good", epoch, v)
    cells.complete("good", {"best_val_forces_mae": min(GOOD)}, False)
    # two warm-up epochs, however bad; pruned at the third
    assert not cells.report("bad", 1, BAD[0])
    assert not cells.report("bad", 2, BAD[1]), "pruned during warm-up: epochs reported to Optuna 1-based"
    assert cells.report("bad", 3, BAD[2])
    trial = cells.live["bad"].trial
    assert sorted(trial.storage.get_trial(trial._trial_id).intermediate_values) == [0, 1, 2]


def test_a_trial_at_its_last_epoch_is_finished_not_pruned(tmp_path):
    study = replace(tiny_study(tmp_path), inits=("scratch",), train_sizes=(4,), trials_per_cell=2, max_epochs=3,
                    pruner=PrunerSpec(kind="median", n_startup_trials=1, n_warmup_steps=0))
    cells = CellStudies(study, f"sqlite:///{tmp_path / 'optuna.db'}", make_job=lambda cell, key, params: _Job(key=key))
    cells.plan()
    cells.next_job("good")
    cells.next_job("bad")
    for epoch, v in enumerate(GOOD[:3], start=1):
        cells.report("good", epoch, v)
    cells.complete("good", {"best_val_forces_mae": min(GOOD[:3])}, False)
    assert cells.report("bad", 2, BAD[1]), "the median pruner prunes this trial before its last epoch"
    cells.live["bad"].pruned_at = None  # as if it had continued
    assert not cells.report("bad", 3, BAD[2]), "at its last epoch there is nothing left to save"


def test_an_outcome_recorded_just_before_an_interrupt_does_not_count_once_the_trial_is_queued_again(tmp_path):
    """The pruner recorded a trial's outcome, then the driver stopped before telling Optuna (CI, 2026-12-07):
    the resume closes that trial and queues its key again, and a resume after the re-queued trial was killed
    too still has that trial to run (the stale outcome once made the cell count as done)."""
    study = replace(tiny_study(tmp_path), inits=("scratch",), train_sizes=(4,), trials_per_cell=2)
    url = f"sqlite:///{tmp_path / 'optuna.db'}"

    def resumed() -> CellStudies:
        return CellStudies(study, url, make_job=lambda cell, key, params: _Job(key=key))

    cells = resumed()
    assert cells.plan() == 2
    cells.next_job("a")
    cells.complete("a", {"best_val_forces_mae": 0.2}, False)
    cells.next_job("b")
    cells.live["b"].trial.set_user_attr("outcome", "pruned")  # recorded; the driver stops before the tell
    cells = resumed()
    assert cells.plan() == 1  # b queued again with its key
    assert cells.next_job("b")["key"] == "scratch-n4-t001"  # and asked; this driver is killed in turn
    assert resumed().plan() == 1
