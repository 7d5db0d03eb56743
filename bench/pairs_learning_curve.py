"""Learning curves of scratch against transfer for several element pairs: the studies of
bench/studies/pairs_learning_curve.py, run and compared.

Does transfer help less when source and target are less alike? One study per pair (Si -> Ge on SW,
Ni -> Cu and Cu -> Ag on EMT, C -> Si on Tersoff), all sized alike in the study file. This driver runs
each the way ``mlptl run`` does (rerunning resumes them: finished trials are not redone), takes every
figure from the report's own statistics, adds how alike the two elements are, and writes
bench/results/pairs_learning_curve.{json,csv,png} and pairs_learning_curve_summary.csv. ``--smoke`` runs
the same per-training work at 2 replicates and 2 trials per cell, to estimate the cost; ``--replot``
redraws the figure from the results JSON alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, machine_info, setup_logging, write_json  # noqa: E402

log = logging.getLogger("bench.pairs_learning_curve")
STUDY_FILE = "pairs_learning_curve"  # bench/studies/pairs_learning_curve.py: STUDIES, one per pair


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    reference: str

    @property
    def label(self) -> str:
        return f"{self.source} -> {self.target} ({self.reference})"


#: key -> the pair, in the study file's order (si_ge, ni_cu, cu_ag, c_si)
PAIRS = {
    "si_ge": Pair("Si", "Ge", "sw"),
    "ni_cu": Pair("Ni", "Cu", "emt"),
    "cu_ag": Pair("Cu", "Ag", "emt"),
    "c_si": Pair("C", "Si", "tersoff"),
}


# ---------------------------------------------------------------- similarity of a pair
def _element_facts(element: str, reference: str) -> dict[str, float]:
    from ase.data import atomic_masses, atomic_numbers

    from mlptl.data.references import get_reference

    ref = get_reference(element, reference)
    atoms = ref.crystal(2)
    d = atoms.get_all_distances(mic=True)
    nn = float(d[d > 1e-6].min())
    return {
        "lattice": ref.lattice,
        "a0": float(ref.a0),
        "nn": nn,
        "mass": float(ref.mass if ref.mass is not None else atomic_masses[atomic_numbers[element]]),
        "ecoh": float(ref.literature.get("ecoh", math.nan)),
    }


def similarity(pair: Pair) -> dict[str, Any]:
    """Lattice constant, nearest-neighbour distance, mass and cohesive energy of target relative to source.

    The a0 mismatch and the nn mismatch are the same number for two elements on one lattice (all pairs
    here); both are kept because they differ for pairs on different lattices.
    """
    s, t = _element_facts(pair.source, pair.reference), _element_facts(pair.target, pair.reference)
    return {
        "source": s, "target": t, "same_lattice": s["lattice"] == t["lattice"],
        "a0_mismatch": t["a0"] / s["a0"] - 1.0,
        "nn_mismatch": t["nn"] / s["nn"] - 1.0,
        "mass_ratio": t["mass"] / s["mass"],
        "ecoh_ratio": t["ecoh"] / s["ecoh"],
    }


# ---------------------------------------------------------------- the study of one pair
def load_studies(smoke: bool = False) -> dict[str, Any]:
    """The study file's studies by pair key; ``smoke``: each at 2 replicates and 2 trials per cell, named
    and stored apart (``pairs-<key>-smoke``)."""
    studies = S.load_namespace(STUDY_FILE)["STUDIES"]
    if smoke:
        studies = {k: replace(s, name=f"{s.name}-smoke", storage=str(Path(s.storage).parent / f"{s.name}-smoke"),
                              seeds=s.seeds[:2], trials_per_cell=min(s.trials_per_cell, 2))
                   for k, s in studies.items()}
    return studies


def _wall_log(study) -> Path:
    return Path(study.storage) / "bench-walls.json"


def run_pair(key: str, study, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) the pair's study; the wall time of every call is kept beside its store."""
    walls_file = _wall_log(study)
    info: dict[str, Any] = {}
    if not args.analyse_only:
        info = S.run(study, fresh=args.fresh)
        walls = json.loads(walls_file.read_text()) if walls_file.is_file() else []
        walls.append({"wall_s": info["wall_s"], "counts": info["counts"], "load_avg": list(os.getloadavg())})
        write_json(walls_file, walls)
    return read_pair(key, study, info)


def read_pair(key: str, study, info: dict[str, Any]) -> dict[str, Any]:
    """The pair's numbers from its MLflow store (its report rebuilt if missing) and the wall-time log."""
    from mlptl.report import HEADLINE_FILE, build_report, load_runs
    from mlptl.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(study.storage_dir(), study.tracking_uri)
    rdir = Path(info.get("report_dir") or study.storage_dir() / "reports" / study.name)
    if not (rdir / HEADLINE_FILE).is_file():
        build_report(uri, study.name, rdir)
    walls = json.loads(_wall_log(study).read_text()) if _wall_log(study).is_file() else []
    return {**pair_result(key, study.name, load_runs(uri, study.name), walls), "report_dir": str(rdir)}


