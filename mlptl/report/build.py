"""A study's report, built from MLflow alone: pandas tables and matplotlib plots.

Reading back from the tracking store (not from the driver's memory) means ``mlptl report STUDY`` can
rebuild the report at any time, from any machine that reaches the store, for a study still running.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["load_runs", "cell_table", "build_report"]


def load_runs(tracking_uri: str, study: str) -> pd.DataFrame:
    """All trial runs of a study, one row each, with tidy column names (no ``metrics.``/``params.``)."""
    c = T.client(tracking_uri)
    exp = c.get_experiment_by_name(study)
    if exp is None:
        raise InputError(f"no study named {study!r} in the tracking store {tracking_uri}")
    runs = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=50000)
    df = pd.DataFrame(
        [
            {
                "run_id": r.info.run_id,
                "status_mlflow": r.info.status,
                "start_time": r.info.start_time,
                "end_time": r.info.end_time,
                **{f"metrics.{k}": v for k, v in r.data.metrics.items()},
                **{f"params.{k}": v for k, v in r.data.params.items()},
                **{f"tags.{k}": v for k, v in r.data.tags.items()},
            }
            for r in runs
        ]
    )
    if df.empty:
        return df
    params = {c.split(".", 1)[1] for c in df.columns if c.startswith("params.")}

    def tidy(col: str) -> str:
        if col.startswith("params."):
            return col.split(".", 1)[1]
        if col.startswith("metrics."):
            name = col.split(".", 1)[1]
            # a per-epoch metric named like a parameter (the scheduled lr) keeps its last value apart
            return f"last_{name}" if name in params else name
        return col

    df = df.rename(columns=tidy)
    df["cell"] = df[f"tags.{T.TAG_CELL}"]
    df["phase"] = df[f"tags.{T.TAG_PHASE}"]
    df["status"] = df[f"tags.{T.TAG_STATUS}"]
    df["trial_key"] = df[f"tags.{T.TAG_TRIAL_KEY}"]
    df["epochs_run"] = pd.to_numeric(df.get("tags.mlptl.epochs_run"), errors="coerce")
    for col in ("train_size", "lr", "freeze_depth", "seed", "max_epochs"):
        if col in df:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    return df


def _stable_cols(df: pd.DataFrame) -> list[str]:
    return sorted(c for c in df.columns if str(c).startswith("stability_stable_fraction."))


def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: search effort and pruning, and the re-trained best over seeds."""
    rows = []
    for cell, g in df.groupby("cell"):
        s = g[g.phase == "search"]
        f = g[(g.phase == "final") & (g.status == "finished")]
        # Pruning savings count trials that trained (finished or pruned); failed trials spent nothing.
        budget = float(s.loc[s.status.isin(["finished", "pruned"]), "max_epochs"].fillna(0).sum())
        row = {
            "cell": cell,
            "init": g["init"].iloc[0],
            "train_size": int(g["train_size"].iloc[0]),
            "trials": len(s),
            "finished": int((s.status == "finished").sum()),
            "pruned": int((s.status == "pruned").sum()),
            "failed": int((s.status == "failed").sum()),
            "epochs_spent": float(s["epochs_run"].fillna(0).sum()),
            "epochs_budget": budget,
            "best_val_forces_mae": float(s.get("best_val_forces_mae", pd.Series(dtype=float)).min()),
            "seeds": len(f),
        }
        if len(f) and M.TEST_FORCES_MAE in f:
            mae = f[M.TEST_FORCES_MAE].astype(float)
            row.update(
                test_forces_mae_best=float(mae.min()),
                test_forces_mae_median=float(mae.median()),
                test_forces_mae_mean=float(mae.mean()),
                test_forces_mae_std=float(mae.std(ddof=0)),
            )
            if "lr" in f:
                row["lr"] = float(f["lr"].iloc[0])
            if "freeze_depth" in f:
                row["freeze_depth"] = int(f["freeze_depth"].iloc[0])
            for col in _stable_cols(f):
                row[col.replace("stability_", "")] = float(f[col].astype(float).mean())
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["train_size", "init"]).reset_index(drop=True)
    return table


