"""MD helpers shared by data generation and evaluation (the lowest layer that runs MD)."""

from __future__ import annotations

import numpy as np
from ase import Atoms

__all__ = ["thermalize"]


def thermalize(atoms: Atoms, temperature: float, rng: np.random.Generator) -> None:
    """Maxwell-Boltzmann momenta at ``temperature`` (K) with zero total momentum."""
    try:  # ASE >= 3.29
        from ase.md.velocitydistribution import thermalize_momenta

        thermalize_momenta(atoms, temperature, rng=rng)
    except ImportError:  # pragma: no cover - older ASE
        from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature, rng=rng)
    p = atoms.get_momenta()
    m = atoms.get_masses()[:, None]
    atoms.set_momenta(p - m * (p.sum(axis=0) / m.sum()))
