"""Metric names and units: the one place that defines them.

nequip logs ``val0_epoch/forces_mae``; MLflow and Ray Tune prefer flat names, and a user comparing runs in
the MLflow UI should read ``val_forces_mae`` without knowing nequip. Every module imports names from here.
"""

from __future__ import annotations

# Energies in eV, forces in eV/A, energy per atom in eV/atom, time in s, MD time in ps.
UNITS = {
    "forces_mae": "eV/A",
    "forces_rmse": "eV/A",
    "energy_per_atom_mae": "eV/atom",
    "energy_per_atom_rmse": "eV/atom",
    "total_energy_mae": "eV",
    "loss": "(eV/atom)^2 + (eV/A)^2",
    # crystal properties (mlptl.evaluate.properties)
    "a0": "A",
    "ecoh": "eV/atom",
    "e_per_atom": "eV/atom",
    "volume": "A^3/atom",
    "B": "GPa",
    "C11": "GPa",
    "C12": "GPa",
    "C44": "GPa",
    "C44_unrelaxed": "GPa",
    # alloy properties (mlptl.evaluate.alloys): mixing energy against each element's own crystal
    "e_mix": "meV/atom",
    "e_mix_abs_error": "meV/atom",
    "e_mix_mae": "meV/atom",
    "a0_abs_error": "A",
    "a0_mae": "A",
    # partial RDFs (mlptl.evaluate.rdf): integral of |g_ab - g_ab(reference)| over r
    "rdf_distance": "A",
}

# What the training loop's per-epoch report calls things.
VAL_FORCES_MAE = "val_forces_mae"
VAL_FORCES_RMSE = "val_forces_rmse"
VAL_ENERGY_PER_ATOM_MAE = "val_energy_per_atom_mae"
VAL_LOSS = "val_loss"
TRAIN_LOSS = "train_loss"
EPOCH = "epoch"
EPOCH_TIME = "epoch_time_s"
LEARNING_RATE = "lr"

# Final metrics of a trained model on its test set.
TEST_FORCES_MAE = "test_forces_mae"
TEST_FORCES_RMSE = "test_forces_rmse"
TEST_ENERGY_PER_ATOM_MAE = "test_energy_per_atom_mae"
TEST_ENERGY_PER_ATOM_RMSE = "test_energy_per_atom_rmse"

# Forgetting (extend mode): the extended model's errors on its source's own test frames, and the source
# model's on the same frames.
SOURCE_PREFIX = "source"
SOURCE_MODEL_PREFIX = "source_model"
SOURCE_FORCES_MAE = SOURCE_PREFIX + "_forces_mae"
SOURCE_MODEL_FORCES_MAE = SOURCE_MODEL_PREFIX + "_forces_mae"
# The study run records its source models' own figures under this prefix.
PRETRAIN_PREFIX = "pretrain_"

# The metric trials are compared by (pruning and best-of-cell); lower is better.
OBJECTIVE = VAL_FORCES_MAE
# The lowest validation force MAE over a run's epochs: what chooses the best trial and the model to register.
BEST_VAL_FORCES_MAE = "best_" + VAL_FORCES_MAE
# Fraction of a model's MD runs (all temperatures and replicas) that stayed stable.
STABLE_FRACTION = "stability_stable_fraction"
# A multi-element model's MD stability: the integral |g - g_ref| (A) of its mean RDF over the runs at one
# temperature, in total and per element pair (``stability_rdf_distance.T900``, ``...T900.pair_Cu-Ni``).
STABILITY_RDF_DISTANCE = "stability_rdf_distance"
# The search's short MD check of a finished trial (Study.search_stability): 1/0, and time to failure.
SEARCH_MD_STABLE = "search_md_stable"
SEARCH_MD_TTF = "search_md_ttf_ps"
# Process CPU time of a trial (all its threads): what utilisation of the machine is measured from.
CPU_TIME = "cpu_time_s"
# Where a trial's wall time went: before training (MLflow run, checkpoint restore), training (epochs and
# packaging), evaluation (test set, MD checks), and recording (metrics and artifacts to MLflow).
TIME_STARTUP = "time_startup_s"
TIME_TRAIN = "time_train_s"
TIME_EVALUATE = "time_evaluate_s"
TIME_RECORD = "time_record_s"

_NEQUIP_TO_OURS = {
    "forces_mae": "forces_mae",
    "forces_rmse": "forces_rmse",
    "per_atom_energy_mae": "energy_per_atom_mae",
    "per_atom_energy_rmse": "energy_per_atom_rmse",
    "total_energy_mae": "total_energy_mae",
    "weighted_sum": "loss",
}


def from_nequip(metrics: dict[str, float]) -> dict[str, float]:
    """``val0_epoch/forces_mae`` -> ``val_forces_mae``, ``train_loss_epoch/weighted_sum`` -> ``train_loss``."""
    out = {}
    for key, value in metrics.items():
        stage, _, name = key.partition("/")
        prefix = {"val0_epoch": "val", "test0_epoch": "test", "train_loss_epoch": "train"}.get(stage)
        if prefix is None or name not in _NEQUIP_TO_OURS:
            continue
        out[f"{prefix}_{_NEQUIP_TO_OURS[name]}"] = float(value)
    return out


def group_metric(name: str, group: str) -> str:
    """A metric restricted to one data group, e.g. ``test_forces_mae.T900``."""
    return f"{name}.{group}"


def element_metric(name: str, element: str) -> str:
    """A metric restricted to the atoms of one element, e.g. ``test_forces_mae.el_Cu``."""
    return group_metric(name, f"el_{element}")


def composition_metric(name: str, composition: str) -> str:
    """A metric restricted to the frames of one composition (all temperatures), e.g.
    ``test_forces_mae.comp_Cu0.5Ni0.5``; ``composition`` is a composition label."""
    return group_metric(name, f"comp_{composition}")


def pair_metric(name: str, a: str, b: str) -> str:
    """A metric of one element pair (elements sorted), e.g. ``md_rdf_distance.pair_Cu-Ni``."""
    first, second = sorted((a, b))
    return group_metric(name, f"pair_{first}-{second}")


# Alloy properties (mlptl.evaluate.alloys): mean absolute errors over the compositions evaluated, and the
# per-composition values (``alloy_e_mix.comp_Cu0.5Ni0.5``, ``alloy_e_mix_abs_error.comp_...``).
ALLOY_E_MIX = "alloy_e_mix"
ALLOY_A0 = "alloy_a0"
ALLOY_E_MIX_MAE = "alloy_e_mix_mae"
ALLOY_A0_MAE = "alloy_a0_mae"
# Partial-RDF distance of a model's alloy MD from its reference's, per composition and element pair
# (``alloy_rdf_distance.comp_Cu0.5Ni0.5.pair_Cu-Ni``).
ALLOY_RDF_DISTANCE = "alloy_rdf_distance"
