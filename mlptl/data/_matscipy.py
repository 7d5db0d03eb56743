"""The one adapter to matscipy's internals: its many-body calculators without triplet work they never use.

matscipy 1.3's ``CutoffNeighbourhood.get_triplets`` pairs every triplet (i, j, k) with the neighbour-list
index of its j-k bond, in a Python loop over all triplets, whatever it was asked for. The energy and
force path of ``Manybody.calculate`` asks for ``"ijdD"`` only, so that loop is pure overhead there, and
most of the cost of an SW or Tersoff force call on the cells mlptl labels (bench/README.md, "Reference
force calls"). :class:`EnergyForceNeighbourhood` builds the same triplets without it and hands anything
that asks for ``k`` (matscipy's second derivatives) to matscipy; energies and forces are matscipy's to
the last bit (tests/test_references.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matscipy import ffi
from matscipy.calculators.manybody import Manybody
from matscipy.neighbours import CutoffNeighbourhood, first_neighbours, neighbour_list


class EnergyForceNeighbourhood(CutoffNeighbourhood):
    """matscipy's cutoff neighbourhood, with triplets built without their j-k bonds unless asked for."""

    def get_triplets(self, atoms, quantities: str, neighbours=None, cutoff=None):
        if "k" in quantities:
            return super().get_triplets(atoms, quantities, neighbours, cutoff)
        cutoff = self.cutoff if cutoff is None else cutoff
        i_p, j_p, d_p, D_p = neighbour_list("ijdD", atoms, cutoff) if neighbours is None else neighbours
        # matscipy's C triplet list, the call its own get_triplets makes before its Python j-k loop
        ij_t, ik_t = ffi.triplet_list(first_neighbours(len(atoms), i_p), d_p, cutoff)
        D = d = None
        if "d" in quantities or "D" in quantities:
            # i->j, i->k and j->k, computed as matscipy computes them (same operations, same bits)
            D = np.stack([D_p[ij_t], D_p[ik_t], D_p[ik_t] - D_p[ij_t]], axis=1)
            d = np.linalg.norm(D, axis=-1)
        return self.make_result(quantities, np.array([ij_t, ik_t]).T, D, d, None, accepted_quantities="ijdD")


def manybody(form: dict[str, Any]) -> Manybody:
    """matscipy's ``Manybody`` calculator for an explicit form's functions (``StillingerWeber(params)``, ...)."""
    return Manybody(**form, neighbourhood=EnergyForceNeighbourhood(atom_types=form["atom_type"],
                                                                   pair_types=form["pair_type"]))
