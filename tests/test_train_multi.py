"""Multi-element training and transfer at tiny sizes: extend (Cu -> CuNi), subset (CuNi -> Cu), map, new-element
initialisations, per-element energy shifts, and the bad inputs of a chemistry."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlptl.data.readers import read_frames
from mlptl.errors import InputError
from mlptl.model.calculator import model_type_names
from mlptl.model.transfer import PER_TYPE_TABLES, _local_name, load_source, resolve_type_map
from mlptl.train import TrainSpec, prepare, train
from mlptl.train.config import per_element_energy_shifts

TINY_MD = dict(equilibration_steps=20, interval_steps=5, supercell=2)


@pytest.fixture(scope="module")
def cuni_data(tmp_path_factory):
    from mlptl.data.mixtures import MixtureSpec, generate_mixture

    spec = MixtureSpec(reference="emt", compositions=("Cu0.75Ni0.25", "Cu0.5Ni0.5", "Ni"), frames_per_condition=6,
                       temperatures=(300.0,), **TINY_MD)
    return generate_mixture(spec, tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def cu_model(tmp_path_factory):
    from mlptl.data.generate import generate, preset

    data = generate(preset("tiny", "Cu", reference="emt", frames_per_temperature=8), tmp_path_factory.mktemp("cache"),
                    progress=False)
    out = tmp_path_factory.mktemp("cu")
    spec = TrainSpec(element="Cu", data=str(data), out=str(out), max_epochs=1, train_size=8, val_size=4, test_size=4,
                     lr=5e-3)
    return train(spec).model_path


def _extend(tmp_path, cuni_data, cu_model, **kw) -> TrainSpec:
    base = dict(element="Cu,Ni", data=str(cuni_data), out=str(tmp_path / "cuni"), init="transfer",
                pretrained=str(cu_model), max_epochs=1, train_size=6, val_size=3, test_size=3, lr=5e-3)
    return TrainSpec(**{**base, **kw})


def _rows(model) -> dict[str, torch.Tensor]:
    state = {_local_name(k): v for k, v in model.state_dict().items()}
    return {k: state[k] for k in PER_TYPE_TABLES}


def test_a_chemistry_is_one_label_and_its_elements_are_the_type_names():
    spec = TrainSpec(element="NiCu", data="d", out="o")
    assert spec.element == "Cu-Ni" and spec.elements == ("Cu", "Ni")
    assert TrainSpec(element="Ge", data="d", out="o").elements == ("Ge",)
    assert TrainSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(InputError, match="element map names 'Au'"):
        TrainSpec(element="Cu,Ni", data="d", out="o", element_map={"Au": "Cu"})
    with pytest.raises(InputError, match="new element init must be one of copy, mean, random"):
        TrainSpec(element="Cu,Ni", data="d", out="o", new_element_init="zero")


@pytest.mark.parametrize(
    ("target", "source", "kw", "expected"),
    [
        (["Ge"], ["Si"], {}, {"Ge": "Si"}),  # single element, as before
        (["Ge"], ["Ge", "Si"], {"source_type": "Si"}, {"Ge": "Si"}),
        (["Cu", "Ni"], ["Cu"], {}, {"Cu": "Cu", "Ni": "Cu"}),  # extend, copy of the only element
        (["Cu", "Ni"], ["Cu"], {"new_element_init": "mean"}, {"Cu": "Cu", "Ni": "mean"}),
        (["Cu", "Ni"], ["Cu"], {"new_element_init": "random"}, {"Cu": "Cu", "Ni": "random"}),
        (["Au", "Cu"], ["Au", "Cu", "Ni"], {}, {"Au": "Au", "Cu": "Cu"}),  # subset
        (["C", "Ge"], ["C", "Si"], {"element_map": {"Ge": "Si"}}, {"C": "C", "Ge": "Si"}),  # map
    ],
)
def test_type_maps_of_the_three_modes(target, source, kw, expected):
    assert resolve_type_map(target, source, **kw) == expected


def test_a_new_element_with_several_sources_to_copy_from_must_be_named():
    with pytest.raises(InputError, match="say which one Ge starts from"):
        resolve_type_map(["C", "Ge"], ["C", "Si"])
    with pytest.raises(InputError, match="which the source model lacks"):
        resolve_type_map(["C", "Ge"], ["C", "Si"], element_map={"Ge": "Sn"})


def test_per_element_shifts_recover_known_energies(cuni_data):
    frames = read_frames(cuni_data)
    # Label the frames with exactly additive energies: least squares over compositions must find them.
    for a in frames:
        symbols = a.get_chemical_symbols()
        a.calc.results["energy"] = -3.5 * symbols.count("Cu") - 4.25 * symbols.count("Ni")
    shifts = per_element_energy_shifts(frames, ("Cu", "Ni"))
    assert shifts == pytest.approx({"Cu": -3.5, "Ni": -4.25}, abs=1e-9)


@pytest.mark.parametrize("init", ["copy", "mean", "random"])
def test_extend_keeps_the_source_rows_and_starts_the_new_element_as_asked(tmp_path, cuni_data, cu_model, init):
    prepared = prepare(_extend(tmp_path, cuni_data, cu_model, new_element_init=init))
    assert prepared.type_map == {"Cu": "Cu", "Ni": "Cu" if init == "copy" else init}
    src = _rows(_source_module(cu_model))
    got = _rows(prepared.graph_model)
    for name, table in got.items():
        assert table.shape[0] == 2
        torch.testing.assert_close(table[0], src[name][0])  # Cu from Cu
        if init in ("copy", "mean"):  # one source element: its mean is itself
            torch.testing.assert_close(table[1], src[name][0])
        else:
            assert not torch.allclose(table[1], src[name][0])


def _source_module(path):
    """The source package's per-type tables, as a module-like object for _rows."""
    source = load_source(path)

    class _M:
        def state_dict(self):
            return source.state_dict

    return _M()