def pair_result(key: str, name: str, runs: pd.DataFrame, walls: list[dict[str, Any]]) -> dict[str, Any]:
    """One pair's figures: the report's statistics of its runs, the pair's similarity, runs and costs."""
    rep = S.report_tables(runs)
    trainings = runs[runs.status.isin(["finished", "pruned"])]
    train_s = (pd.to_numeric(trainings.end_time) - pd.to_numeric(trainings.start_time)) / 1000.0
    return {
        "key": key,
        "pair": PAIRS[key].label,
        "study": name,
        "similarity": similarity(PAIRS[key]),
        "headline": rep["headline"],
        "cells": rep["cells"],
        "paired": rep["paired"],
        "savings": rep["savings"],
        "fits": rep["fits"],
        "answer": rep["answer"],
        "wall_s_total": float(sum(w["wall_s"] for w in walls)) if walls else None,
        "runs": {"search": int((runs.phase == "search").sum()), "final": int((runs.phase == "final").sum()),
                 "pruned": int((runs.status == "pruned").sum()), "failed": int((runs.status == "failed").sum())},
        "training_s": {"sum": float(train_s.sum()), "median": float(train_s.median()),
                       "by_size": {int(n): float(v) for n, v in train_s.groupby(trainings.train_size).median().items()}},
    }


# ---------------------------------------------------------------- tables and the figure
def long_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (pair, size): both inits' means with CIs, the paired ratio and test, the savings."""
    rows = []
    for r in results:
        cells, paired, sav = r["cells"], r["paired"], r["savings"]
        for n in sorted(cells.train_size.unique()):
            row: dict[str, Any] = {"pair": r["key"], "train_size": int(n)}
            for init in ("scratch", "transfer"):
                c = cells[(cells.init == init) & (cells.train_size == n)]
                if len(c):
                    c = c.iloc[0]
                    row.update({f"{init}_n": int(c.n), f"{init}_mean": c["mean"], f"{init}_ci_low": c.ci_low,
                                f"{init}_ci_high": c.ci_high, f"{init}_std": c["std"]})
            p = paired[paired.train_size == n]
            if len(p):
                p = p.iloc[0]
                row.update({"pairs": int(p.n_pairs), "mae_ratio": p.ratio, "mae_ratio_ci_low": p.ratio_ci_low,
                            "mae_ratio_ci_high": p.ratio_ci_high, "p_paired_t": p.t_p,
                            "p_wilcoxon": p.wilcoxon_p})
            s = sav[sav.train_size == n]
            if len(s):
                s = s.iloc[0]
                row.update({"savings": s.savings, "savings_ci_low": s.ci_low, "savings_ci_high": s.ci_high,
                            "savings_extrapolated": s.extrapolated if isinstance(s.extrapolated, str) else "",
                            "savings_ci_extrapolated": s.ci_extrapolated
                            if isinstance(s.ci_extrapolated, str) else ""})
            rows.append(row)
    return pd.DataFrame(rows)


def summary_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """The README's table: one row per pair at its smallest size."""
    rows = []
    for r in results:
        h, sim = r["headline"], r["similarity"]
        n = int(h.get("headline_train_size", min(r["cells"].train_size)))
        s = r["savings"][r["savings"].train_size == n]
        extrap = ""
        if len(s):
            e, ce = s.iloc[0].extrapolated, s.iloc[0].ci_extrapolated
            extrap = e if isinstance(e, str) and e else ("CI " + ce if isinstance(ce, str) and ce else "")
        rows.append({
            "pair": r["pair"], "a0_mismatch": sim["a0_mismatch"], "nn_mismatch": sim["nn_mismatch"],
            "mass_ratio": sim["mass_ratio"], "ecoh_ratio": sim["ecoh_ratio"], "train_size": n,
            "mae_ratio": h.get("mae_ratio", math.nan), "mae_ratio_ci_low": h.get("mae_ratio.ci_low", math.nan),
            "mae_ratio_ci_high": h.get("mae_ratio.ci_high", math.nan),
            "savings": float(s.iloc[0].savings) if len(s) else math.nan,
            "savings_ci_low": float(s.iloc[0].ci_low) if len(s) else math.nan,
            "savings_ci_high": float(s.iloc[0].ci_high) if len(s) else math.nan,
            "savings_extrapolated": extrap, "p_value": h.get("p_value", math.nan),
            "replicates": int(h.get("replicates", 0)),
        })
    return pd.DataFrame(rows)


