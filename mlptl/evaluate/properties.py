"""Crystal properties of any ASE calculator, and their errors against a reference.

Energies and forces near the training data are what a potential is fit to; lattice constant, cohesive
energy, bulk modulus, elastic constants and the finite-temperature structure (RDF, ADF) are what a user
of the potential relies on, and they probe curvature and anharmonicity the fit never saw directly.

Static properties use the small cubic cell (8 atoms for diamond) so that a slow calculator (a nequip
model on CPU) pays for a few dozen calls, not thousands; the RDF/ADF come from a short NVT run of the
64-atom cell at the *reference* lattice constant, so that a model and its reference are compared at
the same density and differences reflect the potential, not its equation of state.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.eos import EquationOfState
from ase.optimize import BFGS
from matscipy.neighbours import neighbour_list
from tqdm.auto import tqdm

from mlptl.data.references import get_reference
from mlptl.errors import InputError
from mlptl.evaluate.stability import (
    THERMOSTATS,
    _on_grid,
    make_dynamics,
    nearest_neighbour_distance,
    rdf,
    rdf_distance,
    starting_cell,
    thermalize,
)

__all__ = [
    "PropertyConfig",
    "SCALAR_PROPERTIES",
    "compute_properties",
    "compare_properties",
    "equation_of_state",
    "elastic_constants",
    "sample_structure",
    "adf",
    "adf_distance",
]

log = logging.getLogger(__name__)

#: Scalar properties in the output of :func:`compute_properties`; the names match the ``literature``
#: keys of :class:`mlptl.data.references.Reference`, so a literature dict compares directly.
#: Units: a0 Angstrom, ecoh eV/atom, B and C_ij GPa, volume Angstrom^3/atom.
SCALAR_PROPERTIES: tuple[str, ...] = ("a0", "ecoh", "B", "C11", "C12", "C44", "C44_unrelaxed", "volume")


@dataclass(frozen=True)
class PropertyConfig:
    """How properties are computed; the reasons for the defaults are in docs/evaluation.md.

    ``eos_strain``: lattice-constant range (+/- fraction) of the E-V scan; ``elastic_delta``: matscipy's
    strain increment (strains run from -2 to +2 increments for 5 steps); ``relax_fmax`` (eV/A) and
    ``relax_steps``: fixed-cell relaxation of atomic positions in strained cells; the MD settings
    (steps, fs, 1/fs) set the RDF/ADF sampling; ``adf_cutoff_factor`` x nearest-neighbour distance is
    the bond cutoff of the ADF. ``md_steps=0`` skips RDF/ADF.
    """

    eos_strain: float = 0.02
    eos_points: int = 9
    eos: str = "birchmurnaghan"
    elastic_delta: float = 2.5e-3
    elastic_steps: int = 5
    relax_fmax: float = 1e-4
    relax_steps: int = 200
    temperature: float = 900.0
    md_supercell: int = 2
    md_steps: int = 2000
    md_equilibration_steps: int = 500
    sample_every: int = 10
    timestep_fs: float = 1.0
    thermostat: str = "langevin"
    friction: float = 0.01
    rdf_rmax: float = 5.0
    rdf_nbins: int = 100
    adf_cutoff_factor: float = 1.2
    adf_nbins: int = 90
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("eos_points", "elastic_steps", "relax_steps", "md_supercell", "sample_every", "rdf_nbins",
                     "adf_nbins"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.eos_points < 5:
            raise InputError(f"eos_points must be at least 5 for a 3-parameter EOS fit, got {self.eos_points}")
        for name in ("eos_strain", "elastic_delta", "relax_fmax", "temperature", "timestep_fs", "friction",
                     "rdf_rmax", "adf_cutoff_factor"):
            if not (float(getattr(self, name)) > 0):
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.md_steps < 0 or self.md_equilibration_steps < 0:
            raise InputError("md_steps and md_equilibration_steps must be >= 0")
        if self.thermostat not in THERMOSTATS:
            raise InputError(f"thermostat must be one of {', '.join(THERMOSTATS)}, got {self.thermostat!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    """Lattice constant, energy per atom and bulk modulus from an E-V fit of a conventional cubic cell.

    Two passes: the first scan is centred on the starting lattice constant, the second on the first
    fit's minimum, so a model whose lattice constant is several percent off is still fit around its own
    minimum (a fit extrapolated to the edge of the scan is unreliable). Atomic positions scale with the
    cell; the energy at the fitted lattice constant is then evaluated after relaxing positions, and that
    energy per atom is the cohesive energy (the reference potentials' zero is the isolated atom).
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
            raise RuntimeError(f"equation-of-state fit failed: {e}") from e
        scale = (v0 / abs(np.linalg.det(cell0))) ** (1.0 / 3.0)
    relaxed = atoms.copy()
    relaxed.calc = calc
    relaxed.set_cell(cell0 * scale, scale_atoms=True)
    _relax_positions(relaxed, config.relax_fmax, config.relax_steps)
    n = len(relaxed)
    props = {
        "a0": float(np.linalg.norm(relaxed.cell[0])),
        "ecoh": float(relaxed.get_potential_energy() / n),
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


# ------------------------------------------------------------------ structure at temperature
def adf(
    images: Atoms | Iterable[Atoms], cutoff: float, nbins: int = 90
) -> tuple[np.ndarray, np.ndarray]:
    """Bond-angle distribution ``(theta_deg, p)``, p a density per degree (integrates to 1).

    Angles j-i-k between all pairs of neighbours j, k of each atom i within ``cutoff``. Hand-written on
    matscipy's neighbour list because ASE's ``Analysis.get_angles`` defines bonds by covalent radii, not
    by a cutoff we can tie to the crystal's neighbour shell.
    """
    if isinstance(images, Atoms):
        images = [images]
    edges = np.linspace(0.0, 180.0, nbins + 1)
    counts = np.zeros(nbins)
    for atoms in images:
        i, dvec = neighbour_list("iD", atoms, cutoff)
        order = np.argsort(i, kind="stable")
        i, dvec = i[order], dvec[order]
        u = dvec / np.linalg.norm(dvec, axis=1)[:, None]
        bounds = np.searchsorted(i, np.arange(len(atoms) + 1))
        for s, e in zip(bounds[:-1], bounds[1:]):
            if e - s < 2:
                continue
            c = u[s:e] @ u[s:e].T
            iu = np.triu_indices(e - s, 1)
            ang = np.degrees(np.arccos(np.clip(c[iu], -1.0, 1.0)))
            counts += np.histogram(ang, bins=edges)[0]
    theta = 0.5 * (edges[1:] + edges[:-1])
    total = counts.sum()
    p = counts / (total * (edges[1] - edges[0])) if total > 0 else counts
    return theta, p


def adf_distance(theta: np.ndarray, p: np.ndarray, p_ref: np.ndarray) -> float:
    """Integral of ``|p - p_ref|`` over angle: 0 for identical, 2 for disjoint distributions."""
    dtheta = float(theta[1] - theta[0]) if len(theta) > 1 else 1.0
    return float(np.nansum(np.abs(np.asarray(p) - np.asarray(p_ref))) * dtheta)


def sample_structure(
    calculator_factory: Callable[[], Calculator], element: str, config: PropertyConfig = PropertyConfig(),
    progress: bool = False,
) -> dict[str, Any]:
    """RDF and ADF from NVT MD of the reference crystal at ``config.temperature``.

    The ADF cutoff is tied to the *reference* crystal's nearest-neighbour distance, so model and
    reference ADFs count the same shell.
    """
    atoms = starting_cell(element, config.md_supercell)
    cutoff = config.adf_cutoff_factor * nearest_neighbour_distance(atoms)
    atoms.calc = calculator_factory()
    rng = np.random.default_rng([config.seed, int(round(config.temperature * 1000))])
    thermalize(atoms, config.temperature, rng)
    dyn = make_dynamics(atoms, config.temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    frames: list[Atoms] = []
    n = config.md_equilibration_steps + config.md_steps
    ok = True
    with tqdm(total=n, disable=not progress, desc=f"structure {element} {config.temperature:g} K",
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
    r, g = rdf(frames, config.rdf_rmax, config.rdf_nbins)
    theta, p = adf(frames, cutoff, config.adf_nbins)
    return {
        "temperature": config.temperature,
        "rdf": {"r": r.tolist(), "g": g.tolist()},
        "adf": {"theta": theta.tolist(), "p": p.tolist(), "cutoff": cutoff},
        "md_ok": ok,
        "n_frames": len(frames),
    }


@lru_cache(maxsize=32)
def _reference_structure(element: str, reference: str, config: PropertyConfig) -> dict[str, Any]:
    ref = get_reference(element, reference)
    log.info("reference structure for %s (%s) at %g K", element, reference, config.temperature)
    return sample_structure(ref.calculator, element, config)


def _structure_distances(model: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, float | None]:
    out: dict[str, float | None] = {"rdf_distance": None, "adf_distance": None}
    if model.get("rdf") and ref.get("rdf"):
        r = np.asarray(model["rdf"]["r"])
        out["rdf_distance"] = rdf_distance(r, model["rdf"]["g"], _on_grid(r, ref["rdf"]["r"], ref["rdf"]["g"]))
    if model.get("adf") and ref.get("adf"):
        th = np.asarray(model["adf"]["theta"])
        out["adf_distance"] = adf_distance(th, model["adf"]["p"],
                                           _on_grid(th, ref["adf"]["theta"], ref["adf"]["p"]))
    return out


# ------------------------------------------------------------------ public entry points
def compute_properties(
    calculator: Calculator,
    element: str,
    *,
    reference: Mapping[str, Any] | None = None,
    config: PropertyConfig = PropertyConfig(),
    reference_name: str = "sw",
    compare_structure: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """All properties of ``calculator`` for ``element``'s reference crystal, as a JSON-able dict.

    ``reference``: properties of the reference (an earlier output of this function) to measure the
    RDF/ADF against; None samples the registered reference potential's structure with the same
    protocol (cached in memory for the process). With the same seed, the reference measured against
    itself gives exactly zero distances. ``compare_structure=False`` skips the distances (and the
    reference MD they may need), e.g. when ``calculator`` is the reference.
    """
    t0 = time.perf_counter()
    cell = starting_cell(element, 1)
    cell.calc = calculator
    props: dict[str, Any] = {"element": element, "n_atoms_static": len(cell)}
    eos, relaxed = _equation_of_state(cell, config)
    props.update(eos)
    props.update(elastic_constants(relaxed, config))
    if config.md_steps > 0:
        struct = sample_structure(lambda: calculator, element, config, progress=progress)
        props.update(struct)
        if not compare_structure:
            reference = {}
        elif reference is None:
            try:
                reference = _reference_structure(element, reference_name, config)
            except InputError:
                log.warning("no registered reference for %s: no RDF/ADF distances", element)
                reference = {}
        props.update(_structure_distances(props, reference))
    props["wall_time_s"] = time.perf_counter() - t0
    return props


def compare_properties(model_props: Mapping[str, Any], ref_props: Mapping[str, Any]) -> dict[str, Any]:
    """Errors of ``model_props`` against ``ref_props`` for every scalar property both have.

    Each scalar becomes ``{"model", "reference", "error" (model - reference), "abs_error", "rel_error"}``
    (rel_error relative to |reference|, None when the reference is 0). When both carry RDF/ADF curves,
    ``rdf_distance`` (A) and ``adf_distance`` (dimensionless, 0..2) are added. A literature dict such as
    ``get_reference(el).literature`` works as ``ref_props``.
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
