"""Optuna pruners by name: the table that study validation, ``--pruner`` and its help read, beside the
factory that builds them. Steps are epochs counted from 0 (:func:`optuna_step`).

``n_warmup_steps`` means one thing for every kind: at least that many epochs are never pruned. The
successive-halving kinds take it as ``min_resource`` (at least 1, Optuna's minimum), so their first rung
is decided at step ``min_resource``, after epoch ``min_resource + 1``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

if TYPE_CHECKING:
    from mlptl.study.spec import PrunerSpec

__all__ = ["PRUNERS", "make_pruner", "optuna_step", "report_epoch"]


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


def _median(spec: PrunerSpec, opts: dict[str, Any]) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps, **opts)


def _percentile(spec: PrunerSpec, opts: dict[str, Any]) -> optuna.pruners.BasePruner:
    return optuna.pruners.PercentilePruner(
        opts.pop("percentile", 25.0), n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps, **opts
    )


def _patient(spec: PrunerSpec, opts: dict[str, Any]) -> optuna.pruners.BasePruner:
    """The median pruner with ``patience`` epochs of tolerance."""
    inner = optuna.pruners.MedianPruner(n_startup_trials=spec.n_startup_trials, n_warmup_steps=spec.n_warmup_steps)
    return optuna.pruners.PatientPruner(inner, patience=opts.pop("patience", 2), **opts)


#: name -> factory(spec, options). Adding a pruner is one entry here.
PRUNERS: dict[str, Callable[[PrunerSpec, dict[str, Any]], optuna.pruners.BasePruner]] = {
    "none": lambda spec, opts: optuna.pruners.NopPruner(),
    "median": _median,
    "percentile": _percentile,
    "successive_halving": lambda spec, opts: optuna.pruners.SuccessiveHalvingPruner(
        **{"min_resource": max(1, spec.n_warmup_steps), **opts}),
    "hyperband": lambda spec, opts: optuna.pruners.HyperbandPruner(**{"min_resource": max(1, spec.n_warmup_steps), **opts}),
    "patient": _patient,
    "wilcoxon": lambda spec, opts: optuna.pruners.WilcoxonPruner(**opts),
    "threshold": lambda spec, opts: optuna.pruners.ThresholdPruner(**{"n_warmup_steps": spec.n_warmup_steps, **opts}),
}


def make_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    """The Optuna pruner a study names (``spec.options`` go to its constructor)."""
    return PRUNERS[spec.kind](spec, dict(spec.options))
