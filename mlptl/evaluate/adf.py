"""The bond-angle distribution (ADF) and the bond cutoff it counts, for any lattice.

The ADF measures what the RDF averages away: the angles between bonds, which a potential for a covalent
crystal must get right (diamond's 109.5 degrees) and which melting or amorphisation smear out.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from ase import Atoms
from matscipy.neighbours import neighbour_list

__all__ = ["adf", "adf_distance", "adf_cutoff"]

#: Distances within this fraction of each other are one neighbour shell (thermal-free crystal, so tight).
_SHELL_TOL = 1e-3


def adf_cutoff(crystal: Atoms, factor: float | None = None) -> float:
    """The ADF's bond cutoff for a perfect crystal: ``factor`` x its nearest-neighbour distance, or (None)
    the first shell's bonds.

    None puts the cutoff at 1.2 x the nearest-neighbour distance, between the first shell and the second
    of diamond (1.63 x), fcc and hcp (1.41 x), unless the second shell lies within that (bcc's at 1.15 x,
    which is counted with the first as the 14 neighbours of bcc): then midway to the third shell, so
    that thermal motion does not move atoms across the cutoff.
    """
    cutoff = 2.5 * (crystal.get_volume() / len(crystal)) ** (1.0 / 3.0)
    d = np.sort(neighbour_list("d", crystal, cutoff))
    if len(d) == 0:
        raise ValueError("no neighbours to define a bond cutoff")
    nn = float(d[0])
    if factor is not None:
        return factor * nn
    shells = [float(d[0])]
    for x in d[1:]:
        if x > shells[-1] * (1 + _SHELL_TOL):
            shells.append(float(x))
    if len(shells) >= 3 and shells[1] < 1.2 * nn:
        return 0.5 * (shells[1] + shells[2])
    return 1.2 * nn


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
