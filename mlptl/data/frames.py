"""The conventions every frame follows, whatever its source.

Frames are ``ase.Atoms`` with energy (eV), forces (eV/A) and, where known, stress (eV/A^3, ASE sign:
positive under tension) in a SinglePointCalculator, so that ASE's extxyz writer and nequip's ASE reader
both find them without a key mapping. ``info`` carries where the frame came from, so that splits,
error breakdowns and temperature-transfer tables can group by it.
"""

from __future__ import annotations

ELEMENT = "element"  # chemical symbol of a single-element frame, e.g. "Ge"
TEMPERATURE = "temperature"  # K, for MD-sampled frames; absent otherwise
SOURCE = "source"  # "sw", "mlearn", or the file a frame was read from
SEED = "seed"  # the seed that generated the frame, when generated
GROUP = "group"  # a config type: "T300" for generated MD at 300 K, mlearn's "AIMD-NVT", "Elastic", ...
COMPOSITION = "composition"  # a multi-element frame's nominal composition label, e.g. "Ge0.25Si0.75"


def group_of(atoms) -> str:
    """The group a frame belongs to, falling back to its temperature, then to "all"."""
    g = atoms.info.get(GROUP)
    if g is not None:
        return str(g)
    t = atoms.info.get(TEMPERATURE)
    if t is not None:
        return f"T{int(round(float(t)))}"
    return "all"


def composition_of(atoms) -> str:
    """A frame's composition label: its nominal one (``info["composition"]``), else that of its atoms.

    Splits stratified or held out by composition group with this (``split_frames(..., group_by=composition_of)``).
    """
    c = atoms.info.get(COMPOSITION)
    if c is not None:
        return str(c)
    from mlptl.data.chemistry import Composition

    return Composition.of(atoms).label
