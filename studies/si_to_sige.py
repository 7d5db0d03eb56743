"""Si -> SiGe on Tersoff data: extend a one-element Si model to the Si-Ge alloy with Tersoff's 1989 potential.

Tersoff's multicomponent Si-Ge-C parameterisation (Phys. Rev. B 39, 5566 (1989); Si-Ge mixing chi =
1.00061) labels pure Si (the source: 64-atom diamond cells) and random diamond Si-Ge alloys plus the
ordered zincblende SiGe compound (the target), by Langevin MD at 300 and 900 K. Ge starts as a copy of Si
(the paper's Si -> Ge step, now inside an alloy) or random, as the search chooses; each element's energy
shift and scale are re-fitted to the alloy data. Final transfer replicates are also scored on the source's
own pure-Si test frames against the source model (forgetting).

    mlptl run studies/si_to_sige.py            # or: python studies/si_to_sige.py [--smoke]
"""

from mlptl import main
from mlptl.data.generate import preset
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
    name="si_to_sige",
    description="Si -> SiGe on Tersoff 1989 data: extend a one-element model to a binary alloy.",
    source_element="Si",
    target_element="Si,Ge",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Si", reference="tersoff", frames_per_temperature=20)),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    ),
    target_data=DataSource(generate=MixtureSpec(
        reference="tersoff",
        compositions=("Ge0.25Si0.75", "Ge0.5Si0.5", "Ge0.75Si0.25"),
        compounds=("SiGe",),
        temperatures=(300.0, 900.0),
        frames_per_condition=5,
        supercell=2,
    )),
    target_reference="tersoff",
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1), new_element_init=("copy", "random")),
    trials_per_cell=4,
    seeds=(0, 1, 2),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    # MD stability (stability_temperatures) would run from a random Ge0.5Si0.5, left off here for cost; properties:
    # mixing energy and lattice constant against the reference
    evaluation=EvaluationSpec(stability_temperatures=(), properties=True),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
