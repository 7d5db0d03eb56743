"""A :class:`~mlptl.train.spec.TrainSpec` as the Hydra-style config nequip-train would compose.

These are nequip's documented config sections (``data``, ``training_module``), built as dicts and
instantiated in-process, so that ``mlptl train`` and ``nequip-train`` on the same config train the same
model (bench/train_overhead.py checks that). The names nequip gives its logged metrics live in
:mod:`mlptl.model._nequip`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlptl.model.spec import ModelSpec, allegro_model_config
from mlptl.train.schedules import lr_scheduler_config
from mlptl.train.spec import TrainSpec

if TYPE_CHECKING:  # transfer imports torch, which a driver reading specs does not need
    from mlptl.model.transfer import SourceModel

__all__ = ["data_config", "training_module_config", "model_config", "per_element_energy_shifts"]

log = logging.getLogger(__name__)


def data_config(spec: TrainSpec, paths: dict[str, Path], r_max: float) -> dict[str, Any]:
    types = list(spec.elements)
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
                "model_type_names": types,
                "chemical_species_to_atom_type_map": {el: el for el in types},
            },
        ],
        "train_dataloader": {**loader, "batch_size": spec.batch_size, "shuffle": True},
        "val_dataloader": {**loader, "batch_size": max(spec.batch_size, 8)},
        "test_dataloader": {**loader, "batch_size": max(spec.batch_size, 8)},
        "stats_manager": {"_target_": "nequip.data.CommonDataStatisticsManager", "type_names": types},
    }


def training_module_config(spec: TrainSpec, model_cfg: dict[str, Any]) -> dict[str, Any]:
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
    sched = lr_scheduler_config(spec.lr_schedule, spec.max_epochs)
    if sched is not None:
        cfg["lr_scheduler"] = sched
    return cfg


def model_config(
    spec: TrainSpec, stats: dict[str, Any], source: SourceModel | None
) -> tuple[dict[str, Any], ModelSpec]:
    """The model section and the architecture it has.

    ``stats`` are the training data's statistics (nequip's ``CommonDataStatisticsManager`` names, and
    for several elements ``per_element_energy_shifts``). Transfer keeps the source's architecture and
    neighbour normalisation, takes the target's type names and re-fits the energy shift and scale of
    every element to the target data.
    """
    types = list(spec.elements)
    if len(types) == 1:
        shifts = {types[0]: float(stats["per_atom_energy_mean"])}
        scales = {types[0]: float(stats["forces_rms"])}
    else:
        shifts = {el: float(stats["per_element_energy_shifts"][el]) for el in types}
        per_type = stats["per_type_forces_rms"]  # nequip names the values by type
        scales = {el: float(per_type[el]) for el in types}
    if source is None:
        mspec = spec.model_spec()
        cfg = allegro_model_config(
            mspec,
            type_names=types,
            seed=spec.seed,
            avg_num_neighbors=float(stats["num_neighbors_mean"]),
            per_type_energy_shifts=shifts,
            per_type_energy_scales=scales,
        )
        return _compile_mode(cfg, spec), mspec
    cfg = dict(source.model_config)
    cfg.update(type_names=types, seed=int(spec.seed), per_type_energy_shifts=shifts, per_type_energy_scales=scales)
    return _compile_mode(cfg, spec), source.spec()


def per_element_energy_shifts(frames, elements) -> dict[str, float]:
    """Each element's energy zero: least squares of the frames' energies over their element counts.

    nequip's statistics give one per-atom mean for all types, which cannot tell elements apart; the
    counts across compositions can. Data of one composition cannot separate them either: the
    minimum-norm solution then splits the mean evenly, and a warning says so.
    """
    import numpy as np

    counts = np.array([[a.get_chemical_symbols().count(el) for el in elements] for a in frames], dtype=float)
    energies = np.array([a.get_potential_energy() for a in frames], dtype=float)
    solution, _, rank, _ = np.linalg.lstsq(counts, energies, rcond=None)
    if rank < len(elements):
        log.warning("the training frames' compositions do not separate the energy shifts of %s; "
                    "they share the per-atom mean", ", ".join(elements))
    return {el: float(x) for el, x in zip(elements, solution)}


def _compile_mode(cfg: dict[str, Any], spec: TrainSpec) -> dict[str, Any]:
    """nequip's documented train-time compile switch; a source model's own setting is not inherited."""
    cfg.pop("compile_mode", None)
    if spec.compile:
        cfg["compile_mode"] = "compile"
    return cfg
