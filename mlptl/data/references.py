"""Reference potentials: the oracles that label configurations, keyed by (element, name).

Elements are data here, not code: a new pair needs a reference for each element, nothing else. The
library registered below holds the classical potentials matscipy and ASE ship, each with the crystal it
was fit to and the published numbers it is tested against (tests/test_references.py):

=============  ==============  ==========================================================================
name           elements        potential
=============  ==============  ==========================================================================
``sw``         Si, Ge          Stillinger-Weber (Si: Stillinger & Weber 1985; Ge: Ding & Andersen 1986)
``tersoff``    Si, C           Tersoff, Phys. Rev. B 39, 5566 (1989)
``kumagai``    Si              Kumagai, Izumi, Hara & Sakai, Comput. Mater. Sci. 39, 457 (2007)
``erhart-albe``  Si, C         Erhart & Albe, Phys. Rev. B 71, 035211 (2005), the Si-C parameter set
``brenner``    C               Brenner, Phys. Rev. B 42, 9458 (1990), potential II, analytic part
``emt``        Al Ni Cu Pd     effective-medium theory, Jacobsen, Stoltze & Norskov, Surf. Sci. 366, 394
               Ag Pt Au        (1996), as ASE implements it
=============  ==============  ==========================================================================

A reference registered with :func:`register_reference` exists only in the process that registered it.
A reference every process can build (a Ray worker on another node, a resumed driver) is named by an
import path instead, ``"package.module:attr"``: :func:`get_reference` imports the module and takes
``attr``, which is either a :class:`Reference` or a callable returning one. The callable receives the
element symbol if it takes an argument (one factory may serve several elements) and is called with no
argument otherwise. The result is cached per process, renamed to the import path (so frames and caches
record a name that resolves anywhere). The module must be importable wherever data is labelled or MD is
run: an installed package, or a directory on ``PYTHONPATH`` (for Ray, e.g. ``runtime_env={"env_vars":
{"PYTHONPATH": ...}}`` or ``{"py_modules": [...]}``).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ase import Atoms
from ase.calculators.calculator import Calculator

from mlptl.errors import InputError

__all__ = [
    "LATTICES",
    "Reference",
    "register_reference",
    "get_reference",
    "reference_calculator",
    "reference_names",
    "default_reference_name",
    "known_references",
    "library_references",
    "user_references",
    "register_shipped",
    "is_import_name",
    "stillinger_weber",
    "SW_GE_DING_ANDERSEN",
]

#: Lattices :meth:`Reference.crystal` builds (conventional cells; hcp as its orthorhombic 4-atom cell).
LATTICES = ("sc", "fcc", "bcc", "diamond", "hcp")


@dataclass(frozen=True)
class Reference:
    """A reference potential for one element, with what is needed to build cells for it.

    ``a0`` is the potential's own equilibrium lattice constant (not experiment's), so that the crystal
    every stage starts from is at zero pressure for it; for hcp it is the basal ``a`` and ``c_over_a``
    gives ``c`` (ideal sqrt(8/3) if unset). ``literature`` holds published values for this potential (a0
    in Angstrom; ecoh in eV/atom, relative to the isolated atom and negative; B and C_ij in GPa;
    ``C44_unrelaxed`` without internal relaxation). ``melting_point`` (K) is the potential's own where
    published, otherwise experiment's (``citation`` says which); data presets scale their temperatures
    by it. ``mass`` (amu) overrides ASE's standard atomic mass.
    """

    element: str
    name: str
    factory: Callable[[], Calculator]
    lattice: str
    a0: float
    mass: float | None = None
    citation: str = ""
    literature: dict[str, float] = field(default_factory=dict)
    c_over_a: float | None = None
    melting_point: float | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.lattice not in LATTICES:
            problems.append(f"lattice {self.lattice!r} is not one of {', '.join(LATTICES)}")
        if not (isinstance(self.a0, int | float) and math.isfinite(self.a0) and self.a0 > 0):
            problems.append(f"a0 must be a positive length in Angstrom, got {self.a0!r}")
        if self.c_over_a is not None and (self.lattice != "hcp" or not self.c_over_a > 0):
            problems.append(f"c_over_a={self.c_over_a!r} is only for hcp, and positive")
        if self.melting_point is not None and not self.melting_point > 0:
            problems.append(f"melting_point must be positive (K), got {self.melting_point!r}")
        if not callable(self.factory):
            problems.append("factory must be a callable returning an ASE calculator")
        if problems:
            raise InputError(f"reference {self.name!r} for {self.element}: " + "; ".join(problems))

    def calculator(self) -> Calculator:
        return self.factory()

    def crystal(self, supercell: int = 1, *, strain: float = 0.0) -> Atoms:
        """The reference crystal (conventional cell, cubic where the lattice is), repeated per axis.

        Data generation, stability and properties all start from this one cell, so that a new lattice
        needs one change here and nowhere else. ``strain`` scales every length by ``1 + strain``.
        """
        from ase.build import bulk

        a = self.a0 * (1.0 + strain)
        try:
            if self.lattice == "hcp":
                covera = self.c_over_a if self.c_over_a is not None else math.sqrt(8.0 / 3.0)
                atoms = bulk(self.element, "hcp", a=a, c=a * covera, orthorhombic=True)
            else:
                atoms = bulk(self.element, self.lattice, a=a, cubic=True)
        except (ValueError, RuntimeError, KeyError) as e:
            raise InputError(f"cannot build a {self.lattice} cell for {self.element}: {e}") from None
        atoms = atoms * (supercell, supercell, supercell)
        if self.mass is not None:
            atoms.set_masses([self.mass] * len(atoms))
        return atoms

    def isolated_atom_energy(self) -> float:
        """The energy of one atom alone: the zero of the cohesive energy, ecoh = E/N - this.

        Zero for the bond-order and SW potentials; +E0 for EMT, whose energy zero is the crystal.
        """
        key = (self.element, self.name, id(self.factory))
        if key not in _ATOM_ENERGY:
            atom = Atoms(self.element, positions=[(0.0, 0.0, 0.0)], cell=[30.0] * 3, pbc=False)
            atom.calc = self.calculator()
            _ATOM_ENERGY[key] = float(atom.get_potential_energy())
        return _ATOM_ENERGY[key]


_ATOM_ENERGY: dict[tuple[str, str, int], float] = {}
_REGISTRY: dict[tuple[str, str], Reference] = {}
_IMPORTED: dict[tuple[str, str], Reference] = {}


def register_reference(ref: Reference, *, replace: bool = False) -> Reference:
    """Add a reference potential in this process; a study may then name it (see the module doc for
    references other processes must build)."""
    key = (ref.element, ref.name)
    if key in _REGISTRY and not replace:
        raise ValueError(f"reference {ref.name!r} for {ref.element} is already registered")
    _REGISTRY[key] = ref
    return ref


def known_references() -> list[tuple[str, str]]:
    """Registered (element, name) pairs, and import-path references this process has resolved."""
    return sorted(set(_REGISTRY) | set(_IMPORTED))


def library_references() -> list[tuple[str, str]]:
    """The (element, name) pairs mlptl registers itself (the library above), whatever else is registered."""
    return sorted(_LIBRARY_KEYS)


def user_references() -> list[Reference]:
    """The references registered in this process beyond the library: what a study must ship to its workers
    (Ray workers are other processes, on other nodes; they import mlptl and get only the library)."""
    return [ref for key, ref in sorted(_REGISTRY.items()) if key not in _LIBRARY_KEYS]


def register_shipped(refs) -> None:
    """In a worker: register the references a study shipped (see :func:`user_references`)."""
    for ref in refs:
        register_reference(ref, replace=True)


def reference_names(element: str) -> list[str]:
    """The names registered for ``element`` (import-path references are not listed: they are not known
    until named)."""
    return sorted(n for e, n in _REGISTRY if e == element)


def default_reference_name(element: str) -> str:
    """The element's only registered reference; with none or several, an InputError naming them."""
    names = reference_names(element)
    if len(names) == 1:
        return names[0]
    if not names:
        raise InputError(
            f"no reference potential for element {element!r} (elements with one: "
            f"{', '.join(sorted({e for e, _ in _REGISTRY})) or 'none'}); register one with "
            "mlptl.data.references.register_reference or name one as 'package.module:factory'"
        )
    raise InputError(
        f"element {element} has several reference potentials ({', '.join(names)}): name one, "
        f"e.g. reference={names[0]!r}"
    )


