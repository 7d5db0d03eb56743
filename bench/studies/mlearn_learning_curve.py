"""The paper's ab initio experiment as an mlptl study: Si -> Ge on the mlearn DFT data (Zuo et al. 2020).

The source model is pretrained on the mlearn Si training set (214 DFT frames: AIMD, elastic, vacancy and
surface cells); Ge models train on nested subsets of the Ge training set, from scratch or from the Si
model, with the learning rate tuned per cell by Optuna, and are tested on the 25-frame Ge DFT test set (by
structure group). The DFT energies of Si and Ge sit about 0.9 eV/atom apart; transfer re-fits the per-type
energy shift and scale to the Ge data. Replicate r trains on its own nested subset r with weight seed r,
shared by scratch and transfer, so the report's CIs are uncertainty over training data. MD stability uses
the SW Ge potential's crystal and RDF as the structural reference (no DFT MD is run).

Data: ``MLPTL_MLEARN_DIR`` (default ../shared/data/mlearn beside the repository), read in place.

    mlptl run bench/studies/mlearn_learning_curve.py    # the study and its report (35 min on 2 cores)
    python bench/mlearn_learning_curve.py               # the same, then bench/results/mlearn_learning_curve_r5_md.*

The store is bench/work/mlearn-learning-curve-r5-md/. The full version is studies/mlearn_si_to_ge.py.
"""

import os
from pathlib import Path

from mlptl import main
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

NAME = "mlearn-learning-curve-r5-md"
WORK = Path(__file__).resolve().parents[1] / "work"  # bench/work: the benchmarks' stores and caches
MLEARN = Path(os.environ.get("MLPTL_MLEARN_DIR", str(Path(__file__).resolve().parents[3] / "shared" / "data" / "mlearn")))
GROUPS = ("AIMD-NVT", "Elastic", "Vacancy", "Surface")  # the structure groups of the Ge test set
STABILITY_T = (300.0, 1000.0)

STUDY = Study(
    name=NAME,
    description="bench/mlearn_learning_curve.py: Si -> Ge on mlearn DFT data, lr tuned per cell.",
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(
        data=DataSource(path=str(MLEARN / "Si" / "training.json"), test_path=str(MLEARN / "Si" / "test.json")),
        model="tiny", max_epochs=30, lr=5e-3, val_size=10, test_size=0,
    ),
    target_data=DataSource(path=str(MLEARN / "Ge" / "training.json"), test_path=str(MLEARN / "Ge" / "test.json")),
    train_sizes=(10, 50, 200),
    search={"scratch": SearchSpace(lr=(1e-3, 3e-2)), "transfer": SearchSpace(lr=(3e-4, 1e-2), freeze_depth=(0,))},
    trials_per_cell=3,
    seeds=(0, 1, 2, 3, 4),
    max_epochs=15,
    sampler_seed=0,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=5),
    evaluation=EvaluationSpec(stability_temperatures=STABILITY_T, stability_steps=500, properties=False),
    resources=Resources(cpus_per_trial=1, max_concurrent_trials=2),
    val_size=10,
    test_size=0,
    # No DFT MD here: the SW Ge potential's crystal and RDF are the structural reference for stability.
    target_reference="sw",
    storage=str(WORK / NAME),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
