"""Crystals of more than one element: random substitutional alloys and ordered compounds.

Both are built by ASE (``ase.build.bulk``, ``ase.lattice.compounds``); what is added here is the
convention for naming and checking them, so that references, data generation and tests agree:

* :func:`random_alloy` fills a parent lattice (fcc, bcc, diamond, ...) with the atoms of a
  :class:`~mlptl.data.chemistry.Composition`, in whole numbers (largest remainders) and a seeded random
  arrangement;
* :func:`ordered_compound` builds one of :data:`COMPOUND_STRUCTURES` for its elements in formula order:
  ``("Si", "C")`` is SiC (Si on the first sublattice), ``("Cu", "Au")`` in L1_2 is Cu3Au (Au at the cube
  corners, Cu on the faces).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from ase import Atoms

from mlptl.data.chemistry import Composition, check_element
from mlptl.data.frames import COMPOSITION
from mlptl.errors import InputError

__all__ = [
    "COMPOUND_STRUCTURES",
    "PARENT_LATTICES",
    "compound_composition",
    "ordered_compound",
    "parent_lattice",
    "random_alloy",
    "vegard_lattice_constant",
]

#: Lattices a random alloy can be built on (conventional cells; hcp as its orthorhombic 4-atom cell).
PARENT_LATTICES = ("sc", "fcc", "bcc", "diamond", "hcp")

#: Ordered compounds: structure -> (formula of its elements A, B; atoms in the conventional cell built,
#: Strukturbericht/space group). ``a`` is the cubic lattice constant, except for wurtzite (hexagonal a)
#: and L1_0 (the fcc-like a; c = a * c_over_a).
COMPOUND_STRUCTURES: dict[str, tuple[str, int, str]] = {
    "zincblende": ("AB", 8, "B3, F-43m (216)"),
    "wurtzite": ("AB", 4, "B4, P6_3mc (186)"),
    "rocksalt": ("AB", 8, "B1, Fm-3m (225)"),
    "B2": ("AB", 2, "CsCl, Pm-3m (221)"),
    "L1_2": ("A3B", 4, "Cu3Au, Pm-3m (221)"),
    "L1_0": ("AB", 4, "CuAu, P4/mmm (123)"),
}

#: Ideal wurtzite: c/a = sqrt(8/3), u = 3/8 (every bond the same length, tetrahedral angles).
IDEAL_WURTZITE = (math.sqrt(8.0 / 3.0), 3.0 / 8.0)


def _repeat(supercell: int | Sequence[int]) -> tuple[int, int, int]:
    reps = (supercell,) * 3 if isinstance(supercell, int | np.integer) else tuple(supercell)
    if len(reps) != 3 or any(int(r) != r or r < 1 for r in reps):
        raise InputError(f"supercell must be a positive integer or three of them, got {supercell!r}")
    return tuple(int(r) for r in reps)  # type: ignore[return-value]


def parent_lattice(
    element: str, lattice: str, a: float, supercell: int | Sequence[int] = 1, *, c_over_a: float | None = None
) -> Atoms:
    """``element``'s crystal on ``lattice`` (conventional cell, cubic where the lattice is), repeated."""
    from ase.build import bulk

    check_element(element)
    if lattice not in PARENT_LATTICES:
        raise InputError(f"lattice {lattice!r} is not one of {', '.join(PARENT_LATTICES)}")
    _check_length(a, "lattice constant a")
    try:
        if lattice == "hcp":
            covera = math.sqrt(8.0 / 3.0) if c_over_a is None else c_over_a
            atoms = bulk(element, "hcp", a=a, c=a * covera, orthorhombic=True)
        else:
            atoms = bulk(element, lattice, a=a, cubic=True)
    except (ValueError, RuntimeError, KeyError) as e:
        raise InputError(f"cannot build a {lattice} cell of {element}: {e}") from None
    return atoms * _repeat(supercell)


def random_alloy(
    composition: Composition | str,
    lattice: str,
    a: float,
    supercell: int | Sequence[int] = 2,
    *,
    seed: int = 0,
    c_over_a: float | None = None,
) -> Atoms:
    """A random substitutional alloy: ``lattice`` sites filled at ``composition``, arranged by ``seed``.

    Every site is occupied; the counts are the whole numbers nearest the composition on the cell's
    sites (:meth:`Composition.counts`), so a composition the cell cannot hold (one Ge in 8 sites at
    Ge0.01) is an InputError. The nominal composition's label is stored in ``info["composition"]``.
    """
    comp = Composition.coerce(composition)
    atoms = parent_lattice(comp.elements[0], lattice, a, supercell, c_over_a=c_over_a)
    counts = comp.counts(len(atoms))
    symbols = np.array([el for el, n in counts.items() for _ in range(n)])
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), len(atoms)]))
    atoms.set_chemical_symbols(list(rng.permutation(symbols)))
    atoms.info[COMPOSITION] = comp.label
    return atoms


