"""C -> Si on Tersoff data: transfer down group 14, from diamond to silicon with one potential family.

Tersoff's 1989 Si-C parameterisation (matscipy) labels both elements, so the functional form is shared
and only its parameters differ: the diamond lattice is the same, but Si's bonds are 52 % longer (a0 5.432
against 3.566 A) and its cohesive energy 37 % lower (4.63 against 7.37 eV), the hardest of the pairs for
transfer. 64-atom diamond cells at 300/900 K for both (neither melts anywhere near: Tersoff Si at about
2550 K, diamond far above); stability checked with Tersoff Si as the reference. C and Si have several
references each, so the study names its own.

    mlptl run studies/c_to_si.py             # or: python studies/c_to_si.py [--smoke]
"""

from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name="c_to_si",
    description="C -> Si transfer on Tersoff data: one potential family, 52 % lattice mismatch.",
    source_element="C",
    target_element="Si",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "C", reference="tersoff", frames_per_temperature=20)),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    ),
    target_data=DataSource(generate=preset("tiny", "Si", reference="tersoff", frames_per_temperature=20)),
    target_reference="tersoff",
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1, 2)),
    trials_per_cell=4,
    seeds=(0, 1),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    evaluation=EvaluationSpec(stability_temperatures=(300.0, 900.0), stability_steps=200, properties=False),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
