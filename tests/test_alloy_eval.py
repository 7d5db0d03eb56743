"""The evaluation of multi-element models: per-element and per-composition force errors, calculators for a
chemistry, alloy mixing energies and lattice constants, partial RDFs, and the full evaluation of an alloy
model. ASE's EMT (through the system reference) stands in for a model; a copy of EMT with one Ni parameter
changed stands in for a wrong one."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT

from mlptl import metrics as M
from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.mixtures import MixtureSpec, generate_mixture_frames
from mlptl.data.systems import get_system_reference
from mlptl.errors import InputError
from mlptl.evaluate.alloys import (
    alloy_metrics,
    alloy_properties,
    alloy_structure,
    compare_alloy_properties,
    compare_alloy_structure,
    default_compositions,
    relax_cell,
)
from mlptl.evaluate.forces import force_errors
from mlptl.evaluate.properties import PropertyConfig
from mlptl.evaluate.rdf import partial_rdf, partial_rdfs, rdf
from mlptl.model.calculator import load_calculator

CUNI = default_compositions("Cu-Ni")  # Cu0.25Ni0.75, Cu0.5Ni0.5, Cu0.75Ni0.25


class BigNiEMT(EMT):
    """EMT with Ni's neutral-sphere radius s0 2 % larger: a different potential, nearly as good a metal."""

    def initialize(self, atoms):
        super().initialize(atoms)
        for i, z in enumerate(self.par["Z"]):
            if z == 28:
                self.par["s0"][i] *= 1.02
                g1, g2 = self._calc_gammas(self.par["s0"][i], self.par["eta2"][i], self.par["kappa"][i])
                self.par["inv12gamma1"][i] = 1.0 / (12.0 * g1)
                self.par["neghalfv0overgamma2"][i] = -0.5 * self.par["V0"][i] / g2


class NoStressEMT(EMT):
    """EMT that does not offer stress, as a model without a stress output."""

    implemented_properties = [p for p in EMT.implemented_properties if p != "stress"]


@pytest.fixture(scope="module")
def cuni_frames():
    spec = MixtureSpec("emt", compositions=("Cu0.5Ni0.5", "Cu0.75Ni0.25"), temperatures=(300.0, 900.0),
                       frames_per_condition=2, supercell=2, equilibration_steps=10, interval_steps=3)
    return generate_mixture_frames(spec, progress=False)


@pytest.fixture(scope="module")
def emt_alloys():
    return alloy_properties(EMT(), "emt", CUNI)


# ------------------------------------------------------------------ metric names
def test_metric_keys_are_one_convention_and_valid_mlflow_names():
    from mlflow.utils.validation import _validate_metric_name

    keys = [M.element_metric("test_forces_mae", "Cu"), M.composition_metric("test_forces_mae", "Cu0.5Ni0.5"),
            M.pair_metric(M.composition_metric("alloy_rdf_distance", "Cu0.5Ni0.5"), "Ni", "Cu")]
    assert keys == ["test_forces_mae.el_Cu", "test_forces_mae.comp_Cu0.5Ni0.5",
                    "alloy_rdf_distance.comp_Cu0.5Ni0.5.pair_Cu-Ni"]
    for k in keys:
        _validate_metric_name(k)
    with pytest.raises(Exception, match="Names may only contain"):  # the check can fail
        _validate_metric_name(M.composition_metric("x", "Cu$Ni"))
    assert M.UNITS["e_mix"] == "meV/atom" and M.UNITS["a0_mae"] == "A"


