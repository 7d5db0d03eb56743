"""One training run: a :class:`TrainSpec` in, a packaged model and its metrics out.

This is the function every study trial calls. It runs in-process through nequip's own Lightning machinery
(the same data module, training module and trainer ``nequip-train`` builds), reports after every epoch to a
callback that may stop the run, and checkpoints every epoch so that an interrupted run continues. Ray,
Optuna and MLflow wrap it from outside; none of them is imported here.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from mlptl import metrics as M
from mlptl.errors import InputError
from mlptl.model.spec import ModelSpec, allegro_model_config, model_preset

log = logging.getLogger(__name__)

__all__ = ["TrainSpec", "TrainResult", "EpochReport", "TrainingDiverged", "train", "prepare", "prepare_data"]

Init = Literal["scratch", "transfer"]
LR_SCHEDULES = ("constant", "plateau", "cosine")
MODEL_FILE = "model.nequip.zip"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"


class TrainingDiverged(RuntimeError):
    """The loss or a validation metric became NaN or infinite: the trial failed, not the study."""


@dataclass(frozen=True)
class TrainSpec:
    """Everything that determines one training run.

    ``split_seed`` fixes the test and validation frames and the order in which training frames are
    drawn, independently of ``seed`` (weights, shuffling): trials that differ only in training size or
    seed then see the same test set, and a 10-frame training set lies inside the 50-frame one.
    """

    element: str
    data: str
    out: str
    init: Init = "scratch"
    pretrained: str | None = None
    source_type: str | None = None
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
    model: str | ModelSpec = "tiny"
    energy_weight: float = 1.0
    force_weight: float = 1.0

    def model_spec(self) -> ModelSpec:
        return model_preset(self.model)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model if isinstance(self.model, str) else self.model.to_dict()
        return d

    def validate(self) -> None:
        """Cheap checks that need no data: run before anything is written or launched."""
        from ase.data import atomic_numbers

        if self.element not in atomic_numbers:
            raise InputError(f"unknown element {self.element!r}")
        if self.init not in ("scratch", "transfer"):
            raise InputError(f"init must be 'scratch' or 'transfer', not {self.init!r}")
        if self.init == "transfer" and not self.pretrained:
            raise InputError("init 'transfer' needs a pretrained model (--pretrained MODEL.nequip.zip)")
        if self.init == "scratch" and self.freeze_depth:
            raise InputError("freeze depth applies to transfer only; scratch training has nothing to freeze")
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(
                f"lr schedule {self.lr_schedule!r} unknown; choose one of {', '.join(LR_SCHEDULES)}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"learning rate must be positive, not {self.lr}")
        if self.max_epochs < 1:
            raise InputError("max epochs must be at least 1")
        if self.train_size is not None and self.train_size < 1:
            raise InputError("training size must be at least 1")
        if self.val_size < 1:
            raise InputError("validation size must be at least 1")
        if self.freeze_depth < 0:
            raise InputError("freeze depth must be >= 0")
        if self.init == "scratch":
            self.model_spec()  # raises on an unknown preset
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
    out: Path
    model_path: Path
    metrics: dict[str, float]
    history: list[dict[str, float]]
    epochs_run: int
    stopped_early: bool
    frozen: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- data
def prepare_data(spec: TrainSpec, out: Path) -> dict[str, Path]:
    """Read, validate and split the data; write train/val/test extxyz files for nequip to read."""
    from mlptl.data.readers import read_frames, write_frames
    from mlptl.data.splits import nested_subsets, split_frames

    frames = read_frames(spec.data)
    found = sorted({s for a in frames for s in a.get_chemical_symbols()})
    if found != [spec.element]:
        raise InputError(f"expected frames of {spec.element} only, found elements {found}", path=spec.data)
    if spec.test_data:
        test = read_frames(spec.test_data)
        split = split_frames(
            frames, n_test=0, n_val=spec.val_size, seed=spec.split_seed, train_groups=spec.train_groups, path=spec.data
        )
        split = replace(split, test=test)
    else:
        split = split_frames(
            frames,
            n_test=spec.test_size,
            n_val=spec.val_size,
            seed=spec.split_seed,
            test_groups=spec.test_groups,
            train_groups=spec.train_groups,
            path=spec.data,
        )
    train = split.train
    if spec.train_size is not None:
        train = nested_subsets(split.train, [spec.train_size], seed=spec.split_seed, path=spec.data)[
            spec.train_size
        ]
    paths = {}
    data_dir = out / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for name, subset in (("train", train), ("val", split.val), ("test", split.test)):
        p = data_dir / f"{name}.extxyz"
        write_frames(subset, p)
        paths[name] = p
    log.info(
        "data: %d train, %d val, %d test frames of %s",
        len(train),
        len(split.val),
        len(split.test),
        spec.element,
    )
    return paths


def _data_config(spec: TrainSpec, paths: dict[str, Path], r_max: float) -> dict[str, Any]:
    el = spec.element
    loader = {"_target_": "torch.utils.data.DataLoader"}
    return {
        "_target_": "nequip.data.datamodule.ASEDataModule",
        "seed": int(spec.seed),
        "train_file_path": str(paths["train"]),
        "val_file_path": str(paths["val"]),
        "test_file_path": str(paths["test"]),
        "transforms": [
            {"_target_": "nequip.data.transforms.NeighborListTransform", "r_max": float(r_max)},
            {
                "_target_": "nequip.data.transforms.ChemicalSpeciesToAtomTypeMapper",
                "model_type_names": [el],
                "chemical_species_to_atom_type_map": {el: el},
            },
        ],
        "train_dataloader": {**loader, "batch_size": spec.batch_size, "shuffle": True},
        "val_dataloader": {**loader, "batch_size": max(spec.batch_size, 8)},
        "test_dataloader": {**loader, "batch_size": max(spec.batch_size, 8)},
        "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager", "type_names": [el]},
    }


def _lr_scheduler_config(spec: TrainSpec) -> dict[str, Any] | None:
    if spec.lr_schedule == "constant":
        return None
    if spec.lr_schedule == "plateau":
        return {
            "scheduler": {
                "_target_": "torch.optim.lr_scheduler.ReduceLROnPlateau",
                "factor": 0.5,
                "patience": 3,
            },
            "monitor": "val0_epoch/weighted_sum",
            "interval": "epoch",
            "frequency": 1,
        }
    return {
        "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "T_max": spec.max_epochs},
        "interval": "epoch",
        "frequency": 1,
    }


def _training_module_config(spec: TrainSpec, model_cfg: dict[str, Any]) -> dict[str, Any]:
    metric_coeffs = {
        "per_atom_energy_mae": spec.energy_weight,
        "forces_mae": spec.force_weight,
        "per_atom_energy_rmse": None,
        "forces_rmse": None,
        "total_energy_mae": None,
    }
    metrics = {"_target_": "nequip.train.EnergyForceMetrics", "coeffs": metric_coeffs}
    cfg = {
        "_target_": "nequip.train.NequIPLightningModule",
        "model": model_cfg,
        "loss": {
            "_target_": "nequip.train.EnergyForceLoss",
            "per_atom_energy": True,
            "coeffs": {"total_energy": spec.energy_weight, "forces": spec.force_weight},
        },
        "val_metrics": metrics,
        "test_metrics": metrics,
        "optimizer": {
            "_target_": "torch.optim.Adam",
            "lr": float(spec.lr),
            "param_groups": {"_target_": "mlptl.model.transfer.trainable_param_groups"},
        },
    }
    sched = _lr_scheduler_config(spec)
    if sched is not None:
        cfg["lr_scheduler"] = sched
    return cfg


def _model_config(spec: TrainSpec, stats: dict[str, Any], source) -> tuple[dict[str, Any], ModelSpec]:
    el = spec.element
    shifts = {el: float(stats["per_atom_energy_mean"])}
    scales = {el: float(stats["forces_rms"])}
    if source is None:
        mspec = spec.model_spec()
        return (
            allegro_model_config(
                mspec,
                type_names=[el],
                seed=spec.seed,
                avg_num_neighbors=float(stats["num_neighbors_mean"]),
                per_type_energy_shifts=shifts,
                per_type_energy_scales=scales,
            ),
            mspec,
        )
    # Transfer: the source's architecture and neighbour normalisation; target type names; re-fitted
    # energy shift and scale.
    cfg = dict(source.model_config)
    cfg.update(
        type_names=[el],
        seed=int(spec.seed),
        per_type_energy_shifts=shifts,
        per_type_energy_scales=scales,
    )
    return cfg, source.spec()


# ---------------------------------------------------------------- callback
def _make_epoch_callback(on_epoch, history: list, ckpt_dir: Path, state: dict):
    import lightning

    class EpochCallback(lightning.Callback):
        """Collects nequip's validation metrics after each epoch, checks them, asks whether to stop.

        Validation metrics exist in ``on_validation_end`` (not yet in ``on_validation_epoch_end``).
        """

        def on_train_epoch_start(self, trainer, pl_module):
            state["t0"] = time.perf_counter()

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            m = M.from_nequip({k: float(v) for k, v in trainer.callback_metrics.items()})
            epoch = trainer.current_epoch + 1
            m[M.EPOCH] = epoch
            m[M.EPOCH_TIME] = time.perf_counter() - state.get("t0", time.perf_counter())
            m[M.LEARNING_RATE] = float(trainer.optimizers[0].param_groups[0]["lr"])
            bad = [k for k, v in m.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"non-finite {', '.join(sorted(bad))} after epoch {epoch}")
            history.append(m)

        def on_train_epoch_end(self, trainer, pl_module):
            # Lightning runs its checkpoint callbacks after ours, so last.ckpt would still hold the
            # previous epoch: save it here, then report, so that every reported epoch has its own
            # checkpoint and a stopped or crashed run resumes at the next epoch.
            if not history or history[-1][M.EPOCH] != trainer.current_epoch + 1:
                return
            train_metrics = M.from_nequip({k: float(v) for k, v in trainer.callback_metrics.items()})
            history[-1].update({k: v for k, v in train_metrics.items() if k.startswith("train_")})
            _write_history(ckpt_dir.parent, history)
            trainer.save_checkpoint(str(ckpt_dir / "last.ckpt"))
            if on_epoch is not None:
                m = history[-1]
                stop = on_epoch(EpochReport(epoch=int(m[M.EPOCH]), metrics=dict(m), checkpoint=ckpt_dir / "last.ckpt"))
                if stop:
                    log.info("stop requested after epoch %d", m[M.EPOCH])
                    state["stopped"] = True
                    trainer.should_stop = True

    return EpochCallback()


# ---------------------------------------------------------------- training
@dataclass
class Prepared:
    """A run ready to fit: data written, model built (weights transferred, blocks frozen)."""

    spec: TrainSpec
    out: Path
    paths: dict[str, Path]
    data_config: dict[str, Any]
    datamodule: Any
    module: Any
    model_spec: ModelSpec
    frozen: list[str]

    @property
    def graph_model(self):
        return self.module.model["sole_model"]


def _load_checked_source(spec: TrainSpec):
    from mlptl.model.transfer import load_source

    source = load_source(spec.pretrained)
    if len(source.type_names) != 1 and spec.source_type is None:
        raise InputError(
            f"pretrained model has types {source.type_names}: say which one {spec.element} starts from (source_type)",
            path=spec.pretrained,
        )
    src_type = spec.source_type or source.type_names[0]
    if src_type not in source.type_names:
        raise InputError(
            f"pretrained model has no type {src_type!r} (it has {source.type_names})", path=spec.pretrained
        )
    depth_max = 1 + source.num_layers
    if spec.freeze_depth > depth_max:
        raise InputError(
            f"freeze depth {spec.freeze_depth} is beyond the pretrained model: it has {source.num_layers} "
            f"Allegro layers, so the deepest freeze is {depth_max} (everything but the readout)",
            path=spec.pretrained,
        )
    return source


def prepare(spec: TrainSpec) -> Prepared:
    """Validate, split and write the data, build the model; nothing is trained yet.

    Every check that can fail on bad input runs before the first file is written.
    """
    spec.validate()
    source = _load_checked_source(spec) if spec.init == "transfer" else None
    out = Path(spec.out)
    paths = prepare_data(spec, out)

    import lightning
    from hydra.utils import instantiate
    from nequip.utils.global_state import set_global_state

    from mlptl.model.transfer import copy_source_weights, freeze

    set_global_state()
    lightning.seed_everything(spec.seed, workers=True, verbose=False)
    r_max = source.model_config["r_max"] if source is not None else spec.model_spec().r_max
    data_cfg = _data_config(spec, paths, r_max)
    datamodule = instantiate(data_cfg, _recursive_=False)
    stats = {
        k: (v.item() if hasattr(v, "numel") and v.numel() == 1 else v)
        for k, v in datamodule.get_statistics(dataset="train").items()
    }
    model_cfg, mspec = _model_config(spec, stats, source)
    tm_cfg = _training_module_config(spec, model_cfg)
    info_dict = {
        "versions": {},
        "data": data_cfg,
        "trainer": {},
        "global_options": {},
        "runs": ["train"],
        "training_module": tm_cfg,
        "mlptl": spec.to_dict(),
    }
    module = instantiate(
        tm_cfg, _recursive_=False, _convert_="all", num_datasets=datamodule.num_datasets, info_dict=info_dict
    )
    graph = module.model["sole_model"]
    if source is not None:
        copy_source_weights(
            graph, source, {spec.element: spec.source_type or source.type_names[0]}, [spec.element]
        )
    frozen = freeze(graph, spec.freeze_depth, mspec.num_layers)
    if frozen:
        log.info("froze %d parameter tensors (depth %d)", len(frozen), spec.freeze_depth)
    return Prepared(spec, out, paths, data_cfg, datamodule, module, mspec, frozen)


def train(
    spec: TrainSpec,
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
    *,
    resume: bool = True,
    progress: bool = False,
) -> TrainResult:
    """Train one model; see the module docstring.

    ``on_epoch`` is called after each epoch's validation; returning True stops the run after that epoch.
    With ``resume`` (the default) a run directory holding ``checkpoints/last.ckpt`` continues from it.
    """
    import lightning
    from nequip.scripts._workflow_utils import set_workflow_state

    p = prepare(spec)
    out = p.out
    ckpt_dir = out / "checkpoints"
    history: list[dict[str, float]] = []
    state: dict[str, Any] = {}
    checkpoint = lightning.pytorch.callbacks.ModelCheckpoint(
        # save_last=False: the epoch callback saves last.ckpt itself, before reporting (a second save per
        # epoch cost ~10 % of a tiny model's fit time in bench/train_overhead.py).
        dirpath=str(ckpt_dir), filename="best", monitor="val0_epoch/weighted_sum", mode="min", save_last=False
    )
    trainer = lightning.Trainer(
        max_epochs=spec.max_epochs,
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_progress_bar=progress,
        enable_model_summary=False,
        logger=False,
        accelerator="auto",
        devices=1,
        inference_mode=False,
        callbacks=[_make_epoch_callback(on_epoch, history, ckpt_dir, state), checkpoint],
    )
    p.module.world_size = trainer.world_size

    last = ckpt_dir / "last.ckpt"
    ckpt_path = str(last) if (resume and last.exists()) else None
    if ckpt_path:
        import torch

        done = int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1
        log.info("resuming from %s after epoch %d", last, done)
        _load_history(out, history)
        del history[done:]
    else:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    t0 = time.perf_counter()
    set_workflow_state("train")
    try:
        trainer.fit(p.module, datamodule=p.datamodule, ckpt_path=ckpt_path, weights_only=False)
    finally:
        set_workflow_state(None)
        _write_history(out, history)
    if not history:
        raise TrainingDiverged("training produced no epochs")
    wall = time.perf_counter() - t0

    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else last
    model_path = package(best, out / MODEL_FILE)
    from mlptl.evaluate.forces import force_errors

    result_metrics = {
        **force_errors(model_path, p.paths["test"], element=spec.element),
        "epochs": float(len(history)),
        "train_time_s": wall,
        "n_train": float(_count(p.paths["train"])),
        "n_frozen_tensors": float(len(p.frozen)),
        "best_" + M.VAL_FORCES_MAE: min(h[M.VAL_FORCES_MAE] for h in history),
    }
    _atomic_write_text(out / METRICS_FILE, json.dumps(result_metrics, indent=2))
    return TrainResult(
        out=out,
        model_path=model_path,
        metrics=result_metrics,
        history=history,
        epochs_run=len(history),
        stopped_early=bool(state.get("stopped")),
        frozen=p.frozen,
    )


def package(ckpt: Path, dest: Path) -> Path:
    """A self-contained model file (nequip package): it loads without the pretrained model's file."""
    from nequip.scripts.package import main as nequip_package

    tmp = dest.with_name(dest.name.replace(".nequip.zip", ".tmp.nequip.zip"))
    nequip_package(["build", str(ckpt), str(tmp)])
    os.replace(tmp, dest)
    return dest


def _count(path: Path) -> int:
    import ase.io

    return len(ase.io.read(path, ":"))


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_history(out: Path, history: list[dict[str, float]]) -> None:
    """Written every epoch inside the fit: the csv module, not pandas, keeps that cheap."""
    import csv

    if not history:
        return
    keys = list(dict.fromkeys(k for h in history for k in h))
    tmp = out / (HISTORY_FILE + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, out / HISTORY_FILE)


def _load_history(out: Path, history: list[dict[str, float]]) -> None:
    import pandas as pd

    p = out / HISTORY_FILE
    if p.exists():
        history.extend(pd.read_csv(p).to_dict("records"))
