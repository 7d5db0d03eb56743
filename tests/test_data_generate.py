"""Reference potentials and MD data generation."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.test import calculate_numerical_forces
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from mlptl.cli import main
from mlptl.data.frames import ELEMENT, GROUP, SEED, SOURCE, TEMPERATURE
from mlptl.data.generate import (
    GenerationSpec,
    generate,
    generate_frames,
    known_presets,
    parse_temperatures,
    preset,
)
from mlptl.data.readers import atomic_write_extxyz, read_frames
from mlptl.data.references import get_reference
from mlptl.errors import InputError

# Published SW values (minimised diamond crystal): a0 in Angstrom, cohesive energy in eV/atom.
SW_EQUILIBRIUM = {"Si": (5.431, -4.3366), "Ge": (5.654, -3.860)}


def _small_spec(**kw) -> GenerationSpec:
    """About 15 MD steps: enough to test determinism without paying for a data set."""
    base = dict(
        element="Ge",
        temperatures=(600.0,),
        frames_per_temperature=2,
        equilibration_steps=5,
        interval_steps=4,
    )
    base.update(kw)
    return GenerationSpec(**base)


# ---------------------------------------------------------------- reference potentials
@pytest.mark.parametrize("element", sorted(SW_EQUILIBRIUM))
def test_sw_equilibrium_lattice_and_cohesive_energy(element):
    a_lit, e_lit = SW_EQUILIBRIUM[element]
    ref = get_reference(element, "sw")
    atoms = bulk(element, ref.lattice, a=1.03 * a_lit, cubic=True)  # start 3% off the minimum
    atoms.calc = ref.calculator()
    opt = BFGS(FrechetCellFilter(atoms, hydrostatic_strain=True), logfile=None)
    assert opt.run(fmax=1e-5, steps=200)
    a = atoms.cell.lengths()
    assert np.allclose(a, a[0])
    assert a[0] == pytest.approx(a_lit, abs=2e-3)
    assert atoms.get_potential_energy() / len(atoms) == pytest.approx(e_lit, abs=1e-3)


@pytest.mark.parametrize("element", sorted(SW_EQUILIBRIUM))
def test_sw_forces_are_minus_the_energy_gradient(element):
    ref = get_reference(element, "sw")
    atoms = bulk(element, ref.lattice, a=ref.a0, cubic=True) * (2, 2, 2)
    atoms.rattle(0.08, seed=3)
    atoms.calc = ref.calculator()
    forces = atoms.get_forces()
    assert np.abs(forces).max() > 0.1  # rattled: the check is not 0 == 0
    iatoms = [0, 17, 42]
    numeric = calculate_numerical_forces(atoms, eps=1e-4, iatoms=iatoms)
    assert np.abs(numeric - forces[iatoms]).max() < 1e-6


@pytest.mark.parametrize("element", sorted(SW_EQUILIBRIUM))
def test_sw_stress_is_the_strain_derivative_with_ase_sign(element):
    ref = get_reference(element, "sw")
    atoms = bulk(element, ref.lattice, a=1.01 * ref.a0, cubic=True) * (2, 2, 2)  # stretched
    atoms.rattle(0.05, seed=4)
    atoms.calc = ref.calculator()
    stress = atoms.get_stress()
    assert stress[:3].mean() > 0  # ASE sign: positive under tension
    volume, eps = atoms.get_volume(), 1e-5
    cell0 = atoms.cell.array.copy()
    for voigt, (i, j) in [(0, (0, 0)), (5, (0, 1))]:
        energies = []
        for sign in (1, -1):
            strain = np.eye(3)
            strain[i, j] += sign * eps
            if i != j:
                strain[j, i] += sign * eps  # symmetric strain: the stress is a symmetric tensor
            strained = atoms.copy()
            strained.calc = ref.calculator()
            strained.set_cell(cell0 @ strain, scale_atoms=True)
            energies.append(strained.get_potential_energy())
        numeric = (energies[0] - energies[1]) / (2 * eps) / volume / (2 if i != j else 1)
        assert stress[voigt] == pytest.approx(numeric, abs=1e-7, rel=1e-4)


# ---------------------------------------------------------------- spec, presets
def test_spec_hash_is_stable_and_sensitive():
    a = GenerationSpec("Ge", temperatures=[300, 900])
    b = GenerationSpec("Ge", temperatures=(300.0, 900.0))
    assert a == b and a.hash() == b.hash()
    assert re.fullmatch(r"[0-9a-f]{12}", a.hash())
    assert a.filename() == f"Ge-sw-{a.hash()}.extxyz"
    changed = {
        "element": "Si",
        "temperatures": (300.0,),
        "frames_per_temperature": 11,
        "supercell": 3,
        "timestep_fs": 2.0,
        "equilibration_steps": 1,
        "interval_steps": 3,
        "friction": 0.05,
        "seed": 1,
        "strain": 0.01,
    }
    hashes = {a.hash()} | {dataclasses.replace(a, **{k: v}).hash() for k, v in changed.items()}
    assert len(hashes) == len(changed) + 1


@pytest.mark.parametrize(
    "bad",
    [
        {"temperatures": ()},
        {"temperatures": (-5.0,)},
        {"temperatures": (300.0, 300.0)},
        {"frames_per_temperature": 0},
        {"supercell": 0},
        {"timestep_fs": 0.0},
        {"friction": -1.0},
    ],
)
def test_invalid_spec_is_an_input_error(bad):
    with pytest.raises(InputError, match="invalid generation spec"):
        GenerationSpec("Ge", **bad)


def test_presets():
    assert {"tiny", "paper"} <= set(known_presets())
    tiny = preset("tiny", "Ge")
    assert tiny.element == "Ge" and tiny.supercell == 2 and len(tiny.temperatures) >= 2
    assert tiny.md_steps <= 300  # seconds, not minutes
    paper = preset("paper", "Si")
    assert paper.supercell == 2 and paper.element == "Si"
    assert min(paper.temperatures) <= 300 and max(paper.temperatures) >= 1500
    assert paper.n_frames >= 600  # nested training sets up to ~500 beside a fixed test set
    assert preset("tiny", "Si", seed=7).seed == 7


def test_unknown_preset_lists_known_ones():
    with pytest.raises(InputError, match=r"unknown data preset 'huge'.*paper.*tiny|tiny.*paper"):
        preset("huge", "Ge")


def test_unknown_element_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no reference potential"):
        generate(_small_spec(element="Xx"), tmp_path, progress=False)


def test_parse_temperatures():
    assert parse_temperatures("300,900") == (300.0, 900.0)
    assert parse_temperatures(" 300K, 1200 ") == (300.0, 1200.0)
    with pytest.raises(InputError, match="bad temperature 'abc'"):
        parse_temperatures("300,abc")


# ---------------------------------------------------------------- generation
def test_generation_is_deterministic_per_seed():
    first = generate_frames(_small_spec(seed=5), progress=False)
    again = generate_frames(_small_spec(seed=5), progress=False)
    other = generate_frames(_small_spec(seed=6), progress=False)
    assert len(first) == 2
    for a, b in zip(first, again):
        assert np.array_equal(a.positions, b.positions)
        assert a.get_potential_energy() == b.get_potential_energy()
    assert not np.allclose(first[-1].positions, other[-1].positions)


def test_trajectory_depends_on_its_temperature_not_on_the_others():
    alone = generate_frames(_small_spec(temperatures=(600.0,)), progress=False)
    both = generate_frames(_small_spec(temperatures=(300.0, 600.0)), progress=False)
    at600 = [f for f in both if f.info[TEMPERATURE] == 600.0]
    assert np.array_equal(alone[-1].positions, at600[-1].positions)


def test_tiny_dataset_content(tiny_ge):
    spec = preset("tiny", "Ge")
    frames = read_frames(tiny_ge)
    assert tiny_ge.name == spec.filename()
    assert len(frames) == spec.n_frames
    ref = get_reference("Ge", "sw")
    for f in frames:
        assert len(f) == 64
        assert np.allclose(f.cell.lengths(), 2 * ref.a0)
        assert f.info[ELEMENT] == "Ge" and f.info[SOURCE] == "sw" and f.info[SEED] == 0
        assert f.info[GROUP] == f"T{int(f.info[TEMPERATURE])}"
        assert f.get_stress().shape == (6,)
        assert "momenta" not in f.arrays
    assert {f.info[GROUP] for f in frames} == {"T300", "T900"}

    # The labels belong to the stored positions: recompute one frame with the reference.
    frame = frames[-1]
    atoms = frame.copy()
    atoms.calc = ref.calculator()
    assert atoms.get_potential_energy() == pytest.approx(frame.get_potential_energy(), abs=1e-6)
    assert np.allclose(atoms.get_forces(), frame.get_forces(), atol=1e-6)
    assert np.allclose(atoms.get_stress(), frame.get_stress(), atol=1e-8)

    # Hotter frames sit higher above the crystal minimum and have larger forces.
    def mean(group, fn):
        return np.mean([fn(f) for f in frames if f.info[GROUP] == group])

    def e_per_atom(f):
        return f.get_potential_energy() / len(f)

    def fmax(f):
        return np.abs(f.get_forces()).max()

    ecoh = SW_EQUILIBRIUM["Ge"][1]
    assert ecoh < mean("T300", e_per_atom) < mean("T900", e_per_atom)
    assert 0 < mean("T300", fmax) < mean("T900", fmax)
    # 300 K holds about 3/2 kT of potential energy per atom (harmonic solid): 0.039 eV.
    assert 0.01 < mean("T300", e_per_atom) - ecoh < 0.08


def test_generate_caches_by_spec(tmp_path, caplog):
    spec = _small_spec(seed=11)
    with caplog.at_level(logging.INFO, logger="mlptl"):
        path = generate(spec, tmp_path, progress=False)
    assert any("generating" in r.getMessage() for r in caplog.records)
    mtime = path.stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mlptl"):
        again = generate(spec, tmp_path, progress=False)
    messages = [r.getMessage() for r in caplog.records]
    assert again == path
    assert any("using cached" in m for m in messages)
    assert not any("generating" in m for m in messages)
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == [spec.filename()]  # no temporary left


def test_generate_uses_env_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MLPTL_CACHE", str(tmp_path / "envcache"))
    path = generate(_small_spec(frames_per_temperature=1), progress=False)
    assert path.parent == tmp_path / "envcache"


def test_atomic_write_leaves_old_file_or_nothing(tmp_path, tiny_ge):
    frames = read_frames(tiny_ge)
    target = tmp_path / "out.extxyz"

    def failing():
        yield frames[0]
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_extxyz(failing(), target)
    assert list(tmp_path.iterdir()) == []
    atomic_write_extxyz(frames[:2], target)
    before = target.read_bytes()
    with pytest.raises(RuntimeError):
        atomic_write_extxyz(failing(), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.extxyz"]


# ---------------------------------------------------------------- command line
def test_cli_generate_writes_out(tmp_path, capsys):
    out = tmp_path / "sub" / "ge.extxyz"
    argv = [
        "data", "generate", "--element", "Ge", "--temperatures", "300", "--frames", "2",
        "--equilibration", "3", "--interval", "2", "--seed", "2",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out)
    frames = read_frames(out)
    assert len(frames) == 2 and frames[0].info[SEED] == 2 and frames[0].info[GROUP] == "T300"
    cached = list((tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].read_bytes() == out.read_bytes()


def test_cli_generate_preset_with_override(tmp_path, capsys):
    argv = [
        "data", "generate", "--element", "Ge", "--preset", "tiny", "--temperatures", "450",
        "--frames", "1", "--equilibration", "2", "--interval", "2",
        "--cache-dir", str(tmp_path), "--no-progress",
    ]  # fmt: skip
    assert main(argv) == 0
    path = capsys.readouterr().out.strip()
    expected = dataclasses.replace(
        preset("tiny", "Ge"),
        temperatures=(450.0,),
        frames_per_temperature=1,
        equilibration_steps=2,
        interval_steps=2,
    )
    assert path == str(tmp_path / expected.filename())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--preset", "huge"], "unknown data preset"),
        (["--temperatures", "300,hot"], "bad temperature"),
        (["--frames", "0"], "frames_per_temperature must be at least 1"),
    ],
)
def test_cli_generate_bad_input_exits_2(tmp_path, capsys, extra, message):
    argv = ["data", "generate", "--element", "Ge", "--cache-dir", str(tmp_path), "--no-progress", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_cli_info(tiny_ge, capsys):
    assert main(["data", "info", str(tiny_ge), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["frames"] == 10 and info["atoms"] == 640
    assert info["elements"] == {"Ge": 640}
    assert info["groups"] == {"T300": 5, "T900": 5}
    assert info["temperatures"] == [300.0, 900.0]
    assert len(info["sha256"]) == 64
    assert main(["data", "info", str(tiny_ge)]) == 0
    table = capsys.readouterr().out
    assert "T300: 5" in table and "max_abs_force" in table


def test_cli_info_missing_file_exits_2(tmp_path, capsys):
    missing = tmp_path / "nope.extxyz"
    assert main(["data", "info", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
