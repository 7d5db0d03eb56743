"""Which element should I transfer from? Si -> Ge against C -> Ge, both against scratch.

Two source elements for one target: Si (SW, same diamond lattice, 4 % smaller) and C (Tersoff, diamond
lattice 37 % smaller, mass ratio 6). Each source is pretrained once; every transfer cell
(``Si-transfer-n4``, ``C-transfer-n4``, ...) is searched and re-trained like a single-source study, against
one shared scratch baseline, and the report ranks the sources by data-savings factor.

    mlptl run studies/source_selection.py --smoke     # minutes, on a CPU
    mlptl run studies/source_selection.py             # about half an hour on 2 CPU cores
"""

from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study


def _pretraining(element: str, reference: str) -> Pretraining:
    return Pretraining(
        data=DataSource(generate=preset("tiny", element, reference=reference, frames_per_temperature=20)),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    )


STUDY = Study(
    name="source_selection",
    description="Ge from Si (SW) or from C (Tersoff): which source saves more Ge data?",
    source_element=("Si", "C"),
    target_element="Ge",
    pretraining={"Si": _pretraining("Si", "sw"), "C": _pretraining("C", "tersoff")},
    target_data=DataSource(generate=preset("tiny", "Ge", reference="sw", frames_per_temperature=20)),
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1, 2)),
    trials_per_cell=4,
    seeds=(0, 1),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    evaluation=EvaluationSpec(stability_temperatures=(300.0,), stability_steps=200, properties=False),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
