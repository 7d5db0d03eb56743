"""Splits: a fixed test set, nested training subsets, group (temperature) splits."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from ase import Atoms

from mlptl.data.frames import GROUP, TEMPERATURE, group_of
from mlptl.data.readers import read_frames
from mlptl.data.splits import Split, nested_subsets, split_frames, split_indices, stratified_order
from mlptl.errors import InputError


def _frames(counts: dict[str, int]) -> list[Atoms]:
    """One-atom frames labelled by group; the frame's x coordinate is its index, to tell them apart."""
    frames = []
    for group, n in counts.items():
        for _ in range(n):
            atoms = Atoms("Ge", positions=[[len(frames), 0, 0]])
            atoms.info[GROUP] = group
            frames.append(atoms)
    return frames


def _ids(frames) -> list[int]:
    return [int(a.positions[0, 0]) for a in frames]


LABELS = ["T300"] * 60 + ["T900"] * 40


def test_split_is_a_partition():
    s = split_indices(LABELS, n_test=20, n_val=10, seed=1)
    assert s.sizes == {"train": 70, "val": 10, "test": 20}
    assert sorted(s.train + s.val + s.test) == list(range(100))


def test_test_set_is_independent_of_training_and_validation_size():
    ref = split_indices(LABELS, n_test=20, seed=3).test
    for n_val, n_train in [(0, None), (5, 10), (10, 40), (30, 50)]:
        assert split_indices(LABELS, n_test=20, n_val=n_val, n_train=n_train, seed=3).test == ref
    assert split_indices(LABELS, n_test=20, seed=4).test != ref


def test_test_and_training_sets_are_stratified_by_group():
    s = split_indices(LABELS, n_test=20, seed=5)
    assert Counter(LABELS[i] for i in s.test) == {"T300": 12, "T900": 8}
    for n in (5, 10, 25, 50):
        c = Counter(LABELS[i] for i in s.train[:n])
        assert abs(c["T300"] - 0.6 * n) <= 1 and abs(c["T900"] - 0.4 * n) <= 1


def test_stratified_order_prefixes_are_proportional():
    labels = ["a"] * 50 + ["b"] * 30 + ["c"] * 20
    order = stratified_order(labels, np.random.default_rng(0))
    assert sorted(order) == list(range(100))
    for n in range(1, 101):
        c = Counter(labels[i] for i in order[:n])
        for g, share in (("a", 0.5), ("b", 0.3), ("c", 0.2)):
            assert abs(c[g] - share * n) <= 1.0 + 1e-9
    assert order != stratified_order(labels, np.random.default_rng(1))


def test_temperature_transfer_split():
    frames = _frames({"T300": 30, "T600": 20, "T900": 25})
    s = split_frames(frames, test_groups=["T900"], train_groups=["T300"], n_val=5, seed=0)
    assert {group_of(a) for a in s.test} == {"T900"} and len(s.test) == 25
    assert {group_of(a) for a in s.train + s.val} == {"T300"}
    assert len(s.train) == 25 and len(s.val) == 5
    # Without train_groups, training uses every group not held out for testing.
    s = split_frames(frames, test_groups="T900", seed=0)
    assert {group_of(a) for a in s.train} == {"T300", "T600"} and len(s.train) == 50
    # A sample of the test group, the rest of it unused for training only if train_groups says so.
    s = split_frames(frames, test_groups=["T900"], n_test=10, train_groups=["T300", "T900"], seed=0)
    assert len(s.test) == 10 and Counter(group_of(a) for a in s.train) == {"T300": 30, "T900": 15}


def test_split_frames_returns_the_frames():
    frames = _frames({"T300": 8, "T900": 8})
    s = split_frames(frames, n_test=4, n_val=2, seed=0)
    idx = split_indices([group_of(a) for a in frames], n_test=4, n_val=2, seed=0)
    assert _ids(s.test) == idx.test and _ids(s.val) == idx.val and _ids(s.train) == idx.train
    assert isinstance(s, Split)


