"""The paper's classical-force-field experiment as an mlptl study: Si -> Ge on Stillinger-Weber data.

Röcken & Zavadlav's findings, checked on mlptl's own study pipeline (Ray Tune trials, Optuna TPE with
the learning rate tuned per cell and median pruning, MLflow tracking), sized for a 2-core CPU:

1. transfer beats scratch in test force MAE, more so at small Ge training sizes (and is transfer at N
   frames better than scratch at 5N?);
2. transfer gives more stable MD;
3. transfer transfers better in temperature: trained on 300 K and 600 K frames only, tested (forces and
   MD) at 900 K and 1200 K as well.

Every number is read back from the study's MLflow store (bench/work/sw-learning-curve/); rerunning the
script resumes the study (finished trials are not redone) and rewrites the results:
bench/results/sw_learning_curve.{json,csv,png}. The full-scale version is studies/sw_si_to_ge.py.
"""

from __future__ import annotations

import argparse
import logging
import math
import shutil

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, machine_info, setup_logging, write_json  # noqa: E402

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
            element=element, temperatures=temps, frames_per_temperature=per_t, supercell=2,
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
        seeds=tuple(args.seeds),
        max_epochs=args.epochs,
        sampler_seed=0,
        pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=5),
        evaluation=EvaluationSpec(
            stability_temperatures=(300.0, *HELD_OUT_T), stability_steps=args.md_steps, stability_replicas=1,
            properties=False,
        ),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=args.concurrent),
        storage=S.storage_dir(args.name),
    )


def analyse(runs: pd.DataFrame, sizes: list[int]) -> dict:
    groups = [f"T{int(t)}" for t in TRAIN_T + HELD_OUT_T]
    metrics = ["test_forces_mae", "test_energy_per_atom_mae"]
    metrics += [f"test_forces_mae.{g}" for g in groups]
    stab = [f"stability_stable_fraction.T{int(t)}" for t in (300.0, *HELD_OUT_T)]
    stab += [f"stability_median_ttf_ps.T{int(t)}" for t in (300.0, *HELD_OUT_T)]
    table = S.cell_summary(runs, metrics + stab)
    f = S.finals(runs)
    # Held-out temperatures: mean force MAE over 900 K and 1200 K test frames, per run, then over seeds.
    for g in groups:
        f[f"test_forces_mae.{g}"] = pd.to_numeric(f.get(f"test_forces_mae.{g}"), errors="coerce")
    f["held_out_forces_mae"] = f[[f"test_forces_mae.T{int(t)}" for t in HELD_OUT_T]].mean(axis=1)
    f["train_t_forces_mae"] = f[[f"test_forces_mae.T{int(t)}" for t in TRAIN_T]].mean(axis=1)
    f["held_out_ratio"] = f["held_out_forces_mae"] / f["train_t_forces_mae"]
    extra = f.groupby(["init", "train_size"])[["held_out_forces_mae", "train_t_forces_mae", "held_out_ratio"]]
    extra = extra.agg(["mean", "std"])
    extra.columns = [f"{a}_{b}" for a, b in extra.columns]
    table = table.merge(extra.reset_index(), on=["init", "train_size"], how="left")

    findings = {"transfer_vs_scratch": [], "transfer_N_vs_scratch_5N": []}
    for n in sizes:
        t = table[(table.init == "transfer") & (table.train_size == n)]
        s = table[(table.init == "scratch") & (table.train_size == n)]
        if t.empty or s.empty:
            continue
        wins, pairs = S.pairwise_wins(runs, "test_forces_mae", n, n)
        findings["transfer_vs_scratch"].append({
            "train_size": n,
            "force_ratio": float(t.test_forces_mae_mean.iloc[0] / s.test_forces_mae_mean.iloc[0]),
            "held_out_ratio": float(t.held_out_forces_mae_mean.iloc[0] / s.held_out_forces_mae_mean.iloc[0]),
            "wins": f"{wins}/{pairs}",
        })
        if 5 * n in sizes:
            wins, pairs = S.pairwise_wins(runs, "test_forces_mae", n, 5 * n)
            s5 = table[(table.init == "scratch") & (table.train_size == 5 * n)]
            findings["transfer_N_vs_scratch_5N"].append({
                "N": n, "transfer_N": float(t.test_forces_mae_mean.iloc[0]),
                "scratch_5N": float(s5.test_forces_mae_mean.iloc[0]), "wins": f"{wins}/{pairs}",
            })
    return {"table": table, "findings": findings}


