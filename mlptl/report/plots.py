"""The report's plots (matplotlib, Agg): learning curves with bootstrap CIs, savings, stability, search.

Each ``*_figure`` function returns the figure so a test can inspect its axes; :func:`write_plots` saves
the PNGs the report links (Markdown) and embeds (HTML).
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from mlptl.fsutil import atomic_write  # noqa: E402
from mlptl.report.tables import Analysis  # noqa: E402

log = logging.getLogger(__name__)

__all__ = ["learning_curve_figure", "savings_figure", "write_plots", "log_axis"]

COLORS = {"scratch": "tab:blue", "transfer": "tab:orange"}
SOURCE_COLORS = ["tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
_LABEL = FuncFormatter(lambda v, _: f"{v:.3g}")


def log_axis(ax, which: str, lo: float, hi: float, ticks=None) -> None:
    """A log axis whose major ticks carry labels whatever its range.

    Matplotlib's default log axis labels only decades, so a range inside one decade (0.08-0.3 eV/A, the
    usual spread of a learning curve) shows no number at all. Major ticks are the given ``ticks`` (the
    training sizes), else 1-2-5 x 10^k (:class:`LogLocator` with those subs), else every integer
    multiple of 10^k, else three log-spaced values; labels are plain numbers (3 significant digits).
    1-2-5 needs three ticks in range, the others two.
    """
    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    lo, hi = float(lo), float(hi)
    if ticks is None:
        for subs, enough in (((1.0, 2.0, 5.0), 3), (tuple(range(1, 10)), 2)):
            cand = LogLocator(base=10, subs=subs).tick_values(lo, hi)
            ticks = [float(f"{t:.6g}") for t in cand if lo <= t <= hi]
            if len(ticks) >= enough:
                break
        else:
            ticks = [float(f"{t:.2g}") for t in np.geomspace(lo, hi, 3)]
    axis.set_major_locator(FixedLocator(list(ticks)))
    axis.set_major_formatter(_LABEL)
    axis.set_minor_formatter(NullFormatter())
    (ax.set_xlim if which == "x" else ax.set_ylim)(lo, hi)


def _padded(values, factor: float = 1.25) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x) and x > 0], dtype=float)
    return float(v.min() / factor), float(v.max() * factor)


def learning_curve_figure(analyses: list[Analysis], unit: str = "eV/Å") -> Figure | None:
    """Mean test error per cell with its bootstrap CI, the replicates, and each init's log-log fit with its
    bootstrap band; log axes labelled at the training sizes and at readable error values."""
    analyses = [a for a in analyses if len(a.cells)]
    if not analyses:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    several = len(analyses) > 1
    drawn_scratch = False
    ys, sizes = [], set()
    for i, a in enumerate(analyses):
        for init, cs in a.cells.groupby("init"):
            if init == "scratch" and drawn_scratch:
                continue
            color = COLORS.get(init, "gray") if not several or init == "scratch" else SOURCE_COLORS[i % 5]
            label = f"{init} from {a.source}" if several and init != "scratch" else str(init)
            cs = cs.sort_values("train_size")
            lo = (cs["mean"] - cs["ci_low"]).clip(lower=0).fillna(0)
            hi = (cs["ci_high"] - cs["mean"]).clip(lower=0).fillna(0)
            ax.errorbar(cs.train_size, cs["mean"], yerr=[lo, hi], marker="o", capsize=3, ls="none", color=color,
                        label=f"{label} (mean, 95% CI)")
            pts = a.final[a.final["init"] == init]
            ax.scatter(pts.train_size, pts[a.metric], s=10, alpha=0.35, color=color)
            fit = a.fit_samples.get(init)
            if fit is not None:
                grid = np.geomspace(fit.sizes.min(), fit.sizes.max(), 50)
                ax.plot(grid, fit.predict(grid), color=color, lw=1, label=f"{label} fit n^-{fit.b:.2f}")
                band = fit.band(grid)
                if np.isfinite(band[0]).all():
                    ax.fill_between(grid, *band, color=color, alpha=0.15, lw=0)
                    ys += list(band[0]) + list(band[1])
            ys += list(cs["ci_low"]) + list(cs["ci_high"]) + list(pts[a.metric])
            sizes |= set(int(n) for n in cs.train_size)
            drawn_scratch |= init == "scratch"
    xs = sorted(sizes)
    log_axis(ax, "x", xs[0] / 1.3, xs[-1] * 1.3, ticks=xs)
    log_axis(ax, "y", *_padded(ys, 1.1))
    ax.set_xlabel("target training frames")
    ax.set_ylabel(f"test force MAE ({unit})")
    ax.set_title("Learning curves (error bars: bootstrap 95% CI over replicates)", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def savings_figure(analyses: list[Analysis]) -> Figure | None:
    """S(n) with its bootstrap CI; hollow markers where the scratch curve was extrapolated."""
    analyses = [a for a in analyses if len(a.savings) and np.isfinite(a.savings.savings).any()]
    if not analyses:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ys, xs = [1.0], set()
    for i, a in enumerate(analyses):
        s = a.savings[np.isfinite(a.savings.savings) & (a.savings.savings > 0)]
        color = SOURCE_COLORS[i % 5]
        lo = (s.savings - s.ci_low).clip(lower=0).fillna(0)
        hi = (s.ci_high - s.savings).clip(lower=0).replace(np.inf, np.nan).fillna(0)
        ext = s.extrapolated.astype(bool)
        label = f"from {a.source}" if a.source else "transfer vs scratch"
        ax.errorbar(s.train_size, s.savings, yerr=[lo, hi], ls="-", marker="none", capsize=3, color=color, label=label)
        ax.scatter(s.train_size[~ext], s.savings[~ext], color=color, zorder=3)
        ax.scatter(s.train_size[ext], s.savings[ext], facecolors="white", edgecolors=color, zorder=3,
                   label="extrapolated scratch curve" if ext.any() else None)
        ys += [v for v in list(s.ci_low) + list(s.ci_high) + list(s.savings) if np.isfinite(v) and v > 0]
        xs |= set(int(n) for n in s.train_size)
    ax.axhline(1.0, color="gray", lw=0.8, ls="--")
    x = sorted(xs)
    log_axis(ax, "x", x[0] / 1.3, x[-1] * 1.3, ticks=x)
    log_axis(ax, "y", *_padded(ys))
    ax.set_xlabel("target training frames (transfer)")
    ax.set_ylabel("data-savings factor S")
    ax.set_title("S = scratch frames needed / transfer frames (95% CI)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _stability_figure(final: pd.DataFrame) -> Figure | None:
    cols = sorted(c for c in final.columns if str(c).startswith("stability_stable_fraction."))
    if final.empty or not cols:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for init, g in final.groupby("init"):
        for col, ls in zip(cols, ["-", "--", ":", "-."] * 4):
            s = g.groupby("train_size")[col].mean()
            ax.plot(s.index, s.values, marker="o", ls=ls, color=COLORS.get(init), label=f"{init} {col.split('.')[-1]}")
    x = sorted(final.train_size.unique())
    log_axis(ax, "x", x[0] / 1.3, x[-1] * 1.3, ticks=x)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("target training frames")
    ax.set_ylabel("stable fraction of MD runs (mean over replicates)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _hyperparameter_figure(df: pd.DataFrame) -> Figure | None:
    if "best_val_forces_mae" not in df or "lr" not in df:
        return None
    search = df[(df.phase == "search") & df["best_val_forces_mae"].notna()]
    if search.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(9, 4))
    for (init, n), g in search.groupby(["init", "train_size"]):
        axes[0].scatter(g.lr, g.best_val_forces_mae, label=f"{init} n={n}", color=COLORS.get(init),
                        marker="o" if n == search.train_size.min() else "s", alpha=0.7)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("learning rate")
    axes[0].set_ylabel("best validation force MAE (eV/Å)")
    axes[0].legend(fontsize=7)
    tr = search[search.init == "transfer"]
    if not tr.empty and "freeze_depth" in tr:
        for n, g in tr.groupby("train_size"):
            s = g.groupby("freeze_depth").best_val_forces_mae.min()
            axes[1].plot(s.index, s.values, marker="o", label=f"n={n}")
        axes[1].set_xlabel("freeze depth (transfer)")
        axes[1].set_ylabel("best validation force MAE (eV/Å)")
        axes[1].legend(fontsize=7)
    fig.suptitle("Search trials (validation error: what selection used)", fontsize=9)
    fig.tight_layout()
    return fig


def _pruning_figure(table: pd.DataFrame) -> Figure | None:
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.epochs_budget, 0.4, label="budget (trained trials x max epochs)", color="lightgray")
    ax.bar(x + 0.2, table.epochs_spent, 0.4, label="epochs run", color="tab:green")
    ax.set_xticks(x, table.cell, rotation=30, ha="right")
    ax.set_ylabel("epochs")
    ax.set_title("Pruning savings per cell")
    ax.legend()
    fig.tight_layout()
    return fig


def write_plots(df: pd.DataFrame, final: pd.DataFrame, table: pd.DataFrame, analyses: list[Analysis], out: Path) -> list[str]:
    """Save every plot that has data; returns the file names, in the order the report shows them."""
    figures = {
        "learning_curve.png": lambda: learning_curve_figure(analyses),
        "savings.png": lambda: savings_figure(analyses),
        "stability.png": lambda: _stability_figure(final),
        "hyperparameters.png": lambda: _hyperparameter_figure(df),
        "pruning.png": lambda: _pruning_figure(table),
    }
    made = []
    for name, make in figures.items():
        try:
            fig = make()
        except Exception:  # a plot must never cost the report its tables and text
            log.exception("plot %s failed", name)
            continue
        if fig is None:
            continue
        with atomic_write(out / name) as tmp:
            fig.savefig(tmp, dpi=120, format="png")
        plt.close(fig)
        made.append(name)
    return made
