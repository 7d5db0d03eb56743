"""mlptl.model._nequip: the version gate, the one-adapter rule, and every adapter function on a real tiny model.

The compiling functions (``compile_model``, ``calculator_from_compiled``, ``compiled_type_names``,
``pair_allegro_energy_forces``) take a minute or more each and are exercised through ``export_model`` in
tests/test_export.py; ``test_every_adapter_function_is_exercised`` fails if one is tested nowhere.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from packaging.version import Version

from mlptl.errors import InputError
from mlptl.model import _nequip
from mlptl.train import TrainSpec, prepare, train

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the version gate
@pytest.mark.parametrize(
    "installed, message",
    [
        ({"nequip": "0.20.0", "nequip-allegro": "0.8.3"}, "nequip 0.20.0 is installed"),
        ({"nequip": "0.18.2", "nequip-allegro": "0.8.3"}, "nequip 0.18.2 is installed"),
        ({"nequip": "0.19.0", "nequip-allegro": "0.8.3"}, "nequip 0.19.0 is installed"),  # below the checked 0.19.1
        ({"nequip": "0.19.1", "nequip-allegro": "0.9.0"}, "nequip-allegro 0.9.0 is installed"),
        ({"nequip": "0.19.1", "nequip-allegro": None}, "nequip-allegro is not installed"),
        ({"nequip": "1.0.0rc1", "nequip-allegro": "0.8.3"}, "nequip 1.0.0rc1 is installed"),
    ],
)
def test_unsupported_versions_fail_loudly_saying_what_to_install(installed, message):
    with pytest.raises(_nequip.UnsupportedNequip, match=re.escape(message)) as info:
        _nequip.check_versions(installed)
    text = str(info.value)
    assert isinstance(info.value, InputError) and "\n" not in text  # the CLI's one line, exit 2
    assert "pip install 'nequip>=0.19.1,<0.20' 'nequip-allegro>=0.8.3,<0.9'" in text


def test_installed_versions_pass_and_are_the_checked_ones():
    installed = {name: importlib.metadata.version(name) for name in _nequip.SUPPORTED}
    _nequip.check_versions(installed)
    _nequip.require_supported()
    for name, (lo, hi) in _nequip.SUPPORTED.items():
        assert Version(lo) <= Version(_nequip.CHECKED_WITH[name]) < Version(hi)
    _nequip.check_versions({"nequip": "0.19.9", "nequip-allegro": "0.8.99"})  # patch releases are in range


def test_every_function_checks_the_installed_versions(monkeypatch, tmp_path):
    # A process with an unsupported nequip must fail at the adapter, in one line, not deep in nequip;
    # the callers pass the error on rather than rewording it as a bad model file.
    from mlptl.model.calculator import nequip_calculator
    from mlptl.model.transfer import load_source

    package = tmp_path / "m.nequip.zip"
    package.write_bytes(b"")
    monkeypatch.setattr(_nequip, "_installed", lambda name: "0.99.0")
    _nequip._checked.cache_clear()
    try:
        for call in (
            lambda: _nequip.package_type_names(package),
            _nequip.init_global_state,
            lambda: nequip_calculator(package),
            lambda: load_source(package),
        ):
            with pytest.raises(_nequip.UnsupportedNequip, match="^nequip 0.99.0 is installed"):
                call()
    finally:
        monkeypatch.undo()
        _nequip._checked.cache_clear()
    _nequip.require_supported()


# ---------------------------------------------------------------- the one-adapter rule
def _nequip_imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        out += [f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in ("nequip", "allegro")]
    return out


def test_only_the_adapter_imports_nequip_or_allegro():
    bad = [hit for p in sorted((ROOT / "mlptl").rglob("*.py")) if p.name != "_nequip.py" for hit in _nequip_imports(p)]
    assert not bad, "nequip/allegro imported outside mlptl/model/_nequip.py:\n" + "\n".join(bad)
    assert _nequip_imports(ROOT / "mlptl" / "model" / "_nequip.py")  # the check sees imports where they are


def test_every_adapter_function_is_exercised():
    tests = (Path(__file__).read_text() + (ROOT / "tests" / "test_export.py").read_text())
    export = (ROOT / "mlptl" / "model" / "export.py").read_text()
    untested = []
    for name in _nequip.__all__:
        if not callable(getattr(_nequip, name)) or isinstance(getattr(_nequip, name), type):
            continue
        if f"_nequip.{name}(" not in tests and f"_nequip.{name}(" not in export:
            untested.append(name)
    assert not untested, f"adapter functions no test reaches: {untested}"


# ---------------------------------------------------------------- on a real tiny model
@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from mlptl.data.generate import generate, preset

    data = generate(preset("tiny", "Ge", "sw", frames_per_temperature=6), tmp_path_factory.mktemp("cache"), progress=False)
    spec = TrainSpec(element="Ge", data=str(data), out=str(tmp_path_factory.mktemp("ge")), max_epochs=1,
                     train_size=4, val_size=2, test_size=4)
    return spec, train(spec)


def test_workflow_state_is_set_inside_and_cleared_after_even_on_error():
    from nequip.scripts._workflow_utils import get_workflow_state

    with _nequip.workflow("train"):
        assert get_workflow_state() == "train"
    assert get_workflow_state() is None
    with pytest.raises(KeyError), _nequip.workflow("compile"):
        raise KeyError("x")
    assert get_workflow_state() is None


def test_graph_model_and_package_round_trip(run, tmp_path):
    spec, result = run
    _nequip.init_global_state()
    prepared = prepare(spec)
    graph = _nequip.graph_model(prepared.module)
    names = [n for n, _ in graph.named_parameters()]
    assert any("allegro.latents.0." in n for n in names) and any("edge_readout." in n for n in names)
    info = _nequip.package_info_dict({"d": 1}, {"t": 2}, {"m": 3})
    assert info["training_module"] == {"t": 2} and info["data"] == {"d": 1} and info["mlptl"] == {"m": 3}

    # The trained package: its stored config is the one training built, with the mlptl spec inside.
    config, model = _nequip.read_package(result.model_path)
    assert config["training_module"]["model"]["type_names"] == ["Ge"]
    assert TrainSpec.from_dict(config["mlptl"]) == spec
    assert _nequip.package_type_names(result.model_path) == ["Ge"]

    # build_package from the run's checkpoint: written atomically, same weights as the trained package.
    dest = tmp_path / "again.nequip.zip"
    assert _nequip.build_package(Path(result.out) / "checkpoints" / "best.ckpt", dest) == dest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.nequip.zip"]
    _, again = _nequip.read_package(dest)
    a, b = model.state_dict(), again.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_bind_trainer_copies_the_world_size(run):
    spec, _ = run
    prepared = prepare(spec)

    class Trainer:
        world_size = 3

    _nequip.bind_trainer(prepared.module, Trainer())
    assert prepared.module.world_size == 3


def test_calculator_from_package_gives_physical_energies_and_newtons_third_law(run):
    _, result = run
    from mlptl.data.readers import read_frames

    calc = _nequip.calculator_from_package(result.model_path, "cpu")
    atoms = read_frames(result.test_path)[0]
    atoms.calc = calc
    e = atoms.get_potential_energy() / len(atoms)
    f = atoms.get_forces()
    assert -4.5 < e < -3.3  # SW Ge: -3.86 eV/atom at 0 K; the shift is fitted to the data
    assert np.all(np.isfinite(f)) and np.abs(f.sum(axis=0)).max() < 1e-4  # forces from one energy sum to zero


def test_torchscript_support_follows_torch():
    assert _nequip.torchscript_supported() == (Version(torch.__version__.split("+")[0]) < Version("2.10"))


def test_checkpoint_monitor_is_what_nequip_logs(run):
    # The checkpoint callback and the LR-plateau scheduler watch this name: if nequip renamed it, best.ckpt
    # would silently never be written.
    _, result = run
    assert _nequip.CHECKPOINT_MONITOR == "val0_epoch/weighted_sum"
    assert (Path(result.out) / "checkpoints" / "best.ckpt").is_file()
