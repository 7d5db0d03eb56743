"""AuCuNi -> CuAu on EMT data: subset mode, a three-element model (a foundation model in miniature) narrowed.

The source knows more elements than the target needs, as a foundation model does: a small Allegro model
trained on random fcc Au-Cu-Ni alloys stands in for one. The target keeps Au and Cu, each starting from its
own rows (Ni's are dropped), and is trained on the ordered Cu-Au compounds (Cu3Au, L1_2; CuAu, L1_0) and a
random Cu0.5Au0.5 alloy, all labelled by ASE's EMT at 300 and 700 K.

    mlptl run studies/aucuni_to_cuau.py        # or: python studies/aucuni_to_cuau.py [--smoke]
"""

from mlptl import main
from mlptl.study import (
    DataSource,
    EvaluationSpec,
    MixtureSpec,
    Pretraining,
    PrunerSpec,
    Resources,
    SearchSpace,
    Study,
)

STUDY = Study(
    name="aucuni_to_cuau",
    description="AuCuNi -> CuAu on EMT data: subset mode, a three-element source narrowed to two.",
    source_element="Au,Cu,Ni",
    target_element="Au,Cu",
    pretraining=Pretraining(
        data=DataSource(generate=MixtureSpec(
            reference="emt",
            compositions=("Au0.25Cu0.5Ni0.25", "Au0.5Cu0.25Ni0.25", "Au0.25Cu0.25Ni0.5", "Cu0.5Ni0.5"),
            temperatures=(300.0, 700.0), frames_per_condition=6, supercell=2,
        )),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    ),
    target_data=DataSource(generate=MixtureSpec(
        reference="emt", compositions=("Au0.5Cu0.5",), compounds=("Cu3Au", "CuAu"),
        temperatures=(300.0, 700.0), frames_per_condition=7, supercell=2,
    )),
    target_reference="emt",
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1)),
    trials_per_cell=4,
    seeds=(0, 1, 2),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    # MD stability (stability_temperatures, from a random alloy) is left off here for cost; properties: mixing energy
    # and lattice constant against the reference
    evaluation=EvaluationSpec(stability_temperatures=(), properties=True),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
