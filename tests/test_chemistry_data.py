"""Multi-element data: generation over compositions and temperatures, readers that admit a chemistry,
splits by composition. Tiny MD (a few steps of 8-atom cells): seconds in all."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.frames import composition_of, group_of
from mlptl.data.generate import GenerationSpec
from mlptl.data.mixtures import MixtureSpec, generate_mixture, generate_mixture_frames
from mlptl.data.readers import read_frames, validate_frames, write_frames
from mlptl.data.splits import nested_subsets, split_frames
from mlptl.data.systems import get_system_reference
from mlptl.errors import InputError

pytestmark = pytest.mark.filterwarnings("ignore:'where' used without 'out':UserWarning")


def _spec(**kw) -> MixtureSpec:
    base = dict(
        reference="tersoff", compositions=("Si", "Si0.5Ge0.5"), compounds=("SiGe",), temperatures=(300.0, 600.0),
        frames_per_condition=2, supercell=1, equilibration_steps=4, interval_steps=2,
    )
    return MixtureSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def sige_frames():
    return generate_mixture_frames(_spec(), progress=False)


def test_spec_normalises_and_hashes_like_a_generation_spec():
    spec = _spec()
    assert spec.compositions == ("Si", "Ge0.5Si0.5") and spec.temperatures == (300.0, 600.0)
    assert spec.chemistry == Chemistry(("Ge", "Si")) and spec.system_reference().chemistry.label == "Ge-Si"
    assert spec.n_frames == 3 * 2 * 2 and spec.md_steps == 3 * 2 * (4 + 2 * 2)
    assert _spec(compositions=["Si", "GeSi"], temperatures=[300, 600]).hash() == spec.hash()
    assert _spec(seed=1).hash() != spec.hash() and _spec(compounds=()).hash() != spec.hash()
    assert spec.filename() == f"Ge-Si-tersoff-{spec.hash()}.extxyz"
    assert MixtureSpec("tersoff", "SiC", temperatures="300,900").temperatures == (300.0, 900.0)
    # single-element specs and their cache keys are untouched by all this
    assert GenerationSpec(element="Ge").hash() == GenerationSpec(element="Ge", reference="sw").hash()


@pytest.mark.parametrize(
    "kw, message",
    [
        (dict(compositions=(), compounds=()), "at least one composition or compound"),
        (dict(compositions=("Si", "Si1")), "compositions repeat"),
        (dict(compositions=("Si0.5Sn0.5",)), "covers C-Si, Ge-Si; none of them covers Ge-Si-Sn"),
        (dict(compositions=("Ge0.5C0.5",)), "none of them covers C-Ge"),
        (dict(compounds=("3C-SiC", "GaN")), "no compound 'GaN'"),
        (dict(reference="nope"), "no reference 'nope'"),
        (dict(compositions=("Si0.99Ge0.01",)), "no atom of Ge"),
        (dict(temperatures=(300.0, -1.0)), "temperatures must be positive"),
        (dict(frames_per_condition=0), "frames_per_condition"),
        (dict(compositions=("Si0.7Ge0.2",)), "sum to 1"),
    ],
)
def test_bad_mixture_specs_fail_before_any_md(kw, message):
    with pytest.raises(InputError, match=message):
        _spec(**kw)


def test_frames_carry_composition_structure_and_group(sige_frames):
    frames = sige_frames
    assert len(frames) == 12
    groups = [group_of(a) for a in frames]
    assert sorted(set(groups)) == ["Ge0.5Si0.5_T300", "Ge0.5Si0.5_T600", "SiGe_T300", "SiGe_T600", "Si_T300", "Si_T600"]
    assert all(groups.count(g) == 2 for g in set(groups))
    by_group = {group_of(a): a for a in frames}
    alloy, compound, pure = by_group["Ge0.5Si0.5_T300"], by_group["SiGe_T300"], by_group["Si_T600"]
    assert alloy.info["structure"] == "random diamond" and compound.info["structure"] == "SiGe"
    assert composition_of(alloy) == composition_of(compound) == "Ge0.5Si0.5" == Composition.of(alloy).label
    assert pure.info["element"] == "Si" and "element" not in alloy.info
    assert alloy.info["temperature"] == 300.0 and alloy.info["source"] == "tersoff"
    # the labels are the reference's own
    ref = get_system_reference("tersoff", ["Si", "Ge"])
    check = Atoms(alloy)
    check.calc = ref.calculator()
    assert check.get_potential_energy() == pytest.approx(alloy.get_potential_energy(), abs=1e-9)
    assert np.allclose(check.get_forces(), alloy.get_forces(), atol=1e-9)
    validate_frames(frames, elements=Chemistry("Si,Ge"))


def test_generation_is_deterministic_and_each_trajectory_independent_of_the_others(sige_frames):
    alone = generate_mixture_frames(_spec(compositions=("GeSi",), compounds=(), temperatures=(600.0,)), progress=False)
    same = [a for a in sige_frames if group_of(a) == "Ge0.5Si0.5_T600"]
    assert len(alone) == 2 and all(np.allclose(a.positions, b.positions) for a, b in zip(alone, same, strict=True))
    other = generate_mixture_frames(_spec(compositions=("GeSi",), compounds=(), temperatures=(600.0,), seed=1),
                                    progress=False)
    assert not np.allclose(other[0].positions, alone[0].positions)


def test_generate_mixture_caches_by_spec(tmp_path):
    spec = _spec(compositions=(), compounds=("SiGe",), temperatures=(300.0,), frames_per_condition=1)
    path = generate_mixture(spec, tmp_path, progress=False)
    assert path.name == spec.filename() and path.stat().st_size > 0
    mtime = path.stat().st_mtime_ns
    assert generate_mixture(spec, tmp_path, progress=False) == path and path.stat().st_mtime_ns == mtime
    frames = read_frames(path, elements={"Si", "Ge"})
    assert len(frames) == 1 and frames[0].info["group"] == "SiGe_T300" and frames[0].info["composition"] == "Ge0.5Si0.5"


def _labelled(symbols: str) -> Atoms:
    atoms = Atoms(symbols, positions=[(0, 0, 0), (1.5, 1.5, 1.5)][: len(Atoms(symbols))], cell=[4.0] * 3, pbc=True)
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)))
    return atoms


def test_readers_admit_any_mix_of_the_chemistry_and_name_the_stranger(tmp_path):
    path = write_frames([_labelled("SiGe"), _labelled("Si2"), _labelled("GeC")], tmp_path / "mixed.extxyz")
    assert len(read_frames(path)) == 3  # no chemistry given: every element admitted, as before
    assert len(read_frames(path, elements=["Si", "Ge", "C"])) == 3
    with pytest.raises(InputError, match=r"mixed.extxyz \(frame 2\): frame has element\(s\) C outside the chemistry Ge-Si"):
        read_frames(path, elements=Chemistry("Si,Ge"))
    with pytest.raises(InputError, match=r"\(frame 0\): frame has element\(s\) Ge outside the chemistry Si$"):
        validate_frames([_labelled("SiGe")], tmp_path / "x.extxyz", elements={"Si"})


def test_splits_stratify_by_composition_and_hold_one_out():
    comps = ["Si", "Ge0.25Si0.75", "Ge0.5Si0.5", "Ge"]
    frames = []
    for k, label in enumerate(comps * 10):
        atoms = _labelled("Si2")
        atoms.info.update(composition=label, group=f"{label}_T{300 if k // 4 % 2 else 900}")
        frames.append(atoms)
    split = split_frames(frames, n_test=8, n_val=4, seed=0, group_by=composition_of)
    assert sorted(composition_of(a) for a in split.test) == sorted(comps * 2)
    assert sorted(composition_of(a) for a in split.val) == sorted(comps)
    subsets = nested_subsets(split.train, [4, 8], seed=0, group_by=composition_of)
    assert sorted(composition_of(a) for a in subsets[4]) == sorted(comps)
    held = split_frames(frames, test_groups=["Ge0.5Si0.5"], n_val=2, seed=0, group_by=composition_of)
    assert {composition_of(a) for a in held.test} == {"Ge0.5Si0.5"} and len(held.test) == 10
    assert "Ge0.5Si0.5" not in {composition_of(a) for a in held.train + held.val}
    # by default a split still stratifies by group (composition and temperature here)
    default = split_frames(frames, n_test=8, seed=0)
    assert len({group_of(a) for a in default.test}) == 8


def test_mlptl_data_mixture_writes_alloy_frames_and_rejects_a_bad_composition(tmp_path, capsys):
    from mlptl.cli import main
    from mlptl.data.readers import read_frames

    out = tmp_path / "cuni.extxyz"
    args = ["data", "mixture", "--reference", "emt", "--compositions", "Cu0.5Ni0.5,Ni", "--frames", "2",
            "--equilibration", "5", "--interval", "2", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    frames = read_frames(out, elements=("Cu", "Ni"))
    assert len(frames) == 4 and {a.info["composition"] for a in frames} == {"Cu0.5Ni0.5", "Ni"}
    assert main(["data", "mixture", "--reference", "emt", "--compositions", "Cu0.5Qq0.5"]) == 2
    assert "unknown element 'Qq'" in capsys.readouterr().err
