"""The paper's classical-force-field experiment: the study bench/studies/sw_learning_curve.py, run and analysed.

The study (Si -> Ge on Stillinger-Weber data, learning rate tuned per cell, 5 resampled replicates, MD
stability, Ge trained at 300/600 K and tested at 900/1200 K as well) is a study file; this driver runs it
the way ``mlptl run`` does (rerunning resumes it: finished trials are not redone), reads every number back
from its MLflow store with the report's own statistics, and writes bench/results/<name with _>.{json,csv,png}
with the temperature-transfer and stability tables the report does not make. ``--replot`` redraws the
figure and rewrites the CSV from the results JSON alone; ``--analyse-only`` re-reads the store.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, setup_logging, write_json  # noqa: E402

log = logging.getLogger("bench.sw_learning_curve")

STUDY_FILE = "sw_learning_curve"  # bench/studies/sw_learning_curve.py
TRAIN_T = (300.0, 600.0)
HELD_OUT_T = (900.0, 1200.0)


def analyse(runs: pd.DataFrame) -> dict:
    """The learning curve, paired tests and savings as the study's report computes them; temperature
    transfer and stability as means over replicates with the report's bootstrap CIs."""
    from mlptl.report.runs import final_frame

    rep = S.report_tables(runs)
    f = final_frame(runs)
    for t in TRAIN_T + HELD_OUT_T:
        col = f"test_forces_mae.T{int(t)}"
        f[col] = pd.to_numeric(f.get(col), errors="coerce")
    f["held_out_forces_mae"] = f[[f"test_forces_mae.T{int(t)}" for t in HELD_OUT_T]].mean(axis=1)
    f["train_t_forces_mae"] = f[[f"test_forces_mae.T{int(t)}" for t in TRAIN_T]].mean(axis=1)
    f["held_out_ratio"] = f["held_out_forces_mae"] / f["train_t_forces_mae"]
    cols = ["held_out_forces_mae", "train_t_forces_mae", "held_out_ratio", "test_energy_per_atom_mae"]
    cols += [c for c in f.columns if str(c).startswith("stability_stable_fraction.")]
    table = rep["cells"].merge(S.replicate_table(f, cols), on=["init", "train_size"], how="left")
    # Held-out error, transfer against scratch, paired by replicate (they share the training subset).
    held = S.paired_ratio(f, "held_out_forces_mae").rename(columns={"ratio_mean": "held_out_ratio_mean"})
    return {"table": table, "paired": rep["paired"], "savings": rep["savings"], "pairs": rep["pairs"],
            "held_out": held, "headline": rep["headline"], "answer": rep["answer"]}


def plot(table: pd.DataFrame, out) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    style = {"scratch": dict(color="tab:red", marker="o"), "transfer": dict(color="tab:blue", marker="s")}
    def err(g: pd.DataFrame, col: str, lo: str, hi: str) -> np.ndarray:
        return np.vstack([g[col] - g[lo], g[hi] - g[col]]).clip(min=0)

    for init, g in table.groupby("init"):
        g = g.sort_values("train_size")
        axes[0].errorbar(g.train_size, g["mean"], yerr=err(g, "mean", "ci_low", "ci_high"), capsize=3,
                         label=f"{init} (mean, 95% CI, {int(g.n.min())} reps)", **style[init])
        for c, ls, lab in (("train_t_forces_mae", "-", "300/600 K (trained)"),
                           ("held_out_forces_mae", "--", "900/1200 K (held out)")):
            if c not in g or not g[c].notna().any():
                continue
            axes[1].errorbar(g.train_size, g[c], yerr=err(g, c, f"{c}_ci_low", f"{c}_ci_high"), capsize=3,
                             ls=ls, label=f"{init}: {lab}", mfc="none" if ls == "--" else None, **style[init])
        for t, ls in ((300, "-"), (900, "--"), (1200, ":")):
            col = f"stability_stable_fraction.T{t}"
            if col in g:
                axes[2].plot(g.train_size, g[col], ls=ls, label=f"{init} {t} K", **style[init])
    for ax in axes[:2]:
        if ax.has_data():
            S.plain_log_axes(ax, table.train_size.unique())
        ax.set_xlabel("Ge training frames")
        ax.set_ylabel("test force MAE [eV/Å]")
    axes[0].set_title("learning curve (all test temperatures)")
    axes[1].set_title("temperature transfer")
    S.plain_log_axes(axes[2], table.train_size.unique(), log_y=False)
    axes[2].set_ylim(-0.05, 1.05)
    axes[2].set_xlabel("Ge training frames")
    axes[2].set_ylabel("stable fraction of MD runs")
    axes[2].set_title("MD stability")
    for ax in axes:
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
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
    info, runs, report_dir = S.run_and_read(study, args, "sw_learning_curve")
    res = analyse(runs)
    table = res["table"]
    for k in ("table", "paired", "savings", "pairs", "held_out"):
        info[k] = S.records(res[k])
    info["headline"], info["answer"] = res["headline"], res["answer"]
    info["study_wall_s"] = (info.get("run") or {}).get("wall_s")
    table.to_csv(RESULTS_DIR / f"{stem}.csv", index=False)
    write_json(RESULTS_DIR / f"{stem}.json", info)
    plot(table, RESULTS_DIR / f"{stem}.png")
    for src, dst in (("pruning.png", "pruning"), ("learning_curve.png", "report_learning_curve")):
        if (report_dir / src).exists():
            shutil.copy2(report_dir / src, RESULTS_DIR / f"{stem}_{dst}.png")
    log.info("%s", res["answer"])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for k in ("table", "paired", "savings", "held_out"):
            log.info("%s:\n%s", k, res[k].to_string(index=False))
    return 0 if not math.isnan(float(table["mean"].max())) else 1


if __name__ == "__main__":
    raise SystemExit(main())
