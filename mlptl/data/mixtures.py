"""Labelled configurations of alloys and compounds: MD over compositions as well as temperatures.

The multi-element counterpart of :mod:`mlptl.data.generate`. A :class:`MixtureSpec` names a system
reference (:mod:`mlptl.data.systems`), the compositions to sample as random substitutional alloys (on the
elements' common lattice at Vegard's lattice constant) and the ordered compounds of that reference to
sample, and the temperatures. Every (structure, temperature) pair is one Langevin trajectory, sampled as
single-element data are (:func:`mlptl.data.generate.sample_trajectory`). Frames carry their composition
label (``info["composition"]``, e.g. ``"Ge0.25Si0.75"``; a compound's is its formula's) and a group
``"<composition or compound>_T<temperature>"``, so splits stratify by both and a composition can be
held out (:func:`mlptl.data.frames.composition_of`). A data set is a pure function of its spec and cached
under the spec's hash, like single-element data (whose specs and cache keys this leaves unchanged).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms

from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.frames import COMPOSITION, ELEMENT, GROUP, SEED, SOURCE, TEMPERATURE
from mlptl.data.generate import cached_data_set, parse_temperatures, sample_trajectory
from mlptl.data.systems import Compound, SystemReference, get_system_reference, system_references
from mlptl.errors import InputError

__all__ = ["MIXTURE_FORMAT_VERSION", "STRUCTURE", "MixtureSpec", "generate_mixture", "generate_mixture_frames"]

log = logging.getLogger(__name__)

#: Bump when the sampling of mixtures or their file layout changes (the hash changes with it).
MIXTURE_FORMAT_VERSION = 1

#: Info key: what was sampled, "random <lattice>" for an alloy or the compound's name ("3C-SiC").
STRUCTURE = "structure"


@dataclass(frozen=True)
class MixtureSpec:
    """Everything that determines a generated multi-element data set; its hash names the cached file.

    ``compositions`` are sampled as random alloys (text such as ``"Ge0.25Si0.75"`` or ``"Si3Ge"``, stored
    as canonical labels), ``compounds`` are names of the reference's ordered compounds; at least one of
    either. ``lattice`` is the alloys' parent lattice (default: the one their elements share under the
    reference). ``frames_per_condition`` frames are sampled per structure and temperature; the other
    fields mean what they mean in :class:`mlptl.data.generate.GenerationSpec`.
    """

    reference: str
    compositions: tuple[str, ...] = ()
    compounds: tuple[str, ...] = ()
    temperatures: tuple[float, ...] = (300.0,)
    frames_per_condition: int = 10
    supercell: int = 2
    lattice: str | None = None
    timestep_fs: float = 1.0
    equilibration_steps: int = 200
    interval_steps: int = 20
    friction: float = 0.01
    seed: int = 0
    strain: float = 0.0

    def __post_init__(self) -> None:
        comps = (self.compositions,) if isinstance(self.compositions, str) else tuple(self.compositions)
        labels = tuple(Composition.coerce(c).label for c in comps)
        compounds = (self.compounds,) if isinstance(self.compounds, str) else tuple(self.compounds)
        temps = self.temperatures
        temps = parse_temperatures(temps) if isinstance(temps, str) else (temps,) if np.isscalar(temps) else temps
        object.__setattr__(self, "compositions", labels)
        object.__setattr__(self, "compounds", tuple(str(c) for c in compounds))
        object.__setattr__(self, "temperatures", tuple(float(t) for t in temps))
        problems = []
        if not labels and not compounds:
            problems.append("name at least one composition or compound to sample")
        for what, items in (("compositions", labels), ("compounds", self.compounds)):
            if len(set(items)) != len(items):
                problems.append(f"{what} repeat: {list(items)}")
        if not self.temperatures or any(not np.isfinite(t) or t <= 0 for t in self.temperatures):
            problems.append(f"temperatures must be positive, got {list(self.temperatures)}")
        if len(set(self.temperatures)) != len(self.temperatures):
            problems.append(f"temperatures repeat: {list(self.temperatures)}")
        for name in ("frames_per_condition", "supercell", "interval_steps"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.equilibration_steps < 0:
            problems.append(f"equilibration_steps must be >= 0, got {self.equilibration_steps}")
        if not self.timestep_fs > 0 or not self.friction > 0:
            problems.append(f"timestep_fs and friction must be positive, got {self.timestep_fs}, {self.friction}")
        if not -0.5 < self.strain < 0.5:
            problems.append(f"strain must lie in (-0.5, 0.5), got {self.strain}")
        if problems:
            raise InputError("invalid mixture spec: " + "; ".join(problems))
        # Build every cell once, so that a composition the reference does not cover, one the cell cannot
        # hold or an unknown compound fails here rather than after minutes of MD.
        for kind, name in self.conditions():
            self._cell(kind, name)

    @property
    def chemistry(self) -> Chemistry:
        """Every element the spec samples."""
        elements = {el for c in self.compositions for el in Composition.parse(c).elements}
        for name in self.compounds:
            elements |= set(_find_compound(self.reference, name).elements)
        return Chemistry(tuple(elements))

    def system_reference(self) -> SystemReference:
        return get_system_reference(self.reference, self.chemistry)

    def conditions(self) -> list[tuple[str, str]]:
        """("alloy", composition label) and ("compound", name) pairs, in the order sampled."""
        return [("alloy", c) for c in self.compositions] + [("compound", c) for c in self.compounds]

    @property
    def n_frames(self) -> int:
        return self.frames_per_condition * len(self.conditions()) * len(self.temperatures)

    @property
    def md_steps(self) -> int:
        per = self.equilibration_steps + self.frames_per_condition * self.interval_steps
        return per * len(self.conditions()) * len(self.temperatures)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for key in ("compositions", "compounds", "temperatures"):
            d[key] = list(d[key])
        return d

    def hash(self) -> str:
        payload = json.dumps({"format": MIXTURE_FORMAT_VERSION, "kind": "mixture", **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def filename(self) -> str:
        ref = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.reference)
        return f"{self.chemistry.label}-{ref}-{self.hash()}.extxyz"

    def _cell(self, kind: str, name: str) -> tuple[Atoms, Composition, str]:
        """The starting cell of a condition, its nominal composition and its structure label."""
        if kind == "alloy":
            comp = Composition.parse(name)
            ref = self.system_reference()  # the one reference that labels every frame of the spec
            lattice = self.lattice or ref.parent_lattice_of(comp)
            atoms = ref.alloy(comp, self.supercell, seed=_alloy_seed(self.seed, name), lattice=lattice,
                              strain=self.strain)
            return atoms, comp, f"random {lattice}"
        compound = _find_compound(self.reference, name)
        return compound.atoms(self.supercell, strain=self.strain), compound.composition, compound.name


def _find_compound(reference: str, name: str) -> Compound:
    named = [r for r in system_references() if r.name == reference]
    if not named:
        known = ", ".join(sorted({r.name for r in system_references()}))
        raise InputError(f"no reference {reference!r} for a chemical system (known: {known})")
    for ref in named:
        for c in ref.compounds:
            if c.name == name:
                return c
    have = ", ".join(c.name for r in named for c in r.compounds) or "none"
    raise InputError(f"reference {reference!r} has no compound {name!r} (it has: {have})")


def _label_int(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:8], "little")


def _alloy_seed(seed: int, label: str) -> int:
    # The arrangement of an alloy depends on the seed and its composition, not on what else is sampled.
    return int(np.random.SeedSequence([int(seed), _label_int(label)]).generate_state(1)[0])


def _trajectory_rng(seed: int, label: str, temperature: float) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _label_int(label), int(round(temperature * 1000))]))


def generate_mixture_frames(spec: MixtureSpec, *, progress: bool = True) -> list[Atoms]:
    """Run the MD of ``spec`` and return its labelled frames (no caching; see :func:`generate_mixture`)."""
    from tqdm.auto import tqdm

    ref = spec.system_reference()
    frames: list[Atoms] = []
    bar = tqdm(total=spec.md_steps, disable=not progress, desc=f"{spec.chemistry} {spec.reference} MD",
               unit="step", leave=False)
    with bar:
        for kind, name in spec.conditions():
            base, comp, structure = spec._cell(kind, name)
            for temperature in spec.temperatures:
                info = {
                    COMPOSITION: comp.label,
                    STRUCTURE: structure,
                    TEMPERATURE: temperature,
                    SOURCE: spec.reference,
                    SEED: spec.seed,
                    GROUP: f"{name}_T{int(round(temperature))}",
                }
                if len(comp.elements) == 1:
                    info[ELEMENT] = comp.elements[0]
                frames += sample_trajectory(
                    base,
                    ref.calculator(),
                    temperature,
                    _trajectory_rng(spec.seed, name, temperature),
                    n_frames=spec.frames_per_condition,
                    timestep_fs=spec.timestep_fs,
                    friction=spec.friction,
                    equilibration_steps=spec.equilibration_steps,
                    interval_steps=spec.interval_steps,
                    info=info,
                    on_step=lambda: bar.update(1),
                )
    return frames


def generate_mixture(spec: MixtureSpec, cache_dir: str | Path | None = None, *, progress: bool = True) -> Path:
    """The extxyz file of ``spec``'s data set, generated on first use and cached (atomically) thereafter."""
    return cached_data_set(spec.filename(), f"{spec.n_frames} {spec.chemistry} frames with {spec.reference} "
                           f"({spec.md_steps} MD steps)", lambda: generate_mixture_frames(spec, progress=progress),
                           cache_dir)
