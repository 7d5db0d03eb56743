"""What the study platform costs and what pruning saves, measured on one small study run three ways.

1. **No pruner**: an mlptl study (Ray Tune + Optuna + MLflow) of two cells (scratch and transfer at one
   Ge training size), every search trial trained to the full epoch budget, then each cell's best
   re-trained with one seed.
2. **Bare**: exactly the same trainings, read back from the Ray trial configs of run 1 (same data files,
   splits, seeds, learning rates, epochs), run one after another with ``mlptl.train.train`` in this
   process: no Ray, no Optuna, no MLflow. The study's wall time against the sum of these is the
   platform's overhead (target: under 5 % for trials of about a minute).
3. **Median pruner**: the same study with Optuna's median pruner. Optuna's TPE proposes its first 10
   trials per cell at random from the sampler seed, so with the same seed both studies try the same
   learning rates (and freeze depths) in the same order, and pruning is the only difference: epochs and
   wall time spent, and the best test force MAE each cell reaches.

One trial at a time (1 CPU, 1 torch thread) in all three, so that the comparison is of the same work.
The two studies are bench/studies/study_costs.py (``STUDY``, ``MEDIAN``); this script runs them the way
``mlptl run`` does and times the bare trainings. Results: bench/results/study_costs.{json,csv,png};
``--replot`` recomputes the overhead and savings from the results JSON and redraws the figure.
Stores: bench/work/study-costs/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    ge_data_spec,
    generated,
    machine_info,
    set_threads,
    setup_logging,
    write_json,
)

log = logging.getLogger("bench.study_costs")
STORE = WORK_DIR / "study-costs"
OVERHEAD_STORE = WORK_DIR / "study-costs-overhead"
PRETRAINED = WORK_DIR / "transfer_vs_scratch" / "si-pretrain" / "model.nequip.zip"  # as in the study file


def load_studies(args) -> dict[str, Any]:
    """The study file's two studies (no pruner, median pruner) with this run's settings; the data set and
    the source model they name are made first if missing."""
    ns = S.load_namespace("study_costs")  # bench/studies/study_costs.py
    if not PRETRAINED.exists():
        raise SystemExit(f"{PRETRAINED} is missing: run `python bench/transfer_vs_scratch.py` first (it trains it)")
    data = generated(ge_data_spec())
    studies = {}
    for label, study in (("no pruner", ns["STUDY"]), ("median pruner", ns["MEDIAN"])):
        assert Path(study.target_data.path) == data and Path(study.pretraining.pretrained) == PRETRAINED, study.name
        pruner = dataclasses.replace(study.pruner, n_warmup_steps=args.warmup) if args.warmup is not None else study.pruner
        studies[label] = study.with_overrides(
            train_sizes=(args.size,) if args.size else None, trials_per_cell=args.trials_per_cell,
            max_epochs=args.epochs, pruner=pruner,
        )
    return studies


def trial_jobs(study) -> list[dict]:
    """The job of every trial Ray ran, from its params.json, in start order."""
    jobs = []
    for params in sorted(Path(study.storage_dir(), "ray").glob("*/*/params.json"), key=os.path.getmtime):
        cfg = json.loads(params.read_text())
        job = cfg.get("job")
        if job:
            jobs.append(job)
    return jobs


def run_bare(study, out: Path) -> pd.DataFrame:
    """Every training of ``study`` again, plain ``mlptl.train.train`` calls one after another."""
    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.study.job import TrialJob
    from mlptl.train import train

    rows = []
    jobs = trial_jobs(study)
    log.info("bare: %d trainings", len(jobs))
    if out.exists():
        shutil.rmtree(out)
    for i, j in enumerate(jobs):
        job = TrialJob.from_dict(j)
        job = dataclasses.replace(job, run_dir=str(out / job.trial_key))
        t0, c0 = time.perf_counter(), time.process_time()
        res = train(job.train_spec())
        rows.append({
            "trial_key": job.trial_key, "phase": job.phase, "cell": job.cell, "lr": job.params.lr,
            "wall_s": time.perf_counter() - t0, "cpu_s": time.process_time() - c0,
            "epochs": res.epochs_run,
            "test_forces_mae": evaluate_test_set(res.model_path, res.test_path, element=job.element)["test_forces_mae"],
        })
        log.info("bare %d/%d %s: %.1f s, test force MAE %.4f", i + 1, len(jobs), job.trial_key,
                 rows[-1]["wall_s"], rows[-1]["test_forces_mae"])
    return pd.DataFrame(rows)


def trial_walls(uri: str, name: str) -> pd.DataFrame:
    from mlptl.report import load_runs

    runs = load_runs(uri, name)
    runs["wall_s"] = (runs.end_time - runs.start_time) / 1000.0
    return runs


def per_cell(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for cell, g in runs.groupby("cell"):
        s = g[g.phase == "search"]
        ok = s[s.status == "finished"]
        best = ok.loc[pd.to_numeric(ok.best_val_forces_mae, errors="coerce").idxmin()] if len(ok) else None
        f = g[(g.phase == "final") & (g.status == "finished")]
        rows.append({
            "cell": cell,
            "trials": len(s),
            "pruned": int((s.status == "pruned").sum()),
            "epochs_spent": float(s.epochs_run.fillna(0).sum()),
            "epochs_budget": float(s.max_epochs.sum()),
            "search_wall_s": float(s.wall_s.sum()),
            "best_lr": float(best.lr) if best is not None else float("nan"),
            "best_val_forces_mae": float(best.best_val_forces_mae) if best is not None else float("nan"),
            "best_search_test_forces_mae": float(best.test_forces_mae) if best is not None else float("nan"),
            "final_test_forces_mae": float(f.test_forces_mae.iloc[0]) if len(f) else float("nan"),
        })
    return pd.DataFrame(rows)


def compare(runs: pd.DataFrame, bare: pd.DataFrame, study_wall_s: float) -> tuple[dict, pd.DataFrame]:
    """The study's wall time (whole, and summed over its trials' MLflow runs) against the bare trainings."""
    paired = runs[["trial_key", "wall_s", "phase"]].merge(bare[["trial_key", "wall_s"]], on="trial_key",
                                                          suffixes=("_study", "_bare"))
    o = {
        "study_wall_s": study_wall_s,
        "study_trials_sum_s": float(paired.wall_s_study.sum()),
        "bare_sum_s": float(paired.wall_s_bare.sum()),
        "trials": len(paired),
        "median_bare_trial_s": float(paired.wall_s_bare.median()),
    }
    o["overhead_whole"] = o["study_wall_s"] / o["bare_sum_s"] - 1
    o["overhead_trials"] = o["study_trials_sum_s"] / o["bare_sum_s"] - 1
    o["fixed_s"] = o["study_wall_s"] - o["study_trials_sum_s"]
    return o, paired


def savings(cells: pd.DataFrame, study_wall_s: dict[str, float]) -> dict[str, Any]:
    """Search epochs and wall time per arm (summed over its cells), and each study's wall time."""
    return {
        "epochs_spent": {a: float(g.epochs_spent.sum()) for a, g in cells.groupby("arm")},
        "search_wall_s": {a: float(g.search_wall_s.sum()) for a, g in cells.groupby("arm")},
        "study_wall_s": study_wall_s,
    }


