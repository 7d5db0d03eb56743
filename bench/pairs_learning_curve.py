"""Learning curves of scratch against transfer for several element pairs, each as a whole mlptl study.

Does transfer help less when source and target are less alike? One study per pair (Ray Tune trials,
Optuna TPE per cell with the median pruner, MLflow tracking, the study's own report), all sized alike:
tiny Allegro model, target training sizes 4, 16 and 64 frames, the learning rate searched per cell
(transfer fine-tunes every weight; freezing is bench/freeze_depth.py's subject), the best configuration
of each cell re-trained as 5 replicates. Replicate r trains on its own nested training subset r with
weight seed r, and scratch and transfer replicate r share that subset, so the report's bootstrap CIs
and paired tests are uncertainty over training data, not over weight seeds alone.

Pairs (each on one reference potential family, so that source and target differ only in the element):

- ``si_ge``: Si -> Ge, Stillinger-Weber (the paper's pair), diamond, 4 % lattice mismatch;
- ``ni_cu``: Ni -> Cu, EMT, fcc, 3 %;
- ``cu_ag``: Cu -> Ag, EMT, fcc, 13 %;
- ``c_si``: C -> Si, Tersoff 1989, diamond, 52 %.

Every figure is read back from each study's report (bench/work/pairs-learning-curve/<pair>/reports/);
rerunning the script resumes the studies (finished trials are not redone) and rewrites the results:
bench/results/pairs_learning_curve.{json,csv,png} and pairs_learning_curve_summary.csv.
``--smoke`` runs the same per-training work at 2 replicates and 2 trials per cell, to estimate the cost.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, WORK_DIR, machine_info, setup_logging, write_json  # noqa: E402

log = logging.getLogger("bench.pairs_learning_curve")


@dataclass(frozen=True)
class Pair:
    source: str
    target: str
    reference: str

    @property
    def label(self) -> str:
        return f"{self.source} -> {self.target} ({self.reference})"


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
def make_study(key: str, args: argparse.Namespace):
    from mlptl.data.generate import preset
    from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

    pair = PAIRS[key]

    def data(element: str, per_t: int):
        # The 'tiny' preset's cells and temperatures (32-atom fcc or 64-atom diamond cells at the same
        # fractions of each element's melting point as SW Si's 300/900 K), with frames 20 fs apart after
        # 100 fs of equilibration rather than 10 fs after 20, so that more frames are more information.
        return preset("tiny", element, reference=pair.reference, frames_per_temperature=per_t,
                      interval_steps=20, equilibration_steps=100)

    name = f"pairs-{key}" + ("-smoke" if args.smoke else "")
    stability = tuple(float(t) for t in args.md_temperatures) if args.md_steps > 0 else ()
    return Study(
        name=name,
        description=f"bench/pairs_learning_curve.py: {pair.label} learning curve, scratch vs transfer.",
        source_element=pair.source,
        target_element=pair.target,
        pretraining=Pretraining(
            data=DataSource(generate=data(pair.source, args.source_frames)),
            model="tiny", max_epochs=args.source_epochs, lr=5e-3, val_size=6, test_size=6,
        ),
        target_data=DataSource(generate=data(pair.target, args.frames_per_temperature)),
        target_reference=pair.reference,
        train_sizes=tuple(args.sizes),
        # One lr range for both inits, so that neither gets a head start from its prior.
        search={
            "scratch": SearchSpace(lr=(1e-3, 2e-2), batch_size=(args.batch_size,)),
            "transfer": SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0,), batch_size=(args.batch_size,)),
        },
        trials_per_cell=args.trials_per_cell,
        seeds=tuple(range(args.replicates)),
        max_epochs=args.epochs,
        sampler_seed=0,
        pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=3),
        evaluation=EvaluationSpec(stability_temperatures=stability, stability_steps=max(args.md_steps, 1),
                                  properties=False),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=args.concurrent),
        val_size=args.val_size,
        test_size=args.test_size,
        storage=str(WORK_DIR / "pairs-learning-curve" / name),
    )


def _wall_log(study) -> Path:
    return Path(study.storage) / "bench-walls.json"


def run_pair(key: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run (or resume) the pair's study; the wall time of every call is kept beside its store."""
    study = make_study(key, args)
    walls_file = _wall_log(study)
    info: dict[str, Any] = {}
    if not args.analyse_only:
        info = S.run(study, fresh=args.fresh)
        walls = json.loads(walls_file.read_text()) if walls_file.is_file() else []
        walls.append({"wall_s": info["wall_s"], "counts": info["counts"], "load_avg": list(os.getloadavg())})
        write_json(walls_file, walls)
    return read_pair(key, study, info)


