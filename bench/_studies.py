"""Shared by the benchmarks that run whole mlptl studies: run or resume a study, read it back from MLflow.

The study benchmarks measure mlptl the way a user runs it (``mlptl run``: the study's phases with Ray Tune,
Optuna and MLflow, then its report), then read every number from the MLflow store with
:func:`mlptl.report.load_runs`, the same reader the report uses, or from the report's own CSVs, so a
figure in bench/README.md can be checked in the MLflow UI run by run.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _common import RESULTS_DIR, WORK_DIR, machine_info

log = logging.getLogger("bench.studies")


def run(study, *, fresh: bool = False) -> dict[str, Any]:
    """Run ``study`` with its report, or finish it when an earlier run was interrupted (finished trials are
    not redone), exactly as ``mlptl run STUDY --resume`` does (:func:`mlptl.cli.run.run`).

    Returns the wall time of this call, the study's tracking URI, its trial counts, the report directory
    and the headline metrics the report put on the study's MLflow parent run.
    """
    from mlptl.cli.run import run as run_with_report

    storage = Path(study.storage)
    if fresh and storage.exists():
        log.info("removing %s (--fresh)", storage)
        shutil.rmtree(storage)
    t0 = time.time()
    result = run_with_report(study, resume=True)
    wall = time.time() - t0
    log.info("study %s: %s in %.0f s", study.name, result.counts, wall)
    return {"wall_s": wall, "tracking_uri": result.tracking_uri, "counts": result.counts,
            "report_dir": str(result.report_dir) if result.report_dir else None,
            "headline": dict(result.headline)}


def storage_dir(name: str) -> str:
    return str(WORK_DIR / name)


# ---------------------------------------------------------------- studies with resampled replicates
def run_and_read(study, args, benchmark: str) -> tuple[dict[str, Any], Path, pd.DataFrame]:
    """Run or resume ``study`` (or with ``args.analyse_only`` keep the measured run's record), make sure
    its report exists, and read its runs back: the info dict of the results JSON, the report directory
    and the runs frame."""
    from mlptl.report import build_report, load_runs
    from mlptl.tracking import resolve_tracking_uri

    info: dict[str, Any] = {"benchmark": benchmark, "machine": machine_info(), "settings": vars(args)}
    if not args.analyse_only:
        info["run"] = run(study, fresh=args.fresh)
    else:  # keep the measured run (its wall time, machine and date) of the results being re-analysed
        info.update(previous_run(RESULTS_DIR / f"{args.name.replace('-', '_')}.json"))
    uri = resolve_tracking_uri(study.storage_dir(), study.tracking_uri)
    report_dir = study.storage_dir() / "reports" / study.name
    if args.analyse_only or not (report_dir / "headline.json").is_file():
        build_report(uri, study.name, report_dir)
    if not args.analyse_only:
        info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    return info, report_dir, load_runs(uri, study.name)


def previous_run(results_json: Path) -> dict[str, Any]:
    """The run record (wall time, machine, settings) of earlier results, for an --analyse-only rewrite."""
    if not Path(results_json).is_file():
        return {}
    old = json.loads(Path(results_json).read_text())
    return {k: old[k] for k in ("run", "machine", "settings", "study_wall_s") if k in old}


def replicate_ci(values) -> tuple[float, float, float]:
    """Mean over replicates and its bootstrap 95 % CI, the report's own (mlptl.report.statistics)."""
    from mlptl.report.statistics import bootstrap_mean_ci

    v = pd.to_numeric(pd.Series(values), errors="coerce").dropna().to_numpy(dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    lo, hi = bootstrap_mean_ci(v) if len(v) > 1 else (math.nan, math.nan)
    return float(v.mean()), float(lo), float(hi)


def report_tables(report_dir: Path) -> dict[str, Any]:
    """What a study's report measured: per-cell CIs, paired tests, savings factors, the N-vs-M table,
    the headline metrics and the report's answer paragraph."""
    report_dir = Path(report_dir)
    return {
        "cells": pd.read_csv(report_dir / "cell_stats.csv"),
        "paired": pd.read_csv(report_dir / "paired_tests.csv"),
        "savings": pd.read_csv(report_dir / "savings.csv"),
        "pairs": pd.read_csv(report_dir / "headline_pairs.csv"),
        "headline": json.loads((report_dir / "headline.json").read_text()),
        "answer": (report_dir / "report.md").read_text().split("\n\n")[1].strip(),
    }


def replicate_table(f: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Per (init, training size) of the finished final replicates ``f``: mean and CI of each column."""
    rows = []
    for (init, n), g in f.groupby(["init", "train_size"]):
        row = {"init": init, "train_size": int(n), "replicates": len(g), "lr": float(g["lr"].iloc[0]),
               "subsets": int(g["subset_seed"].nunique()) if "subset_seed" in g else None}
        for c in cols:
            if c in g:
                row[c], row[f"{c}_ci_low"], row[f"{c}_ci_high"] = replicate_ci(g[c])
        rows.append(row)
    return pd.DataFrame(rows)


def paired_ratio(f: pd.DataFrame, col: str) -> pd.DataFrame:
    """Transfer / scratch of ``col`` per training size, paired by replicate (they share the subset)."""
    out = []
    for n, g in f.groupby("train_size"):
        w = g.pivot_table(index="replicate", columns="init", values=col)
        if {"scratch", "transfer"} <= set(w.columns):
            w = w.dropna()
            m, lo, hi = replicate_ci(w["transfer"] / w["scratch"])
            out.append({"train_size": int(n), "pairs": len(w), "ratio_mean": m, "ci_low": lo, "ci_high": hi,
                        "transfer_wins": int((w["transfer"] < w["scratch"]).sum())})
    return pd.DataFrame(out)


def plain_log_axes(ax, sizes, log_y: bool = True) -> None:
    """Log axes with plain decimal tick labels on both (0.02, not 2x10^-2), and the sizes as x ticks;
    ``log_y=False`` leaves the y axis alone (a fraction, say)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter, ScalarFormatter

    def tick(v: float, _pos: object = None) -> str:
        return f"{v:.{max(0, -math.floor(math.log10(v)))}f}" if v > 0 else ""

    def leading(v: float) -> int:
        return int(round(v / 10 ** math.floor(math.log10(v)))) if v > 0 else 0

    ax.set_xscale("log")
    ax.set_xticks(sorted(int(n) for n in sizes))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    if not log_y:
        return
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(tick))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: tick(v) if leading(v) in (2, 3, 5) else ""))
    ax.tick_params(axis="y", which="minor", labelsize=7)