def replot() -> dict[str, Any]:
    """Overhead and pruning savings recomputed from the results JSON alone, and the figure redrawn."""
    info = json.loads((RESULTS_DIR / "study_costs.json").read_text())
    cells = pd.DataFrame(info["cells"])
    pairs = pd.DataFrame(info["paired_trials"])
    runs = pairs[["trial_key", "wall_s_study", "phase"]].rename(columns={"wall_s_study": "wall_s"})
    bare = pairs[["trial_key", "wall_s_bare"]].rename(columns={"wall_s_bare": "wall_s"})
    overhead, _ = compare(runs, bare, info["overhead"]["study_wall_s"])
    plot(cells, overhead, RESULTS_DIR / "study_costs.png")
    return {"overhead": overhead, "pruning": savings(cells, info["pruning"]["study_wall_s"])}


def overhead_only(args, info: dict) -> int:
    from mlptl.tracking import resolve_tracking_uri

    if OVERHEAD_STORE.exists():
        shutil.rmtree(OVERHEAD_STORE)
    study = load_studies(args)["no pruner"].with_overrides(storage=str(OVERHEAD_STORE / "none"))
    run = S.run(study)
    info["study_load_after"] = list(os.getloadavg())
    bare = run_bare(study, OVERHEAD_STORE / "bare")
    runs = trial_walls(resolve_tracking_uri(study.storage_dir(), study.tracking_uri), study.name)
    overhead, paired = compare(runs, bare, run["wall_s"])
    info.update(overhead=overhead, paired_trials=paired.to_dict(orient="records"), run=run)
    info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    write_json(RESULTS_DIR / "study_costs_overhead.json", info)
    log.info("overhead: %s", overhead)
    return 0