def test_extend_refits_each_elements_energy_shift_and_trains(tmp_path, cuni_data, cu_model):
    result = train(_extend(tmp_path, cuni_data, cu_model))
    assert model_type_names(result.model_path) == ["Cu", "Ni"]
    from mlptl.evaluate.forces import force_errors

    errors = force_errors(result.model_path, result.test_path)
    assert np.isfinite(errors["test_forces_mae"])
    state = {_local_name(k): v for k, v in load_source(result.model_path).state_dict.items()}
    shifts = state["per_type_energy_scale_shift.shifts"].flatten()
    frames = read_frames(result.data_paths["train"])
    expected = per_element_energy_shifts(frames, ("Cu", "Ni"))
    assert shifts.tolist() == pytest.approx([expected["Cu"], expected["Ni"]], rel=1e-5)


def test_subset_transfer_keeps_only_the_target_elements(tmp_path, cuni_data, cu_model):
    from mlptl.data.generate import generate, preset

    cuni = train(_extend(tmp_path, cuni_data, cu_model))
    ni = generate(preset("tiny", "Ni", reference="emt", frames_per_temperature=6), tmp_path / "cache", progress=False)
    spec = TrainSpec(element="Ni", data=str(ni), out=str(tmp_path / "ni"), init="transfer", pretrained=str(cuni.model_path),
                     max_epochs=1, train_size=4, val_size=2, test_size=2, lr=5e-3)
    prepared = prepare(spec)
    assert prepared.type_map == {"Ni": "Ni"}
    src = _rows(_source_module(cuni.model_path))
    for name, table in _rows(prepared.graph_model).items():
        torch.testing.assert_close(table[0], src[name][1])  # Ni's own rows, not Cu's


def test_frames_outside_the_chemistry_or_an_element_without_frames_are_one_error(tmp_path, cuni_data, cu_model):
    with pytest.raises(InputError, match="expected frames of Cu only"):
        prepare(TrainSpec(element="Cu", data=str(cuni_data), out=str(tmp_path / "a"), max_epochs=1))
    with pytest.raises(InputError, match="no frame holds Au of the chemistry Au-Cu-Ni"):
        prepare(TrainSpec(element="Cu,Ni,Au", data=str(cuni_data), out=str(tmp_path / "b"), max_epochs=1))
    with pytest.raises(InputError, match=r"frame has element\(s\) Ni outside the chemistry Au-Cu"):
        prepare(TrainSpec(element="Cu,Au", data=str(cuni_data), out=str(tmp_path / "b"), max_epochs=1))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_mlptl_train_extends_a_model_from_the_command_line(tmp_path, cuni_data, cu_model, capsys):
    import json

    from mlptl.cli import main

    out = tmp_path / "cli"
    args = ["train", "--element", "Cu,Ni", "--data", str(cuni_data), "--out", str(out), "--init", "transfer",
            "--pretrained", str(cu_model), "--new-element-init", "random", "--max-epochs", "1", "--train-size", "6",
            "--val-size", "3", "--test-size", "3"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["test_forces_mae.el_Ni"] > 0 and printed["test_forces_mae.el_Cu"] > 0
    assert model_type_names(out / "model.nequip.zip") == ["Cu", "Ni"]
    assert main(["train", "--element", "Cu,Ni", "--data", str(cuni_data), "--out", str(tmp_path / "bad"),
                 "--element-map", "Ni"]) == 2
    assert "TARGET=SOURCE" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
