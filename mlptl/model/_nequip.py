"""The one module that touches nequip and nequip-allegro beyond their documented config files.

nequip's Python API moves between minor releases (0.7 rewrote it; 0.17 changed compiled-model metadata;
0.19's TorchScript path refuses torch >= 2.10). Private names, the ``"sole_model"`` key, the layout of a
package's ``config.yaml`` and the metric names nequip logs are used here and nowhere else in mlptl, and
every function first checks that the installed versions are the ones this code was checked against, so
that a new nequip fails here with one line saying what to install instead of deep inside a training run
or, worse, silently. The Hydra ``_target_`` configs built in :mod:`mlptl.train.config` and
:mod:`mlptl.model.spec` are nequip's documented config interface and stay there.

To support a new nequip: read its changelog for the names used below, run ``pytest tests/test_nequip_adapter.py
tests/test_export.py tests/test_train.py`` against it, then widen the ranges.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from packaging.version import Version

from mlptl.errors import InputError
from mlptl.fsutil import atomic_write

log = logging.getLogger(__name__)

__all__ = [
    "SUPPORTED",
    "CHECKED_WITH",
    "CHECKPOINT_MONITOR",
    "UnsupportedNequip",
    "check_versions",
    "require_supported",
    "init_global_state",
    "workflow",
    "graph_model",
    "bind_trainer",
    "package_info_dict",
    "build_package",
    "read_package",
    "package_type_names",
    "calculator_from_package",
    "calculator_from_compiled",
    "compiled_type_names",
    "compile_model",
    "torchscript_supported",
    "pair_allegro_energy_forces",
]

#: Distribution name -> half-open version range [min, max) this module was checked against.
SUPPORTED: dict[str, tuple[str, str]] = {"nequip": ("0.19.1", "0.20"), "nequip-allegro": ("0.8.3", "0.9")}
#: The exact versions the tests last passed with (2-core CPU, torch 2.13.0+cpu).
CHECKED_WITH: dict[str, str] = {"nequip": "0.19.1", "nequip-allegro": "0.8.3", "torch": "2.13.0"}

#: The validation metric nequip's checkpointing and LR-plateau scheduling watch: nequip names metrics
#: ``val{dataset index}_epoch/{name}`` and sums the weighted metrics as ``weighted_sum``.
CHECKPOINT_MONITOR = "val0_epoch/weighted_sum"


class UnsupportedNequip(InputError):
    """The installed nequip or nequip-allegro is outside the range mlptl was checked against."""


def check_versions(installed: dict[str, str | None]) -> None:
    """Raise :class:`UnsupportedNequip` unless every distribution in ``installed`` is in :data:`SUPPORTED`.

    ``installed`` maps a distribution name to its version string (None: not installed). Separate from
    :func:`require_supported` so that the check itself can be tested against versions not installed.
    """
    bad = []
    for name, version in installed.items():
        lo, hi = SUPPORTED[name]
        if version is None:
            bad.append(f"{name} is not installed")
        elif not Version(lo) <= Version(version) < Version(hi):
            bad.append(f"{name} {version} is installed")
    if bad:
        wanted = " ".join(f"'{n}>={lo},<{hi}'" for n, (lo, hi) in SUPPORTED.items())
        raise UnsupportedNequip(
            f"{'; '.join(bad)}, but mlptl was checked against "
            + ", ".join(f"{n} >={lo},<{hi}" for n, (lo, hi) in SUPPORTED.items())
            + f": pip install {wanted}"
        )


def _installed(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.cache
def _checked() -> None:
    check_versions({name: _installed(name) for name in SUPPORTED})


def require_supported() -> None:
    """Check the installed versions once per process; every function here calls it first."""
    _checked()


# ---------------------------------------------------------------- training
def init_global_state() -> None:
    """nequip's process-wide defaults (dtype, TF32 off); its trainer and loaders expect them set."""
    require_supported()
    from nequip.utils.global_state import set_global_state

    set_global_state()


@contextlib.contextmanager
def workflow(state: str) -> Iterator[None]:
    """nequip's notion of what the process is doing ("train", "package", "compile"); some loaders ask it."""
    require_supported()
    from nequip.scripts._workflow_utils import set_workflow_state

    set_workflow_state(state)
    try:
        yield
    finally:
        set_workflow_state(None)


def graph_model(module: Any) -> Any:
    """The Allegro graph model inside a ``NequIPLightningModule`` (single-model training)."""
    require_supported()
    from nequip.train.lightning import _SOLE_MODEL_KEY

    return module.model[_SOLE_MODEL_KEY]


def bind_trainer(module: Any, trainer: Any) -> None:
    """What nequip-train does between building the Lightning trainer and fitting: the loss scaling reads it."""
    require_supported()
    module.world_size = trainer.world_size


