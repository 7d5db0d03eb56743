"""Study definitions: what a study compares, searches, evaluates and where it runs.

A study is plain data (frozen dataclasses), written in Python in ``studies/*.py``. :meth:`Study.validate`
checks all of it (elements, files, sizes, freeze depths, search ranges) before Ray starts, and names
the field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from mlptl.data.generate import GenerationSpec
from mlptl.errors import InputError
from mlptl.model.spec import ModelSpec, model_preset

__all__ = [
    "DataSource",
    "Pretraining",
    "SearchSpace",
    "PrunerSpec",
    "EvaluationSpec",
    "Resources",
    "Study",
    "Cell",
    "INITS",
    "PRUNERS",
    "DEFAULT_STORAGE",
    "SearchStability",
    "WarmStart",
]

INITS = ("scratch", "transfer")
#: Where a study keeps its stores unless it or the command line says otherwise.
DEFAULT_STORAGE = "mlptl-store"
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband", "patient", "wilcoxon", "threshold")
SAMPLERS = ("tpe", "random", "qmc")


def _err(field_name: str, message: str) -> InputError:
    from mlptl.study.validate import field_error

    return field_error(field_name, message)


@dataclass(frozen=True)
class DataSource:
    """Frames from a file (``path``, ``$VARS`` expanded) or generated from a reference (``generate``).

    ``test_path`` names a separate test file (e.g. mlearn's test.json); otherwise the test set is split
    off the data with the study's split seed, independently of the training size.
    """

    path: str | None = None
    generate: GenerationSpec | None = None
    test_path: str | None = None

    def resolved_path(self) -> Path | None:
        return Path(os.path.expandvars(os.path.expanduser(self.path))) if self.path else None

    def resolved_test_path(self) -> Path | None:
        return Path(os.path.expandvars(os.path.expanduser(self.test_path))) if self.test_path else None

    def check(self, name: str, element: str) -> None:
        if (self.path is None) == (self.generate is None):
            raise _err(name, "give exactly one of path= or generate=")
        if self.generate is not None and self.generate.element != element:
            raise _err(name, f"generates {self.generate.element} frames but the study element is {element}")
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

    def model_spec(self) -> ModelSpec:
        return model_preset(self.model)


@dataclass(frozen=True)
class SearchSpace:
    """What Optuna searches per cell. ``lr`` is log-uniform; the rest are categorical choices.

    ``freeze_depth`` applies to transfer cells only; scratch cells have nothing to freeze.
    """

    lr: tuple[float, float] = (5e-4, 2e-2)
    freeze_depth: tuple[int, ...] = (0, 1, 2)
    lr_schedule: tuple[str, ...] = ("plateau",)
    batch_size: tuple[int, ...] = (4,)


@dataclass(frozen=True)
class PrunerSpec:
    """An Optuna pruner, applied within each cell. ``options`` go to the pruner's constructor.

    ``patient`` wraps the median pruner with ``patience`` epochs of tolerance.
    """

    kind: str = "median"
    n_startup_trials: int = 2
    # 0: measured in bench/pruners.py (3 sampler seeds x 2 cells x 16 trials): warm-up 0, 2 or 5 epochs gave
    # the same best-configuration gaps (worst 4.8 %) and warm-up only cost epochs (46.9 % vs 55.2 % spent).
    n_warmup_steps: int = 0
    options: dict[str, Any] = field(default_factory=dict)


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


@dataclass(frozen=True)
class EvaluationSpec:
    """The full evaluation of each cell's re-trained best models (search trials get force errors only).

    Stability runs NVT MD at each temperature (``stability_replicas`` runs of ``stability_steps``); the
    reference RDF comes from ``reference_steps`` of MD with the element's reference potential, computed
    once per study and cached. ``properties`` adds lattice constant, cohesive energy, bulk modulus and
    elastic constants against the reference; ``property_md_steps`` > 0 adds RDF/ADF distances.
    """

    stability_temperatures: tuple[float, ...] = (300.0, 900.0)
    stability_steps: int = 500
    stability_replicas: int = 1
    stability_timestep_fs: float = 1.0
    reference_steps: int = 1000
    properties: bool = True
    property_md_steps: int = 0


@dataclass(frozen=True)
class Resources:
    """Per-trial resources for Ray; fractional GPUs pack several small trials on one device."""

    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent_trials: int | None = None
    max_failures: int = 2


@dataclass(frozen=True)
class Cell:
    """One (init, training size) pair, and for transfer in a study of several sources, the source: search
    and pruning compare trials within a cell only."""

    init: str
    train_size: int
    source: str | None = None

    @property
    def id(self) -> str:
        prefix = f"{self.source}-" if self.source else ""
        return f"{prefix}{self.init}-n{self.train_size}"


SELECTIONS = ("val", "val_stable")


@dataclass(frozen=True)
class Study:
    """A comparison of scratch and transfer training for one target element.

    Replicates: ``seeds[r]`` is replicate r. Each replicate draws its own nested training subset (subset r
    of size n is a prefix of subset r at every larger size) from the frames left after the study's test
    and validation sets, which are fixed for the whole study so that every trial and replicate is scored
    on the same frames; the weight seed varies with r too. Scratch and transfer replicate r share subset
    r, so they pair. ``fixed_subset`` gives every replicate subset 0 (an ablation: weight noise only).

    ``selection``: which validation criterion picks each cell's model to register: ``val`` (lowest best
    validation force MAE) or ``val_stable`` (the same among the MD-stable replicates, if any is).
    Test data is reported, never used to choose.

    ``target_reference``: the reference potential of the target element used by the evaluation
    (reference RDF, properties); default: the one that generated the target data, none for files.

    Source selection: ``source_element=("Si", "C")`` with ``pretraining={"Si": ..., "C": ...}`` compares
    transfer from each source (cells ``Si-transfer-n10``, ``C-transfer-n10``) against one shared scratch
    baseline; each source is pretrained once, and the report ranks the sources by data-savings factor.

    ``compile``: every training of the study (pretraining, trials) through nequip's train-time
    ``torch.compile``. On 2 CPU cores it cut the epoch to 0.34x (tiny) and 0.37x (small) of eager, but the
    first epoch of each process compiles, 20 s with a warm Inductor cache and 95-150 s cold
    (bench/train_compile.py): it pays from about 20 epochs per trial on a node whose cache is warm. Off by
    default because the quick start's trials are shorter than that; the numbers are identical to 1e-8.
    """

    name: str
    source_element: str | tuple[str, ...]
    target_element: str
    pretraining: Pretraining | dict[str, Pretraining]
    target_data: DataSource
    train_sizes: tuple[int, ...] = (10, 50)
    inits: tuple[str, ...] = INITS
    search: SearchSpace | dict[str, SearchSpace] = SearchSpace()
    trials_per_cell: int = 4
    seeds: tuple[int, ...] = (0, 1, 2)
    max_epochs: int = 20
    sampler: str = "tpe"
    sampler_seed: int = 0
    pruner: PrunerSpec = PrunerSpec()
    evaluation: EvaluationSpec = EvaluationSpec()
    resources: Resources = Resources()
    model: str | ModelSpec | None = None
    val_size: int = 10
    test_size: int = 20
    train_groups: tuple[str, ...] | None = None
    test_groups: tuple[str, ...] | None = None
    split_seed: int = 0
    fixed_subset: bool = False
    selection: str = "val"
    target_reference: str | None = None
    search_stability: SearchStability | None = None
    warm_start: WarmStart | None = None
    compile: bool = False
    storage: str = DEFAULT_STORAGE
    tracking_uri: str | None = None
    description: str = ""

    # ------------------------------------------------------------ derived
    @property
    def sources(self) -> tuple[str, ...]:
        s = self.source_element
        return (s,) if isinstance(s, str) else tuple(s)

    def pretraining_for(self, source: str) -> Pretraining:
        if isinstance(self.pretraining, Pretraining):
            return self.pretraining
        try:
            return self.pretraining[source]
        except KeyError:
            raise _err("pretraining", f"no Pretraining for source element {source!r}") from None

    def cells(self) -> list[Cell]:
        several = len(self.sources) > 1
        out = []
        for init in self.inits:
            for n in self.train_sizes:
                if init == "transfer" and several:
                    out += [Cell(init, n, src) for src in self.sources]
                else:
                    out.append(Cell(init, n))
        return out

    def subset_seed(self, replicate: int) -> int:
        """The training-subset draw of replicate r (r = 0 is the split seed's own order)."""
        return self.split_seed if self.fixed_subset else self.split_seed + 1000 * replicate

    def reference_for_target(self) -> str | None:
        if self.target_reference is not None:
            return self.target_reference
        gen = self.target_data.generate
        return gen.reference if gen is not None else None

    def search_md(self) -> dict[str, float] | None:
        """The search's MD check as plain data for the trials, or None."""
        check = self.search_stability
        if check is None:
            return None
        temps = self.evaluation.stability_temperatures
        t = check.temperature if check.temperature is not None else (max(temps) if temps else 300.0)
        return {"steps": int(check.steps), "temperature": float(t)}

    def search_for(self, init: str) -> SearchSpace:
        """The search space of one init: one shared space, or a dict keyed by init."""
        if isinstance(self.search, SearchSpace):
            return self.search
        return self.search.get(init, SearchSpace())

    def target_model_spec(self) -> ModelSpec:
        """Scratch models use the pretraining architecture unless the study names another."""
        return model_preset(self.model) if self.model is not None else self.pretraining_for(self.sources[0]).model_spec()

    def storage_dir(self) -> Path:
        return Path(os.path.expandvars(os.path.expanduser(self.storage))).resolve()

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def with_overrides(self, **changes) -> Study:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    # ------------------------------------------------------------ validation
    def validate(self, *, check_data: bool = True) -> None:
        """Every check that needs no training (:func:`mlptl.study.validate.validate_study`)."""
        from mlptl.study.validate import validate_study

        validate_study(self, check_data=check_data)


def _plain(obj):
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
