"""Alloy properties of any ASE calculator, and their errors against a system reference.

What a multi-element potential is used for beyond its training forces: the mixing energy of random alloys
against composition (whether the elements mix, and by how much) and the alloy's lattice constant (how far
from Vegard's law), both from cells relaxed in positions and volume; and the alloy's partial RDFs at
temperature. A model and its reference start from the same cells (the reference's random alloy of each
composition, same seed, same supercell), so their differences are the potentials'. Cells are small (a
2x2x2 fcc conventional cell is 32 atoms): EMT evaluates everything in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, PropertyNotImplementedError
from ase.filters import UnitCellFilter
from ase.optimize import LBFGS

from mlptl import metrics as M
from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.md import thermalize
from mlptl.data.structures import parent_lattice
from mlptl.data.systems import SystemReference, get_system_reference
from mlptl.errors import InputError
from mlptl.evaluate.md import make_dynamics, nearest_neighbour_distance
from mlptl.evaluate.properties import CUBIC_LATTICES, PropertyConfig, equation_of_state
from mlptl.evaluate.rdf import on_grid, partial_rdfs, rdf_distance

__all__ = [
    "alloy_metrics",
    "alloy_properties",
    "alloy_structure",
    "compare_alloy_properties",
    "compare_alloy_structure",
    "default_compositions",
    "relax_cell",
]

log = logging.getLogger(__name__)


def default_compositions(chemistry: Chemistry | str) -> list[str]:
    """A binary's 25/50/75 % alloys; for more elements the equimolar one (labels)."""
    chem = Chemistry.parse(chemistry) if isinstance(chemistry, str) else chemistry
    if len(chem) < 2:
        raise InputError(f"alloy compositions need at least two elements, got {chem}")
    if len(chem) == 2:
        a, b = chem.elements
        return [Composition({a: x, b: 1.0 - x}).label for x in (0.25, 0.5, 0.75)]
    return [Composition(dict.fromkeys(chem.elements, 1.0), normalize=True).label]


def _system(reference: SystemReference | str, elements: Iterable[str]) -> SystemReference:
    if isinstance(reference, SystemReference):
        if not reference.covers(elements):
            raise InputError(f"reference {reference.name!r} covers {reference.chemistry}, not all of "
                             f"{sorted(set(elements))}")
        return reference
    return get_system_reference(reference, Chemistry(tuple(set(elements))))


def relax_cell(atoms: Atoms, calculator: Calculator, *, fmax: float = 1e-3, steps: int = 300
               ) -> tuple[Atoms, bool, str | None]:
    """A copy of ``atoms`` relaxed in positions and volume (isotropic: the cell keeps its shape).

    Returns (relaxed atoms with ``calculator`` attached, converged, note). A calculator without stress
    falls back to an equation-of-state fit of the volume (positions scaled, then relaxed at the minimum),
    and the note says so.
    """
    out = atoms.copy()
    out.calc = calculator
    try:
        opt = LBFGS(UnitCellFilter(out, hydrostatic_strain=True), logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=steps))
        return out, converged, None
    except PropertyNotImplementedError:
        out = atoms.copy()
        out.calc = calculator
        cfg = PropertyConfig(relax_fmax=fmax, relax_steps=steps, md_steps=0)
        eos = equation_of_state(out, cfg)
        scale = (eos["volume"] * len(out) / out.get_volume()) ** (1.0 / 3.0)
        out.set_cell(out.cell * scale, scale_atoms=True)
        opt = LBFGS(out, logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=steps))
        return out, converged, "no stress from the calculator: volume from an E-V fit at scaled positions"


def _atoms_per_cubic_cell(lattice: str) -> int | None:
    if lattice not in CUBIC_LATTICES:
        return None
    return len(parent_lattice("Cu", lattice, 1.0, 1))


