"""Chemical systems and compositions: which elements a study, a reference or a frame covers, and in what mix.

A :class:`Chemistry` is a set of elements (a sorted tuple of symbols: ``Chemistry(("Si", "Ge"))`` is
``Ge-Si``); a :class:`Composition` is a mix of them (element -> atomic fraction, summing to 1), whose
:attr:`Composition.label` (``"Cu0.75Ni0.25"``) names a data group the way ``"T300"`` names a temperature.
Both check their fields when built, so a typo in an element or fractions that do not add up fail as one
InputError before any MD runs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ase import Atoms
from ase.data import chemical_symbols

from mlptl.errors import InputError

__all__ = ["Chemistry", "Composition", "ELEMENTS", "FRACTION_DIGITS", "check_element"]

#: Every element symbol ASE knows (its placeholder "X" left out).
ELEMENTS = frozenset(chemical_symbols[1:])

#: Decimals a composition label keeps: 1e-4 resolves any cell of up to 10,000 sites.
FRACTION_DIGITS = 4

# "Cu0.75Ni0.25", "Cu3Au", "SiGe": a symbol, then an optional non-negative number.
_TERM = re.compile(r"([A-Z][a-z]?)((?:\d+(?:\.\d*)?|\.\d+)?)")


def check_element(symbol: object, what: str = "element") -> str:
    """``symbol`` if it is a chemical symbol ASE knows, else an InputError naming it."""
    if not isinstance(symbol, str) or symbol not in ELEMENTS:
        hint = ""
        if isinstance(symbol, str) and symbol.capitalize() in ELEMENTS:
            hint = f" (did you mean {symbol.capitalize()!r}?)"
        raise InputError(f"unknown {what} {symbol!r}: not a chemical symbol{hint}")
    return symbol


@dataclass(frozen=True)
class Chemistry:
    """A set of elements, as a sorted tuple of distinct chemical symbols (``Ge-Si``, ``Au-Cu-Ni``).

    Built from any iterable of symbols or from text (``"Si,Ge"``, ``"Si-Ge"``, ``"SiGe"``, see
    :meth:`parse`); the order given does not matter, a repeated or unknown element is an InputError.
    """

    elements: tuple[str, ...]

    def __post_init__(self) -> None:
        given = self.elements
        if isinstance(given, str):
            given = Chemistry.parse(given).elements
        given = tuple(given)
        if not given:
            raise InputError("a chemistry needs at least one element")
        for el in given:
            check_element(el)
        repeated = sorted(el for el, n in Counter(given).items() if n > 1)
        if repeated:
            raise InputError(f"element(s) {', '.join(repeated)} given more than once in {list(given)}")
        object.__setattr__(self, "elements", tuple(sorted(given)))

    @classmethod
    def parse(cls, text: str) -> Chemistry:
        """``"Si,Ge"``, ``"Ge-Si"``, ``"Si Ge"`` or a formula-like ``"SiGe"``."""
        parts = [p for p in re.split(r"[\s,;/-]+", text.strip()) if p]
        if len(parts) == 1:
            terms = _terms_of(parts[0], text)
            if any(n for _, n in terms):
                raise InputError(f"{text!r} names amounts: a chemistry is elements only (e.g. 'Si,Ge')")
            parts = [s for s, _ in terms]
        return cls(tuple(parts))

    @classmethod
    def of(cls, atoms: Atoms | Iterable[Atoms]) -> Chemistry:
        """The elements present in a frame, or in any of several frames."""
        frames = [atoms] if isinstance(atoms, Atoms) else list(atoms)
        return cls(tuple({s for a in frames for s in a.get_chemical_symbols()}))

    @property
    def label(self) -> str:
        return "-".join(self.elements)

    def __str__(self) -> str:
        return self.label

    def __iter__(self) -> Iterator[str]:
        return iter(self.elements)

    def __len__(self) -> int:
        return len(self.elements)

    def __contains__(self, element: object) -> bool:
        return element in self.elements

    def covers(self, elements: Iterable[str] | Chemistry) -> bool:
        """Whether every element of ``elements`` is one of this chemistry's."""
        return set(elements) <= set(self.elements)

    def outside(self, elements: Iterable[str]) -> list[str]:
        """The elements of ``elements`` that are not in this chemistry, sorted."""
        return sorted(set(elements) - set(self.elements))


def _terms_of(formula: str, text: str) -> list[tuple[str, str]]:
    """(symbol, amount text) pairs of a formula-like string; an InputError for anything else."""
    terms = _TERM.findall(formula)
    if "".join(s + n for s, n in terms) != formula:
        raise InputError(f"cannot read {text!r} as elements or a composition (e.g. 'Si,Ge' or 'Cu0.75Ni0.25')")
    return terms


