"""What a training run is given and what it returns: plain frozen data, no nequip, Ray or MLflow."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mlptl.errors import InputError
from mlptl.model.compiler import MISSING_CXX, cxx_compiler
from mlptl.model.spec import NEW_ELEMENT_INITS, ModelSpec, model_preset
from mlptl.serial import from_plain, to_plain
from mlptl.train.schedules import LR_SCHEDULES

__all__ = [
    "Init",
    "INITS",
    "LR_SCHEDULES",
    "MODEL_FILE",
    "METRICS_FILE",
    "HISTORY_FILE",
    "CHECKPOINT_DIR",
    "LAST_CHECKPOINT",
    "BEST_CHECKPOINT",
    "SPLITS",
    "split_file",
    "TrainingDiverged",
    "TrainSpec",
    "EpochReport",
    "TrainResult",
]

Init = Literal["scratch", "transfer"]
#: How a model's weights start: from random, or from a source model's (the study compares the two).
INITS: tuple[str, ...] = ("scratch", "transfer")
MODEL_FILE = "model.nequip.zip"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
#: Lightning checkpoints of a run directory: the last epoch (resume) and the best validation (packaging).
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
BEST_CHECKPOINT = "best.ckpt"
#: The splits a run trained, validated and was tested on, as extxyz files below its directory.
SPLITS: tuple[str, ...] = ("train", "val", "test")


def split_file(out: str | Path, split: str) -> Path:
    """The frames of one split (``train``, ``val``, ``test``) of the run in ``out``."""
    return Path(out) / "data" / f"{split}.extxyz"


class TrainingDiverged(RuntimeError):
    """The loss or a validation metric became NaN or infinite: the trial failed, not the study."""


def _tuple_or_none(x: Any) -> tuple[str, ...] | None:
    return None if x is None else tuple(str(g) for g in x)


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines one training run.

    ``split_seed`` fixes the test and validation frames independently of ``seed`` (weights, shuffling):
    trials that differ only in training size or seed then see the same test set. ``subset_seed`` (default:
    ``split_seed``) orders the training frames, of which a size-N set is the first N, so a 10-frame
    training set lies inside the 50-frame one; a replicate with another subset seed draws other frames.

    ``element`` is the target chemistry: one element (``"Ge"``) or several (``"Cu,Ni"``, ``"CuNi"``: stored
    as the label ``"Cu-Ni"``); :attr:`elements` are the model's type names. For transfer, ``element_map``
    says which source element a target element starts from where that is not the element itself (map
    mode), and ``new_element_init`` how an element the source lacks starts (``copy``: of ``source_type``
    or the source's only element; ``mean``; ``random``): :func:`mlptl.model.transfer.resolve_type_map`.

    ``model`` is a preset name, a :class:`ModelSpec`, or a ModelSpec's ``to_dict()`` (what arrives after
    a spec travelled through JSON, Ray or ``dataclasses.asdict``); a dict becomes a ModelSpec here.

    ``compile`` trains through nequip's train-time ``torch.compile`` (its ``compile_mode: compile``): faster
    epochs after a first epoch that compiles, so off by default (when it pays: docs/decisions.md). It needs
    a C++ compiler; the packaged model is the same eager model either way.

    The spec checks its own fields when built (an unknown element, init or schedule, a non-positive rate
    or size); :meth:`validate` adds what depends on the machine (files, a compiler).
    """

    element: str
    data: str
    out: str
    init: Init = "scratch"
    pretrained: str | None = None
    source_type: str | None = None
    element_map: dict[str, str] | None = None
    new_element_init: str = "copy"
    freeze_depth: int = 0
    lr: float = 1e-3
    lr_schedule: str = "plateau"
    max_epochs: int = 20
    train_size: int | None = None
    val_size: int = 10
    test_size: int | None = 20
    test_data: str | None = None
    train_groups: tuple[str, ...] | None = None
    test_groups: tuple[str, ...] | None = None
    batch_size: int = 4
    seed: int = 0
    split_seed: int = 0
    subset_seed: int | None = None
    model: str | ModelSpec = "tiny"
    energy_weight: float = 1.0
    force_weight: float = 1.0
    compile: bool = False

    def __post_init__(self) -> None:
        # Frozen: normalise through object.__setattr__, once, so every reader sees one type per field.
        if isinstance(self.model, Mapping):
            object.__setattr__(self, "model", ModelSpec.from_dict(self.model))
        elif not isinstance(self.model, str | ModelSpec):
            raise InputError(f"model must be a preset name, a ModelSpec or its dict, not {type(self.model).__name__}")
        for name in ("train_groups", "test_groups"):
            object.__setattr__(self, name, _tuple_or_none(getattr(self, name)))
        from mlptl.data.chemistry import Chemistry, check_element

        if isinstance(self.element, str) and len(self.element) <= 2:
            check_element(self.element)  # the common case, with its did-you-mean hint
        chemistry = Chemistry(self.element) if isinstance(self.element, str) else Chemistry(tuple(self.element))
        object.__setattr__(self, "element", chemistry.label)
        if self.element_map is not None:
            object.__setattr__(self, "element_map", {str(k): str(v) for k, v in dict(self.element_map).items()})
        self._check_fields()

    @property
    def elements(self) -> tuple[str, ...]:
        """The target's elements, sorted: the model's type names."""
        return tuple(self.element.split("-"))

    def _check_fields(self) -> None:
        from mlptl.data.chemistry import check_element

        for t, s in (self.element_map or {}).items():
            check_element(t, "element in the element map")
            check_element(s, "source element in the element map")
            if t not in self.elements:
                raise InputError(f"element map names {t!r}, which is not a target element ({', '.join(self.elements)})")
        if self.new_element_init not in NEW_ELEMENT_INITS:
            raise InputError(f"new element init must be one of {', '.join(NEW_ELEMENT_INITS)}, not {self.new_element_init!r}")
        if self.init not in INITS:
            raise InputError(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        if self.init == "transfer" and not self.pretrained:
            raise InputError("init 'transfer' needs a pretrained model (--pretrained MODEL.nequip.zip)")
        if self.init == "scratch" and self.freeze_depth:
            raise InputError("freeze depth applies to transfer only; scratch training has nothing to freeze")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr schedule {self.lr_schedule!r} unknown; choose one of {', '.join(LR_SCHEDULES)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"learning rate must be positive, not {self.lr}")
        if self.max_epochs < 1:
            raise InputError("max epochs must be at least 1")
        if self.train_size is not None and self.train_size < 1:
            raise InputError("training size must be at least 1")
        if self.val_size < 1:
            raise InputError("validation size must be at least 1")
        if self.batch_size < 1:
            raise InputError("batch size must be at least 1")
        if self.freeze_depth < 0:
            raise InputError("freeze depth must be >= 0")
        if self.init == "scratch":
            self.model_spec()  # raises on an unknown preset

    def model_spec(self) -> ModelSpec:
        return model_preset(self.model)

    @property
    def training_subset_seed(self) -> int:
        return self.split_seed if self.subset_seed is None else self.subset_seed

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-serialisable); ``TrainSpec.from_dict(spec.to_dict()) == spec``."""
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainSpec:
        return from_plain(cls, d, "training")

    def validate(self) -> None:
        """What depends on this machine (the files, a compiler): run before anything is written or launched."""
        if self.compile and cxx_compiler() is None:
            raise InputError(f"compile needs a C++ compiler for torch.compile on the CPU: {MISSING_CXX}")
        for path in (self.data, self.test_data, self.pretrained):
            if path is not None and not Path(path).exists():
                raise InputError("file not found", path=path)


@dataclass
class EpochReport:
    """What the per-epoch callback sees: flat metric names from :mod:`mlptl.metrics`."""

    epoch: int  # 1-based: the number of epochs completed
    metrics: dict[str, float]
    checkpoint: Path | None = None


@dataclass
class TrainResult:
    """A trained model and what training measured; test-set errors are the evaluation's job.

    ``metrics`` holds the training run's own figures (epochs, wall time, training frames, frozen
    tensors, best validation force MAE), also written to ``out/metrics.json``;
    ``mlptl.evaluate.forces.evaluate_test_set(result.model_path, result.test_path, element=..., out=result.out)``
    adds the test-set errors to both.
    """

    out: Path
    model_path: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    epochs_run: int
    stopped_early: bool
    test_path: Path
    data_paths: dict[str, Path] = field(default_factory=dict)
    frozen: list[str] = field(default_factory=list)
    element_init: dict[str, str] = field(default_factory=dict)  # transfer: how each element started, in words
