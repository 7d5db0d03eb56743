"""CuPt -> CuAu on EMT data: map a binary-alloy model onto another compound, Au starting from Pt.

Map mode, the compound analogue of the paper's Si -> Ge: every target element starts from one source
element (``element_map={"Au": "Pt"}``: Au from its left-hand neighbour Pt; Cu from Cu). The source is
trained on random fcc Cu-Pt alloys, the target on the ordered Cu-Au compounds (Cu3Au, L1_2; CuAu, L1_0) and
a random Cu0.5Au0.5 alloy, all labelled by ASE's EMT at 300 and 700 K. Each element's energy shift and
scale are re-fitted to the target data.

    mlptl run studies/cupt_to_cuau.py          # or: python studies/cupt_to_cuau.py [--smoke]
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
    name="cupt_to_cuau",
    description="CuPt -> CuAu on EMT data: map mode, Au from Pt, onto ordered compounds.",
    source_element="Cu,Pt",
    target_element="Au,Cu",
    element_map={"Au": "Pt"},
    pretraining=Pretraining(
        data=DataSource(generate=MixtureSpec(
            reference="emt", compositions=("Cu0.75Pt0.25", "Cu0.5Pt0.5", "Cu0.25Pt0.75"),
            temperatures=(300.0, 700.0), frames_per_condition=8, supercell=2,
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
