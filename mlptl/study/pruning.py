"""Optuna pruners acting as a Ray Tune scheduler, one pruner per cell.

Optuna decides (``Trial.should_prune`` against the trials of the same cell); Ray acts (the scheduler
returns STOP, Ray ends the trial and frees its CPUs or GPU for the next one). The scheduler itself knows
nothing about cells: it passes each epoch's result to a ``decide`` function supplied by the search
side, which routes it to the right cell's Optuna study.

Step numbering: mlptl counts epochs from 1 (``EpochReport.epoch`` is the number of epochs completed);
Optuna counts steps from 0. Every report to Optuna goes through :func:`mlptl.study.pruners.optuna_step`, so that Optuna's
settings mean what its documentation says (see there).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from mlptl import metrics as M
from mlptl.study.trial import RESULT_FINAL

log = logging.getLogger(__name__)

__all__ = ["OptunaPruningScheduler"]


class OptunaPruningScheduler(FIFOScheduler):
    """Stops a Ray trial when its cell's Optuna pruner says so, after each reported epoch."""

    def __init__(self, decide: Callable[[str, int, float], bool], metric: str = M.VAL_FORCES_MAE):
        super().__init__()
        self._decide = decide
        self._metric_name = metric

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if result.get(RESULT_FINAL) or self._metric_name not in result or M.EPOCH not in result:
            return TrialScheduler.CONTINUE
        if self._decide(trial.trial_id, int(result[M.EPOCH]), float(result[self._metric_name])):
            log.info("pruning trial %s after epoch %s", trial.trial_id, result[M.EPOCH])
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE
