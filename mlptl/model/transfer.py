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
from mlptl.model.spec import NEW_ELEMENT_INITS, ModelSpec

log = logging.getLogger(__name__)

__all__ = [
    "SourceModel",
    "load_source",
    "copy_source_weights",
    "freeze_groups",
    "freeze",
    "trainable_param_groups",
    "REFIT_PREFIXES",
    "NEW_ELEMENT_INITS",
    "resolve_type_map",
    "describe_type_map",
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


def resolve_type_map(
    target: list[str] | tuple[str, ...],
    source_types: list[str] | tuple[str, ...],
    *,
    element_map: dict[str, str] | None = None,
    new_element_init: str = "copy",
    source_type: str | None = None,
) -> dict[str, str]:
    """Where each target element's per-type rows start: a source type name, ``"mean"`` or ``"random"``.

    An element the ``element_map`` names starts from that source element (map mode: Ge from Si); an element
    the source knows starts from itself (extend and subset modes); any other is new and starts as
    ``new_element_init`` says, a copy from ``source_type`` or else the source's only element. A lone target
    element starts from ``source_type`` when one is given (single-element transfer, as before).
    """
    if new_element_init not in NEW_ELEMENT_INITS:
        raise InputError(f"new element init must be one of {', '.join(NEW_ELEMENT_INITS)}, not {new_element_init!r}")
    element_map = dict(element_map or {})
    for t, s in element_map.items():
        if t not in target:
            raise InputError(f"element map names {t!r}, which is not a target element ({', '.join(target)})")
        if s not in source_types:
            raise InputError(f"element map starts {t} from {s!r}, which the source model lacks (it has {source_types})")
    if source_type is not None and source_type not in source_types:
        raise InputError(f"pretrained model has no type {source_type!r} (it has {list(source_types)})")
    out = {}
    for t in target:
        if t in element_map:
            out[t] = element_map[t]
        elif len(target) == 1 and source_type is not None:
            out[t] = source_type  # one target element: the source type says where it starts
        elif t in source_types:
            out[t] = t
        elif new_element_init != "copy":
            out[t] = new_element_init
        elif source_type is not None:
            out[t] = source_type
        elif len(source_types) == 1:
            out[t] = source_types[0]
        else:
            raise InputError(
                f"pretrained model has types {list(source_types)}: say which one {t} starts from "
                f"(element_map={{{t!r}: ...}}), or start it as the mean or random (new_element_init)"
            )
    return out


def describe_type_map(type_map: dict[str, str], source_types: list[str] | tuple[str, ...]) -> dict[str, str]:
    """How each target element started, in words for reports: ``copy of Si``, ``mean of Cu, Ni``, ``random``."""
    words = {"mean": f"mean of {', '.join(source_types)}", "random": "random"}
    return {t: words.get(s, f"copy of {s}") for t, s in type_map.items()}


def copy_source_weights(
    target: torch.nn.Module,
    source: SourceModel,
    type_map: dict[str, str],
    target_type_names: list[str],
) -> list[str]:
    """Copy every source weight into ``target`` except the re-fitted energy scale/shift.

    ``type_map`` (see :func:`resolve_type_map`) says where each target type's per-type rows start: a
    source type's rows, their mean, or the target's own random rows. Returns the names that were copied.
    Any other shape mismatch means the architectures differ: an error, not a silent partial copy.
    """
    src = {_local_name(k): v for k, v in source.state_dict.items()}
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
                value = _per_type_rows(value, tensor, source.type_names, type_map, target_type_names)
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


def _per_type_rows(src: torch.Tensor, fresh: torch.Tensor, source_types: list[str], type_map: dict[str, str],
                   target_types: list[str]) -> torch.Tensor:
    """A per-type table for the target's types, row by row as ``type_map`` says."""
    rows = []
    for i, t in enumerate(target_types):
        how = type_map[t]
        if how == "mean":
            rows.append(src.mean(dim=0))
        elif how == "random":
            rows.append(fresh[i].detach().clone())
        else:
            rows.append(src[source_types.index(how)])
    return torch.stack(rows)


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
