"""The paper's classical-force-field experiment as an mlptl study: Si -> Ge on Stillinger-Weber data.

Röcken & Zavadlav's findings, checked on mlptl's own study pipeline (Ray Tune trials, Optuna TPE with
the learning rate tuned per cell and median pruning, MLflow tracking), sized for a 2-core CPU:

1. transfer beats scratch in test force MAE, more so at small Ge training sizes (and is transfer at N
   frames better than scratch at 5N?);
2. transfer gives more stable MD;
3. transfer transfers better in temperature: trained on 300 K and 600 K frames only, tested (forces and
   MD) at 900 K and 1200 K as well.

Replicates resample the data: replicate r of a cell trains on its own nested training subset r with
weight seed r, and scratch and transfer replicate r share that subset, so the CIs (the study report's
bootstrap over replicates) and paired tests are uncertainty over training data. The store of the run
before that definition (bench/work/sw-learning-curve/, 3 weight seeds on one subset) is left alone: the
default study name is new.

Every number is read back from the study's MLflow store (bench/work/<name>/) and its report; rerunning
the script resumes the study (finished trials are not redone) and rewrites the results:
bench/results/<name with _>.{json,csv,png}. The full-scale version is studies/sw_si_to_ge.py.
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

log = logging.getLogger("bench.sw_learning_curve")

TRAIN_T = (300.0, 600.0)
HELD_OUT_T = (900.0, 1200.0)


def make_study(args):
    from mlptl.data.generate import GenerationSpec
    from mlptl.study import (
        DataSource,
        EvaluationSpec,
        Pretraining,
        PrunerSpec,
        Resources,
        SearchSpace,
        Study,
    )

    def sw(element: str, temps: tuple[float, ...], per_t: int) -> GenerationSpec:
        # 64-atom diamond cells, frames 20 fs apart after 200 fs of equilibration (as bench/_common.py).
        return GenerationSpec(
            element=element, reference="sw", temperatures=temps, frames_per_temperature=per_t, supercell=2,
            equilibration_steps=200, interval_steps=20, friction=0.02, seed=0,
        )

    temps = TRAIN_T + HELD_OUT_T
    return Study(
        name=args.name,
        description="bench/sw_learning_curve.py: Si -> Ge learning curve on SW data, lr tuned per cell.",
        source_element=args.source,
        target_element=args.target,
        pretraining=Pretraining(
            data=DataSource(generate=sw(args.source, (300.0, 900.0), 60)),
            model="tiny", max_epochs=30, lr=5e-3, val_size=10, test_size=10,
        ),
        # Test frames are drawn from all four temperatures (10 each); training and validation frames from
        # 300 K and 600 K only, so 900 K and 1200 K are temperatures the models never saw.
        target_data=DataSource(generate=sw(args.target, temps, args.frames_per_temperature)),
        train_groups=tuple(f"T{int(t)}" for t in TRAIN_T),
        test_size=10 * len(temps),
        val_size=10,
        train_sizes=tuple(args.sizes),
        search={
            "scratch": SearchSpace(lr=(1e-3, 3e-2)),
            # Freeze depth is its own benchmark (bench/freeze_depth.py); here transfer fine-tunes everything.
            "transfer": SearchSpace(lr=(3e-4, 1e-2), freeze_depth=(0,)),
        },
        trials_per_cell=args.trials_per_cell,
        seeds=tuple(range(args.replicates)),
        max_epochs=args.epochs,
        sampler_seed=0,
        pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=5),
        evaluation=EvaluationSpec(
            stability_temperatures=tuple(args.md_temperatures) if args.md_steps > 0 else (),
            stability_steps=max(args.md_steps, 1), stability_replicas=1,
            properties=False,
        ),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=args.concurrent),
        storage=S.storage_dir(args.name),
    )


def analyse(runs: pd.DataFrame, report_dir: Path) -> dict:
    """The learning curve, paired tests and savings from the study's report; temperature transfer and
    stability as means over replicates with the same bootstrap CIs (mlptl.report.statistics)."""
    from mlptl.report.runs import final_frame

    rep = S.report_tables(report_dir)
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="sw-learning-curve-r5")
    p.add_argument("--source", default="Si")
    p.add_argument("--target", default="Ge")
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 25, 50, 100])
    p.add_argument("--frames-per-temperature", type=int, default=80)
    p.add_argument("--trials-per-cell", type=int, default=3)
    p.add_argument("--replicates", type=int, default=5, help="replicates per cell: subsets and seeds 0..R-1")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--md-steps", type=int, default=600, help="stability MD steps (1 fs) per temperature")
    p.add_argument("--md-temperatures", type=float, nargs="+", default=[300.0, *HELD_OUT_T])
    p.add_argument("--concurrent", type=int, default=2, help="trials at once (1 CPU and 1 torch thread each)")
    p.add_argument("--fresh", action="store_true", help="delete the study's store first instead of resuming")
    p.add_argument("--analyse-only", action="store_true", help="only re-read the store and rewrite the results")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)

    study = make_study(args)
    info, report_dir, runs = S.run_and_read(study, args, "sw_learning_curve")
    res = analyse(runs, report_dir)
    table = res["table"]
    stem = args.name.replace("-", "_")
    for k in ("table", "paired", "savings", "pairs", "held_out"):
        info[k] = json.loads(res[k].to_json(orient="records"))
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
