"""Crystal properties: SW Si reproduces its literature values, SW Ge is self-consistent, a perturbed
potential is told apart.

Tolerances (docs/evaluation.md): a0 0.1 %, cohesive energy 1 meV/atom, C11/C12/C44 2 % of the
literature values (Cowley 1988 / Balamane et al. 1992 quote SW Si to 0.1 GPa; our fits agree to
< 0.1 %, so 2 % leaves room for the fit, not for a wrong definition: clamped-ion C44 is 95 % off).
"""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes

from mlptl.data.references import SW_GE_DING_ANDERSEN, get_reference, stillinger_weber
from mlptl.errors import InputError
from mlptl.evaluate.adf import adf, adf_distance
from mlptl.evaluate.plots import plot_adf, plot_properties, plot_rdf, plot_time_to_failure
from mlptl.evaluate.properties import (
    SCALAR_PROPERTIES,
    PropertyConfig,
    compare_properties,
    compute_properties,
)

STATIC = PropertyConfig(md_steps=0)
# Tiny MD for the structure (8 atoms, 60 sampled steps): enough to exercise RDF/ADF, not to converge them.
SMALL_MD = PropertyConfig(md_supercell=1, md_steps=60, md_equilibration_steps=20, sample_every=5)

TOL = {"a0": ("rel", 1e-3), "ecoh": ("abs", 1e-3), "C11": ("rel", 0.02), "C12": ("rel", 0.02), "C44": ("rel", 0.02)}


def within(name: str, value: float, target: float) -> bool:
    kind, tol = TOL[name]
    err = abs(value - target)
    return err <= (tol * abs(target) if kind == "rel" else tol)


@pytest.fixture(scope="module")
def si_props():
    return compute_properties(get_reference("Si", "sw").calculator(), "Si", reference="sw", config=STATIC)


@pytest.fixture(scope="module")
def ge_props():
    return compute_properties(get_reference("Ge", "sw").calculator(), "Ge", reference="sw", config=SMALL_MD)


@pytest.mark.parametrize("name", ["a0", "ecoh", "C11", "C12", "C44"])
def test_sw_si_matches_literature(si_props, name):
    target = get_reference("Si", "sw").literature[name]
    assert within(name, si_props[name], target), (name, si_props[name], target)


def test_sw_si_internal_consistency(si_props):
    # Two routes to the bulk modulus: the E-V fit and the cubic elastic constants.
    b_elastic = (si_props["C11"] + 2 * si_props["C12"]) / 3
    assert si_props["B"] == pytest.approx(b_elastic, rel=0.01)
    # Internal relaxation halves SW Si's C44: a clamped-ion C44 must not be what is reported.
    assert si_props["C44_unrelaxed"] > 1.5 * si_props["C44"]
    assert si_props["e_per_atom"] == pytest.approx(si_props["e0_eos"], abs=1e-4)
    # SW's isolated atom is its zero: the cohesive energy is the energy per atom
    assert si_props["e_atom"] == 0.0 and si_props["ecoh"] == si_props["e_per_atom"]
    assert si_props["notes"] == [] and si_props["lattice"] == "diamond"
    assert si_props["volume"] == pytest.approx(si_props["a0"] ** 3 / 8, rel=1e-9)


def test_sw_ge_self_consistent(ge_props):
    lit = get_reference("Ge", "sw").literature
    assert within("a0", ge_props["a0"], lit["a0"])
    assert within("ecoh", ge_props["ecoh"], lit["ecoh"])
    # The reference against itself (same seed, same protocol) is exactly zero everywhere.
    assert ge_props["rdf_distance"] == 0.0 and ge_props["adf_distance"] == 0.0
    cmp = compare_properties(ge_props, ge_props)
    assert set(SCALAR_PROPERTIES) <= set(cmp)
    assert all(cmp[k]["abs_error"] == 0.0 and cmp[k]["rel_error"] == 0.0 for k in SCALAR_PROPERTIES)
    assert cmp["rdf_distance"] == 0.0 and cmp["adf_distance"] == 0.0
    assert json.loads(json.dumps(ge_props))["element"] == "Ge"
    # The diamond ADF peaks at the tetrahedral angle.
    theta, p = np.asarray(ge_props["adf"]["theta"]), np.asarray(ge_props["adf"]["p"])
    assert abs(theta[p.argmax()] - 109.47) < 6
    assert p.sum() * (theta[1] - theta[0]) == pytest.approx(1.0)


def test_perturbed_potential_is_told_apart(ge_props):
    weak = {**SW_GE_DING_ANDERSEN, "lambda1": 0.8 * SW_GE_DING_ANDERSEN["lambda1"]}
    props = compute_properties(stillinger_weber(weak), "Ge", reference="sw", reference_properties=ge_props,
                               config=SMALL_MD)
    cmp = compare_properties(props, ge_props)
    # A weaker three-body term softens shear most; the lattice constant barely moves.
    assert cmp["C44"]["rel_error"] > 0.05
    assert cmp["C44"]["error"] < 0
    assert cmp["rdf_distance"] > 0.0 and cmp["adf_distance"] > 0.0
    assert props["rdf_distance"] == pytest.approx(cmp["rdf_distance"])


