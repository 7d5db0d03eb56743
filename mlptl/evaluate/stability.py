"""MD stability of a potential: how long NVT molecular dynamics stays physical, per temperature.

A force error on held-out frames says little about whether a potential survives MD (Fu et al., "Forces
are not enough", TMLR 2023): a model can have small errors near the training data and still drive the
crystal into unphysical regions. So each potential runs NVT MD from the element's reference crystal at
several temperatures and replicas, and every run is watched by cheap criteria. A run ends at the first
criterion that trips; its time to failure and the criterion are recorded. The calculator is any ASE
calculator, so the reference potential itself is measured by the same protocol as a trained model (and
must pass it: that is how the thresholds were calibrated, see docs/evaluation.md).

Criteria (names as recorded in :attr:`RunResult.criterion`):

``non_finite``   energy, forces or positions not finite (checked every step: a NaN position is silently
                 dropped by matscipy's neighbour list, so it must never reach the next force call);
``temperature``  instantaneous temperature above ``max_temperature_factor`` x target;
``force``        any atomic force above ``max_force``;
``min_distance`` two atoms closer than ``min_distance``;
``rdf``          RDF averaged over a sliding window deviates from the reference RDF at the same
                 temperature by more than ``rdf_threshold`` (integral of ``|g - g_ref|`` over r);
``error``        the calculator or integrator raised during MD (after a successful first call, so that
                 a mis-configured calculator still fails loudly instead of being scored unstable).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import statistics
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import Calculator
from matscipy.neighbours import neighbour_list
from tqdm.auto import tqdm

from mlptl.data.frames import TEMPERATURE
from mlptl.data.references import get_reference
from mlptl.errors import InputError

__all__ = [
    "CRITERIA",
    "StabilityConfig",
    "RunResult",
    "StabilityResult",
    "run_stability",
    "reference_rdf",
    "rdf_from_frames",
    "rdf",
    "rdf_distance",
    "starting_cell",
    "nearest_neighbour_distance",
    "make_dynamics",
    "thermalize",
    "measure_md_cost",
]

log = logging.getLogger(__name__)

#: Criteria that can be switched off through :attr:`StabilityConfig.criteria`. ``non_finite`` is
#: always on: nothing downstream of a NaN means anything.
CRITERIA: tuple[str, ...] = ("temperature", "force", "min_distance", "rdf")
THERMOSTATS: tuple[str, ...] = ("langevin", "nose-hoover")
_MIN_RDF_ATOM_FRAMES = 1000


@dataclass(frozen=True)
class StabilityConfig:
    """The stability protocol. Defaults are calibrated on SW Si and Ge; the reasons are in docs/evaluation.md.

    Times: ``timestep_fs`` in fs, ``rdf_window`` and ``rdf_equilibration`` in ps. ``friction`` is the
    Langevin friction in 1/fs; for Nose-Hoover its inverse is the thermostat damping time.
    ``min_distance`` None means ``min_distance_factor`` x the nearest-neighbour distance of the starting
    crystal, so that the default does not hard-code an element's bond length.
    """

    temperatures: tuple[float, ...] = (300.0, 900.0, 1500.0)
    replicas: int = 3
    steps: int = 10_000
    timestep_fs: float = 1.0
    supercell: int = 2
    thermostat: str = "langevin"
    friction: float = 0.01
    check_every: int = 10
    max_temperature_factor: float = 2.0
    max_force: float = 25.0
    min_distance: float | None = None
    min_distance_factor: float = 0.7
    rdf_window: float = 0.5
    rdf_threshold: float = 1.0
    rdf_rmax: float = 5.0
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
        for name in ("replicas", "steps", "supercell", "check_every", "rdf_nbins", "reference_steps"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("timestep_fs", "friction", "max_temperature_factor", "max_force", "rdf_window",
                     "rdf_threshold", "rdf_rmax", "min_distance_factor"):
            if not (float(getattr(self, name)) > 0):
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StabilityConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown stability config fields {sorted(unknown)}")
        return cls(**d)


@dataclass(frozen=True)
class RunResult:
    """One MD run. ``time_to_failure_ps`` is None for a run that stayed stable for its whole length."""

    temperature: float
    replica: int
    seed: tuple[int, ...]
    time_to_failure_ps: float | None
    criterion: str | None
    detail: str = ""
    #: the most extreme values each criterion saw (max |F|, min distance, max T / target, max RDF
    #: deviation): the margins that show how close a stable run came to tripping
    extremes: dict[str, float | None] = field(default_factory=dict)

    @property
    def stable(self) -> bool:
        return self.criterion is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seed"] = list(self.seed)
        d["stable"] = self.stable
        return d


@dataclass(frozen=True)
class StabilityResult:
    """All runs of one potential, summarised per temperature (the key other tables join on)."""

    element: str
    config: StabilityConfig
    runs: tuple[RunResult, ...]
    thresholds: dict[str, float | None]
    #: per temperature: {"r": [...], "g": [...] (model, averaged over runs), "g_ref": [...] or None}
    rdf: dict[float, dict[str, list[float] | None]] = field(default_factory=dict)
    wall_time_s: float = 0.0

    def by_temperature(self) -> dict[float, dict[str, Any]]:
        """Stable fraction and median time to failure, stable runs counted at the full run length.

        Counting stable runs at full length (rather than dropping them) keeps the median monotone in
        stability: a potential that never fails gets the largest possible value, not an undefined one.
        """
        out: dict[float, dict[str, Any]] = {}
        full = self.config.duration_ps
        for t in self.config.temperatures:
            runs = [r for r in self.runs if r.temperature == t]
            if not runs:
                continue
            ttf = [full if r.stable else float(r.time_to_failure_ps) for r in runs]
            criteria: dict[str, int] = {}
            for r in runs:
                if not r.stable:
                    criteria[r.criterion] = criteria.get(r.criterion, 0) + 1
            out[t] = {
                "temperature": t,
                "n_runs": len(runs),
                "n_stable": sum(r.stable for r in runs),
                "stable_fraction": sum(r.stable for r in runs) / len(runs),
                "median_time_to_failure_ps": statistics.median(ttf),
                "min_time_to_failure_ps": min(ttf),
                "run_length_ps": full,
                "criteria": criteria,
            }
        return out

    @property
    def stable_fraction(self) -> float:
        return sum(r.stable for r in self.runs) / len(self.runs) if self.runs else float("nan")

    def table(self) -> list[dict[str, Any]]:
        """One row per run, for ``pandas.DataFrame(result.table())``."""
        rows = []
        for r in self.runs:
            d = r.to_dict()
            extremes = d.pop("extremes")
            rows.append({"element": self.element, **d, **{f"observed_{k}": v for k, v in extremes.items()}})
        return rows

    def summary_table(self) -> list[dict[str, Any]]:
        """One row per temperature, for ``pandas.DataFrame(result.summary_table())``."""
        rows = []
        for s in self.by_temperature().values():
            row = {"element": self.element, **{k: v for k, v in s.items() if k != "criteria"}}
            row["criteria"] = ",".join(f"{k}:{v}" for k, v in sorted(s["criteria"].items()))
            rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: config, thresholds actually used, per-temperature summary, runs and mean RDFs."""
        return {
            "element": self.element,
            "config": self.config.to_dict(),
            "thresholds": dict(self.thresholds),
            "stable_fraction": self.stable_fraction,
            "summary": list(self.by_temperature().values()),
            "runs": [r.to_dict() for r in self.runs],
            "rdf": [{"temperature": t, **v} for t, v in self.rdf.items()],
            "wall_time_s": self.wall_time_s,
        }


