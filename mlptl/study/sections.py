"""The sections of a study: where its data comes from, how the source model is made, what is searched,
pruned and evaluated, and what each trial may use. Each checks its own fields when built and names the
study field that is wrong; :class:`~mlptl.study.spec.Study` composes them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlptl.data.chemistry import Chemistry
from mlptl.data.generate import GenerationSpec
from mlptl.data.mixtures import MixtureSpec
from mlptl.errors import InputError
from mlptl.evaluate.properties import PropertyConfig
from mlptl.evaluate.stability_config import StabilityConfig
from mlptl.fsutil import expand_path
from mlptl.model.spec import NEW_ELEMENT_INITS, ModelSpec, model_preset
from mlptl.study.pruners import PRUNERS
from mlptl.study.validate import check_field as _check
from mlptl.study.validate import field_error
from mlptl.train.schedules import LR_SCHEDULES
from mlptl.train.spec import TrainSpec

__all__ = [
    "StoreLayout",
    "DataSource",
    "Pretraining",
    "SearchSpace",
    "PrunerSpec",
    "SearchStability",
    "WarmStart",
    "EvaluationSpec",
    "Resources",
    "OPTUNA_DB",
]

#: The Optuna store's file in a storage directory (:class:`StoreLayout` names the rest).
OPTUNA_DB = "optuna.db"
_err = field_error


@dataclass(frozen=True)
class StoreLayout:
    """What lies where below a storage directory; the MLflow store's own files are named in
    :mod:`mlptl.tracking`. One store holds many studies, so per-study paths carry the study's name."""

    root: Path

    @property
    def optuna_db(self) -> Path:
        return self.root / OPTUNA_DB

    @property
    def optuna_url(self) -> str:
        return f"sqlite:///{self.optuna_db}"

    @property
    def data(self) -> Path:
        """Generated data sets, cached by their spec."""
        return self.root / "data"

    @property
    def pretrained(self) -> Path:
        """Source models, cached by their training spec."""
        return self.root / "pretrained"

    @property
    def cache(self) -> Path:
        """Reference RDFs and the search's MD reference, cached."""
        return self.root / "cache"

    @property
    def trials(self) -> Path:
        """Every trial's run directory (checkpoints, splits, package), by study, cell and trial key."""
        return self.root / "trials"

    def trial_dir(self, study: str, cell: str, key: str) -> Path:
        return self.trials / study / cell / key

    def report_dir(self, study: str) -> Path:
        return self.root / "reports" / study


@dataclass(frozen=True)
class DataSource:
    """Frames from a file (``path``, ``$VARS`` expanded) or generated from a reference (``generate``: a
    :class:`~mlptl.data.generate.GenerationSpec` for one element, a :class:`~mlptl.data.mixtures.MixtureSpec`
    for alloys and compounds).

    ``test_path`` names a separate test file (e.g. mlearn's test.json); otherwise the test set is split
    off the data with the study's split seed, independently of the training size.
    """

    path: str | None = None
    generate: GenerationSpec | MixtureSpec | None = None
    test_path: str | None = None

    def resolved_path(self) -> Path | None:
        return expand_path(self.path) if self.path else None

    def resolved_test_path(self) -> Path | None:
        return expand_path(self.test_path) if self.test_path else None

    @property
    def generated_chemistry(self) -> Chemistry | None:
        """The elements ``generate`` makes frames of (None for a file)."""
        g = self.generate
        if g is None:
            return None
        return g.chemistry if isinstance(g, MixtureSpec) else Chemistry((g.element,))

    def check(self, name: str, element: str) -> None:
        if (self.path is None) == (self.generate is None):
            raise _err(name, "give exactly one of path= or generate=")
        made = self.generated_chemistry
        if made is not None and made != Chemistry(element):
            raise _err(name, f"generates {made} frames but the study element is {element}")
        for label, p in (("path", self.resolved_path()), ("test_path", self.resolved_test_path())):
            if p is not None and not p.is_file():
                raise _err(f"{name}.{label}", f"file not found: {p}")


