"""What the study platform costs and what pruning saves: one small study, without and with a pruner.

SW Ge, 50 training frames, cells scratch-n50 and transfer-n50, 6 Optuna trials per cell over lr
1e-3..2e-2 and, for transfer, freeze depth 0-2; 20 epochs; each cell's best re-trained with seed 0; no MD;
one trial at a time (1 CPU, 1 torch thread). ``STUDY`` has no pruner; ``MEDIAN`` is the same study with
Optuna's median pruner (2 start-up trials, 5 warm-up epochs): TPE proposes its first 10 trials per cell at
random from the sampler seed, so both try the same configurations in the same order.

The source model is the SW-Si model of bench/transfer_vs_scratch.py and the Ge data the benchmarks' fixed
SW Ge set (bench/_common.py, ``ge_data_spec``); both must exist before the study runs, which the driver
sees to:

    python bench/study_costs.py          # both studies, the same trainings bare, bench/results/study_costs.*

Stores: bench/work/study-costs/{none,median}/ (git-ignored).
"""

from pathlib import Path

from mlptl import main
from mlptl.data.generate import GenerationSpec
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

WORK = Path(__file__).resolve().parents[1] / "work"  # bench/work: the benchmarks' stores and caches
STORE = WORK / "study-costs"
# The SW-Si model of bench/transfer_vs_scratch.py: pretraining is not what this measures.
PRETRAINED = WORK / "transfer_vs_scratch" / "si-pretrain" / "model.nequip.zip"
# bench/_common.py's ge_data_spec(): SW Ge, 64-atom cells at 300 and 900 K, 50 frames each, cached there.
GE_DATA = GenerationSpec(element="Ge", temperatures=(300.0, 900.0), frames_per_temperature=50, supercell=2,
                         equilibration_steps=200, interval_steps=20, friction=0.02, seed=0)


def costs_study(pruner: str) -> Study:
    return Study(
        name=f"costs-{pruner}",
        description=f"bench/study_costs.py, pruner {pruner}",
        source_element="Si",
        target_element="Ge",
        pretraining=Pretraining(pretrained=str(PRETRAINED)),
        target_data=DataSource(path=str(WORK / "data" / GE_DATA.filename())),
        train_sizes=(50,),
        search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1, 2)),
        trials_per_cell=6,
        seeds=(0,),
        max_epochs=20,
        sampler_seed=0,
        pruner=PrunerSpec(kind=pruner, n_startup_trials=2, n_warmup_steps=5),
        evaluation=EvaluationSpec(stability_temperatures=(), properties=False),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=1),
        val_size=10,
        test_size=30,
        storage=str(STORE / pruner),
    )


STUDY = costs_study("none")
MEDIAN = costs_study("median")

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
