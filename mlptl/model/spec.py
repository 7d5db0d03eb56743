"""Allegro architecture specs and size presets, and their translation into nequip's model config.

nequip builds models from Hydra-style dicts (``_target_`` plus keyword arguments). Studies speak in
:class:`ModelSpec` dataclasses instead; :func:`allegro_model_config` is the single place where one becomes
the other, so nequip's config keys never leak into study definitions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from mlptl.errors import InputError
from mlptl.serial import from_plain, to_plain

__all__ = ["ModelSpec", "MODEL_PRESETS", "model_preset", "allegro_model_config", "max_freeze_depth", "NEW_ELEMENT_INITS"]


#: How a target element the source model lacks starts: a copy of a source element's embedding rows (the
#: element map's, else the one source element), the mean of all source rows, or the fresh random rows
#: (:func:`mlptl.model.transfer.resolve_type_map`).
NEW_ELEMENT_INITS: tuple[str, ...] = ("copy", "mean", "random")


@dataclass(frozen=True)
class ModelSpec:
    """An Allegro architecture. Sizes follow nequip-allegro 0.8's argument names."""

    r_max: float = 5.0
    l_max: int = 1
    parity: bool = True
    num_layers: int = 2
    num_scalar_features: int = 32
    num_tensor_features: int = 16
    num_bessels: int = 8
    polynomial_cutoff_p: int = 6
    radial_chemical_embed_dim: int = 16
    scalar_embed_mlp_hidden_layers_depth: int = 1
    scalar_embed_mlp_hidden_layers_width: int = 32
    allegro_mlp_hidden_layers_depth: int = 1
    allegro_mlp_hidden_layers_width: int = 32
    readout_mlp_hidden_layers_depth: int = 1
    readout_mlp_hidden_layers_width: int = 16
    model_dtype: str = "float32"

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON, MLflow params and Ray configs; :meth:`from_dict` reads it back."""
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        """The inverse of :meth:`to_dict`; an unknown key is an error (a typo would otherwise be ignored)."""
        return from_plain(cls, d, "model")

    def with_(self, **changes) -> ModelSpec:
        return replace(self, **changes)


# Why these sizes: "tiny" is fast enough for tests and the quick start (docs/decisions.md); "small" is the
# CPU benchmark size.
# "paper" is a GPU-scale Allegro model (l_max 2, wider MLPs). Röcken & Zavadlav trained DimeNet++, not
# Allegro, so no preset reproduces their architecture: "paper" is only sized to be of comparable capacity,
# so that studies at that size ask the paper's question with a different (strictly local) model.
# r_max 5.0 A keeps the Si third-neighbour shell (4.50 A) inside the cutoff rather than on it.
MODEL_PRESETS: dict[str, ModelSpec] = {
    "tiny": ModelSpec(
        num_scalar_features=16,
        num_tensor_features=8,
        radial_chemical_embed_dim=8,
        scalar_embed_mlp_hidden_layers_width=16,
        allegro_mlp_hidden_layers_width=16,
        readout_mlp_hidden_layers_width=8,
    ),
    "small": ModelSpec(),
    "paper": ModelSpec(
        l_max=2,
        num_layers=2,
        num_scalar_features=64,
        num_tensor_features=32,
        radial_chemical_embed_dim=32,
        scalar_embed_mlp_hidden_layers_depth=2,
        scalar_embed_mlp_hidden_layers_width=64,
        allegro_mlp_hidden_layers_depth=2,
        allegro_mlp_hidden_layers_width=128,
        readout_mlp_hidden_layers_width=32,
    ),
}


def model_preset(name: str | ModelSpec | Mapping[str, Any]) -> ModelSpec:
    """A preset by name, a ModelSpec as it is, or a ModelSpec's :meth:`~ModelSpec.to_dict` form."""
    if isinstance(name, ModelSpec):
        return name
    if isinstance(name, Mapping):
        return ModelSpec.from_dict(name)
    try:
        return MODEL_PRESETS[name]
    except KeyError:
        raise InputError(
            f"unknown model size preset {name!r}; choose one of {', '.join(MODEL_PRESETS)}"
        ) from None


def max_freeze_depth(spec: ModelSpec) -> int:
    """Deepest meaningful freeze: the two-body embedding plus every Allegro layer (all but the readout)."""
    return 1 + spec.num_layers


def allegro_model_config(
    spec: ModelSpec,
    *,
    type_names: list[str],
    seed: int,
    avg_num_neighbors: float | str,
    per_type_energy_shifts: list[float] | str,
    per_type_energy_scales: list[float] | str,
) -> dict[str, Any]:
    """nequip's ``training_module.model`` section for this spec.

    Statistics are passed in (numbers, or ``${training_data_stats:...}`` strings for nequip to resolve),
    because transfer must keep the source model's neighbour normalisation while re-fitting the energy
    shift and scale to the target data.
    """
    return {
        "_target_": "allegro.model.AllegroModel",
        "seed": int(seed),
        "model_dtype": spec.model_dtype,
        "type_names": list(type_names),
        "r_max": float(spec.r_max),
        "l_max": int(spec.l_max),
        "parity": bool(spec.parity),
        "radial_chemical_embed": {
            "_target_": "allegro.nn.TwoBodyBesselScalarEmbed",
            "num_bessels": spec.num_bessels,
            "bessel_trainable": False,
            "polynomial_cutoff_p": spec.polynomial_cutoff_p,
        },
        "radial_chemical_embed_dim": spec.radial_chemical_embed_dim,
        "scalar_embed_mlp_hidden_layers_depth": spec.scalar_embed_mlp_hidden_layers_depth,
        "scalar_embed_mlp_hidden_layers_width": spec.scalar_embed_mlp_hidden_layers_width,
        "num_layers": spec.num_layers,
        "num_scalar_features": spec.num_scalar_features,
        "num_tensor_features": spec.num_tensor_features,
        "allegro_mlp_hidden_layers_depth": spec.allegro_mlp_hidden_layers_depth,
        "allegro_mlp_hidden_layers_width": spec.allegro_mlp_hidden_layers_width,
        "readout_mlp_hidden_layers_depth": spec.readout_mlp_hidden_layers_depth,
        "readout_mlp_hidden_layers_width": spec.readout_mlp_hidden_layers_width,
        "avg_num_neighbors": avg_num_neighbors,
        "per_type_energy_shifts": per_type_energy_shifts,
        "per_type_energy_scales": per_type_energy_scales,
        "per_type_energy_scales_trainable": False,
        "per_type_energy_shifts_trainable": False,
    }
