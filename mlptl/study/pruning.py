"""Optuna pruners acting as a Ray Tune scheduler, one pruner per cell.

Optuna decides (``Trial.should_prune`` against the trials of the same cell); Ray acts (the scheduler
returns STOP, Ray ends the trial and frees its CPUs or GPU for the next one). The scheduler itself knows
nothing about cells: it passes each epoch's result to a ``decide`` function supplied by the search
side, which routes it to the right cell's Optuna study.

Step numbering: mlptl counts epochs from 1 (``EpochReport.epoch`` is the number of epochs completed);
Optuna counts steps from 0. Every report to Optuna goes through :func:`optuna_step`, so that Optuna's
settings mean what its documentation says (see there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from mlptl import metrics as M
from mlptl.study.spec import PrunerSpec

log = logging.getLogger(__name__)

__all__ = ["make_pruner", "optuna_step", "report_epoch", "OptunaPruningScheduler"]


def optuna_step(epoch: int) -> int:
    """The Optuna step of a 1-based epoch: the first reported epoch is step 0.

    Optuna documents steps as 0-based: its examples report ``for step in range(n_train_iter)``;
    ``MedianPruner``/``PercentilePruner``: "pruning is disabled while the current step is less than
    ``n_warmup_steps``; the earliest a trial can be pruned is at ``step == n_warmup_steps``", and
    ``HyperbandPruner`` estimates ``max_resource`` as the last step + 1. With this mapping
    ``n_warmup_steps=w`` protects exactly the first ``w`` epochs (the earliest pruning is after epoch
    ``w + 1``), a successive-halving rung at step ``r`` is decided after epoch ``r + 1``, and Hyperband's
    automatic ``max_resource`` equals the epoch budget. Reporting epochs 1-based shifted all of these
    one epoch earlier and made ``max_resource`` one too large.
    """
    if epoch < 1:
        raise ValueError(f"epochs are 1-based (the number of epochs completed), got {epoch}")
    return epoch - 1


def report_epoch(trial: optuna.trial.Trial, epoch: int, value: float) -> bool:
    """Report one epoch's value to Optuna under its step numbering; True if the pruner says prune."""
    trial.report(value, optuna_step(epoch))
    return trial.should_prune()


def make_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    """The Optuna pruner a study names; steps are epochs counted from 0 (:func:`optuna_step`).

    ``n_warmup_steps`` means one thing for every kind: at least that many epochs are never pruned. The
    successive-halving kinds take it as ``min_resource`` (at least 1, Optuna's minimum), so their first
    rung is decided at step ``min_resource``, after epoch ``min_resource + 1``.
    """
    kind, opts = spec.kind, dict(spec.options)
    if kind == "none":
        return optuna.pruners.NopPruner()
    if kind == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps, **opts
        )
    if kind == "percentile":
        return optuna.pruners.PercentilePruner(
            opts.pop("percentile", 25.0),
            n_startup_trials=spec.n_startup_trials,
            n_warmup_steps=spec.n_warmup_steps,
            **opts,
        )
    if kind == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(**{"min_resource": max(1, spec.n_warmup_steps), **opts})
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(**{"min_resource": max(1, spec.n_warmup_steps), **opts})
    if kind == "patient":
        inner = optuna.pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps)
        return optuna.pruners.PatientPruner(inner, patience=opts.pop("patience", 2), **opts)
    if kind == "wilcoxon":
        return optuna.pruners.WilcoxonPruner(**opts)
    if kind == "threshold":
        return optuna.pruners.ThresholdPruner(**{"n_warmup_steps": spec.n_warmup_steps, **opts})
    raise ValueError(f"unknown pruner {kind!r}")


class OptunaPruningScheduler(FIFOScheduler):
    """Stops a Ray trial when its cell's Optuna pruner says so, after each reported epoch."""

    def __init__(self, decide: Callable[[str, int, float], bool], metric: str = M.VAL_FORCES_MAE):
        super().__init__()
        self._decide = decide
        self._metric_name = metric

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get("final") or self._metric_name not in result or M.EPOCH not in result:
            return TrialScheduler.CONTINUE
        if self._decide(trial.trial_id, int(result[M.EPOCH]), float(result[self._metric_name])):
            log.info("pruning trial %s after epoch %s", trial.trial_id, result[M.EPOCH])
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE
