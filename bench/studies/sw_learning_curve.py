"""The paper's classical-force-field experiment as an mlptl study: Si -> Ge on Stillinger-Weber data.

Röcken & Zavadlav's three findings, checked on mlptl's own study pipeline and sized for a 2-core CPU:
transfer beats scratch in test force MAE, more so at small Ge training sizes; transfer gives more stable
MD; transfer transfers better in temperature (trained on 300 K and 600 K frames only, tested, forces and
MD, at 900 K and 1200 K as well). The learning rate is tuned per cell (3 Optuna TPE trials, median
pruner); each cell's best is re-trained as 5 replicates, replicate r on its own nested training subset r
with weight seed r, shared by scratch and transfer, so the report's CIs and paired tests are uncertainty
over training data.

    mlptl run bench/studies/sw_learning_curve.py        # the study and its report (45 min on 2 cores)
    python bench/sw_learning_curve.py                   # the same, then bench/results/sw_learning_curve_r5.*

The store is bench/work/sw-learning-curve-r5/ (git-ignored). The full-scale version is studies/sw_si_to_ge.py.
"""

from pathlib import Path

from mlptl import main
from mlptl.data.generate import GenerationSpec
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

NAME = "sw-learning-curve-r5"
WORK = Path(__file__).resolve().parents[1] / "work"  # bench/work: the benchmarks' stores and caches
TRAIN_T = (300.0, 600.0)  # Ge training and validation frames
HELD_OUT_T = (900.0, 1200.0)  # temperatures no Ge model sees in training


def sw(element: str, temps: tuple[float, ...], per_t: int) -> GenerationSpec:
    # 64-atom diamond cells, frames 20 fs apart after 200 fs of equilibration (as bench/_common.py).
    return GenerationSpec(
        element=element, reference="sw", temperatures=temps, frames_per_temperature=per_t, supercell=2,
        equilibration_steps=200, interval_steps=20, friction=0.02, seed=0,
    )


STUDY = Study(
    name=NAME,
    description="bench/sw_learning_curve.py: Si -> Ge learning curve on SW data, lr tuned per cell.",
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(
        data=DataSource(generate=sw("Si", (300.0, 900.0), 60)),
        model="tiny", max_epochs=30, lr=5e-3, val_size=10, test_size=10,
    ),
    # Test frames are drawn from all four temperatures (10 each); training and validation frames from
    # 300 K and 600 K only, so 900 K and 1200 K are temperatures the models never saw.
    target_data=DataSource(generate=sw("Ge", TRAIN_T + HELD_OUT_T, 80)),
    train_groups=tuple(f"T{int(t)}" for t in TRAIN_T),
    test_size=10 * len(TRAIN_T + HELD_OUT_T),
    val_size=10,
    train_sizes=(5, 10, 25, 50, 100),
    search={
        "scratch": SearchSpace(lr=(1e-3, 3e-2)),
        # Freeze depth is its own benchmark (bench/freeze_depth.py); here transfer fine-tunes everything.
        "transfer": SearchSpace(lr=(3e-4, 1e-2), freeze_depth=(0,)),
    },
    trials_per_cell=3,
    seeds=(0, 1, 2, 3, 4),
    max_epochs=15,
    sampler_seed=0,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=5),
    evaluation=EvaluationSpec(
        stability_temperatures=(300.0, *HELD_OUT_T), stability_steps=600, stability_replicas=1, properties=False,
    ),
    resources=Resources(cpus_per_trial=1, max_concurrent_trials=2),
    storage=str(WORK / NAME),
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
