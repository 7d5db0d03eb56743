"""Real nequip training at tiny sizes: transfer, freezing, stopping, resuming, bad input."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from mlptl.cli import main
from mlptl.data.readers import read_frames
from mlptl.errors import InputError
from mlptl.evaluate.forces import evaluate_test_set
from mlptl.model.spec import ModelSpec
from mlptl.model.transfer import REFIT_PREFIXES, _local_name, load_source
from mlptl.train import TrainResult, TrainSpec, prepare, train


@pytest.fixture(scope="session")
def ge_data(tmp_path_factory):
    from mlptl.data.generate import generate, preset

    return generate(preset("tiny", "Ge", reference="sw", frames_per_temperature=12), tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="session")
def si_model(tmp_path_factory):
    from mlptl.data.generate import generate, preset

    data = generate(preset("tiny", "Si", reference="sw", frames_per_temperature=12), tmp_path_factory.mktemp("cache"), progress=False)
    out = tmp_path_factory.mktemp("si")
    spec = TrainSpec(element="Si", data=str(data), out=str(out), max_epochs=2, train_size=12, val_size=4, test_size=6, lr=5e-3)
    return train(spec).model_path


def _spec(tmp_path, ge_data, si_model, **kw) -> TrainSpec:
    base = dict(
        element="Ge",
        data=str(ge_data),
        out=str(tmp_path / "ge"),
        init="transfer",
        pretrained=str(si_model),
        max_epochs=1,
        train_size=8,
        val_size=4,
        test_size=6,
        lr=5e-3,
    )
    base.update(kw)
    return TrainSpec(**base)


def test_transfer_copies_every_weight_but_the_refitted_energy_scale(tmp_path, ge_data, si_model):
    prepared = prepare(_spec(tmp_path, ge_data, si_model))
    source = load_source(si_model)
    src = {_local_name(k): v for k, v in source.state_dict.items()}
    target = {_local_name(k): v for k, v in prepared.graph_model.state_dict().items()}
    assert target.keys() == src.keys()
    compared = 0
    for name, value in src.items():
        if name.startswith(REFIT_PREFIXES):
            continue
        assert torch.equal(target[name], value), name
        compared += 1
    assert compared >= 15  # every weight of the tiny model
    # the shift is re-fitted to Ge (SW Ge sits ~0.47 eV/atom above SW Si)
    shift = "per_type_energy_scale_shift.shifts"
    assert float(target[shift]) - float(src[shift]) > 0.3
    assert prepared.model_spec.num_layers == source.num_layers


def test_freezing_keeps_frozen_weights_bit_identical(tmp_path, ge_data, si_model):
    spec = _spec(tmp_path, ge_data, si_model, freeze_depth=2, max_epochs=2)
    result = train(spec)
    source = {_local_name(k): v for k, v in load_source(si_model).state_dict.items()}
    trained = {_local_name(k): v for k, v in load_source(result.model_path).state_dict.items()}
    frozen = {_local_name(n) for n in result.frozen}
    assert any(n.startswith("radial_chemical_embed.") for n in frozen)
    assert any(n.startswith("allegro.latents.0.") for n in frozen)
    assert not any(n.startswith(("allegro.latents.1.", "edge_readout.")) for n in frozen)
    for name in frozen:
        assert torch.equal(trained[name], source[name]), f"frozen {name} changed"
    trainable = [n for n in trained if n.startswith(("allegro.latents.1.", "allegro.tps.1.", "edge_readout.")) and n.endswith(("weight", "weights"))]
    assert trainable
    for name in trainable:
        assert not torch.equal(trained[name], source[name]), f"trainable {name} did not change"

    metrics = json.loads((tmp_path / "ge" / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["n_train"] == 8 and metrics["n_frozen_tensors"] == len(frozen)
    assert not any(k.startswith("test_") for k in metrics)  # training does not evaluate
    assert len(pd.read_csv(tmp_path / "ge" / "history.csv")) == 2

    test = evaluate_test_set(result.model_path, result.test_path, element="Ge", out=result.out)
    assert len(read_frames(result.test_path)) == 6
    for key in ("test_forces_mae", "test_forces_rmse", "test_energy_per_atom_mae"):
        assert 0 < test[key] < 10
    assert test["test_forces_mae"] <= test["test_forces_rmse"]
    merged = json.loads((tmp_path / "ge" / "metrics.json").read_text())
    assert merged == {**test, **metrics} and list(merged)[: len(test)] == list(test)


def test_deepest_freeze_leaves_only_the_readout(tmp_path, ge_data, si_model):
    prepared = prepare(_spec(tmp_path, ge_data, si_model, freeze_depth=3))
    trainable = [_local_name(n) for n, p in prepared.graph_model.named_parameters() if p.requires_grad]
    assert trainable and all(n.startswith("edge_readout.") for n in trainable)


def test_stop_request_ends_training_after_that_epoch(tmp_path, ge_data, si_model):
    seen = []

    def on_epoch(report):
        seen.append(report.epoch)
        assert report.metrics["val_forces_mae"] > 0
        return report.epoch >= 1

    result = train(_spec(tmp_path, ge_data, si_model, max_epochs=4), on_epoch=on_epoch)
    assert seen == [1]
    assert result.epochs_run == 1 and result.stopped_early
    assert (tmp_path / "ge" / "model.nequip.zip").is_file()


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path, ge_data, si_model):
    first = train(_spec(tmp_path, ge_data, si_model, max_epochs=1, init="scratch", pretrained=None))
    assert first.epochs_run == 1
    epochs = []
    second = train(
        _spec(tmp_path, ge_data, si_model, max_epochs=2, init="scratch", pretrained=None),
        on_epoch=lambda r: epochs.append(r.epoch),
    )
    assert epochs == [2]  # epoch 1 was not redone
    assert second.epochs_run == 2
    assert list(pd.read_csv(tmp_path / "ge" / "history.csv")["epoch"]) == [1, 2]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"freeze_depth": 4}, "freeze depth 4 is beyond"),
        ({"train_size": 500}, "500"),
        ({"pretrained": None}, "needs a pretrained model"),
        ({"element": "Si"}, "expected frames of Si only"),
        ({"element": "Xx"}, "unknown element"),
        ({"init": "scratch", "pretrained": None, "model": "huge"}, "unknown model size preset"),
        ({"lr_schedule": "warp"}, "lr schedule"),
    ],
)
def test_bad_training_input_is_rejected_before_anything_is_written(tmp_path, ge_data, si_model, changes, message):
    with pytest.raises(InputError, match=message):
        train(_spec(tmp_path, ge_data, si_model, **changes))
    assert not (tmp_path / "ge").exists()


def test_cli_train_and_errors(tmp_path, ge_data, si_model, capsys):
    out = tmp_path / "cli"
    args = ["train", "--element", "Ge", "--data", str(ge_data), "--init", "transfer", "--pretrained", str(si_model)]
    args += ["--freeze-depth", "1", "--lr", "1e-3", "--max-epochs", "1", "--train-size", "8", "--val-size", "4"]
    args += ["--test-size", "6", "--seed", "0", "--out", str(out)]
    assert main(args) == 0
    for name in ("model.nequip.zip", "metrics.json", "history.csv"):
        assert (out / name).is_file()
    capsys.readouterr()
    assert main(["evaluate", "forces", str(out / "model.nequip.zip"), str(ge_data), "--json"]) == 0
    errors = json.loads(capsys.readouterr().out)
    assert 0 < errors["test_forces_mae"] <= errors["test_forces_rmse"] < 10
    assert main(args[:-2] + ["--freeze-depth", "9", "--out", str(tmp_path / "bad")]) == 2
    assert "freeze depth 9" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


# A custom architecture, smaller than any preset in every dimension that a mix-up would show.
CUSTOM = ModelSpec(
    r_max=4.0,
    num_layers=1,
    num_scalar_features=8,
    num_tensor_features=4,
    radial_chemical_embed_dim=4,
    scalar_embed_mlp_hidden_layers_width=8,
    allegro_mlp_hidden_layers_width=8,
    readout_mlp_hidden_layers_width=4,
)


@pytest.mark.parametrize("form", ["spec", "dict"])
def test_custom_model_spec_trains_as_given_whether_spec_or_dict(tmp_path, ge_data, form):
    from dataclasses import asdict

    # "dict" is what a study's ModelSpec becomes on its way to the trials (dataclasses.asdict, JSON, Ray).
    model = CUSTOM if form == "spec" else asdict(CUSTOM)
    spec = TrainSpec(element="Ge", data=str(ge_data), out=str(tmp_path / "c"), max_epochs=1, train_size=8,
                     val_size=4, test_size=6, model=model)
    assert spec.model == CUSTOM and spec.model_spec() == CUSTOM
    assert TrainSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    result = train(spec)
    assert isinstance(result, TrainResult) and result.epochs_run == 1
    cfg = load_source(result.model_path).model_config
    assert (cfg["num_layers"], cfg["num_scalar_features"], cfg["num_tensor_features"], cfg["r_max"]) == (1, 8, 4, 4.0)
    assert load_source(result.model_path).spec() == CUSTOM


def test_model_field_that_is_neither_preset_nor_spec_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown model field.*'num_layer'"):
        TrainSpec(element="Ge", data="x", out=str(tmp_path), model={"num_layer": 1})
    with pytest.raises(InputError, match="preset name, a ModelSpec or its dict"):
        TrainSpec(element="Ge", data="x", out=str(tmp_path), model=3)


def test_subset_seed_draws_other_training_frames_with_the_same_test_set(tmp_path, ge_data):
    from mlptl.train import prepare_data

    def split(seed, name):
        spec = TrainSpec(element="Ge", data=str(ge_data), out=str(tmp_path / name), train_size=4, val_size=4,
                         test_size=6, subset_seed=seed)
        paths = prepare_data(spec, tmp_path / name)
        return {k: [a.positions.tobytes() for a in read_frames(p)] for k, p in paths.items()}

    a, b, a_again = split(None, "a"), split(7, "b"), split(0, "c")  # None means split_seed (0)
    assert a == a_again
    assert a["test"] == b["test"] and a["val"] == b["val"]
    assert a["train"] != b["train"]


@pytest.mark.slow
def test_compiled_training_matches_eager_and_transfers(tmp_path, ge_data, si_model, monkeypatch):
    """TrainSpec.compile trains through nequip's train-time torch.compile (one cold compile, about a
    minute or two on 2 cores): a transfer run compiled from an eager source gives the eager run's numbers,
    and its package is the plain model. The real torch.compile is called, and counted."""
    real, calls = torch.compile, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "compile", counted)
    eager = train(_spec(tmp_path, ge_data, si_model, out=str(tmp_path / "eager")))
    assert not calls, "eager training must not compile"
    compiled = train(_spec(tmp_path, ge_data, si_model, out=str(tmp_path / "compiled"), compile=True))
    assert calls, "compile=True must go through torch.compile"
    for k in ("val_forces_mae", "val_energy_per_atom_mae"):
        assert compiled.history[-1][k] == pytest.approx(eager.history[-1][k], rel=1e-4), k
    e = evaluate_test_set(eager.model_path, eager.test_path, element="Ge", out=tmp_path / "e")
    c = evaluate_test_set(compiled.model_path, compiled.test_path, element="Ge", out=tmp_path / "c")
    assert c["test_forces_mae"] == pytest.approx(e["test_forces_mae"], rel=1e-4)