def read_pair(key: str, study, info: dict[str, Any]) -> dict[str, Any]:
    """The pair's numbers from its report's CSVs and headline.json (rebuilt from MLflow if missing)."""
    from mlptl.report import build_report, load_runs
    from mlptl.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(study.storage_dir(), study.tracking_uri)
    rdir = Path(info.get("report_dir") or study.storage_dir() / "reports" / study.name)
    if not (rdir / "headline.json").is_file():
        build_report(uri, study.name, rdir)
    runs = load_runs(uri, study.name)
    walls = json.loads(_wall_log(study).read_text()) if _wall_log(study).is_file() else []
    trainings = runs[runs.status.isin(["finished", "pruned"])]
    train_s = (pd.to_numeric(trainings.end_time) - pd.to_numeric(trainings.start_time)) / 1000.0
    return {
        "key": key,
        "pair": PAIRS[key].label,
        "study": study.name,
        "report_dir": str(rdir),
        "similarity": similarity(PAIRS[key]),
        "headline": json.loads((rdir / "headline.json").read_text()),
        "cells": pd.read_csv(rdir / "cell_stats.csv"),
        "paired": pd.read_csv(rdir / "paired_tests.csv"),
        "savings": pd.read_csv(rdir / "savings.csv"),
        "fits": pd.read_csv(rdir / "learning_curve_fits.csv"),
        "answer": (rdir / "report.md").read_text().split("\n\n")[1].strip(),
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


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(df.to_json(orient="records"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pairs", nargs="+", default=["si_ge", "ni_cu", "cu_ag"], choices=sorted(PAIRS))
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 16, 64])
    p.add_argument("--replicates", type=int, default=5, help="replicates per cell (seeds 0..R-1, subsets 0..R-1)")
    p.add_argument("--trials-per-cell", type=int, default=3)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--frames-per-temperature", type=int, default=60, help="target frames at each of 2 temperatures")
    p.add_argument("--val-size", type=int, default=8)
    p.add_argument("--test-size", type=int, default=16)
    p.add_argument("--source-frames", type=int, default=30, help="source frames per temperature")
    p.add_argument("--source-epochs", type=int, default=20)
    p.add_argument("--md-steps", type=int, default=0, help="stability MD steps per temperature (0: no MD)")
    p.add_argument("--md-temperatures", type=float, nargs="+", default=[300.0])
    p.add_argument("--concurrent", type=int, default=2, help="trials at once (1 CPU and 1 torch thread each)")
    p.add_argument("--smoke", action="store_true", help="2 replicates, 2 trials per cell: to estimate the cost")
    p.add_argument("--fresh", action="store_true", help="delete each study's store first instead of resuming")
    p.add_argument("--analyse-only", action="store_true", help="only re-read the reports and rewrite the results")
    p.add_argument("--replot", action="store_true", help="only redraw the figure from the results JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.smoke:
        args.replicates, args.trials_per_cell = min(args.replicates, 2), min(args.trials_per_cell, 2)
    setup_logging(args.verbose)
    if args.replot:
        replot("pairs_learning_curve" + ("_smoke" if args.smoke else ""))
        return 0

    info: dict[str, Any] = {"benchmark": "pairs_learning_curve", "machine": machine_info(), "settings": vars(args)}
    results = []
    for key in args.pairs:
        log.info("pair %s: %s", key, PAIRS[key].label)
        results.append(run_pair(key, args))
        r = results[-1]
        log.info("%s: %s", key, r["answer"])
    stem = "pairs_learning_curve" + ("_smoke" if args.smoke else "")
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
        | {"fits": _records(r["fits"])}
        for r in results
    ]
    info["summary"] = _records(summary)
    info["by_size"] = _records(long)
    write_json(RESULTS_DIR / f"{stem}.json", info)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        log.info("\n%s", summary.to_string(index=False))
    return 0 if len(summary) and summary.mae_ratio.notna().all() else 1


if __name__ == "__main__":
    raise SystemExit(main())