def compound_composition(structure: str, elements: Sequence[str]) -> Composition:
    """The composition of ``structure`` for ``elements`` in formula order (L1_2 ("Cu", "Au"): Cu0.75Au0.25)."""
    a, b = _check_compound(structure, elements)
    return Composition({a: 3, b: 1} if structure == "L1_2" else {a: 1, b: 1}, normalize=True)


def ordered_compound(
    structure: str,
    elements: Sequence[str],
    a: float,
    supercell: int | Sequence[int] = 1,
    *,
    c_over_a: float | None = None,
    u: float | None = None,
) -> Atoms:
    """The ordered compound ``structure`` of ``elements`` (formula order) at lattice constant ``a``.

    ``c_over_a``: L1_0 (default 1, the cubic limit) and wurtzite (default ideal sqrt(8/3)); ``u``:
    wurtzite's internal parameter (default ideal 3/8). The conventional cell of
    :data:`COMPOUND_STRUCTURES` is built and repeated ``supercell`` times per axis.
    """
    from ase.build import bulk
    from ase.lattice.compounds import L1_0, L1_2

    first, second = _check_compound(structure, elements)
    _check_length(a, "lattice constant a")
    if c_over_a is not None and structure not in ("L1_0", "wurtzite"):
        raise InputError(f"c_over_a is for L1_0 and wurtzite only, not {structure}")
    if u is not None and structure != "wurtzite":
        raise InputError(f"u is for wurtzite only, not {structure}")
    if c_over_a is not None:
        _check_length(c_over_a, "c_over_a")
    if u is not None and not 0.0 < u < 0.5:
        raise InputError(f"wurtzite's u must lie in (0, 0.5), got {u}")
    name = first + second
    try:
        if structure in ("zincblende", "rocksalt"):
            atoms = bulk(name, structure, a=a, cubic=True)
        elif structure == "B2":
            atoms = bulk(name, "cesiumchloride", a=a)
        elif structure == "wurtzite":
            covera, u0 = IDEAL_WURTZITE
            covera = covera if c_over_a is None else c_over_a
            atoms = bulk(name, "wurtzite", a=a, c=a * covera, u=u0 if u is None else u)
            # ASE puts B at z = 1/2 - u (the c-axis bond pointing from B to A); mirrored in z, the cell is
            # the International Tables setting, A at 2b z = 0 and B at 2b z = u, up to a translation.
            atoms.set_scaled_positions(atoms.get_scaled_positions() * [1.0, 1.0, -1.0])
            atoms.wrap()
        elif structure == "L1_2":  # ASE's order is (corner, faces): (B, A) for A3B
            atoms = L1_2(symbol=(second, first), latticeconstant=a, size=(1, 1, 1), pbc=True)
        else:  # L1_0: A in the z = 0 layer, B in z = c/2
            c = a * (1.0 if c_over_a is None else c_over_a)
            atoms = L1_0(symbol=(first, second), latticeconstant={"a": a, "c": c}, size=(1, 1, 1), pbc=True)
    except (ValueError, RuntimeError, KeyError) as e:
        raise InputError(f"cannot build {structure} {name}: {e}") from None
    atoms = Atoms(atoms)  # a plain Atoms (ase.lattice returns a subclass)
    atoms = atoms * _repeat(supercell)
    atoms.info[COMPOSITION] = compound_composition(structure, elements).label
    return atoms


def vegard_lattice_constant(composition: Composition | str, lattice_constants: dict[str, float]) -> float:
    """Vegard's law: the fraction-weighted mean of each element's own lattice constant."""
    comp = Composition.coerce(composition)
    missing = [el for el in comp.elements if el not in lattice_constants]
    if missing:
        raise InputError(f"no lattice constant for {', '.join(missing)} to interpolate {comp.label}")
    return float(sum(x * lattice_constants[el] for el, x in comp.fractions))


def _check_compound(structure: str, elements: Sequence[str]) -> tuple[str, str]:
    if structure not in COMPOUND_STRUCTURES:
        raise InputError(f"unknown compound structure {structure!r}; known: {', '.join(COMPOUND_STRUCTURES)}")
    if isinstance(elements, str) or len(elements) != 2:
        raise InputError(f"{structure} needs two elements in formula order, e.g. ('Si', 'C'); got {elements!r}")
    first, second = (check_element(el) for el in elements)
    if first == second:
        raise InputError(f"{structure} needs two different elements, got {first} twice")
    return first, second


def _check_length(x: object, what: str) -> None:
    if not (isinstance(x, int | float) and math.isfinite(x) and x > 0):
        raise InputError(f"{what} must be a positive number, got {x!r}")