def package_info_dict(
    data: dict[str, Any], training_module: dict[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    """The run description ``NequIPLightningModule`` stores in checkpoints and packages as config.yaml.

    nequip-train builds it from the Hydra config; :func:`read_package` reads ``training_module.model`` back.
    ``extra`` is kept under ``mlptl`` so that a package records the mlptl spec it came from.
    """
    require_supported()
    return {
        "versions": {},
        "data": data,
        "trainer": {},
        "global_options": {},
        "runs": ["train"],
        "training_module": training_module,
        "mlptl": extra,
    }


@contextlib.contextmanager
def _staged(dest: Path, suffix: str) -> Iterator[Path]:
    """An atomic write to ``dest`` through a temporary name ending in ``suffix`` (nequip checks extensions)."""
    with atomic_write(dest) as tmp:
        staged = tmp.with_name(tmp.name + suffix)
        try:
            yield staged
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)


def build_package(checkpoint: str | Path, dest: str | Path) -> Path:
    """``nequip-package build``: a self-contained ``.nequip.zip`` that loads without the source model file."""
    require_supported()
    from nequip.scripts.package import main as nequip_package

    dest = Path(dest)
    with _staged(dest, ".nequip.zip") as staged:
        nequip_package(["build", str(checkpoint), str(staged)])
    return dest


# ---------------------------------------------------------------- packages
def read_package(path: str | Path) -> tuple[dict[str, Any], Any]:
    """A package's stored run config (config.yaml) and its eager graph model, on the CPU."""
    require_supported()
    import torch
    import yaml
    from nequip.model.saved_models.package import (
        ModelFromPackage,
        _suppress_package_importer_exporter_warnings,
    )
    from nequip.train.lightning import _SOLE_MODEL_KEY

    with _suppress_package_importer_exporter_warnings():
        imp = torch.package.PackageImporter(str(path))
        config = yaml.safe_load(imp.load_text(package="model", resource="config.yaml"))
    model = ModelFromPackage(str(path))
    graph = model[_SOLE_MODEL_KEY] if isinstance(model, torch.nn.ModuleDict) else model
    return config, graph


def package_type_names(path: str | Path) -> list[str]:
    require_supported()
    from nequip.model.saved_models.package import ModelTypeNamesFromPackage

    return list(ModelTypeNamesFromPackage(str(path)))


def calculator_from_package(path: str | Path, device: str = "cpu") -> Any:
    """nequip's ASE calculator around the eager model of a package (neighbour list and species map built in).

    nequip has no public constructor for this in 0.19 (``from_compiled_model`` takes compiled files only).
    Species map the identity: mlptl's models name their types by element.
    """
    require_supported()
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator._from_saved_model(str(path), device=device, chemical_species_to_atom_type_map=True)


def calculator_from_compiled(path: str | Path, device: str = "cpu") -> Any:
    """nequip's ASE calculator around an AOTInductor model compiled with ``--target ase``."""
    require_supported()
    from nequip.integrations.ase import NequIPCalculator

    return NequIPCalculator.from_compiled_model(str(path), device=device, chemical_species_to_atom_type_map=True)


def compiled_type_names(calc: Any) -> list[str]:
    """The type names a calculator from :func:`calculator_from_compiled` maps species onto."""
    require_supported()
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper

    for t in calc.transforms:
        if isinstance(t, ChemicalSpeciesToAtomTypeMapper):
            return list(t.model_type_names)
    raise ValueError("calculator has no species-to-type mapper")


# ---------------------------------------------------------------- compiling
def torchscript_supported() -> bool:
    """nequip 0.19 refuses TorchScript compilation with torch >= 2.10."""
    require_supported()
    from nequip.utils.versions import _TORCH_GE_2_10

    return not _TORCH_GE_2_10


def compile_model(
    package: str | Path, dest: str | Path, *, mode: str, target: str | None, device: str = "cpu"
) -> Path:
    """``nequip-compile``: ``mode`` "aotinductor" (``.nequip.pt2``, needs a C++ compiler) or "torchscript"
    (``.nequip.pth``); ``target`` "ase" or "pair_allegro" for AOTInductor (the input fields a client passes)."""
    require_supported()
    import allegro  # noqa: F401  (registers the pair_allegro compile target)
    from nequip.scripts.compile import main as nequip_compile

    suffix = {"aotinductor": ".nequip.pt2", "torchscript": ".nequip.pth"}[mode]
    dest = Path(dest)
    args = ["--mode", mode, "--device", device]
    if mode == "aotinductor":
        args += ["--target", str(target)]
    with _staged(dest, suffix) as staged:
        nequip_compile([str(package), str(staged), *args])
    return dest


def pair_allegro_energy_forces(path: str | Path, atoms: Any) -> tuple[float, Any]:
    """Energy and forces of ``atoms`` from a ``--target pair_allegro`` model, called the way pair_allegro calls it.

    pair_allegro hands the model local and ghost atoms (periodic images as extra atoms, no cell), sums the
    local atoms' energies and adds each ghost's force to the atom it images (LAMMPS' reverse communication).
    Without a LAMMPS built with pair_allegro this is how the exported file is checked; it uses allegro's own
    conversion to ghost atoms.
    """
    require_supported()
    import allegro  # noqa: F401
    from allegro._compile import PAIR_ALLEGRO_TARGET, allegro_data_settings
    from nequip.data import AtomicDataDict, from_ase
    from nequip.integrations.utils import basic_transforms
    from nequip.model.inference_models import load_compiled_model
    from nequip.nn import graph_model as gm

    model, metadata = load_compiled_model(
        str(path), "cpu", list(PAIR_ALLEGRO_TARGET["input"]), list(PAIR_ALLEGRO_TARGET["output"])
    )
    type_names = metadata[gm.TYPE_NAMES_KEY]
    transforms = basic_transforms(metadata, metadata[gm.R_MAX_KEY], type_names, {t: t for t in type_names})
    data = from_ase(atoms)
    for t in transforms:
        data = t(data)
    n = len(atoms)
    shifts = data[AtomicDataDict.EDGE_CELL_SHIFT_KEY]
    owners = data[AtomicDataDict.EDGE_INDEX_KEY][1, shifts.abs().sum(-1) != 0]  # same order as the ghosts
    data = allegro_data_settings(dict(data))
    out = model(data)
    energy = float(out[AtomicDataDict.PER_ATOM_ENERGY_KEY][:n].sum())
    f = out[AtomicDataDict.FORCE_KEY].detach()
    forces = f[:n].clone().index_add_(0, owners, f[n:])
    return energy, forces.double().numpy()
