"""Learning-rate schedules by name: the one table that training, study validation and the command line
read (``mlptl train --lr-schedule``, ``SearchSpace.lr_schedule``). A schedule is nequip's
``lr_scheduler`` config section (Lightning's scheduler dict), or None for a constant rate."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlptl.model._nequip import CHECKPOINT_MONITOR

__all__ = ["LR_SCHEDULES", "lr_scheduler_config"]


def _constant(max_epochs: int) -> dict[str, Any] | None:
    return None


def _plateau(max_epochs: int) -> dict[str, Any]:
    """Halve the rate after 3 epochs without a better validation loss."""
    return {
        "scheduler": {"_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau", "factor": 0.5, "patience": 3},
        "monitor": CHECKPOINT_MONITOR,
        "interval": "epoch",
        "frequency": 1,
    }


def _cosine(max_epochs: int) -> dict[str, Any]:
    return {
        "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": max_epochs},
        "interval": "epoch",
        "frequency": 1,
    }


#: name -> the schedule's config for a run of ``max_epochs`` epochs. Adding a schedule is one entry here.
LR_SCHEDULES: dict[str, Callable[[int], dict[str, Any] | None]] = {
    "constant": _constant,
    "plateau": _plateau,
    "cosine": _cosine,
}


def lr_scheduler_config(name: str, max_epochs: int) -> dict[str, Any] | None:
    return LR_SCHEDULES[name](max_epochs)