# ------------------------------------------------------------------ structure and MD helpers
def starting_cell(element: str, supercell: int = 2) -> Atoms:
    """The element's registered reference crystal (cubic cell) repeated ``supercell`` times per axis."""
    ref = get_reference(element)
    try:
        atoms = bulk(element, ref.lattice, a=ref.a0, cubic=True)
    except (ValueError, RuntimeError) as e:
        raise InputError(f"cannot build a cubic {ref.lattice} cell for {element}: {e}") from None
    atoms = atoms * (supercell, supercell, supercell)
    if ref.mass is not None:
        atoms.set_masses([ref.mass] * len(atoms))
    return atoms


def nearest_neighbour_distance(atoms: Atoms) -> float:
    """Shortest interatomic distance, periodic images included."""
    # Search radius: the cube root of the volume per atom bounds the nearest-neighbour distance of any
    # reasonable packing from above (about 1.1x for diamond); doubled for safety.
    cutoff = 2.0 * (atoms.get_volume() / len(atoms)) ** (1.0 / 3.0)
    d = neighbour_list("d", atoms, cutoff)
    if len(d) == 0:
        raise InputError("no neighbours found to define a nearest-neighbour distance")
    return float(d.min())


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature`` with zero total momentum."""
    try:  # ASE >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta

        thermalize_momenta(atoms, temperature, rng=rng)
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    p = atoms.get_momenta()
    m = atoms.get_masses()[:, None]
    atoms.set_momenta(p - m * (p.sum(axis=0) / m.sum()))


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


def rdf_bins(rmax: float, nbins: int) -> tuple[np.ndarray, np.ndarray]:
    edges = np.linspace(0.0, rmax, nbins + 1)
    return edges, 0.5 * (edges[1:] + edges[:-1])


def rdf(images: Atoms | Iterable[Atoms], rmax: float = 5.0, nbins: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Radial distribution function averaged over images: ``(r, g)`` at bin centres.

    Same normalisation as :func:`ase.geometry.rdf.get_rdf` (g -> 1 for an ideal gas), but the pair
    distances come from matscipy's C neighbour list: ASE's own path costs 18 ms (NeighborList) or 9 ms
    (MIC distance matrix) per 64-atom frame against 0.4 ms here, which matters when every 10th MD step is
    sampled. A neighbour list also includes periodic images, so ``rmax`` may exceed half the cell.
    """
    if isinstance(images, Atoms):
        images = [images]
    edges, r = rdf_bins(rmax, nbins)
    shell = 4.0 / 3.0 * np.pi * (edges[1:] ** 3 - edges[:-1] ** 3)
    g = np.zeros(nbins)
    n = 0
    for atoms in images:
        d = neighbour_list("d", atoms, rmax)
        counts, _ = np.histogram(d, bins=edges)
        rho = len(atoms) / atoms.get_volume()
        g += counts / (len(atoms) * rho * shell)
        n += 1
    if n == 0:
        raise InputError("no frames to compute an RDF from")
    return r, g / n