@dataclass(frozen=True)
class Composition:
    """Atomic fractions of each element, summing to 1: ``Composition({"Cu": 0.75, "Ni": 0.25})``.

    Built from a mapping (fractions, or counts with ``normalize=True``) or parsed from text (``"Cu3Ni"``,
    ``"Cu0.75Ni0.25"``, see :meth:`parse`). Elements with fraction 0 are dropped; a negative or
    non-finite fraction, an unknown element, or fractions not summing to 1 (to 1e-3) are an InputError.
    ``fractions`` is stored as sorted (element, fraction) pairs, exactly normalised.
    """

    fractions: tuple[tuple[str, float], ...]

    def __init__(self, fractions: Mapping[str, float] | Iterable[tuple[str, float]], *, normalize: bool = False):
        pairs = list(fractions.items()) if isinstance(fractions, Mapping) else [tuple(p) for p in fractions]
        totals: dict[str, float] = {}
        for el, x in pairs:
            check_element(el)
            try:
                x = float(x)
            except (TypeError, ValueError):
                raise InputError(f"fraction of {el} must be a number, got {x!r}") from None
            if not math.isfinite(x) or x < 0:
                raise InputError(f"fraction of {el} must be a finite number >= 0, got {x}")
            if el in totals:
                raise InputError(f"element {el} given more than once in a composition")
            totals[el] = x
        total = sum(totals.values())
        if not total > 0:
            raise InputError(f"a composition needs at least one element with a positive fraction, got {dict(pairs)}")
        if not normalize and abs(total - 1.0) > 1e-3:
            raise InputError(f"fractions must sum to 1, got {total:g} for {dict(pairs)}")
        out = tuple((el, x / total) for el, x in sorted(totals.items()) if x > 0)
        object.__setattr__(self, "fractions", out)

    @classmethod
    def parse(cls, text: str) -> Composition:
        """``"Cu3Au"`` (counts, normalised), ``"Cu0.75Au0.25"`` (fractions: with a decimal point, they must
        sum to 1), ``"Si"``.

        Written here rather than taken from ``ase.formula.Formula`` because that reads integer counts only.
        """
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"empty composition {text!r}: expected e.g. 'Cu0.75Ni0.25' or 'Cu3Au'")
        counts: dict[str, float] = {}
        terms = _terms_of(text.strip(), text)
        for el, n in terms:
            check_element(el)
            if el in counts:
                raise InputError(f"element {el} appears twice in composition {text!r}")
            counts[el] = float(n) if n else 1.0
        # Whole numbers are counts (normalised); a decimal point makes them fractions, which must sum to 1.
        return cls(counts, normalize=not any("." in n for _, n in terms))

    @classmethod
    def of(cls, atoms: Atoms) -> Composition:
        """The composition of a frame, from its atom counts."""
        if len(atoms) == 0:
            raise InputError("a frame without atoms has no composition")
        return cls(Counter(atoms.get_chemical_symbols()), normalize=True)

    @classmethod
    def coerce(cls, value: Composition | str | Mapping[str, float]) -> Composition:
        """A Composition from itself, its text or a mapping of fractions."""
        if isinstance(value, Composition):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        return cls(value)

    @property
    def elements(self) -> tuple[str, ...]:
        return tuple(el for el, _ in self.fractions)

    @property
    def chemistry(self) -> Chemistry:
        return Chemistry(self.elements)

    def as_dict(self) -> dict[str, float]:
        return dict(self.fractions)

    def __getitem__(self, element: str) -> float:
        return dict(self.fractions).get(element, 0.0)

    @property
    def label(self) -> str:
        """The canonical text: elements in alphabetical order, each with its fraction to
        :data:`FRACTION_DIGITS` decimals (``"Cu0.75Ni0.25"``); a pure element is its symbol alone."""
        if len(self.fractions) == 1:
            return self.fractions[0][0]
        return "".join(f"{el}{_fraction_text(x)}" for el, x in self.fractions)

    def __str__(self) -> str:
        return self.label

    def __eq__(self, other: object) -> bool:
        # Equal when their labels are: two compositions that name the same data group are one.
        return isinstance(other, Composition) and self.label == other.label

    def __hash__(self) -> int:
        return hash(self.label)

    def counts(self, n_sites: int) -> dict[str, int]:
        """Whole numbers of atoms on ``n_sites`` sites nearest this composition (largest remainders).

        An element whose share rounds to no atom at all is an InputError: the cell is too small for it.
        """
        if int(n_sites) != n_sites or n_sites < 1:
            raise InputError(f"number of sites must be a positive integer, got {n_sites}")
        n_sites = int(n_sites)
        exact = {el: x * n_sites for el, x in self.fractions}
        counts = {el: int(math.floor(v)) for el, v in exact.items()}
        left = n_sites - sum(counts.values())
        for el in sorted(exact, key=lambda e: (-(exact[e] - counts[e]), e))[:left]:
            counts[el] += 1
        empty = [el for el, n in counts.items() if n == 0]
        if empty:
            raise InputError(
                f"composition {self.label} on {n_sites} sites leaves no atom of {', '.join(empty)}: use a "
                "larger cell"
            )
        return counts


def _fraction_text(x: float) -> str:
    text = f"{round(x, FRACTION_DIGITS):.{FRACTION_DIGITS}f}".rstrip("0").rstrip(".")
    return text or "0"
