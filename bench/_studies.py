"""Shared by the benchmarks that run whole mlptl studies: load a study file, run or resume it the way
``mlptl run`` does, and analyse its runs with the report's own functions.

A study benchmark is a study file under bench/studies/ (runnable on its own with ``mlptl run``) plus a thin
driver in bench/ that runs it through :func:`mlptl.run` (its phases, then its report) and reads every number
back from the MLflow store with :func:`mlptl.report.load_runs`, the reader the report uses. The statistics
are the report's (:mod:`mlptl.report.statistics` through :func:`mlptl.report.tables.analyse`), so a figure
in bench/README.md is the report's figure and can be checked in the MLflow UI run by run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import runpy
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _common import BENCH_DIR, RESULTS_DIR, WORK_DIR, machine_info

log = logging.getLogger("bench.studies")
STUDIES_DIR = BENCH_DIR / "studies"


def study_file(name: str) -> Path:
    return STUDIES_DIR / f"{name}.py"


def load_namespace(name: str) -> dict[str, Any]:
    """Every module-level name of the study file ``bench/studies/NAME.py`` (``STUDY`` and any variants)."""
    return runpy.run_path(str(study_file(name)), run_name="mlptl_study")


def add_study_arguments(p: argparse.ArgumentParser) -> None:
    """mlptl's study overrides (``mlptl run --help``) plus what a study benchmark adds."""
    from mlptl.study.load import add_override_arguments

    add_override_arguments(p)
    p.add_argument("--fresh", action="store_true", help="delete the study's store first instead of resuming")
    p.add_argument("--analyse-only", action="store_true", help="only re-read the store and rewrite the results")
    p.add_argument("--replot", action="store_true",
                   help="only redraw the figure and rewrite the CSV from the results JSON (no store needed)")
    p.add_argument("-v", "--verbose", action="store_true")


def study_from_args(name: str, args: argparse.Namespace):
    """The study file's ``STUDY`` with the command line's overrides, as ``mlptl run`` applies them; a new
    ``--name`` without ``--storage`` also gets its own store, bench/work/NAME."""
    from mlptl.study.load import apply_overrides, load_study

    if args.name and not args.storage:
        args.storage = storage_dir(args.name)
    return apply_overrides(load_study(study_file(name)), args)


def run(study, *, fresh: bool = False) -> dict[str, Any]:
    """Run ``study`` with its report, or finish it when an earlier run was interrupted (finished trials are
    not redone), exactly as ``mlptl run STUDY --resume`` does (:func:`mlptl.run`).

    Returns the wall time of this call, the study's tracking URI, its trial counts, the report directory
    and the headline metrics the report put on the study's MLflow parent run.
    """
    from mlptl import run as run_with_report

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


def results_stem(study) -> str:
    return study.name.replace("-", "_")


# ---------------------------------------------------------------- studies with resampled replicates
def run_and_read(study, args, benchmark: str) -> tuple[dict[str, Any], pd.DataFrame, Path]:
    """Run or resume ``study`` (or with ``args.analyse_only`` keep the measured run's record), make sure
    its report exists, and read its runs back: the info dict of the results JSON, the runs frame and the
    report directory (for the report's own figures)."""
    from mlptl.report import HEADLINE_FILE, build_report, load_runs
    from mlptl.tracking import resolve_tracking_uri

    info: dict[str, Any] = {"benchmark": benchmark, "machine": machine_info(), "settings": vars(args)}
    if not args.analyse_only:
        info["run"] = run(study, fresh=args.fresh)
    else:  # keep the measured run (its wall time, machine and date) of the results being re-analysed
        info.update(previous_run(RESULTS_DIR / f"{results_stem(study)}.json"))
    uri = resolve_tracking_uri(study.storage_dir(), study.tracking_uri)
    report_dir = study.storage_dir() / "reports" / study.name
    if args.analyse_only or not (report_dir / HEADLINE_FILE).is_file():
        build_report(uri, study.name, report_dir)
    if not args.analyse_only:
        info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    return info, load_runs(uri, study.name), report_dir


