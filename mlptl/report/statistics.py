"""Statistics of a study's final runs, as plain functions on tidy pandas frames.

The input is a *final frame*: one row per finished final-phase run, with columns ``init`` (``"scratch"`` |
``"transfer"``), ``train_size``, ``replicate`` and a value column (``y`` by default: the test force MAE, > 0).
Replicate r of scratch and replicate r of transfer at one size trained on the same data subset, so rows pair
by ``(train_size, replicate)``.

Choices, and why:

- **Log errors.** Errors are positive, spread more when they are larger, and the effect of transfer is a
  factor ("0.6x scratch's error"), so tests and fits work on ``log(error)``: a difference of logs is a
  ratio, and its distribution is closer to symmetric than the difference of errors.
- **One bootstrap for everything.** Each resample draws, *at each training size*, the replicate ids with
  replacement, the same ids for both inits: a transfer model and the scratch model trained on the same
  subset stay together, so the pairing's shared data noise cancels as it does in the experiment. Sizes are
  resampled independently (the nested subsets of one replicate across sizes are correlated; ignoring that
  makes the learning-curve CIs somewhat conservative for the slope, not anti-conservative for a ratio).
- **Expanded percentile intervals** (Hesterberg 2015, "What teachers should know about the bootstrap",
  sec. 3.3): the plain percentile interval of a mean of k values is too narrow by about sqrt((k-1)/k) and
  by using z instead of t; the expanded interval takes the bootstrap quantiles at the tail probability
  alpha' with z(alpha'/2) = sqrt(k/(k-1)) t(alpha/2, k-1) (its measured coverage: docs/decisions.md). No
  bootstrap interval reaches beyond the range of the data, so at k=3 coverage is at most 1 - 2 * 2^-3 =
  75 %: callers flag cells with fewer than 5 replicates.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

__all__ = [
    "LEVEL",
    "N_BOOT",
    "LOW_POWER_REPLICATES",
    "expanded_alpha",
    "bootstrap_mean_ci",
    "cell_stats",
    "paired_tests",
    "FitSamples",
    "fit_samples",
    "learning_curve_fits",
    "savings_factors",
    "headline_pairs",
]

LEVEL = 0.95
N_BOOT = 4000
#: Below this many replicates a bootstrap CI undercovers and the paired tests have little power.
LOW_POWER_REPLICATES = 5


def expanded_alpha(k: int, level: float = LEVEL) -> float:
    """The two-sided tail probability at which to read the bootstrap quantiles for a mean of ``k`` values."""
    if k < 2:
        return float("nan")
    z = np.sqrt(k / (k - 1)) * stats.t.ppf(1 - (1 - level) / 2, k - 1)
    return float(2 * stats.norm.sf(z))


def _interval(samples: np.ndarray, k: int, level: float) -> tuple[float, float]:
    """Expanded percentile interval of bootstrap ``samples`` for a statistic of ``k`` replicates."""
    a = expanded_alpha(k, level)
    s = np.asarray(samples, dtype=float)
    s = s[~np.isnan(s)]
    if np.isnan(a) or s.size == 0:
        return float("nan"), float("nan")
    # no interpolation: samples may be +inf (a scratch curve that never reaches the target)
    lo, hi = np.quantile(s, [a / 2, 1 - a / 2], method="inverted_cdf")
    return float(lo), float(hi)


def bootstrap_mean_ci(values, level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> tuple[float, float]:
    """Expanded-percentile bootstrap CI of the mean of ``values`` (NaN for fewer than 2 values)."""
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    return _interval(means, x.size, level)


# ---------------------------------------------------------------- the shared resampling
def _grid(df: pd.DataFrame, value: str) -> dict[int, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """size -> (replicate ids, init -> values aligned with the ids, NaN where that run is missing)."""
    out = {}
    for n, g in df.groupby("train_size"):
        ids = np.array(sorted(g["replicate"].unique()))
        per_init = {}
        for init, h in g.groupby("init"):
            s = h.groupby("replicate")[value].mean()  # one value per replicate (duplicates averaged)
            per_init[str(init)] = s.reindex(ids).to_numpy(dtype=float)
        out[int(n)] = (ids, per_init)
    return out


def _draws(n_ids: int, size: int, n_boot: int, seed: int) -> np.ndarray:
    """The (n_boot, n_ids) replicate indices of one size: a function of (seed, size) only, so every
    statistic computed with one seed sees the same resamples."""
    return np.random.default_rng([seed, size]).integers(0, n_ids, (n_boot, n_ids))


def _nanmean(a: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(a, axis=axis)


def _resampled(df, value, n_boot, seed, log):
    """(init, size) -> (point mean, bootstrap means, replicates observed), of ``value`` or its log."""
    out = {}
    for n, (ids, per_init) in _grid(df, value).items():
        idx = _draws(len(ids), n, n_boot, seed)
        for init, v in per_init.items():
            x = np.log(v) if log else v
            out[(init, n)] = (float(np.nanmean(x)), _nanmean(x[idx], axis=1), int(np.sum(~np.isnan(x))))
    return out


def cell_stats(df: pd.DataFrame, value: str = "y", level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Per (init, size): replicates, mean with its bootstrap CI, geometric mean, standard deviation."""
    rows = []
    for (init, n), g in df.groupby(["init", "train_size"]):
        x = g[value].to_numpy(dtype=float)
        lo, hi = bootstrap_mean_ci(x, level, n_boot, seed)
        rows.append(
            dict(init=init, train_size=int(n), n=int(np.sum(~np.isnan(x))), mean=float(np.nanmean(x)),
                 ci_low=lo, ci_high=hi, gmean=float(np.exp(np.nanmean(np.log(x)))),
                 std=float(np.nanstd(x, ddof=1)) if len(x) > 1 else float("nan"))
        )
    return pd.DataFrame(rows, columns=["init", "train_size", "n", "mean", "ci_low", "ci_high", "gmean", "std"])


