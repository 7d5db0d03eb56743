"""Optuna pruners acting as a Ray Tune scheduler, one pruner per cell.

Optuna decides (``Trial.should_prune`` against the trials of the same cell); Ray acts (the scheduler
returns STOP, Ray ends the trial and frees its CPUs or GPU for the next one). The scheduler itself knows
nothing about cells: it passes each epoch's result to a ``decide`` function supplied by the search
side, which routes it to the right cell's Optuna study.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import optuna
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from mlptl import metrics as M
from mlptl.study.spec import PrunerSpec

log = logging.getLogger(__name__)

__all__ = ["make_pruner", "OptunaPruningScheduler"]


def make_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    """The Optuna pruner a study names. Epochs are Optuna's steps."""
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
