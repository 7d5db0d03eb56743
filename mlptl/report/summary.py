"""The report's first paragraph: the answer to "how much target data does transfer save, and is it real?"

Written from the same :class:`~mlptl.report.tables.Analysis` as the tables, in words a user can act on,
and worded by the evidence: a difference that is not significant is called that, a loss is called a
loss, an extrapolated savings factor says so, and replicates that share one data subset are named as
what they are.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mlptl import metrics as M
from mlptl.report import statistics as S
from mlptl.report.runs import Replicates
from mlptl.report.tables import Analysis, fmt, fmt_ci, p_is, plural

__all__ = ["answer", "selection_note", "forgetting_note", "ALPHA"]

ALPHA = 0.05


def _frames(n: float, element: str | None) -> str:
    return f"{fmt(n)} {element} frames" if element else f"{fmt(n)} frames"


def _verdict(a: Analysis, n0: int, el: str | None) -> str:
    p = a.at("paired", n0)
    src = f" from {a.source}" if a.source else ""
    at = f"at {_frames(n0, el)}"
    if p is None or math.isnan(p.t_p):
        k = p.n_pairs if p is not None else 0
        why = plural(k, "replicate pair") + (" with identical errors" if k > 1 else "")
        return f"Whether transfer{src} beats scratch {at} cannot be tested ({why})"
    if p.t_p < ALPHA and p.ratio_ci_high < 1:
        return f"Transfer{src} is more accurate than scratch {at}"
    if p.t_p < ALPHA and p.ratio_ci_low > 1:
        return f"Transfer{src} is less accurate than scratch {at}"
    if p.t_p < ALPHA:
        side = "more" if p.ratio < 1 else "less"
        return f"The evidence that transfer{src} is {side} accurate than scratch {at} is mixed (the test rejects, the ratio's CI includes 1)"
    return f"{at[0].upper()}{at[1:]}, transfer{src} and scratch do not differ significantly"


def _errors(a: Analysis, n0: int, unit: str) -> str:
    c = a.cells.set_index(["init", "train_size"])
    t, s, p = c.loc[("transfer", n0)], c.loc[("scratch", n0)], a.at("paired", n0)
    return (
        f"transfer reaches a test force MAE of {fmt(t['mean'])} {unit} (95 % CI {fmt_ci(t.ci_low, t.ci_high)}) "
        f"against {fmt(s['mean'])} {unit} ({fmt_ci(s.ci_low, s.ci_high)}) for scratch, a ratio of {fmt(p.ratio)} "
        f"({fmt_ci(p.ratio_ci_low, p.ratio_ci_high)}; paired t-test on log errors {p_is(p.t_p)}, "
        f"{plural(p.n_pairs, 'replicate pair')})"
    )


def _savings(a: Analysis, n0: int, el: str | None) -> str:
    s = a.at("savings", n0)
    if s is None:
        return ("There is no data-savings factor: scratch was measured at fewer than two sizes, so there is no "
                "scratch learning curve to invert.")
    fit = a.fit_samples.get("scratch")
    b = f"{fit.b:.2f}" if fit is not None else "?"
    if math.isinf(s.savings):
        return ("Scratch's fitted learning curve never reaches transfer's error (its error does not fall with more "
                "data in this range), so the data-savings factor is unbounded and not estimated.")
    rng = f"{s.control_min_size}-{s.control_max_size} frames"
    ci = fmt_ci(s.ci_low, s.ci_high, 2)
    if s.savings >= 1:
        text = (f"Scratch needs about {fmt(s.savings, 2)}x as much data to match that error "
                f"(~{_frames(round(s.equivalent_size), el)}; savings factor 95 % CI {ci}), read from scratch's "
                f"log-log learning curve over {rng} (error ~ n^-{b})")
    else:
        text = (f"The data-savings factor is {fmt(s.savings, 2)} (95 % CI {ci}): below 1, scratch reaches "
                f"transfer's error with ~{_frames(round(s.equivalent_size), el)}, fewer than transfer used "
                f"(scratch's log-log learning curve over {rng})")
    if s.extrapolated == "above":
        text += (f"; this is an extrapolation beyond the largest scratch size measured ({s.control_max_size} frames) "
                 "that assumes scratch keeps improving at its fitted rate")
    elif s.extrapolated == "below":
        text += f"; extrapolated below the smallest scratch size measured ({s.control_min_size} frames)"
    elif s.ci_extrapolated:
        text += "; the CI reaches beyond the measured scratch sizes, where the curve is extrapolated"
    return text + "."


def _pairs(a: Analysis, n0: int) -> str:
    rows = a.pairs[(a.pairs.treatment_size == n0) & (a.pairs.control_size > n0)]
    rows = rows[rows.p_value.notna()]
    if rows.empty:
        return ""
    sig = rows[rows.p_value < ALPHA]
    if sig.empty:
        best = rows.loc[rows.p_value.idxmin()]
        return (f"Transfer at {n0} frames is not significantly better than scratch at any larger size measured "
                f"(smallest one-sided {p_is(best.p_value)}, against {int(best.control_size)} frames).")
    top = sig.loc[sig.control_size.idxmax()]
    text = (f"Transfer at {n0} frames is also more accurate than scratch at {int(top.control_size)} frames "
            f"(error ratio {fmt(top.ratio)}, one-sided Welch t-test on log errors {p_is(top.p_value)})")
    beyond = rows[rows.control_size > top.control_size]
    if len(beyond):
        nxt = beyond.iloc[0]
        text += f", but not significantly against scratch at {int(nxt.control_size)} ({p_is(nxt.p_value)})"
    return text + "."


def _single(a: Analysis, el: str | None, unit: str) -> str:
    inits = a.inits
    if not inits:
        return "No final-phase run has finished with a test error yet, so there is no answer to report."
    if len(inits) == 1:
        c = a.cells.sort_values("train_size")
        parts = ", ".join(f"{fmt(r['mean'])} {unit} at {int(r.train_size)}" for _, r in c.iterrows())
        return (f"Only {inits[0]} final runs have finished, so transfer cannot be compared with scratch. "
                f"{inits[0].capitalize()}'s mean test force MAE: {parts} frames.")
    return ("Transfer and scratch have no training size in common with finished replicates, so they cannot be "
            "compared at one size; see the learning curves below.")


def forgetting_note(table: pd.DataFrame, n0: int | None, unit: str = "eV/Å") -> str:
    """Extend mode's forgetting in one sentence, at the headline size (else the smallest measured)."""
    if table.empty:
        return ""
    rows = table[table["train_size"] == n0] if n0 is not None and (table["train_size"] == n0).any() else table.iloc[:1]
    r = rows.iloc[0]
    ci = f"95 % CI {fmt_ci(r.ci_low, r.ci_high)}" if np.isfinite(r.ci_low) else "95 % CI n/a"
    rci = f"{fmt_ci(r.ratio_ci_low, r.ratio_ci_high)}" if np.isfinite(r.ratio_ci_low) else "n/a"
    return (f"Forgetting: on the source's own test frames, the extended models trained on {int(r.train_size)} target "
            f"frames have a force MAE of {fmt(r.extended)} {unit} ({ci}) against {fmt(r.source_model)} {unit} for the "
            f"source model, a ratio of {fmt(r.ratio)} ({rci}; 1 = nothing forgotten, {plural(int(r.replicates), 'replicate')}).")


