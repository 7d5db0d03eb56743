"""The full evaluation of a trained model, as a study's final phase runs it: stability and properties.

Returns flat metrics for MLflow (``stability_stable_fraction.T900``, ``prop_C11`` ...) and writes the
JSON details and plots into a directory that the trial logs as artifacts. The reference potential is
the study's for the target element, passed by name; without one (DFT data) stability needs the crystal
to start from and runs without the RDF criterion, and properties are not compared with a reference. A
model of several elements (``element`` a chemistry such as ``"Cu-Ni"``) runs the same stability protocol
from the system reference's random alloy (the RDF criterion also per element pair) and is evaluated on
alloys instead of one crystal: mixing energies, lattice constants and partial RDFs against the system
reference (:mod:`mlptl.evaluate.alloys`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ase import Atoms

from mlptl import metrics as M
from mlptl.data.chemistry import Chemistry, Composition
from mlptl.data.references import get_reference
from mlptl.data.systems import get_system_reference
from mlptl.errors import InputError
from mlptl.evaluate.alloys import (
    alloy_metrics,
    alloy_properties,
    alloy_structure,
    compare_alloy_properties,
    compare_alloy_structure,
    default_compositions,
)
from mlptl.evaluate.plots import plot_stability
from mlptl.evaluate.properties import PropertyConfig, compare_properties, compute_properties
from mlptl.evaluate.rdf import rdf_distance
from mlptl.evaluate.stability import run_stability
from mlptl.evaluate.stability_config import StabilityConfig
from mlptl.fsutil import atomic_write_text
from mlptl.model.calculator import load_calculator

log = logging.getLogger(__name__)

__all__ = ["evaluate_model", "md_check"]


def _t(t: float) -> str:
    return f"T{int(round(t))}"


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=str))


def evaluate_model(
    model_path: str | Path,
    element: str,
    out_dir: str | Path,
    *,
    stability: StabilityConfig | None,
    properties: PropertyConfig | None,
    reference: str | None,
    cache_dir: str | Path | None = None,
    initial: Atoms | None = None,
    compositions: Sequence[str] | None = None,
) -> dict[str, float]:
    """Stability (under ``stability``'s protocol) and properties (under ``properties``') of the packaged
    model at ``model_path`` for ``element``; None skips either.

    ``reference`` names ``element``'s reference potential (the starting crystal, the reference RDF, the
    properties compared with); None means there is none, and then ``initial`` (a conventional cell)
    must be given for anything to run. The reference RDF is cached in ``cache_dir``. What was skipped
    and why goes to ``out_dir/evaluation.json``.

    ``element`` may name several elements (``"Cu-Ni"``): then ``reference`` names a system reference,
    stability runs from its random alloy of the composition of ``compositions`` nearest equal parts, and
    ``properties`` (if not None) runs the alloy properties at ``compositions`` (default
    :func:`~mlptl.evaluate.alloys.default_compositions`) instead of one crystal's.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    chem = Chemistry.parse(element) if isinstance(element, str) else Chemistry(element)
    if len(chem) > 1:
        return _evaluate_alloys(model_path, chem, out, stability=stability, properties=properties,
                                reference=reference, compositions=compositions, cache_dir=cache_dir)
    metrics: dict[str, float] = {}
    notes: list[str] = []
    if reference is None and initial is None:
        notes.append(f"no reference potential for {element} and no crystal given: stability and properties skipped")
        log.warning("%s", notes[-1])
        _write_json(out / "evaluation.json", {"element": element, "reference": None, "notes": notes})
        return metrics
    if stability is not None:
        metrics.update(_stability(model_path, element, stability, out, notes, reference=reference, initial=initial,
                                  cache_dir=cache_dir))
    props = None
    if properties is not None:
        try:
            props = compute_properties(load_calculator(model_path, element), element, reference=reference,
                                       initial=initial, config=properties, compare_structure=False)
        except InputError as e:  # the model's own failure (e.g. no EOS minimum): noted, the trial stands
            log.warning("properties of %s: %s", model_path, e)
            notes.append(f"properties not computed: {e}")
    if props is not None:
        for k, v in props.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                metrics[f"prop_{k}"] = float(v)
        if reference is not None:
            ref = compute_properties(get_reference(element, reference).calculator(), element, reference=reference,
                                     initial=initial, config=properties, compare_structure=False)
            for k, d in compare_properties(props, ref).items():
                if isinstance(d, dict) and d.get("abs_error") is not None:
                    metrics[f"prop_{k}_abs_error"] = float(d["abs_error"])
        notes.extend(props["notes"])
        _write_json(out / "properties.json", props)
    _write_json(out / "evaluation.json", {"element": element, "reference": reference, "notes": notes})
    return metrics


