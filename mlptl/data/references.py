"""Reference potentials: the oracles that label configurations, keyed by element.

The paper's classical-force-field experiments use Stillinger-Weber (SW) silicon and germanium. Elements
are data here, not code: a new pair (Si -> Sn, C -> Si) needs one more :func:`register_reference` call
with its parameters, nothing else. The SW energy and forces come from matscipy's many-body calculator;
matscipy ships only the Si parameter set, so the Ge set (Ding & Andersen) is given here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ase.calculators.calculator import Calculator

from mlptl.errors import InputError

__all__ = [
    "Reference",
    "register_reference",
    "get_reference",
    "reference_calculator",
    "known_references",
    "stillinger_weber",
]


@dataclass(frozen=True)
class Reference:
    """A reference potential for one element, with what is needed to build cells for it.

    ``lattice`` and ``a0`` seed the crystal the data generator and the property evaluation start from;
    ``literature`` holds published values (a0 in Angstrom, ecoh in eV/atom, elastic constants in GPa)
    against which the reference itself is checked.
    """

    element: str
    name: str
    factory: Callable[[], Calculator]
    lattice: str
    a0: float
    mass: float | None = None
    citation: str = ""
    literature: dict[str, float] = field(default_factory=dict)

    def calculator(self) -> Calculator:
        return self.factory()

    def crystal(self, supercell: int = 1, *, strain: float = 0.0):
        """The reference crystal (conventional cell, cubic where the lattice is), repeated per axis.

        Data generation, stability and properties all start from this one cell, so that a new lattice
        needs one change here and nowhere else.
        """
        from ase.build import bulk

        a = self.a0 * (1.0 + strain)
        try:
            atoms = bulk(self.element, self.lattice, a=a, cubic=self.lattice != "hcp", orthorhombic=self.lattice == "hcp")
        except (ValueError, RuntimeError) as e:
            raise InputError(f"cannot build a {self.lattice} cell for {self.element}: {e}") from None
        atoms = atoms * (supercell, supercell, supercell)
        if self.mass is not None:
            atoms.set_masses([self.mass] * len(atoms))
        return atoms


_REGISTRY: dict[tuple[str, str], Reference] = {}


def register_reference(ref: Reference, *, replace: bool = False) -> Reference:
    """Add a reference potential; a study may then name its element."""
    key = (ref.element, ref.name)
    if key in _REGISTRY and not replace:
        raise ValueError(f"reference {ref.name!r} for {ref.element} is already registered")
    _REGISTRY[key] = ref
    return ref


def known_references() -> list[tuple[str, str]]:
    return sorted(_REGISTRY)


def get_reference(element: str, name: str = "sw") -> Reference:
    try:
        return _REGISTRY[(element, name)]
    except KeyError:
        have = ", ".join(f"{e}/{n}" for e, n in known_references()) or "none"
        raise InputError(
            f"no reference potential {name!r} for element {element!r} (registered: {have}); "
            "register one with mlptl.data.references.register_reference"
        ) from None


def reference_calculator(element: str, name: str = "sw") -> Calculator:
    return get_reference(element, name).calculator()


def stillinger_weber(parameters: dict) -> Calculator:
    """A matscipy SW calculator from a parameter dict in matscipy's convention.

    matscipy's conventions: ``costheta0`` is +1/3 for the tetrahedral cos(theta0) = -1/3, ``lambda1``
    is SW's lambda, and q = 0 is built in.
    """
    from matscipy.calculators.manybody import Manybody, StillingerWeber

    return Manybody(**StillingerWeber(parameters))


def _sw_si() -> Calculator:
    from matscipy.calculators.manybody.explicit_forms.stillinger_weber import (
        Stillinger_Weber_PRB_31_5262_Si,
    )

    return stillinger_weber(Stillinger_Weber_PRB_31_5262_Si)


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


def _sw_ge() -> Calculator:
    return stillinger_weber(SW_GE_DING_ANDERSEN)


register_reference(
    Reference(
        element="Si",
        name="sw",
        factory=_sw_si,
        lattice="diamond",
        a0=5.431,
        citation="F. H. Stillinger and T. A. Weber, Phys. Rev. B 31, 5262 (1985)",
        # Elastic constants of SW Si as commonly quoted (e.g. Cowley 1988; Balamane et al. 1992).
        literature={"a0": 5.431, "ecoh": -4.3366, "C11": 151.4, "C12": 76.4, "C44": 56.4},
    )
)
register_reference(
    Reference(
        element="Ge",
        name="sw",
        factory=_sw_ge,
        lattice="diamond",
        a0=5.654,
        citation=SW_GE_DING_ANDERSEN["__ref__"],
        literature={"a0": 5.654, "ecoh": -3.86},
    )
)