def _markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A Markdown table without pulling in `tabulate` (pandas' to_markdown needs it)."""
    if df.empty:
        return "(no rows)\n"
    cols = list(df.columns)

    def fmt(v):
        if isinstance(v, float):
            return "" if np.isnan(v) else format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _plots(df: pd.DataFrame, table: pd.DataFrame, out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    colors = {"scratch": "tab:blue", "transfer": "tab:orange"}
    final = df[(df.phase == "final") & (df.status == "finished")]

    # learning curve
    if not final.empty and M.TEST_FORCES_MAE in final:
        fig, ax = plt.subplots(figsize=(5, 4))
        for init, g in final.groupby("init"):
            stats = g.groupby("train_size")[M.TEST_FORCES_MAE].agg(["mean", "std", "min", "max"]).reset_index()
            ax.errorbar(stats.train_size, stats["mean"], yerr=stats["std"].fillna(0), marker="o", capsize=3, label=init, color=colors.get(init))
            ax.scatter(g.train_size, g[M.TEST_FORCES_MAE], s=10, alpha=0.4, color=colors.get(init))
        ax.set_xscale("log")
        ax.set_yscale("log")
        sizes = sorted(final.train_size.dropna().unique())
        ax.set_xticks(sizes, [str(int(n)) for n in sizes])
        ax.minorticks_off()
        ax.set_xlabel("target training frames")
        ax.set_ylabel("test force MAE (eV/Å)")
        ax.set_title("Learning curve: scratch vs transfer")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "learning_curve.png", dpi=120)
        plt.close(fig)
        made.append("learning_curve.png")

    # stability
    scols = _stable_cols(final) if not final.empty else []
    if scols:
        fig, ax = plt.subplots(figsize=(5, 4))
        for init, g in final.groupby("init"):
            for col, ls in zip(scols, ["-", "--", ":", "-."] * 4):
                s = g.groupby("train_size")[col].mean()
                ax.plot(s.index, s.values, marker="o", ls=ls, color=colors.get(init), label=f"{init} {col.split('.')[-1]}")
        ax.set_xscale("log")
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("target training frames")
        ax.set_ylabel("stable fraction of MD runs")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "stability.png", dpi=120)
        plt.close(fig)
        made.append("stability.png")

    # hyperparameters: lr and freeze depth against the search trials' best validation error
    search = df[(df.phase == "search") & df.get("best_val_forces_mae", pd.Series(dtype=float)).notna()]
    if not search.empty:
        fig, axes = plt.subplots(1, 2, figsize=(9, 4))
        for (init, n), g in search.groupby(["init", "train_size"]):
            axes[0].scatter(g.lr, g.best_val_forces_mae, label=f"{init} n={n}", color=colors.get(init), marker="o" if n == search.train_size.min() else "s", alpha=0.7)
        axes[0].set_xscale("log")
        axes[0].set_xlabel("learning rate")
        axes[0].set_ylabel("best validation force MAE (eV/Å)")
        axes[0].legend(fontsize=7)
        tr = search[search.init == "transfer"]
        if not tr.empty:
            for n, g in tr.groupby("train_size"):
                s = g.groupby("freeze_depth").best_val_forces_mae.min()
                axes[1].plot(s.index, s.values, marker="o", label=f"n={n}")
            axes[1].set_xlabel("freeze depth (transfer)")
            axes[1].set_ylabel("best validation force MAE (eV/Å)")
            axes[1].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "hyperparameters.png", dpi=120)
        plt.close(fig)
        made.append("hyperparameters.png")

    # pruning savings
    if not table.empty:
        fig, ax = plt.subplots(figsize=(6, 4))
        x = np.arange(len(table))
        ax.bar(x - 0.2, table.epochs_budget, 0.4, label="budget (trained trials x max epochs)", color="lightgray")
        ax.bar(x + 0.2, table.epochs_spent, 0.4, label="epochs run", color="tab:green")
        ax.set_xticks(x, table.cell, rotation=30, ha="right")
        ax.set_ylabel("epochs")
        ax.set_title("Pruning savings per cell")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "pruning.png", dpi=120)
        plt.close(fig)
        made.append("pruning.png")
    return made


def build_report(tracking_uri: str, study: str, out: str | Path) -> Path:
    """Write report.md, cells.csv, trials.csv and the plots into ``out``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = load_runs(tracking_uri, study)
    if df.empty:
        raise InputError(f"study {study!r} has no trial runs yet")
    table = cell_table(df)
    table.to_csv(out / "cells.csv", index=False)
    keep = [c for c in ["trial_key", "cell", "phase", "status", "init", "train_size", "lr", "freeze_depth", "seed", "epochs_run", "best_val_forces_mae", M.TEST_FORCES_MAE, M.TEST_ENERGY_PER_ATOM_MAE, f"tags.{T.TAG_REASON}"] if c in df]
    df[keep].sort_values(["cell", "phase", "trial_key"]).to_csv(out / "trials.csv", index=False)
    plots = _plots(df, table, out)
    spent, budget = table.epochs_spent.sum(), table.epochs_budget.sum()
    lines = [
        f"# Study report: {study}\n",
        f"{len(df)} trial runs; search: {int(table.trials.sum())} trials, {int(table.pruned.sum())} pruned, "
        f"{int(table.failed.sum())} failed; epochs run {spent:.0f} of a budget of {budget:.0f} "
        f"({(1 - spent / budget) * 100 if budget else 0:.0f}% saved by pruning).\n",
        "Force errors in eV/Å (test set, re-trained best configuration of each cell, over seeds).\n",
        "## Cells\n",
        _markdown(table),
    ]
    for p in plots:
        lines.append(f"\n![{p}]({p})\n")
    (out / "report.md").write_text("\n".join(lines))
    log.info("report written to %s", out)
    return out
