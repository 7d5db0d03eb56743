"""The failure monitor: the criteria that end a stability run, checked after every MD step.

Criteria (names as recorded in :attr:`mlptl.evaluate.stability.RunResult.criterion`):

``non_finite``   energy, forces or positions not finite (checked every step: a NaN position is silently
                 dropped by matscipy's neighbour list, so it must never reach the next force call);
``temperature``  instantaneous temperature above ``max_temperature_factor`` x target;
``force``        any atomic force above ``max_force``;
``min_distance`` two atoms closer than ``min_distance``;
``rdf``          RDF averaged over a sliding window deviates from the reference RDF at the same
                 temperature by more than ``rdf_threshold`` (integral of ``|g - g_ref|`` over r); in a
                 cell of several elements also any element pair's partial RDF g_ab from the reference's
                 g_ab, under the same threshold (the worst pair decides; the detail names it);
``error``        the calculator or integrator raised during MD (recorded by the caller, not here).

The monitor gets :class:`Limits` already resolved to numbers for this crystal (lengths scaled by its
nearest-neighbour distance), so it knows nothing about elements or lattices.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from matscipy.neighbours import neighbour_list

from mlptl import metrics as M
from mlptl.evaluate.rdf import RDFGrid, rdf_distance

__all__ = ["CRITERIA", "Limits", "Monitor", "Tripped", "MonitorBug"]

#: Criteria that can be switched off; ``non_finite`` is always on: nothing downstream of a NaN means anything.
CRITERIA: tuple[str, ...] = ("temperature", "force", "min_distance", "rdf")


@dataclass(frozen=True)
class Limits:
    """The thresholds of one crystal, in absolute units; steps count MD steps."""

    criteria: frozenset[str]
    max_temperature_factor: float
    max_force: float
    min_distance: float
    rdf_threshold: float
    grid: RDFGrid
    check_every: int
    window_frames: int
    equilibration_steps: int


class Tripped(Exception):
    def __init__(self, criterion: str, detail: str):
        super().__init__(f"{criterion}: {detail}")
        self.criterion = criterion
        self.detail = detail


class MonitorBug(Exception):
    """A failure inside our own checks: re-raised, never scored as an unstable model."""


class Monitor:
    """Called after every MD step; the neighbour-based checks and RDF sampling run every ``check_every``.

    Raises :class:`Tripped` at the first criterion that trips. Whatever it sees is summed into
    ``g_sum`` / ``g_n`` (the run's mean RDF after equilibration) and into the extremes (the margins of a
    run that stayed stable). With ``pairs`` (element pairs ``"a-b"``, for a cell of several elements) the
    partial RDFs are summed too, into ``gp_sum``, and compared with ``partial_refs`` (pair -> g_ab on the grid).
    """

    def __init__(self, atoms: Atoms, dyn, temperature: float, limits: Limits, g_ref: np.ndarray | None,
                 pbar=None, *, pairs: Sequence[str] = (), partial_refs: Mapping[str, np.ndarray] | None = None):
        self.atoms, self.dyn, self.t, self.lim = atoms, dyn, temperature, limits
        self.g_ref = g_ref
        self.pairs = [tuple(p.split("-")) for p in pairs]
        refs = partial_refs or {}
        self.partial_refs = {p: refs[f"{p[0]}-{p[1]}"] for p in self.pairs if refs.get(f"{p[0]}-{p[1]}") is not None}
        self.symbols = np.asarray(atoms.get_chemical_symbols())
        self.gp_sum = {p: np.zeros(limits.grid.nbins) for p in self.pairs}
        self.max_pair_dev: dict[tuple[str, str], float] = {}
        self.window: deque[np.ndarray] = deque(maxlen=limits.window_frames)
        self.pair_window: deque[dict[tuple[str, str], np.ndarray]] = deque(maxlen=limits.window_frames)
        self.g_sum = np.zeros(limits.grid.nbins)
        self.g_n = 0
        self.pbar = pbar
        self.last_step = 0
        self.max_force = 0.0
        self.max_t_ratio = 0.0
        self.min_dist = math.inf
        self.max_rdf_dev: float | None = None

    def extremes(self) -> dict[str, float | None]:
        out = {
            "max_force": self.max_force,
            "max_temperature_ratio": self.max_t_ratio,
            "min_distance": None if math.isinf(self.min_dist) else self.min_dist,
            "max_rdf_deviation": self.max_rdf_dev,
        }
        for a, b in self.partial_refs:
            out[M.pair_metric("max_rdf_deviation", a, b)] = self.max_pair_dev.get((a, b))
        return out

    def __call__(self) -> None:
        try:
            self._check()
        except Tripped:
            raise
        except Exception as e:
            raise MonitorBug(str(e)) from e

    def _check(self) -> None:
        step = self.dyn.nsteps
        atoms, lim = self.atoms, self.lim
        forces = atoms.get_forces()  # cached: the integrator has just computed them
        if not (np.isfinite(forces).all() and np.isfinite(atoms.positions).all()):
            raise Tripped("non_finite", f"non-finite forces or positions at step {step}")
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max())
        self.max_force = max(self.max_force, fmax)
        if "force" in lim.criteria and fmax > lim.max_force:
            raise Tripped("force", f"max |F| = {fmax:.3g} eV/A > {lim.max_force:g}")
        t = float(atoms.get_temperature())
        self.max_t_ratio = max(self.max_t_ratio, t / self.t)
        if "temperature" in lim.criteria and t > lim.max_temperature_factor * self.t:
            raise Tripped("temperature", f"T = {t:.0f} K > {lim.max_temperature_factor:g} x {self.t:g} K")
        if step % lim.check_every:
            return
        if self.pbar is not None:
            self.pbar.update(step - self.last_step)
        self.last_step = step
        e = atoms.get_potential_energy()
        if not np.isfinite(e):
            raise Tripped("non_finite", f"non-finite energy at step {step}")
        cutoff = max(lim.grid.rmax, lim.min_distance)
        if self.pairs:
            i, j, d = neighbour_list("ijd", atoms, cutoff)
        else:
            d = neighbour_list("d", atoms, cutoff)
        if len(d):
            self.min_dist = min(self.min_dist, float(d.min()))
        if "min_distance" in lim.criteria and self.min_dist < lim.min_distance:
            raise Tripped("min_distance", f"d = {self.min_dist:.3f} A < {lim.min_distance:.3f} A")
        if step < lim.equilibration_steps:
            return
        g = lim.grid.g(d, len(atoms), atoms.get_volume())
        self.g_sum += g
        self.g_n += 1
        gp = lim.grid.partial_g(i, j, d, self.symbols, atoms.get_volume(), self.pairs) if self.pairs else {}
        for p, gab in gp.items():
            self.gp_sum[p] += gab
        if "rdf" not in lim.criteria or self.g_ref is None:
            return
        self.window.append(g)
        if gp:
            self.pair_window.append(gp)
        if len(self.window) == lim.window_frames:
            dev = rdf_distance(lim.grid.r, np.mean(self.window, axis=0), self.g_ref)
            self.max_rdf_dev = dev if self.max_rdf_dev is None else max(self.max_rdf_dev, dev)
            if dev > lim.rdf_threshold:
                raise Tripped("rdf", f"integral |g - g_ref| = {dev:.3f} A > {lim.rdf_threshold:.3g} A")
            self._check_pairs()

    def _check_pairs(self) -> None:
        """Each pair's windowed partial RDF against the reference's; the worst pair trips the criterion."""
        worst: tuple[float, tuple[str, str]] | None = None
        for p, g_ref in self.partial_refs.items():
            dev = rdf_distance(self.lim.grid.r, np.mean([w[p] for w in self.pair_window], axis=0), g_ref)
            self.max_pair_dev[p] = max(self.max_pair_dev.get(p, dev), dev)
            if worst is None or dev > worst[0]:
                worst = (dev, p)
        if worst is not None and worst[0] > self.lim.rdf_threshold:
            dev, (a, b) = worst
            raise Tripped("rdf", f"{a}-{b}: integral |g_ab - g_ab_ref| = {dev:.3f} A > {self.lim.rdf_threshold:.3g} A")
