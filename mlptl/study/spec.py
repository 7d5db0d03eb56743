"""Study definitions: what a study compares, searches, evaluates and where it runs.

A study is plain data (frozen dataclasses), written in Python in ``studies/*.py``. Each dataclass checks
its own fields when it is built (an unknown pruner, a negative temperature, an empty search range), as
Optuna's distributions do; :meth:`Study.validate` adds the checks across fields and against files and
models (:mod:`mlptl.study.validate`) before Ray starts. Every error names the study field that is wrong.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlptl.data.chemistry import Composition
from mlptl.fsutil import expand_path
from mlptl.model.spec import ModelSpec, model_preset
from mlptl.serial import to_plain
from mlptl.study.pruners import PRUNERS
from mlptl.study.samplers import SAMPLERS
from mlptl.study.sections import (
    DataSource,
    EvaluationSpec,
    Pretraining,
    PrunerSpec,
    Resources,
    SearchSpace,
    SearchStability,
    StoreLayout,
    WarmStart,
)
from mlptl.study.validate import check_field as _check
from mlptl.study.validate import field_error, validate_study
from mlptl.train.spec import INITS, TrainSpec

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

#: Where a study keeps its stores unless it or the command line says otherwise.
DEFAULT_STORAGE = "mlptl-store"
#: How each cell's model to register is chosen, on validation data only: the lowest best validation force
#: MAE (``val``), or the same among the MD-stable replicates if any is (``val_stable``).
SELECTIONS = ("val", "val_stable")

_err = field_error


def _chemistry(text: str, field_name: str):
    """A study's source or target as a :class:`~mlptl.data.chemistry.Chemistry`, errors naming the field."""
    from mlptl.data.chemistry import Chemistry
    from mlptl.errors import InputError

    try:
        return Chemistry(text)
    except InputError as e:
        raise _err(field_name, str(e)) from None


