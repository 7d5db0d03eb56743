"""Stability and properties beyond SW diamond: fcc, bcc and hcp crystals with ASE's EMT, by reference name.

The references are registered here (``emt-test`` names, ``replace=True``) so that these tests do not
depend on which references the library ships. Checks that can fail: the cell sizes and every length
threshold follow the crystal's nearest-neighbour distance; EMT fcc a0 equals ASE's own cell relaxation;
the elastic constants equal an independent finite-difference stress-strain calculation; B from the EOS
equals (C11 + 2 C12) / 3; hcp gets no Cij and says why; the RDF criterion tells two fcc metals apart.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from ase import units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from mlptl.data.references import Reference, register_reference
from mlptl.evaluate.adf import adf_cutoff
from mlptl.evaluate.full import evaluate_model
from mlptl.evaluate.md import md_cell, nearest_neighbour_distance, starting_cell
from mlptl.evaluate.properties import PropertyConfig, compute_properties
from mlptl.evaluate.reference_rdf import reference_rdf
from mlptl.evaluate.stability import StabilityConfig, run_stability

EMT_FCC = {"Cu": 3.59, "Ni": 3.52, "Al": 4.05}


@pytest.fixture(autouse=True, scope="module")
def _test_references():
    """This module's references exist only while it runs: other tests see the library as it ships."""
    from mlptl.data import references as R

    saved = dict(R._REGISTRY)
    for el, a in EMT_FCC.items():
        register_reference(Reference(element=el, name="emt-test", factory=EMT, lattice="fcc", a0=a), replace=True)
    register_reference(Reference(element="Cu", name="emt-hcp-test", factory=EMT, lattice="hcp", a0=2.55), replace=True)
    register_reference(Reference(element="Cu", name="emt-bcc-test", factory=EMT, lattice="bcc", a0=2.87), replace=True)
    yield
    R._REGISTRY.clear()
    R._REGISTRY.update(saved)

STATIC = PropertyConfig(md_steps=0)
FAST = StabilityConfig(temperatures=(300.0,), replicas=1, steps=100, friction=0.05, rdf_window=0.04,
                       rdf_equilibration=0.05, reference_steps=40)


def _relaxed_a0(element: str, a: float) -> float:
    atoms = bulk(element, "fcc", a=a, cubic=True)
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-6, steps=200)
    return float(atoms.cell.lengths()[0])


