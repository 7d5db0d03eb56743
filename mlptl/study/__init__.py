"""Studies: definitions (dataclasses), per-cell Optuna search and pruning under Ray Tune, the runner.

A study file builds a :class:`Study` from these dataclasses (its generated data from a
:class:`GenerationSpec` for one element or a :class:`MixtureSpec` for alloys and compounds) and runs it
with ``mlptl.main(STUDY)``;
:func:`run_study` (the phases, without the report) and :func:`load_study` are here for programs that
drive studies themselves.
"""

from mlptl.data.generate import GenerationSpec
from mlptl.data.mixtures import MixtureSpec
from mlptl.lazy import lazy_names
from mlptl.study.spec import (
    Cell,
    DataSource,
    EvaluationSpec,
    Pretraining,
    PrunerSpec,
    Resources,
    SearchSpace,
    SearchStability,
    StoreLayout,
    Study,
    WarmStart,
)

__all__ = [
    "Cell",
    "DataSource",
    "EvaluationSpec",
    "GenerationSpec",
    "MixtureSpec",
    "Pretraining",
    "PrunerSpec",
    "Resources",
    "SearchSpace",
    "SearchStability",
    "StoreLayout",
    "Study",
    "WarmStart",
    "run_study",
    "load_study",
    "apply_overrides",
]

# The runner imports Ray and MLflow: a study file that only defines a study does not pay for them.
__getattr__ = lazy_names(__name__, {"run_study": "runner", "load_study": "load", "apply_overrides": "load"})
