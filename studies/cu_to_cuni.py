"""Cu -> CuNi on EMT data: extend a one-element Cu model to the Cu-Ni alloy (a new element added).

The step beyond the paper that users of every MLP package ask for: a potential for a chemistry started from
a model that lacks one of its elements. ASE's effective-medium theory labels pure Cu (the source) and random
fcc Cu-Ni alloys across the composition range (the target: 32-atom cells by Langevin MD at 300 and 700 K).
Transfer keeps Cu's embedding rows and starts Ni's as a copy of Cu's, the mean of the source's rows (the
same, for a one-element source) or random, a choice the search makes like the freeze depth; each element's
energy shift and scale are re-fitted to the alloy data. Every final transfer replicate is also scored on the
source's own pure-Cu test frames against the source model (forgetting), and the report gives the savings
factor with its CI and the forgetting ratio.

    mlptl run studies/cu_to_cuni.py            # or: python studies/cu_to_cuni.py [--smoke]
"""

from mlptl import main
from mlptl.data.generate import preset
from mlptl.data.mixtures import MixtureSpec
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name="cu_to_cuni",
    description="Cu -> CuNi on EMT data: extend a one-element model to a binary alloy.",
    source_element="Cu",
    target_element="Cu,Ni",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Cu", reference="emt", frames_per_temperature=20)),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    ),
    target_data=DataSource(generate=MixtureSpec(
        reference="emt",
        compositions=("Cu0.75Ni0.25", "Cu0.5Ni0.5", "Cu0.25Ni0.75", "Ni"),
        temperatures=(300.0, 700.0),
        frames_per_condition=6,
        supercell=2,
    )),
    target_reference="emt",
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1), new_element_init=("copy", "random")),
    trials_per_cell=4,
    seeds=(0, 1, 2),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    # MD stability from EMT's random Cu0.5Ni0.5 at the data's top temperature, the RDF criterion on the total and
    # each pair's partial RDF (1000 steps: 0.5 ps equilibration, then one 0.5 ps window); properties: mixing
    # energy and lattice constant against the reference
    evaluation=EvaluationSpec(stability_temperatures=(700.0,), stability_steps=1000, properties=True),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
