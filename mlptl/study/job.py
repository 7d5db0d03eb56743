"""The typed seam between the driver and a trial: :class:`TrialJob` and its hyperparameters.

A job travels to Ray workers inside Ray Tune's config, so it must round-trip through plain data
(:meth:`TrialJob.to_dict` / :meth:`TrialJob.from_dict`); everything else about it is typed, so that a
custom :class:`~mlptl.model.spec.ModelSpec` arrives as a ModelSpec, not as the dict it travelled as.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from mlptl.model.spec import ModelSpec

__all__ = ["TrialJob", "TrialParams", "Phase"]

Phase = Literal["search", "final"]


@dataclass(frozen=True)
class TrialParams:
    """The hyperparameters Optuna searches (one point of a cell's search space)."""

    lr: float
    freeze_depth: int = 0
    lr_schedule: str = "plateau"
    batch_size: int = 4

    @classmethod
    def from_optuna(cls, params: dict[str, Any], init: str) -> TrialParams:
        return cls(
            lr=float(params["lr"]),
            freeze_depth=int(params.get("freeze_depth", 0)) if init == "transfer" else 0,
            lr_schedule=str(params.get("lr_schedule", "plateau")),
            batch_size=int(params.get("batch_size", 4)),
        )


@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs for one trial: where the data is, what to train, where to log.

    ``replicate`` r selects the training subset (``subset_seed``) and, with ``seed``, the weights: two
    replicates are two draws of the data, not two weight initialisations of one draw.
    """

    study: str
    trial_key: str
    cell: str
    phase: Phase
    source_element: str
    element: str
    init: str
    train_size: int
    params: TrialParams
    seed: int
    replicate: int
    subset_seed: int
    run_dir: str
    data: str
    test_data: str | None
    pretrained: str | None
    max_epochs: int
    val_size: int
    test_size: int
    split_seed: int
    model: str | ModelSpec
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    train_groups: tuple[str, ...] | None = None
    test_groups: tuple[str, ...] | None = None
    cpus: float = 1.0
    reference: str | None = None  # the target element's reference potential, for the final evaluation
    evaluation: dict[str, Any] | None = None  # EvaluationSpec as a dict: final phase only
    reuse_run_dir: str | None = None  # a finished search trial this job repeats exactly
    search_md: dict[str, Any] | None = None  # {"steps", "temperature", "cache_dir"}: the search's MD check
    warm_start_from: str | None = None  # the finished study's Optuna study whose configuration this is
    references: tuple[Any, ...] = ()  # the study's own Reference objects, registered in the worker
    compile: bool = False  # nequip's train-time torch.compile (Study.compile)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["params"] = asdict(self.params)
        d["model"] = self.model if isinstance(self.model, str) else asdict(self.model)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialJob:
        d = dict(d)
        d["params"] = TrialParams(**d["params"])
        if isinstance(d["model"], dict):
            d["model"] = ModelSpec(**d["model"])
        for k in ("train_groups", "test_groups"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        return cls(**d)

    def train_spec(self):
        from mlptl.train import TrainSpec

        p = self.params
        transfer = self.init == "transfer"
        return TrainSpec(
            element=self.element,
            data=self.data,
            out=self.run_dir,
            init=self.init,
            pretrained=self.pretrained if transfer else None,
            source_type=self.source_element if transfer else None,
            freeze_depth=p.freeze_depth if transfer else 0,
            lr=p.lr,
            lr_schedule=p.lr_schedule,
            batch_size=p.batch_size,
            max_epochs=self.max_epochs,
            train_size=self.train_size,
            val_size=self.val_size,
            test_size=self.test_size,
            test_data=self.test_data,
            train_groups=self.train_groups,
            test_groups=self.test_groups,
            seed=self.seed,
            split_seed=self.split_seed,
            subset_seed=self.subset_seed,
            model=self.model,
            compile=self.compile,
        )

    def mlflow_params(self) -> dict[str, Any]:
        """What the MLflow UI shows per run, and what the report groups by."""
        return {
            "cell": self.cell,
            "init": self.init,
            **({"source_element": self.source_element} if self.init == "transfer" else {}),
            "element": self.element,
            "train_size": self.train_size,
            "seed": self.seed,
            "replicate": self.replicate,
            "subset_seed": self.subset_seed,
            "phase": self.phase,
            "max_epochs": self.max_epochs,
            "model": self.model if isinstance(self.model, str) else "custom",
            **asdict(self.params),
        }


