"""Optuna samplers by name: the table that study validation and help texts read, beside the factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

__all__ = ["SAMPLERS", "make_sampler"]

#: name -> factory(seed, n_startup_trials, constraints_func). Adding a sampler is one entry here.
SAMPLERS: dict[str, Callable[..., optuna.samplers.BaseSampler]] = {
    "tpe": lambda seed, n_startup_trials, constraints_func: optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=n_startup_trials, constraints_func=constraints_func),
    "random": lambda seed, n_startup_trials, constraints_func: optuna.samplers.RandomSampler(seed=seed),
    "qmc": lambda seed, n_startup_trials, constraints_func: optuna.samplers.QMCSampler(seed=seed),
}


def make_sampler(kind: str, seed: int, *, n_startup_trials: int, constraints_func: Callable[..., Any] | None = None):
    """The sampler ``kind``; ``constraints_func`` is used by the samplers that take constraints (TPE)."""
    return SAMPLERS[kind](seed, n_startup_trials, constraints_func)