# ------------------------------------------------------------------ force errors
def test_force_errors_per_element_and_composition(cuni_frames):
    ref = get_system_reference("emt", ["Cu", "Ni"])
    same = force_errors(ref.calculator(), cuni_frames)
    groups = {"Cu0.5Ni0.5_T300", "Cu0.5Ni0.5_T900", "Cu0.75Ni0.25_T300", "Cu0.75Ni0.25_T900"}
    for name in ("test_forces_mae", "test_forces_rmse"):
        assert {M.element_metric(name, el) for el in ("Cu", "Ni")} <= set(same)
        assert {M.composition_metric(name, c) for c in ("Cu0.5Ni0.5", "Cu0.75Ni0.25")} <= set(same)
        assert {M.group_metric(name, g) for g in groups} <= set(same)
    assert M.composition_metric("test_energy_per_atom_mae", "Cu0.5Ni0.5") in same
    assert same["test_n_frames.comp_Cu0.5Ni0.5"] == 4.0  # both temperatures
    assert same["test_n_atoms.el_Cu"] + same["test_n_atoms.el_Ni"] == sum(len(a) for a in cuni_frames)
    assert max(abs(v) for k, v in same.items() if "_mae" in k or "_rmse" in k) < 1e-10  # the reference itself

    wrong = force_errors(BigNiEMT(), cuni_frames)
    n = {el: wrong[f"test_n_atoms.el_{el}"] for el in ("Cu", "Ni")}
    mae = {el: wrong[M.element_metric("test_forces_mae", el)] for el in n}
    rmse = {el: wrong[M.element_metric("test_forces_rmse", el)] for el in n}
    assert min(mae.values()) > 1e-3
    assert wrong["test_forces_mae"] == pytest.approx(sum(n[e] * mae[e] for e in n) / sum(n.values()), rel=1e-12)
    assert wrong["test_forces_rmse"] ** 2 == pytest.approx(sum(n[e] * rmse[e] ** 2 for e in n) / sum(n.values()),
                                                           rel=1e-12)
    # Ni's error computed here from the frames directly
    diffs = []
    for atoms in cuni_frames:
        a = atoms.copy()
        a.calc = BigNiEMT()
        ni = np.array(a.get_chemical_symbols()) == "Ni"
        diffs.append((a.get_forces() - atoms.get_forces())[ni].ravel())
    assert mae["Ni"] == pytest.approx(np.mean(np.abs(np.concatenate(diffs))), rel=1e-12)
    # a composition's errors are over its temperatures (groups of equal size: the mean of theirs)
    groups_mae = [wrong[f"test_forces_mae.Cu0.5Ni0.5_T{t}"] for t in (300, 900)]
    assert wrong["test_forces_mae.comp_Cu0.5Ni0.5"] == pytest.approx(np.mean(groups_mae), rel=1e-12)
    # by_group=False keeps the per-element errors, drops the group and composition breakdowns
    flat = force_errors(BigNiEMT(), cuni_frames, by_group=False)
    assert not [k for k in flat if ".comp_" in k or "_T" in k] and "test_forces_mae.el_Ni" in flat


def test_force_errors_of_one_element_keep_their_keys():
    frames = generate_mixture_frames(MixtureSpec("emt", compositions=("Cu",), temperatures=(300.0, 900.0),
                                                 frames_per_condition=2, supercell=1, equilibration_steps=4,
                                                 interval_steps=2), progress=False)
    out = force_errors(BigNiEMT(), frames)
    base = ["forces_mae", "forces_rmse", "energy_per_atom_mae", "energy_per_atom_rmse", "n_frames"]
    expected = {f"test_{k}" for k in base} | {f"test_{k}.Cu_T{t}" for k in base for t in (300, 900)}
    assert set(out) == expected


def test_force_errors_load_a_reference_for_the_frames_chemistry(cuni_frames):
    out = force_errors("emt", cuni_frames, element="Cu")  # the frames add Ni to what is asked
    assert out["test_forces_mae"] < 1e-10 and "test_forces_mae.el_Ni" in out
    with pytest.raises(InputError, match="covers"):
        force_errors("emt", cuni_frames, element="Ge")


