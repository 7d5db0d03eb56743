"""Reading, validating, summarising and writing frames (mlearn JSON and extxyz)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.singlepoint import SinglePointCalculator

from mlptl.data.frames import ELEMENT, GROUP, SOURCE, TEMPERATURE
from mlptl.data.readers import (
    data_hash,
    mlearn_stress_to_ase,
    read_frames,
    summarize,
    validate_frames,
    write_frames,
)
from mlptl.errors import InputError

KBAR = 0.1 * units.GPa  # one kbar in eV/A^3, 6.2415e-4


def _mlearn_entry(description="Snapshot 3 of 20 of AIMD NVT simulation for normal structure at 1089 K"):
    """A two-atom entry in mlearn's layout; ``abc`` is deliberately wrong so only ``xyz`` can be used."""
    lattice = [[3.0, 0.0, 0.0], [0.5, 3.2, 0.0], [0.1, 0.2, 3.4]]
    return {
        "structure": {
            "@module": "pymatgen.core.structure",
            "@class": "Structure",
            "charge": None,
            "lattice": {"matrix": lattice, "a": 3.0, "b": 3.24, "c": 3.41},
            "sites": [
                {"species": [{"element": "Ge", "occu": 1}], "abc": [0.9, 0.9, 0.9], "xyz": [0.0, 0.0, 0.0]},
                {"species": [{"element": "Ge", "occu": 1}], "abc": [0.9, 0.9, 0.9], "xyz": [1.2, 1.3, 1.4]},
            ],
        },
        "outputs": {
            "energy": -8.5,
            "forces": [[0.1, -0.2, 0.3], [-0.1, 0.2, -0.3]],
            "virial_stress": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],  # xx yy zz xy yz zx, kbar, compression > 0
        },
        "group": "AIMD-NVT",
        "description": description,
        "tag": "train",
        "num_atoms": 2,
    }


def _write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj))
    return path


def _labelled(n=2, **results) -> list[Atoms]:
    frames = []
    for k in range(n):
        atoms = bulk("Ge", "diamond", a=5.65, cubic=True)
        atoms.rattle(0.02, seed=k)
        res = {
            "energy": -30.0 + k,
            "forces": np.full((len(atoms), 3), 0.01 * k),
            "stress": np.arange(6.0) * 1e-3,
        }
        res.update(results)
        atoms.calc = SinglePointCalculator(atoms, **{key: v for key, v in res.items() if v is not None})
        atoms.info.update({GROUP: f"T{300 * (k + 1)}", TEMPERATURE: 300.0 * (k + 1), ELEMENT: "Ge"})
        frames.append(atoms)
    return frames


