"""Reference potentials for chemical systems: one calculator that labels any mix of a set of elements.

A :class:`SystemReference` covers a :class:`~mlptl.data.chemistry.Chemistry` and returns one ASE calculator
for frames of any of its elements in any proportion (a random alloy, a compound, a pure crystal). It also
knows each element's own crystal under the potential (for Vegard's law and formation energies) and the
ordered compounds the potential was made for, each at the potential's own lattice constant. The library
below is tested against published values in tests/test_chemistry.py:

==============  ===========  ===========================================================================
name            elements     potential; compounds
==============  ===========  ===========================================================================
``tersoff``     C, Si        Tersoff, Phys. Rev. B 39, 5566 (1989), chi_SiC = 0.9776 (matscipy's set);
                             3C-SiC (zincblende)
``tersoff``     Ge, Si       Tersoff 1989 Si and Ge with chi_SiGe = 1.00061 (:data:`TERSOFF_SI_GE`);
                             zincblende SiGe (a hypothetical ordered alloy)
``erhart-albe`` C, Si        Erhart & Albe, Phys. Rev. B 71, 035211 (2005), Si-C set; 3C-SiC
``emt``         Al Ni Cu Pd  ASE's EMT (Jacobsen, Stoltze & Norskov 1996); Cu3Au (L1_2), CuAu (L1_0),
                Ag Pt Au     CuPd (B2)
==============  ===========  ===========================================================================

Tersoff published no Ge-C interaction, so ``tersoff`` is two systems, C-Si and Ge-Si, and a Ge-C frame
has no Tersoff reference. Each system's pure elements are labelled exactly as the single-element
:class:`~mlptl.data.references.Reference` of the same name labels them (the same parameters), so a
single-element study is unchanged whichever it asks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from math import sqrt

from ase import Atoms
from ase.calculators.calculator import Calculator

from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.references import LATTICES, get_reference
from mlptl.data.structures import (
    compound_composition,
    ordered_compound,
    parent_lattice,
    random_alloy,
    vegard_lattice_constant,
)
from mlptl.errors import InputError

__all__ = [
    "Compound",
    "SystemReference",
    "TERSOFF_SI_GE",
    "get_system_reference",
    "register_system_reference",
    "register_shipped",
    "shipped_references",
    "system_reference_names",
    "system_references",
    "tersoff_si_ge",
]


@dataclass(frozen=True)
class Compound:
    """An ordered compound a reference is meant for, at the reference's own lattice constant.

    ``elements`` are in formula order (:func:`mlptl.data.structures.ordered_compound`); ``a0`` (and
    ``c_over_a`` for L1_0 / wurtzite, ``u`` for wurtzite) are the potential's own minimum, not experiment's.
    ``literature`` holds published values for this potential where there are any: a0 (A), ecoh (eV/atom,
    relative to the isolated atoms, negative), formation (eV/atom, relative to the elements' own crystals),
    B (GPa); keys ending in ``_experiment`` are experiment's, for loose checks only.
    """

    name: str
    structure: str
    elements: tuple[str, str]
    a0: float
    c_over_a: float | None = None
    u: float | None = None
    literature: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "elements", tuple(self.elements))
        try:  # builds it once: every field is checked where the builder checks it
            self.atoms()
        except InputError as e:
            raise InputError(f"compound {self.name!r}: {e}") from None

    @property
    def composition(self) -> Composition:
        return compound_composition(self.structure, self.elements)

    def atoms(self, supercell: int = 1, *, strain: float = 0.0) -> Atoms:
        """The compound's conventional cell, every length scaled by ``1 + strain``, repeated per axis."""
        return ordered_compound(
            self.structure, self.elements, self.a0 * (1.0 + strain), supercell, c_over_a=self.c_over_a, u=self.u
        )


@dataclass(frozen=True)
class SystemReference:
    """A reference potential for every mix of the elements of ``chemistry``.

    ``crystals`` gives each element's own crystal under this potential: (lattice, a0), a0 its minimum.
    ``factory`` returns one ASE calculator for any frame of these elements (it must pickle: a
    module-level function or a ``functools.partial`` of one).
    """

    name: str
    chemistry: Chemistry
    factory: Callable[[], Calculator]
    crystals: Mapping[str, tuple[str, float]]
    compounds: tuple[Compound, ...] = ()
    citation: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.chemistry, Chemistry):
            object.__setattr__(self, "chemistry", Chemistry(self.chemistry))
        object.__setattr__(self, "compounds", tuple(self.compounds))
        problems = []
        if not callable(self.factory):
            problems.append("factory must be a callable returning an ASE calculator")
        if sorted(self.crystals) != list(self.chemistry.elements):
            problems.append(f"crystals must give each of {self.chemistry} once, got {sorted(self.crystals)}")
        for el, (lattice, a0) in self.crystals.items():
            if lattice not in LATTICES or not (isinstance(a0, int | float) and math.isfinite(a0) and a0 > 0):
                problems.append(f"crystal of {el} must be (one of {', '.join(LATTICES)}, a0 > 0), got {(lattice, a0)}")
        for c in self.compounds:
            if not self.chemistry.covers(c.elements):
                problems.append(f"compound {c.name} has elements outside {self.chemistry}")
        names = [c.name for c in self.compounds]
        if len(set(names)) != len(names):
            problems.append(f"compound names repeat: {names}")
        if problems:
            raise InputError(f"system reference {self.name!r} for {self.chemistry}: " + "; ".join(problems))

    @property
    def elements(self) -> tuple[str, ...]:
        return self.chemistry.elements

    def calculator(self) -> Calculator:
        return self.factory()

    def covers(self, elements: Iterable[str] | Chemistry | Atoms) -> bool:
        """Whether this reference can label frames of ``elements`` (or of the frame given)."""
        if isinstance(elements, Atoms):
            elements = elements.get_chemical_symbols()
        return self.chemistry.covers(elements)

    def compound(self, name: str) -> Compound:
        for c in self.compounds:
            if c.name == name:
                return c
        have = ", ".join(c.name for c in self.compounds) or "none"
        raise InputError(f"system reference {self.name!r} ({self.chemistry}) has no compound {name!r} (it has: {have})")

    def crystal(self, element: str, supercell: int = 1, *, strain: float = 0.0) -> Atoms:
        """``element``'s own crystal under this potential (conventional cell), repeated per axis."""
        lattice, a0 = self._crystal_of(element)
        return parent_lattice(element, lattice, a0 * (1.0 + strain), supercell)

    def lattice_constant(self, composition: Composition | str) -> float:
        """Vegard's law over the elements' own lattice constants (on their common lattice)."""
        comp = Composition.coerce(composition)
        self._check_covers(comp.elements)
        return vegard_lattice_constant(comp, {el: a0 for el, (_, a0) in self.crystals.items()})

    def parent_lattice_of(self, composition: Composition | str) -> str:
        """The lattice the composition's elements share here; an InputError where they differ."""
        comp = Composition.coerce(composition)
        self._check_covers(comp.elements)
        lattices = {self.crystals[el][0] for el in comp.elements}
        if len(lattices) != 1:
            raise InputError(
                f"{comp.label}: its elements' crystals differ under {self.name} "
                f"({', '.join(f'{el} {self.crystals[el][0]}' for el in comp.elements)}); name the lattice"
            )
        return lattices.pop()

    def alloy(
        self,
        composition: Composition | str,
        supercell: int = 2,
        *,
        seed: int = 0,
        lattice: str | None = None,
        strain: float = 0.0,
    ) -> Atoms:
        """A random substitutional alloy of ``composition`` on its elements' common lattice (or ``lattice``),
        at the Vegard's-law lattice constant scaled by ``1 + strain``."""
        comp = Composition.coerce(composition)
        self._check_covers(comp.elements)
        lattice = lattice or self.parent_lattice_of(comp)
        a = self.lattice_constant(comp) * (1.0 + strain)
        return random_alloy(comp, lattice, a, supercell, seed=seed)

    def isolated_atom_energy(self, element: str) -> float:
        """The energy of one atom of ``element`` alone (the zero of cohesive energies)."""
        self._check_covers([element])
        key = (self.name, self.chemistry.label, element, id(self.factory))
        if key not in _ATOM_ENERGY:
            atom = Atoms(element, positions=[(0.0, 0.0, 0.0)], cell=[30.0] * 3, pbc=False)
            atom.calc = self.calculator()
            _ATOM_ENERGY[key] = float(atom.get_potential_energy())
        return _ATOM_ENERGY[key]

    def crystal_energy(self, element: str) -> float:
        """The energy per atom of ``element``'s own crystal at its a0 (the zero of formation energies)."""
        key = (self.name, self.chemistry.label, element, id(self.factory), "crystal")
        if key not in _ATOM_ENERGY:
            atoms = self.crystal(element)
            atoms.calc = self.calculator()
            _ATOM_ENERGY[key] = float(atoms.get_potential_energy()) / len(atoms)
        return _ATOM_ENERGY[key]

    def cohesive_energy(self, atoms: Atoms, energy: float | None = None) -> float:
        """(E - the isolated atoms' energies) / N, in eV/atom; E computed here unless given."""
        e = self._energy(atoms, energy)
        return (e - sum(self.isolated_atom_energy(s) for s in atoms.get_chemical_symbols())) / len(atoms)

    def formation_energy(self, atoms: Atoms, energy: float | None = None) -> float:
        """(E - each atom's energy in its element's own crystal) / N, in eV/atom."""
        e = self._energy(atoms, energy)
        return (e - sum(self.crystal_energy(s) for s in atoms.get_chemical_symbols())) / len(atoms)

    def _energy(self, atoms: Atoms, energy: float | None) -> float:
        self._check_covers(atoms.get_chemical_symbols())
        if energy is not None:
            return float(energy)
        atoms = atoms.copy()
        atoms.calc = self.calculator()
        return float(atoms.get_potential_energy())

    def _crystal_of(self, element: str) -> tuple[str, float]:
        self._check_covers([element])
        return self.crystals[element]

    def _check_covers(self, elements: Iterable[str]) -> None:
        outside = self.chemistry.outside(elements)
        if outside:
            raise InputError(
                f"reference {self.name!r} covers {self.chemistry}, not {', '.join(outside)}"
            )


