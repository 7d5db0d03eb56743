"""The MD every evaluation runs: its starting crystal, its integrator, its seeds, the crystal's length scale.

Stability, the reference RDF and the finite-temperature properties must start from the same cell and
integrate the same way, or a model and its reference would be compared under different conditions; so
they all build both here. The crystal's nearest-neighbour distance is the length every criterion and
range is scaled by, so that no element's bond length is written into the code.
"""

from __future__ import annotations

import math

import numpy as np
from ase import Atoms, units
from matscipy.neighbours import neighbour_list

from mlptl.data.references import get_reference
from mlptl.errors import InputError

__all__ = [
    "THERMOSTATS",
    "starting_cell",
    "md_cell",
    "nearest_neighbour_distance",
    "make_dynamics",
    "run_seed",
]

THERMOSTATS: tuple[str, ...] = ("langevin", "nose-hoover")


def starting_cell(element: str, reference: str | None, supercell: int = 1, *, initial: Atoms | None = None) -> Atoms:
    """The crystal an evaluation starts from, repeated ``supercell`` times per axis.

    ``initial`` (a conventional cell given by the caller, e.g. for DFT data without a reference
    potential) or else the conventional cell of the reference named ``reference``. No reference is
    ever assumed: without both, this is an input error.
    """
    if initial is not None:
        crystal = initial.copy()
    elif reference is not None:
        crystal = get_reference(element, reference).crystal(1)
    else:
        raise InputError(f"no reference potential named for {element} and no initial structure: "
                         "name a reference or pass the crystal to start from")
    return crystal * (supercell, supercell, supercell)


def md_cell(crystal: Atoms, supercell: int | None, min_atoms: int) -> Atoms:
    """``crystal`` repeated ``supercell`` times per axis, or (None) the fewest times that give ``min_atoms``.

    A conventional cell holds 2 (bcc) to 8 (diamond) atoms, so a fixed repeat count would give a bcc
    metal a quarter of the atoms silicon gets, and with them four times the relative temperature spread
    the thresholds were not calibrated for. Counting atoms instead keeps the statistics of every lattice
    at those of the 64-atom diamond cell the defaults were calibrated on.
    """
    if supercell is None:
        supercell = max(1, math.ceil((min_atoms / len(crystal)) ** (1.0 / 3.0) - 1e-9))
    return crystal * (supercell, supercell, supercell)


def nearest_neighbour_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance, periodic images included."""
    # Search radius: the cube root of the volume per atom bounds the nearest-neighbour distance of any
    # reasonable packing from above (about 1.1x for diamond); doubled for safety.
    cutoff = 2.0 * (atoms.get_volume() / len(atoms)) ** (1.0 / 3.0)
    d = neighbour_list("d", atoms, cutoff)
    if len(d) == 0:
        raise InputError("no neighbours found to define a nearest-neighbour distance")
    return float(d.min())


def make_dynamics(
    atoms: Atoms, temperature: float, *, timestep_fs: float, thermostat: str, friction: float,
    rng: np.random.Generator,
):
    """An ASE NVT integrator.

    Langevin runs with ``fixcm=False`` and no FixCom constraint: ASE deprecates ``fixcm=True`` as not
    sampling NVT correctly, and its Nose-Hoover chain refuses constraints, so neither thermostat uses one;
    a drifting centre of mass changes no criterion.
    """
    dt = timestep_fs * units.fs
    if thermostat == "langevin":
        from ase.md.langevin import Langevin

        return Langevin(atoms, dt, temperature_K=temperature, friction=friction / units.fs, fixcm=False,
                        rng=rng)
    if thermostat == "nose-hoover":
        from ase.md.nose_hoover_chain import NoseHooverChainNVT

        return NoseHooverChainNVT(atoms, dt, temperature_K=temperature, tdamp=units.fs / friction)
    raise InputError(f"thermostat must be one of {', '.join(THERMOSTATS)}, got {thermostat!r}")


def run_seed(seed: int, temperature: float, replica: int) -> tuple[int, ...]:
    """The seed of one run, keyed by the temperature's value (not its index): adding a temperature
    leaves the other runs unchanged."""
    return (int(seed), int(round(temperature * 1000)), int(replica))
