"""Everything before the first epoch: validate, split and write the data, build (and transfer) the model.

Every check that can fail on bad input runs before the first file is written, so a rejected run leaves
nothing behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mlptl.errors import InputError
from mlptl.model import _nequip
from mlptl.model.spec import ModelSpec
from mlptl.model.transfer import SourceModel
from mlptl.train.config import data_config, model_config, training_module_config
from mlptl.train.spec import TrainSpec

log = logging.getLogger(__name__)

__all__ = ["Prepared", "prepare", "prepare_data"]


def prepare_data(spec: TrainSpec, out: Path) -> dict[str, Path]:
    """Read, validate and split the data; write train/val/test extxyz files for nequip to read."""
    from mlptl.data.readers import read_frames, write_frames
    from mlptl.data.splits import nested_subsets, split_frames

    frames = read_frames(spec.data)
    found = sorted({s for a in frames for s in a.get_chemical_symbols()})
    if found != [spec.element]:
        raise InputError(f"expected frames of {spec.element} only, found elements {found}", path=spec.data)
    common = dict(n_val=spec.val_size, seed=spec.split_seed, train_groups=spec.train_groups, path=spec.data)
    if spec.test_data:
        split = replace(split_frames(frames, n_test=0, **common), test=read_frames(spec.test_data))
    else:
        split = split_frames(frames, n_test=spec.test_size, test_groups=spec.test_groups, **common)
    train = split.train
    if spec.train_size is not None:
        subsets = nested_subsets(split.train, [spec.train_size], seed=spec.training_subset_seed, path=spec.data)
        train = subsets[spec.train_size]
    paths = {}
    data_dir = out / "data"
    for name, subset in (("train", train), ("val", split.val), ("test", split.test)):
        paths[name] = write_frames(subset, data_dir / f"{name}.extxyz")
    log.info("data: %d train, %d val, %d test frames of %s", len(train), len(split.val), len(split.test), spec.element)
    return paths


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
        return _nequip.graph_model(self.module)


def _load_checked_source(spec: TrainSpec) -> SourceModel:
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
    """Validate, split and write the data, build the model; nothing is trained yet."""
    spec.validate()
    _nequip.require_supported()
    source = _load_checked_source(spec) if spec.init == "transfer" else None
    out = Path(spec.out)
    paths = prepare_data(spec, out)

    import lightning
    from hydra.utils import instantiate

    from mlptl.model.transfer import copy_source_weights, freeze

    _nequip.init_global_state()
    lightning.seed_everything(spec.seed, workers=True, verbose=False)
    r_max = source.model_config["r_max"] if source is not None else spec.model_spec().r_max
    data_cfg = data_config(spec, paths, r_max)
    datamodule = instantiate(data_cfg, _recursive_=False)
    stats = {
        k: (v.item() if hasattr(v, "numel") and v.numel() == 1 else v)
        for k, v in datamodule.get_statistics(dataset="train").items()
    }
    model_cfg, mspec = model_config(spec, stats, source)
    tm_cfg = training_module_config(spec, model_cfg)
    info_dict = _nequip.package_info_dict(data_cfg, tm_cfg, spec.to_dict())
    module = instantiate(
        tm_cfg, _recursive_=False, _convert_="all", num_datasets=datamodule.num_datasets, info_dict=info_dict
    )
    graph = _nequip.graph_model(module)
    if source is not None:
        src_type = spec.source_type or source.type_names[0]
        copy_source_weights(graph, source, {spec.element: src_type}, [spec.element])
    frozen = freeze(graph, spec.freeze_depth, mspec.num_layers)
    if frozen:
        log.info("froze %d parameter tensors (depth %d)", len(frozen), spec.freeze_depth)
    return Prepared(spec, out, paths, data_cfg, datamodule, module, mspec, frozen)
