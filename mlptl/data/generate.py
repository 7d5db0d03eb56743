"""Labelled configurations from molecular dynamics with a reference potential.

The paper's classical-force-field experiments train on configurations sampled from MD of the
crystal with the reference potential (Stillinger-Weber) and labelled by it. Here each temperature is
one independent Langevin NVT trajectory of the reference's crystal (:meth:`Reference.crystal`: any
lattice it names) at the reference's lattice constant, sampled every ``interval_steps`` after
``equilibration_steps``. A data set is a pure function of its :class:`GenerationSpec`, so it is cached
under the spec's hash and regenerated only when the spec (or :data:`FORMAT_VERSION`) changes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mlptl import fsutil
from mlptl.data.frames import ELEMENT, GROUP, SEED, SOURCE, TEMPERATURE
from mlptl.data.md import thermalize
from mlptl.data.readers import atomic_write_extxyz
from mlptl.data.references import Reference, default_reference_name, get_reference
from mlptl.errors import InputError

__all__ = [
    "FORMAT_VERSION",
    "GenerationSpec",
    "generate",
    "generate_frames",
    "sample_trajectory",
    "preset",
    "known_presets",
    "scaled_temperatures",
    "PRESET_MELTING_POINT",
    "DATA_CACHE",
]

#: The kind of cache (:func:`mlptl.fsutil.cache_dir`) that holds generated data sets.
DATA_CACHE = "data"

log = logging.getLogger(__name__)

# Bump when the sampling procedure or the file layout changes (or a reference potential's
# parameters are corrected): the hash changes with it, so stale cached data sets are not reused.
# 2: initial momenta from mlptl.data.md.thermalize (version 1 rescaled them to the drawn temperature
# after removing the centre-of-mass momentum, so its trajectories differ slightly: < 1e-3 A in tiny Ge),
# and SW Ge's a0 is its own minimum, 5.6536 A (was the rounded 5.654).
FORMAT_VERSION = 2


@dataclass(frozen=True)
class GenerationSpec:
    """Everything that determines a generated data set; its hash names the cached file.

    ``strain`` scales the reference lattice constant (a = a0 * (1 + strain)) before the MD, to sample
    compressed or expanded crystals; the MD itself is NVT, so thermal expansion is not sampled.
    ``friction`` is the Langevin friction in 1/fs. ``reference`` names the labelling potential
    (:func:`mlptl.data.references.get_reference`); left out, it is the element's only registered one, and
    an element with several must name it.
    """

    element: str
    reference: str | None = None
    temperatures: tuple[float, ...] = (300.0,)
    frames_per_temperature: int = 10
    supercell: int = 2
    timestep_fs: float = 1.0
    equilibration_steps: int = 200
    interval_steps: int = 20
    friction: float = 0.01
    seed: int = 0
    strain: float = 0.0

    def __post_init__(self) -> None:
        # Normalise so that (300,) and [300.0] hash alike; validate so that a bad flag fails before
        # minutes of MD rather than after (an unknown reference too, e.g. one a Ray worker cannot build).
        if self.reference is None:
            object.__setattr__(self, "reference", default_reference_name(self.element))
        get_reference(self.element, self.reference)
        temps = self.temperatures
        if isinstance(temps, (int, float)):
            temps = (temps,)
        object.__setattr__(self, "temperatures", tuple(float(t) for t in temps))
        problems = []
        if not self.temperatures:
            problems.append("no temperatures given")
        if any(not np.isfinite(t) or t <= 0 for t in self.temperatures):
            problems.append(f"temperatures must be positive, got {list(self.temperatures)}")
        if len(set(self.temperatures)) != len(self.temperatures):
            problems.append(f"temperatures repeat: {list(self.temperatures)}")
        for name in ("frames_per_temperature", "supercell", "interval_steps"):
            if int(getattr(self, name)) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.equilibration_steps < 0:
            problems.append(f"equilibration_steps must be >= 0, got {self.equilibration_steps}")
        if not self.timestep_fs > 0:
            problems.append(f"timestep_fs must be positive, got {self.timestep_fs}")
        if not self.friction > 0:
            problems.append(f"friction must be positive, got {self.friction}")
        if not -0.5 < self.strain < 0.5:
            problems.append(f"strain must lie in (-0.5, 0.5), got {self.strain}")
        if problems:
            raise InputError("invalid generation spec: " + "; ".join(problems))

    @property
    def n_frames(self) -> int:
        return self.frames_per_temperature * len(self.temperatures)

    @property
    def md_steps(self) -> int:
        """Total MD steps over all temperatures: the cost, at one reference call per step."""
        per_t = self.equilibration_steps + self.frames_per_temperature * self.interval_steps
        return per_t * len(self.temperatures)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["temperatures"] = list(self.temperatures)
        return d

    def hash(self) -> str:
        """A short stable digest of the fields and the format version (not of the Python version)."""
        payload = json.dumps({"format": FORMAT_VERSION, **self.as_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:12]

    def filename(self) -> str:
        # An import-path reference ("pkg.mod:make") is made file-name safe; the hash keeps it unique.
        ref = re.sub(r"[^A-Za-z0-9_.-]+", "_", str(self.reference))
        return f"{self.element}-{ref}-{self.hash()}.extxyz"


# ---------------------------------------------------------------- presets
#: The melting point the presets' temperatures were chosen for: SW silicon's (Broughton & Li 1987), K.
PRESET_MELTING_POINT = 1691.0


def scaled_temperatures(temperatures: Sequence[float], ref: Reference) -> tuple[float, ...]:
    """A preset's temperatures for ``ref``: the same fractions of its melting point as for SW silicon.

    The presets were designed for SW Si, up to about its melting point (paper) or half of it (tiny); an
    element that melts lower (EMT Cu at 1358 K, Al at 934 K) gets them scaled by Tm / 1691 K, rounded
    to whole kelvin, so that its crystal is sampled as hot relative to melting as silicon's. A reference
    that melts higher, or has no melting point on record (SW Ge: the paper's SW data use Si's
    temperatures for Ge), keeps them unchanged.
    """
    tm = ref.melting_point
    if tm is None or tm >= PRESET_MELTING_POINT:
        return tuple(float(t) for t in temperatures)
    return tuple(float(round(t * tm / PRESET_MELTING_POINT)) for t in temperatures)


def _tiny(element: str, ref: Reference) -> GenerationSpec:
    # Seconds, not minutes: 2 x (20 + 5 x 10) = 140 MD steps of a 64-atom cell (32 for fcc).
    return GenerationSpec(
        element=element,
        reference=ref.name,
        temperatures=scaled_temperatures((300.0, 900.0), ref),
        frames_per_temperature=5,
        supercell=2,
        equilibration_steps=20,
        interval_steps=10,
        friction=0.02,
    )


def _paper(element: str, ref: Reference) -> GenerationSpec:
    # Mirrors the paper's SW data sets in kind: 64-atom diamond cells from NVT MD over a range of
    # temperatures, from the ordinary crystal (300 K) to about the SW melting point of silicon
    # (~1700 K). The paper's exact temperatures and counts could not be checked offline; this choice
    # gives 6 x 150 = 900 frames, enough for nested training sets up to 500 with a fixed test set
    # of 150 and a validation set beside them, and 150 frames per temperature for
    # temperature-transfer splits (train on T300, test on the others). Frames are 40 fs apart,
    # about two thirds of an optical-phonon period, after 1 ps of equilibration. Cost: 42,000 MD
    # steps, roughly half an hour on one CPU core; it is cached after the first run.
    return GenerationSpec(
        element=element,
        reference=ref.name,
        temperatures=scaled_temperatures((300.0, 600.0, 900.0, 1200.0, 1500.0, 1800.0), ref),
        frames_per_temperature=150,
        supercell=2,
        equilibration_steps=1000,
        interval_steps=40,
        friction=0.01,
    )


_PRESETS: dict[str, Callable[[str, Reference], GenerationSpec]] = {"tiny": _tiny, "paper": _paper}


def known_presets() -> list[str]:
    return sorted(_PRESETS)


def preset(name: str, element: str, reference: str | None = None, **overrides: object) -> GenerationSpec:
    """A named generation spec for ``element`` labelled by ``reference``; keyword overrides replace
    single fields (``temperatures`` given here are used as given, not scaled).

    ``reference`` may be left out for an element with one registered reference.
    """
    try:
        make = _PRESETS[name]
    except KeyError:
        raise InputError(
            f"unknown data preset {name!r}; known presets: {', '.join(known_presets())}"
        ) from None
    spec = make(element, get_reference(element, reference))
    return dataclasses.replace(spec, **overrides) if overrides else spec


# ---------------------------------------------------------------- generation
def _labelled_copy(atoms: Atoms, results: dict, info: dict) -> Atoms:
    """A bare frame (no velocities or constraints) carrying the reference's labels."""
    frame = Atoms(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc)
    frame.calc = SinglePointCalculator(
        frame,
        energy=float(results["energy"]),
        forces=np.array(results["forces"], dtype=float),
        stress=np.array(results["stress"], dtype=float),
    )
    frame.info.update(info)
    return frame


