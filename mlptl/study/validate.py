"""Checking a study before anything is launched: across its fields, the files, the sizes, the freeze depths.

Each dataclass of :mod:`mlptl.study.spec` checks its own fields when built, with :func:`field_error`;
what needs several fields, a file, a model or this machine is checked here. Each error names the study
field that is wrong and what would be right. This module needs the study's types for annotations only,
so the spec may call it without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlptl.errors import InputError
from mlptl.fsutil import expand_path
from mlptl.model.spec import ModelSpec, max_freeze_depth

if TYPE_CHECKING:
    from mlptl.study.spec import Study

__all__ = ["validate_study", "study_warnings", "field_error", "check_field"]


def field_error(field_name: str, message: str) -> InputError:
    return InputError(f"study field {field_name}: {message}")


def check_field(ok: bool, field_name: str, message: str) -> None:
    """A spec's own check of one of its fields, when it is built."""
    if not ok:
        raise field_error(field_name, message)


_err = field_error


def validate_study(s: Study, *, check_data: bool = True) -> None:
    """The checks across a study's fields and against files, models and this machine (each field checked
    itself when the study was built). Raises InputError naming the field."""
    if isinstance(s.pretraining, dict) and set(s.pretraining) != set(s.sources):
        raise _err("pretraining", f"one Pretraining per source element {list(s.sources)}, got {sorted(s.pretraining)}")
    if s.compile:
        from mlptl.model.compiler import MISSING_CXX, cxx_compiler

        if cxx_compiler() is None:
            raise _err("compile", f"torch.compile on the CPU needs a C++ compiler: {MISSING_CXX}")
    if s.target_reference is not None:
        from mlptl.data.references import get_reference
        from mlptl.data.systems import get_system_reference

        try:
            if len(s.target_elements) == 1:
                get_reference(s.target_element, s.target_reference)
            else:
                get_system_reference(s.target_reference, s.target_elements)
        except InputError as e:
            raise _err("target_reference", str(e)) from None
    if s.warm_start is not None:
        db = s.warm_start.optuna_db()
        if not db.is_file():
            raise _err("warm_start.storage", f"no Optuna store at {db}")
        import optuna

        if not any(n.startswith(f"{s.warm_start.study}/") for n in optuna.get_all_study_names(f"sqlite:///{db}")):
            raise _err("warm_start.study", f"no study {s.warm_start.study!r} in {db}")
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
    if len(s.target_elements) > 1 and s.reference_for_target() is not None:
        _check_alloy_stability_cell(s)


def study_warnings(s: Study) -> list[str]:
    """What a valid study should tell its user at launch (after every check passed, so that bad input stays
    one line): settings that run but do less than they seem to."""
    out = []
    cfg = s.evaluation.stability()
    if cfg is not None and "rdf" in cfg.criteria and cfg.steps < cfg.rdf_steps:
        # short runs are the smoke tests' and the quick start's choice, but the stable fractions then rest
        # on temperature, forces and distances only
        out.append(f"evaluation.stability_steps={cfg.steps} is shorter than the RDF criterion needs "
                   f"({cfg.rdf_steps} steps: {cfg.rdf_equilibration:g} ps of equilibration, then a "
                   f"{cfg.rdf_window:g} ps window): MD stability is judged without it"
                   + ("; no reference RDF is computed for it" if not cfg.samples_rdf else ""))
    return out


def _check_alloy_stability_cell(s: Study) -> None:
    """A multi-element target's stability MD starts from the system reference's random alloy: check it can
    be built (its elements must share a lattice) before launch, for the final evaluation and the search's check."""
    from mlptl.evaluate.stability_config import StabilityConfig, stability_cell

    checks = []
    if s.evaluation.stability_temperatures:
        checks.append(("evaluation.stability_temperatures", s.evaluation.stability(), s.alloy_compositions() or None))
    if s.search_stability is not None:
        checks.append(("search_stability", StabilityConfig(), s.alloy_compositions() or None))  # md_check's cell
    for field_name, cfg, comps in checks:
        try:
            stability_cell(s.target_element, s.reference_for_target(), cfg, compositions=comps)
        except InputError as e:
            raise _err(field_name, f"no alloy of {s.target_element} to run MD stability from: {e}") from None


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
        path = expand_path(p.pretrained)
        if not path.is_file():
            raise _err(f"{where}.pretrained", f"file not found: {path}")
        from mlptl.model.calculator import model_type_names

        types = model_type_names(path)
        missing = [el for el in s.source_elements(src) if el not in types]
        if missing:
            raise _err(f"{where}.pretrained", f"model knows {types}, not the source element(s) {', '.join(missing)}")
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
        try:
            frames = read_frames(path, elements=s.target_elements)
        except InputError as e:
            raise _err("target_data.path", str(e)) from None
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
