"""Force and energy errors of a model on labelled frames, overall and by group.

Errors are computed from the packaged model through its ASE calculator, the same path MD takes, so a
number here describes the artifact a user downloads, not a training-time object. Force errors are over
Cartesian components (as nequip reports them); energy errors are per atom.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
from ase.calculators.calculator import Calculator

from mlptl import metrics as M
from mlptl.data.frames import group_of
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


def force_errors(
    model: str | Path | Calculator,
    frames,
    *,
    element: str | None = None,
    prefix: str = "test",
    by_group: bool = True,
) -> dict[str, float]:
    """Errors of ``model`` (a package path or a calculator) on ``frames`` (a list or a file).

    Keys: ``{prefix}_forces_mae`` etc., and per group ``{prefix}_forces_mae.{group}``.
    """
    from mlptl.data.readers import read_frames

    if isinstance(frames, str | Path):
        frames = read_frames(frames)
    if isinstance(model, Calculator):
        calc = model
    else:
        from mlptl.model.calculator import load_calculator

        el = element or sorted({s for a in frames for s in a.get_chemical_symbols()})[0]
        calc = load_calculator(model, el)
    from mlptl.model.calculator import predict

    preds = predict(calc, frames)
    pairs, groups = [], defaultdict(list)
    for atoms, (e, f) in zip(frames, preds):
        item = (e, f, float(atoms.get_potential_energy()), np.asarray(atoms.get_forces()), len(atoms))
        pairs.append(item)
        groups[group_of(atoms)].append(item)
    out = {f"{prefix}_{k}": v for k, v in _errors(pairs).items()}
    if by_group and len(groups) > 1:
        for g, items in sorted(groups.items()):
            for k, v in _errors(items).items():
                out[M.group_metric(f"{prefix}_{k}", g)] = v
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