def _finite_difference_cij(element: str, a: float, eps: float = 1e-3) -> dict[str, float]:
    """C11, C12, C44 (GPa) from central differences of the stress: no matscipy, no fit."""
    base = bulk(element, "fcc", a=a, cubic=True)

    def stress(deformation: np.ndarray) -> np.ndarray:
        atoms = base.copy()
        atoms.calc = EMT()
        atoms.set_cell(np.asarray(base.cell) @ deformation.T, scale_atoms=True)
        return atoms.get_stress(voigt=False)

    def pair(i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        plus, minus = np.eye(3), np.eye(3)
        plus[i, j] += eps
        minus[i, j] -= eps
        if i != j:
            plus[j, i] += eps
            minus[j, i] -= eps
        return stress(plus), stress(minus)

    s1, s2 = pair(0, 0)
    c11 = (s1[0, 0] - s2[0, 0]) / (2 * eps) / units.GPa
    c12 = (s1[1, 1] - s2[1, 1]) / (2 * eps) / units.GPa
    s1, s2 = pair(1, 2)
    c44 = (s1[1, 2] - s2[1, 2]) / (4 * eps) / units.GPa  # engineering shear strain is 2 eps
    return {"C11": float(c11), "C12": float(c12), "C44": float(c44)}


# ------------------------------------------------------------------ cells and length scales
@pytest.mark.parametrize(
    ("element", "reference", "n_atoms", "nn_over_a"),
    [("Si", "sw", 64, math.sqrt(3) / 4), ("Cu", "emt-test", 108, 1 / math.sqrt(2)),
     ("Cu", "emt-bcc-test", 128, math.sqrt(3) / 2), ("Cu", "emt-hcp-test", 108, 1.0)],
)
def test_md_cells_hold_at_least_64_atoms_and_scale_with_the_crystal(element, reference, n_atoms, nn_over_a):
    cell = md_cell(starting_cell(element, reference), None, 64)
    assert len(cell) == n_atoms
    a0 = {"sw": 5.431, "emt-test": 3.59, "emt-bcc-test": 2.87, "emt-hcp-test": 2.55}[reference]
    nn = nearest_neighbour_distance(cell)
    assert nn == pytest.approx(nn_over_a * a0, rel=1e-6)
    lim = StabilityConfig().limits(nn)
    assert lim.min_distance == pytest.approx(0.7 * nn)
    assert lim.grid.rmax == pytest.approx(2.125 * nn)
    assert lim.rdf_threshold == pytest.approx(0.425 * nn)


@pytest.mark.parametrize(
    ("lattice", "a", "factor"),
    [("diamond", 5.431, 1.2), ("fcc", 3.59, 1.2), ("hcp", 2.55, 1.2),
     ("bcc", 2.87, 0.5 * (2 / math.sqrt(3) + 2 * math.sqrt(2) / math.sqrt(3)))],
)
def test_adf_cutoff_counts_the_first_shell(lattice, a, factor):
    crystal = bulk("Cu", lattice, a=a, cubic=lattice != "hcp", orthorhombic=lattice == "hcp")
    nn = nearest_neighbour_distance(crystal)
    assert adf_cutoff(crystal) == pytest.approx(factor * nn, rel=1e-6)
    assert adf_cutoff(crystal, 1.1) == pytest.approx(1.1 * nn)


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("element", sorted(EMT_FCC))
def test_emt_fcc_properties_match_independent_calculations(element):
    props = compute_properties(EMT(), element, reference="emt-test", config=STATIC)
    assert props["lattice"] == "fcc" and props["notes"] == []
    assert props["a0"] == pytest.approx(_relaxed_a0(element, EMT_FCC[element]), rel=1e-4)
    fd = _finite_difference_cij(element, props["a0"])
    for k in ("C11", "C12", "C44"):
        assert props[k] == pytest.approx(fd[k], rel=0.01), (k, props[k], fd[k])
    assert props["C44_unrelaxed"] == pytest.approx(props["C44"], rel=1e-6)  # a Bravais lattice: no internal strain
    assert props["B"] == pytest.approx((props["C11"] + 2 * props["C12"]) / 3, rel=0.01)
    # EMT's zero is not the isolated atom (its bulk energy is ~0): the cohesive energy subtracts the atom
    atom = bulk(element, "fcc", a=props["a0"], cubic=True)[:1]
    atom.set_cell([20.0] * 3)
    atom.pbc = False
    atom.calc = EMT()
    assert props["e_atom"] == pytest.approx(atom.get_potential_energy())
    assert props["ecoh"] == pytest.approx(props["e_per_atom"] - props["e_atom"])
    assert -5.0 < props["ecoh"] < -3.0 and abs(props["e_per_atom"]) < 0.05


def test_hcp_gets_a0_b_ecoh_and_a_note_instead_of_cij():
    props = compute_properties(EMT(), "Cu", reference="emt-hcp-test", config=STATIC)
    assert props["C11"] is None and props["C44"] is None
    assert any("no elastic constants" in n and "hcp" in n for n in props["notes"])
    assert any("not relaxed" in n for n in props["notes"])  # c/a held
    assert props["a0"] == pytest.approx(2.55, rel=0.03) and props["B"] > 50
    fcc = compute_properties(EMT(), "Cu", reference="emt-test", config=STATIC)
    # hcp and fcc are close-packed: nearly the same cohesive energy and volume per atom in EMT
    assert props["ecoh"] == pytest.approx(fcc["ecoh"], abs=0.05)
    assert props["volume"] == pytest.approx(fcc["volume"], rel=0.03)


def test_bcc_gets_cubic_elastic_constants():
    props = compute_properties(EMT(), "Cu", reference="emt-bcc-test", config=STATIC)
    assert props["notes"] == []
    assert props["B"] == pytest.approx((props["C11"] + 2 * props["C12"]) / 3, rel=0.02)
    assert props["volume"] == pytest.approx(props["a0"] ** 3 / 2, rel=1e-9)


def test_fcc_structure_against_its_reference():
    cfg = PropertyConfig(md_steps=60, md_equilibration_steps=20, sample_every=5, md_supercell=2)
    ref = compute_properties(EMT(), "Cu", reference="emt-test", config=cfg, compare_structure=False)
    assert ref["n_atoms_md"] == 32 and ref["adf"]["cutoff"] == pytest.approx(1.2 * 3.59 / math.sqrt(2))
    theta, p = np.asarray(ref["adf"]["theta"]), np.asarray(ref["adf"]["p"])
    assert abs(theta[p.argmax()] - 60.0) < 8  # fcc's most frequent bond angle
    same = compute_properties(EMT(), "Cu", reference="emt-test", config=cfg)
    assert same["rdf_distance"] == 0.0 and same["adf_distance"] == 0.0


# ------------------------------------------------------------------ stability
def test_emt_fcc_cu_stable_with_scaled_thresholds(tmp_path):
    res = run_stability(EMT, "Cu", FAST, reference="emt-test", progress=False, cache_dir=tmp_path)
    assert res.stable_fraction == 1.0, res.table()
    nn = 3.59 / math.sqrt(2)
    assert res.thresholds["n_atoms"] == 108
    assert res.thresholds["min_distance"] == pytest.approx(0.7 * nn, rel=1e-6)
    assert res.thresholds["rdf_rmax"] == pytest.approx(2.125 * nn, rel=1e-6)
    run = res.runs[0]
    assert run.extremes["max_rdf_deviation"] is not None
    assert run.extremes["max_rdf_deviation"] < 0.6 * res.thresholds["rdf_threshold"]
    assert run.extremes["min_distance"] > 1.15 * res.thresholds["min_distance"]
    assert list(tmp_path.glob("rdf-Cu-emt-test-300K-*.json"))


def test_rdf_tells_two_fcc_metals_apart(tmp_path):
    """Cu's crystal compared with Al's reference RDF (a0 13 % larger): the first full window trips."""
    al = reference_rdf("Al", FAST.temperatures, FAST, reference="emt-test", cache_dir=tmp_path)
    config = replace(FAST, criteria=("rdf",))
    res = run_stability(EMT, "Cu", config, reference="emt-test", reference_rdf=al, progress=False)
    assert res.runs[0].criterion == "rdf", res.table()


def test_hcp_and_bcc_run(tmp_path):
    config = replace(FAST, steps=40, criteria=("temperature", "force", "min_distance"))
    for name, n in (("emt-hcp-test", 108), ("emt-bcc-test", 128)):
        res = run_stability(EMT, "Cu", config, reference=name, progress=False, cache_dir=tmp_path)
        assert res.thresholds["n_atoms"] == n
        assert res.runs[0].stable, res.table()


def test_evaluate_model_by_reference_name(tmp_path):
    """The study's final evaluation, with a reference name standing in for the model (no nequip needed)."""
    from mlptl.evaluate.properties import PropertyConfig
    from mlptl.evaluate.stability_config import StabilityConfig

    evaluation = {"stability": StabilityConfig(temperatures=(300.0,), replicas=1, steps=30, reference_steps=20),
                  "properties": PropertyConfig(md_steps=0)}
    metrics = evaluate_model("emt-test", "Cu", tmp_path / "ev", **evaluation, cache_dir=str(tmp_path / "rdf"),
                             reference="emt-test")
    assert metrics["stability_stable_fraction.T300"] == 1.0
    assert metrics["prop_a0"] == pytest.approx(3.59, rel=0.01)
    assert metrics["prop_a0_abs_error"] == 0.0 and metrics["prop_ecoh_abs_error"] == 0.0
    assert {p.name for p in (tmp_path / "ev").iterdir()} >= {"stability.json", "properties.json",
                                                             "evaluation.json"}
    assert json.loads((tmp_path / "ev" / "stability.json").read_text())["reference"] == "emt-test"
    # no reference and no crystal: nothing can run, and the notes say so
    assert evaluate_model("emt-test", "Cu", tmp_path / "none", **evaluation, reference=None) == {}
    notes = json.loads((tmp_path / "none" / "evaluation.json").read_text())["notes"]
    assert notes and "no reference potential" in notes[0]