def _stability(
    model_path: str | Path, element: str, config: StabilityConfig, out: Path, notes: list[str], *,
    reference: str | None, initial: Atoms | None, cache_dir: str | Path | None,
    compositions: Sequence[str] | None = None,
) -> dict[str, float]:
    """Stability metrics of the model, one element or several; details, plots and notes into ``out`` and ``notes``.

    Both run the same protocol and give the same metric names, so the report's stability tables hold
    alloys too; several elements add each temperature's RDF distance, total and per element pair.
    """
    calc = load_calculator(model_path, element)  # loaded once (seconds), reset for each MD run

    def factory():
        calc.reset()
        return calc

    res = run_stability(factory, element, config, reference=reference, initial=initial, progress=False,
                        cache_dir=cache_dir, compositions=compositions)
    metrics: dict[str, float] = {}
    for t, s in res.by_temperature().items():
        metrics[f"stability_stable_fraction.{_t(t)}"] = float(s["stable_fraction"])
        metrics[f"stability_median_ttf_ps.{_t(t)}"] = float(s["median_time_to_failure_ps"])
    metrics["stability_stable_fraction"] = float(res.stable_fraction)
    for t, entry in res.rdf.items():
        if "pair_distance" not in entry:  # one element: no partial RDFs
            continue
        name = M.group_metric(M.STABILITY_RDF_DISTANCE, _t(t))
        if entry["g"] is not None and entry["g_ref"] is not None:
            metrics[name] = rdf_distance(entry["r"], entry["g"], entry["g_ref"])
        for pair, d in entry["pair_distance"].items():
            if d is not None:
                metrics[M.pair_metric(name, *pair.split("-"))] = float(d)
    notes.extend(res.notes)
    _write_json(out / "stability.json", res.to_dict())
    try:
        plot_stability(res, out)
    except Exception:  # a plot must never fail an evaluation
        log.exception("stability plots failed")
    return metrics


def _evaluate_alloys(
    model_path: str | Path, chem: Chemistry, out: Path, *, stability: StabilityConfig | None,
    properties: PropertyConfig | None, reference: str | None, compositions: Sequence[str] | None,
    cache_dir: str | Path | None = None,
) -> dict[str, float]:
    """:func:`evaluate_model` for a model of several elements: MD stability, alloy properties and partial RDFs."""
    comps = [Composition.coerce(c).label for c in (compositions or default_compositions(chem))]
    outside = sorted({el for c in comps for el in Composition.parse(c).elements} - set(chem))
    if outside:
        raise InputError(f"compositions {comps} name elements outside {chem}: {', '.join(outside)}")
    metrics: dict[str, float] = {}
    notes: list[str] = []
    if reference is None:
        notes.append(f"no reference potential for {chem}: MD stability and alloy properties skipped")
        log.warning("%s", notes[-1])
    elif stability is not None:
        metrics.update(_stability(model_path, chem.label, stability, out, notes, reference=reference, initial=None,
                                  cache_dir=cache_dir, compositions=comps))
    if reference is not None and properties is not None:
        ref = get_system_reference(reference, chem)
        calc = load_calculator(model_path, chem.label)
        ref_props = alloy_properties(ref.calculator(), ref, comps)
        details: dict[str, Any] = {"reference": ref_props}
        try:
            props = alloy_properties(calc, ref, comps)
        except InputError as e:  # the model's own failure: noted, the trial stands
            log.warning("alloy properties of %s: %s", model_path, e)
            notes.append(f"alloy properties not computed: {e}")
            props = None
        if props is not None:
            errors = compare_alloy_properties(props, ref_props)
            metrics.update(alloy_metrics(props, errors))
            details.update(model=props, errors=errors)
            notes.extend(props["notes"])
        if properties.md_steps > 0:

            def factory():
                calc.reset()
                return calc

            details["structure"] = structure = {}
            for c in comps:
                a0 = ref_props["compositions"][c]["a0"]
                m = alloy_structure(factory, ref, c, properties, a0=a0)
                r = alloy_structure(ref.calculator, ref, c, properties, a0=a0)
                d = compare_alloy_structure(m, r)
                structure[c] = {"model": m, "reference": r, "rdf_distance": d}
                for pair, v in d.items():
                    if v is not None:
                        metrics[M.pair_metric(M.composition_metric(M.ALLOY_RDF_DISTANCE, c), *pair.split("-"))] = v
        _write_json(out / "alloys.json", details)
    _write_json(out / "evaluation.json", {"element": chem.label, "reference": reference, "compositions": comps,
                                          "notes": notes})
    return metrics


def md_check(
    model_path: str | Path, element: str, *, reference: str | None, temperature: float, steps: int,
    cache_dir: str | Path | None = None, compositions: Sequence[str] | None = None,
) -> dict[str, float]:
    """One short NVT run at ``temperature``: is the model stable for ``steps`` steps, and for how long.

    What a search can afford per trial (a few seconds for the tiny model); the final phase runs the full
    protocol. Metrics: ``search_md_stable`` (1 or 0) and ``search_md_ttf_ps`` (time to failure, or the run
    length when stable). A chemistry of several elements (``"Cu-Ni"``, ``reference`` a system reference)
    runs from the reference's random alloy of the composition of ``compositions`` nearest equal parts (the
    alloy the full evaluation starts from), its RDF criterion also per element pair.
    """
    from dataclasses import replace

    cfg = StabilityConfig(temperatures=(float(temperature),), replicas=1, steps=int(steps),
                          reference_steps=max(1000, 2 * int(steps)))
    if reference is None:  # no reference RDF to compare with: the other criteria still apply
        cfg = replace(cfg, criteria=tuple(c for c in cfg.criteria if c != "rdf"))
    calc = load_calculator(model_path, element)

    def factory():
        calc.reset()
        return calc

    res = run_stability(factory, element, cfg, reference=reference, progress=False, cache_dir=cache_dir,
                        compositions=compositions)
    run = res.runs[0]
    ttf = run.time_to_failure_ps if run.time_to_failure_ps is not None else cfg.duration_ps
    return {M.SEARCH_MD_STABLE: float(run.stable), M.SEARCH_MD_TTF: float(ttf)}