def plot(table: pd.DataFrame, out) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.3))
    style = {"scratch": dict(color="tab:red", marker="o"), "transfer": dict(color="tab:blue", marker="s")}
    for init, g in table.groupby("init"):
        g = g.sort_values("train_size")
        axes[0].errorbar(g.train_size, g.test_forces_mae_mean, yerr=g.test_forces_mae_std, capsize=3,
                         label=init, **style[init])
        axes[1].errorbar(g.train_size, g.train_t_forces_mae_mean, yerr=g.train_t_forces_mae_std, capsize=3,
                         label=f"{init}: 300/600 K (trained)", **style[init])
        axes[1].errorbar(g.train_size, g.held_out_forces_mae_mean, yerr=g.held_out_forces_mae_std, capsize=3,
                         ls="--", label=f"{init}: 900/1200 K (held out)", mfc="none", **style[init])
        for t, ls in ((300, "-"), (900, "--"), (1200, ":")):
            col = f"stability_stable_fraction.T{t}_mean"
            if col in g:
                axes[2].plot(g.train_size, g[col], ls=ls, label=f"{init} {t} K", **style[init])
    for ax in axes[:2]:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Ge training frames")
        ax.set_ylabel("test force MAE [eV/Å]")
    axes[0].set_title("learning curve (all test temperatures)")
    axes[1].set_title("temperature transfer")
    axes[2].set_xscale("log")
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
    p.add_argument("--name", default="sw-learning-curve")
    p.add_argument("--source", default="Si")
    p.add_argument("--target", default="Ge")
    p.add_argument("--sizes", type=int, nargs="+", default=[5, 10, 25, 50, 100])
    p.add_argument("--frames-per-temperature", type=int, default=80)
    p.add_argument("--trials-per-cell", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--md-steps", type=int, default=600, help="stability MD steps (1 fs) per temperature")
    p.add_argument("--concurrent", type=int, default=2, help="trials at once (1 CPU and 1 torch thread each)")
    p.add_argument("--fresh", action="store_true", help="delete the study's store first instead of resuming")
    p.add_argument("--analyse-only", action="store_true", help="only re-read the store and rewrite the results")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)

    from mlptl.report import load_runs
    from mlptl.tracking import resolve_tracking_uri

    study = make_study(args)
    info = {"benchmark": "sw_learning_curve", "machine": machine_info(), "settings": vars(args)}
    if not args.analyse_only:
        info["run"] = S.run(study, fresh=args.fresh)
    uri = resolve_tracking_uri(study.storage_dir(), study.tracking_uri)
    runs = load_runs(uri, study.name)
    res = analyse(runs, list(args.sizes))
    table = res["table"]
    info["machine"]["load_avg_at_end"] = list(__import__("os").getloadavg())
    info["findings"] = res["findings"]
    info["table"] = table.to_dict(orient="records")
    info["study_wall_s"] = info.get("run", {}).get("wall_s")
    table.to_csv(RESULTS_DIR / "sw_learning_curve.csv", index=False)
    write_json(RESULTS_DIR / "sw_learning_curve.json", info)
    plot(table, RESULTS_DIR / "sw_learning_curve.png")
    report_png = study.storage_dir() / "reports" / study.name / "pruning.png"
    if report_png.exists():
        shutil.copy2(report_png, RESULTS_DIR / "sw_learning_curve_pruning.png")
    cols = ["init", "train_size", "best_lr", "pruned", "test_forces_mae_mean", "test_forces_mae_std",
            "train_t_forces_mae_mean", "held_out_forces_mae_mean"]
    log.info("\n%s", table[[c for c in cols if c in table]].to_string(index=False))
    for k, v in res["findings"].items():
        log.info("%s: %s", k, v)
    return 0 if not math.isnan(float(table.test_forces_mae_mean.max())) else 1


if __name__ == "__main__":
    raise SystemExit(main())