def previous_run(results_json: Path) -> dict[str, Any]:
    """The run record (wall time, machine, settings) of earlier results, for an --analyse-only rewrite."""
    if not Path(results_json).is_file():
        return {}
    old = json.loads(Path(results_json).read_text())
    return {k: old[k] for k in ("run", "machine", "settings", "study_wall_s") if k in old}


def report_tables(runs: pd.DataFrame) -> dict[str, Any]:
    """What the study's report says, computed by the report's own functions from the runs: per-cell CIs,
    paired tests, learning-curve fits, savings factors, the N-vs-M table (the report's cell_stats.csv,
    paired_tests.csv, learning_curve_fits.csv, savings.csv, headline_pairs.csv), the headline metrics
    (headline.json) and the answer paragraph (report.md's first)."""
    from mlptl.report import answer_text
    from mlptl.report.runs import final_frame
    from mlptl.report.tables import analyse, headline_metrics_of

    analyses = analyse(final_frame(runs))
    if len(analyses) != 1:
        raise ValueError(f"a benchmark study has one source element, these runs have {len(analyses)}")
    a = analyses[0]
    return {"cells": a.cells, "paired": a.paired, "fits": a.fits, "savings": a.savings, "pairs": a.pairs,
            "headline": headline_metrics_of(analyses), "answer": answer_text(runs).strip()}


def replicate_table(f: pd.DataFrame, cols: list[str]) -> pd.DataFrame:
    """Per (init, training size) of the finished final replicates ``f``: mean and bootstrap CI of each
    column over the replicates (the report's :func:`~mlptl.report.statistics.cell_stats`)."""
    import numpy as np

    from mlptl.report.statistics import cell_stats

    rows = []
    for (init, n), g in f.groupby(["init", "train_size"]):
        rows.append({"init": init, "train_size": int(n), "replicates": len(g), "lr": float(g["lr"].iloc[0]),
                     "subsets": int(g["subset_seed"].nunique()) if "subset_seed" in g else None})
    table = pd.DataFrame(rows)
    for c in cols:
        if c not in f:
            continue
        v = f.assign(**{c: pd.to_numeric(f[c], errors="coerce")})
        with np.errstate(divide="ignore", invalid="ignore"):  # its geometric mean (unused) of a 0 fraction
            s = cell_stats(v, c)[["init", "train_size", "mean", "ci_low", "ci_high"]]
        table = table.merge(s.rename(columns={"mean": c, "ci_low": f"{c}_ci_low", "ci_high": f"{c}_ci_high"}),
                            on=["init", "train_size"], how="left")
    return table


def paired_ratio(f: pd.DataFrame, col: str) -> pd.DataFrame:
    """Transfer / scratch of ``col`` per training size, paired by replicate (they share the subset): the
    mean over replicate pairs of the per-pair ratio, its bootstrap CI, and how many pairs transfer won.

    Kept here because mlptl.report has no such statistic: its paired ratio
    (:func:`~mlptl.report.statistics.paired_tests`) is the ratio of the two means, a different estimator,
    and it is computed for the study's metric only; bench/README.md's held-out and energy ratios are this
    mean of per-pair ratios. The CI is the report's (``cell_stats`` over the per-pair ratios).
    """
    from mlptl.report.statistics import cell_stats

    out = []
    for n, g in f.groupby("train_size"):
        w = g.pivot_table(index="replicate", columns="init", values=col)
        if {"scratch", "transfer"} <= set(w.columns):
            w = w.dropna()
            ratios = pd.DataFrame({"init": "ratio", "train_size": int(n), "y": w["transfer"] / w["scratch"]})
            s = cell_stats(ratios).iloc[0] if len(ratios) else None
            out.append({"train_size": int(n), "pairs": len(w),
                        "ratio_mean": float(s["mean"]) if s is not None else math.nan,
                        "ci_low": float(s.ci_low) if s is not None else math.nan,
                        "ci_high": float(s.ci_high) if s is not None else math.nan,
                        "transfer_wins": int((w["transfer"] < w["scratch"]).sum())})
    return pd.DataFrame(out)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame as JSON records (NaN -> null), as the results JSON keeps tables."""
    return json.loads(df.to_json(orient="records"))


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
