"""Everything before the first epoch: validate, split and write the data, build (and transfer) the model.

Every check that can fail on bad input runs before the first file is written, so a rejected run leaves
nothing behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlptl.errors import InputError
from mlptl.model import _nequip
from mlptl.model.spec import ModelSpec
from mlptl.train.config import data_config, model_config, per_element_energy_shifts, training_module_config
from mlptl.train.spec import SPLITS, TrainSpec, split_file

if TYPE_CHECKING:  # transfer imports torch, which a driver reading specs does not need
    from mlptl.model.transfer import SourceModel

log = logging.getLogger(__name__)

__all__ = ["Prepared", "prepare", "prepare_data"]


def prepare_data(spec: TrainSpec, out: Path) -> dict[str, Path]:
    """Read, validate and split the data; write train/val/test extxyz files for nequip to read."""
    from mlptl.data.readers import read_frames, write_frames
    from mlptl.data.splits import nested_subsets, split_frames

    frames = read_frames(spec.data)
    _check_chemistry(spec, frames, spec.data)
    common = dict(n_val=spec.val_size, seed=spec.split_seed, train_groups=spec.train_groups, path=spec.data)
    if spec.test_data:
        split = replace(split_frames(frames, n_test=0, **common), test=read_frames(spec.test_data))
    else:
        split = split_frames(frames, n_test=spec.test_size, test_groups=spec.test_groups, **common)
    train = split.train
    if spec.train_size is not None:
        subsets = nested_subsets(split.train, [spec.train_size], seed=spec.training_subset_seed, path=spec.data)
        train = subsets[spec.train_size]
    if spec.test_data:
        _check_chemistry(spec, split.test, spec.test_data, all_present=False)
    paths = {}
    for name, subset in zip(SPLITS, (train, split.val, split.test)):
        paths[name] = write_frames(subset, split_file(out, name))
    log.info("data: %d train, %d val, %d test frames of %s", len(train), len(split.val), len(split.test), spec.element)
    return paths


def _check_chemistry(spec: TrainSpec, frames, path, *, all_present: bool = True) -> None:
    """Frames hold the spec's elements only, and (training data) every one of them, so each has a shift."""
    from mlptl.data.readers import validate_frames

    found = sorted({s for a in frames for s in a.get_chemical_symbols()})
    if len(spec.elements) == 1:
        if found != [spec.element] and (all_present or set(found) - {spec.element}):
            raise InputError(f"expected frames of {spec.element} only, found elements {found}", path=path)
        return
    validate_frames(frames, path, elements=spec.elements)  # one clear error for a frame outside the chemistry
    missing = sorted(set(spec.elements) - set(found))
    if all_present and missing:
        raise InputError(f"no frame holds {', '.join(missing)} of the chemistry {spec.element}: its energy "
                         "shift cannot be fitted", path=path)


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
    type_map: dict[str, str]
    element_init: dict[str, str]  # how each element's rows started, in words (transfer only)

    @property
    def graph_model(self):
        return _nequip.graph_model(self.module)


def _load_checked_source(spec: TrainSpec) -> tuple[SourceModel, dict[str, str]]:
    """The source model and where each target type starts in it (the type map)."""
    from mlptl.model.transfer import load_source, resolve_type_map

    source = load_source(spec.pretrained)
    try:
        type_map = resolve_type_map(spec.elements, source.type_names, element_map=spec.element_map,
                                    new_element_init=spec.new_element_init, source_type=spec.source_type)
    except InputError as e:
        raise InputError(str(e), path=spec.pretrained) from None
    depth_max = 1 + source.num_layers
    if spec.freeze_depth > depth_max:
        raise InputError(
            f"freeze depth {spec.freeze_depth} is beyond the pretrained model: it has {source.num_layers} "
            f"Allegro layers, so the deepest freeze is {depth_max} (everything but the readout)",
            path=spec.pretrained,
        )
    return source, type_map


def prepare(spec: TrainSpec) -> Prepared:
    """Validate, split and write the data, build the model; nothing is trained yet."""
    spec.validate()
    _nequip.require_supported()
    source, type_map = _load_checked_source(spec) if spec.init == "transfer" else (None, {})
    out = Path(spec.out)
    paths = prepare_data(spec, out)

    import lightning
    from hydra.utils import instantiate

    from mlptl.model.transfer import copy_source_weights, describe_type_map, freeze

    _nequip.init_global_state()
    lightning.seed_everything(spec.seed, workers=True, verbose=False)
    r_max = source.model_config["r_max"] if source is not None else spec.model_spec().r_max
    data_cfg = data_config(spec, paths, r_max)
    datamodule = instantiate(data_cfg, _recursive_=False)
    stats = {
        k: (v.item() if hasattr(v, "numel") and v.numel() == 1 else v)
        for k, v in datamodule.get_statistics(dataset="train").items()
    }
    if len(spec.elements) > 1:
        from mlptl.data.readers import read_frames

        stats["per_element_energy_shifts"] = per_element_energy_shifts(read_frames(paths["train"]), spec.elements)
    model_cfg, mspec = model_config(spec, stats, source)
    tm_cfg = training_module_config(spec, model_cfg)
    info_dict = _nequip.package_info_dict(data_cfg, tm_cfg, spec.to_dict())
    module = instantiate(
        tm_cfg, _recursive_=False, _convert_="all", num_datasets=datamodule.num_datasets, info_dict=info_dict
    )
    graph = _nequip.graph_model(module)
    if source is not None:
        copy_source_weights(graph, source, type_map, list(spec.elements))
    frozen = freeze(graph, spec.freeze_depth, mspec.num_layers)
    if frozen:
        log.info("froze %d parameter tensors (depth %d)", len(frozen), spec.freeze_depth)
    words = describe_type_map(type_map, source.type_names) if source is not None else {}
    return Prepared(spec, out, paths, data_cfg, datamodule, module, mspec, frozen, type_map, words)
