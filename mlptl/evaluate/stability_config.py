"""The stability protocol's settings, and how they resolve to the thresholds of one crystal.

Kept apart from :mod:`mlptl.evaluate.stability` because the reference RDF (which the stability runs
compare against) is computed under the same protocol, and both modules need it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ase import Atoms

from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.structures import parent_lattice
from mlptl.data.systems import get_system_reference
from mlptl.errors import InputError
from mlptl.evaluate.md import THERMOSTATS, md_cell, starting_cell
from mlptl.evaluate.monitor import CRITERIA, Limits
from mlptl.evaluate.rdf import RDFGrid
from mlptl.serial import from_plain, to_plain

__all__ = ["StabilityConfig", "chemistry_of", "stability_cell", "stability_composition"]


@dataclass(frozen=True)
class StabilityConfig:
    """The stability protocol. Defaults are calibrated on SW Si and Ge; the reasons are in docs/evaluation.md.

    Times: ``timestep_fs`` in fs, ``rdf_window`` and ``rdf_equilibration`` in ps. ``friction`` is the
    Langevin friction in 1/fs; for Nose-Hoover its inverse is the thermostat damping time.

    Lengths follow the crystal, so that no element's bond length is written into the defaults: with
    ``nn`` the nearest-neighbour distance of the starting crystal, ``min_distance`` None means
    ``min_distance_factor`` x nn, ``rdf_rmax`` None means ``rdf_rmax_factor`` x nn, and
    ``rdf_threshold`` None means ``rdf_threshold_factor`` x nn (the RDF deviation is an integral over r,
    so it is a length too). The factors give SW Si's calibrated values: 1.65 A, 5.0 A and 1.0 A.
    ``supercell`` None repeats the conventional cell the fewest times that give ``min_atoms`` atoms
    (64 for diamond, 108 for fcc, 128 for bcc).
    """

    temperatures: tuple[float, ...] = (300.0, 900.0, 1500.0)
    replicas: int = 3
    steps: int = 10_000
    timestep_fs: float = 1.0
    supercell: int | None = None
    min_atoms: int = 64
    thermostat: str = "langevin"
    friction: float = 0.01
    check_every: int = 10
    max_temperature_factor: float = 2.0
    max_force: float = 25.0
    min_distance: float | None = None
    min_distance_factor: float = 0.7
    rdf_window: float = 0.5
    rdf_threshold: float | None = None
    rdf_threshold_factor: float = 0.425
    rdf_rmax: float | None = None
    rdf_rmax_factor: float = 2.125
    rdf_nbins: int = 100
    rdf_equilibration: float = 0.5
    reference_steps: int = 5_000
    criteria: tuple[str, ...] = CRITERIA
    seed: int = 0

    def __post_init__(self) -> None:
        # Accept lists (from JSON or a CLI) but store tuples so the config stays hashable.
        object.__setattr__(self, "temperatures", tuple(float(t) for t in self.temperatures))
        object.__setattr__(self, "criteria", tuple(self.criteria))
        if not self.temperatures or any(not (t > 0) for t in self.temperatures):
            raise InputError(f"temperatures must be positive, got {self.temperatures}")
        for name in ("replicas", "steps", "supercell", "min_atoms", "check_every", "rdf_nbins", "reference_steps"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        for name in ("timestep_fs", "friction", "max_temperature_factor", "max_force", "rdf_window",
                     "rdf_threshold", "rdf_threshold_factor", "rdf_rmax", "rdf_rmax_factor", "min_distance",
                     "min_distance_factor"):
            value = getattr(self, name)
            if value is not None and not (float(value) > 0):
                raise InputError(f"{name} must be positive, got {value}")
        if self.rdf_equilibration < 0:
            raise InputError(f"rdf_equilibration must be >= 0 ps, got {self.rdf_equilibration}")
        if self.thermostat not in THERMOSTATS:
            raise InputError(f"thermostat must be one of {', '.join(THERMOSTATS)}, got {self.thermostat!r}")
        unknown = set(self.criteria) - set(CRITERIA)
        if unknown:
            raise InputError(f"unknown stability criteria {sorted(unknown)}; choose from {', '.join(CRITERIA)}")

    @property
    def duration_ps(self) -> float:
        return self.steps * self.timestep_fs / 1000.0

    @property
    def window_frames(self) -> int:
        """Sampled frames in one RDF window."""
        return max(1, round(self.rdf_window * 1000.0 / (self.timestep_fs * self.check_every)))

    @property
    def equilibration_steps(self) -> int:
        return round(self.rdf_equilibration * 1000.0 / self.timestep_fs)

    @property
    def samples_rdf(self) -> bool:
        """Whether a run reaches a checked step past the equilibration, where RDF frames are sampled; a
        shorter run has no mean RDF and nothing to compare with a reference RDF, which then needs no MD."""
        first = -(-self.equilibration_steps // self.check_every) * self.check_every  # observers see step 0 too
        return first <= self.steps

    @property
    def rdf_steps(self) -> int:
        """The steps a run needs before the ``rdf`` criterion is first checked: equilibration, then one window."""
        return self.equilibration_steps + self.window_frames * self.check_every

    def rdf_grid(self, nn: float) -> RDFGrid:
        """The RDF grid for a crystal of nearest-neighbour distance ``nn`` (Angstrom)."""
        rmax = self.rdf_rmax if self.rdf_rmax is not None else self.rdf_rmax_factor * nn
        return RDFGrid(float(rmax), int(self.rdf_nbins))

    def limits(self, nn: float, criteria: tuple[str, ...] | None = None) -> Limits:
        """The thresholds for a crystal of nearest-neighbour distance ``nn``; ``criteria`` overrides which are on."""
        return Limits(
            criteria=frozenset(self.criteria if criteria is None else criteria),
            max_temperature_factor=self.max_temperature_factor,
            max_force=self.max_force,
            min_distance=self.min_distance if self.min_distance is not None else self.min_distance_factor * nn,
            rdf_threshold=self.rdf_threshold if self.rdf_threshold is not None else self.rdf_threshold_factor * nn,
            grid=self.rdf_grid(nn),
            check_every=self.check_every,
            window_frames=self.window_frames,
            equilibration_steps=self.equilibration_steps,
        )

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StabilityConfig:
        return from_plain(cls, d, "stability config")


def chemistry_of(element: str) -> Chemistry | None:
    """``element`` read as a chemistry of several elements (``"Cu-Ni"``, ``"Cu,Ni"``), else None: one
    element, or a name the one-element path reports with its own error."""
    try:
        chem = Chemistry.parse(element)
    except InputError:
        return None
    return chem if len(chem) > 1 else None


def stability_composition(chemistry: Chemistry | str, compositions: Iterable[str] | None = None) -> Composition:
    """The alloy a multi-element stability run starts from: of ``compositions`` (e.g. those the study's
    data samples) the one of several elements nearest equal parts (the first on a tie), else equal parts.

    One cell per chemistry keeps the stability table one row per temperature, as for one element; the
    most mixed composition is the one whose every pair's partial RDF is best sampled.
    """
    chem = Chemistry.parse(chemistry) if isinstance(chemistry, str) else chemistry
    equal = Composition(dict.fromkeys(chem.elements, 1.0), normalize=True)
    comps = [Composition.coerce(c) for c in compositions or ()]
    comps = [c for c in comps if len(c.elements) > 1 and chem.covers(c.elements)]
    if not comps:
        return equal
    x = equal.as_dict()
    return min(comps, key=lambda c: sum(abs(c.as_dict().get(el, 0.0) - x[el]) for el in chem.elements))


def stability_cell(element: str, reference: str | None, config: StabilityConfig,
                   initial: Atoms | None = None, *, compositions: Iterable[str] | None = None) -> Atoms:
    """The cell stability MD starts from: ``initial`` or the reference's crystal, repeated as configured.

    For several elements (``element`` a chemistry such as ``"Cu-Ni"``, ``reference`` a system reference)
    it is the reference's random alloy of :func:`stability_composition` (``compositions``), arranged by
    ``config.seed`` and as many conventional cells per axis as one element would get: the atoms must be
    placed at random over the whole cell, not repeated from a small one. The reference RDF is computed in
    this same cell, so that model and reference are compared at the same density and system size.
    """
    chem = chemistry_of(element) if initial is None else None
    if chem is None:
        return md_cell(starting_cell(element, reference, initial=initial), config.supercell, config.min_atoms)
    if reference is None:
        raise InputError(f"no reference potential named for {chem} and no initial structure: "
                         "name a system reference or pass the cell to start from")
    ref = get_system_reference(reference, chem)
    comp = stability_composition(chem, compositions)
    lattice = ref.parent_lattice_of(comp)
    supercell = config.supercell
    if supercell is None:
        per_cell = len(parent_lattice(chem.elements[0], lattice, 1.0, 1))
        supercell = max(1, math.ceil((config.min_atoms / per_cell) ** (1.0 / 3.0) - 1e-9))
    return ref.alloy(comp, supercell, seed=config.seed, lattice=lattice)
