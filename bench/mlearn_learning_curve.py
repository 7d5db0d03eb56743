"""The paper's ab initio experiment: the study bench/studies/mlearn_learning_curve.py, run and analysed.

The study (Si -> Ge on the mlearn DFT data of Zuo et al. 2020, learning rate tuned per cell, 5 resampled
replicates, tested by structure group, MD stability against SW Ge's crystal) is a study file; this driver
runs it the way ``mlptl run`` does (rerunning resumes it), reads every number back from its MLflow store
with the report's own statistics, and writes bench/results/<name with _>.{json,csv,png} with the energy,
structure-group and stability tables the report does not make. ``--replot`` redraws the figure and
rewrites the CSV from the results JSON alone. Data: ``MLPTL_MLEARN_DIR`` (default ../shared/data/mlearn).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, setup_logging, write_json  # noqa: E402

log = logging.getLogger("bench.mlearn_learning_curve")
STUDY_FILE = "mlearn_learning_curve"  # bench/studies/mlearn_learning_curve.py
GROUPS = ("AIMD-NVT", "Elastic", "Vacancy", "Surface")  # the study file's structure groups
STABILITY_T = (300.0, 1000.0)


def analyse(runs: pd.DataFrame) -> dict:
    """The learning curve, paired tests and savings from the study's report; energies, force errors by
    structure group and stability as means over replicates with the report's bootstrap CIs."""
    from mlptl.report.runs import final_frame

    rep = S.report_tables(runs)
    f = final_frame(runs)
    cols = ["test_energy_per_atom_mae"] + [f"test_forces_mae.{g}" for g in GROUPS]
    cols += [f"stability_stable_fraction.T{int(t)}" for t in STABILITY_T]
    for c in cols:
        if c in f:
            f[c] = pd.to_numeric(f[c], errors="coerce")
    table = rep["cells"].merge(S.replicate_table(f, cols), on=["init", "train_size"], how="left")
    energy = S.paired_ratio(f, "test_energy_per_atom_mae")
    return {"table": table, "paired": rep["paired"], "savings": rep["savings"], "pairs": rep["pairs"],
            "energy": energy, "headline": rep["headline"], "answer": rep["answer"]}


def plot(table: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    style = {"scratch": dict(color="tab:red", marker="o"), "transfer": dict(color="tab:blue", marker="s")}

    def err(g: pd.DataFrame, col: str, lo: str, hi: str) -> np.ndarray:
        return np.vstack([g[col] - g[lo], g[hi] - g[col]]).clip(min=0)

    for init, g in table.groupby("init"):
        g = g.sort_values("train_size")
        axes[0].errorbar(g.train_size, g["mean"], yerr=err(g, "mean", "ci_low", "ci_high"), capsize=3,
                         label=f"{init} (mean, 95% CI, {int(g.n.min())} reps)", **style[init])
        c = "test_energy_per_atom_mae"
        if c in g:
            axes[1].errorbar(g.train_size, g[c] * 1000, yerr=err(g, c, f"{c}_ci_low", f"{c}_ci_high") * 1000,
                             capsize=3, label=init, **style[init])
    axes[0].set_ylabel("Ge DFT test force MAE [eV/Å]")
    axes[1].set_ylabel("Ge DFT test energy MAE [meV/atom]")
    for ax in axes:
        if ax.has_data():
            S.plain_log_axes(ax, table.train_size.unique())
        ax.set_xlabel("Ge training frames (mlearn)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def replot(stem: str) -> None:
    """The CSV and the figure again from the results JSON alone (the study's store may be long gone)."""
    table = pd.DataFrame(json.loads((RESULTS_DIR / f"{stem}.json").read_text())["table"])
    table.to_csv(RESULTS_DIR / f"{stem}.csv", index=False)
    plot(table, RESULTS_DIR / f"{stem}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    S.add_study_arguments(p)
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    study = S.study_from_args(STUDY_FILE, args)
    stem = S.results_stem(study)
    if args.replot:
        replot(stem)
        return 0
    info, runs, report_dir = S.run_and_read(study, args, "mlearn_learning_curve")
    res = analyse(runs)
    table = res["table"]
    for k in ("table", "paired", "savings", "pairs", "energy"):
        info[k] = S.records(res[k])
    info["headline"], info["answer"] = res["headline"], res["answer"]
    table.to_csv(RESULTS_DIR / f"{stem}.csv", index=False)
    write_json(RESULTS_DIR / f"{stem}.json", info)
    plot(table, RESULTS_DIR / f"{stem}.png")
    if (report_dir / "learning_curve.png").exists():
        shutil.copy2(report_dir / "learning_curve.png", RESULTS_DIR / f"{stem}_report_learning_curve.png")
    log.info("%s", res["answer"])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for k in ("table", "paired", "savings", "energy"):
            log.info("%s:\n%s", k, res[k].to_string(index=False))
    return 0 if not math.isnan(float(table["mean"].max())) else 1


if __name__ == "__main__":
    raise SystemExit(main())