_ATOM_ENERGY: dict[tuple, float] = {}
_REGISTRY: dict[tuple[str, str], SystemReference] = {}


def register_system_reference(ref: SystemReference, *, replace: bool = False) -> SystemReference:
    """Add a system reference in this process (keyed by name and chemistry)."""
    key = (ref.name, ref.chemistry.label)
    if key in _REGISTRY and not replace:
        raise ValueError(f"system reference {ref.name!r} for {ref.chemistry} is already registered")
    _REGISTRY[key] = ref
    return ref


def system_references(elements: Iterable[str] | Chemistry | None = None) -> list[SystemReference]:
    """The registered system references, or those that cover ``elements``, by name then chemistry."""
    refs = [ref for _, ref in sorted(_REGISTRY.items())]
    if elements is None:
        return refs
    elements = elements if isinstance(elements, Chemistry) else Chemistry(elements)
    return [ref for ref in refs if ref.chemistry.covers(elements)]


def system_reference_names(elements: Iterable[str] | Chemistry) -> list[str]:
    """The names of the registered references that cover every element of ``elements``."""
    return sorted({ref.name for ref in system_references(elements)})


def get_system_reference(name: str, elements: Iterable[str] | Chemistry) -> SystemReference:
    """The reference ``name`` that covers ``elements``: of several, the one with fewest elements (then
    the first by chemistry). An InputError says which chemistries ``name`` covers, or which names cover
    ``elements``."""
    chem = elements if isinstance(elements, Chemistry) else Chemistry(elements)
    named = [ref for (n, _), ref in sorted(_REGISTRY.items()) if n == name]
    fits = sorted((r for r in named if r.chemistry.covers(chem)), key=lambda r: (len(r.chemistry), r.chemistry.label))
    if fits:
        return fits[0]
    if named:
        have = ", ".join(str(r.chemistry) for r in named)
        raise InputError(f"reference {name!r} covers {have}; none of them covers {chem}")
    others = ", ".join(system_reference_names(chem)) or "none"
    raise InputError(f"no reference {name!r} for a chemical system; references covering {chem}: {others}")


