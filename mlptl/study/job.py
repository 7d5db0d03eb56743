"""The typed seam between the driver and a trial: :class:`TrialJob`, composed of the specs it runs.

A job carries the :class:`~mlptl.train.TrainSpec` of its training run and the evaluation configs the
study built once, rather than copies of their fields. It travels to Ray workers inside Ray Tune's config
as plain data (:meth:`TrialJob.to_dict` / :meth:`TrialJob.from_dict`, the one serialiser of
:mod:`mlptl.serial`, which rejects unknown keys), and comes back typed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlptl.evaluate.properties import PropertyConfig
from mlptl.evaluate.stability_config import StabilityConfig
from mlptl.serial import OPAQUE, from_plain, to_plain
from mlptl.study.spec import SearchStability
from mlptl.train.spec import TrainSpec

__all__ = ["TrialJob", "Evaluation", "Phase"]

Phase = Literal["search", "final"]


@dataclass(frozen=True)
class Evaluation:
    """The full evaluation of a final replicate (None skips a part), built once from the study's
    :class:`~mlptl.study.spec.EvaluationSpec`."""

    stability: StabilityConfig | None = None
    properties: PropertyConfig | None = None


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs for one trial: what to train (``train``), how to evaluate it, where to log.

    ``replicate`` r has selected the training subset and the weight seed of ``train``: two replicates are
    two draws of the data, not two weight initialisations of one draw. ``search_md`` is the search's short
    MD check (its temperature resolved); ``evaluation`` the final phase's full one. ``references`` are the
    study file's own Reference objects, registered in the worker (they travel pickled, as they are).
    """

    study: str
    trial_key: str
    cell: str
    phase: Phase
    replicate: int
    train: TrainSpec
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    cpus: float = 1.0
    cache_dir: str | None = None  # the study's cache: reference RDFs of the MD checks
    reference: str | None = None  # the target element's reference potential
    compositions: tuple[str, ...] = ()  # a multi-element target's: MD checks start from, properties run at
    evaluation: Evaluation | None = None
    search_md: SearchStability | None = None
    reuse_run_dir: str | None = None  # a finished search trial this job repeats exactly
    warm_start_from: str | None = None  # the finished study's Optuna study whose configuration this is
    source: str | None = None  # the source (chemistry) a transfer trial starts from
    source_test: str | None = None  # the source's own test frames, scored for forgetting (extend mode)
    time_limit_s: float | None = None  # Resources.trial_timeout_s: an attempt past it is a failed trial
    references: tuple[Any, ...] = field(default=(), metadata=OPAQUE)

    @property
    def run_dir(self) -> Path:
        return Path(self.train.out)

    @property
    def source_element(self) -> str | None:
        """The source (element or chemistry) of a transfer trial (None for scratch)."""
        if self.train.init != "transfer":
            return None
        return self.source or self.train.source_type

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialJob:
        return from_plain(cls, d, "trial job")

    def mlflow_params(self) -> dict[str, Any]:
        """What the MLflow UI shows per run, and what the report groups by."""
        t = self.train
        return {
            "cell": self.cell,
            "init": t.init,
            **({"source_element": self.source_element} if t.init == "transfer" else {}),
            "element": t.element,
            "train_size": t.train_size,
            "seed": t.seed,
            "replicate": self.replicate,
            "subset_seed": t.training_subset_seed,
            "phase": self.phase,
            "max_epochs": t.max_epochs,
            "model": t.model if isinstance(t.model, str) else "custom",
            "lr": t.lr,
            "freeze_depth": t.freeze_depth,
            **({"new_element_init": t.new_element_init} if t.init == "transfer" else {}),
            "lr_schedule": t.lr_schedule,
            "batch_size": t.batch_size,
        }
