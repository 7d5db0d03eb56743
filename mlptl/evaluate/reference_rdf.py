"""The reference RDF a stability run is compared with: MD with a named reference potential, or data frames.

Reference MD is the expensive part of a stability evaluation that does not depend on the model, so it
is cached, in memory and on disk (``mlptl.fsutil.cache_dir("rdf")``), keyed by everything that could
change the curve: the protocol, the starting cell, and the reference's energy and forces on a fixed
distorted cell (a changed parameter set never reuses a stale RDF). For several elements (``element`` a
chemistry such as ``"Cu-Ni"``, ``reference`` a system reference) each temperature's curve also carries
the partial RDF of every element pair, from the same frames.
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
from mlptl.data.references import get_reference
from mlptl.data.systems import get_system_reference
from mlptl.errors import InputError
from mlptl.evaluate.md import make_dynamics, nearest_neighbour_distance, run_seed
from mlptl.evaluate.rdf import partial_rdfs, rdf
from mlptl.evaluate.stability_config import StabilityConfig, chemistry_of, stability_cell
from mlptl.fsutil import atomic_write_text, fetch_shared, share
from mlptl.fsutil import cache_dir as default_cache_dir

__all__ = ["reference_rdf", "clear_memory_cache"]

log = logging.getLogger(__name__)

#: Replica index of the reference runs: a seed stream disjoint from the stability runs', so a reference
#: run is never the very trajectory it is compared with.
_REFERENCE_REPLICA = 10**9
#: The kind of cache (:func:`mlptl.fsutil.cache_dir`) that holds reference RDFs.
RDF_CACHE = "rdf"
_RDF_MEMORY: dict[str, tuple] = {}

#: temperature -> (r, g), or for several elements (r, g, {"a-b": g_ab})
Curves = dict[float, tuple]


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
    compositions: Sequence[str] | None = None,
) -> Curves:
    """Reference RDF per temperature, on the grid and in the cell the stability runs use.

    From ``frames`` when given (grouped by their ``temperature`` info; e.g. DFT MD, for which no
    reference potential exists: ``reference`` may then be None), else by NVT MD with the reference
    potential named ``reference``: ``rdf_equilibration`` ps, then ``reference_steps`` steps sampled
    every ``check_every``. The grid's range follows the nearest-neighbour distance of the starting
    cell (``initial`` or the reference's crystal; for frames without either, the frames' own).

    For a chemistry of several elements the cell is the system reference's random alloy
    (:func:`~mlptl.evaluate.stability_config.stability_cell` of ``compositions``), and each curve is
    ``(r, g, {"a-b": g_ab})`` with the partial RDFs of every element pair.
    """
    temperatures = [float(t) for t in temperatures]
    chem = chemistry_of(element)
    if frames is not None:
        frames = list(frames)
        if initial is not None or reference is not None:
            nn = nearest_neighbour_distance(stability_cell(element, reference, config, initial,
                                                           compositions=compositions))
        else:
            nn = _median_nearest_neighbour(frames)
        return _from_frames(frames, temperatures, config, nn, partials=chem is not None)
    if reference is None:
        raise InputError(f"no reference potential named for {element} and no frames: "
                         "nothing to compute a reference RDF from")
    if chem is not None:
        element = chem.label
        calc_factory = get_system_reference(reference, chem).calculator
    else:
        calc_factory = get_reference(element, reference).calculator
    cell = stability_cell(element, reference, config, initial, compositions=compositions)
    fp = _fingerprint(calc_factory(), cell)
    grid = config.rdf_grid(nearest_neighbour_distance(cell))
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir(RDF_CACHE)
    out: Curves = {}
    for t in temperatures:
        key_src = {
            "element": element, "reference": reference, "temperature": t, "fingerprint": fp,
            "cell": _cell_digest(cell), "rmax": round(grid.rmax, 10),
            **{k: getattr(config, k) for k in ("timestep_fs", "thermostat", "friction", "check_every",
                                                "rdf_nbins", "rdf_equilibration", "reference_steps", "seed")},
        }
        if chem is not None:  # one-element keys stay as they were: their cached files stay valid
            key_src["partials"] = True
        key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:20]
        if key in _RDF_MEMORY:
            out[t] = _RDF_MEMORY[key]
            continue
        path = cache / f"rdf-{element}-{reference}-{t:g}K-{key}.json"
        if _fetch(path):
            try:
                d = json.loads(path.read_text())
                curve = (np.asarray(d["r"]), np.asarray(d["g"]))
                if chem is not None:
                    curve += ({p: np.asarray(g) for p, g in d["partials"].items()},)
                out[t] = _RDF_MEMORY[key] = curve
                log.debug("reference RDF %s %g K from %s", element, t, path)
                continue
            except (OSError, ValueError, KeyError):
                log.warning("ignoring unreadable RDF cache file %s", path)
        curve = _from_md(calc_factory, f"{element} ({reference})", cell, t, config, progress,
                         partials=chem is not None)
        out[t] = _RDF_MEMORY[key] = curve
        r, g = curve[:2]
        doc = {"key": key_src, "r": r.tolist(), "g": g.tolist()}
        if chem is not None:
            doc["partials"] = {p: gp.tolist() for p, gp in curve[2].items()}
        try:
            atomic_write_text(path, json.dumps(doc))
        except OSError as e:  # a read-only cache must not break an evaluation
            log.warning("cannot cache reference RDF in %s: %s", cache, e)
        else:
            share(path, RDF_CACHE)  # a given cache_dir (a study store's) is shared through the user cache
    return out


def _fetch(path: Path) -> bool:
    try:
        return fetch_shared(path, RDF_CACHE)
    except OSError as e:  # as for writing: a cache that cannot be filled is computed past
        log.warning("cannot copy the shared reference RDF to %s: %s", path, e)
        return False


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


def _from_md(calc_factory, what: str, cell: Atoms, temperature: float, config: StabilityConfig,
             progress: bool, *, partials: bool = False) -> tuple:
    atoms = cell.copy()
    atoms.calc = calc_factory()
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
    log.info("reference RDF for %s at %g K: %d MD steps", what, temperature, n)
    with tqdm(total=n, disable=not progress, desc=f"reference RDF {what} {temperature:g} K",
              unit="step") as pbar:
        for _ in dyn.irun(n):
            pbar.update(1)
    grid = config.rdf_grid(nearest_neighbour_distance(cell))
    return _curve(frames, grid.rmax, grid.nbins, partials)


def _curve(frames: Sequence[Atoms], rmax: float, nbins: int, partials: bool) -> tuple:
    """(r, g), and with ``partials`` the partial RDF of every element pair of the frames as a third item."""
    r, g = rdf(frames, rmax, nbins)
    if not partials:
        return r, g
    return r, g, partial_rdfs(frames, rmax, nbins)[1]


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


def _from_frames(frames: list[Atoms], temperatures: list[float], config: StabilityConfig, nn: float,
                 partials: bool = False) -> Curves:
    have = sorted({float(a.info[TEMPERATURE]) for a in frames if TEMPERATURE in a.info})
    grid = config.rdf_grid(nn)
    out: Curves = {}
    for t in temperatures:
        sel = [a for a in frames if TEMPERATURE in a.info and abs(float(a.info[TEMPERATURE]) - t) <= 0.5]
        if not sel and not have and len(temperatures) == 1:
            sel = frames  # unlabelled frames can only serve a single requested temperature
        if not sel:
            raise InputError(f"no frames at {t:g} K for a reference RDF (frame temperatures: {have or 'none'})")
        out[t] = _curve(sel, grid.rmax, grid.nbins, partials)
    return out
