"""Study definitions: what a study compares, searches, evaluates and where it runs.

A study is plain data (frozen dataclasses), written in Python in ``studies/*.py``. :meth:`Study.validate`
checks all of it (elements, files, sizes, freeze depths, search ranges) before Ray starts, and names
the field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any

from mlptl.data.generate import GenerationSpec
from mlptl.errors import InputError
from mlptl.model.spec import ModelSpec, max_freeze_depth, model_preset

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
]

INITS = ("scratch", "transfer")
#: Where a study keeps its stores unless it or the command line says otherwise.
DEFAULT_STORAGE = "mlptl-store"
PRUNERS = ("none", "median", "percentile", "successive_halving", "hyperband", "patient", "wilcoxon", "threshold")
SAMPLERS = ("tpe", "random", "qmc")


def _err(field_name: str, message: str) -> InputError:
    return InputError(f"study field {field_name}: {message}")


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
    n_warmup_steps: int = 2
    options: dict[str, Any] = field(default_factory=dict)


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
    """One (init, training size) pair: search and pruning compare trials within a cell only."""

    init: str
    train_size: int

    @property
    def id(self) -> str:
        return f"{self.init}-n{self.train_size}"


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
    """

    name: str
    source_element: str
    target_element: str
    pretraining: Pretraining
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
    storage: str = DEFAULT_STORAGE
    tracking_uri: str | None = None
    description: str = ""

    # ------------------------------------------------------------ derived
    def cells(self) -> list[Cell]:
        return [Cell(init, n) for init in self.inits for n in self.train_sizes]

    def subset_seed(self, replicate: int) -> int:
        """The training-subset draw of replicate r (r = 0 is the split seed's own order)."""
        return self.split_seed if self.fixed_subset else self.split_seed + 1000 * replicate

    def reference_for_target(self) -> str | None:
        if self.target_reference is not None:
            return self.target_reference
        gen = self.target_data.generate
        return gen.reference if gen is not None else None

    def search_for(self, init: str) -> SearchSpace:
        """The search space of one init: one shared space, or a dict keyed by init."""
        if isinstance(self.search, SearchSpace):
            return self.search
        return self.search.get(init, SearchSpace())

    def target_model_spec(self) -> ModelSpec:
        """Scratch models use the pretraining architecture unless the study names another."""
        return model_preset(self.model) if self.model is not None else self.pretraining.model_spec()

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
        """Every check that needs no training. Raises InputError naming the field."""
        from ase.data import atomic_numbers

        if not self.name or any(c in self.name for c in "/\\:"):
            raise _err("name", f"{self.name!r} must be non-empty and contain no '/', '\\' or ':'")
        for f in ("source_element", "target_element"):
            if getattr(self, f) not in atomic_numbers:
                raise _err(f, f"unknown element {getattr(self, f)!r}")
        for init in self.inits:
            if init not in INITS:
                raise _err("inits", f"{init!r} is not one of {INITS}")
        if not self.inits:
            raise _err("inits", "no inits to compare")
        if not self.train_sizes or any(int(n) < 1 for n in self.train_sizes):
            raise _err("train_sizes", f"need positive sizes, got {self.train_sizes}")
        if self.trials_per_cell < 1:
            raise _err("trials_per_cell", "must be at least 1")
        if self.max_epochs < 1:
            raise _err("max_epochs", "must be at least 1")
        if not self.seeds:
            raise _err("seeds", "need at least one seed for re-training each cell's best")
        if isinstance(self.search, dict) and set(self.search) - set(INITS):
            raise _err("search", f"keys must be inits {INITS}, got {sorted(self.search)}")
        for init in self.inits:
            space = self.search_for(init)
            lo, hi = space.lr
            if not (0 < lo <= hi and math.isfinite(hi)):
                raise _err("search.lr", f"need 0 < low <= high, got {space.lr}")
            for sched in space.lr_schedule:
                if sched not in ("constant", "plateau", "cosine"):
                    raise _err("search.lr_schedule", f"unknown schedule {sched!r}")
            if not space.batch_size or any(b < 1 for b in space.batch_size):
                raise _err("search.batch_size", f"need positive batch sizes, got {space.batch_size}")
        if self.selection not in SELECTIONS:
            raise _err("selection", f"{self.selection!r} is not one of {SELECTIONS}")
        if len(set(self.seeds)) != len(self.seeds):
            raise _err("seeds", f"replicate seeds must differ, got {self.seeds}")
        if self.target_reference is not None:
            from mlptl.data.references import get_reference

            try:
                get_reference(self.target_element, self.target_reference)
            except InputError as e:
                raise _err("target_reference", str(e)) from None
        if self.sampler not in SAMPLERS:
            raise _err("sampler", f"{self.sampler!r} is not one of {SAMPLERS}")
        if self.pruner.kind not in PRUNERS:
            raise _err("pruner.kind", f"{self.pruner.kind!r} is not one of {PRUNERS}")
        if self.resources.cpus_per_trial <= 0 or self.resources.gpus_per_trial < 0:
            raise _err("resources", "cpus_per_trial must be > 0 and gpus_per_trial >= 0")
        try:
            self.pretraining.model_spec()
            target_spec = self.target_model_spec()
        except InputError as e:
            raise _err("model", str(e)) from None
        self._check_pretraining()
        depth_max = max_freeze_depth(self._source_spec() or target_spec)
        if "transfer" in self.inits:
            depths = self.search_for("transfer").freeze_depth
            bad = [d for d in depths if not 0 <= d <= depth_max]
            if bad or not depths:
                raise _err(
                    "search.freeze_depth",
                    f"{list(depths)} out of range: the source model has "
                    f"{depth_max - 1} Allegro layers, so depths run from 0 to {depth_max}",
                )
        self.target_data.check("target_data", self.target_element)
        if self.test_size < 1 and not self.target_data.test_path:
            raise _err("test_size", "must be at least 1 unless target_data names a test_path")
        if self.val_size < 1:
            raise _err("val_size", "must be at least 1")
        if check_data:
            self._check_sizes()

    def _source_spec(self) -> ModelSpec | None:
        if self.pretraining.pretrained:
            from mlptl.model.transfer import load_source

            return load_source(self.pretraining.pretrained).spec()
        return None

    def _check_pretraining(self) -> None:
        p = self.pretraining
        if "transfer" not in self.inits:
            return
        if p.pretrained:
            path = Path(os.path.expandvars(os.path.expanduser(p.pretrained)))
            if not path.is_file():
                raise _err("pretraining.pretrained", f"file not found: {path}")
            from mlptl.model.calculator import model_type_names

            types = model_type_names(path)
            if self.source_element not in types:
                raise _err("pretraining.pretrained", f"model knows {types}, not the source element {self.source_element}")
            return
        if p.data is None:
            raise _err("pretraining", "give data= to pretrain on, or pretrained= (an existing *.nequip.zip)")
        p.data.check("pretraining.data", self.source_element)
        if p.test_size < 1 and not p.data.test_path:
            raise _err("pretraining.test_size", "must be at least 1 unless the data names a test_path")

    def _check_sizes(self) -> None:
        """Split the target data exactly as trials will, and check the largest training set fits."""
        test = 0 if self.target_data.test_path else self.test_size
        if self.target_data.generate is not None:
            available = self.target_data.generate.n_frames
            room = available - test - self.val_size
        else:
            from mlptl.data.readers import read_frames
            from mlptl.data.splits import split_frames

            path = self.target_data.resolved_path()
            frames = read_frames(path)
            available = len(frames)
            split = split_frames(
                frames,
                n_test=test,
                n_val=self.val_size,
                seed=self.split_seed,
                test_groups=self.test_groups,
                train_groups=self.train_groups,
                path=path,
            )
            room = len(split.train)
        if max(self.train_sizes) > room:
            raise _err(
                "train_sizes",
                f"largest training size {max(self.train_sizes)} exceeds the {room} training frames the "
                f"target data leaves ({available} frames, minus {test} test and {self.val_size} validation)",
            )


def _plain(obj):
    if is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    return obj
