"""The study whose search bench/pruners.py records and replays: SW Si -> Ge at 10 Ge frames, 16 trials per
cell of 30 epochs, TPE with the default search space (lr 5e-4..2e-2, freeze depth 0-2 for transfer).

bench/pruners.py does not run this study: it asks the study's own sampler (``make_sampler``, seeded per
cell from ``sampler_seed``) for the configurations, trains each unpruned and replays the learning curves
through Optuna's pruners; ``STUDY`` is sampler seed 0, and the benchmark uses seeds 0, 1, 2
(``name=f"pruners-s{seed}"``). Its data (the 'tiny' SW presets with 20 Ge and 30 Si frames per
temperature) and Si source model are made by bench/pruners.py under bench/work/pruners/, after which
``mlptl run bench/studies/pruners.py`` runs the same search as a real, pruned study.
"""

from pathlib import Path

from mlptl import main
from mlptl.data.generate import preset
from mlptl.study import DataSource, Pretraining, Study

WORK = Path(__file__).resolve().parents[1] / "work" / "pruners"
GE_DATA = preset("tiny", "Ge", reference="sw", frames_per_temperature=20)  # 40 frames: 20 test, 10 val, 10 train
SI_DATA = preset("tiny", "Si", reference="sw", frames_per_temperature=30)  # 60 frames for the source model
SOURCE_MODEL = WORK / "si-pretrain" / "model.nequip.zip"

STUDY = Study(
    name="pruners-s0",
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(pretrained=str(SOURCE_MODEL)),
    target_data=DataSource(path=str(WORK / "data" / GE_DATA.filename())),
    train_sizes=(10,),
    inits=("scratch", "transfer"),
    trials_per_cell=16,
    seeds=(0,),
    max_epochs=30,
    sampler="tpe",
    sampler_seed=0,
    val_size=10,
    test_size=20,
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
