"""Cu -> Ag on EMT data: transfer between fcc metals of quite different size (13 % lattice mismatch).

The less similar metal pair beside Ni -> Cu (3 %): same lattice and bonding model (ASE's EMT), but Ag's
nearest-neighbour distance is 13 % longer and its atoms 1.7 times heavier, so whether the Cu model's
radial features still help is the question. Cells and temperatures as in studies/ni_to_cu.py: 32-atom fcc
cells at the same fractions of each metal's melting point as the SW silicon presets (Cu 241/723 K, Ag
219/657 K); stability checked with EMT Ag as the reference.

    mlptl run studies/cu_to_ag.py            # or: python studies/cu_to_ag.py [--smoke]
"""

from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name="cu_to_ag",
    description="Cu -> Ag transfer on EMT data: two fcc metals, 13 % lattice mismatch.",
    source_element="Cu",
    target_element="Ag",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Cu", reference="emt", frames_per_temperature=20)),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    ),
    target_data=DataSource(generate=preset("tiny", "Ag", reference="emt", frames_per_temperature=20)),
    target_reference="emt",
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1, 2)),
    trials_per_cell=4,
    seeds=(0, 1),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    # Ag melts at 1235 K: 650 K is about the data's hotter temperature (657 K).
    evaluation=EvaluationSpec(stability_temperatures=(300.0, 650.0), stability_steps=200, properties=False),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
