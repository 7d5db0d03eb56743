"""Checking a study before anything is launched: every field, the files, the sizes, the freeze depths.

Kept apart from the dataclasses in :mod:`mlptl.study.spec` so that the definitions read as data; each
error names the study field that is wrong and what would be right.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING

from mlptl.errors import InputError
from mlptl.model.spec import ModelSpec, max_freeze_depth

if TYPE_CHECKING:
    from mlptl.study.spec import Study

__all__ = ["validate_study", "field_error"]


def field_error(field_name: str, message: str) -> InputError:
    return InputError(f"study field {field_name}: {message}")


_err = field_error


def validate_study(s: Study, *, check_data: bool = True) -> None:
    """Every check that needs no training. Raises InputError naming the field."""
    from ase.data import atomic_numbers

    from mlptl.study.spec import INITS, PRUNERS, SAMPLERS, SELECTIONS

    if not s.name or any(c in s.name for c in "/\\:"):
        raise _err("name", f"{s.name!r} must be non-empty and contain no '/', '\\' or ':'")
    if not s.sources:
        raise _err("source_element", "name at least one source element")
    for el in s.sources:
        if el not in atomic_numbers:
            raise _err("source_element", f"unknown element {el!r}")
    if len(set(s.sources)) != len(s.sources):
        raise _err("source_element", f"source elements repeat: {s.sources}")
    if s.target_element not in atomic_numbers:
        raise _err("target_element", f"unknown element {s.target_element!r}")
    if isinstance(s.pretraining, dict) and set(s.pretraining) != set(s.sources):
        raise _err("pretraining", f"one Pretraining per source element {list(s.sources)}, got {sorted(s.pretraining)}")
    for init in s.inits:
        if init not in INITS:
            raise _err("inits", f"{init!r} is not one of {INITS}")
    if not s.inits:
        raise _err("inits", "no inits to compare")
    if not s.train_sizes or any(int(n) < 1 for n in s.train_sizes):
        raise _err("train_sizes", f"need positive sizes, got {s.train_sizes}")
    if s.trials_per_cell < 1:
        raise _err("trials_per_cell", "must be at least 1")
    if s.max_epochs < 1:
        raise _err("max_epochs", "must be at least 1")
    if s.compile:
        from mlptl.train.spec import cxx_compiler

        if cxx_compiler() is None:
            raise _err("compile", "torch.compile on the CPU needs a C++ compiler (g++, clang++ or $CXX) on PATH")
    if not s.seeds:
        raise _err("seeds", "need at least one seed for re-training each cell's best")
    if len(set(s.seeds)) != len(s.seeds):
        raise _err("seeds", f"replicate seeds must differ, got {s.seeds}")
    _check_search(s, INITS)
    if s.selection not in SELECTIONS:
        raise _err("selection", f"{s.selection!r} is not one of {SELECTIONS}")
    if s.target_reference is not None:
        from mlptl.data.references import get_reference

        try:
            get_reference(s.target_element, s.target_reference)
        except InputError as e:
            raise _err("target_reference", str(e)) from None
    if s.warm_start is not None:
        db = Path(os.path.expandvars(os.path.expanduser(s.warm_start.storage))) / "optuna.db"
        if not db.is_file():
            raise _err("warm_start.storage", f"no Optuna store at {db}")
        import optuna

        if not any(n.startswith(f"{s.warm_start.study}/") for n in optuna.get_all_study_names(f"sqlite:///{db.resolve()}")):
            raise _err("warm_start.study", f"no study {s.warm_start.study!r} in {db}")
    if s.sampler not in SAMPLERS:
        raise _err("sampler", f"{s.sampler!r} is not one of {SAMPLERS}")
    if s.pruner.kind not in PRUNERS:
        raise _err("pruner.kind", f"{s.pruner.kind!r} is not one of {PRUNERS}")
    if s.resources.cpus_per_trial <= 0 or s.resources.gpus_per_trial < 0:
        raise _err("resources", "cpus_per_trial must be > 0 and gpus_per_trial >= 0")
    try:
        for src in s.sources:
            s.pretraining_for(src).model_spec()
        target_spec = s.target_model_spec()
    except InputError as e:
        raise _err("model", str(e)) from None
    if "transfer" in s.inits:
        for src in s.sources:
            _check_pretraining(s, src)
        depth_max = min(max_freeze_depth(_source_spec(s, src) or target_spec) for src in s.sources)
        depths = s.search_for("transfer").freeze_depth
        bad = [d for d in depths if not 0 <= d <= depth_max]
        if bad or not depths:
            raise _err(
                "search.freeze_depth",
                f"{list(depths)} out of range: the source model has "
                f"{depth_max - 1} Allegro layers, so depths run from 0 to {depth_max}",
            )
    s.target_data.check("target_data", s.target_element)
    if s.test_size < 1 and not s.target_data.test_path:
        raise _err("test_size", "must be at least 1 unless target_data names a test_path")
    if s.val_size < 1:
        raise _err("val_size", "must be at least 1")
    if check_data:
        _check_sizes(s)
    ev = s.evaluation
    if (ev.stability_temperatures or ev.properties) and s.reference_for_target() is None:
        # Without a reference there is no starting crystal, no reference RDF and nothing to compare
        # properties with: the evaluation the study asks for would be skipped, silently, in every trial.
        raise _err(
            "target_reference",
            f"the evaluation asks for MD stability or properties of {s.target_element}, which need its reference "
            "potential (the starting crystal, the reference RDF); name one, e.g. target_reference='sw', or set "
            "EvaluationSpec(stability_temperatures=(), properties=False)",
        )


def _check_search(s: Study, inits: tuple[str, ...]) -> None:
    if isinstance(s.search, dict) and set(s.search) - set(inits):
        raise _err("search", f"keys must be inits {inits}, got {sorted(s.search)}")
    for init in s.inits:
        space = s.search_for(init)
        lo, hi = space.lr
        if not (0 < lo <= hi and math.isfinite(hi)):
            raise _err("search.lr", f"need 0 < low <= high, got {space.lr}")
        for sched in space.lr_schedule:
            if sched not in ("constant", "plateau", "cosine"):
                raise _err("search.lr_schedule", f"unknown schedule {sched!r}")
        if not space.batch_size or any(b < 1 for b in space.batch_size):
            raise _err("search.batch_size", f"need positive batch sizes, got {space.batch_size}")


def _where(s: Study, src: str) -> str:
    return f"pretraining[{src!r}]" if isinstance(s.pretraining, dict) else "pretraining"


def _source_spec(s: Study, src: str) -> ModelSpec | None:
    p = s.pretraining_for(src)
    if p.pretrained:
        from mlptl.model.transfer import load_source

        return load_source(p.pretrained).spec()
    return None


def _check_pretraining(s: Study, src: str) -> None:
    p, where = s.pretraining_for(src), _where(s, src)
    if p.pretrained:
        path = Path(os.path.expandvars(os.path.expanduser(p.pretrained)))
        if not path.is_file():
            raise _err(f"{where}.pretrained", f"file not found: {path}")
        from mlptl.model.calculator import model_type_names

        types = model_type_names(path)
        if src not in types:
            raise _err(f"{where}.pretrained", f"model knows {types}, not the source element {src}")
        return
    if p.data is None:
        raise _err(where, "give data= to pretrain on, or pretrained= (an existing *.nequip.zip)")
    p.data.check(f"{where}.data", src)
    if p.test_size < 1 and not p.data.test_path:
        raise _err(f"{where}.test_size", "must be at least 1 unless the data names a test_path")


def _check_sizes(s: Study) -> None:
    """Split the target data exactly as trials will, and check the largest training set fits."""
    test = 0 if s.target_data.test_path else s.test_size
    if s.target_data.generate is not None:
        available = s.target_data.generate.n_frames
        room = available - test - s.val_size
    else:
        from mlptl.data.readers import read_frames
        from mlptl.data.splits import split_frames

        path = s.target_data.resolved_path()
        frames = read_frames(path)
        available = len(frames)
        split = split_frames(
            frames,
            n_test=test,
            n_val=s.val_size,
            seed=s.split_seed,
            test_groups=s.test_groups,
            train_groups=s.train_groups,
            path=path,
        )
        room = len(split.train)
    if max(s.train_sizes) > room:
        raise _err(
            "train_sizes",
            f"largest training size {max(s.train_sizes)} exceeds the {room} training frames the "
            f"target data leaves ({available} frames, minus {test} test and {s.val_size} validation)",
        )
