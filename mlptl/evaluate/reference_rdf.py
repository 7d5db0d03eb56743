"""The reference RDF a stability run is compared with: MD with a named reference potential, or data frames.

Reference MD is the expensive part of a stability evaluation that does not depend on the model, so it
is cached, in memory and on disk (``mlptl.fsutil.cache_dir("rdf")``), keyed by everything that could
change the curve: the protocol, the starting cell, and the reference's energy and forces on a fixed
distorted cell (a changed parameter set never reuses a stale RDF).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from matscipy.neighbours import neighbour_list
from tqdm.auto import tqdm

from mlptl.data.frames import TEMPERATURE
from mlptl.data.md import thermalize
from mlptl.data.references import Reference, get_reference
from mlptl.errors import InputError
from mlptl.evaluate.md import make_dynamics, nearest_neighbour_distance, run_seed
from mlptl.evaluate.rdf import rdf
from mlptl.evaluate.stability_config import StabilityConfig, stability_cell
from mlptl.fsutil import atomic_write_text
from mlptl.fsutil import cache_dir as default_cache_dir

__all__ = ["reference_rdf", "clear_memory_cache"]

log = logging.getLogger(__name__)

#: Replica index of the reference runs: a seed stream disjoint from the stability runs', so a reference
#: run is never the very trajectory it is compared with.
_REFERENCE_REPLICA = 10**9
_RDF_MEMORY: dict[str, tuple[np.ndarray, np.ndarray]] = {}

Curves = dict[float, tuple[np.ndarray, np.ndarray]]


def clear_memory_cache() -> None:
    """Forget the in-process RDFs (the disk cache stays): for tests of the disk cache."""
    _RDF_MEMORY.clear()


def reference_rdf(
    element: str,
    temperatures: Iterable[float],
    config: StabilityConfig = StabilityConfig(),
    *,
    reference: str | None,
    frames: Sequence[Atoms] | None = None,
    initial: Atoms | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> Curves:
    """Reference RDF per temperature, on the grid and in the cell the stability runs use.

    From ``frames`` when given (grouped by their ``temperature`` info; e.g. DFT MD, for which no
    reference potential exists: ``reference`` may then be None), else by NVT MD with the reference
    potential named ``reference``: ``rdf_equilibration`` ps, then ``reference_steps`` steps sampled
    every ``check_every``. The grid's range follows the nearest-neighbour distance of the starting
    cell (``initial`` or the reference's crystal; for frames without either, the frames' own).
    """
    temperatures = [float(t) for t in temperatures]
    if frames is not None:
        frames = list(frames)
        if initial is not None or reference is not None:
            nn = nearest_neighbour_distance(stability_cell(element, reference, config, initial))
        else:
            nn = _median_nearest_neighbour(frames)
        return _from_frames(frames, temperatures, config, nn)
    if reference is None:
        raise InputError(f"no reference potential named for {element} and no frames: "
                         "nothing to compute a reference RDF from")
    ref = get_reference(element, reference)
    cell = stability_cell(element, reference, config, initial)
    fp = _fingerprint(ref.calculator(), cell)
    grid = config.rdf_grid(nearest_neighbour_distance(cell))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir("rdf")
    out: Curves = {}
    for t in temperatures:
        key_src = {
            "element": element, "reference": reference, "temperature": t, "fingerprint": fp,
            "cell": _cell_digest(cell), "rmax": round(grid.rmax, 10),
            **{k: getattr(config, k) for k in ("timestep_fs", "thermostat", "friction", "check_every",
                                                "rdf_nbins", "rdf_equilibration", "reference_steps", "seed")},
        }
        key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:20]
        if key in _RDF_MEMORY:
            out[t] = _RDF_MEMORY[key]
            continue
        path = cache / f"rdf-{element}-{reference}-{t:g}K-{key}.json"
        if path.is_file():
            try:
                d = json.loads(path.read_text())
                out[t] = _RDF_MEMORY[key] = (np.asarray(d["r"]), np.asarray(d["g"]))
                log.debug("reference RDF %s %g K from %s", element, t, path)
                continue
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable RDF cache file %s", path)
        r, g = _from_md(ref, cell, t, config, progress)
        out[t] = _RDF_MEMORY[key] = (r, g)
        try:
            atomic_write_text(path, json.dumps({"key": key_src, "r": r.tolist(), "g": g.tolist()}))
        except OSError as e:  # a read-only cache must not break an evaluation
            log.warning("cannot cache reference RDF in %s: %s", cache, e)
    return out


def _cell_digest(cell: Atoms) -> str:
    h = hashlib.sha256()
    for arr in (cell.numbers, np.round(cell.positions, 6), np.round(np.asarray(cell.cell), 6),
                np.round(cell.get_masses(), 6), cell.pbc):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _fingerprint(calc: Calculator, cell: Atoms) -> list[float]:
    """Energy and forces of a fixed distorted cell: a changed parameter set changes the cache key."""
    atoms = cell.copy()
    atoms.positions += np.random.default_rng(12345).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = calc
    vals = [atoms.get_potential_energy(), *atoms.get_forces().ravel()]
    return [round(float(v), 8) for v in vals]


def _from_md(ref: Reference, cell: Atoms, temperature: float, config: StabilityConfig,
             progress: bool) -> tuple[np.ndarray, np.ndarray]:
    atoms = cell.copy()
    atoms.calc = ref.calculator()
    rng = np.random.default_rng(run_seed(config.seed, temperature, _REFERENCE_REPLICA))
    thermalize(atoms, temperature, rng)
    dyn = make_dynamics(atoms, temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    equil = config.equilibration_steps
    frames: list[Atoms] = []

    def sample() -> None:
        if dyn.nsteps >= equil and dyn.nsteps % config.check_every == 0:
            frames.append(atoms.copy())

    dyn.attach(sample, interval=1)
    n = equil + config.reference_steps
    log.info("reference RDF for %s (%s) at %g K: %d MD steps", ref.element, ref.name, temperature, n)
    with tqdm(total=n, disable=not progress, desc=f"reference RDF {ref.element} {temperature:g} K",
              unit="step") as pbar:
        for _ in dyn.irun(n):
            pbar.update(1)
    grid = config.rdf_grid(nearest_neighbour_distance(cell))
    return rdf(frames, grid.rmax, grid.nbins)


def _median_nearest_neighbour(frames: Sequence[Atoms]) -> float:
    """Median over atoms and frames of each atom's nearest-neighbour distance: the crystal's length
    scale when only thermal frames are at hand (their minimum would be a rare close approach)."""
    per_atom = []
    for atoms in frames:
        cutoff = 2.0 * (atoms.get_volume() / len(atoms)) ** (1.0 / 3.0)
        i, d = neighbour_list("id", atoms, cutoff)
        nearest = np.full(len(atoms), np.inf)
        np.minimum.at(nearest, i, d)
        per_atom.append(nearest[np.isfinite(nearest)])
    values = np.concatenate(per_atom) if per_atom else np.empty(0)
    if len(values) == 0:
        raise InputError("no neighbours in the frames to define a nearest-neighbour distance")
    return float(np.median(values))


def _from_frames(frames: list[Atoms], temperatures: list[float], config: StabilityConfig, nn: float) -> Curves:
    have = sorted({float(a.info[TEMPERATURE]) for a in frames if TEMPERATURE in a.info})
    grid = config.rdf_grid(nn)
    out: Curves = {}
    for t in temperatures:
        sel = [a for a in frames if TEMPERATURE in a.info and abs(float(a.info[TEMPERATURE]) - t) <= 0.5]
        if not sel and not have and len(temperatures) == 1:
            sel = frames  # unlabelled frames can only serve a single requested temperature
        if not sel:
            raise InputError(f"no frames at {t:g} K for a reference RDF (frame temperatures: {have or 'none'})")
        out[t] = rdf(sel, grid.rmax, grid.nbins)
    return out