def rdf_distance(r: np.ndarray, g: np.ndarray, g_ref: np.ndarray) -> float:
    """Integral of ``|g - g_ref|`` over r (Angstrom): Fu et al.'s RDF deviation, on a uniform grid."""
    r = np.asarray(r)
    dr = float(r[1] - r[0]) if len(r) > 1 else 1.0
    diff = np.abs(np.asarray(g) - np.asarray(g_ref))
    return float(np.nansum(diff) * dr)


def _on_grid(r: np.ndarray, r_ref: np.ndarray, g_ref: np.ndarray) -> np.ndarray:
    """The reference RDF on our grid; NaN outside the reference's range so it is left out of the integral."""
    r_ref, g_ref = np.asarray(r_ref, float), np.asarray(g_ref, float)
    if r_ref.shape == r.shape and np.allclose(r_ref, r):
        return g_ref
    return np.interp(r, r_ref, g_ref, left=np.nan, right=np.nan)


# ------------------------------------------------------------------ the monitor
class _Tripped(Exception):
    def __init__(self, criterion: str, detail: str):
        super().__init__(f"{criterion}: {detail}")
        self.criterion = criterion
        self.detail = detail


class _MonitorBug(Exception):
    """A failure inside our own checks: re-raised, never scored as an unstable model."""