def selection_note(selection: str | None) -> str:
    """What chose the configurations and models; claims about the registry only when the runs record it."""
    if selection:
        return (f"Configurations and models were selected on validation error (`{selection}`, as recorded on "
                "the runs); test metrics were used only to report.")
    return (f"The search chose each cell's configuration on validation error (`{M.OBJECTIVE}`); test metrics "
            "here are only reported (this store does not record which metric chose the registered models).")


def answer(analyses: list[Analysis], reps: Replicates, element: str | None, selection: str | None, unit: str = "eV/Å",
           forgetting: pd.DataFrame | None = None) -> str:
    """The first paragraph of the report; ``forgetting`` (:func:`~mlptl.report.tables.forgetting_table`) adds
    extend mode's figure."""
    if not analyses:
        return "No final-phase run has finished with a test error yet, so there is no answer to report."
    parts: list[str] = []
    comparable = [a for a in analyses if a.headline_size is not None and {"scratch", "transfer"} <= set(a.inits)]
    if len(comparable) > 1:
        best = comparable[0]
        s = best.at("savings", best.headline_size)
        if s is not None and np.isfinite(s.savings):
            beyond = f", extrapolated {s.extrapolated} the measured scratch sizes" if s.extrapolated else ""
            parts.append(f"Of {len(comparable)} source elements, {best.source} saves the most data "
                         f"(savings factor {fmt(s.savings, 2)} at {best.headline_size} frames{beyond}).")
    if not comparable:
        parts.append(_single(analyses[0], element, unit))
    for a in comparable:
        n0 = a.headline_size
        parts.append(f"{_verdict(a, n0, element)}: {_errors(a, n0, unit)}.")
        parts.append(_savings(a, n0, element))
        if pairs := _pairs(a, n0):
            parts.append(pairs)
    if forgetting is not None and (note := forgetting_note(forgetting, comparable[0].headline_size if comparable else None, unit)):
        parts.append(note)
    if not any(len(a.final) for a in analyses):
        return " ".join(parts)
    k_lo, k_hi = reps.per_cell_min, reps.per_cell_max
    k = plural(k_lo, "replicate") if k_lo == k_hi else f"{k_lo}-{k_hi} replicates"
    parts.append(f"Each figure rests on {k} per cell. {reps.note()}")
    if k_lo < S.LOW_POWER_REPLICATES:
        parts.append(
            f"With fewer than {S.LOW_POWER_REPLICATES} replicates the tests have little power and the 95 % "
            "bootstrap intervals cover less than 95 % (measured: about 76 % at 3 replicates, 92 % at 5)."
        )
    parts.append(f"{selection_note(selection)} The errors are on held-out {element or 'target'} test frames sampled "
                 "like the training data: accuracy at other temperatures and MD stability are in the tables below.")
    return " ".join(parts)
