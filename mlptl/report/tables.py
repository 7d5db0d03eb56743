"""The report's tables: search effort per cell, and the statistics of the final runs per source element.

Every number here comes from :mod:`mlptl.report.statistics` applied to :func:`mlptl.report.runs.final_frame`;
the text, the plots and the headline metrics on the MLflow parent run all read the same :class:`Analysis`,
so they cannot disagree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.report import statistics as S
from mlptl.report.runs import final_frame, for_source, sources

__all__ = [
    "Analysis",
    "analyse",
    "cell_table",
    "headline_metrics",
    "headline_metrics_of",
    "sources_table",
    "ci_table",
    "pairs_matrix",
    "forgetting_table",
    "element_inits",
    "markdown",
    "fmt",
    "fmt_ci",
    "fmt_p",
    "p_is",
    "plural",
]

TREATMENT, CONTROL = "transfer", "scratch"


# ---------------------------------------------------------------- formatting, shared by text and tables
def fmt(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def fmt_ci(lo: float, hi: float, digits: int = 3) -> str:
    if any(v is None or math.isnan(v) for v in (lo, hi)):
        return "n/a"
    return f"{fmt(lo, digits)}-{fmt(hi, digits)}"


def plural(k: int, word: str) -> str:
    return f"{k} {word}" + ("" if k == 1 else "s")


def fmt_p(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def p_is(p: float) -> str:
    """"p = 0.03" or "p < 0.001", for running text."""
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def markdown(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A Markdown table without pulling in `tabulate` (pandas' to_markdown needs it)."""
    if df.empty:
        return "(no rows)\n"
    cols = list(df.columns)

    def cell(v):
        if isinstance(v, float | np.floating):
            return "" if np.isnan(v) else format(v, floatfmt)
        return str(v)

    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- search effort
