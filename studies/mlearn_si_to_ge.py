"""The ab initio study: Si -> Ge on the mlearn DFT data (Zuo et al. 2020), Ge DFT test set.

Set ``MLPTL_MLEARN_DIR`` to the folder holding ``Si/`` and ``Ge/`` (``training.json``, ``test.json``)
from the public materialsvirtuallab/mlearn repository; it defaults to ``../shared/data/mlearn``. The DFT
energies of Si and Ge sit on different references (about -5.43 and -4.49 eV/atom); the per-type energy
shift re-fitted to the Ge data absorbs that. MD stability uses the SW Ge reference RDF as a check of the
crystal staying a crystal (no DFT MD is run here).

    python studies/mlearn_si_to_ge.py --smoke          # minutes, on a CPU
    ray submit clusters/aws.yaml studies/mlearn_si_to_ge.py
"""

import os

from mlptl import main
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

MLEARN = os.environ.get("MLPTL_MLEARN_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mlearn"))

STUDY = Study(
    name="mlearn-si-to-ge",
    description="Si -> Ge transfer on mlearn DFT data.",
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(
        data=DataSource(path=f"{MLEARN}/Si/training.json", test_path=f"{MLEARN}/Si/test.json"),
        model="small",
        max_epochs=200,
        lr=2e-3,
        val_size=20,
        test_size=0,
    ),
    target_data=DataSource(path=f"{MLEARN}/Ge/training.json", test_path=f"{MLEARN}/Ge/test.json"),
    train_sizes=(5, 10, 25, 50, 100, 200),
    search=SearchSpace(lr=(2e-4, 1e-2), freeze_depth=(0, 1, 2, 3)),
    trials_per_cell=12,
    seeds=(0, 1, 2),
    max_epochs=150,
    compile=True,  # 150-epoch trials: train-time torch.compile pays after 10-20 epochs (bench/train_compile.py)
    pruner=PrunerSpec(kind="median", n_startup_trials=3, n_warmup_steps=10),
    evaluation=EvaluationSpec(stability_temperatures=(300.0, 1000.0), stability_steps=5000, stability_replicas=3),
    resources=Resources(cpus_per_trial=2, gpus_per_trial=0.5),
    val_size=10,
    test_size=0,
    # No DFT MD here: the SW Ge potential's crystal and RDF are the structural reference for stability.
    target_reference="sw",
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