# ------------------------------------------------------------------ the library
#: Tersoff 1989 silicon and germanium with their mixing parameter, in matscipy's Tersoff convention (pairs
#: ordered Si-Si, Si-Ge, Ge-Ge). matscipy ships Tersoff's Si-C set only. Element parameters: J. Tersoff,
#: Phys. Rev. B 39, 5566 (1989), Table I (Si as Phys. Rev. B 38, 9902 (1988); the same numbers as matscipy's
#: Tersoff_PRB_39_5566_Si_C); chi_SiGe = 1.00061 from the same paper. Mixed pairs by Tersoff's rules:
#: lambda and mu arithmetic means, A, B, R and S geometric means. LAMMPS's potentials/SiCGe.tersoff has the
#: same numbers (its Si-Ge B = chi * sqrt(B_Si B_Ge) = 444.7177 eV, R +- D = 2.8996 +- 0.15 A).
TERSOFF_SI_GE = {
    "__ref__": "J. Tersoff, Phys. Rev. B 39, 5566 (1989), Si and Ge with chi_SiGe = 1.00061",
    "style": "Tersoff",
    "el": ["Si", "Ge"],
    "A": [1.8308e3, sqrt(1.8308e3 * 1.769e3), 1.769e3],
    "B": [4.7118e2, sqrt(4.7118e2 * 4.1923e2), 4.1923e2],
    "chi": [1.0, 1.00061, 1.0],
    "lambda": [2.4799, (2.4799 + 2.4451) / 2, 2.4451],
    "mu": [1.7322, (1.7322 + 1.7047) / 2, 1.7047],
    "lambda3": [0.0, 0.0, 0.0],
    "beta": [1.1000e-6, 9.0166e-7],
    "n": [7.8734e-1, 7.5627e-1],
    "c": [1.0039e5, 1.0643e5],
    "d": [1.6217e1, 1.5652e1],
    "h": [-5.9825e-1, -4.3884e-1],
    "r1": [2.70, sqrt(2.70 * 2.80), 2.80],
    "r2": [3.00, sqrt(3.00 * 3.10), 3.10],
}


