"""The paper's ab initio experiment as an mlptl study: Si -> Ge on the mlearn DFT data (Zuo et al. 2020).

The source model is pretrained on the mlearn Si training set (214 DFT frames: AIMD, elastic, vacancy and
surface cells); Ge models are trained on nested subsets of the Ge training set, from scratch or from the Si
model, with the learning rate tuned per cell by Optuna, and tested on the 25-frame Ge DFT test set (by
structure group). The DFT energies of Si and Ge sit about 0.9 eV/atom apart; transfer re-fits the per-type
energy shift and scale to the Ge data, which is what makes the Si energy head usable. MD stability uses the
SW Ge reference RDF as the crystal's fingerprint (no DFT MD is run).

Data: ``--mlearn DIR`` or ``MLPTL_MLEARN_DIR`` (default ../shared/data/mlearn), read in place. Sized for a
2-core CPU; the full version is studies/mlearn_si_to_ge.py. Results: bench/results/mlearn_learning_curve.*;
rerunning resumes the study in bench/work/mlearn-learning-curve/.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _common import BENCH_DIR, RESULTS_DIR, machine_info, setup_logging, write_json  # noqa: E402

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
        seeds=tuple(args.seeds),
        max_epochs=args.epochs,
        sampler_seed=0,
        pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=5),
        evaluation=EvaluationSpec(stability_temperatures=STABILITY_T, stability_steps=args.md_steps, properties=False),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=args.concurrent),
        val_size=10,
        test_size=0,
        storage=S.storage_dir(args.name),
    )


def plot(table: pd.DataFrame, out: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    style = {"scratch": dict(color="tab:red", marker="o"), "transfer": dict(color="tab:blue", marker="s")}
    for init, g in table.groupby("init"):
        g = g.sort_values("train_size")
        axes[0].errorbar(g.train_size, g.test_forces_mae_mean, yerr=g.test_forces_mae_std, capsize=3, label=init,
                         **style[init])
        e = g.test_energy_per_atom_mae_mean * 1000
        axes[1].errorbar(g.train_size, e, yerr=g.test_energy_per_atom_mae_std * 1000, capsize=3, label=init,
                         **style[init])
    axes[0].set_ylabel("Ge DFT test force MAE [eV/Å]")
    axes[1].set_ylabel("Ge DFT test energy MAE [meV/atom]")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("Ge training frames (mlearn)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = os.environ.get("MLPTL_MLEARN_DIR", str(BENCH_DIR.parent.parent / "shared" / "data" / "mlearn"))
    p.add_argument("--mlearn", default=default, help="folder with Si/ and Ge/ training.json, test.json")
    p.add_argument("--name", default="mlearn-learning-curve")
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200])
    p.add_argument("--trials-per-cell", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--md-steps", type=int, default=500)
    p.add_argument("--concurrent", type=int, default=1)
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--analyse-only", action="store_true")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    from mlptl.report import load_runs
    from mlptl.tracking import resolve_tracking_uri

    study = make_study(args)
    info = {"benchmark": "mlearn_learning_curve", "machine": machine_info(), "settings": vars(args)}
    if not args.analyse_only:
        info["run"] = S.run(study, fresh=args.fresh)
    uri = resolve_tracking_uri(study.storage_dir(), study.tracking_uri)
    runs = load_runs(uri, study.name)
    metrics = ["test_forces_mae", "test_energy_per_atom_mae"] + [f"test_forces_mae.{g}" for g in GROUPS]
    metrics += [f"stability_stable_fraction.T{int(t)}" for t in STABILITY_T]
    table = S.cell_summary(runs, metrics)
    findings = {"transfer_vs_scratch": [], "transfer_N_vs_scratch_bigger": []}
    sizes = sorted(args.sizes)
    for i, n in enumerate(sizes):
        t = table[(table.init == "transfer") & (table.train_size == n)]
        s = table[(table.init == "scratch") & (table.train_size == n)]
        if t.empty or s.empty:
            continue
        wins, pairs = S.pairwise_wins(runs, "test_forces_mae", n, n)
        findings["transfer_vs_scratch"].append({
            "train_size": n, "wins": f"{wins}/{pairs}",
            "force_ratio": float(t.test_forces_mae_mean.iloc[0] / s.test_forces_mae_mean.iloc[0]),
            "energy_ratio": float(t.test_energy_per_atom_mae_mean.iloc[0] / s.test_energy_per_atom_mae_mean.iloc[0]),
        })
        for m in sizes[i + 1:]:
            wins, pairs = S.pairwise_wins(runs, "test_forces_mae", n, m)
            findings["transfer_N_vs_scratch_bigger"].append({"N": n, "scratch_size": m, "wins": f"{wins}/{pairs}"})
    info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    info["findings"] = findings
    info["table"] = table.to_dict(orient="records")
    table.to_csv(RESULTS_DIR / "mlearn_learning_curve.csv", index=False)
    write_json(RESULTS_DIR / "mlearn_learning_curve.json", info)
    plot(table, RESULTS_DIR / "mlearn_learning_curve.png")
    log.info("\n%s", table.to_string(index=False))
    for k, v in findings.items():
        log.info("%s: %s", k, v)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
