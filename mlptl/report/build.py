"""A study's report, built from MLflow alone: the answer first, then the tables and plots behind it.

Writes, into the report directory: report.md (and its PNGs), report.html (the same report, one
self-contained page), headline.json (the flat headline metrics for the study's MLflow parent run),
and CSVs of every table (cells, trials, cell_stats, paired_tests, learning_curve_fits, savings,
headline_pairs).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.fsutil import atomic_write_text
from mlptl.report import statistics as S
from mlptl.report.html import Block, to_html, to_markdown
from mlptl.report.plots import write_plots
from mlptl.report.runs import final_frame, load_runs, replicate_info
from mlptl.report.summary import answer, selection_note
from mlptl.report.tables import (
    Analysis,
    analyse,
    cell_table,
    ci_table,
    element_inits,
    fmt,
    fmt_ci,
    fmt_p,
    forgetting_table,
    headline_metrics_of,
    pairs_matrix,
    sources_table,
)

log = logging.getLogger(__name__)

__all__ = ["build_report", "answer_text", "load_runs", "cell_table", "HEADLINE_FILE"]

HEADLINE_FILE = "headline.json"
TAG_SELECTION = T.TAG_SELECTION


def _stacked(analyses: list[Analysis], table: str) -> pd.DataFrame:
    """One analysis table over all sources, with a ``source`` column when there are several."""
    frames = []
    for a in analyses:
        t = getattr(a, table).copy()
        if len(analyses) > 1:
            t.insert(0, "source", a.source)
        frames.append(t)
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _cells_view(analyses: list[Analysis]) -> pd.DataFrame:
    t = _stacked(analyses, "cells")
    if t.empty:
        return t
    if "source" in t:  # scratch is shared by the sources: once, without one
        t["source"] = t["source"].where(t["init"] != "scratch", "")
        t = t.drop_duplicates(["source", "init", "train_size"])
    return pd.DataFrame({
        **({"source": t.source} if "source" in t else {}),
        "init": t.init, "train frames": t.train_size, "replicates": t.n,
        "mean test force MAE": t["mean"].map(fmt), "95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.ci_low, t.ci_high)],
        "geometric mean": t.gmean.map(fmt), "std": t["std"].map(fmt),
    }).sort_values(["train frames", "init"]).reset_index(drop=True)


def _paired_view(analyses: list[Analysis]) -> pd.DataFrame:
    t = _stacked(analyses, "paired")
    if t.empty:
        return t
    return pd.DataFrame({
        **({"source": t.source} if "source" in t else {}),
        "train frames": t.train_size, "pairs": t.n_pairs, "transfer": t.mean_treatment.map(fmt),
        "scratch": t.mean_control.map(fmt), "ratio": t.ratio.map(fmt),
        "ratio 95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.ratio_ci_low, t.ratio_ci_high)],
        "p (paired t, log)": t.t_p.map(fmt_p), "p (Wilcoxon)": t.wilcoxon_p.map(fmt_p),
        "smallest Wilcoxon p possible": t.wilcoxon_min_p.map(fmt_p),
        "low power": t.low_power.map(lambda v: "yes" if v else ""),
    })


def _fits_view(analyses: list[Analysis]) -> pd.DataFrame:
    t = _stacked(analyses, "fits")
    if t.empty:
        return t
    return pd.DataFrame({
        **({"source": t.source} if "source" in t else {}),
        "init": t.init, "sizes": t.sizes, "min replicates": t.min_replicates,
        "a": t.a.map(fmt), "a 95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.a_ci_low, t.a_ci_high)],
        "b (err ~ a n^-b)": t.b.map(lambda v: fmt(v, 3)),
        "b 95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.b_ci_low, t.b_ci_high)],
        "RMS log residual": t.rms_log_residual.map(fmt),
    })


def _savings_view(analyses: list[Analysis]) -> pd.DataFrame:
    t = _stacked(analyses, "savings")
    if t.empty:
        return t
    return pd.DataFrame({
        **({"source": t.source} if "source" in t else {}),
        "transfer frames": t.train_size, "replicates": t.n_replicates, "transfer error (geo. mean)": t.treatment_gmean.map(fmt),
        "scratch frames to match": t.equivalent_size.map(lambda v: fmt(v, 3)), "savings S": t.savings.map(lambda v: fmt(v, 3)),
        "S 95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.ci_low, t.ci_high)],
        "extrapolated": [e or ("CI" if c else "") for e, c in zip(t.extrapolated, t.ci_extrapolated)],
    })


def _search_notes(df: pd.DataFrame) -> list[str]:
    """What shaped the search beyond the error: the MD-stability constraint and a warm start."""
    notes = []
    search = df[df["phase"] == "search"]
    done = search[search["status"] == "finished"]
    if M.SEARCH_MD_STABLE in done and done[M.SEARCH_MD_STABLE].notna().any():
        checked = done[done[M.SEARCH_MD_STABLE].notna()]
        unstable = checked[checked[M.SEARCH_MD_STABLE] < 1]
        per_cell = ", ".join(f"{cell} {int((g[M.SEARCH_MD_STABLE] < 1).sum())}/{len(g)}"
                             for cell, g in checked.groupby("cell"))
        notes.append(f"The search was constrained by MD stability: each finished trial ran a short MD check and "
                     f"{len(unstable)} of {len(checked)} failed it (unstable/checked per cell: {per_cell}); an "
                     "unstable trial could not be its cell's best unless no trial of the cell was stable "
                     "(Optuna TPE constraints_func).")
    col = f"tags.{T.TAG_WARM_START}"
    if col in search and search[col].notna().any():
        seeded = search[search[col].notna()]
        notes.append(f"{len(seeded)} search trials were warm-started with the best configurations of study "
                     f"{', '.join(sorted(seeded[col].astype(str).unique()))} instead of sampler start-up trials.")
    return notes


def _group_columns(final: pd.DataFrame, prefix: str) -> list[str]:
    return sorted((c for c in final.columns if str(c).startswith(prefix)), key=lambda c: (len(c), c))


def _blocks(study: str, df: pd.DataFrame, table: pd.DataFrame, final: pd.DataFrame, analyses: list[Analysis],
            text: str, plots: list[str], n_boot: int, reps_note: str, selection: str | None,
            chemistry: list[Block] = ()) -> list[Block]:
    spent, budget = table.epochs_spent.sum(), table.epochs_budget.sum()
    b: list[Block] = [("h1", f"Study report: {study}"), ("answer", text)]
    b.append(("p", f"{len(df)} trial runs; search: {int(table.trials.sum())} trials, {int(table.pruned.sum())} pruned, "
                   f"{int(table.failed.sum())} failed; epochs run {spent:.0f} of a budget of {budget:.0f} "
                   f"({(1 - spent / budget) * 100 if budget else 0:.0f}% saved by pruning). Final phase: {len(final)} "
                   "finished re-trainings. Force errors in eV/Å on the test set."))
    b += [("p", note) for note in _search_notes(df)]
    b += list(chemistry)
    if len(analyses) > 1:
        b += [("h2", "Source elements, ranked by data savings"), ("table", sources_table(analyses))]
    b += [("h2", "Test force error per cell (final replicates)"), ("table", _cells_view(analyses))]
    b += [("h2", "Transfer against scratch at each size (paired by replicate)"), ("table", _paired_view(analyses))]
    if len(analyses) and any(len(a.pairs) for a in analyses):
        b.append(("h2", "Transfer at N frames against scratch at M >= N frames"))
        b.append(("p", "Entries: ratio of mean test force MAE (transfer at N / scratch at M) and the one-sided p-value "
                       "for 'transfer at N has the lower error' (paired t-test on log errors at N = M, Welch's t-test "
                       "at N != M). A large p is no evidence either way."))
        for a in analyses:
            if len(analyses) > 1:
                b.append(("p", f"Source {a.source}:"))
            b.append(("table", pairs_matrix(a)))
    b += [("h2", "Learning curves"), ("table", _fits_view(analyses))]
    if "learning_curve.png" in plots:
        b.append(("img", "learning_curve.png"))
    b += [("h2", "Data-savings factor S(n)"),
          ("p", "S(n) = the scratch training size whose fitted error equals transfer's mean error at n, divided by n."),
          ("table", _savings_view(analyses))]
    if "savings.png" in plots:
        b.append(("img", "savings.png"))
    temp = [c for c in _group_columns(final, f"{M.TEST_FORCES_MAE}.")]
    if temp:
        b += [("h2", "Test force MAE by data group (mean [95% CI] over replicates)"),
              ("table", ci_table(final, temp + [M.TEST_ENERGY_PER_ATOM_MAE] if M.TEST_ENERGY_PER_ATOM_MAE in final else temp, n_boot))]
    stab = _group_columns(final, "stability_stable_fraction.") + _group_columns(final, "stability_median_ttf_ps.")
    if stab:
        b += [("h2", "MD stability (stable fraction and median time to failure in ps; mean [95% CI] over replicates)"),
              ("table", ci_table(final, stab, n_boot))]
        if "stability.png" in plots:
            b.append(("img", "stability.png"))
    alloy = [c for c in (M.ALLOY_E_MIX_MAE, M.ALLOY_A0_MAE) if c in final and final[c].notna().any()]
    if alloy:
        b += [("h2", "Alloy properties against the reference (mixing energy in meV/atom, lattice constant in Å; "
                     "mean absolute error over compositions, mean [95% CI] over replicates)"),
              ("table", ci_table(final, alloy + _group_columns(final, f"{M.ALLOY_E_MIX}.comp_"), n_boot))]
    b += [("h2", "Search and final cells"), ("table", table)]
    b += [("img", p) for p in plots if p in ("hyperparameters.png", "pruning.png")]
    b += [("h2", "Methods"), ("p", _methods(n_boot, reps_note, selection))]
    return b


def _chemistry_blocks(final: pd.DataFrame, forgetting: pd.DataFrame) -> list[Block]:
    """How transfer started each target element, and (extend mode) what the source chemistry lost."""
    b: list[Block] = []
    if inits := element_inits(final):
        b.append(("p", "Transfer started the target elements as: "
                       + "; ".join(f"{cell}: {how}" for cell, how in sorted(inits.items())) + "."))
    if not forgetting.empty:
        b += [("h2", "Forgetting: force MAE on the source's own test frames (eV/Å; final replicates)"),
              ("table", _forgetting_view(forgetting))]
    return b


def _methods(n_boot: int, reps_note: str, selection: str | None) -> str:
    return (
        f"Selection: {selection_note(selection)} Replicates: {reps_note} "
        f"Confidence intervals: 95 %, expanded-percentile bootstrap (Hesterberg 2015) over replicates, {n_boot} "
        "resamples, seeded; at each size the same replicate ids are drawn for both inits, so pairs stay pairs. "
        "Tests: paired t-test on log errors between inits at one size (Wilcoxon signed-rank, exact, as a check "
        "that needs no normality; it cannot reach p < 0.05 below 6 pairs); Welch's t-test on log errors between "
        "different sizes. Learning curves: log(err) = log(a) - b log(n), least squares over every replicate; "
        "no floor term, which 2-5 sizes cannot identify. Savings factor: scratch's curve inverted at transfer's "
        "geometric-mean error, CI from the same bootstrap. Functions: `mlptl.report.statistics`."
    )


def _selection_metric(final: pd.DataFrame) -> str | None:
    """The metric the final runs say chose them (tag ``mlptl.selection_metric``), None if unrecorded."""
    col = f"tags.{TAG_SELECTION}"
    if col in final and final[col].notna().any():
        return ", ".join(sorted(final[col].dropna().astype(str).unique()))
    return None


def _prepare(df: pd.DataFrame, n_boot: int, seed: int):
    final = final_frame(df)
    reps = replicate_info(final)
    analyses = analyse(final, n_boot=n_boot, seed=seed)
    element = str(final["element"].dropna().iloc[0]) if "element" in final and final["element"].notna().any() else None
    selection = _selection_metric(final)
    forgetting = forgetting_table(final, n_boot=n_boot, seed=seed)
    text = answer(analyses, reps, element, selection, forgetting=forgetting)
    return final, reps, analyses, text, selection, forgetting


def answer_text(runs_df: pd.DataFrame, n_boot: int = S.N_BOOT, seed: int = 0) -> str:
    """The report's first paragraph for runs from :func:`load_runs`, without writing anything."""
    return _prepare(runs_df, n_boot, seed)[3]