def plot(cells: pd.DataFrame, overhead: dict, out: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    w = 0.38
    for k, (arm, g) in enumerate(cells.groupby("arm")):
        x = [i + (k - 0.5) * w for i in range(len(g))]
        axes[0].bar(x, g.epochs_spent, w, label=arm)
        axes[1].bar(x, g.final_test_forces_mae, w, label=arm)
        axes[0].set_xticks(range(len(g)), g.cell)
        axes[1].set_xticks(range(len(g)), g.cell)
    axes[0].axhline(cells.epochs_budget.max(), color="k", ls=":", label="budget")
    axes[0].set_ylabel("search epochs spent")
    axes[1].set_ylabel("test force MAE of the cell's best [eV/Å]")
    walls = [overhead["bare_sum_s"], overhead["study_trials_sum_s"], overhead["study_wall_s"]]
    axes[2].bar(["bare trainings", "study trials", "whole study"], walls, color=["grey", "tab:blue", "tab:blue"])
    axes[2].set_ylabel("wall time [s]")
    axes[2].set_title(f"overhead: {100 * overhead['overhead_whole']:.1f} % whole study, "
                      f"{100 * overhead['overhead_trials']:.1f} % per trial", fontsize=9)
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, help="Ge training frames of both cells (study file: 50)")
    p.add_argument("--trials-per-cell", type=int, help="search trials per cell (study file: 6)")
    p.add_argument("--epochs", type=int, help="epochs per trial (study file: 20)")
    p.add_argument("--warmup", type=int, help="median pruner: epochs before it may prune (study file: 5)")
    p.add_argument("--fresh", action="store_true", help="delete the stores and rerun everything")
    p.add_argument("--overhead-only", action="store_true",
                   help="only the overhead part (no-pruner study + bare), in its own store, always fresh; "
                        "writes results/study_costs_overhead.json")
    p.add_argument("--replot", action="store_true",
                   help="only recompute overhead and savings from results/study_costs.json and redraw the figure")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    if args.replot:
        log.info("%s", replot())
        return 0
    set_threads(1)
    from mlptl.tracking import resolve_tracking_uri

    info = {"benchmark": "study_costs", "machine": machine_info(), "settings": vars(args)}
    if args.overhead_only:
        return overhead_only(args, info)
    if args.fresh and STORE.exists():
        shutil.rmtree(STORE)
    studies = load_studies(args)
    nop, med = studies["no pruner"], studies["median pruner"]
    arms = {}
    for study, label in ((nop, "no pruner"), (med, "median pruner")):
        arms[label] = {"run": S.run(study), "uri": resolve_tracking_uri(study.storage_dir(), study.tracking_uri),
                       "load_after": list(os.getloadavg())}
        if label == "no pruner":
            bare = run_bare(study, STORE / "bare")
            info["bare_load_after"] = list(os.getloadavg())
    runs_nop = trial_walls(arms["no pruner"]["uri"], nop.name)
    runs_med = trial_walls(arms["median pruner"]["uri"], med.name)
    overhead, paired = compare(runs_nop, bare, arms["no pruner"]["run"]["wall_s"])
    cells = pd.concat([per_cell(runs_nop).assign(arm="no pruner"), per_cell(runs_med).assign(arm="median pruner")])
    saving = savings(cells, {k: v["run"]["wall_s"] for k, v in arms.items()})
    info.update(overhead=overhead, pruning=saving, cells=cells.to_dict(orient="records"),
                paired_trials=paired.to_dict(orient="records"), bare=bare.to_dict(orient="records"),
                arms={k: {kk: vv for kk, vv in v.items() if kk != "uri"} for k, v in arms.items()})
    info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    cells.to_csv(RESULTS_DIR / "study_costs.csv", index=False)
    write_json(RESULTS_DIR / "study_costs.json", info)
    plot(cells, overhead, RESULTS_DIR / "study_costs.png")
    log.info("\n%s", cells.to_string(index=False))
    log.info("overhead: %s", overhead)
    log.info("pruning: %s", saving)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
