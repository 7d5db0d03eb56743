"""Studies: definitions (dataclasses), per-cell Optuna search and pruning under Ray Tune, the runner."""

from mlptl.study.spec import (
    Cell,
    DataSource,
    EvaluationSpec,
    Pretraining,
    PrunerSpec,
    Resources,
    SearchSpace,
    SearchStability,
    Study,
    WarmStart,
)

__all__ = [
    "Cell",
    "DataSource",
    "EvaluationSpec",
    "Pretraining",
    "PrunerSpec",
    "Resources",
    "SearchSpace",
    "SearchStability",
    "Study",
    "WarmStart",
]
