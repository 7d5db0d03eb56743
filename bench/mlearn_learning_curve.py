"""The paper's ab initio experiment as an mlptl study: Si -> Ge on the mlearn DFT data (Zuo et al. 2020).

The source model is pretrained on the mlearn Si training set (214 DFT frames: AIMD, elastic, vacancy and
surface cells); Ge models are trained on nested subsets of the Ge training set, from scratch or from the Si
model, with the learning rate tuned per cell by Optuna, and tested on the 25-frame Ge DFT test set (by
structure group). The DFT energies of Si and Ge sit about 0.9 eV/atom apart; transfer re-fits the per-type
energy shift and scale to the Ge data, which is what makes the Si energy head usable. MD stability uses the
SW Ge reference RDF as the crystal's fingerprint (no DFT MD is run).

Replicates resample the data: replicate r of a cell trains on its own nested subset r of the Ge training
set with weight seed r; scratch and transfer replicate r share the subset, and the Ge test set is the
fixed mlearn test set, so the report's CIs and paired tests are uncertainty over training data.

Data: ``--mlearn DIR`` or ``MLPTL_MLEARN_DIR`` (default ../shared/data/mlearn), read in place. Sized for a
2-core CPU; the full version is studies/mlearn_si_to_ge.py. Results: bench/results/<name with _>.*;
rerunning resumes the study in bench/work/<name>/ (the default name is new since replicates resample:
the store of the 2-seed run, bench/work/mlearn-learning-curve/, is left alone).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import BENCH_DIR, RESULTS_DIR, setup_logging, write_json  # noqa: E402

log = logging.getLogger("bench.mlearn_learning_curve")
GROUPS = ("AIMD-NVT", "Elastic", "Vacancy", "Surface")
STABILITY_T = (300.0, 1000.0)


def make_study(args):
    from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

    d = Path(args.mlearn)
    return Study(
        name=args.name,
        description="bench/mlearn_learning_curve.py: Si -> Ge on mlearn DFT data, lr tuned per cell.",
        source_element="Si",
        target_element="Ge",
        pretraining=Pretraining(
            data=DataSource(path=str(d / "Si" / "training.json"), test_path=str(d / "Si" / "test.json")),
            model="tiny", max_epochs=args.pretrain_epochs, lr=5e-3, val_size=10, test_size=0,
        ),
        target_data=DataSource(path=str(d / "Ge" / "training.json"), test_path=str(d / "Ge" / "test.json")),
        train_sizes=tuple(args.sizes),
        search={"scratch": SearchSpace(lr=(1e-3, 3e-2)), "transfer": SearchSpace(lr=(3e-4, 1e-2), freeze_depth=(0,))},
        trials_per_cell=args.trials_per_cell,
        seeds=tuple(range(args.replicates)),
        max_epochs=args.epochs,
        sampler_seed=0,
        pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=5),
        evaluation=EvaluationSpec(stability_temperatures=STABILITY_T, stability_steps=args.md_steps, properties=False),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=args.concurrent),
        val_size=10,
        test_size=0,
        # No DFT MD here: the SW Ge potential's crystal and RDF are the structural reference for stability.
        target_reference="sw",
        storage=S.storage_dir(args.name),
    )


def analyse(runs: pd.DataFrame, report_dir: Path) -> dict:
    """The learning curve, paired tests and savings from the study's report; energies, force errors by
    structure group and stability as means over replicates with the report's bootstrap CIs."""
    from mlptl.report.runs import final_frame

    rep = S.report_tables(report_dir)
    f = final_frame(runs)
    cols = ["test_energy_per_atom_mae"] + [f"test_forces_mae.{g}" for g in GROUPS]
    cols += [f"stability_stable_fraction.T{int(t)}" for t in STABILITY_T]
    for c in cols:
        if c in f:
            f[c] = pd.to_numeric(f[c], errors="coerce")
    table = rep["cells"].merge(S.replicate_table(f, cols), on=["init", "train_size"], how="left")
    energy = S.paired_ratio(f, "test_energy_per_atom_mae")
    return {"table": table, "paired": rep["paired"], "savings": rep["savings"], "pairs": rep["pairs"],
            "energy": energy, "headline": rep["headline"], "answer": rep["answer"]}


def plot(table: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    style = {"scratch": dict(color="tab:red", marker="o"), "transfer": dict(color="tab:blue", marker="s")}

    def err(g: pd.DataFrame, col: str, lo: str, hi: str) -> np.ndarray:
        return np.vstack([g[col] - g[lo], g[hi] - g[col]]).clip(min=0)

    for init, g in table.groupby("init"):
        g = g.sort_values("train_size")
        axes[0].errorbar(g.train_size, g["mean"], yerr=err(g, "mean", "ci_low", "ci_high"), capsize=3,
                         label=f"{init} (mean, 95% CI, {int(g.n.min())} reps)", **style[init])
        c = "test_energy_per_atom_mae"
        if c in g:
            axes[1].errorbar(g.train_size, g[c] * 1000, yerr=err(g, c, f"{c}_ci_low", f"{c}_ci_high") * 1000,
                             capsize=3, label=init, **style[init])
    axes[0].set_ylabel("Ge DFT test force MAE [eV/Å]")
    axes[1].set_ylabel("Ge DFT test energy MAE [meV/atom]")
    for ax in axes:
        if ax.has_data():
            S.plain_log_axes(ax, table.train_size.unique())
        ax.set_xlabel("Ge training frames (mlearn)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("MLPTL_MLEARN_DIR", str(BENCH_DIR.parent.parent / "shared" / "data" / "mlearn"))
    p.add_argument("--mlearn", default=default, help="folder with Si/ and Ge/ training.json, test.json")
    p.add_argument("--name", default="mlearn-learning-curve-r5-md")
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--trials-per-cell", type=int, default=3)
    p.add_argument("--replicates", type=int, default=5, help="replicates per cell: subsets and seeds 0..R-1")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--md-steps", type=int, default=500)
    p.add_argument("--concurrent", type=int, default=2, help="trials at once (1 CPU and 1 torch thread each)")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--analyse-only", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    study = make_study(args)
    info, report_dir, runs = S.run_and_read(study, args, "mlearn_learning_curve")
    res = analyse(runs, report_dir)
    table = res["table"]
    stem = args.name.replace("-", "_")
    for k in ("table", "paired", "savings", "pairs", "energy"):
        info[k] = json.loads(res[k].to_json(orient="records"))
    info["headline"], info["answer"] = res["headline"], res["answer"]
    table.to_csv(RESULTS_DIR / f"{stem}.csv", index=False)
    write_json(RESULTS_DIR / f"{stem}.json", info)
    plot(table, RESULTS_DIR / f"{stem}.png")
    if (report_dir / "learning_curve.png").exists():
        shutil.copy2(report_dir / "learning_curve.png", RESULTS_DIR / f"{stem}_report_learning_curve.png")
    log.info("%s", res["answer"])
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for k in ("table", "paired", "savings", "energy"):
            log.info("%s:\n%s", k, res[k].to_string(index=False))
    return 0 if not math.isnan(float(table["mean"].max())) else 1

if __name__ == "__main__":
    raise SystemExit(main())
