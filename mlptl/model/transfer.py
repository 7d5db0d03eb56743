"""Transfer across elements: source weights into a target-element model, and freezing by depth.

nequip's own fine-tuning (``ModelFromPackage`` + ``modify_PerTypeScaleShift``) cannot add a new atom type,
so a transferred model is built fresh with the source's architecture and the *target's* type names, and the
source weights are copied in. Per-type embedding rows are taken from the mapped source type; the per-type
energy shift and scale are not copied but re-fitted to the target data (they carry the element's energy
zero and force scale); the neighbour-count normalisation is kept from the source, since the weights were
fitted with it. The result speaks the target element natively: no species remapping at inference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mlptl.errors import InputError
from mlptl.model import _nequip
from mlptl.model.spec import ModelSpec

log = logging.getLogger(__name__)

__all__ = [
    "SourceModel",
    "load_source",
    "copy_source_weights",
    "freeze_groups",
    "freeze",
    "trainable_param_groups",
    "REFIT_PREFIXES",
]

# Parameters and buffers that are re-fitted to the target rather than copied.
REFIT_PREFIXES = ("per_type_energy_scale_shift.",)
# Tables with one row per atom type: rows are taken from the mapped source type.
PER_TYPE_TABLES = (
    "radial_chemical_embed.type_embed.center_embed.weight",
    "radial_chemical_embed.type_embed.neighbor_embed.weight",
)
# The two-body embedding: everything before the first Allegro layer (freeze depth 1).
TWO_BODY_PREFIXES = (
    "radial_chemical_embed.",
    "scalar_embed_mlp.",
    "tensor_embed.",
    "allegro.first_layer_env_embed_projection.",
)


def _layer_prefixes(i: int) -> tuple[str, ...]:
    return (f"allegro.latents.{i}.", f"allegro.tps.{i}.")


def _local_name(name: str) -> str:
    """A parameter's name relative to the Allegro network (``func.``), whatever wraps it."""
    marker = "func."
    k = name.find(marker)
    return name[k + len(marker) :] if k >= 0 else name


@dataclass
class SourceModel:
    """A trained source model, read from its self-contained nequip package."""

    path: Path
    type_names: list[str]
    model_config: dict[str, Any]
    state_dict: dict[str, torch.Tensor]

    @property
    def num_layers(self) -> int:
        return int(self.model_config["num_layers"])

    def spec(self) -> ModelSpec:
        """The source architecture as a ModelSpec (fields ModelSpec does not know are ignored)."""
        c = self.model_config
        known = {f: c[f] for f in ModelSpec.__dataclass_fields__ if f in c}
        emb = c.get("radial_chemical_embed", {})
        for f in ("num_bessels", "polynomial_cutoff_p"):
            if f in emb:
                known[f] = emb[f]
        return ModelSpec(**known)


def load_source(path: str | Path) -> SourceModel:
    """Read a ``.nequip.zip`` package: its model config (from the package's config.yaml) and weights."""
    path = Path(path)
    if not path.is_file():
        raise InputError("pretrained model not found", path=path)
    if not path.name.endswith(".nequip.zip"):
        raise InputError("a pretrained model must be a nequip package (*.nequip.zip)", path=path)
    try:
        config, graph = _nequip.read_package(path)
    except _nequip.UnsupportedNequip:
        raise
    except Exception as e:  # a corrupt zip or a foreign file
        raise InputError(f"cannot read nequip package: {e}", path=path) from e
    model_cfg = config["training_module"]["model"]
    type_names = list(model_cfg["type_names"])
    state = {k: v.detach().clone() for k, v in graph.state_dict().items()}
    return SourceModel(path=path, type_names=type_names, model_config=model_cfg, state_dict=state)


def copy_source_weights(
    target: torch.nn.Module,
    source: SourceModel,
    type_map: dict[str, str],
    target_type_names: list[str],
) -> list[str]:
    """Copy every source weight into ``target`` except the re-fitted energy scale/shift.

    ``type_map`` maps each target type name to the source type whose embedding it starts from. Returns
    the names that were copied. Any other shape mismatch means the architectures differ: an error, not a
    silent partial copy.
    """
    src = {_local_name(k): v for k, v in source.state_dict.items()}
    rows = [source.type_names.index(type_map[t]) for t in target_type_names]
    copied = []
    with torch.no_grad():
        for name, tensor in target.state_dict(keep_vars=True).items():
            local = _local_name(name)
            if local.startswith(REFIT_PREFIXES) or local == "_empty":
                continue
            if local not in src:
                raise InputError(
                    f"pretrained model has no weight {local!r}: architectures differ", path=source.path
                )
            value = src[local]
            if local in PER_TYPE_TABLES:
                value = value[rows]
            if value.shape != tensor.shape:
                raise InputError(
                    f"weight {local!r} has shape {tuple(value.shape)} in the pretrained model but "
                    f"{tuple(tensor.shape)} in the target: architectures differ",
                    path=source.path,
                )
            tensor.copy_(value.to(tensor.dtype))
            copied.append(local)
    log.info("transferred %d tensors from %s (types %s)", len(copied), source.path, type_map)
    return copied


def freeze_groups(num_layers: int) -> list[tuple[str, ...]]:
    """Prefixes frozen at each depth: depth k freezes groups[:k]."""
    return [TWO_BODY_PREFIXES] + [_layer_prefixes(i) for i in range(num_layers)]


def freeze(model: torch.nn.Module, depth: int, num_layers: int) -> list[str]:
    """Freeze the first ``depth`` blocks; returns the frozen parameter names.

    Depth 0 freezes nothing, 1 the two-body embedding, 1+i also Allegro layers 0..i-1; the deepest,
    1 + num_layers, leaves only the readout trainable.
    """
    if not 0 <= depth <= 1 + num_layers:
        raise InputError(
            f"freeze depth {depth} is beyond this model: it has {num_layers} Allegro layers, "
            f"so the depth must be between 0 and {1 + num_layers}"
        )
    prefixes = tuple(p for group in freeze_groups(num_layers)[:depth] for p in group)
    frozen = []
    for name, p in model.named_parameters():
        if prefixes and _local_name(name).startswith(prefixes):
            p.requires_grad_(False)
            frozen.append(name)
    return frozen


def trainable_param_groups(model: torch.nn.Module):
    """Optimizer parameter factory for nequip's training module: frozen weights never reach the optimizer."""
    return [p for p in model.parameters() if p.requires_grad]