def _positive_ints(values: tuple[int, ...], field_name: str) -> None:
    _check(bool(values) and all(int(v) >= 1 for v in values), field_name, f"need positive values, got {values}")


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

    Chemistry: the target and each source may be several elements (``target_element="Cu,Ni"``; a source
    ``"Au-Cu-Ni"``). Elements the source knows start from themselves (extend: Cu -> CuNi; subset: a CuNiAu
    model -> CuAu); ``element_map`` starts a target element from a named source element (map: SiC -> GeC
    with ``{"Ge": "Si"}``); any other new element starts as ``search.new_element_init`` says (a copy of the
    source's only element, the mean of the source's elements, or random), which may be searched like the
    freeze depth. For extend, every final replicate is also scored on the source's own test frames
    (forgetting).

    Source selection: ``source_element=("Si", "C")`` with ``pretraining={"Si": ..., "C": ...}`` compares
    transfer from each source (cells ``Si-transfer-n10``, ``C-transfer-n10``) against one shared scratch
    baseline; each source is pretrained once, and the report ranks the sources by data-savings factor.

    ``compile``: every training of the study (pretraining, trials) through nequip's train-time
    ``torch.compile``: faster epochs after a first epoch that compiles; off by default (when it pays:
    docs/decisions.md). The numbers are the same.
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
    element_map: dict[str, str] | None = None
    search_stability: SearchStability | None = None
    warm_start: WarmStart | None = None
    compile: bool = False
    storage: str = DEFAULT_STORAGE
    tracking_uri: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        _check(bool(self.name) and not any(c in self.name for c in "/\\:"), "name",
               f"{self.name!r} must be non-empty and contain no '/', '\\' or ':'")
        _check(bool(self.sources), "source_element", "name at least one source element")
        for src in self.sources:
            _chemistry(src, "source_element")
        _check(len(set(self.sources)) == len(self.sources), "source_element", f"source elements repeat: {self.sources}")
        target = _chemistry(self.target_element, "target_element")
        for t, src in (self.element_map or {}).items():
            _check(t in target, "element_map", f"{t!r} is not a target element ({target})")
            _check(any(src in _chemistry(c, "source_element") for c in self.sources), "element_map",
                   f"{t} starts from {src!r}, which no source has ({', '.join(self.sources)})")
        _check(bool(self.inits), "inits", "no inits to compare")
        for init in self.inits:
            _check(init in INITS, "inits", f"{init!r} is not one of {INITS}")
        _positive_ints(self.train_sizes, "train_sizes")
        _check(self.trials_per_cell >= 1, "trials_per_cell", "must be at least 1")
        _check(self.max_epochs >= 1, "max_epochs", "must be at least 1")
        _check(bool(self.seeds), "seeds", "need at least one seed for re-training each cell's best")
        _check(len(set(self.seeds)) == len(self.seeds), "seeds", f"replicate seeds must differ, got {self.seeds}")
        _check(self.sampler in SAMPLERS, "sampler", f"{self.sampler!r} is not one of {', '.join(SAMPLERS)}")
        _check(self.selection in SELECTIONS, "selection", f"{self.selection!r} is not one of {SELECTIONS}")
        _check(self.val_size >= 1, "val_size", "must be at least 1")
        if isinstance(self.search, dict):
            _check(not set(self.search) - set(INITS), "search", f"keys must be inits {INITS}, got {sorted(self.search)}")

    # ------------------------------------------------------------ derived
    @property
    def target_elements(self) -> tuple[str, ...]:
        """The target's elements, sorted: its models' type names."""
        return _chemistry(self.target_element, "target_element").elements

    def source_elements(self, source: str) -> tuple[str, ...]:
        return _chemistry(source, "source_element").elements

    def extends(self, source: str) -> bool:
        """Whether the target keeps every element of ``source`` and adds some (extend mode): the case in
        which the source's own frames measure forgetting."""
        src, target = set(self.source_elements(source)), set(self.target_elements)
        return src < target

    def alloy_compositions(self) -> tuple[str, ...]:
        """Where a multi-element target's alloy properties are evaluated: the random-alloy compositions its
        generated data samples (none for one element; the evaluation's defaults for data from a file)."""
        if len(self.target_elements) == 1:
            return ()
        gen = self.target_data.generate
        comps = tuple(c for c in getattr(gen, "compositions", ()) if len(Composition.parse(c).elements) > 1)
        return comps

    def new_elements(self, source: str) -> tuple[str, ...]:
        """Target elements that neither ``source`` has nor the element map starts from one it has."""
        src = set(self.source_elements(source))
        return tuple(t for t in self.target_elements if t not in src and t not in (self.element_map or {}))

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

    def search_md(self) -> SearchStability | None:
        """The search's MD check with its temperature resolved (default: the highest stability one), or None."""
        check = self.search_stability
        if check is None or check.temperature is not None:
            return check
        temps = self.evaluation.stability_temperatures
        return replace(check, temperature=max(temps) if temps else 300.0)

    def search_for(self, init: str) -> SearchSpace:
        """The search space of one init: one shared space, or a dict keyed by init."""
        if isinstance(self.search, SearchSpace):
            return self.search
        return self.search.get(init, SearchSpace())

    def target_model_spec(self) -> ModelSpec:
        """Scratch models use the pretraining architecture unless the study names another."""
        return model_preset(self.model) if self.model is not None else self.pretraining_for(self.sources[0]).model_spec()

    def storage_dir(self) -> Path:
        return expand_path(self.storage).resolve()

    def stores(self) -> StoreLayout:
        return StoreLayout(self.storage_dir())

    def train_spec(self, cell: Cell, params: dict[str, Any], replicate: int, *, data: Path, test_data: Path | None,
                   pretrained: Path | None, out: Path) -> TrainSpec:
        """The training run of one trial: the study's training settings, the cell's init and size, the
        search space's fixed values, Optuna's ``params`` (named as training fields) and the replicate's
        data draw and weight seed."""
        source = cell.source or self.sources[0]
        transfer = cell.init == "transfer"
        one_source_element = len(self.source_elements(source)) == 1
        return TrainSpec(
            element=self.target_element, data=str(data), out=str(out), init=cell.init,
            pretrained=str(pretrained) if transfer else None,
            source_type=source if transfer and one_source_element else None,
            element_map=self.element_map if transfer else None,
            max_epochs=self.max_epochs, train_size=cell.train_size, val_size=self.val_size, test_size=self.test_size,
            test_data=str(test_data) if test_data else None, train_groups=self.train_groups,
            test_groups=self.test_groups, seed=self.seeds[replicate], split_seed=self.split_seed,
            subset_seed=self.subset_seed(replicate),
            model=self.model if self.model is not None else self.pretraining_for(source).model,
            compile=self.compile, **{**self.search_for(cell.init).fixed(cell.init), **params},
        )

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def with_overrides(self, **changes) -> Study:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    # ------------------------------------------------------------ validation
    def validate(self, *, check_data: bool = True) -> None:
        """The checks across fields and against files, models and stores, that need no training
        (:func:`mlptl.study.validate.validate_study`); each field checked itself when built."""
        validate_study(self, check_data=check_data)
