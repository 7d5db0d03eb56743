"""One table per set of allowed values: a value added to a table is accepted by the specs' own checks and
study validation, and offered by the command line, with no other change; a value not in it is refused."""

from __future__ import annotations

import argparse
from dataclasses import replace

import optuna
import pytest
from _studies import tiny_study

from mlptl.errors import InputError
from mlptl.study import PrunerSpec, SearchSpace, WarmStart
from mlptl.study.pruners import PRUNERS, make_pruner
from mlptl.study.samplers import SAMPLERS
from mlptl.study.search import CellStudies, make_sampler
from mlptl.train.schedules import LR_SCHEDULES, lr_scheduler_config
from mlptl.train.spec import TrainSpec


def _cli_help(capsys, argv: list[str]) -> str:
    """What ``mlptl ARGV --help`` prints."""
    from mlptl.cli import build_parser

    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return capsys.readouterr().out


def test_a_pruner_added_to_the_table_is_accepted_and_offered(tmp_path, monkeypatch, capsys):
    with pytest.raises(InputError, match="study field pruner.kind: 'dummy' is not one of"):
        PrunerSpec(kind="dummy")
    monkeypatch.setitem(PRUNERS, "dummy", lambda spec, opts: optuna.pruners.NopPruner())
    spec = PrunerSpec(kind="dummy")
    assert isinstance(make_pruner(spec), optuna.pruners.NopPruner)
    replace(tiny_study(tmp_path), pruner=spec).validate(check_data=False)
    assert "dummy" in _cli_help(capsys, ["run", "x.py"])
    from mlptl.study.load import add_override_arguments, apply_overrides

    p = argparse.ArgumentParser()
    add_override_arguments(p)
    assert apply_overrides(tiny_study(tmp_path), p.parse_args(["--pruner", "dummy"])).pruner.kind == "dummy"
    with pytest.raises(SystemExit):
        p.parse_args(["--pruner", "nope"])


def test_a_sampler_added_to_the_table_is_accepted_and_offered(tmp_path, monkeypatch, capsys):
    with pytest.raises(InputError, match="study field sampler"):
        replace(tiny_study(tmp_path), sampler="dummy")
    monkeypatch.setitem(SAMPLERS, "dummy", lambda seed, n_startup_trials, constraints_func: optuna.samplers.RandomSampler(seed))
    study = replace(tiny_study(tmp_path), sampler="dummy")
    study.validate(check_data=False)
    assert isinstance(make_sampler(study, 0), optuna.samplers.RandomSampler)
    assert "dummy" in _cli_help(capsys, ["run", "x.py"])
    from mlptl.study.load import add_override_arguments, apply_overrides

    p = argparse.ArgumentParser()
    add_override_arguments(p)
    assert apply_overrides(tiny_study(tmp_path), p.parse_args(["--sampler", "dummy"])).sampler == "dummy"


def test_a_schedule_added_to_the_table_is_accepted_and_offered(tmp_path, monkeypatch, capsys):
    with pytest.raises(InputError, match="lr schedule 'dummy' unknown"):
        TrainSpec(element="Ge", data="x", out="y", lr_schedule="dummy")
    with pytest.raises(InputError, match="study field search.lr_schedule"):
        SearchSpace(lr_schedule=("dummy",))
    monkeypatch.setitem(LR_SCHEDULES, "dummy", lambda max_epochs: None)
    assert TrainSpec(element="Ge", data="x", out="y", lr_schedule="dummy").lr_schedule == "dummy"
    assert lr_scheduler_config("dummy", 5) is None
    study = replace(tiny_study(tmp_path), search=SearchSpace(lr_schedule=("dummy", "plateau"), freeze_depth=(0,)))
    study.validate(check_data=False)
    assert "dummy" in _cli_help(capsys, ["train"])


def test_a_one_choice_search_space_sets_the_training_field(tmp_path):
    """A hyperparameter with one choice is not searched, but its value is the trials' (not a default)."""
    study = replace(tiny_study(tmp_path), search=SearchSpace(lr_schedule=("cosine",), batch_size=(2,), freeze_depth=(1,)))
    cell = study.cells()[-1]
    assert cell.init == "transfer"
    spec = study.train_spec(cell, {"lr": 1e-3}, 0, data=tmp_path / "d", test_data=None, pretrained=tmp_path / "m",
                            out=tmp_path / "o")
    assert (spec.lr_schedule, spec.batch_size, spec.freeze_depth, spec.lr) == ("cosine", 2, 1, 1e-3)


def test_a_warm_start_storage_written_with_a_variable_works(tmp_path, monkeypatch):
    """``$VAR/...`` is expanded by the one path helper wherever the storage is read (validation and search)."""
    old = replace(tiny_study(tmp_path / "old"), name="old", inits=("scratch",), train_sizes=(4,), trials_per_cell=2)
    db = tmp_path / "old" / "optuna.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    cells = CellStudies(old, f"sqlite:///{db}", make_job=lambda cell, key, params: params)
    cells.plan()
    for i in range(2):
        params = cells.next_job(f"r{i}")
        cells.complete(f"r{i}", {"best_val_forces_mae": params["lr"]}, False)
    monkeypatch.setenv("MLPTL_TEST_WS", str(tmp_path))
    new = replace(old, name="new", warm_start=WarmStart(storage="$MLPTL_TEST_WS/old", study="old"))
    new.validate(check_data=False)
    fresh = CellStudies(new, f"sqlite:///{tmp_path / 'new.db'}", make_job=lambda cell, key, params, **kw: params)
    assert fresh.warm_started == 2


def test_a_model_preset_added_to_the_table_is_accepted_and_offered(tmp_path, monkeypatch, capsys):
    from mlptl.model.spec import MODEL_PRESETS, ModelSpec

    with pytest.raises(InputError, match="unknown model size preset 'dummy'"):
        TrainSpec(element="Ge", data="x", out="y", model="dummy")
    monkeypatch.setitem(MODEL_PRESETS, "dummy", ModelSpec(num_layers=1))
    assert TrainSpec(element="Ge", data="x", out="y", model="dummy").model_spec().num_layers == 1
    replace(tiny_study(tmp_path), model="dummy").validate(check_data=False)
    assert "dummy" in _cli_help(capsys, ["train"])


def test_a_thermostat_and_a_criterion_are_offered_from_their_tables(capsys):
    """The stability command's choices and help come from the protocol's tables and defaults."""
    from mlptl.evaluate.md import THERMOSTATS
    from mlptl.evaluate.monitor import CRITERIA
    from mlptl.evaluate.stability_config import StabilityConfig

    text = " ".join(_cli_help(capsys, ["evaluate", "stability", "m", "--element", "Ge"]).split())
    assert all(t in text for t in THERMOSTATS) and ",".join(CRITERIA) in text
    assert f"(default {StabilityConfig().steps})" in text and f"(default {StabilityConfig().replicas})" in text
