"""Learning curves of scratch against transfer for four element pairs: one mlptl study per pair.

Does transfer help less when source and target are less alike? Every pair is sized alike, so the pairs
differ only in the elements and their reference potential family: tiny Allegro model, target training
sizes 4, 16 and 64 frames, the learning rate searched per cell over one range for both inits (transfer
fine-tunes every weight; freezing is bench/freeze_depth.py's subject), each cell's best re-trained as 5
replicates, replicate r on its own nested training subset r with weight seed r (shared by scratch and
transfer). Pairs, each on one reference potential family:

- ``si_ge``: Si -> Ge, Stillinger-Weber (the paper's pair), diamond, 4 % lattice mismatch;
- ``ni_cu``: Ni -> Cu, EMT, fcc, 3 %;
- ``cu_ag``: Cu -> Ag, EMT, fcc, 13 %;
- ``c_si``: C -> Si, Tersoff 1989, diamond, 52 %.

``STUDIES`` holds the four; ``STUDY`` (what ``mlptl run`` runs) is Si -> Ge, and a pair's key as the
first argument picks another:

    mlptl run bench/studies/pairs_learning_curve.py                 # Si -> Ge
    python bench/studies/pairs_learning_curve.py ni_cu [--resume]    # any pair, with mlptl's overrides
    python bench/pairs_learning_curve.py                             # all four, then bench/results/pairs_*

Stores: bench/work/pairs-learning-curve/pairs-<key>/ (git-ignored).
"""

import sys
from pathlib import Path

from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

WORK = Path(__file__).resolve().parents[1] / "work" / "pairs-learning-curve"
#: key -> (source, target, reference potential family)
PAIRS = {
    "si_ge": ("Si", "Ge", "sw"),
    "ni_cu": ("Ni", "Cu", "emt"),
    "cu_ag": ("Cu", "Ag", "emt"),
    "c_si": ("C", "Si", "tersoff"),
}


def pair_study(key: str) -> Study:
    source, target, reference = PAIRS[key]

    def data(element: str, per_t: int):
        # The 'tiny' preset's cells and temperatures (32-atom fcc or 64-atom diamond cells at the same
        # fractions of each element's melting point as SW Si's 300/900 K), with frames 20 fs apart after
        # 100 fs of equilibration rather than 10 fs after 20, so that more frames are more information.
        return preset("tiny", element, reference=reference, frames_per_temperature=per_t,
                      interval_steps=20, equilibration_steps=100)

    name = f"pairs-{key}"
    return Study(
        name=name,
        description=f"bench/pairs_learning_curve.py: {source} -> {target} ({reference}) learning curve, "
                    "scratch vs transfer.",
        source_element=source,
        target_element=target,
        pretraining=Pretraining(
            data=DataSource(generate=data(source, 30)),
            model="tiny", max_epochs=20, lr=5e-3, val_size=6, test_size=6,
        ),
        target_data=DataSource(generate=data(target, 60)),
        target_reference=reference,
        train_sizes=(4, 16, 64),
        # One lr range for both inits, so that neither gets a head start from its prior.
        search={
            "scratch": SearchSpace(lr=(1e-3, 2e-2), batch_size=(2,)),
            "transfer": SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0,), batch_size=(2,)),
        },
        trials_per_cell=3,
        seeds=(0, 1, 2, 3, 4),
        max_epochs=12,
        sampler_seed=0,
        pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=3),
        # No MD: set stability_temperatures (e.g. (300.0,)) and stability_steps (e.g. 600) to add it.
        evaluation=EvaluationSpec(stability_temperatures=(), stability_steps=1, properties=False),
        resources=Resources(cpus_per_trial=1, max_concurrent_trials=2),
        val_size=8,
        test_size=16,
        storage=str(WORK / name),
    )


STUDIES = {key: pair_study(key) for key in PAIRS}
STUDY = STUDIES["si_ge"]

if __name__ == "__main__":
    key = sys.argv.pop(1) if len(sys.argv) > 1 and sys.argv[1] in STUDIES else "si_ge"
    raise SystemExit(main(STUDIES[key]))