def _trajectory_rng(seed: int, temperature: float) -> np.random.Generator:
    # Keyed by (seed, temperature), not by the temperature's position in the list: the 300 K
    # trajectory is the same whether or not 900 K is generated beside it.
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(round(temperature * 1000))]))


def sample_trajectory(
    base: Atoms,
    calculator,
    temperature: float,
    rng: np.random.Generator,
    *,
    n_frames: int,
    timestep_fs: float,
    friction: float,
    equilibration_steps: int,
    interval_steps: int,
    info: dict,
    on_step: Callable[[], object] | None = None,
) -> list[Atoms]:
    """One Langevin NVT trajectory of a copy of ``base`` at ``temperature`` (K), labelled by ``calculator``.

    ``n_frames`` frames, ``interval_steps`` apart after ``equilibration_steps``, each a bare copy carrying
    the labels and ``info``; ``on_step`` is called after every MD step (a progress bar). Single-element and
    multi-element data sets are both sampled here, so that they differ in their cells only.
    """
    from ase.constraints import FixCom
    from ase.md.langevin import Langevin

    step = on_step or (lambda: None)
    atoms = base.copy()
    atoms.calc = calculator
    atoms.set_constraint(FixCom())
    # Equipartition: in a crystal half the initial kinetic energy flows into potential
    # energy within a phonon period, so start at 2T to reach T without waiting for the
    # thermostat (the thermostat corrects the rest, e.g. in a liquid).
    thermalize(atoms, 2.0 * temperature, rng)
    dyn = Langevin(
        atoms,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature,
        friction=friction / units.fs,
        fixcm=False,
        rng=rng,
    )
    for _ in range(equilibration_steps):
        dyn.run(1)
        step()
    frames = []
    for _ in range(n_frames):
        for _ in range(interval_steps):
            dyn.run(1)
            step()
        # One reference call gives energy, forces and stress together; make sure all three
        # are in the results before copying them (get_stress may trigger the call).
        atoms.get_potential_energy()
        atoms.get_forces()
        atoms.get_stress()
        frames.append(_labelled_copy(atoms, atoms.calc.results, info))
    log.debug("T=%g K: %d frames, final kinetic T %.0f K", temperature, n_frames, atoms.get_temperature())
    return frames