# ---------------------------------------------------------------- paired tests at each size
def paired_tests(
    df: pd.DataFrame, value: str = "y", treatment: str = "transfer", control: str = "scratch",
    level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
) -> pd.DataFrame:
    """Treatment against control at each size, on the replicates both have (pairs share a data subset).

    The test of record is the **paired t-test on log errors** (``t_p``, two-sided; ``t_p_less``, one-sided
    for "treatment has the lower error"): it tests a ratio of geometric means of 1 and keeps its power at
    the 3-6 replicates a study affords. The **Wilcoxon signed-rank** test (exact, two-sided) is reported as
    the check that needs no normality, with the smallest p-value it can reach, 2 / 2^pairs: 0.25 at 3 pairs,
    0.0625 at 5, so below 6 pairs it cannot reject at 5 % whatever the data. ``low_power`` marks fewer than
    :data:`LOW_POWER_REPLICATES` pairs. ``ratio`` is the ratio of the arithmetic means (what a reader gets
    by dividing the two means), with a paired bootstrap CI.
    """
    rows = []
    for n, (_ids, per_init) in _grid(df, value).items():
        if treatment not in per_init or control not in per_init:
            continue
        t, c = per_init[treatment], per_init[control]
        ok = ~np.isnan(t) & ~np.isnan(c)
        t, c = t[ok], c[ok]
        k = int(ok.sum())
        row = dict(train_size=n, n_pairs=k, mean_treatment=float(np.mean(t)) if k else np.nan,
                   mean_control=float(np.mean(c)) if k else np.nan)
        row["ratio"] = row["mean_treatment"] / row["mean_control"] if k else np.nan
        d = np.log(t) - np.log(c)
        row["gmean_ratio"] = float(np.exp(d.mean())) if k else np.nan
        row["ratio_ci_low"] = row["ratio_ci_high"] = row["t_p"] = row["t_p_less"] = row["wilcoxon_p"] = np.nan
        if k >= 2:
            idx = _draws(k, n, n_boot, seed)
            row["ratio_ci_low"], row["ratio_ci_high"] = _interval(t[idx].mean(1) / c[idx].mean(1), k, level)
            if np.ptp(d) > 0:
                row["t_p"] = float(stats.ttest_rel(np.log(t), np.log(c)).pvalue)
                row["t_p_less"] = float(stats.ttest_rel(np.log(t), np.log(c), alternative="less").pvalue)
            if np.any(d != 0):
                row["wilcoxon_p"] = float(stats.wilcoxon(d, method="exact").pvalue)
        row["wilcoxon_min_p"] = 2.0 / 2**k if k else np.nan
        row["low_power"] = k < LOW_POWER_REPLICATES
        rows.append(row)
    cols = ["train_size", "n_pairs", "mean_treatment", "mean_control", "ratio", "ratio_ci_low", "ratio_ci_high",
            "gmean_ratio", "t_p", "t_p_less", "wilcoxon_p", "wilcoxon_min_p", "low_power"]
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- learning curves
@dataclass
class FitSamples:
    """log(err) = log_a - b log(n), fitted to one init's cell means of log error, and its bootstrap."""

    init: str
    sizes: np.ndarray
    log_a: float
    b: float
    log_a_boot: np.ndarray
    b_boot: np.ndarray
    min_replicates: int

    def predict(self, n) -> np.ndarray:
        return np.exp(self.log_a - self.b * np.log(np.asarray(n, dtype=float)))

    def band(self, n, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise bootstrap CI of the fitted curve at sizes ``n``."""
        logn = np.log(np.asarray(n, dtype=float))
        curves = self.log_a_boot[:, None] - self.b_boot[:, None] * logn[None, :]
        lo, hi = np.array([_interval(curves[:, j], self.min_replicates, level) for j in range(len(logn))]).T
        return np.exp(lo), np.exp(hi)


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted least squares of y (..., m) on x (m,), vectorised over leading axes: (intercept, slope)."""
    w = w / w.sum()
    xm = np.sum(w * x)
    slope = np.sum(w * (x - xm) * (y - np.sum(w * y, axis=-1, keepdims=True)), axis=-1) / np.sum(w * (x - xm) ** 2)
    return np.sum(w * y, axis=-1) - slope * xm, slope


def fit_samples(df: pd.DataFrame, init: str, value: str = "y", n_boot: int = N_BOOT, seed: int = 0) -> FitSamples | None:
    """The log-log linear learning curve of one init with its bootstrap; None with fewer than 2 sizes.

    Why log-log linear and not err = a n^-b + c: with the 2-5 training sizes of a study, the floor c is not
    identifiable (a, b and c trade off along a ridge and the bootstrap of c is wild), and inverting a curve
    with a floor makes the savings factor infinite whenever the target falls below the fitted c. The
    straight line in log-log is the honest model of the measured range; it assumes no floor, so its
    extrapolation to larger sizes is optimistic for scratch (it overstates how fast scratch improves)
    and thus understates savings factors read beyond the largest measured size.

    The fit is weighted least squares on the cell means of log error, weights = replicates per cell,
    which is the same as ordinary least squares on every replicate's point.
    """
    res = _resampled(df, value, n_boot, seed, log=True)  # all inits: the draws pair by replicate id
    keys = sorted(k for k in res if k[0] == init and not np.isnan(res[k][0]))
    if len(keys) < 2:
        return None
    sizes = np.array([n for _, n in keys], dtype=float)
    x = np.log(sizes)
    w = np.array([res[k][2] for k in keys], dtype=float)
    point = np.array([res[k][0] for k in keys])
    boot = np.stack([res[k][1] for k in keys], axis=1)  # (n_boot, sizes)
    log_a, slope = _wls(x, point, w)
    la_b, sl_b = _wls(x, boot, w)
    bad = np.isnan(boot).any(axis=1)  # a resample that emptied a cell (only when replicates are missing)
    la_b[bad] = sl_b[bad] = np.nan
    return FitSamples(init, sizes, float(log_a), float(-slope), la_b, -sl_b, int(w.min()))


def learning_curve_fits(df: pd.DataFrame, value: str = "y", level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """One row per init: err = a n^-b with bootstrap CIs of a and b, and the fit's RMS residual in log."""
    rows = []
    for init in sorted(df["init"].unique()):
        f = fit_samples(df, init, value, n_boot, seed)
        if f is None:
            continue
        means = df[df["init"] == init].groupby("train_size")[value].apply(lambda s: np.log(s).mean())
        resid = np.log(f.predict(means.index.to_numpy())) - means.to_numpy()
        b_lo, b_hi = _interval(f.b_boot, f.min_replicates, level)
        la_lo, la_hi = _interval(f.log_a_boot, f.min_replicates, level)
        rows.append(dict(init=init, sizes=len(f.sizes), min_replicates=f.min_replicates, a=float(np.exp(f.log_a)),
                         a_ci_low=float(np.exp(la_lo)), a_ci_high=float(np.exp(la_hi)), b=f.b, b_ci_low=b_lo,
                         b_ci_high=b_hi, rms_log_residual=float(np.sqrt(np.mean(resid**2)))))
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- data savings
def _equivalent_size(log_a, b, log_target):
    """The size at which the curve reaches the target; +inf if it never does, 0 if it starts below it."""
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        n = np.exp((log_a - log_target) / b)
    return np.where(b > 0, n, np.where(log_target < log_a, np.inf, 0.0))


def savings_factors(
    df: pd.DataFrame, value: str = "y", treatment: str = "transfer", control: str = "scratch",
    level: float = LEVEL, n_boot: int = N_BOOT, seed: int = 0,
) -> pd.DataFrame:
    """S(n) = (control training size whose fitted error equals treatment's mean error at n) / n.

    The control size comes from inverting the control's log-log learning curve (:func:`fit_samples`) at
    the treatment's geometric-mean error at n (geometric, because the curve is fitted to mean log error).
    The bootstrap resamples treatment cell and control curve together (same replicate draws per size).
    ``extrapolated`` says the equivalent size lies outside the measured control sizes (``"above"``: the
    curve was extended beyond the largest size, an estimate resting on the no-floor assumption; ``"below"``:
    treatment is worse than control at the smallest size). ``ci_extrapolated`` says the same of the CI.
    """
    cols = ["train_size", "n_replicates", "treatment_gmean", "equivalent_size", "savings", "ci_low", "ci_high",
            "extrapolated", "ci_extrapolated", "control_min_size", "control_max_size"]
    fit = fit_samples(df, control, value, n_boot, seed)
    if fit is None:
        return pd.DataFrame(columns=cols)
    res = {k: v for k, v in _resampled(df, value, n_boot, seed, log=True).items() if k[0] == treatment}
    lo_n, hi_n = fit.sizes.min(), fit.sizes.max()

    def where(m):
        return "above" if m > hi_n * (1 + 1e-9) else "below" if m < lo_n * (1 - 1e-9) else ""

    rows = []
    for (_, n), (point, boot, k) in sorted(res.items(), key=lambda kv: kv[0][1]):
        if np.isnan(point):
            continue
        m = float(_equivalent_size(fit.log_a, fit.b, point))
        s_boot = _equivalent_size(fit.log_a_boot, fit.b_boot, boot) / n
        s_boot[np.isnan(fit.b_boot) | np.isnan(boot)] = np.nan
        lo, hi = _interval(s_boot, min(k, fit.min_replicates), level)
        rows.append(dict(train_size=n, n_replicates=k, treatment_gmean=float(np.exp(point)), equivalent_size=m,
                         savings=m / n, ci_low=lo, ci_high=hi, extrapolated=where(m),
                         ci_extrapolated=where(lo * n) or where(hi * n), control_min_size=int(lo_n),
                         control_max_size=int(hi_n)))
    return pd.DataFrame(rows, columns=cols)


# ---------------------------------------------------------------- the paper's headline
def headline_pairs(df: pd.DataFrame, value: str = "y", treatment: str = "transfer", control: str = "scratch") -> pd.DataFrame:
    """"Treatment at N is at least as good as control at M", for every measured N and M >= N.

    ``p_value`` is one-sided, for the alternative "treatment at N has the lower mean log error": small
    means evidence for the claim, large means no evidence (not evidence against it). At N == M the runs
    pair by replicate (paired t-test on log errors, as :func:`paired_tests`); at N != M the data subsets
    differ, so the test is Welch's unpaired t-test on log errors. ``ratio`` = mean error at N (treatment)
    / mean error at M (control).
    """
    rows = []
    grid = _grid(df, value)
    for n_t in sorted(grid):
        t_all = grid[n_t][1].get(treatment)
        if t_all is None:
            continue
        for n_c in sorted(m for m in grid if m >= n_t and control in grid[m][1]):
            c_all = grid[n_c][1][control]
            if n_t == n_c:
                ok = ~np.isnan(t_all) & ~np.isnan(c_all)
                t, c, test = t_all[ok], c_all[ok], "paired t"
            else:
                t, c, test = t_all[~np.isnan(t_all)], c_all[~np.isnan(c_all)], "Welch t"
            p = np.nan
            if len(t) >= 2 and len(c) >= 2:
                lt, lc = np.log(t), np.log(c)
                if test == "paired t" and np.ptp(lt - lc) > 0:
                    p = float(stats.ttest_rel(lt, lc, alternative="less").pvalue)
                elif test == "Welch t" and (np.ptp(lt) > 0 or np.ptp(lc) > 0):
                    p = float(stats.ttest_ind(lt, lc, equal_var=False, alternative="less").pvalue)
            rows.append(dict(treatment_size=n_t, control_size=n_c, n_treatment=len(t), n_control=len(c),
                             mean_treatment=float(np.mean(t)) if len(t) else np.nan,
                             mean_control=float(np.mean(c)) if len(c) else np.nan,
                             ratio=float(np.mean(t) / np.mean(c)) if len(t) and len(c) else np.nan,
                             test=test, p_value=p))
    cols = ["treatment_size", "control_size", "n_treatment", "n_control", "mean_treatment", "mean_control",
            "ratio", "test", "p_value"]
    return pd.DataFrame(rows, columns=cols)