def test_default_test_fraction_and_group_from_temperature():
    frames = _frames({"x": 40})
    for a, t in zip(frames, [300.0, 900.0] * 20):
        del a.info[GROUP]
        a.info[TEMPERATURE] = t  # group falls back to the temperature
    s = split_frames(frames, seed=0)
    assert len(s.test) == 4 and Counter(group_of(a) for a in s.test) == {"T300": 2, "T900": 2}
    assert len(split_frames(frames, test_fraction=0.25, seed=0).test) == 10


def test_nested_subsets():
    frames = _frames({"T300": 30, "T900": 30})
    subsets = nested_subsets(frames, [40, 5, 10, 20], seed=2)
    assert list(subsets) == [5, 10, 20, 40]
    ids = {n: _ids(f) for n, f in subsets.items()}
    for small, large in [(5, 10), (10, 20), (20, 40)]:
        assert ids[small] == ids[large][:small]
    assert len(set(ids[40])) == 40
    assert Counter(group_of(a) for a in subsets[10]) == {"T300": 5, "T900": 5}  # stratified
    assert _ids(nested_subsets(frames, [40], seed=2)[40]) == ids[40]  # deterministic
    assert _ids(nested_subsets(frames, [40], seed=3)[40]) != ids[40]


def test_nested_subsets_of_indices():
    subsets = nested_subsets(range(50), [10, 30], seed=0)
    assert subsets[10] == subsets[30][:10] and len(set(subsets[30])) == 30
    assert subsets[30] != list(range(30))  # shuffled
    grouped = nested_subsets(range(50), [10], seed=0, groups=["a"] * 25 + ["b"] * 25)
    assert sum(i < 25 for i in grouped[10]) == 5


def test_too_many_training_frames_names_the_file():
    split = split_indices(LABELS, n_test=50, n_val=10, seed=0)
    with pytest.raises(InputError) as info:
        nested_subsets(split.train, [10, 50], seed=0, path="data/ge.extxyz")
    assert str(info.value) == (
        "data/ge.extxyz: asked for 50 training frames but the file has only 40 after the test/validation split"
    )
    with pytest.raises(
        InputError, match=r"ge\.extxyz: asked for 41 training frames but the file has only 40"
    ):
        split_indices(LABELS, n_test=50, n_val=10, n_train=41, path="ge.extxyz")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_test": 101}, "asked for 101 test frames"),
        (
            {"test_groups": ["T900"], "n_test": 41},
            r"asked for 41 test frames .* only 40 in groups \['T900'\]",
        ),
        ({"n_test": 90, "n_val": 11}, "asked for 11 validation frames"),
        ({"test_groups": ["T1200"]}, r"test groups \['T1200'\] not in the data"),
        ({"train_groups": ["T5"]}, r"train groups \['T5'\] not in the data"),
        ({"n_test": 5, "test_fraction": 0.1}, "not both"),
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"n_val": -1}, "n_val must be >= 0"),
    ],
)
def test_bad_split_requests(kwargs, message):
    with pytest.raises(InputError, match=message) as info:
        split_indices(LABELS, path="ge.extxyz", **kwargs)
    assert str(info.value).startswith("ge.extxyz: ")


def test_bad_sizes():
    with pytest.raises(InputError, match="positive integers"):
        nested_subsets(range(10), [0, 5])
    with pytest.raises(InputError, match="no training sizes"):
        nested_subsets(range(10), [])
    with pytest.raises(InputError, match="no frames"):
        split_indices([])


def test_mlearn_split_keeps_every_group(mlearn_dir):
    path = mlearn_dir / "Si" / "training.json"
    frames = read_frames(path)
    s = split_frames(frames, n_test=25, n_val=20, seed=0, path=path)
    groups = Counter(group_of(a) for a in frames)
    test_groups = Counter(group_of(a) for a in s.test)
    assert set(test_groups) == set(groups)  # even the 12 surfaces are represented
    for g, n in groups.items():
        assert abs(test_groups[g] - 25 * n / len(frames)) <= 1
    assert len(s.train) == len(frames) - 45