def plot(results: list[dict[str, Any]], out: Path) -> None:
    k = len(results)
    fig, axes = plt.subplots(1, k, figsize=(4.2 * k, 4.0), squeeze=False)
    style = {"scratch": dict(color="tab:red", marker="o"), "transfer": dict(color="tab:blue", marker="s")}
    for ax, r in zip(axes[0], results):
        for init, g in r["cells"].groupby("init"):
            g = g.sort_values("train_size")
            yerr = np.vstack([g["mean"] - g.ci_low, g.ci_high - g["mean"]])
            ax.errorbar(g.train_size * (0.97 if init == "scratch" else 1.03), g["mean"], yerr=yerr, capsize=3,
                        label=f"{init} (mean, 95% CI, {int(g.n.min())} reps)", **style[init])
        S.plain_log_axes(ax, r["cells"].train_size.unique())
        sim = r["similarity"]
        ax.set_title(f"{r['pair']}\na0 {sim['a0_mismatch']:+.0%}, mass x{sim['mass_ratio']:.2f}", fontsize=9)
        ax.set_xlabel(f"{PAIRS[r['key']].target} training frames")
        ax.set_ylabel("test force MAE [eV/Å]")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def replot(stem: str) -> None:
    """Redraw the figure from the results JSON alone (the study stores behind it may be long gone)."""
    info = json.loads((RESULTS_DIR / f"{stem}.json").read_text())
    by_size = pd.DataFrame(info["by_size"])
    results = []
    for r in info["pairs"]:
        rows = by_size[by_size.pair == r["key"]]
        cells = pd.concat([
            pd.DataFrame({
                "init": init, "train_size": rows.train_size, "mean": rows[f"{init}_mean"],
                "ci_low": rows[f"{init}_ci_low"], "ci_high": rows[f"{init}_ci_high"], "n": rows[f"{init}_n"],
            })
            for init in ("scratch", "transfer")
        ])
        results.append({**r, "cells": cells})
    plot(results, RESULTS_DIR / f"{stem}.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", nargs="+", default=["si_ge", "ni_cu", "cu_ag"], choices=sorted(PAIRS))
    p.add_argument("--smoke", action="store_true", help="2 replicates, 2 trials per cell: to estimate the cost")
    p.add_argument("--trials-per-cell", type=int, help="override the study file's search trials per cell")
    p.add_argument("--max-epochs", type=int, help="override the study file's epoch budget per trial")
    p.add_argument("--seeds", help="override the replicates' seeds, comma-separated (0,1,2: 3 replicates)")
    p.add_argument("--train-sizes", help="override the target training sizes, comma-separated")
    p.add_argument("--fresh", action="store_true", help="delete each study's store first instead of resuming")
    p.add_argument("--analyse-only", action="store_true", help="only re-read the stores and rewrite the results")
    p.add_argument("--replot", action="store_true", help="only redraw the figure from the results JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    stem = "pairs_learning_curve" + ("_smoke" if args.smoke else "")
    if args.replot:
        replot(stem)
        return 0

    from mlptl.study.load import add_override_arguments, apply_overrides

    over = argparse.ArgumentParser()
    add_override_arguments(over)
    flags = [x for f in ("trials_per_cell", "max_epochs", "seeds", "train_sizes") if getattr(args, f) is not None
             for x in (f"--{f.replace('_', '-')}", str(getattr(args, f)))]
    studies = load_studies(args.smoke)
    info: dict[str, Any] = {"benchmark": "pairs_learning_curve", "machine": machine_info(), "settings": vars(args)}
    results = []
    for key in args.pairs:
        log.info("pair %s: %s", key, PAIRS[key].label)
        results.append(run_pair(key, apply_overrides(studies[key], over.parse_args(flags)), args))
        log.info("%s: %s", key, results[-1]["answer"])
    long, summary = long_table(results), summary_table(results)
    long.to_csv(RESULTS_DIR / f"{stem}.csv", index=False)
    summary.to_csv(RESULTS_DIR / f"{stem}_summary.csv", index=False)
    plot(results, RESULTS_DIR / f"{stem}.png")
    for r in results:
        src = Path(r["report_dir"]) / "learning_curve.png"
        if src.is_file():
            shutil.copy2(src, RESULTS_DIR / f"{stem}_{r['key']}_report_learning_curve.png")
    info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    info["pairs"] = [
        {k: v for k, v in r.items() if not isinstance(v, pd.DataFrame)}
        | {"fits": S.records(r["fits"])}
        for r in results
    ]
    info["summary"] = S.records(summary)
    info["by_size"] = S.records(long)
    write_json(RESULTS_DIR / f"{stem}.json", info)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        log.info("\n%s", summary.to_string(index=False))
    return 0 if len(summary) and summary.mae_ratio.notna().all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