class _Monitor:
    """Called after every MD step; the neighbour-based checks and RDF sampling run every ``check_every``."""

    def __init__(self, atoms: Atoms, dyn, temperature: float, config: StabilityConfig,
                 min_distance: float, g_ref: np.ndarray | None, pbar):
        self.atoms, self.dyn, self.t, self.c = atoms, dyn, temperature, config
        self.min_distance = min_distance
        self.g_ref = g_ref
        self.active = set(config.criteria)
        self.edges, self.r = rdf_bins(config.rdf_rmax, config.rdf_nbins)
        self.shell = 4.0 / 3.0 * np.pi * (self.edges[1:] ** 3 - self.edges[:-1] ** 3)
        self.window_len = max(1, round(config.rdf_window * 1000.0 / (config.timestep_fs * config.check_every)))
        self.window: deque[np.ndarray] = deque(maxlen=self.window_len)
        self.equil_steps = round(config.rdf_equilibration * 1000.0 / config.timestep_fs)
        self.g_sum = np.zeros(config.rdf_nbins)
        self.g_n = 0
        self.pbar = pbar
        self.last_step = 0
        self.max_force = 0.0
        self.max_t_ratio = 0.0
        self.min_dist = math.inf
        self.max_rdf_dev: float | None = None

    def extremes(self) -> dict[str, float | None]:
        return {
            "max_force": self.max_force,
            "max_temperature_ratio": self.max_t_ratio,
            "min_distance": None if math.isinf(self.min_dist) else self.min_dist,
            "max_rdf_deviation": self.max_rdf_dev,
        }

    def __call__(self) -> None:
        try:
            self._check()
        except _Tripped:
            raise
        except Exception as e:
            raise _MonitorBug(str(e)) from e

    def _check(self) -> None:
        step = self.dyn.nsteps
        atoms, c = self.atoms, self.c
        forces = atoms.get_forces()  # cached: the integrator has just computed them
        if not (np.isfinite(forces).all() and np.isfinite(atoms.positions).all()):
            raise _Tripped("non_finite", f"non-finite forces or positions at step {step}")
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
        self.max_force = max(self.max_force, fmax)
        if "force" in self.active and fmax > c.max_force:
            raise _Tripped("force", f"max |F| = {fmax:.3g} eV/A > {c.max_force:g}")
        t = float(atoms.get_temperature())
        self.max_t_ratio = max(self.max_t_ratio, t / self.t)
        if "temperature" in self.active and t > c.max_temperature_factor * self.t:
            raise _Tripped("temperature", f"T = {t:.0f} K > {c.max_temperature_factor:g} x {self.t:g} K")
        if step % c.check_every:
            return
        if self.pbar is not None:
            self.pbar.update(step - self.last_step)
        self.last_step = step
        e = atoms.get_potential_energy()
        if not np.isfinite(e):
            raise _Tripped("non_finite", f"non-finite energy at step {step}")
        d = neighbour_list("d", atoms, max(c.rdf_rmax, self.min_distance))
        if len(d):
            self.min_dist = min(self.min_dist, float(d.min()))
        if "min_distance" in self.active and self.min_dist < self.min_distance:
            raise _Tripped("min_distance", f"d = {self.min_dist:.3f} A < {self.min_distance:.3f} A")
        if step < self.equil_steps:
            return
        counts, _ = np.histogram(d, bins=self.edges)
        g = counts / (len(atoms) * (len(atoms) / atoms.get_volume()) * self.shell)
        self.g_sum += g
        self.g_n += 1
        if "rdf" not in self.active or self.g_ref is None:
            return
        self.window.append(g)
        if len(self.window) == self.window_len:
            dev = rdf_distance(self.r, np.mean(self.window, axis=0), self.g_ref)
            self.max_rdf_dev = dev if self.max_rdf_dev is None else max(self.max_rdf_dev, dev)
            if dev > c.rdf_threshold:
                raise _Tripped("rdf", f"integral |g - g_ref| = {dev:.3f} A > {c.rdf_threshold:g} A")


def _run_seed(seed: int, temperature: float, replica: int) -> tuple[int, ...]:
    # Keyed by the temperature's value, not its index: adding a temperature leaves the others unchanged.
    return (int(seed), int(round(temperature * 1000)), int(replica))


