"""MD stability of a potential: how long NVT molecular dynamics stays physical, per temperature.

A force error on held-out frames says little about whether a potential survives MD (Fu et al., "Forces
are not enough", TMLR 2023): a model can have small errors near the training data and still drive the
crystal into unphysical regions. So each potential runs NVT MD from the element's reference crystal at
several temperatures and replicas, and every run is watched by cheap criteria
(:mod:`mlptl.evaluate.monitor`). A run ends at the first criterion that trips; its time to failure and
the criterion are recorded. The calculator is any ASE calculator, so the reference potential itself is
measured by the same protocol as a trained model (and must pass it: that is how the thresholds were
calibrated, see docs/evaluation.md).

Which reference is never assumed: the caller names it (``reference=NAME``), or passes ``reference=None``
with the crystal to start from, and then either a reference RDF (e.g. from DFT frames) or none, in
which case the RDF criterion is off and the result says so.

Several elements (``element`` a chemistry such as ``"Cu-Ni"``, ``reference`` a system reference) run the
same protocol from the reference's random alloy; the RDF criterion then also compares every element pair's
partial RDF with the reference's, and the result keeps the mean partial RDFs and their distances.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from tqdm.auto import tqdm

from mlptl.data.md import thermalize
from mlptl.evaluate.md import make_dynamics, nearest_neighbour_distance, run_seed
from mlptl.evaluate.monitor import CRITERIA, Limits, Monitor, MonitorBug, Tripped
from mlptl.evaluate.rdf import on_grid, rdf_distance
from mlptl.evaluate.reference_rdf import reference_rdf as compute_reference_rdf
from mlptl.evaluate.stability_config import StabilityConfig, chemistry_of, stability_cell

__all__ = ["CRITERIA", "StabilityConfig", "RunResult", "StabilityResult", "run_stability"]

log = logging.getLogger(__name__)

_MIN_RDF_ATOM_FRAMES = 1000


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
    #: per temperature: {"r": [...], "g": [...] (model, averaged over runs), "g_ref": [...] or None}; for
    #: several elements also "partials" and "partials_ref" ({"a-b": [...]}) and "pair_distance" ({"a-b": A})
    rdf: dict[float, dict[str, Any]] = field(default_factory=dict)
    wall_time_s: float = 0.0
    #: the reference potential the runs started from and were compared with (None: a given crystal)
    reference: str | None = None
    #: what the evaluation could not do and why (e.g. the RDF criterion off without a reference RDF)
    notes: tuple[str, ...] = ()

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
            "reference": self.reference,
            "notes": list(self.notes),
            "config": self.config.to_dict(),
            "thresholds": dict(self.thresholds),
            "stable_fraction": self.stable_fraction,
            "summary": list(self.by_temperature().values()),
            "runs": [r.to_dict() for r in self.runs],
            "rdf": [{"temperature": t, **v} for t, v in self.rdf.items()],
            "wall_time_s": self.wall_time_s,
        }


def _run_one(
    calculator_factory: Callable[[], Calculator], initial: Atoms, temperature: float, replica: int,
    config: StabilityConfig, limits: Limits, g_ref: np.ndarray | None, pbar,
    pairs: Sequence[str] = (), partial_refs: Mapping[str, np.ndarray] | None = None,
) -> tuple[RunResult, Monitor]:
    seed = run_seed(config.seed, temperature, replica)
    rng = np.random.default_rng(seed)
    atoms = initial.copy()
    atoms.calc = calculator_factory()
    # First call outside the try: a calculator that cannot evaluate the starting crystal is
    # mis-configured (wrong species map, missing file), not unstable.
    atoms.get_forces()
    thermalize(atoms, temperature, rng)
    dyn = make_dynamics(atoms, temperature, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                        friction=config.friction, rng=rng)
    mon = Monitor(atoms, dyn, temperature, limits, g_ref, pbar, pairs=pairs, partial_refs=partial_refs)
    dyn.attach(mon, interval=1)
    ttf: float | None = None
    criterion: str | None = None
    detail = ""
    try:
        dyn.run(config.steps)
    except Tripped as t:
        criterion, detail = t.criterion, t.detail
    except MonitorBug as b:
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
    return run, mon


def run_stability(
    calculator_factory: Callable[[], Calculator],
    element: str,
    config: StabilityConfig = StabilityConfig(),
    *,
    reference: str | None,
    reference_rdf: Mapping[float, tuple[Sequence[float], Sequence[float]]] | None = None,
    initial: Atoms | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    compositions: Sequence[str] | None = None,
) -> StabilityResult:
    """NVT MD per temperature and replica; every run ends at the first criterion that trips.

    ``calculator_factory`` is called once per run so that stateful calculators start clean.
    ``reference`` names the reference potential of ``element`` (its crystal is the starting cell, its
    MD gives the reference RDF, cached); None means there is none (e.g. DFT data): then ``initial``,
    the crystal to start from, is required. ``initial`` also overrides the reference's crystal.
    ``reference_rdf`` maps temperature -> (r, g), e.g. from
    :func:`mlptl.evaluate.reference_rdf.reference_rdf` with ``frames=``; None computes it from the
    reference potential, or, without one, switches the RDF criterion off (noted in the result). The
    RDF criterion is also off, with a note, at temperatures without a reference RDF.

    ``element`` may be a chemistry (``"Cu-Ni"``) with ``reference`` a system reference: the runs start
    from its random alloy of :func:`~mlptl.evaluate.stability_config.stability_composition`
    (``compositions``), and ``reference_rdf``'s entries are then (r, g, {"a-b": g_ab}), the partial RDFs
    the RDF criterion compares each pair with.
    """
    t0 = time.perf_counter()
    chem = chemistry_of(element)
    if chem is not None:
        element = chem.label
    cell = stability_cell(element, reference, config, initial, compositions=compositions)
    pairs = _pairs(cell) if chem is not None else []
    nn = nearest_neighbour_distance(cell)
    limits = config.limits(nn)
    notes: list[str] = []
    if "rdf" in config.criteria and reference_rdf is None:
        if reference is None:
            notes.append("rdf criterion off: no reference potential and no reference RDF given")
            log.warning("%s: %s", element, notes[-1])
        elif not config.samples_rdf:
            notes.append(f"rdf criterion off: runs of {config.steps} steps end within their "
                         f"{config.equilibration_steps} steps of equilibration, before any RDF frame")
            log.info("%s: %s", element, notes[-1])
        else:
            reference_rdf = compute_reference_rdf(element, config.temperatures, config, reference=reference,
                                                  initial=initial, cache_dir=cache_dir, progress=progress,
                                                  compositions=compositions)
    if "rdf" in config.criteria and limits.window_frames * len(cell) < _MIN_RDF_ATOM_FRAMES:
        # Noise in a windowed RDF grows as 1/sqrt(atoms x frames); the threshold was calibrated with
        # 64 atoms x 50 frames, where SW's own windows deviate by about 0.1-0.2 A (docs/evaluation.md).
        log.warning("RDF window holds %d frames of %d atoms: noise alone may trip the RDF criterion "
                    "(calibrated for >= %d atom-frames)", limits.window_frames, len(cell), _MIN_RDF_ATOM_FRAMES)
    r = limits.grid.r
    g_refs: dict[float, np.ndarray | None] = {}
    p_refs: dict[float, dict[str, np.ndarray]] = {}
    for t in config.temperatures:
        ref = _lookup_temperature(reference_rdf or {}, t)
        if ref is None and "rdf" in config.criteria and reference_rdf is not None:
            notes.append(f"rdf criterion off at {t:g} K: no reference RDF at that temperature")
            log.warning("%s: %s", element, notes[-1])
        g_refs[t] = None if ref is None else on_grid(r, *ref[:2])
        p_refs[t] = {}
        if pairs and ref is not None:
            given = ref[2] if len(ref) > 2 else {}
            p_refs[t] = {p: on_grid(r, ref[0], given[p]) for p in pairs if p in given}
            if len(p_refs[t]) < len(pairs) and "rdf" in config.criteria:
                missing = [p for p in pairs if p not in given]
                notes.append(f"no reference partial RDF at {t:g} K for {', '.join(missing)}: the rdf criterion "
                             "checks the other pairs and the total only")
                log.warning("%s: %s", element, notes[-1])
    total = len(config.temperatures) * config.replicas * config.steps
    runs: list[RunResult] = []
    rdfs: dict[float, dict[str, Any]] = {}
    with tqdm(total=total, disable=not progress, desc=f"stability {element}", unit="step") as pbar:
        for t in config.temperatures:
            g_sum, g_n = np.zeros(limits.grid.nbins), 0
            gp_sum = {p: np.zeros(limits.grid.nbins) for p in pairs}
            for k in range(config.replicas):
                pbar.set_postfix_str(f"T={t:g} K replica {k}")
                run, mon = _run_one(calculator_factory, cell, t, k, config, limits, g_refs[t], pbar,
                                    pairs=pairs, partial_refs=p_refs[t])
                runs.append(run)
                g_sum += mon.g_sum
                g_n += mon.g_n
                for (a, b), g in mon.gp_sum.items():
                    gp_sum[f"{a}-{b}"] += g
            g_ref = g_refs[t]
            rdfs[t] = {
                "r": r.tolist(),
                "g": (g_sum / g_n).tolist() if g_n else None,
                "g_ref": None if g_ref is None else g_ref.tolist(),
            }
            if pairs:
                rdfs[t].update(_partial_summary(r, gp_sum, g_n, p_refs[t]))
    rdf_on = "rdf" in config.criteria and any(g is not None for g in g_refs.values())
    thresholds = {
        "max_temperature_factor": config.max_temperature_factor if "temperature" in config.criteria else None,
        "max_force": config.max_force if "force" in config.criteria else None,
        "min_distance": limits.min_distance if "min_distance" in config.criteria else None,
        "rdf_threshold": limits.rdf_threshold if rdf_on else None,
        "rdf_rmax": limits.grid.rmax,
        "nearest_neighbour_distance": nn,
        "n_atoms": len(cell),
    }
    return StabilityResult(element=element, config=config, runs=tuple(runs), thresholds=thresholds, rdf=rdfs,
                           wall_time_s=time.perf_counter() - t0, reference=reference, notes=tuple(notes))


def _pairs(cell: Atoms) -> list[str]:
    """Every element pair ``"a-b"`` of a cell (elements sorted, like-pairs included), as partial RDFs key them."""
    els = sorted(set(cell.get_chemical_symbols()))
    return [f"{a}-{b}" for k, a in enumerate(els) for b in els[k:]]


def _partial_summary(r: np.ndarray, gp_sum: Mapping[str, np.ndarray], g_n: int,
                     p_refs: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    """The mean partial RDFs of all runs at one temperature, the reference's, and their distance per pair
    (integral of |g_ab - g_ab_ref|, A; None without a reference or a sample)."""
    means = {p: g / g_n for p, g in gp_sum.items()} if g_n else {}
    return {
        "partials": {p: g.tolist() for p, g in means.items()} or None,
        "partials_ref": {p: g.tolist() for p, g in p_refs.items()} or None,
        "pair_distance": {p: rdf_distance(r, means[p], p_refs[p]) if p in means and p in p_refs else None
                          for p in gp_sum},
    }


def _lookup_temperature(table: Mapping[float, Any], t: float, tol: float = 0.5) -> Any:
    for key, value in table.items():
        if abs(float(key) - t) <= tol:
            return value
    return None