def cell_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: search effort and pruning, and the final replicates' test error (mean, spread)."""
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
            "replicates": len(f),
        }
        if len(f) and M.TEST_FORCES_MAE in f:
            mae = f[M.TEST_FORCES_MAE].astype(float)
            row.update(test_forces_mae_mean=float(mae.mean()), test_forces_mae_std=float(mae.std(ddof=1)) if len(f) > 1 else np.nan)
            for col in ("lr", "freeze_depth"):
                if col in f:
                    row[col] = f[col].iloc[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table = table.sort_values(["train_size", "init", "cell"]).reset_index(drop=True)
    return table


# ---------------------------------------------------------------- the analysis of one source
@dataclass
class Analysis:
    """Everything the report says about transfer from one source against scratch, for one metric."""

    source: str | None
    metric: str
    final: pd.DataFrame
    cells: pd.DataFrame
    paired: pd.DataFrame
    fits: pd.DataFrame
    savings: pd.DataFrame
    pairs: pd.DataFrame
    fit_samples: dict[str, S.FitSamples] = field(default_factory=dict)

    @property
    def inits(self) -> list[str]:
        return sorted(self.final["init"].unique()) if len(self.final) else []

    @property
    def headline_size(self) -> int | None:
        """The smallest size at which both inits have paired replicates: where the question is asked."""
        ok = self.paired[self.paired.n_pairs > 0] if len(self.paired) else self.paired
        return int(ok.train_size.min()) if len(ok) else None

    def at(self, table: str, n: int) -> pd.Series | None:
        t = getattr(self, table)
        col = "train_size" if "train_size" in t else "treatment_size"
        rows = t[t[col] == n] if len(t) else t
        return rows.iloc[0] if len(rows) else None


def analyse(final: pd.DataFrame, metric: str = M.TEST_FORCES_MAE, n_boot: int = S.N_BOOT, seed: int = 0) -> list[Analysis]:
    """One :class:`Analysis` per source element, the source that saves most data at its smallest size first."""
    out = []
    have = final[final[metric].notna()] if metric in final else final.iloc[0:0]
    for src in sources(have):
        f = for_source(have, src)
        out.append(
            Analysis(
                source=src, metric=metric, final=f,
                cells=S.cell_stats(f, metric, n_boot=n_boot, seed=seed),
                paired=S.paired_tests(f, metric, TREATMENT, CONTROL, n_boot=n_boot, seed=seed),
                fits=S.learning_curve_fits(f, metric, n_boot=n_boot, seed=seed),
                savings=S.savings_factors(f, metric, TREATMENT, CONTROL, n_boot=n_boot, seed=seed),
                pairs=S.headline_pairs(f, metric, TREATMENT, CONTROL),
                fit_samples={i: fs for i in sorted(f["init"].unique()) if (fs := S.fit_samples(f, i, metric, n_boot, seed))},
            )
        )

    def rank(a: Analysis) -> float:
        n = a.headline_size
        row = a.at("savings", n) if n is not None else None
        return -float(row.savings) if row is not None and np.isfinite(row.savings) else math.inf

    return sorted(out, key=rank)


def sources_table(analyses: list[Analysis]) -> pd.DataFrame:
    """Sources ranked by data-savings factor at each one's smallest size (only when there are several)."""
    rows = []
    for rank, a in enumerate(analyses, 1):
        n = a.headline_size
        s = a.at("savings", n) if n is not None else None
        p = a.at("paired", n) if n is not None else None
        rows.append({
            "rank": rank, "source": a.source, "train_size": n,
            "savings": fmt(s.savings) if s is not None else "n/a",
            "savings 95% CI": fmt_ci(s.ci_low, s.ci_high) if s is not None else "n/a",
            "MAE ratio": fmt(p.ratio) if p is not None else "n/a",
            "p (paired t)": fmt_p(p.t_p) if p is not None else "n/a",
        })
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- tables with CIs
def ci_table(final: pd.DataFrame, columns: list[str], n_boot: int = S.N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per (source, init, size): "mean [CI]" of each column over the replicates, and how many replicates."""
    keys = [k for k in ("source", "init", "train_size") if k in final]
    rows = []
    for key, g in final.groupby(keys, dropna=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        row["replicates"] = len(g)
        for col in columns:
            x = g[col].astype(float).dropna() if col in g else pd.Series(dtype=float)
            if x.empty:
                row[col] = ""
                continue
            lo, hi = S.bootstrap_mean_ci(x.to_numpy(), n_boot=n_boot, seed=seed)
            row[col] = f"{fmt(float(x.mean()))} [{fmt_ci(lo, hi)}]" if len(x) > 1 else fmt(float(x.mean()))
        rows.append(row)
    t = pd.DataFrame(rows)
    return t.sort_values([k for k in ("train_size", "source", "init") if k in t]).reset_index(drop=True) if len(t) else t


def pairs_matrix(a: Analysis) -> pd.DataFrame:
    """The headline table as a matrix: rows transfer's size N, columns scratch's size M >= N,
    entries "ratio (p)" with the one-sided p-value that transfer at N has the lower error."""
    if a.pairs.empty:
        return pd.DataFrame()
    p = a.pairs.assign(entry=[f"{fmt(r.ratio, 2)} (p {fmt_p(r.p_value)})" for r in a.pairs.itertuples()])
    m = p.pivot(index="treatment_size", columns="control_size", values="entry").fillna("")
    m.columns = [f"scratch n={c}" for c in m.columns]
    return m.reset_index().rename(columns={"treatment_size": "transfer n"})


# ---------------------------------------------------------------- chemistry: forgetting and initialisation
def forgetting_table(final: pd.DataFrame, n_boot: int = S.N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Extend mode: per transfer cell, the extended models' test force MAE on the source's own test frames
    against the source model's on the same frames, and their ratio (1 = nothing forgotten), mean and 95 %
    bootstrap CI over replicates. Empty when the runs measured no forgetting."""
    cols = (M.SOURCE_FORCES_MAE, M.SOURCE_MODEL_FORCES_MAE)
    if final.empty or not set(cols) <= set(final.columns):
        return pd.DataFrame()
    t = final[(final["init"] == TREATMENT)].dropna(subset=list(cols))
    keys = [k for k in ("source", "train_size") if k in t]
    rows = []
    for key, g in t.groupby(keys):
        key = key if isinstance(key, tuple) else (key,)
        ext, src = g[cols[0]].astype(float).to_numpy(), g[cols[1]].astype(float).to_numpy()
        ratio = ext / src
        lo, hi = S.bootstrap_mean_ci(ext, n_boot=n_boot, seed=seed) if len(ext) > 1 else (math.nan, math.nan)
        rlo, rhi = S.bootstrap_mean_ci(ratio, n_boot=n_boot, seed=seed) if len(ratio) > 1 else (math.nan, math.nan)
        rows.append({**dict(zip(keys, key)), "replicates": len(g), "extended": float(ext.mean()), "ci_low": lo,
                     "ci_high": hi, "source_model": float(src.mean()), "ratio": float(ratio.mean()),
                     "ratio_ci_low": rlo, "ratio_ci_high": rhi})
    return pd.DataFrame(rows).sort_values("train_size").reset_index(drop=True) if rows else pd.DataFrame()


def element_inits(final: pd.DataFrame) -> dict[str, str]:
    """Per transfer cell, how its final runs started each target element (the runs' tag), e.g.
    ``{"transfer-n4": "Cu: copy of Cu; Ni: random"}``; several values are joined with " | "."""
    col = f"tags.{T.TAG_ELEMENT_INIT}"
    if final.empty or col not in final:
        return {}
    t = final[(final["init"] == TREATMENT) & final[col].notna()]
    return {cell: " | ".join(sorted(g[col].astype(str).unique())) for cell, g in t.groupby("cell")}


# ---------------------------------------------------------------- headline metrics for the MLflow parent run
def _put(out: dict[str, float], key: str, v) -> None:
    if v is not None and isinstance(v, int | float | np.floating | np.integer | bool | np.bool_) and np.isfinite(float(v)):
        out[key] = float(v)


def headline_metrics_of(analyses: list[Analysis]) -> dict[str, float]:
    """See :func:`headline_metrics`."""
    out: dict[str, float] = {}
    several = len(analyses) > 1
    for a in analyses:
        pre = f"{a.source}." if several and a.source else ""
        for r in a.paired.itertuples():
            n = f".n{r.train_size}"
            _put(out, f"{pre}mae_ratio{n}", r.ratio)
            _put(out, f"{pre}mae_ratio{n}.ci_low", r.ratio_ci_low)
            _put(out, f"{pre}mae_ratio{n}.ci_high", r.ratio_ci_high)
            _put(out, f"{pre}p_value{n}", r.t_p)
            _put(out, f"{pre}replicates{n}", r.n_pairs)
            _put(out, f"{pre}test_forces_mae.{TREATMENT}{n}", r.mean_treatment)
            _put(out, f"{pre}test_forces_mae.{CONTROL}{n}", r.mean_control)
        for r in a.savings.itertuples():
            n = f".n{r.train_size}"
            _put(out, f"{pre}savings_factor{n}", r.savings)
            _put(out, f"{pre}savings_factor{n}.ci_low", r.ci_low)
            _put(out, f"{pre}savings_factor{n}.ci_high", r.ci_high)
            _put(out, f"{pre}savings_factor{n}.extrapolated", bool(r.extrapolated))
        for r in a.fits.itertuples():
            _put(out, f"{pre}learning_curve_exponent.{r.init}", r.b)
        n0 = a.headline_size
        if n0 is not None:
            _put(out, f"{pre}headline_train_size", n0)
            for k in ("mae_ratio", "mae_ratio.ci_low", "mae_ratio.ci_high", "p_value", "savings_factor",
                      "savings_factor.ci_low", "savings_factor.ci_high", "replicates"):
                name, _, rest = k.partition(".")
                src = f"{pre}{name}.n{n0}" + (f".{rest}" if rest else "")
                if src in out:
                    out[f"{pre}{k}"] = out[src]
    return out


def headline_metrics(runs_df: pd.DataFrame, n_boot: int = S.N_BOOT, seed: int = 0) -> dict[str, float]:
    """The answer as flat, finite MLflow metrics, for the study's parent run.

    ``mae_ratio.n{N}`` (transfer/scratch mean test force MAE at N frames) with ``.ci_low``/``.ci_high``,
    ``p_value.n{N}`` (paired t-test on log errors, two-sided), ``replicates.n{N}``, ``savings_factor.n{N}``
    with its CI and ``.extrapolated`` (1 when read beyond the measured scratch sizes),
    ``learning_curve_exponent.{init}``; the same without ``.n{N}`` at the smallest size measured for both
    inits, which is ``headline_train_size``. With several source elements every key is prefixed
    ``{source}.``. Non-finite values (an infinite savings factor, a test on identical models) are left out.
    """
    return headline_metrics_of(analyse(final_frame(runs_df), n_boot=n_boot, seed=seed))