@dataclass(frozen=True)
class Pretraining:
    """How the source-element model is obtained: trained once per spec (cached), or given."""

    data: DataSource | None = None
    model: str | ModelSpec = "tiny"
    max_epochs: int = 30
    lr: float = 5e-3
    train_size: int | None = None
    val_size: int = 10
    test_size: int = 10
    batch_size: int = 4
    seed: int = 0
    pretrained: str | None = None

    def __post_init__(self) -> None:
        _check(self.max_epochs >= 1, "pretraining.max_epochs", "must be at least 1")
        _check(self.lr > 0 and math.isfinite(self.lr), "pretraining.lr", f"must be positive, got {self.lr}")
        _check(self.val_size >= 1, "pretraining.val_size", "must be at least 1")
        _check(self.batch_size >= 1, "pretraining.batch_size", "must be at least 1")
        _check(self.train_size is None or self.train_size >= 1, "pretraining.train_size", "must be at least 1")

    def model_spec(self) -> ModelSpec:
        return model_preset(self.model)

    def train_spec(self, element: str, data: Path, out: Path, *, compile: bool = False) -> TrainSpec:
        """The training run that makes the source model from ``data``."""
        return TrainSpec(
            element=element, data=str(data), out=str(out),
            test_data=str(self.data.resolved_test_path()) if self.data and self.data.test_path else None,
            lr=self.lr, max_epochs=self.max_epochs, train_size=self.train_size, val_size=self.val_size,
            test_size=self.test_size, batch_size=self.batch_size, seed=self.seed, model=self.model, compile=compile,
        )


@dataclass(frozen=True)
class SearchSpace:
    """What Optuna searches per cell. ``lr`` is log-uniform; the rest are categorical choices.

    ``freeze_depth`` and ``new_element_init`` (how a target element the source lacks starts:
    :data:`~mlptl.model.spec.NEW_ELEMENT_INITS`) apply to transfer cells only.
    """

    lr: tuple[float, float] = (5e-4, 2e-2)
    freeze_depth: tuple[int, ...] = (0, 1, 2)
    new_element_init: tuple[str, ...] = ("copy",)
    lr_schedule: tuple[str, ...] = ("plateau",)
    batch_size: tuple[int, ...] = (4,)

    def __post_init__(self) -> None:
        lo, hi = self.lr
        _check(0 < lo <= hi and math.isfinite(hi), "search.lr", f"need 0 < low <= high, got {self.lr}")
        _check(bool(self.lr_schedule), "search.lr_schedule", "name at least one schedule")
        for sched in self.lr_schedule:
            _check(sched in LR_SCHEDULES, "search.lr_schedule",
                   f"unknown schedule {sched!r}; choose from {', '.join(LR_SCHEDULES)}")
        _check(bool(self.batch_size) and all(b >= 1 for b in self.batch_size), "search.batch_size",
               f"need positive batch sizes, got {self.batch_size}")
        _check(bool(self.freeze_depth) and all(d >= 0 for d in self.freeze_depth), "search.freeze_depth",
               f"need depths >= 0, got {self.freeze_depth}")
        _check(bool(self.new_element_init) and set(self.new_element_init) <= set(NEW_ELEMENT_INITS),
               "search.new_element_init", f"choose from {', '.join(NEW_ELEMENT_INITS)}, got {self.new_element_init}")

    def fixed(self, init: str) -> dict[str, Any]:
        """The hyperparameters this space does not search (one choice), as training fields."""
        one = {"lr_schedule": self.lr_schedule, "batch_size": self.batch_size}
        if init == "transfer":
            one["freeze_depth"] = self.freeze_depth
            one["new_element_init"] = self.new_element_init
        return {k: v[0] for k, v in one.items() if len(v) == 1}


@dataclass(frozen=True)
class PrunerSpec:
    """An Optuna pruner, applied within each cell. ``options`` go to the pruner's constructor.

    ``patient`` wraps the median pruner with ``patience`` epochs of tolerance.
    """

    kind: str = "median"
    n_startup_trials: int = 2
    # why 0: docs/decisions.md
    n_warmup_steps: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.kind in PRUNERS, "pruner.kind", f"{self.kind!r} is not one of {', '.join(PRUNERS)}")
        _check(self.n_startup_trials >= 0 and self.n_warmup_steps >= 0, "pruner",
               "n_startup_trials and n_warmup_steps must be >= 0")


