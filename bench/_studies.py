"""Shared by the benchmarks that run whole mlptl studies: run or resume a study, read it back from MLflow.

The study benchmarks measure mlptl the way a user runs it (``run_study`` with Ray Tune, Optuna and MLflow),
then read every number from the MLflow store with :func:`mlptl.report.load_runs`, the same reader the
report uses, so a figure in bench/README.md can be checked in the MLflow UI run by run.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from _common import WORK_DIR

log = logging.getLogger("bench.studies")


def run(study, *, fresh: bool = False) -> dict[str, Any]:
    """Run ``study``, or finish it when an earlier run was interrupted (finished trials are not redone).

    Returns the wall time of this call and the study's tracking URI.
    """
    from mlptl.study.runner import run_study

    storage = Path(study.storage)
    if fresh and storage.exists():
        log.info("removing %s (--fresh)", storage)
        shutil.rmtree(storage)
    t0 = time.time()
    result = run_study(study, resume=True)
    wall = time.time() - t0
    log.info("study %s: %s in %.0f s", study.name, result.counts, wall)
    return {"wall_s": wall, "tracking_uri": result.tracking_uri, "counts": result.counts,
            "report_dir": str(result.report_dir) if result.report_dir else None}


def storage_dir(name: str) -> str:
    return str(WORK_DIR / name)


def finals(runs: pd.DataFrame) -> pd.DataFrame:
    """Finished final-phase runs: each cell's best configuration re-trained with each seed."""
    return runs[(runs.phase == "final") & (runs.status == "finished")].copy()


def _stats(values: pd.Series) -> dict[str, float]:
    v = pd.to_numeric(values, errors="coerce").dropna().astype(float)
    if v.empty:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": float(v.mean()), "std": float(v.std(ddof=0)), "n": int(len(v))}


def cell_summary(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """One row per (init, train size): mean and std over seeds of each metric, plus the search effort."""
    rows = []
    f = finals(runs)
    for (init, size), g in runs.groupby(["init", "train_size"]):
        s = g[g.phase == "search"]
        fg = f[(f.init == init) & (f.train_size == size)]
        row: dict[str, Any] = {
            "init": init,
            "train_size": int(size),
            "search_trials": len(s),
            "pruned": int((s.status == "pruned").sum()),
            "failed": int((s.status == "failed").sum()),
            "epochs_spent": float(s["epochs_run"].fillna(0).sum()),
            "best_lr": float(fg["lr"].iloc[0]) if len(fg) else float("nan"),
            "seeds": len(fg),
        }
        if "freeze_depth" in fg and len(fg):
            row["best_freeze_depth"] = int(fg["freeze_depth"].iloc[0])
        for m in metrics:
            if m in fg:
                st = _stats(fg[m])
                row[f"{m}_mean"], row[f"{m}_std"] = st["mean"], st["std"]
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["train_size", "init"]).reset_index(drop=True)


def pairwise_wins(runs: pd.DataFrame, metric: str, size_a: int, size_b: int) -> tuple[int, int]:
    """In how many (transfer seed at ``size_a``, scratch seed at ``size_b``) pairs transfer is lower."""
    f = finals(runs)
    t = pd.to_numeric(f[(f.init == "transfer") & (f.train_size == size_a)][metric], errors="coerce").dropna()
    s = pd.to_numeric(f[(f.init == "scratch") & (f.train_size == size_b)][metric], errors="coerce").dropna()
    wins = sum(int(a < b) for a in t for b in s)
    return wins, len(t) * len(s)


def fmt(mean: float, std: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"
