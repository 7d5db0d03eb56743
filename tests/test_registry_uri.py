"""Every command that takes a model takes a registry URI too: ``models:/<name>/<version or alias>``."""

from __future__ import annotations

import json

import pytest

from mlptl import tracking as T
from mlptl.cli import main


@pytest.fixture(scope="module")
def registered(tmp_path_factory, tiny_ge):
    from mlptl.train import TrainSpec, train

    tmp = tmp_path_factory.mktemp("reg")
    result = train(TrainSpec(element="Ge", data=str(tiny_ge), out=str(tmp / "run"), max_epochs=1, train_size=4,
                             val_size=3, test_size=3))
    store = tmp / "store"
    store.mkdir()
    c = T.client(T.default_tracking_uri(store))
    exp = T.ensure_experiment(c, "reg", store / "artifacts")
    run = c.create_run(exp)
    c.log_artifact(run.info.run_id, str(result.model_path), T.MODEL_ARTIFACT_DIR)
    version = T.register_model(c, run.info.run_id, "reg-ge", {})
    c.set_registered_model_alias("reg-ge", "best", version)
    return result, store


def test_forces_from_the_registry_equal_the_package(registered, capsys):
    result, store = registered
    assert main(["evaluate", "forces", str(result.model_path), str(result.test_path), "--json"]) == 0
    direct = json.loads(capsys.readouterr().out)
    for uri in ("models:/reg-ge/1", "models:/reg-ge/best"):
        assert main(["evaluate", "forces", uri, str(result.test_path), "--json", "--storage", str(store)]) == 0
        assert json.loads(capsys.readouterr().out) == direct


def test_export_takes_a_registry_uri(registered, tmp_path, monkeypatch, capsys):
    result, store = registered
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "ge.nequip.zip"
    assert main(["export", "models:/reg-ge/1", "--format", "ase", "--out", str(out), "--storage", str(store)]) == 0
    assert out.read_bytes() == result.model_path.read_bytes()


def test_unknown_registry_model_is_one_line(registered, capsys):
    result, store = registered
    assert main(["evaluate", "forces", "models:/nope/1", str(result.test_path), "--storage", str(store)]) == 2
    assert "models:/nope/1 not found in the registry" in capsys.readouterr().err