# ------------------------------------------------------------------ calculators for a chemistry
def test_load_calculator_for_a_chemistry():
    for chem in ("Cu-Ni", "Cu,Ni", "NiCu", Chemistry(("Ni", "Cu")), ["Cu", "Ni"]):
        assert isinstance(load_calculator("emt", chem), EMT)
    assert isinstance(load_calculator("emt", "Cu"), EMT)  # the single-element reference, as before
    assert type(load_calculator("tersoff", "Ge-Si")).__name__ == "Manybody"
    with pytest.raises(InputError, match="covers"):
        load_calculator("emt", "Cu-Ge")
    with pytest.raises(InputError, match="neither a model file nor a reference"):
        load_calculator("no-such-potential", "Cu-Ni")
    with pytest.raises(InputError, match="unknown element"):
        load_calculator("emt", "Cu-Xx")


@pytest.fixture(scope="module")
def cuni_model(tmp_path_factory):
    """A real Cu-Ni Allegro package, trained for one epoch (about 10 s)."""
    from mlptl.data.mixtures import generate_mixture
    from mlptl.train import TrainSpec, train

    spec = MixtureSpec("emt", compositions=("Cu0.5Ni0.5", "Cu0.75Ni0.25"), frames_per_condition=4,
                       temperatures=(300.0,), equilibration_steps=20, interval_steps=5, supercell=2)
    data = generate_mixture(spec, tmp_path_factory.mktemp("cache"), progress=False)
    out = tmp_path_factory.mktemp("cuni")
    ts = TrainSpec(element="Cu,Ni", data=str(data), out=str(out), max_epochs=1, train_size=4, val_size=2,
                   test_size=2, lr=5e-3)
    return train(ts)


def test_a_trained_alloy_model_loads_for_its_chemistry_and_is_evaluated(cuni_model):
    from mlptl.evaluate.forces import evaluate_test_set

    path = str(cuni_model.model_path)
    for chem in ("Cu-Ni", "Cu,Ni", "Ni"):
        assert load_calculator(path, chem) is not None
    with pytest.raises(InputError, match=r"knows elements \['Cu', 'Ni'\], not 'Au' \(asked for Au-Cu-Ni\)"):
        load_calculator(path, "Au-Cu-Ni")
    with pytest.raises(InputError, match="not 'Ge'"):
        load_calculator(path, "Ge")
    errors = evaluate_test_set(path, cuni_model.test_path, element="Cu-Ni")
    assert {"test_forces_mae.el_Cu", "test_forces_mae.el_Ni"} <= set(errors)
    assert all(np.isfinite(v) for v in errors.values())
    # the model gives stress: its alloy is relaxed in volume like EMT's (a few steps; it is barely trained)
    props = alloy_properties(load_calculator(path, "Cu-Ni"), "emt", ["Cu0.5Ni0.5"], supercell=1, steps=10)
    c = props["compositions"]["Cu0.5Ni0.5"]
    assert np.isfinite(c["e_mix"]) and c["a0"] > 0 and not any("no stress" in n for n in props["notes"])


# ------------------------------------------------------------------ alloy properties
def test_emt_cuni_mixes_with_a_small_positive_energy_near_vegard(emt_alloys):
    comps = emt_alloys["compositions"]
    assert set(comps) == set(CUNI) and emt_alloys["chemistry"] == "Cu-Ni"
    for c, p in comps.items():
        assert p["converged"] and p["n_atoms"] == 32
        # measured 17.6, 21.2, 14.6 meV/atom at seed 0: CuNi's small, positive heat of mixing
        assert 5.0 < p["e_mix"] < 40.0, (c, p["e_mix"])
        assert abs(p["a0"] / p["vegard_a0"] - 1) < 2e-3
        assert emt_alloys["pure"]["Ni"]["a0"] < p["a0"] < emt_alloys["pure"]["Cu"]["a0"]
    assert comps["Cu0.5Ni0.5"]["e_mix"] > max(comps["Cu0.25Ni0.75"]["e_mix"], comps["Cu0.75Ni0.25"]["e_mix"])
    assert emt_alloys["pure"]["Cu"]["a0"] == pytest.approx(3.5898, abs=1e-4)