def is_import_name(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:attr`` (dotted identifiers on both sides)."""
    module, sep, attr = name.partition(":")
    return bool(sep) and all(p.isidentifier() for p in [*module.split("."), *attr.split(".")])


def get_reference(element: str, name: str | None = None) -> Reference:
    """The reference ``name`` for ``element``: registered, or imported from ``package.module:attr``.

    Without a name, the element's only registered reference (see :func:`default_reference_name`).
    """
    if name is None:
        name = default_reference_name(element)
    key = (element, name)
    if key in _REGISTRY:
        return _REGISTRY[key]
    if key in _IMPORTED:
        return _IMPORTED[key]
    if is_import_name(name):
        _IMPORTED[key] = _import_reference(element, name)
        return _IMPORTED[key]
    have = ", ".join(reference_names(element)) or "none"
    raise InputError(
        f"no reference potential {name!r} for element {element!r} ({element} has: {have}); register one "
        "with mlptl.data.references.register_reference or name one as 'package.module:factory'"
    )


def reference_calculator(element: str, name: str | None = None) -> Calculator:
    return get_reference(element, name).calculator()


def _import_reference(element: str, name: str) -> Reference:
    module_name, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as e:
        raise InputError(
            f"reference {name!r}: cannot import {module_name!r} ({e}); the module must be importable in "
            "every process that uses it (install it, or put its directory on PYTHONPATH)"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise InputError(f"reference {name!r}: {module_name!r} has no attribute {attr!r}") from None
    if not isinstance(obj, Reference):
        if not callable(obj):
            raise InputError(f"reference {name!r}: {attr} is neither a Reference nor callable")
        obj = obj(element) if _takes_argument(obj) else obj()
    if not isinstance(obj, Reference):
        raise InputError(f"reference {name!r}: {attr} gave a {type(obj).__name__}, not a Reference")
    if obj.element != element:
        raise InputError(f"reference {name!r}: asked for {element}, got a reference for {obj.element}")
    return dataclasses.replace(obj, name=name) if obj.name != name else obj


def _takes_argument(fn: Callable) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature: pass the element
        return True
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)


# ------------------------------------------------------------------ the library
def stillinger_weber(parameters: dict) -> Calculator:
    """A matscipy SW calculator from a parameter dict in matscipy's convention.

    matscipy's conventions: ``costheta0`` is +1/3 for the tetrahedral cos(theta0) = -1/3, ``lambda1``
    is SW's lambda, and q = 0 is built in.
    """
    from matscipy.calculators.manybody import StillingerWeber

    from mlptl.data._matscipy import manybody

    return manybody(StillingerWeber(parameters))


def _matscipy(form: str, module: str, parameters: str) -> Calculator:
    """matscipy's many-body calculator for one of the parameter sets it ships, looked up by name.

    Factories are partials of this module-level function, so a Reference pickles (for a Ray task).
    """
    from matscipy.calculators.manybody import explicit_forms

    from mlptl.data._matscipy import manybody

    params = getattr(importlib.import_module(f"matscipy.calculators.manybody.explicit_forms.{module}"), parameters)
    return manybody(getattr(explicit_forms, form)(params))


def _emt() -> Calculator:
    from ase.calculators.emt import EMT

    return EMT()


# Ding & Andersen, Phys. Rev. B 34, 6987 (1986): SW functional form refitted to germanium.
SW_GE_DING_ANDERSEN = {
    "__ref__": "K. Ding and H. C. Andersen, Phys. Rev. B 34, 6987 (1986)",
    "el": "Ge",
    "epsilon": 1.93,
    "sigma": 2.181,
    "costheta0": 1.0 / 3.0,
    "A": 7.049556277,
    "B": 0.6022245584,
    "p": 4,
    "a": 1.80,
    "lambda1": 31.0,
    "gamma": 1.20,
}

_sw_si = functools.partial(_matscipy, "StillingerWeber", "stillinger_weber", "Stillinger_Weber_PRB_31_5262_Si")
_sw_ge = functools.partial(stillinger_weber, SW_GE_DING_ANDERSEN)
_tersoff = functools.partial(_matscipy, "TersoffBrenner", "tersoff_brenner", "Tersoff_PRB_39_5566_Si_C")
_kumagai = functools.partial(_matscipy, "Kumagai", "kumagai", "Kumagai_Comp_Mat_Sci_39_Si")
_erhart_albe = functools.partial(_matscipy, "TersoffBrenner", "tersoff_brenner", "Erhart_PRB_71_035211_SiC")
_brenner = functools.partial(_matscipy, "TersoffBrenner", "tersoff_brenner", "Brenner_PRB_42_9458_C_II")

# Published values beyond the original papers are those Atomistica's bulk-property test tabulates for the
# same parameter sets (github.com/Atomistica/atomistica, tests/bulk_properties.py); a0 below is each
# potential's own minimum, measured (tests/test_references.py checks both).
_TERSOFF = "J. Tersoff, Phys. Rev. B 39, 5566 (1989); Si as Phys. Rev. B 38, 9902 (1988)"
_KUMAGAI = "T. Kumagai, S. Izumi, S. Hara and S. Sakai, Comput. Mater. Sci. 39, 457 (2007)"
_ERHART = "P. Erhart and K. Albe, Phys. Rev. B 71, 035211 (2005), Si-C parameter set"
_BRENNER = (
    "D. W. Brenner, Phys. Rev. B 42, 9458 (1990), potential II without the tabulated correction terms "
    "(matscipy's analytic form)"
)
_EMT = (
    "K. W. Jacobsen, P. Stoltze and J. K. Norskov, Surf. Sci. 366, 394 (1996) as ASE's EMT; literature "
    "a0 = sqrt(2) beta s0 and ecoh = E0 from its parameter table; melting point: experiment"
)

_LIBRARY = [
    Reference(
        "Si", "sw", _sw_si, "diamond", 5.431,
        citation="F. H. Stillinger and T. A. Weber, Phys. Rev. B 31, 5262 (1985); "
        "melting point: J. Q. Broughton and X. P. Li, Phys. Rev. B 35, 9120 (1987)",
        # Elastic constants of SW Si as commonly quoted (e.g. Cowley 1988; Balamane et al. 1992).
        literature={"a0": 5.431, "ecoh": -4.3366, "C11": 151.4, "C12": 76.4, "C44": 56.4},
        melting_point=1691.0,
    ),
    # No melting point: the paper's SW data sets use Si's temperatures for Ge too, and so do the presets.
    Reference(
        "Ge", "sw", _sw_ge, "diamond", 5.6536, citation=SW_GE_DING_ANDERSEN["__ref__"],
        literature={"a0": 5.654, "ecoh": -3.86},
    ),
    Reference(
        "Si", "tersoff", _tersoff, "diamond", 5.4320,
        citation=_TERSOFF + "; melting point: S. J. Cook and P. Clancy, Phys. Rev. B 47, 7686 (1993)",
        literature={"a0": 5.432, "ecoh": -4.63, "B": 98.0, "C11": 143.0, "C12": 75.0, "C44": 69.0,
                    "C44_unrelaxed": 119.0},
        melting_point=2547.0,
    ),
    # Tersoff's published diamond energy is 7.396 eV; Atomistica's table takes 0.025 eV off it for this
    # implementation of the parameter set, and that is what the potential gives.
    Reference(
        "C", "tersoff", _tersoff, "diamond", 3.5656, citation=_TERSOFF,
        literature={"a0": 3.566, "ecoh": -(7.396 - 0.025), "C11": 1067.0, "C12": 104.0, "C44": 636.0,
                    "C44_unrelaxed": 671.0},
    ),
    Reference(
        "Si", "kumagai", _kumagai, "diamond", 5.4290, citation=_KUMAGAI,
        literature={"a0": 5.429, "ecoh": -4.630, "C11": 166.4, "C12": 65.3, "C44": 77.1,
                    "C44_unrelaxed": 120.9},
    ),
    Reference(
        "Si", "erhart-albe", _erhart_albe, "diamond", 5.4289, citation=_ERHART,
        literature={"a0": 5.429, "ecoh": -4.63, "B": 99.0, "C11": 167.0, "C12": 65.0, "C44_unrelaxed": 105.0},
    ),
    Reference(
        "C", "erhart-albe", _erhart_albe, "diamond", 3.5657, citation=_ERHART,
        literature={"a0": 3.566, "ecoh": -7.3731, "B": 445.0, "C11": 1082.0, "C12": 127.0},
    ),
    # Brenner's diamond energy is 7.376 eV with the bicubic correction matscipy's form leaves out; the
    # value without it (-0.0524 eV, Atomistica's table) is the one this potential is held to.
    Reference(
        "C", "brenner", _brenner, "diamond", 3.5578, citation=_BRENNER,
        literature={"a0": 3.558, "ecoh": -(7.376 - 0.0524), "B": 484.0, "C11": 621.0, "C12": 415.0,
                    "C44": 383.0},
    ),
]


def _emt_references() -> list[Reference]:
    from ase.units import Bohr

    # element: (E0 eV, s0 bohr) of Jacobsen et al. Table 1 (as in ase.calculators.emt), ASE EMT's own
    # minimum a0 (measured), experimental melting point (K).
    table = {
        "Al": (3.28, 3.00, 3.9943, 933.5),
        "Ni": (4.44, 2.60, 3.4871, 1728.0),
        "Cu": (3.51, 2.67, 3.5898, 1357.8),
        "Pd": (3.90, 2.87, 3.8787, 1828.1),
        "Ag": (2.96, 3.01, 4.0636, 1234.9),
        "Pt": (5.85, 2.90, 3.9218, 2041.4),
        "Au": (3.80, 3.00, 4.0562, 1337.3),
    }
    beta = (16.0 * math.pi / 3.0) ** (1.0 / 3.0) / math.sqrt(2.0)  # nearest-neighbour distance / s0
    return [
        Reference(
            el, "emt", _emt, "fcc", a0, citation=_EMT, melting_point=tm,
            literature={"a0": round(math.sqrt(2.0) * beta * s0 * Bohr, 4), "ecoh": -e0},
        )
        for el, (e0, s0, a0, tm) in table.items()
    ]


for _ref in [*_LIBRARY, *_emt_references()]:
    register_reference(_ref)
_LIBRARY_KEYS = frozenset(_REGISTRY)
