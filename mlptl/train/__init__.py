"""One training run: a :class:`TrainSpec` in, a packaged model, its validation history and test split out.

This is the function every study trial calls. It runs in-process through nequip's own Lightning machinery
(the same data module, training module and trainer ``nequip-train`` builds), reports after every epoch to a
callback that may stop the run, and checkpoints every epoch so that an interrupted run continues. Ray,
Optuna, MLflow and mlptl's evaluation wrap it from outside; none of them is imported here.

``spec`` (what a run is), ``config`` (the nequip config it becomes), ``prepare`` (data and model before the
first epoch), ``history`` (the per-epoch callback and history.csv), ``loop`` (the fit and the package).
"""

from mlptl.lazy import lazy_names
from mlptl.train.prepare import Prepared, prepare, prepare_data
from mlptl.train.schedules import LR_SCHEDULES
from mlptl.train.spec import (
    HISTORY_FILE,
    INITS,
    METRICS_FILE,
    MODEL_FILE,
    EpochReport,
    TrainingDiverged,
    TrainResult,
    TrainSpec,
)

__all__ = [
    "TrainSpec",
    "TrainResult",
    "EpochReport",
    "TrainingDiverged",
    "Prepared",
    "train",
    "prepare",
    "prepare_data",
    "package",
    "LR_SCHEDULES",
    "INITS",
    "MODEL_FILE",
    "METRICS_FILE",
    "HISTORY_FILE",
]

# The fit imports torch and nequip: a study's driver, which reads train specs, loads it only where it
# trains (PEP 562, as mlptl.study does for its runner).
__getattr__ = lazy_names(__name__, {"train": "loop", "package": "loop"})