def test_mixing_energy_is_the_formation_energy_of_the_relaxed_alloy(emt_alloys):
    """Against the data layer's own formation energy (each atom's energy in its element's crystal at a0)."""
    ref = get_system_reference("emt", ["Cu", "Ni"])
    relaxed, converged, note = relax_cell(ref.alloy("Cu0.5Ni0.5", 2, seed=0), EMT())
    assert converged and note is None
    e_mix = 1000 * ref.formation_energy(relaxed)
    assert emt_alloys["compositions"]["Cu0.5Ni0.5"]["e_mix"] == pytest.approx(e_mix, abs=1e-3)
    pure = alloy_properties(EMT(), ref, ["Cu"])["compositions"]["Cu"]
    assert abs(pure["e_mix"]) < 1e-6 and pure["a0"] == pytest.approx(3.5898, abs=1e-4)


def test_alloy_errors_zero_against_itself_and_not_against_another_potential(emt_alloys):
    same = compare_alloy_properties(alloy_properties(EMT(), "emt", CUNI), emt_alloys)
    assert same["e_mix_mae"] == 0.0 and same["a0_mae"] == 0.0
    wrong = alloy_properties(BigNiEMT(), "emt", CUNI)
    errors = compare_alloy_properties(wrong, emt_alloys)
    # a larger Ni shrinks the size mismatch: less mixing energy, a larger lattice (measured 4.7 meV, 0.036 A)
    assert errors["e_mix_mae"] > 1.0 and errors["a0_mae"] > 0.01
    for d in errors["compositions"].values():
        assert d["e_mix"]["error"] < 0 and d["a0"]["error"] > 0
    metrics = alloy_metrics(wrong, errors)
    assert metrics[M.ALLOY_E_MIX_MAE] == errors["e_mix_mae"] and metrics[M.ALLOY_A0_MAE] == errors["a0_mae"]
    assert metrics["alloy_e_mix_abs_error.comp_Cu0.5Ni0.5"] == errors["compositions"]["Cu0.5Ni0.5"]["e_mix"]["abs_error"]
    assert metrics["alloy_a0.comp_Cu0.5Ni0.5"] == wrong["compositions"]["Cu0.5Ni0.5"]["a0"]


def test_a_calculator_without_stress_is_relaxed_by_an_equation_of_state():
    ref = get_system_reference("emt", ["Cu", "Ni"])
    start = ref.alloy("Cu0.5Ni0.5", 2, seed=0)
    with_stress, _, _ = relax_cell(start, EMT())
    without, converged, note = relax_cell(start, NoStressEMT())
    assert converged and "no stress" in note
    assert without.get_volume() == pytest.approx(with_stress.get_volume(), rel=2e-3)
    assert without.get_potential_energy() == pytest.approx(with_stress.get_potential_energy(), abs=2e-3 * len(start))


def test_default_compositions_and_bad_input():
    assert CUNI == ["Cu0.25Ni0.75", "Cu0.5Ni0.5", "Cu0.75Ni0.25"]
    assert default_compositions("Au-Cu-Ni") == [Composition.parse("AuCuNi").label]
    with pytest.raises(InputError, match="at least two"):
        default_compositions("Cu")
    with pytest.raises(InputError, match="covers"):
        alloy_properties(EMT(), "emt", ["Cu0.5Ge0.5"])
    with pytest.raises(InputError, match="at least one composition"):
        alloy_properties(EMT(), "emt", [])