def _run_one(
    calculator_factory: Callable[[], Calculator], initial: Atoms, temperature: float, replica: int,
    config: StabilityConfig, min_distance: float, g_ref: np.ndarray | None, pbar,
) -> tuple[RunResult, np.ndarray, int]:
    seed = _run_seed(config.seed, temperature, replica)
    rng = np.random.default_rng(seed)
    atoms = initial.copy()
    atoms.calc = calculator_factory()
    # First call outside the try: a calculator that cannot evaluate the starting crystal is
    # mis-configured (wrong species map, missing file), not unstable.
    atoms.get_forces()
    thermalize(atoms, temperature, rng)
    dyn = make_dynamics(atoms, temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    mon = _Monitor(atoms, dyn, temperature, config, min_distance, g_ref, pbar)
    dyn.attach(mon, interval=1)
    ttf: float | None = None
    criterion: str | None = None
    detail = ""
    try:
        dyn.run(config.steps)
    except _Tripped as t:
        criterion, detail = t.criterion, t.detail
    except _MonitorBug as b:
        raise b.__cause__ from None
    except Exception as e:  # the calculator or integrator failed mid-run: the model broke
        log.debug("MD failed at step %d", dyn.nsteps, exc_info=True)
        criterion, detail = "error", f"{type(e).__name__}: {e}"
    if criterion is not None:
        ttf = dyn.nsteps * config.timestep_fs / 1000.0
        log.info("T=%g K replica %d: %s after %.3f ps (%s)", temperature, replica, criterion, ttf, detail)
    if pbar is not None:
        pbar.update(config.steps - mon.last_step)
    run = RunResult(temperature=temperature, replica=replica, seed=seed, time_to_failure_ps=ttf,
                    criterion=criterion, detail=detail, extremes=mon.extremes())
    return run, mon.g_sum, mon.g_n


def run_stability(
    calculator_factory: Callable[[], Calculator],
    element: str,
    config: StabilityConfig = StabilityConfig(),
    reference_rdf: Mapping[float, tuple[Sequence[float], Sequence[float]]] | None = None,
    progress: bool = True,
    *,
    initial: Atoms | None = None,
    cache_dir: str | Path | None = None,
) -> StabilityResult:
    """NVT MD per temperature and replica; every run ends at the first criterion that trips.

    ``calculator_factory`` is called once per run so that stateful calculators start clean.
    ``reference_rdf`` maps temperature -> (r, g); None computes it with :func:`reference_rdf` from the
    element's registered reference potential (cached). The RDF criterion is skipped, with a warning,
    at temperatures without a reference RDF. ``initial`` overrides the starting crystal (for elements
    without a registered reference; then ``reference_rdf`` must come from frames).
    """
    t0 = time.perf_counter()
    cell = initial.copy() if initial is not None else starting_cell(element, config.supercell)
    nn = nearest_neighbour_distance(cell)
    min_distance = config.min_distance if config.min_distance is not None else config.min_distance_factor * nn
    if "rdf" in config.criteria and reference_rdf is None:
        if initial is not None:
            raise InputError("with a custom initial structure, pass reference_rdf (e.g. rdf_from_frames)")
        reference_rdf = _reference_rdf_fn(element, config.temperatures, config, cache_dir=cache_dir,
                                          progress=progress)
    _, r = rdf_bins(config.rdf_rmax, config.rdf_nbins)
    window_frames = max(1, round(config.rdf_window * 1000.0 / (config.timestep_fs * config.check_every)))
    if "rdf" in config.criteria and window_frames * len(cell) < _MIN_RDF_ATOM_FRAMES:
        # Noise in a windowed RDF grows as 1/sqrt(atoms x frames); the threshold was calibrated with
        # 64 atoms x 50 frames, where SW's own windows deviate by about 0.1-0.2 A (docs/evaluation.md).
        log.warning("RDF window holds %d frames of %d atoms: noise alone may trip the RDF criterion "
                    "(calibrated for >= %d atom-frames)", window_frames, len(cell), _MIN_RDF_ATOM_FRAMES)
    g_refs: dict[float, np.ndarray | None] = {}
    for t in config.temperatures:
        ref = _lookup_temperature(reference_rdf or {}, t)
        if ref is None and "rdf" in config.criteria:
            log.warning("no reference RDF at %g K: the RDF criterion is off at that temperature", t)
        g_refs[t] = None if ref is None else _on_grid(r, *ref)
    total = len(config.temperatures) * config.replicas * config.steps
    runs: list[RunResult] = []
    rdfs: dict[float, dict[str, list[float] | None]] = {}
    with tqdm(total=total, disable=not progress, desc=f"stability {element}", unit="step") as pbar:
        for t in config.temperatures:
            g_sum, g_n = np.zeros(config.rdf_nbins), 0
            for k in range(config.replicas):
                pbar.set_postfix_str(f"T={t:g} K replica {k}")
                run, gs, gn = _run_one(calculator_factory, cell, t, k, config, min_distance, g_refs[t], pbar)
                runs.append(run)
                g_sum += gs
                g_n += gn
            g_ref = g_refs[t]
            rdfs[t] = {
                "r": r.tolist(),
                "g": (g_sum / g_n).tolist() if g_n else None,
                "g_ref": None if g_ref is None else g_ref.tolist(),
            }
    thresholds = {
        "max_temperature_factor": config.max_temperature_factor if "temperature" in config.criteria else None,
        "max_force": config.max_force if "force" in config.criteria else None,
        "min_distance": min_distance if "min_distance" in config.criteria else None,
        "rdf_threshold": config.rdf_threshold if "rdf" in config.criteria else None,
        "nearest_neighbour_distance": nn,
        "n_atoms": len(cell),
    }
    return StabilityResult(element=element, config=config, runs=tuple(runs), thresholds=thresholds, rdf=rdfs,
                           wall_time_s=time.perf_counter() - t0)


def _lookup_temperature(table: Mapping[float, Any], t: float, tol: float = 0.5) -> Any:
    for key, value in table.items():
        if abs(float(key) - t) <= tol:
            return value
    return None


# ------------------------------------------------------------------ reference RDFs
_REFERENCE_REPLICA = 10**9
_RDF_MEMORY: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def default_cache_dir() -> Path:
    """``$MLPTL_CACHE/rdf`` or ``~/.cache/mlptl/rdf``: reference MD is worth keeping across processes."""
    env = os.environ.get("MLPTL_CACHE")
    return (Path(env).expanduser() if env else Path.home() / ".cache" / "mlptl") / "rdf"


def _fingerprint(calc: Calculator, element: str) -> list[float]:
    """Energy and forces of a fixed distorted cell: a changed parameter set changes the cache key."""
    atoms = starting_cell(element, 1)
    atoms.positions += np.random.default_rng(12345).normal(scale=0.05, size=atoms.positions.shape)
    atoms.calc = calc
    vals = [atoms.get_potential_energy(), *atoms.get_forces().ravel()]
    return [round(float(v), 8) for v in vals]


def reference_rdf(
    element: str,
    temperatures: Iterable[float],
    config: StabilityConfig = StabilityConfig(),
    *,
    reference: str = "sw",
    frames: Sequence[Atoms] | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = False,
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Reference RDF per temperature, on the grid and in the cell the stability runs use.

    From ``frames`` when given (grouped by their ``temperature`` info), else by NVT MD with the
    registered reference potential: ``rdf_equilibration`` ps, then ``reference_steps`` steps sampled
    every ``check_every``. MD results are cached in memory and as JSON in ``cache_dir`` (default
    :func:`default_cache_dir`), keyed by a hash of the protocol and of the reference's energies on a
    fixed cell, so a changed potential or protocol never reuses a stale RDF.
    """
    temperatures = [float(t) for t in temperatures]
    if frames is not None:
        return _reference_rdf_from_frames(frames, temperatures, config)
    ref = get_reference(element, reference)
    fp = _fingerprint(ref.calculator(), element)
    out: dict[float, tuple[np.ndarray, np.ndarray]] = {}
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    for t in temperatures:
        key_src = {
            "element": element, "reference": reference, "temperature": t, "fingerprint": fp,
            "a0": ref.a0, "lattice": ref.lattice, "mass": ref.mass,
            **{k: getattr(config, k) for k in ("supercell", "timestep_fs", "thermostat", "friction",
                                                "check_every", "rdf_rmax", "rdf_nbins", "rdf_equilibration",
                                                "reference_steps", "seed")},
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
        r, g = _reference_rdf_md(ref.calculator, element, t, config, progress)
        out[t] = _RDF_MEMORY[key] = (r, g)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"key": key_src, "r": r.tolist(), "g": g.tolist()}))
            tmp.replace(path)
        except OSError as e:  # a read-only home must not break an evaluation
            log.warning("cannot cache reference RDF in %s: %s", cache, e)
    return out


_reference_rdf_fn = reference_rdf  # run_stability's argument of the same name shadows the function


def _reference_rdf_md(factory: Callable[[], Calculator], element: str, temperature: float,
                      config: StabilityConfig, progress: bool) -> tuple[np.ndarray, np.ndarray]:
    atoms = starting_cell(element, config.supercell)
    atoms.calc = factory()
    # A seed stream disjoint from the stability runs', so a reference run is never the very trajectory
    # it is compared with.
    rng = np.random.default_rng(_run_seed(config.seed, temperature, _REFERENCE_REPLICA))
    thermalize(atoms, temperature, rng)
    dyn = make_dynamics(atoms, temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    equil = round(config.rdf_equilibration * 1000.0 / config.timestep_fs)
    frames: list[Atoms] = []

    def sample() -> None:
        if dyn.nsteps >= equil and dyn.nsteps % config.check_every == 0:
            frames.append(atoms.copy())

    dyn.attach(sample, interval=1)
    n = equil + config.reference_steps
    log.info("reference RDF for %s at %g K: %d MD steps", element, temperature, n)
    with tqdm(total=n, disable=not progress, desc=f"reference RDF {element} {temperature:g} K",
              unit="step") as pbar:
        for _ in dyn.irun(n):
            pbar.update(1)
    return rdf(frames, config.rdf_rmax, config.rdf_nbins)


def rdf_from_frames(
    frames: Iterable[Atoms], rmax: float = 5.0, nbins: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """RDF averaged over data frames: the reference when no reference potential exists (e.g. DFT MD)."""
    return rdf(list(frames), rmax, nbins)


def _reference_rdf_from_frames(frames: Sequence[Atoms], temperatures: list[float],
                               config: StabilityConfig) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    frames = list(frames)
    have = sorted({float(a.info[TEMPERATURE]) for a in frames if TEMPERATURE in a.info})
    out = {}
    for t in temperatures:
        sel = [a for a in frames if TEMPERATURE in a.info and abs(float(a.info[TEMPERATURE]) - t) <= 0.5]
        if not sel and not have and len(temperatures) == 1:
            sel = frames  # unlabelled frames can only serve a single requested temperature
        if not sel:
            raise InputError(f"no frames at {t:g} K for a reference RDF (frame temperatures: {have or 'none'})")
        out[t] = rdf_from_frames(sel, config.rdf_rmax, config.rdf_nbins)
    return out


# ------------------------------------------------------------------ cost
def measure_md_cost(
    calculator_factory: Callable[[], Calculator], element: str, *, steps: int = 200,
    config: StabilityConfig = StabilityConfig(),
) -> dict[str, float]:
    """Wall time per MD step in ms, bare and with the stability monitor attached (RDF criterion off).

    The monitor's cost is what the stability protocol adds to the calculator's; both are printed in
    docs/evaluation.md with the command that produced them.
    """
    out: dict[str, float] = {}
    cell = starting_cell(element, config.supercell)
    nn = nearest_neighbour_distance(cell)
    for label, monitored in (("bare", False), ("monitored", True)):
        atoms = cell.copy()
        atoms.calc = calculator_factory()
        atoms.get_forces()
        rng = np.random.default_rng(config.seed)
        thermalize(atoms, config.temperatures[0], rng)
        dyn = make_dynamics(atoms, config.temperatures[0], timestep_fs=config.timestep_fs,
                            thermostat=config.thermostat, friction=config.friction, rng=rng)
        if monitored:
            c = replace(config, criteria=tuple(x for x in config.criteria if x != "rdf"))
            dyn.attach(_Monitor(atoms, dyn, config.temperatures[0], c, config.min_distance_factor * nn, None,
                                None), interval=1)
        t0 = time.perf_counter()
        dyn.run(steps)
        out[f"ms_per_step_{label}"] = (time.perf_counter() - t0) / steps * 1000.0
    out["n_atoms"] = float(len(cell))
    out["steps"] = float(steps)
    return out
