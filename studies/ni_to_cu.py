"""Ni -> Cu on EMT data: transfer between two fcc metals of nearly one lattice (3 % mismatch, mass ratio 1.08).

The pair the Si -> Ge quick start's shape carries over to metals: ASE's effective-medium theory labels both
elements (Jacobsen, Stoltze & Norskov 1996), 32-atom fcc cells are sampled by Langevin MD at the same
fractions of each metal's melting point as the SW silicon presets (Ni at 300/900 K, Cu, which melts lower,
at 241/723 K; see mlptl.data.generate.scaled_temperatures). The rest is the quick start's: two Cu training
sizes, scratch against transfer, lr (and freeze depth) searched with median pruning, the best of each cell
re-trained as two replicates (each on its own draw of the data) and checked for MD stability with EMT Cu
as the reference.

    mlptl run studies/ni_to_cu.py            # or: python studies/ni_to_cu.py [--smoke]
"""

from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name="ni_to_cu",
    description="Ni -> Cu transfer on EMT data: two fcc metals, 3 % lattice mismatch.",
    source_element="Ni",
    target_element="Cu",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Ni", reference="emt", frames_per_temperature=20)),
        model="tiny",
        max_epochs=15,
        lr=5e-3,
        val_size=6,
        test_size=6,
    ),
    target_data=DataSource(generate=preset("tiny", "Cu", reference="emt", frames_per_temperature=20)),
    target_reference="emt",
    train_sizes=(4, 16),
    search=SearchSpace(lr=(1e-3, 2e-2), freeze_depth=(0, 1, 2)),
    trials_per_cell=4,
    seeds=(0, 1),
    max_epochs=8,
    pruner=PrunerSpec(kind="median", n_startup_trials=2, n_warmup_steps=2),
    # Cu melts at 1358 K: 700 K is about the data's hotter temperature (723 K), well below melting.
    evaluation=EvaluationSpec(stability_temperatures=(300.0, 700.0), stability_steps=200, properties=False),
    resources=Resources(cpus_per_trial=1),
    val_size=6,
    test_size=12,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
