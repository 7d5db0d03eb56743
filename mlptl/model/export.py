"""Trained packages as the files other programs load: LAMMPS (pair_style allegro), ASE, TorchScript.

mlptl's models are nequip packages (``.nequip.zip``): eager PyTorch, loaded by mlptl and by nequip's ASE
calculator. Production MD wants a compiled model, and nequip 0.19 compiles two ways: AOTInductor
(``.nequip.pt2``, a shared library built with the local C++ compiler, for one device, and for one client's
inputs: ``--target pair_allegro`` for LAMMPS, ``--target ase`` for ASE) and TorchScript (``.nequip.pth``),
which nequip refuses with torch >= 2.10. Compile on the machine (and device) that will run the model.

:func:`export_differences` checks an exported file against its package on given frames, calling a LAMMPS
file the way pair_allegro does (ghost atoms, reverse force communication), since a LAMMPS built with
pair_allegro cannot be installed from PyPI.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mlptl.errors import InputError
from mlptl.fsutil import atomic_copy
from mlptl.model import _nequip
from mlptl.model.compiler import MISSING_CXX, cxx_compiler

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "export_model", "default_export_path", "export_differences", "usage"]

#: Format -> (accepted output suffixes, what reads it).
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "lammps": ((".nequip.pt2",), "LAMMPS pair_style allegro (pair_nequip_allegro, LAMMPS >= 10 Sep 2025)"),
    "ase": ((".nequip.pt2", ".nequip.zip"), "nequip's ASE calculator and mlptl (compiled, or the package itself)"),
    "torchscript": ((".nequip.pth",), "nequip's calculators and older pair_allegro builds; needs torch < 2.10"),
}
_PACKAGE = ".nequip.zip"


def default_export_path(model_path: str | Path, fmt: str) -> Path:
    """Beside the package: ``model.nequip.zip`` -> ``model.lammps.nequip.pt2`` / ``model.ase.nequip.pt2`` /
    ``model.nequip.pth``."""
    p = Path(model_path)
    stem = p.name[: -len(_PACKAGE)] if p.name.endswith(_PACKAGE) else p.stem
    return p.with_name({"lammps": f"{stem}.lammps.nequip.pt2", "ase": f"{stem}.ase.nequip.pt2"}.get(fmt, f"{stem}.nequip.pth"))


def _check_package(path: Path) -> None:
    """A package is a zip archive (torch.package): refuse one that is not, or whose members fail their CRC."""
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise InputError(f"not a readable nequip package ({e}); it is damaged or not a model: export the "
                         "*.nequip.zip that mlptl train wrote, or train again", path=path) from None
    if bad is not None:
        raise InputError(f"the package is damaged (member {bad} fails its checksum): export an intact copy "
                         "or train again", path=path)


def _check(model_path: Path, out: Path, fmt: str) -> None:
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if not model_path.is_file():
        raise InputError("model file not found", path=model_path)
    if not model_path.name.endswith(_PACKAGE):
        raise InputError("export takes a nequip package (*.nequip.zip), as mlptl train writes", path=model_path)
    suffixes = FORMATS[fmt][0]
    if not out.name.endswith(suffixes):
        raise InputError(f"a {fmt} export must be named *{' or *'.join(suffixes)}", path=out)
    if out.resolve() == model_path.resolve():
        raise InputError("the export would overwrite the package itself", path=out)
    _check_package(model_path)
    if out.name.endswith(".nequip.pt2") and cxx_compiler() is None:
        raise InputError(f"AOTInductor compiles a shared library and found no C++ compiler: {MISSING_CXX}")
    if fmt == "torchscript" and not _nequip.torchscript_supported():
        import torch

        raise InputError(
            f"nequip refuses TorchScript with torch >= 2.10 (installed: {torch.__version__}); export "
            "--format lammps or ase (AOTInductor) instead, or use an environment with torch < 2.10"
        )


def export_model(model_path: str | Path, out: str | Path | None = None, fmt: str = "lammps", *, device: str = "cpu") -> Path:
    """Write ``model_path`` (a package) as ``fmt`` to ``out`` (default :func:`default_export_path`).

    "lammps": AOTInductor for pair_style allegro (``pair_style allegro`` / ``pair_coeff * * OUT.nequip.pt2
    Cu Ni`` in LAMMPS, the elements as :func:`usage` lists them). "ase": AOTInductor for ``nequip.integrations.ase.NequIPCalculator.from_compiled_model``
    and ``mlptl.model.calculator.load_calculator`` if ``out`` ends ``.nequip.pt2``, or a copy of the package
    (eager) if it ends ``.nequip.zip``. "torchscript": ``.nequip.pth`` (torch < 2.10 only). Compiling takes
    about a minute of one CPU core and a C++ compiler; the file runs on ``device`` only. Bad input is an
    :class:`InputError` before anything is written; the file appears whole or not at all.
    """
    model_path = Path(model_path)
    out = Path(out) if out is not None else default_export_path(model_path, fmt)
    _check(model_path, out, fmt)
    if out.name.endswith(_PACKAGE):
        atomic_copy(model_path, out)
    elif fmt == "torchscript":
        _nequip.compile_model(model_path, out, mode="torchscript", target=None, device=device)
    else:
        target = "pair_allegro" if fmt == "lammps" else "ase"
        _nequip.compile_model(model_path, out, mode="aotinductor", target=target, device=device)
    log.info("exported %s as %s: %s", model_path, fmt, out)
    return out


def usage(exported: str | Path, fmt: str, type_names: Sequence[str]) -> list[str]:
    """How to load an exported file, with the model's elements in its own type order (a multi-element model
    in LAMMPS needs one element name per atom type on the ``pair_coeff`` line)."""
    names = " ".join(type_names)
    if fmt == "lammps":
        return ["pair_style allegro", f"pair_coeff * * {exported} {names}",
                f"# one element per LAMMPS atom type, in your data file's type order; this model knows {names}"]
    if fmt == "torchscript":
        return [f"# a TorchScript model of {names}: nequip's calculators or an older pair_allegro"]
    if str(exported).endswith(_PACKAGE):
        return [f"mlptl.model.calculator.load_calculator('{exported}', '{','.join(type_names)}')  # eager; knows {names}"]
    return [f"NequIPCalculator.from_compiled_model('{exported}', chemical_species_to_atom_type_map=True)  # knows {names}"]


def _predict(path: Path, fmt: str, frames: Sequence) -> list[tuple[float, np.ndarray]]:
    if fmt == "lammps":
        return [_nequip.pair_allegro_energy_forces(path, atoms) for atoms in frames]
    from mlptl.model.calculator import nequip_calculator, predict

    if path.name.endswith(".nequip.pth"):
        return predict(_nequip.calculator_from_compiled(path, "cpu"), frames)
    return predict(nequip_calculator(path, "cpu"), frames)


def export_differences(model_path: str | Path, exported: str | Path, fmt: str, frames: Sequence) -> dict[str, float]:
    """Largest differences between an exported file and its package on ``frames``.

    ``energy_per_atom`` in eV/atom, ``forces`` (largest Cartesian component) in eV/A; both float32 models,
    so round-off of ~1e-6 relative is expected and anything near the model's own error is a bug.
    """
    if not frames:
        raise InputError("no frames to compare the export on")
    ref = _predict(Path(model_path), "ase", frames)
    got = _predict(Path(exported), fmt, frames)
    de = [abs(e1 - e0) / len(a) for (e0, _), (e1, _), a in zip(ref, got, frames)]
    df = [float(np.max(np.abs(f1 - f0))) for (_, f0), (_, f1) in zip(ref, got)]
    return {"energy_per_atom": max(de), "forces": max(df), "n_frames": float(len(frames))}