def test_compare_with_literature_only_shared_keys(si_props):
    lit = get_reference("Si", "sw").literature
    cmp = compare_properties(si_props, lit)
    assert set(cmp) == {k for k in lit if k in SCALAR_PROPERTIES}
    assert {"a0", "ecoh", "C11", "C12", "C44"} <= set(cmp)
    assert cmp["a0"]["rel_error"] < 1e-3


class EnergyForcesOnly(Calculator):
    """A calculator without stress: elastic constants must be skipped, not crash the evaluation."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, inner: Calculator):
        super().__init__()
        self.inner = inner

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.inner
        self.results = {"energy": a.get_potential_energy(), "forces": a.get_forces()}


def test_calculator_without_stress():
    props = compute_properties(EnergyForcesOnly(get_reference("Si", "sw").calculator()), "Si", reference="sw",
                               config=STATIC)
    assert props["C11"] is None and props["C44"] is None
    assert props["a0"] == pytest.approx(5.431, rel=1e-3)
    assert "C11" not in compare_properties(props, get_reference("Si", "sw").literature)


def test_without_a_reference():
    """No reference (DFT data): the crystal is given, no cohesive energy without an isolated-atom energy,
    no structure distances, and the notes say so."""
    calc = get_reference("Si", "sw").calculator()
    with pytest.raises(InputError, match="no reference potential named for Si"):
        compute_properties(calc, "Si", reference=None, config=STATIC)
    crystal = bulk("Si", "diamond", 5.40, cubic=True)
    props = compute_properties(calc, "Si", reference=None, initial=crystal, config=SMALL_MD)
    assert props["a0"] == pytest.approx(5.431, rel=1e-3)  # relaxed from the given 5.40
    assert props["ecoh"] is None and props["e_per_atom"] == pytest.approx(-4.3366, abs=1e-3)
    assert props["C11"] == pytest.approx(151.4, rel=0.02)  # a cube: cubic elastic constants
    assert props["rdf_distance"] is None and props["rdf"] is not None
    assert any("no ecoh" in n for n in props["notes"]) and any("RDF/ADF" in n for n in props["notes"])
    given = compute_properties(calc, "Si", reference=None, initial=crystal, atom_energy=0.0, config=STATIC)
    assert given["ecoh"] == pytest.approx(-4.3366, abs=1e-3)


def test_adf_perfect_diamond_and_distance_bounds():
    atoms = bulk("Si", "diamond", 5.431, cubic=True)
    theta, p = adf(atoms, cutoff=2.8, nbins=180)
    assert theta[p.argmax()] == pytest.approx(109.5, abs=0.5)
    assert adf_distance(theta, p, p) == 0.0
    q = np.zeros_like(p)
    q[10] = 1.0 / (theta[1] - theta[0])
    assert adf_distance(theta, p, q) == pytest.approx(2.0)


def test_plots(tmp_path, ge_props):
    r = np.linspace(0, 5, 50)
    assert plot_rdf({"model": (r, np.sin(r) ** 2), "ref": (r, np.cos(r) ** 2)}, tmp_path / "rdf.png").stat().st_size
    assert plot_adf({"model": (r * 36, r)}, tmp_path / "a" / "adf.png").is_file()
    paths = plot_properties(ge_props, ge_props, tmp_path / "props")
    assert [p.name for p in paths] == ["rdf.png", "adf.png"]
    run = {"temperature": 300.0, "replica": 0, "stable": False, "time_to_failure_ps": 0.2, "criterion": "rdf"}
    result = {
        "element": "Ge",
        "config": {"steps": 1000, "timestep_fs": 1.0},
        "runs": [run, {**run, "replica": 1, "stable": True, "time_to_failure_ps": None, "criterion": None}],
        "summary": [{"temperature": 300.0, "median_time_to_failure_ps": 0.6}],
    }
    assert plot_time_to_failure({"a": result, "b": result}, tmp_path / "ttf.png").is_file()


def test_cli_properties(tmp_path, capsys):
    from mlptl.cli import main

    rc = main(["evaluate", "properties", "sw", "--element", "Si", "--md-steps", "20", "--md-equilibration", "10",
               "--supercell", "1", "--json", "--no-progress", "--out", str(tmp_path)])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["properties"]["a0"] == pytest.approx(5.431, rel=1e-3)
    assert d["literature"]["C44"]["rel_error"] < 0.02
    assert d["errors"]["a0"]["abs_error"] == 0.0
    assert {p.name for p in tmp_path.iterdir()} >= {"rdf.png", "adf.png", "properties.json"}
    rc = main(["evaluate", "properties", "sw", "--element", "Si", "--md-steps", "0", "--no-progress"])
    assert rc == 0 and "C44" in capsys.readouterr().out
    assert main(["evaluate", "properties", "sw", "--element", "Xx"]) == 2


def test_config_validation():
    with pytest.raises(InputError):
        PropertyConfig(eos_points=3)
    with pytest.raises(InputError):
        replace(STATIC, thermostat="berendsen")
