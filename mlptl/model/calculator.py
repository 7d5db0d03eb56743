"""ASE calculators for trained models and references, behind one name.

Evaluations take any ASE calculator; this module resolves what a user writes on the command line or in a
study (``sw`` for the registered reference, or a path to a ``.nequip.zip`` or ``.nequip.pt2``) into one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from mlptl.data.chemistry import Chemistry
from mlptl.data.references import is_import_name, known_references, reference_calculator
from mlptl.data.systems import get_system_reference, system_references
from mlptl.errors import InputError
from mlptl.model import _nequip

log = logging.getLogger(__name__)

__all__ = ["load_calculator", "nequip_calculator", "model_type_names", "MODEL_SUFFIXES"]

#: Model files mlptl loads: nequip packages, and AOTInductor models compiled for ASE.
MODEL_SUFFIXES = (".nequip.zip", ".nequip.pt2")


def nequip_calculator(path: str | Path, device: str | None = None) -> Calculator:
    """nequip's ASE calculator for a package (``.nequip.zip``, eager) or a compiled model (``.nequip.pt2``).

    A package runs eager, not AOTInductor-compiled: a study evaluates many models briefly, and compiling
    pays only for long MD (docs/decisions.md). For long production MD, ``mlptl.model.export.export_model(PKG,
    OUT.nequip.pt2, "ase")`` compiles once and this function loads the result.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path=path)
    if not path.name.endswith(MODEL_SUFFIXES):
        raise InputError("expected a nequip package (*.nequip.zip) or a compiled model (*.nequip.pt2)", path=path)
    import torch

    compiled = path.name.endswith(".nequip.pt2")
    if device is None:  # a compiled model runs only on the device it was compiled for: CPU unless told
        device = "cuda" if torch.cuda.is_available() and not compiled else "cpu"
    load = _nequip.calculator_from_compiled if compiled else _nequip.calculator_from_package
    try:
        return load(path, device)
    except _nequip.UnsupportedNequip:
        raise
    except Exception as e:
        raise InputError(f"cannot load nequip model: {e}", path=path) from e


def model_type_names(path: str | Path, calc: Calculator | None = None) -> list[str]:
    """The element names a model speaks (a compiled model's are read from its calculator)."""
    if str(path).endswith(".nequip.pt2"):
        return _nequip.compiled_type_names(calc if calc is not None else nequip_calculator(path, "cpu"))
    return _nequip.package_type_names(path)


def load_calculator(model: str | os.PathLike, element: str | Chemistry | Iterable[str]) -> Calculator:
    """``model`` is a reference name (e.g. ``sw``; for several elements a system reference such as ``emt``)
    or a path to a model file, which must know every element of ``element``: a symbol, or a chemistry
    (``"Cu-Ni"``, ``"Cu,Ni"``, a :class:`~mlptl.data.chemistry.Chemistry` or a list of symbols)."""
    chem = Chemistry.parse(element) if isinstance(element, str) else element
    chem = chem if isinstance(chem, Chemistry) else Chemistry(tuple(chem))
    s = str(model)
    systems = {r.name for r in system_references()}
    if len(chem) == 1:
        (el,) = chem.elements
        if (el, s) in known_references() or is_import_name(s):
            return reference_calculator(el, s)
    elif is_import_name(s):
        raise InputError(f"reference {s!r} is imported per element: it cannot label {chem} (name a system "
                         f"reference: {', '.join(sorted(systems))})")
    if s in systems and not Path(s).exists():
        return get_system_reference(s, chem).calculator()
    if not s.endswith(MODEL_SUFFIXES) and not Path(s).exists():
        names = sorted({n for _, n in known_references()} | systems)
        raise InputError(
            f"{s!r} is neither a model file nor a reference potential (references: {', '.join(names)})"
        )
    calc = nequip_calculator(s)
    types = model_type_names(s, calc)
    missing = [el for el in chem.elements if el not in types]
    if missing:
        unknown = repr(missing[0]) if len(missing) == 1 else str(missing)
        unknown += f" (asked for {chem})" if len(chem) > 1 else ""
        raise InputError(f"this model knows elements {types}, not {unknown}", path=s)
    return calc


def predict(calc: Calculator, frames) -> list[tuple[float, np.ndarray]]:
    """Energy and forces of each frame from ``calc`` (the frames keep their reference labels)."""
    out = []
    for atoms in frames:
        a = atoms.copy()
        a.calc = calc
        out.append((float(a.get_potential_energy()), np.asarray(a.get_forces())))
    return out