# ---------------------------------------------------------------- mlearn
def test_mlearn_stress_conversion_units_sign_and_order():
    got = mlearn_stress_to_ase([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    # ASE order xx yy zz yz xz xy = mlearn indices 0 1 2 4 5 3; VASP compression-positive -> ASE tension-positive.
    expected = -np.array([1.0, 2.0, 3.0, 5.0, 6.0, 4.0]) * 6.241509e-4
    assert np.allclose(got, expected, rtol=1e-6)
    assert KBAR == pytest.approx(6.241509e-4, rel=1e-6)


def test_read_synthetic_mlearn(tmp_path):
    entries = [_mlearn_entry(), _mlearn_entry(description="Ge 2x2x2 cell, mode 1, strain 0.02")]
    entries[1]["group"] = "Elastic"
    path = _write_json(tmp_path / "ge.json", entries)
    frames = read_frames(path)
    assert len(frames) == 2
    a = frames[0]
    assert a.get_chemical_symbols() == ["Ge", "Ge"]
    assert np.allclose(a.cell.array, entries[0]["structure"]["lattice"]["matrix"])
    assert np.allclose(a.positions, [[0, 0, 0], [1.2, 1.3, 1.4]])  # Cartesian xyz, not abc
    assert a.pbc.all()
    assert a.get_potential_energy() == -8.5
    assert np.allclose(a.get_forces(), entries[0]["outputs"]["forces"])
    assert a.get_stress()[0] == pytest.approx(-1.0 * KBAR)  # xx
    assert a.get_stress()[3] == pytest.approx(-5.0 * KBAR)  # yz <- mlearn index 4
    assert a.get_stress()[4] == pytest.approx(-6.0 * KBAR)  # xz <- mlearn zx, index 5
    assert a.get_stress()[5] == pytest.approx(-4.0 * KBAR)  # xy <- mlearn index 3
    assert a.info[SOURCE] == "mlearn" and a.info[ELEMENT] == "Ge" and a.info[GROUP] == "AIMD-NVT"
    assert a.info[TEMPERATURE] == 1089.0
    assert TEMPERATURE not in frames[1].info and frames[1].info[GROUP] == "Elastic"


def test_mlearn_round_trips_through_extxyz(tmp_path):
    frames = read_frames(_write_json(tmp_path / "ge.json", [_mlearn_entry()]))
    out = write_frames(frames, tmp_path / "ge.extxyz")
    back = read_frames(out)
    a, b = frames[0], back[0]
    assert np.allclose(a.positions, b.positions) and np.allclose(a.cell.array, b.cell.array)
    assert a.get_potential_energy() == b.get_potential_energy()
    assert np.allclose(a.get_forces(), b.get_forces()) and np.allclose(a.get_stress(), b.get_stress())
    for key in (SOURCE, ELEMENT, GROUP, TEMPERATURE, "description"):
        assert b.info[key] == a.info[key]


@pytest.mark.parametrize(
    "element, split, count, atoms",
    [
        ("Si", "training", 214, 13233),
        ("Si", "test", 25, 1525),
        ("Ge", "training", 228, 14072),
        ("Ge", "test", 25, 1568),
    ],
)
def test_real_mlearn_counts(mlearn_dir, element, split, count, atoms):
    frames = read_frames(mlearn_dir / element / f"{split}.json")
    s = summarize(frames)
    assert s["frames"] == count and s["atoms"] == atoms
    assert s["elements"] == {element: atoms}
    assert s["frames_with_stress"] == count
    assert set(s["groups"]) <= {"AIMD-NVT", "Elastic", "Surface", "Vacancy"}


@pytest.mark.parametrize("element, ground_state", [("Si", -5.4253), ("Ge", -4.4925)])
def test_real_mlearn_physics(mlearn_dir, element, ground_state):
    frames = read_frames(mlearn_dir / element / "training.json")
    s = summarize(frames)
    assert s["groups"]["AIMD-NVT"] == 90
    assert 300.0 in s["temperatures"] and len(s["temperatures"]) == 5
    gs = next(f for f in frames if f.info["description"] == "Ground state crystal")
    assert gs.get_potential_energy() / len(gs) == pytest.approx(ground_state, abs=1e-4)
    assert s["energy_per_atom_min"] == pytest.approx(ground_state, abs=1e-4)
    # Relaxed, so nearly stress-free (mlearn's Ge ground state itself carries 9.6 kbar of residual
    # compression); a 10x unit slip would put it at ~10 GPa.
    assert np.abs(gs.get_stress()).max() < 1.5 * units.GPa

    def elastic(mode, strain):
        desc = f"{element} 2x2x2 cell, mode {mode}, strain {strain}"
        return next(f for f in frames if f.info["description"] == desc)

    # Uniaxial xx strain: tension gives positive, compression negative ASE stress; C11 of the right size.
    stretched, compressed = elastic(0, 0.02), elastic(0, -0.02)
    assert stretched.get_stress()[0] > 0 > compressed.get_stress()[0]
    c11 = (stretched.get_stress()[0] - compressed.get_stress()[0]) / 0.04 / units.GPa
    assert 80 < c11 < 200  # GPa; PBE Si ~150, Ge ~105: a unit slip of 10x would fail
    # Shear modes: the strained off-diagonal pair carries the largest shear stress, in ASE's Voigt slot.
    gs_cell = gs.cell.array
    for mode in (3, 4, 5):
        f = elastic(mode, 0.04)
        deform = np.linalg.solve(gs_cell, f.cell.array).T
        eps = 0.5 * (deform + deform.T)
        i, j = max([(0, 1), (0, 2), (1, 2)], key=lambda p: abs(eps[p]))
        voigt = {(1, 2): 3, (0, 2): 4, (0, 1): 5}[(i, j)]
        shear = f.get_stress()[3:]
        assert int(np.argmax(np.abs(shear))) + 3 == voigt
        assert f.get_stress()[voigt] > 0  # positive shear strain, positive shear stress


# ---------------------------------------------------------------- bad input
def _assert_input_error(path: Path, match: str, frame: int | None = None):
    with pytest.raises(InputError, match=match) as info:
        read_frames(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.path == path
    if frame is not None:
        assert info.value.frame == frame and f"(frame {frame})" in str(info.value)


def test_missing_energy(tmp_path):
    path = tmp_path / "noenergy.extxyz"
    write_frames(_labelled(2, energy=None), path)
    _assert_input_error(path, "no energy", frame=0)


def test_missing_forces(tmp_path):
    frames = _labelled(3)
    frames[2].calc = SinglePointCalculator(frames[2], energy=-1.0)
    path = write_frames(frames, tmp_path / "noforces.extxyz")
    _assert_input_error(path, "no forces", frame=2)


def test_nan_forces(tmp_path):
    frames = _labelled(2)
    forces = frames[1].get_forces().copy()
    forces[3, 1] = np.nan
    frames[1].calc = SinglePointCalculator(frames[1], energy=-1.0, forces=forces)
    path = write_frames(frames, tmp_path / "nan.extxyz")
    _assert_input_error(path, "forces contain NaN", frame=1)


def test_inf_energy_and_nan_position_in_mlearn(tmp_path):
    entry = _mlearn_entry()
    entry["outputs"]["energy"] = float("inf")
    _assert_input_error(
        _write_json(tmp_path / "inf.json", [_mlearn_entry(), entry]), "energy contain NaN", frame=1
    )
    entry = _mlearn_entry()
    entry["structure"]["sites"][1]["xyz"] = [0.0, float("nan"), 0.0]
    _assert_input_error(_write_json(tmp_path / "nanpos.json", [entry]), "positions contain NaN", frame=0)


def test_mlearn_missing_fields(tmp_path):
    entry = _mlearn_entry()
    del entry["outputs"]["forces"]
    _assert_input_error(_write_json(tmp_path / "nof.json", [_mlearn_entry(), entry]), "no forces", frame=1)
    entry = _mlearn_entry()
    del entry["outputs"]["energy"]
    _assert_input_error(_write_json(tmp_path / "noe.json", [entry]), "no energy", frame=0)
    entry = _mlearn_entry()
    del entry["structure"]["sites"][0]["xyz"]
    _assert_input_error(_write_json(tmp_path / "noxyz.json", [entry]), "lacks the structure field", frame=0)
    entry = _mlearn_entry()
    entry["outputs"]["forces"] = [[0.0, 0.0, 0.0]]
    _assert_input_error(_write_json(tmp_path / "shape.json", [entry]), r"forces has shape \(1, 3\)", frame=0)


def test_empty_and_unreadable_files(tmp_path):
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    _assert_input_error(empty, "empty")
    blank = tmp_path / "blank.xyz"
    blank.write_text("\n  \n")
    _assert_input_error(blank, "empty")
    garbage = tmp_path / "garbage.extxyz"
    garbage.write_bytes(b"\x00\xff not a structure \x01\x02\n12 apples\n")
    _assert_input_error(garbage, "cannot read")
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("[{ this is not json")
    _assert_input_error(bad_json, "unreadable JSON")
    empty_list = _write_json(tmp_path / "empty.json", [])
    _assert_input_error(empty_list, "no frames")
    _assert_input_error(tmp_path / "missing.extxyz", "no such file")
    _assert_input_error(tmp_path, "is a directory")


def test_validate_frames_in_memory():
    with pytest.raises(InputError, match=r"mem\.xyz: contains no frames"):
        validate_frames([], "mem.xyz")
    frames = _labelled(2)
    validate_frames(frames)
    frames[0].calc.results["stress"] = np.array([np.nan] * 6)
    with pytest.raises(InputError, match=r"\(frame 0\): stress contain NaN"):
        validate_frames(frames, "mem.xyz")


def test_atoms_closer_than_the_minimum_distance_are_rejected_naming_file_and_frame(tmp_path):
    frames = _labelled(3)
    frames[2].positions[5] = frames[2].positions[3] + [0.3, 0.0, 0.0]  # a duplicated atom, slightly moved
    path = write_frames(frames, tmp_path / "overlap.extxyz")
    _assert_input_error(path, r"atoms 3 and 5 are 0\.300 A apart, closer than 0\.5 A", frame=2)
    assert len(read_frames(path, validate=False)) == 3


def test_minimum_distance_counts_periodic_images_and_molecules():
    frames = _labelled(1)
    a = frames[0]
    length = a.cell[0, 0]
    a.positions[0] = [0.1, 1.0, 1.0]
    a.positions[1] = [length - 0.2, 1.0, 1.0]  # 0.3 A apart only through the periodic boundary
    with pytest.raises(InputError, match=r"mem\.xyz \(frame 0\): atoms 0 and 1 are 0\.300 A apart"):
        validate_frames(frames, "mem.xyz")
    a.pbc = False  # the same positions in a molecule are 5.4 A apart: accepted
    validate_frames(frames, "mem.xyz")
    tiny_cell = Atoms("Ge", positions=[[0, 0, 0]], cell=[0.4, 5.0, 5.0], pbc=True)
    tiny_cell.calc = SinglePointCalculator(tiny_cell, energy=-1.0, forces=np.zeros((1, 3)))
    with pytest.raises(InputError, match="atom 0 and a periodic image of itself are 0.400 A apart"):
        validate_frames([tiny_cell], "cell.xyz")
    molecule = Atoms("Ge2", positions=[[0, 0, 0], [0.45, 0, 0]])  # no cell at all
    molecule.calc = SinglePointCalculator(molecule, energy=-1.0, forces=np.zeros((2, 3)))
    with pytest.raises(InputError, match="atoms 0 and 1 are 0.450 A apart"):
        validate_frames([molecule], "mol.xyz")
    molecule.positions[1] = [0.55, 0, 0]
    validate_frames([molecule], "mol.xyz")


def test_write_frames_is_atomic_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "out.extxyz"
    write_frames(_labelled(2), path)
    assert len(read_frames(path)) == 2
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.extxyz"]


def test_read_without_validation_returns_unlabelled_frames(tmp_path):
    path = tmp_path / "plain.xyz"
    bulk("Si", "diamond", a=5.43).write(path, format="extxyz")
    assert len(read_frames(path, validate=False)) == 1
    _assert_input_error(path, "no energy", frame=0)


# ---------------------------------------------------------------- summary, hash
def test_summarize():
    frames = _labelled(2)
    s = summarize(frames)
    assert s["frames"] == 2 and s["atoms"] == 16
    assert s["elements"] == {"Ge": 16}
    assert s["groups"] == {"T300": 1, "T600": 1}
    assert s["temperatures"] == [300.0, 600.0]
    assert s["energy_per_atom_min"] == pytest.approx(-30.0 / 8)
    assert s["energy_per_atom_max"] == pytest.approx(-29.0 / 8)
    assert s["max_abs_force"] == pytest.approx(0.01 * np.sqrt(3))
    json.dumps(s)  # serialisable for `mlptl data info --json`


def test_data_hash(tmp_path):
    path = write_frames(_labelled(2), tmp_path / "a.extxyz")
    assert data_hash(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    before = data_hash(path)
    write_frames(_labelled(1), path)
    assert data_hash(path) != before