def _forgetting_view(t: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        **({"source": t.source} if "source" in t else {}),
        "train frames": t.train_size, "replicates": t.replicates, "extended model": t.extended.map(fmt),
        "95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.ci_low, t.ci_high)], "source model": t.source_model.map(fmt),
        "ratio": t.ratio.map(fmt), "ratio 95% CI": [fmt_ci(lo, hi) for lo, hi in zip(t.ratio_ci_low, t.ratio_ci_high)],
    })


def _forgetting_metrics(t: pd.DataFrame, headline_size) -> dict[str, float]:
    out = {}
    for r in t.itertuples():
        for k, v in (("forgetting_ratio", r.ratio), ("forgetting_ratio.ci_low", r.ratio_ci_low),
                     ("forgetting_ratio.ci_high", r.ratio_ci_high), ("source_forces_mae", r.extended),
                     ("source_model_forces_mae", r.source_model)):
            name, _, rest = k.partition(".")
            keys = [f"{name}.n{r.train_size}" + (f".{rest}" if rest else "")]
            if r.train_size == headline_size:
                keys.append(k)
            for key in keys:
                if pd.notna(v) and np.isfinite(v):
                    out[key] = float(v)
    return out


def build_report(tracking_uri: str, study: str, out: str | Path, n_boot: int = S.N_BOOT, seed: int = 0) -> Path:
    """Write the report into ``out`` and return ``out``; the headline metrics are in ``out/headline.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = load_runs(tracking_uri, study)
    if df.empty:
        raise InputError(f"study {study!r} has no trial runs yet")
    table = cell_table(df)
    final, reps, analyses, text, selection, forgetting = _prepare(df, n_boot, seed)

    table.to_csv(out / "cells.csv", index=False)
    keep = [c for c in ["trial_key", "cell", "phase", "status", "init", "source", "train_size", "replicate", "lr",
                        "freeze_depth", "seed", "epochs_run", "best_val_forces_mae", M.TEST_FORCES_MAE,
                        M.TEST_ENERGY_PER_ATOM_MAE, f"tags.{T.TAG_REASON}"] if c in df]
    df[keep].sort_values(["cell", "phase", "trial_key"]).to_csv(out / "trials.csv", index=False)
    for name in ("cells", "paired", "fits", "savings", "pairs"):
        file = {"cells": "cell_stats", "paired": "paired_tests", "fits": "learning_curve_fits", "pairs": "headline_pairs"}
        _stacked(analyses, name).to_csv(out / f"{file.get(name, name)}.csv", index=False)
    headline = headline_metrics_of(analyses)
    if not forgetting.empty:
        headline.update(_forgetting_metrics(forgetting, headline.get("headline_train_size")))
        forgetting.to_csv(out / "forgetting.csv", index=False)
    atomic_write_text(out / HEADLINE_FILE, json.dumps(headline, indent=1, sort_keys=True))

    plots = write_plots(df, final, table, analyses, out)
    blocks = _blocks(study, df, table, final, analyses, text, plots, n_boot, reps.note(), selection,
                     _chemistry_blocks(final, forgetting))
    atomic_write_text(out / "report.md", to_markdown(blocks))
    atomic_write_text(out / "report.html", to_html(blocks, f"Study report: {study}", out))
    log.info("report written to %s", out)
    return out
