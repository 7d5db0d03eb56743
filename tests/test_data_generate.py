"""Reference potentials and MD data generation."""

from __future__ import annotations

import dataclasses
import json
import logging
import re

import numpy as np
import pytest
from ase import units

from mlptl.cli import main
from mlptl.data.frames import ELEMENT, GROUP, SEED, SOURCE, TEMPERATURE
from mlptl.data.generate import (
    FORMAT_VERSION,
    PRESET_MELTING_POINT,
    GenerationSpec,
    generate,
    generate_frames,
    known_presets,
    parse_temperatures,
    preset,
    scaled_temperatures,
)
from mlptl.data.readers import atomic_write_extxyz, read_frames
from mlptl.data.references import get_reference
from mlptl.errors import InputError


@pytest.fixture(autouse=True)
def library_only(monkeypatch):
    """The registry as mlptl ships it (other test modules register references of their own at import),
    so that an element's default reference here is the library's."""
    from mlptl.data import references

    shipped = set(references.library_references())
    monkeypatch.setattr(references, "_REGISTRY", {k: v for k, v in references._REGISTRY.items() if k in shipped})


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


# ---------------------------------------------------------------- spec, presets
def test_spec_hash_is_stable_and_sensitive():
    a = GenerationSpec("Ge", temperatures=[300, 900])
    b = GenerationSpec("Ge", temperatures=(300.0, 900.0))
    assert a == b and a.hash() == b.hash()
    assert re.fullmatch(r"[0-9a-f]{12}", a.hash())
    assert a.filename() == f"Ge-sw-{a.hash()}.extxyz"
    assert GenerationSpec("Ge").reference == "sw"  # Ge's only reference
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
    assert tiny.element == "Ge" and tiny.reference == "sw" and tiny.supercell == 2
    assert tiny.temperatures == (300.0, 900.0)
    assert tiny.md_steps <= 300  # seconds, not minutes
    paper = preset("paper", "Si", reference="sw")
    assert paper.supercell == 2 and paper.element == "Si"
    assert paper.temperatures == (300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0)  # SW Si: as designed
    assert paper.n_frames >= 600  # nested training sets up to ~500 beside a fixed test set
    assert preset("tiny", "Si", reference="sw", seed=7).seed == 7


def test_sw_specs_are_unchanged_but_for_the_format_version():
    # The fields (hence the data, but for FORMAT_VERSION 2's thermalisation) of the SW presets are those
    # of version 1: only the version in the hash moved.
    spec = preset("tiny", "Ge")
    assert spec == GenerationSpec("Ge", "sw", (300.0, 900.0), 5, 2, 1.0, 20, 10, 0.02, 0, 0.0)
    assert FORMAT_VERSION == 2


def test_preset_needs_a_reference_only_where_the_element_has_several():
    with pytest.raises(InputError, match=r"Si has several reference potentials .*reference="):
        preset("tiny", "Si")
    with pytest.raises(InputError, match="several reference potentials"):
        GenerationSpec("C")
    assert preset("tiny", "Cu").reference == "emt"
    assert preset("tiny", "C", reference="tersoff").reference == "tersoff"
    with pytest.raises(InputError, match=r"no reference potential 'sw' for element 'Cu'"):
        preset("tiny", "Cu", reference="sw")


def test_preset_temperatures_scale_with_the_melting_point():
    cu = get_reference("Cu", "emt")  # experimental Tm 1357.8 K
    tiny = preset("tiny", "Cu", reference="emt").temperatures
    assert tiny == scaled_temperatures((300.0, 900.0), cu) == (241.0, 723.0)
    hot = preset("paper", "Cu", reference="emt").temperatures
    assert max(hot) / cu.melting_point == pytest.approx(1800.0 / PRESET_MELTING_POINT, abs=1e-3)
    assert preset("tiny", "Pt", reference="emt").temperatures == (300.0, 900.0)  # melts above SW Si
    assert preset("tiny", "C", reference="brenner").temperatures == (300.0, 900.0)  # no Tm on record
    assert preset("tiny", "Cu", "emt", temperatures=(500.0,)).temperatures == (500.0,)  # used as given


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

    ecoh = ref.literature["ecoh"]
    assert ecoh < mean("T300", e_per_atom) < mean("T900", e_per_atom)
    assert 0 < mean("T300", fmax) < mean("T900", fmax)
    # 300 K holds about 3/2 kT of potential energy per atom (harmonic solid): 0.039 eV.
    assert 0.01 < mean("T300", e_per_atom) - ecoh < 0.08


