"""Crystal properties of any ASE calculator, and their errors against a reference.

Energies and forces near the training data are what a potential is fit to; lattice constant, cohesive
energy, bulk modulus, elastic constants and the finite-temperature structure (RDF, ADF) are what a user
of the potential relies on, and they probe curvature and anharmonicity the fit never saw directly.

Static properties use the conventional cell (8 atoms for diamond, 4 for fcc, 2 for bcc) so that a slow
calculator (a nequip model on CPU) pays for a few dozen calls, not thousands; the RDF/ADF come from a
short NVT run of a 64+ atom cell at the *reference* lattice constant, so that a model and its reference
are compared at the same density and differences reflect the potential, not its equation of state.

The reference is named by the caller, never assumed. It gives the crystal (lattice and a0), the
isolated-atom energy that makes the energy per atom a cohesive energy (a model trained on the
reference's data shares its energy zero; the model's own isolated atom is an extrapolation), and the
structure the RDF/ADF are compared with. Without one (``reference=None``, e.g. DFT data) the caller gives
the crystal, and there is no cohesive energy unless the isolated-atom energy is given too.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.eos import EquationOfState
from ase.optimize import BFGS
from tqdm.auto import tqdm

from mlptl.data.md import thermalize
from mlptl.data.references import get_reference
from mlptl.errors import InputError
from mlptl.evaluate.adf import adf, adf_cutoff, adf_distance
from mlptl.evaluate.md import THERMOSTATS, make_dynamics, md_cell, nearest_neighbour_distance, starting_cell
from mlptl.evaluate.rdf import on_grid, rdf, rdf_distance
from mlptl.serial import to_plain

__all__ = [
    "PropertyConfig",
    "SCALAR_PROPERTIES",
    "CUBIC_LATTICES",
    "compute_properties",
    "compare_properties",
    "equation_of_state",
    "elastic_constants",
    "sample_structure",
]

log = logging.getLogger(__name__)

#: Scalar properties in the output of :func:`compute_properties`; the names match the ``literature``
#: keys of :class:`mlptl.data.references.Reference`, so a literature dict compares directly.
#: Units: a0 Angstrom, ecoh and e_per_atom eV/atom, B and C_ij GPa, volume Angstrom^3/atom.
SCALAR_PROPERTIES: tuple[str, ...] = ("a0", "ecoh", "e_per_atom", "B", "C11", "C12", "C44", "C44_unrelaxed",
                                      "volume")
#: Lattices whose conventional cell is a cube: the cubic elastic constants apply.
CUBIC_LATTICES: tuple[str, ...] = ("sc", "fcc", "bcc", "diamond")


@dataclass(frozen=True)
class PropertyConfig:
    """How properties are computed; the reasons for the defaults are in docs/evaluation.md.

    ``eos_strain``: lattice-constant range (+/- fraction) of the E-V scan; ``elastic_delta``: matscipy's
    strain increment (strains run from -2 to +2 increments for 5 steps); ``relax_fmax`` (eV/A) and
    ``relax_steps``: fixed-cell relaxation of atomic positions in strained cells; the MD settings
    (steps, fs, 1/fs) set the RDF/ADF sampling, in the conventional cell repeated ``md_supercell`` times
    (None: the fewest times that give ``md_min_atoms``). Lengths follow the crystal's nearest-neighbour
    distance nn: ``rdf_rmax`` None is ``rdf_rmax_factor`` x nn; ``adf_cutoff_factor`` x nn is the ADF's
    bond cutoff (None: the first shell's bonds, see :func:`mlptl.evaluate.adf.adf_cutoff`).
    ``md_steps=0`` skips RDF/ADF.
    """

    eos_strain: float = 0.02
    eos_points: int = 9
    eos: str = "birchmurnaghan"
    elastic_delta: float = 2.5e-3
    elastic_steps: int = 5
    relax_fmax: float = 1e-4
    relax_steps: int = 200
    temperature: float = 900.0
    md_supercell: int | None = None
    md_min_atoms: int = 64
    md_steps: int = 2000
    md_equilibration_steps: int = 500
    sample_every: int = 10
    timestep_fs: float = 1.0
    thermostat: str = "langevin"
    friction: float = 0.01
    rdf_rmax: float | None = None
    rdf_rmax_factor: float = 2.125
    rdf_nbins: int = 100
    adf_cutoff_factor: float | None = None
    adf_nbins: int = 90
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("eos_points", "elastic_steps", "relax_steps", "md_supercell", "md_min_atoms", "sample_every",
                     "rdf_nbins", "adf_nbins"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        if self.eos_points < 5:
            raise InputError(f"eos_points must be at least 5 for a 3-parameter EOS fit, got {self.eos_points}")
        for name in ("eos_strain", "elastic_delta", "relax_fmax", "temperature", "timestep_fs", "friction",
                     "rdf_rmax", "rdf_rmax_factor", "adf_cutoff_factor"):
            value = getattr(self, name)
            if value is not None and not (float(value) > 0):
                raise InputError(f"{name} must be positive, got {value}")
        if self.md_steps < 0 or self.md_equilibration_steps < 0:
            raise InputError("md_steps and md_equilibration_steps must be >= 0")
        if self.thermostat not in THERMOSTATS:
            raise InputError(f"thermostat must be one of {', '.join(THERMOSTATS)}, got {self.thermostat!r}")

    def to_dict(self) -> dict[str, Any]:
        return to_plain(self)


# ------------------------------------------------------------------ static properties
def _relax_positions(atoms: Atoms, fmax: float, steps: int) -> bool:
    """Fixed-cell relaxation of atomic positions; returns whether it converged."""
    opt = BFGS(atoms, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    if not converged:
        fnow = float(np.sqrt((atoms.get_forces() ** 2).sum(axis=1)).max())
        log.warning("position relaxation not converged in %d steps (max |F| %.2g > %.2g eV/A)", steps, fnow, fmax)
    return converged


def equation_of_state(atoms: Atoms, config: PropertyConfig = PropertyConfig()) -> dict[str, float]:
    """Lattice constant, energy per atom and bulk modulus from an E-V fit of a conventional cell.

    Two passes: the first scan is centred on the starting lattice constant, the second on the first
    fit's minimum, so a model whose lattice constant is several percent off is still fit around its own
    minimum (a fit extrapolated to the edge of the scan is unreliable). The cell scales isotropically
    (an hcp cell keeps its c/a) and atomic positions with it; the energy at the fitted lattice constant
    is then evaluated after relaxing positions (``e_per_atom``). ``a0`` is the length of the first cell
    vector (the cubic edge, or hcp's a).
    """
    return _equation_of_state(atoms, config)[0]


def _equation_of_state(atoms: Atoms, config: PropertyConfig) -> tuple[dict[str, float], Atoms]:
    calc = _calc_of(atoms)
    cell0 = np.array(atoms.cell)
    scale = 1.0
    for _ in range(2):
        volumes, energies = [], []
        for f in scale * np.linspace(1 - config.eos_strain, 1 + config.eos_strain, config.eos_points):
            a = atoms.copy()
            a.calc = calc
            a.set_cell(cell0 * f, scale_atoms=True)
            volumes.append(a.get_volume())
            energies.append(a.get_potential_energy())
        try:
            v0, e0, b = EquationOfState(volumes, energies, eos=config.eos).fit()
        except (RuntimeError, ValueError) as e:
            # A property of the model (no energy minimum near the crystal), not a bug: one line for the
            # user, a note in a study's evaluation.
            raise InputError(
                f"equation-of-state fit failed ({e}): the model has no energy minimum within "
                f"+/-{config.eos_strain:.0%} of the starting lattice constant"
            ) from None
        scale = (v0 / abs(np.linalg.det(cell0))) ** (1.0 / 3.0)
    relaxed = atoms.copy()
    relaxed.calc = calc
    relaxed.set_cell(cell0 * scale, scale_atoms=True)
    _relax_positions(relaxed, config.relax_fmax, config.relax_steps)
    n = len(relaxed)
    props = {
        "a0": float(np.linalg.norm(relaxed.cell[0])),
        "e_per_atom": float(relaxed.get_potential_energy() / n),
        "e0_eos": float(e0 / n),
        "B": float(b / units.GPa),
        "volume": float(relaxed.get_volume() / n),
    }
    return props, relaxed


def _calc_of(atoms: Atoms) -> Calculator:
    if atoms.calc is None:
        raise InputError("atoms have no calculator attached")
    return atoms.calc


class _Relaxer:
    """The optimizer hook matscipy's fit_elastic_constants calls as ``optimizer(atoms, logfile=...).run(**kw)``."""

    def __init__(self, atoms: Atoms, logfile=None):
        self.atoms = atoms

    def run(self, fmax: float, steps: int) -> bool:
        return _relax_positions(self.atoms, fmax, steps)


def elastic_constants(atoms: Atoms, config: PropertyConfig = PropertyConfig()) -> dict[str, float | None]:
    """Cubic C11, C12, C44 (GPa) by linear stress-strain fits (matscipy), with and without ion relaxation.

    ``atoms`` must be the relaxed crystal. The relaxed-ion values are the physical ones (and what the
    literature quotes: SW Si C44 = 56.4 GPa); the clamped-ion C44 (110 GPa for SW Si) is kept because
    the gap between the two measures the internal strain a model must get right. None if the
    calculator gives no stress.
    """
    from matscipy.elasticity import fit_elastic_constants

    out: dict[str, float | None] = {"C11": None, "C12": None, "C44": None, "C44_unrelaxed": None}
    a = atoms.copy()
    a.calc = _calc_of(atoms)
    try:
        c_rel, _ = fit_elastic_constants(a, symmetry="cubic", N_steps=config.elastic_steps,
                                         delta=config.elastic_delta, optimizer=_Relaxer, verbose=False,
                                         fmax=config.relax_fmax, steps=config.relax_steps)
        c_unrel, _ = fit_elastic_constants(a, symmetry="cubic", N_steps=config.elastic_steps,
                                           delta=config.elastic_delta, optimizer=None, verbose=False)
    except PropertyNotImplementedError:
        log.warning("calculator gives no stress: elastic constants skipped")
        return out
    out.update(
        C11=float(c_rel[0, 0] / units.GPa),
        C12=float(c_rel[0, 1] / units.GPa),
        C44=float(c_rel[3, 3] / units.GPa),
        C44_unrelaxed=float(c_unrel[3, 3] / units.GPa),
    )
    return out


def _is_cube(atoms: Atoms) -> bool:
    lengths, angles = atoms.cell.lengths(), atoms.cell.angles()
    return bool(np.allclose(lengths, lengths[0], rtol=1e-6) and np.allclose(angles, 90.0, atol=1e-6))


# ------------------------------------------------------------------ structure at temperature
def sample_structure(
    calculator_factory: Callable[[], Calculator], crystal: Atoms, config: PropertyConfig = PropertyConfig(),
    progress: bool = False,
) -> dict[str, Any]:
    """RDF and ADF from NVT MD of ``crystal`` (a conventional cell, repeated per ``config``) at
    ``config.temperature``.

    The RDF range and the ADF cutoff are tied to the perfect crystal's neighbour shells, so a model and
    its reference started from the same crystal count the same shells on the same grid.
    """
    atoms = md_cell(crystal, config.md_supercell, config.md_min_atoms)
    nn = nearest_neighbour_distance(atoms)
    cutoff = adf_cutoff(atoms, config.adf_cutoff_factor)
    rmax = config.rdf_rmax if config.rdf_rmax is not None else config.rdf_rmax_factor * nn
    atoms.calc = calculator_factory()
    rng = np.random.default_rng([config.seed, int(round(config.temperature * 1000))])
    thermalize(atoms, config.temperature, rng)
    dyn = make_dynamics(atoms, config.temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    frames: list[Atoms] = []
    n = config.md_equilibration_steps + config.md_steps
    ok = True
    label = atoms.get_chemical_formula(mode="reduce")
    with tqdm(total=n, disable=not progress, desc=f"structure {label} {config.temperature:g} K",
              unit="step") as pbar:
        for _ in dyn.irun(n):
            step = dyn.nsteps
            if step >= config.md_equilibration_steps and step % config.sample_every == 0:
                if not (np.isfinite(atoms.positions).all() and np.isfinite(atoms.get_forces()).all()):
                    ok = False
                    log.warning("structure MD became non-finite at step %d: RDF/ADF from %d frames", step,
                                len(frames))
                    break
                frames.append(atoms.copy())
            pbar.update(1)
    if not frames:
        return {"temperature": config.temperature, "rdf": None, "adf": None, "md_ok": ok}
    r, g = rdf(frames, rmax, config.rdf_nbins)
    theta, p = adf(frames, cutoff, config.adf_nbins)
    return {
        "temperature": config.temperature,
        "rdf": {"r": r.tolist(), "g": g.tolist()},
        "adf": {"theta": theta.tolist(), "p": p.tolist(), "cutoff": cutoff},
        "md_ok": ok,
        "n_frames": len(frames),
        "n_atoms_md": len(atoms),
    }


@lru_cache(maxsize=32)
def _reference_structure(element: str, reference: str, config: PropertyConfig) -> dict[str, Any]:
    ref = get_reference(element, reference)
    log.info("reference structure for %s (%s) at %g K", element, reference, config.temperature)
    return sample_structure(ref.calculator, ref.crystal(1), config)


def _structure_distances(model: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {"rdf_distance": None, "adf_distance": None}
    if model.get("rdf") and ref.get("rdf"):
        r = np.asarray(model["rdf"]["r"])
        out["rdf_distance"] = rdf_distance(r, model["rdf"]["g"], on_grid(r, ref["rdf"]["r"], ref["rdf"]["g"]))
    if model.get("adf") and ref.get("adf"):
        th = np.asarray(model["adf"]["theta"])
        out["adf_distance"] = adf_distance(th, model["adf"]["p"],
                                           on_grid(th, ref["adf"]["theta"], ref["adf"]["p"]))
    return out


# ------------------------------------------------------------------ public entry points
def compute_properties(
    calculator: Calculator,
    element: str,
    *,
    reference: str | None,
    config: PropertyConfig = PropertyConfig(),
    reference_properties: Mapping[str, Any] | None = None,
    initial: Atoms | None = None,
    atom_energy: float | None = None,
    compare_structure: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """All properties of ``calculator`` for ``element``'s crystal, as a JSON-able dict.

    ``reference`` names the reference potential of ``element``: its crystal is the starting cell (unless
    ``initial``, a conventional cell, is given), its isolated-atom energy (unless ``atom_energy``) turns
    ``e_per_atom`` into ``ecoh``, and its structure is what the RDF/ADF are measured against. None: no
    reference; ``initial`` is then required, and ``ecoh`` needs ``atom_energy``. Elastic constants are
    the cubic ones, computed for cubic lattices only (a note says why they are missing otherwise).
    ``reference_properties``: an earlier output of this function for the reference, to measure the
    RDF/ADF against; None samples the reference's structure with the same protocol (cached in memory).
    With the same seed, the reference measured against itself gives exactly zero distances.
    ``compare_structure=False`` skips the distances (and the reference MD they may need), e.g. when
    ``calculator`` is the reference. What could not be computed is listed, with the reason, in ``notes``.
    """
    t0 = time.perf_counter()
    lattice = get_reference(element, reference).lattice if reference is not None else None
    crystal = starting_cell(element, reference, initial=initial)
    cell = crystal.copy()
    cell.calc = calculator
    notes: list[str] = []
    props: dict[str, Any] = {"element": element, "reference": reference, "lattice": lattice,
                             "n_atoms_static": len(cell)}
    eos, relaxed = _equation_of_state(cell, config)
    props.update(eos)
    # A given crystal is judged by its cell; a reference's by its lattice (a cubic cell alone is not cubic symmetry).
    cubic = lattice in CUBIC_LATTICES if lattice is not None and initial is None else _is_cube(crystal)
    if not cubic:
        lengths = crystal.cell.lengths()
        notes.append(f"cell not cubic ({lattice or 'given crystal'}): a0 is the first cell vector, the cell "
                     f"scaled isotropically (axis ratios {lengths[1] / lengths[0]:.4f}, {lengths[2] / lengths[0]:.4f} "
                     "held, not relaxed), so B is at fixed axis ratios")
    if atom_energy is None and reference is not None:
        atom_energy = get_reference(element, reference).isolated_atom_energy()
    props["e_atom"] = atom_energy
    if atom_energy is not None:
        props["ecoh"] = props["e_per_atom"] - atom_energy
    else:
        props["ecoh"] = None
        notes.append("no ecoh: no reference and no isolated-atom energy, so the energy zero is unknown "
                     "(e_per_atom is on the data's own zero)")
    if cubic:
        props.update(elastic_constants(relaxed, config))
    else:
        props.update({"C11": None, "C12": None, "C44": None, "C44_unrelaxed": None})
        notes.append(f"no elastic constants: only the cubic C11/C12/C44 are implemented, and the "
                     f"{lattice or 'given'} cell is not cubic")
    if config.md_steps > 0:
        props.update(sample_structure(lambda: calculator, crystal, config, progress=progress))
        if not compare_structure:
            reference_properties = {}
        elif reference_properties is None and reference is None:
            notes.append("no RDF/ADF distances: no reference potential and no reference properties given")
            reference_properties = {}
        elif reference_properties is None and initial is not None:
            ref = get_reference(element, reference)
            reference_properties = sample_structure(ref.calculator, initial, config)
        elif reference_properties is None:
            reference_properties = _reference_structure(element, reference, config)
        props.update(_structure_distances(props, reference_properties))
    props["notes"] = notes
    props["wall_time_s"] = time.perf_counter() - t0
    return props


def compare_properties(model_props: Mapping[str, Any], ref_props: Mapping[str, Any]) -> dict[str, Any]:
    """Errors of ``model_props`` against ``ref_props`` for every scalar property both have.

    Each scalar becomes ``{"model", "reference", "error" (model - reference), "abs_error", "rel_error"}``
    (rel_error relative to |reference|, None when the reference is 0). When both carry RDF/ADF curves,
    ``rdf_distance`` (A) and ``adf_distance`` (dimensionless, 0..2) are added. A literature dict such as
    ``get_reference(el, name).literature`` works as ``ref_props``.
    """
    out: dict[str, Any] = {}
    for k in SCALAR_PROPERTIES:
        m, r = model_props.get(k), ref_props.get(k)
        if m is None or r is None:
            continue
        m, r = float(m), float(r)
        err = m - r
        out[k] = {
            "model": m,
            "reference": r,
            "error": err,
            "abs_error": abs(err),
            "rel_error": abs(err) / abs(r) if r != 0 and math.isfinite(r) else None,
        }
    if (model_props.get("rdf") and ref_props.get("rdf")) or (model_props.get("adf") and ref_props.get("adf")):
        out.update(_structure_distances(model_props, ref_props))
    return out