def _relaxed(atoms: Atoms, calculator: Calculator, lattice: str, fmax: float, steps: int,
             notes: list[str], what: str) -> tuple[Atoms, dict[str, Any]]:
    relaxed, converged, note = relax_cell(atoms, calculator, fmax=fmax, steps=steps)
    if note:
        notes.append(f"{what}: {note}")
    if not converged:
        notes.append(f"{what}: relaxation not converged in {steps} steps (fmax {fmax} eV/A)")
        log.warning("%s", notes[-1])
    n = len(relaxed)
    volume = relaxed.get_volume() / n
    per_cell = _atoms_per_cubic_cell(lattice)
    return relaxed, {
        "lattice": lattice,
        "n_atoms": n,
        "e_per_atom": float(relaxed.get_potential_energy() / n),
        "volume": float(volume),
        "a0": float((volume * per_cell) ** (1.0 / 3.0)) if per_cell else None,
        "converged": converged,
    }


def alloy_properties(
    calculator: Calculator,
    reference: SystemReference | str,
    compositions: Sequence[Composition | str],
    *,
    supercell: int = 2,
    seed: int = 0,
    fmax: float = 1e-3,
    steps: int = 300,
) -> dict[str, Any]:
    """Mixing energy and lattice constant of ``calculator`` for random alloys of each composition.

    The cells are ``reference``'s (a :class:`SystemReference` or its name): each element's own crystal
    and each composition's random alloy on its parent lattice (``supercell`` conventional cells per axis,
    arranged by ``seed``), all relaxed by ``calculator`` in positions and volume. ``e_mix`` (meV/atom) is
    E/N of the alloy minus the atom-weighted energies per atom of the pure crystals, both the
    calculator's own; ``a0`` (A) is the relaxed alloy's cubic lattice constant (None on a non-cubic lattice).
    """
    comps = [Composition.coerce(c) for c in compositions]
    if not comps:
        raise InputError("name at least one composition")
    elements = sorted({el for c in comps for el in c.elements})
    ref = _system(reference, elements)
    notes: list[str] = []
    pure: dict[str, dict[str, Any]] = {}
    for el in elements:
        lattice = ref.crystals[el][0]
        _, pure[el] = _relaxed(ref.crystal(el), calculator, lattice, fmax, steps, notes, el)
    out: dict[str, dict[str, Any]] = {}
    for comp in comps:
        lattice = ref.parent_lattice_of(comp)
        atoms = ref.alloy(comp, supercell, seed=seed, lattice=lattice)
        relaxed, props = _relaxed(atoms, calculator, lattice, fmax, steps, notes, comp.label)
        symbols = relaxed.get_chemical_symbols()
        e_pure = sum(pure[s]["e_per_atom"] for s in symbols) / len(symbols)
        props["e_mix"] = 1000.0 * (props["e_per_atom"] - e_pure)
        props["vegard_a0"] = float(ref.lattice_constant(comp)) if props["a0"] is not None else None
        props["cell_composition"] = Composition.of(relaxed).label
        out[comp.label] = props
    return {"reference": ref.name, "chemistry": Chemistry(tuple(elements)).label, "supercell": supercell, "seed": seed,
            "pure": pure, "compositions": out, "notes": notes}


def _error(m: float | None, r: float | None) -> dict[str, float] | None:
    if m is None or r is None:
        return None
    return {"model": float(m), "reference": float(r), "error": float(m - r), "abs_error": abs(float(m - r))}


def compare_alloy_properties(model: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, Any]:
    """Errors of ``model`` against ``ref`` (both outputs of :func:`alloy_properties`) per composition.

    Per composition ``{"e_mix": {model, reference, error, abs_error}, "a0": {...}}`` (None where either
    lacks it), and ``e_mix_mae`` (meV/atom) and ``a0_mae`` (A), means over the shared compositions.
    """
    shared = [c for c in model["compositions"] if c in ref["compositions"]]
    if not shared:
        raise InputError("the model's and the reference's alloy properties share no composition")
    per = {}
    for c in shared:
        m, r = model["compositions"][c], ref["compositions"][c]
        per[c] = {k: _error(m.get(k), r.get(k)) for k in ("e_mix", "a0")}
    e = [d["e_mix"]["abs_error"] for d in per.values() if d["e_mix"]]
    a = [d["a0"]["abs_error"] for d in per.values() if d["a0"]]
    return {"compositions": per, "e_mix_mae": float(np.mean(e)) if e else None,
            "a0_mae": float(np.mean(a)) if a else None}