LATTICE_MODULE = """
from ase.calculators.emt import EMT
from mlptl.data.references import Reference

def bcc(element):
    return Reference(element, "bcc", EMT, "bcc", 2.87)

def hcp(element):
    return Reference(element, "hcp", EMT, "hcp", 2.56, c_over_a=1.63)
"""


@pytest.fixture
def lattice_refs(tmp_path, monkeypatch):
    """bcc and hcp Cu (EMT) as import-path references: no library reference has those lattices."""
    (tmp_path / "mlptl_test_lattices.py").write_text(LATTICE_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mlptl_test_lattices"


@pytest.mark.parametrize(
    "element, reference, n_atoms",
    [("Cu", "emt", 32), ("C", "tersoff", 64), ("Cu", "{mod}:bcc", 16), ("Cu", "{mod}:hcp", 32)],
)
def test_generation_builds_the_reference_lattice(element, reference, n_atoms, lattice_refs):
    reference = reference.format(mod=lattice_refs)
    spec = GenerationSpec(element, reference, temperatures=(300.0,), frames_per_temperature=2,
                          equilibration_steps=5, interval_steps=3)
    ref = get_reference(element, reference)
    frames = generate_frames(spec, progress=False)
    crystal = ref.crystal(2)
    assert len(frames) == 2 and all(len(f) == n_atoms for f in frames)
    for f in frames:
        assert np.allclose(f.cell.array, crystal.cell.array)
        assert f.info[SOURCE] == reference and f.info[GROUP] == "T300"
        assert np.isfinite(f.get_potential_energy()) and np.isfinite(f.get_forces()).all()
    # The MD moved the atoms off the lattice, a little: 300 K, a few fs.
    shift = np.linalg.norm(frames[-1].positions - crystal.positions, axis=1)
    assert 1e-3 < shift.mean() < 0.3


def test_emt_copper_data_is_a_warm_crystal(tmp_path):
    """The Ni -> Cu study's data: the tiny preset for EMT Cu, at 241 and 723 K (scaled to Cu's Tm)."""
    path = generate(preset("tiny", "Cu", reference="emt"), tmp_path, progress=False)
    frames = read_frames(path)
    assert {f.info[GROUP] for f in frames} == {"T241", "T723"}
    ref = get_reference("Cu", "emt")
    crystal = ref.crystal(1)
    crystal.calc = ref.calculator()
    e_min = crystal.get_potential_energy() / len(crystal)  # ASE's EMT: -7 meV/atom, not exactly 0
    for group, t in (("T241", 241.0), ("T723", 723.0)):
        sel = [f for f in frames if f.info[GROUP] == group]
        excess = np.mean([f.get_potential_energy() / len(f) for f in sel]) - e_min
        # A harmonic solid holds 3/2 kT of potential energy per atom; 5 frames of 32 atoms scatter.
        assert 0.5 < excess / (1.5 * units.kB * t) < 1.5, (group, excess)
        assert np.isfinite(np.concatenate([f.get_forces() for f in sel])).all()


def test_import_path_reference_filename_is_safe(lattice_refs):
    spec = GenerationSpec("Cu", f"{lattice_refs}:bcc", temperatures=(300.0,))
    assert spec.filename() == f"Cu-{lattice_refs}_bcc-{spec.hash()}.extxyz"


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
    assert path.parent == tmp_path / "envcache" / "data"  # mlptl.fsutil.cache_dir("data")


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