def generate_frames(spec: GenerationSpec, *, progress: bool = True) -> list[Atoms]:
    """Run the MD of ``spec`` and return its labelled frames (no caching; see :func:`generate`)."""
    from tqdm.auto import tqdm

    ref = get_reference(spec.element, spec.reference)
    base = ref.crystal(spec.supercell, strain=spec.strain)

    frames: list[Atoms] = []
    bar = tqdm(
        total=spec.md_steps,
        disable=not progress,
        desc=f"{spec.element} {spec.reference} MD",
        unit="step",
        leave=False,
    )
    with bar:
        for temperature in spec.temperatures:
            info = {
                ELEMENT: spec.element,
                TEMPERATURE: temperature,
                SOURCE: spec.reference,
                SEED: spec.seed,
                GROUP: f"T{int(round(temperature))}",
            }
            frames += sample_trajectory(
                base,
                ref.calculator(),
                temperature,
                _trajectory_rng(spec.seed, temperature),
                n_frames=spec.frames_per_temperature,
                timestep_fs=spec.timestep_fs,
                friction=spec.friction,
                equilibration_steps=spec.equilibration_steps,
                interval_steps=spec.interval_steps,
                info=info,
                on_step=lambda: bar.update(1),
            )
    return frames


def generate(spec: GenerationSpec, cache_dir: str | Path | None = None, *, progress: bool = True) -> Path:
    """The extxyz file of ``spec``'s data set, generated on first use and cached thereafter.

    The file is named by the spec's hash, so identical specs share it and any changed field makes a
    new one; it is written atomically, so a file under that name is always complete.
    """
    return cached_data_set(spec.filename(), f"{spec.n_frames} {spec.element} frames with {spec.reference} "
                           f"({spec.md_steps} MD steps)", lambda: generate_frames(spec, progress=progress), cache_dir)


def cached_data_set(filename: str, what: str, make_frames, cache_dir: str | Path | None = None) -> Path:
    """``cache_dir/filename``, made by ``make_frames()`` and written atomically on first use (so a file under
    that name is always complete), found again thereafter; ``what`` says what is being made."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else fsutil.cache_dir(DATA_CACHE)
    path = cache / filename
    if path.is_file():
        log.info("using cached data set %s", path)
        return path
    log.info("generating %s -> %s", what, path)
    atomic_write_extxyz(make_frames(), path)
    log.info("wrote %s", path)
    return path


def parse_temperatures(text: str | Sequence[float]) -> tuple[float, ...]:
    """``"300,900"`` -> (300.0, 900.0), with an InputError naming the bad entry."""
    if not isinstance(text, str):
        return tuple(float(t) for t in text)
    out = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            out.append(float(part.rstrip("Kk")))
        except ValueError:
            raise InputError(f"bad temperature {part!r} in {text!r}: expected e.g. 300,900") from None
    if not out:
        raise InputError(f"no temperatures in {text!r}: expected e.g. 300,900")
    return tuple(out)
