"""ASE calculators for trained models and references, behind one name.

Evaluations take any ASE calculator; this module resolves what a user writes on the command line or in a
study (``sw`` for the registered reference, or a path to a ``.nequip.zip``) into one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ase.calculators.calculator import Calculator

from mlptl.data.references import known_references, reference_calculator
from mlptl.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["load_calculator", "nequip_calculator", "model_type_names"]


def nequip_calculator(path: str | Path, device: str | None = None) -> Calculator:
    """The eager nequip model as an ASE calculator.

    Eager, not AOTInductor-compiled, because a study evaluates many models briefly: compiling costs 60-70 s
    per model on an idle core, and bench/md_speed.py measured the compiled tiny model at 0.4-0.5x the eager
    cost per step (1 thread), so compiling pays off only after ~3,500 steps of 64-atom MD, more than a
    per-trial stability check runs. (An earlier note measured the opposite ranking; the conditions differ.)
    For long production MD, compile with ``nequip-compile`` and use nequip's calculator directly.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("model file not found", path=path)
    if not path.name.endswith(".nequip.zip"):
        raise InputError("expected a nequip package (*.nequip.zip)", path=path)
    import torch
    from nequip.integrations.ase import NequIPCalculator

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        # nequip's loader for saved (non-compiled) models; it builds the species map and neighbour list.
        return NequIPCalculator._from_saved_model(str(path), device=device)
    except Exception as e:
        raise InputError(f"cannot load nequip package: {e}", path=path) from e


def model_type_names(path: str | Path) -> list[str]:
    from nequip.model.saved_models.package import ModelTypeNamesFromPackage

    return list(ModelTypeNamesFromPackage(str(path)))


def load_calculator(model: str | os.PathLike, element: str) -> Calculator:
    """``model`` is a registered reference name for ``element`` (e.g. ``sw``) or a path to a package."""
    s = str(model)
    if (element, s) in known_references():
        return reference_calculator(element, s)
    if not s.endswith(".nequip.zip") and not Path(s).exists():
        names = sorted({n for _, n in known_references()})
        raise InputError(
            f"{s!r} is neither a model file nor a reference potential (references: {', '.join(names)})"
        )
    calc = nequip_calculator(s)
    types = model_type_names(s)
    if element not in types:
        raise InputError(f"this model knows elements {types}, not {element!r}", path=s)
    return calc
