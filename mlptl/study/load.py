"""Loading study definitions from ``studies/*.py`` and applying command-line overrides.

A study file defines ``STUDY`` (a :class:`~mlptl.study.spec.Study`) and ends with
``if __name__ == "__main__": raise SystemExit(main(STUDY))`` (``from mlptl import main``), so the
same file runs as ``mlptl run studies/x.py`` and as ``python studies/x.py`` (what ``ray submit`` executes);
both paths share the overrides defined here.
"""

from __future__ import annotations

import argparse
import logging
import runpy
from dataclasses import replace
from pathlib import Path

from mlptl.errors import InputError
from mlptl.study.pruners import PRUNERS
from mlptl.study.samplers import SAMPLERS
from mlptl.study.spec import Study

log = logging.getLogger(__name__)

__all__ = ["load_study", "add_override_arguments", "apply_overrides", "smoke"]


def load_study(path: str | Path) -> Study:
    path = Path(path)
    if not path.is_file():
        raise InputError("study file not found", path=path)
    try:
        namespace = runpy.run_path(str(path), run_name="mlptl_study")
    except InputError:
        raise
    except Exception as e:
        raise InputError(f"cannot load study definition: {type(e).__name__}: {e}", path=path) from e
    study = namespace.get("STUDY")
    if not isinstance(study, Study):
        raise InputError("a study file must define STUDY = mlptl.study.Study(...)", path=path)
    return study


def add_override_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--resume", action="store_true", help="finish an interrupted study without redoing finished trials")
    p.add_argument("--smoke", action="store_true", help="a minutes-long run of the whole pipeline at minimal sizes")
    p.add_argument("--max-epochs", type=int, help="epoch budget per trial")
    p.add_argument("--trials-per-cell", type=int, help="search trials per (init, training size) cell")
    p.add_argument("--seeds", help="comma-separated seeds for re-training each cell's best, e.g. 0,1,2")
    p.add_argument("--train-sizes", help="comma-separated target training sizes, e.g. 10,50")
    p.add_argument("--pruner", choices=PRUNERS, metavar="PRUNER", help=f"the Optuna pruner: {', '.join(PRUNERS)}")
    p.add_argument("--sampler", choices=SAMPLERS, metavar="SAMPLER", help=f"the Optuna sampler: {', '.join(SAMPLERS)}")
    p.add_argument("--name", help="study name (the MLflow experiment)")
    p.add_argument("--storage", help="directory for the study's store (MLflow, Optuna, Ray, runs)")
    p.add_argument("--tracking-uri", help="an MLflow tracking URI (default: sqlite in the storage dir)")
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--gpus-per-trial", type=float)
    p.add_argument("--trial-timeout", type=float, metavar="SECONDS",
                   help="stop a trial attempt that runs longer and record it failed (Resources.trial_timeout_s)")
    p.add_argument("--compile", action="store_true", default=None,
                   help="train through torch.compile (Study.compile; when it pays: docs/decisions.md)")


def _ints(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise InputError(f"expected comma-separated integers, got {text!r}") from None


def apply_overrides(study: Study, args: argparse.Namespace) -> Study:
    if args.smoke:
        study = smoke(study)
    res = study.resources
    if args.cpus_per_trial is not None:
        res = replace(res, cpus_per_trial=args.cpus_per_trial)
    if args.gpus_per_trial is not None:
        res = replace(res, gpus_per_trial=args.gpus_per_trial)
    if args.trial_timeout is not None:
        res = replace(res, trial_timeout_s=args.trial_timeout)
    pruner = replace(study.pruner, kind=args.pruner) if args.pruner else study.pruner
    return study.with_overrides(
        max_epochs=args.max_epochs,
        trials_per_cell=args.trials_per_cell,
        seeds=_ints(args.seeds),
        train_sizes=_ints(args.train_sizes),
        name=args.name,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        resources=res,
        pruner=pruner,
        sampler=args.sampler,
        compile=args.compile,
    )


def smoke(study: Study) -> Study:
    """The same study at minimal sizes: every phase runs, nothing is meant to be compared."""
    ev = replace(study.evaluation, stability_steps=50, stability_replicas=1, stability_temperatures=study.evaluation.stability_temperatures[:1], properties=False)
    def short(p):
        return replace(p, max_epochs=min(p.max_epochs, 3))

    pre = {k: short(v) for k, v in study.pretraining.items()} if isinstance(study.pretraining, dict) else short(study.pretraining)
    return replace(
        study,
        name=f"{study.name}-smoke",
        trials_per_cell=2,
        max_epochs=2,
        seeds=study.seeds[:1],
        train_sizes=tuple(sorted(study.train_sizes))[:2],
        evaluation=ev,
        pretraining=pre,
        compile=False,  # a compile costs 20-150 s per process: more than a smoke run's training
    )