def tersoff_si_ge() -> Calculator:
    """matscipy's many-body calculator with :data:`TERSOFF_SI_GE`."""
    from matscipy.calculators.manybody.explicit_forms import TersoffBrenner

    from mlptl.data._matscipy import manybody

    return manybody(TersoffBrenner(TERSOFF_SI_GE))


def _own(element: str, name: str) -> tuple[str, float]:
    ref = get_reference(element, name)
    return ref.lattice, ref.a0


# Compound a0 (and c/a) below are each potential's own minimum, measured (tests/test_chemistry.py checks
# them). Published SiC values are the potentials' own as Atomistica's bulk-property test tabulates them
# for the same parameter sets (github.com/Atomistica/atomistica, tests/bulk_properties.py): Tersoff 3C-SiC
# a0 4.321 A, Ecoh 6.165 eV/atom, B 224 GPa; Erhart-Albe 3C-SiC a0 4.359 A, Ecoh 6.340 eV/atom, B 224 GPa.
_TERSOFF_SIC = SystemReference(
    "tersoff", Chemistry(("C", "Si")), get_reference("Si", "tersoff").factory,
    crystals={"C": _own("C", "tersoff"), "Si": _own("Si", "tersoff")},
    compounds=(Compound("3C-SiC", "zincblende", ("Si", "C"), 4.3211,
                        literature={"a0": 4.321, "ecoh": -6.165, "B": 224.0}),),
    citation="J. Tersoff, Phys. Rev. B 39, 5566 (1989) and erratum 41, 3248 (1990); matscipy's Si-C set",
)
# Ge: its own minimum; "a0_experiment" and "ecoh_experiment" are experiment's values (Kittel), which
# Tersoff's Ge parameters were fit to reproduce. No published number for zincblende SiGe under this
# potential is known to us: tests hold it to Vegard's law and a small heat of formation instead.
_TERSOFF_SIGE = SystemReference(
    "tersoff", Chemistry(("Ge", "Si")), tersoff_si_ge,
    crystals={"Ge": ("diamond", 5.6567), "Si": _own("Si", "tersoff")},
    compounds=(Compound("SiGe", "zincblende", ("Si", "Ge"), 5.5416),),
    citation=TERSOFF_SI_GE["__ref__"],
)
_ERHART_ALBE_SIC = SystemReference(
    "erhart-albe", Chemistry(("C", "Si")), get_reference("Si", "erhart-albe").factory,
    crystals={"C": _own("C", "erhart-albe"), "Si": _own("Si", "erhart-albe")},
    compounds=(Compound("3C-SiC", "zincblende", ("Si", "C"), 4.3593,
                        literature={"a0": 4.359, "ecoh": -6.340, "B": 224.0}),),
    citation="P. Erhart and K. Albe, Phys. Rev. B 71, 035211 (2005), Si-C parameter set (matscipy's)",
)
# EMT compounds: no published EMT values for them are known to us, so only experiment's lattice constants
# are recorded, for loose checks (Cu3Au 3.749 A; CuAu I a 3.966 A, c/a 0.926; beta-CuPd 2.988 A).
_EMT_ELEMENTS = ("Ag", "Al", "Au", "Cu", "Ni", "Pd", "Pt")
_EMT = SystemReference(
    "emt", Chemistry(_EMT_ELEMENTS), get_reference("Cu", "emt").factory,
    crystals={el: _own(el, "emt") for el in _EMT_ELEMENTS},
    compounds=(
        Compound("Cu3Au", "L1_2", ("Cu", "Au"), 3.7081, literature={"a0_experiment": 3.749}),
        Compound("CuAu", "L1_0", ("Cu", "Au"), 3.9527, c_over_a=0.9059,
                 literature={"a0_experiment": 3.966, "c_over_a_experiment": 0.926}),
        Compound("CuPd", "B2", ("Cu", "Pd"), 2.9725, literature={"a0_experiment": 2.988}),
    ),
    citation=get_reference("Cu", "emt").citation,
)

for _ref in (_TERSOFF_SIC, _TERSOFF_SIGE, _ERHART_ALBE_SIC, _EMT):
    register_system_reference(_ref)
_LIBRARY_SYSTEM_KEYS = frozenset(_REGISTRY)


def shipped_references() -> tuple:
    """The references this process registered beyond mlptl's library, one-element and system ones: what a
    study ships to its Ray workers (other processes, on other nodes, that get only the library)."""
    from mlptl.data.references import user_references

    systems = [ref for key, ref in sorted(_REGISTRY.items()) if key not in _LIBRARY_SYSTEM_KEYS]
    return (*user_references(), *systems)


def register_shipped(refs) -> None:
    """In a worker: register what :func:`shipped_references` collected in the driver."""
    from mlptl.data import references

    for ref in refs:
        if isinstance(ref, SystemReference):
            register_system_reference(ref, replace=True)
        else:
            references.register_shipped([ref])