# ------------------------------------------------------------------ partial RDFs
def test_partial_rdfs_add_up_to_the_total(cuni_frames):
    frames = [a for a in cuni_frames if a.info["composition"] == "Cu0.75Ni0.25"]
    r, gs = partial_rdfs(frames, 6.0, 60)
    assert set(gs) == {"Cu-Cu", "Cu-Ni", "Ni-Ni"}
    x = Composition.of(frames[0]).as_dict()
    total = sum(x[a] * x[b] * gs["-".join(sorted((a, b)))] for a in x for b in x)
    r0, g = rdf(frames, 6.0, 60)
    assert np.allclose(r, r0) and np.allclose(total, g, rtol=1e-12, atol=1e-12)
    assert np.array_equal(partial_rdf(frames, "Ni", "Cu", 6.0, 60)[1], gs["Cu-Ni"])
    assert gs["Cu-Ni"].max() > 0 and not np.allclose(gs["Cu-Cu"], gs["Ni-Ni"])
    pure = get_system_reference("emt", ["Cu"]).crystal("Cu", 2)
    assert np.allclose(partial_rdf(pure, "Cu", "Cu", 6.0, 60)[1], rdf(pure, 6.0, 60)[1])
    with pytest.raises(InputError, match="Au-Cu"):
        partial_rdf(frames, "Cu", "Au", 6.0, 60)


def test_alloy_structure_against_itself_and_another_potential():
    ref = get_system_reference("emt", ["Cu", "Ni"])
    config = PropertyConfig(temperature=600.0, md_steps=60, md_equilibration_steps=20, sample_every=5,
                            rdf_nbins=60)
    base = alloy_structure(ref.calculator, ref, "Cu0.5Ni0.5", config)
    again = alloy_structure(ref.calculator, ref, "Cu0.5Ni0.5", config)
    other = alloy_structure(BigNiEMT, ref, "Cu0.5Ni0.5", config)
    assert base["md_ok"] and base["n_frames"] == 13 and base["n_atoms_md"] == 32
    assert compare_alloy_structure(again, base) == {"Cu-Cu": 0.0, "Cu-Ni": 0.0, "Ni-Ni": 0.0}
    d = compare_alloy_structure(other, base)
    assert all(v > 0.05 for v in d.values()), d


# ------------------------------------------------------------------ the full evaluation
def test_evaluate_model_of_an_alloy_by_reference_name(tmp_path):
    from mlptl.evaluate.full import evaluate_model
    from mlptl.evaluate.stability_config import StabilityConfig

    evaluation = {"stability": StabilityConfig(temperatures=(300.0,), replicas=1, steps=30, reference_steps=20,
                                               rdf_equilibration=0.01),
                  "properties": PropertyConfig(md_steps=20, md_equilibration_steps=10, sample_every=5)}
    metrics = evaluate_model("emt", "Cu-Ni", tmp_path / "ev", **evaluation, reference="emt",
                             compositions=["Cu0.5Ni0.5", "Cu3Ni"])
    assert metrics["alloy_e_mix.comp_Cu0.5Ni0.5"] == pytest.approx(21.2, abs=0.5)  # measured 21.20 meV/atom
    assert metrics[M.ALLOY_E_MIX_MAE] == 0.0 and metrics[M.ALLOY_A0_MAE] == 0.0
    assert metrics["alloy_rdf_distance.comp_Cu0.75Ni0.25.pair_Cu-Ni"] == 0.0
    assert not [k for k in metrics if k.startswith("prop_")]
    # MD stability runs for alloys too, under the one-element metric names (tests/test_alloy_stability.py)
    assert metrics[M.STABLE_FRACTION] == 1.0 and "stability_rdf_distance.T300.pair_Cu-Ni" in metrics
    details = json.loads((tmp_path / "ev" / "alloys.json").read_text())
    assert set(details) == {"model", "reference", "errors", "structure"}
    notes = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert notes["compositions"] == ["Cu0.5Ni0.5", "Cu0.75Ni0.25"] and not any("skipped" in n for n in notes["notes"])
    assert evaluate_model("emt", "Cu-Ni", tmp_path / "none", **evaluation, reference=None) == {}
    with pytest.raises(InputError, match="outside Cu-Ni: Au"):
        evaluate_model("emt", "Cu-Ni", tmp_path / "bad", **evaluation, reference="emt", compositions=["Au0.5Cu0.5"])