@dataclass(frozen=True)
class SearchStability:
    """A short MD check of every search trial that finishes, as a constraint of the search.

    Unstable trials (any failure criterion trips within ``steps`` at ``temperature``, default the study's
    highest stability temperature) can never be a cell's best: Optuna's TPE gets them as infeasible
    (``constraints_func``), and the best trial is chosen among the stable ones (all, if none is). The cost
    is ``steps`` MD steps per finished trial.
    """

    steps: int = 200
    temperature: float | None = None

    def __post_init__(self) -> None:
        _check(self.steps >= 1, "search_stability.steps", "must be at least 1")
        _check(self.temperature is None or self.temperature > 0, "search_stability.temperature",
               f"must be positive (K), got {self.temperature}")


@dataclass(frozen=True)
class WarmStart:
    """Seed a new study's cells from a finished study's best trials (Optuna ``enqueue_trial``).

    ``storage``: the finished study's store directory; ``study``: its name. Each new cell takes the
    ``top_k`` best finished configurations of the cell with the same id (or else the same init and the
    nearest training size), kept only where they lie in the new search space.
    """

    storage: str
    study: str
    top_k: int = 2

    def __post_init__(self) -> None:
        _check(self.top_k >= 1, "warm_start.top_k", "must be at least 1")

    def optuna_db(self) -> Path:
        """The finished study's Optuna store (``storage`` with ``~`` and ``$VARS`` expanded)."""
        return expand_path(self.storage).resolve() / OPTUNA_DB


@dataclass(frozen=True)
class EvaluationSpec:
    """The full evaluation of each cell's re-trained best models (search trials get force errors only).

    Stability runs NVT MD at each temperature (``stability_replicas`` runs of ``stability_steps``); the
    reference RDF comes from ``reference_steps`` of MD with the element's reference potential, computed
    once per study and cached. ``properties`` adds lattice constant, cohesive energy, bulk modulus and
    elastic constants against the reference (for a multi-element target: mixing energy and lattice constant
    against composition, :mod:`mlptl.evaluate.alloys`); ``property_md_steps`` > 0 adds RDF/ADF distances
    (partial RDFs for alloys).
    """

    stability_temperatures: tuple[float, ...] = (300.0, 900.0)
    stability_steps: int = 500
    stability_replicas: int = 1
    stability_timestep_fs: float = 1.0
    reference_steps: int = 1000
    properties: bool = True
    property_md_steps: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "stability_temperatures", tuple(float(t) for t in self.stability_temperatures))
        if self.stability_temperatures:
            try:
                self.stability()
            except InputError as e:
                raise field_error("evaluation", str(e)) from None
        _check(self.property_md_steps >= 0, "evaluation.property_md_steps", "must be >= 0")

    def stability(self) -> StabilityConfig | None:
        """The stability protocol these settings ask for (None: no stability runs)."""
        if not self.stability_temperatures:
            return None
        return StabilityConfig(
            temperatures=self.stability_temperatures, replicas=self.stability_replicas, steps=self.stability_steps,
            timestep_fs=self.stability_timestep_fs, reference_steps=self.reference_steps,
        )

    def property_config(self) -> PropertyConfig | None:
        """The property protocol these settings ask for (None: no properties)."""
        return PropertyConfig(md_steps=self.property_md_steps) if self.properties else None


@dataclass(frozen=True)
class Resources:
    """Per-trial resources for Ray; fractional GPUs pack several small trials on one device.

    ``trial_timeout_s``: the most wall time one attempt of a trial (search or final) may take, from its
    start to its recorded result. A trial past it (e.g. one that hangs) is stopped and recorded as failed
    with the reason "time limit of N s exceeded"; the study goes on, and neither Ray's retries
    (``max_failures``) nor ``--resume`` run it again. None: no limit.
    """

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int | None = None
    max_failures: int = 2
    trial_timeout_s: float | None = None

    def __post_init__(self) -> None:
        _check(self.cpus_per_trial > 0 and self.gpus_per_trial >= 0, "resources",
               "cpus_per_trial must be > 0 and gpus_per_trial >= 0")
        _check(self.max_concurrent_trials is None or self.max_concurrent_trials >= 1,
               "resources.max_concurrent_trials", "must be at least 1 (or None: as many as fit)")
        _check(self.max_failures >= 0, "resources.max_failures", "must be >= 0")
        t = self.trial_timeout_s
        _check(t is None or (isinstance(t, int | float) and not isinstance(t, bool) and math.isfinite(t) and t > 0),
               "resources.trial_timeout_s", f"must be a positive number of seconds (or None: no limit), got {t!r}")
