"""Train/validation/test splits and nested training subsets.

Two rules make learning curves comparable across training sizes and across scratch vs transfer:

* the test set is a function of the data, the seed and the test settings alone, never of the training
  size, so every point of a learning curve is scored on the same frames;
* training subsets are nested: one seeded ordering, of which a size-N training set is the first N, so
  a larger set only adds frames and the curve is not blurred by resampling.

Orderings are stratified by group (``info["group"]``: a temperature such as "T300" for generated
data, mlearn's "AIMD-NVT", "Elastic", "Surface", "Vacancy"). Every prefix of a stratified ordering
holds each group in proportion to its size (to within one frame), so a 10-frame training set or a
25-frame test set of mlearn data is not, by chance, all AIMD snapshots with no surface. Groups are
also the handle for transfer-across-conditions splits: ``test_groups=["T900"], train_groups=["T300"]``
trains at 300 K and tests at 900 K.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np
from ase import Atoms

from mlptl.data.frames import group_of
from mlptl.errors import InputError

__all__ = ["Split", "split_indices", "split_frames", "nested_subsets", "stratified_order"]

T = TypeVar("T")
U = TypeVar("U")

# Salts for the independent random streams derived from one user seed.
_TEST_STREAM = 0
_TRAIN_STREAM = 1


@dataclass
class Split(Generic[T]):
    """Train, validation and test items (frames or indices into a frame list).

    ``train`` is in a seeded stratified order, so ``train[:n]`` is itself a valid nested training set.
    """

    train: list[T] = field(default_factory=list)
    val: list[T] = field(default_factory=list)
    test: list[T] = field(default_factory=list)

    @property
    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def take(self: Split[int], items: Sequence[U]) -> Split[U]:
        """Map an index split onto the items it indexes."""
        return Split(
            train=[items[i] for i in self.train],
            val=[items[i] for i in self.val],
            test=[items[i] for i in self.test],
        )


def stratified_order(groups: Sequence[str], rng: np.random.Generator) -> list[int]:
    """A random order of ``range(len(groups))`` whose every prefix is proportional across groups.

    Each group's members are shuffled and placed at evenly spaced fractional positions (k + u) / n_g,
    u a per-group random offset; sorting all positions interleaves the groups systematically.
    """
    groups = list(groups)
    by_group: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        by_group.setdefault(g, []).append(i)
    keys: list[tuple[float, float, int]] = []
    for g in sorted(by_group):
        members = np.array(by_group[g])
        rng.shuffle(members)
        n_g = len(members)
        offset = rng.uniform()
        ties = rng.uniform(size=n_g)
        for k, idx in enumerate(members):
            keys.append(((k + offset) / n_g, float(ties[k]), int(idx)))
    keys.sort()
    return [idx for _, _, idx in keys]


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), stream]))


def _where(path: str | Path | None) -> str:
    return "the file" if path is not None else "the data set"


def nested_subsets(
    items: Sequence[T],
    sizes: Sequence[int],
    seed: int = 0,
    *,
    groups: Sequence[str] | None = None,
    path: str | Path | None = None,
    group_by: Callable[[Atoms], str] = group_of,
) -> dict[int, list[T]]:
    """Training sets of the given sizes, each contained in the next larger one.

    ``items`` are frames or indices. Frames are stratified by ``group_by`` (default their group)
    automatically; for indices pass ``groups`` (one label per item) to stratify, or get a plain seeded
    permutation.
    """
    items = list(items)
    if not sizes:
        raise InputError("no training sizes given", path=path)
    bad = [n for n in sizes if int(n) != n or n < 1]
    if bad:
        raise InputError(f"training sizes must be positive integers, got {bad}", path=path)
    largest = max(int(n) for n in sizes)
    if largest > len(items):
        raise InputError(
            f"asked for {largest} training frames but {_where(path)} has only {len(items)} "
            "after the test/validation split",
            path=path,
        )
    if groups is None and items and all(isinstance(x, Atoms) for x in items):
        groups = [group_by(x) for x in items]
    rng = _rng(seed, _TRAIN_STREAM)
    if groups is not None:
        if len(groups) != len(items):
            raise ValueError(f"{len(groups)} group labels for {len(items)} items")
        order = stratified_order(groups, rng)
    else:
        order = [int(i) for i in rng.permutation(len(items))]
    return {int(n): [items[i] for i in order[: int(n)]] for n in sorted(set(sizes))}


def _check_groups(name: str, wanted: Sequence[str] | None, known: set[str], path) -> set[str] | None:
    if wanted is None:
        return None
    if isinstance(wanted, str):
        wanted = [wanted]
    unknown = sorted(set(wanted) - known)
    if unknown:
        raise InputError(f"{name} {unknown} not in the data; its groups are {sorted(known)}", path=path)
    return set(wanted)


def split_indices(
    groups: Sequence[str],
    *,
    n_test: int | None = None,
    test_fraction: float | None = None,
    n_val: int = 0,
    n_train: int | None = None,
    seed: int = 0,
    test_groups: Sequence[str] | None = None,
    train_groups: Sequence[str] | None = None,
    path: str | Path | None = None,
) -> Split[int]:
    """Split frame indices given one group label per frame.

    Test set: drawn from ``test_groups`` (default: all groups), ``n_test`` frames or
    ``test_fraction`` of the candidates; if neither is given, all frames of ``test_groups``, or 10%
    of the data when no test groups are named either. It depends on the labels, the seed and these
    settings only. Validation and training come from the remaining frames of ``train_groups``
    (default: every group not named in ``test_groups``; all groups if none are): ``n_val`` frames for
    validation, the rest (or the first ``n_train`` of its seeded order) for training.
    """
    labels = [str(g) for g in groups]
    n = len(labels)
    if n == 0:
        raise InputError("contains no frames to split", path=path)
    if n_test is not None and test_fraction is not None:
        raise InputError("give n_test or test_fraction, not both", path=path)
    if test_fraction is not None and not 0.0 <= test_fraction < 1.0:
        raise InputError(f"test_fraction must be in [0, 1), got {test_fraction}", path=path)
    for name, value in (("n_test", n_test), ("n_val", n_val), ("n_train", n_train)):
        if value is not None and value < 0:
            raise InputError(f"{name} must be >= 0, got {value}", path=path)

    known = set(labels)
    test_set = _check_groups("test groups", test_groups, known, path)
    train_set = _check_groups("train groups", train_groups, known, path)

    # --- test: from the seed, the labels and the test settings alone
    test_candidates = [i for i in range(n) if test_set is None or labels[i] in test_set]
    if n_test is None:
        if test_fraction is None and test_set is not None:
            n_test = len(test_candidates)
        else:
            frac = 0.1 if test_fraction is None else test_fraction
            n_test = int(round(frac * len(test_candidates)))
            if frac > 0:
                n_test = max(n_test, 1)
    if n_test > len(test_candidates):
        scope = f"in groups {sorted(test_set)}" if test_set is not None else "in total"
        raise InputError(
            f"asked for {n_test} test frames but {_where(path)} has only {len(test_candidates)} {scope}",
            path=path,
        )
    order = stratified_order([labels[i] for i in test_candidates], _rng(seed, _TEST_STREAM))
    test = sorted(test_candidates[j] for j in order[:n_test])
    in_test = set(test)

    # --- validation and training: from the rest of the training groups
    if train_set is None:
        train_set = known - test_set if test_set is not None else known
    pool = [i for i in range(n) if i not in in_test and labels[i] in train_set]
    if n_val > len(pool):
        raise InputError(
            f"asked for {n_val} validation frames but {_where(path)} has only {len(pool)} "
            "outside the test set",
            path=path,
        )
    order = stratified_order([labels[i] for i in pool], _rng(seed, _TRAIN_STREAM))
    ordered = [pool[j] for j in order]
    val = sorted(ordered[:n_val])
    train = ordered[n_val:]
    if n_train is not None:
        if n_train > len(train):
            raise InputError(
                f"asked for {n_train} training frames but {_where(path)} has only {len(train)} "
                "after the test/validation split",
                path=path,
            )
        train = train[:n_train]
    return Split(train=train, val=val, test=test)


def split_frames(
    frames: Sequence[Atoms],
    *,
    n_test: int | None = None,
    test_fraction: float | None = None,
    n_val: int = 0,
    n_train: int | None = None,
    seed: int = 0,
    test_groups: Sequence[str] | None = None,
    train_groups: Sequence[str] | None = None,
    path: str | Path | None = None,
    group_by: Callable[[Atoms], str] = group_of,
) -> Split[Atoms]:
    """:func:`split_indices` on the frames' groups, returning frames (see there for the rules).

    ``group_by`` labels each frame (default :func:`~mlptl.data.frames.group_of`; e.g.
    :func:`~mlptl.data.frames.composition_of` to stratify by composition, and to hold one out with
    ``test_groups``). ``path`` only names the source file in error messages.
    """
    idx = split_indices(
        [group_by(a) for a in frames],
        n_test=n_test,
        test_fraction=test_fraction,
        n_val=n_val,
        n_train=n_train,
        seed=seed,
        test_groups=test_groups,
        train_groups=train_groups,
        path=path,
    )
    return idx.take(list(frames))