def alloy_metrics(model: Mapping[str, Any], comparison: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Flat MLflow metrics: ``alloy_e_mix.comp_<label>``, ``alloy_a0.comp_<label>``, with a comparison also
    their ``_abs_error`` and ``alloy_e_mix_mae``, ``alloy_a0_mae``."""
    out: dict[str, float] = {}
    for c, props in model["compositions"].items():
        for name, key in ((M.ALLOY_E_MIX, "e_mix"), (M.ALLOY_A0, "a0")):
            if props.get(key) is not None:
                out[M.composition_metric(name, c)] = float(props[key])
            err = (comparison or {}).get("compositions", {}).get(c, {}).get(key)
            if err:
                out[M.composition_metric(f"{name}_abs_error", c)] = err["abs_error"]
    for name, key in ((M.ALLOY_E_MIX_MAE, "e_mix_mae"), (M.ALLOY_A0_MAE, "a0_mae")):
        if comparison and comparison.get(key) is not None:
            out[name] = float(comparison[key])
    return out


# ------------------------------------------------------------------ structure at temperature
def alloy_structure(
    calculator_factory: Callable[[], Calculator],
    reference: SystemReference | str,
    composition: Composition | str,
    config: PropertyConfig = PropertyConfig(),
    *,
    supercell: int = 2,
    a0: float | None = None,
) -> dict[str, Any]:
    """Partial RDFs g_ab(r) from NVT MD of ``composition``'s random alloy at ``config.temperature``.

    The cell is the reference's random alloy (``supercell`` conventional cells per axis, arranged by
    ``config.seed``) at lattice constant ``a0`` (default Vegard's), so that a model and its reference run
    from the same cell at the same density; the MD settings are ``config``'s (as for single elements).
    """
    comp = Composition.coerce(composition)
    ref = _system(reference, comp.elements)
    strain = 0.0 if a0 is None else a0 / ref.lattice_constant(comp) - 1.0
    atoms = ref.alloy(comp, supercell, seed=config.seed, strain=strain)
    rmax = config.rdf_rmax if config.rdf_rmax is not None else config.rdf_rmax_factor * nearest_neighbour_distance(atoms)
    atoms.calc = calculator_factory()
    rng = np.random.default_rng([config.seed, int(round(config.temperature * 1000))])
    thermalize(atoms, config.temperature, rng)
    dyn = make_dynamics(atoms, config.temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    frames: list[Atoms] = []
    ok = True
    for _ in dyn.irun(config.md_equilibration_steps + config.md_steps):
        step = dyn.nsteps
        if step >= config.md_equilibration_steps and step % config.sample_every == 0:
            if not (np.isfinite(atoms.positions).all() and np.isfinite(atoms.get_forces()).all()):
                ok = False
                log.warning("alloy MD of %s became non-finite at step %d", comp.label, step)
                break
            frames.append(atoms.copy())
    out: dict[str, Any] = {"composition": comp.label, "temperature": config.temperature, "md_ok": ok,
                           "n_frames": len(frames), "n_atoms_md": len(atoms), "partial_rdf": None}
    if frames:
        r, gs = partial_rdfs(frames, rmax, config.rdf_nbins)
        out["partial_rdf"] = {"r": r.tolist(), **{p: g.tolist() for p, g in gs.items()}}
    return out


def compare_alloy_structure(model: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, float | None]:
    """Integral of |g_ab - g_ab(reference)| (A) per element pair ``"a-b"`` of two :func:`alloy_structure`
    outputs; None for a pair either lacks (e.g. the model's MD failed before sampling)."""
    gm, gr = model.get("partial_rdf") or {}, ref.get("partial_rdf") or {}
    pairs = sorted({k for k in (*gm, *gr) if k != "r"})
    out: dict[str, float | None] = {}
    for p in pairs:
        if p in gm and p in gr:
            r = np.asarray(gm["r"])
            out[p] = rdf_distance(r, gm[p], on_grid(r, gr["r"], gr[p]))
        else:
            out[p] = None
    return out
