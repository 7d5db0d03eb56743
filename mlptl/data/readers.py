"""Read, check, summarise and write labelled frames.

Every reader returns frames in the conventions of :mod:`mlptl.data.frames`, so nothing downstream
cares whether a file was generated here, written by another code as extxyz, or is one of mlearn's
DFT JSON files. mlearn's files are pymatgen ``Structure`` dicts; they are parsed here with plain JSON
because pymatgen is a heavy dependency for six keys. Bad files fail early, in one line that names
the file and the frame, rather than as a NaN loss three hours into training.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms, units
from ase.calculators.singlepoint import SinglePointCalculator

from mlptl.data.frames import ELEMENT, GROUP, SOURCE, TEMPERATURE, group_of
from mlptl.errors import InputError
from mlptl.fsutil import atomic_write

__all__ = [
    "read_frames",
    "read_mlearn",
    "validate_frames",
    "write_frames",
    "summarize",
    "data_hash",
    "mlearn_stress_to_ase",
    "MIN_DISTANCE",
]

#: Closest approach (A) two atoms of a frame may have. The shortest bonds in nature (H2, 0.74 A) are
#: above it; anything below is a duplicated atom or a unit error, and would train the model on a
#: configuration it can never meet.
MIN_DISTANCE = 0.5

log = logging.getLogger(__name__)

# mlearn/VASP order xx yy zz xy yz zx -> ASE Voigt order xx yy zz yz xz xy.
_MLEARN_TO_ASE_VOIGT = [0, 1, 2, 4, 5, 3]
_TEMPERATURE_RE = re.compile(r"\bat\s+([0-9]+(?:\.[0-9]*)?)\s*K\b")


def mlearn_stress_to_ase(virial_kbar: Sequence[float]) -> np.ndarray:
    """mlearn's ``virial_stress`` (kbar, VASP sign, VASP order) as an ASE stress (eV/A^3, Voigt).

    VASP counts compression as positive and orders the shear terms xy yz zx; ASE counts tension as
    positive and orders them yz xz xy. Getting either wrong silently trains a model on a stress of
    the wrong sign or on swapped shear components, so the conversion lives in one tested place.
    """
    v = np.asarray(virial_kbar, dtype=float)
    if v.shape != (6,):
        raise ValueError(f"virial_stress must have 6 components, got shape {v.shape}")
    return -v[_MLEARN_TO_ASE_VOIGT] * 0.1 * units.GPa  # 1 kbar = 0.1 GPa


def _is_mlearn(obj: object) -> bool:
    return (
        isinstance(obj, list)
        and len(obj) > 0
        and all(isinstance(e, dict) and "structure" in e and "outputs" in e for e in obj)
    )


def _mlearn_entry_to_atoms(entry: dict, path: Path, index: int) -> Atoms:
    try:
        structure = entry["structure"]
        cell = np.asarray(structure["lattice"]["matrix"], dtype=float)
        symbols: list[str] = []
        positions: list[list[float]] = []
        for site in structure["sites"]:
            species = site["species"]
            if len(species) != 1:
                raise InputError(
                    f"site with {len(species)} species (a disordered structure); only ordered structures "
                    "can be labelled",
                    path=path,
                    frame=index,
                )
            symbols.append(species[0]["element"])
            positions.append(site["xyz"])
        outputs = entry["outputs"]
    except (KeyError, TypeError, IndexError) as e:
        raise InputError(
            f"mlearn entry lacks the structure field {e} (expected structure.lattice.matrix and "
            "structure.sites[*].species/xyz)",
            path=path,
            frame=index,
        ) from None

    atoms = Atoms(symbols=symbols, positions=positions, cell=cell, pbc=True)
    results: dict[str, object] = {}
    if outputs.get("energy") is not None:
        results["energy"] = float(outputs["energy"])
    if outputs.get("forces") is not None:
        forces = np.asarray(outputs["forces"], dtype=float)
        if forces.shape != (len(atoms), 3):
            raise InputError(
                f"outputs.forces has shape {forces.shape}, expected ({len(atoms)}, 3)", path=path, frame=index
            )
        results["forces"] = forces
    if outputs.get("virial_stress") is not None:
        try:
            results["stress"] = mlearn_stress_to_ase(outputs["virial_stress"])
        except ValueError as e:
            raise InputError(str(e), path=path, frame=index) from None
    atoms.calc = SinglePointCalculator(atoms, **results)

    atoms.info[SOURCE] = "mlearn"
    elements = sorted(set(symbols))
    if len(elements) == 1:
        atoms.info[ELEMENT] = elements[0]
    if entry.get("group") is not None:
        atoms.info[GROUP] = str(entry["group"])
    description = entry.get("description")
    if description:
        atoms.info["description"] = str(description)
        m = _TEMPERATURE_RE.search(str(description))
        if m:
            atoms.info[TEMPERATURE] = float(m.group(1))
    if entry.get("tag") is not None:
        atoms.info["tag"] = str(entry["tag"])
    return atoms


def read_mlearn(path: str | Path) -> list[Atoms]:
    """Frames from an mlearn JSON file (a list of pymatgen-Structure entries with DFT outputs)."""
    path = Path(path)
    data = _load_json(path)
    if not _is_mlearn(data):
        raise InputError(
            "not an mlearn data file: expected a JSON list of entries with 'structure' and 'outputs'",
            path=path,
        )
    return [_mlearn_entry_to_atoms(entry, path, i) for i, entry in enumerate(data)]


def _load_json(path: Path) -> object:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"unreadable JSON ({e})", path=path) from None


def _check_readable(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file", path=path)
    if path.is_dir():
        raise InputError("is a directory, expected a data file (extxyz or mlearn JSON)", path=path)
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if not head.strip():
        raise InputError("file is empty", path=path)


def _read_with_ase(path: Path) -> list[Atoms]:
    import ase.io

    # extxyz first: it is the format this package writes and nequip reads; for anything else
    # (VASP OUTCAR, ASE trajectories, ...) let ASE guess from the name and content.
    errors: list[str] = []
    for fmt in ("extxyz", None):
        try:
            frames = ase.io.read(path, index=":", format=fmt)
        except Exception as e:  # any reader failure means "not this format"
            errors.append(f"{fmt or 'auto-detected format'}: {type(e).__name__}: {e}")
            continue
        return list(frames) if isinstance(frames, list) else [frames]
    raise InputError("cannot read as a structure file (" + "; ".join(errors) + ")", path=path)


def read_frames(
    path: str | Path, *, validate: bool = True, elements: Iterable[str] | None = None
) -> list[Atoms]:
    """All frames of a data file: mlearn JSON, or anything ASE reads (extxyz first).

    Validation is on by default because a frame without forces or with a NaN is far cheaper to
    reject here than to find as a diverged training run. ``elements`` (a study's chemistry: symbols or
    a :class:`~mlptl.data.chemistry.Chemistry`) admits frames of any mix of them and rejects a frame
    with any other element; left out, every element is admitted.
    """
    path = Path(path)
    _check_readable(path)
    frames: list[Atoms] | None = None
    if path.suffix.lower() == ".json":
        data = _load_json(path)
        if _is_mlearn(data):
            frames = [_mlearn_entry_to_atoms(entry, path, i) for i, entry in enumerate(data)]
        elif isinstance(data, list) and not data:
            raise InputError("contains no frames (an empty JSON list)", path=path)
    if frames is None:
        frames = _read_with_ase(path)
    log.debug("read %d frames from %s", len(frames), path)
    if validate:
        validate_frames(frames, path, elements=elements)
    return frames


def _finite(x: object) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, dtype=float))))


def validate_frames(
    frames: Sequence[Atoms], path: str | Path | None = None, *, elements: Iterable[str] | None = None
) -> None:
    """Raise an InputError on the first frame that cannot be trained or evaluated on.

    Labels are looked up in the stored results, never computed: a frame must carry its energy and
    forces, as extxyz and mlearn frames do. With ``elements``, a frame holding any other element is one
    too (the error names the file, the frame and the element).
    """
    if len(frames) == 0:
        raise InputError("contains no frames", path=path)
    allowed = None if elements is None else frozenset(elements)
    for i, atoms in enumerate(frames):
        if len(atoms) == 0:
            raise InputError("frame has no atoms", path=path, frame=i)
        if allowed is not None:
            outside = sorted(set(atoms.get_chemical_symbols()) - allowed)
            if outside:
                raise InputError(
                    f"frame has element(s) {', '.join(outside)} outside the chemistry "
                    f"{'-'.join(sorted(allowed))}",
                    path=path,
                    frame=i,
                )
        results = getattr(atoms.calc, "results", None) or {}
        energy = results.get("energy")
        if energy is None:
            raise InputError("frame has no energy label", path=path, frame=i)
        forces = results.get("forces")
        if forces is None:
            raise InputError("frame has no forces label", path=path, frame=i)
        if np.shape(forces) != (len(atoms), 3):
            raise InputError(
                f"forces have shape {np.shape(forces)}, expected ({len(atoms)}, 3)", path=path, frame=i
            )
        checks = [
            ("positions", atoms.positions),
            ("cell", atoms.cell.array),
            ("energy", energy),
            ("forces", forces),
        ]
        if results.get("stress") is not None:
            checks.append(("stress", results["stress"]))
        for name, value in checks:
            if not _finite(value):
                raise InputError(f"{name} contain NaN or infinite values", path=path, frame=i)
        _check_distances(atoms, path, i)


def _check_distances(atoms: Atoms, path: str | Path | None, frame: int) -> None:
    """No two atoms (periodic images included) closer than :data:`MIN_DISTANCE`.

    matscipy's neighbour list (~0.03 ms for 64 atoms, against ASE's ~3 ms) needs a full periodic cell;
    ASE's handles the rest (molecules, slabs without a cell).
    """
    if atoms.pbc.all() and abs(atoms.cell.volume) > 1e-9:
        from matscipy.neighbours import neighbour_list

        first, second, dist = neighbour_list("ijd", atoms, MIN_DISTANCE)
    else:
        from ase.neighborlist import neighbor_list

        first, second, dist = neighbor_list("ijd", atoms, MIN_DISTANCE, self_interaction=False)
    if len(dist) == 0:
        return
    k = int(np.argmin(dist))
    i, j = int(first[k]), int(second[k])
    what = f"atom {i} and a periodic image of itself" if i == j else f"atoms {min(i, j)} and {max(i, j)}"
    raise InputError(
        f"{what} are {dist[k]:.3f} A apart, closer than {MIN_DISTANCE} A (a duplicated atom or a unit error?)",
        path=path,
        frame=frame,
    )


def atomic_write_extxyz(frames: Iterable[Atoms], path: str | Path) -> Path:
    """Write extxyz so that ``path`` is either absent, the old file, or the complete new file.

    A crash, a full disk or a second process reading the cache never sees half a data set; the data is
    on disk (fsync) before the rename makes it visible.
    """
    import ase.io

    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        ase.io.write(fh, list(frames), format="extxyz")
        fh.flush()
        os.fsync(fh.fileno())
    return Path(path)


def write_frames(frames: Sequence[Atoms], path: str | Path) -> Path:
    """Write frames as extxyz (energy, forces, stress and info), atomically."""
    out = atomic_write_extxyz(frames, path)
    log.info("wrote %d frames to %s", len(frames), out)
    return out


def _plain(x: object) -> object:
    """numpy scalars as Python numbers, so that summaries serialise to JSON."""
    return x.item() if isinstance(x, np.generic) else x


def summarize(frames: Sequence[Atoms]) -> dict:
    """What a data set holds, for ``mlptl data info`` and for run metadata.

    Energies are reported per atom because mlearn mixes 63- and 64-atom cells with slabs; the
    largest force magnitude flags frames that a model will struggle to fit (or a unit error).
    """
    elements: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    temperatures: set[float] = set()
    e_per_atom: list[float] = []
    max_force = 0.0
    n_stress = 0
    for atoms in frames:
        elements.update(atoms.get_chemical_symbols())
        groups[group_of(atoms)] += 1
        t = atoms.info.get(TEMPERATURE)
        if t is not None:
            temperatures.add(float(t))
        results = getattr(atoms.calc, "results", None) or {}
        if results.get("energy") is not None:
            e_per_atom.append(float(results["energy"]) / len(atoms))
        if results.get("forces") is not None and len(atoms):
            max_force = max(max_force, float(np.linalg.norm(results["forces"], axis=1).max()))
        if results.get("stress") is not None:
            n_stress += 1
    return {
        "frames": len(frames),
        "atoms": int(sum(len(a) for a in frames)),
        "elements": dict(sorted(elements.items())),
        "groups": dict(sorted(groups.items())),
        "temperatures": sorted(_plain(t) for t in temperatures),
        "energy_per_atom_min": min(e_per_atom) if e_per_atom else math.nan,
        "energy_per_atom_max": max(e_per_atom) if e_per_atom else math.nan,
        "max_abs_force": max_force,
        "frames_with_stress": n_stress,
    }


def data_hash(path: str | Path) -> str:
    """sha256 of a file's bytes: identifies the exact data a run was trained on."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
