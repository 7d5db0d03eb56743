"""Force and energy errors of a model on labelled frames, overall and by group.

Errors are computed from the packaged model through its ASE calculator, the same path MD takes, so a
number here describes the artifact a user downloads, not a training-time object. Force errors are over
Cartesian components (as nequip reports them); energy errors are per atom. Frames of several elements
also get force errors per element (over that element's atoms) and, with several compositions, all errors
per composition (over its temperatures); the key names are :mod:`mlptl.metrics`'.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from mlptl import metrics as M
from mlptl.data.chemistry import Chemistry
from mlptl.data.frames import composition_of, group_of
from mlptl.fsutil import atomic_write_text
from mlptl.train.spec import METRICS_FILE

log = logging.getLogger(__name__)

__all__ = ["force_errors", "evaluate_test_set"]

#: Where :func:`evaluate_test_set` records a run directory's test errors, beside the training figures.


def _errors(pairs) -> dict[str, float]:
    df = np.concatenate([(fp - fr).ravel() for (_, fp, _, fr, _) in pairs])
    de = np.array([(ep - er) / n for (ep, _, er, _, n) in pairs])
    return {
        "forces_mae": float(np.mean(np.abs(df))),
        "forces_rmse": float(np.sqrt(np.mean(df**2))),
        "energy_per_atom_mae": float(np.mean(np.abs(de))),
        "energy_per_atom_rmse": float(np.sqrt(np.mean(de**2))),
        "n_frames": float(len(pairs)),
    }


def _element_errors(pairs, symbols) -> dict[str, dict[str, float]]:
    """Force MAE/RMSE over the components of each element's atoms, and how many atoms that is."""
    diffs: dict[str, list[np.ndarray]] = defaultdict(list)
    for (_, fp, _, fr, _), syms in zip(pairs, symbols):
        d = np.asarray(fp) - np.asarray(fr)
        for el in set(syms):
            diffs[el].append(d[syms == el].ravel())
    out = {}
    for el, parts in sorted(diffs.items()):
        df = np.concatenate(parts)
        out[el] = {"forces_mae": float(np.mean(np.abs(df))), "forces_rmse": float(np.sqrt(np.mean(df**2))),
                   "n_atoms": float(df.size // 3)}
    return out


def force_errors(
    model: str | Path | Calculator,
    frames,
    *,
    element: str | None = None,
    prefix: str = "test",
    by_group: bool = True,
) -> dict[str, float]:
    """Errors of ``model`` (a package path or a calculator) on ``frames`` (a list or a file).

    Keys: ``{prefix}_forces_mae`` etc., and per group ``{prefix}_forces_mae.{group}``. Frames of more than
    one element add ``{prefix}_forces_mae.el_Cu``, ``{prefix}_forces_rmse.el_Cu`` and ``{prefix}_n_atoms.el_Cu``
    per element, and (with ``by_group``) frames of more than one composition all errors per composition
    (``{prefix}_forces_mae.comp_Cu0.5Ni0.5``). ``element`` (a symbol or a chemistry such as ``"Cu-Ni"``)
    adds to the frames' own elements what a model file must know.
    """
    from mlptl.data.readers import read_frames

    if isinstance(frames, str | Path):
        frames = read_frames(frames)
    if isinstance(model, Calculator):
        calc = model
    else:
        from mlptl.model.calculator import load_calculator

        have = {s for a in frames for s in a.get_chemical_symbols()}
        if element is not None:
            have |= set(Chemistry.parse(element) if isinstance(element, str) else Chemistry(element))
        calc = load_calculator(model, Chemistry(tuple(have)).label)
    from mlptl.model.calculator import predict

    preds = predict(calc, frames)
    pairs, groups, comps, symbols = [], defaultdict(list), defaultdict(list), []
    for atoms, (e, f) in zip(frames, preds):
        item = (e, f, float(atoms.get_potential_energy()), np.asarray(atoms.get_forces()), len(atoms))
        pairs.append(item)
        symbols.append(np.asarray(atoms.get_chemical_symbols()))
        groups[group_of(atoms)].append(item)
    out = {f"{prefix}_{k}": v for k, v in _errors(pairs).items()}
    if by_group and len(groups) > 1:
        for g, items in sorted(groups.items()):
            for k, v in _errors(items).items():
                out[M.group_metric(f"{prefix}_{k}", g)] = v
    if len({s for syms in symbols for s in set(syms)}) > 1:
        for el, errs in _element_errors(pairs, symbols).items():
            for k, v in errs.items():
                out[M.element_metric(f"{prefix}_{k}", el)] = v
        for atoms, item in zip(frames, pairs):
            comps[composition_of(atoms)].append(item)
        if by_group and len(comps) > 1:
            for c, items in sorted(comps.items()):
                for k, v in _errors(items).items():
                    out[M.composition_metric(f"{prefix}_{k}", c)] = v
    return out


def evaluate_test_set(
    model_path: str | Path,
    test_data: str | Path,
    *,
    element: str,
    out: str | Path | None = None,
) -> dict[str, float]:
    """A trained model's errors on its test split: ``test_forces_mae`` etc., and per data group.

    The final metrics of ``mlptl train`` and of every study trial. ``test_data`` is the split training
    wrote (``TrainResult.test_path``); groups are the frames' own (e.g. temperature), so a test set drawn
    from named test groups is reported by those groups. With ``out`` (the run directory) the errors are
    also written into ``out/metrics.json``, replacing any earlier test errors and in front of the
    training figures ``train()`` wrote there.
    """
    errors = force_errors(model_path, test_data, element=element, prefix="test", by_group=True)
    if out is not None:
        path = Path(out) / METRICS_FILE
        old = json.loads(path.read_text()) if path.is_file() else {}
        merged = {**errors, **{k: v for k, v in old.items() if not k.startswith("test_")}}
        atomic_write_text(path, json.dumps(merged, indent=2))
    return errors
