"""Tiny study definitions shared by the study, browser and cluster tests."""

from __future__ import annotations

from mlptl.study import Study

STUDY_SOURCE = """
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name={name!r},
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Si", reference="sw", frames_per_temperature=10)),
        max_epochs=3, lr=5e-3, val_size=4, test_size=4,
    ),
    target_data=DataSource(generate=preset("tiny", "Ge", reference="sw", frames_per_temperature=12)),
    train_sizes=(4, 10),
    search={search},
    trials_per_cell={trials},
    seeds=(0,),
    max_epochs={epochs},
    pruner=PrunerSpec(kind="median", n_startup_trials=1, n_warmup_steps=1),
    evaluation=EvaluationSpec(stability_temperatures=(300.0,), stability_steps=40, properties=False),
    resources=Resources(cpus_per_trial=1, max_failures=0),
    val_size=4,
    test_size=6,
    storage={storage!r},
)
"""


def tiny_study(tmp_path, name="t", trials=3, epochs=3, search="SearchSpace(lr=(1e-5, 3e-2), freeze_depth=(0, 1))") -> Study:
    ns: dict = {}
    exec(STUDY_SOURCE.format(name=name, search=search, trials=trials, epochs=epochs, storage=str(tmp_path / "store")), ns)
    return ns["STUDY"]


# A one-cell scratch study (no source model is trained), for the fault tests: they break its surroundings
# (the tracking server, the disk), so the study itself is as small as a study gets.
SCRATCH_STUDY = """
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study

STUDY = Study(
    name={name!r},
    source_element="Si",
    target_element="Ge",
    inits=("scratch",),
    pretraining=Pretraining(data=DataSource(generate=preset("tiny", "Si", reference="sw"))),
    target_data=DataSource(generate=preset("tiny", "Ge", reference="sw", frames_per_temperature=10)),
    train_sizes=(4,),
    search=SearchSpace(lr=(3e-3, 1e-2)),
    trials_per_cell={trials},
    seeds=(0,),
    max_epochs={epochs},
    pruner=PrunerSpec(kind="none"),
    evaluation=EvaluationSpec(stability_temperatures=(), properties=False),
    resources=Resources(cpus_per_trial=1, max_failures=0),  # no Ray retry: what a fault leaves is what is seen
    val_size=4,
    test_size=4,
)
"""
