"""Shared fixtures: where the external mlearn data lives, and one tiny generated data set per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def mlearn_dir() -> Path:
    """The read-only mlearn DFT data (never copied into the repo); tests using it skip without it."""
    env = os.environ.get("MLPTL_MLEARN_DIR")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "mlearn"
    if not path.is_dir():
        pytest.skip(f"mlearn data not found at {path} (set MLPTL_MLEARN_DIR)")
    return path


@pytest.fixture(scope="session")
def tiny_ge(tmp_path_factory) -> Path:
    """The 'tiny' preset for Ge, generated once per session into a private cache (a few seconds)."""
    from mlptl.data.generate import generate, preset

    return generate(preset("tiny", "Ge", reference="sw"), tmp_path_factory.mktemp("cache"), progress=False)


E2E_SEARCH = (
    '{"scratch": SearchSpace(lr=(1e-5, 3e-2)), '
    '"transfer": SearchSpace(lr=(1e4, 1e5), freeze_depth=(0,))}'  # lr 1e4: every transfer trial diverges
)


@pytest.fixture(scope="session")
def e2e_study(tmp_path_factory):
    """One real tiny study (Ray Tune, Optuna, nequip, MLflow), shared by the study and browser tests."""
    from dataclasses import replace

    from _studies import tiny_study

    from mlptl import run
    from mlptl.study import SearchStability

    study = tiny_study(tmp_path_factory.mktemp("e2e"), name="e2e", trials=4, epochs=4, search=E2E_SEARCH)
    # the search's MD check on: every finished search trial runs 40 MD steps, the report shows the constraint
    return run(replace(study, search_stability=SearchStability(steps=40)))
