"""`mlptl evaluate ...`: MD stability, crystal properties, force errors of one potential."""

from __future__ import annotations

import argparse
import json
import logging

from mlptl.cli._common import add_store_arguments, print_json, tracking_uri
from mlptl.errors import InputError

log = logging.getLogger("mlptl")

def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a trained *.nequip.zip, a registry URI models:/NAME/VERSION, or a reference name "
                                 "for --element (e.g. sw)")
    p.add_argument("--element", required=True, help="chemical symbol with a registered reference, e.g. Ge")
    p.add_argument("--reference", default=None,
                   help="the reference potential to compare with (default: MODEL if it is one, else the element's "
                        "only registered reference; 'none' for no reference); a 'package.module:factory' works too")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--out", default=None, help="directory for plots and the JSON result")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_store_arguments(p)


def _is_reference(model: str, element: str) -> bool:
    import os

    from mlptl.data.references import reference_names

    return not os.path.exists(model) and model in reference_names(element)


def _reference_name(args: argparse.Namespace) -> str | None:
    """The reference a model is compared with: named, the model itself, or the element's only one."""
    from mlptl.data.references import default_reference_name, get_reference

    if args.reference == "none":
        return None
    if args.reference is not None:
        get_reference(args.element, args.reference)  # fails early, with the registered names
        return args.reference
    if _is_reference(args.model, args.element):
        return args.model
    return default_reference_name(args.element)


def _model_factory(args: argparse.Namespace):
    """A calculator factory: the model is loaded once (a nequip package takes seconds) and reset per run."""
    from mlptl.data.references import get_reference

    if _is_reference(args.model, args.element):
        calc = get_reference(args.element, args.model).calculator()  # no torch import for a reference
    else:
        from mlptl.model import load_calculator
        from mlptl.tracking import resolve_model_uri

        calc = load_calculator(resolve_model_uri(args.model, tracking_uri(args)), args.element)

    def factory():
        calc.reset()
        return calc

    return factory


def _write_json(obj, out_dir: str | None, name: str) -> None:
    if out_dir:
        from pathlib import Path

        path = Path(out_dir) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def _stability_cmd(args: argparse.Namespace) -> int:
    import dataclasses

    from mlptl.data.generate import parse_temperatures
    from mlptl.evaluate.stability import CRITERIA, StabilityConfig, run_stability

    overrides = {
        "temperatures": None if args.temperatures is None else parse_temperatures(args.temperatures),
        "replicas": args.replicas,
        "steps": args.steps,
        "timestep_fs": args.timestep,
        "supercell": args.supercell,
        "thermostat": args.thermostat,
        "friction": args.friction,
        "check_every": args.check_every,
        "rdf_window": args.rdf_window,
        "rdf_equilibration": args.rdf_equilibration,
        "reference_steps": args.reference_steps,
        "seed": args.seed,
    }
    if args.criteria is not None:
        overrides["criteria"] = tuple(c.strip() for c in args.criteria.split(",") if c.strip())
    overrides = {k: v for k, v in overrides.items() if v is not None}
    config = dataclasses.replace(StabilityConfig(), **overrides)
    reference = _reference_name(args)
    factory = _model_factory(args)
    result = run_stability(factory, args.element, config, reference=reference, progress=not args.no_progress,
                           cache_dir=args.cache_dir)
    d = result.to_dict()
    d["model"] = args.model
    _write_json(d, args.out, "stability.json")
    if args.out:
        from mlptl.evaluate.plots import plot_stability

        for path in plot_stability(result, args.out):
            log.info("wrote %s", path)
    if args.json:
        print_json(d)
        return 0
    print(f"{args.model} ({args.element}): {result.stable_fraction:.0%} of runs stable over "
          f"{config.duration_ps:g} ps; criteria checked: {', '.join(config.criteria) or 'non-finite only'} "
          f"(of {', '.join(CRITERIA)})")
    print(f"{'T (K)':>8} {'stable':>8} {'median ttf (ps)':>16} {'min ttf (ps)':>13}  failures")
    for s in result.by_temperature().values():
        fails = ", ".join(f"{k} x{v}" for k, v in sorted(s["criteria"].items())) or "-"
        print(f"{s['temperature']:>8g} {s['n_stable']:>4}/{s['n_runs']:<3} "
              f"{s['median_time_to_failure_ps']:>16.3f} {s['min_time_to_failure_ps']:>13.3f}  {fails}")
    return 0


def _properties_cmd(args: argparse.Namespace) -> int:
    import dataclasses

    from mlptl.data.references import get_reference
    from mlptl.evaluate.properties import (
        SCALAR_PROPERTIES,
        PropertyConfig,
        compare_properties,
        compute_properties,
    )

    overrides = {
        "temperature": args.temperature,
        "md_steps": args.md_steps,
        "md_equilibration_steps": args.md_equilibration,
        "md_supercell": args.supercell,
        "seed": args.seed,
    }
    config = dataclasses.replace(PropertyConfig(), **{k: v for k, v in overrides.items() if v is not None})
    reference = _reference_name(args)
    if reference is None:
        raise InputError("properties are compared with a reference potential: name one with --reference")
    args.reference = reference
    factory = _model_factory(args)
    ref = get_reference(args.element, reference)
    progress = not args.no_progress
    ref_props = compute_properties(ref.calculator(), args.element, reference=reference, config=config,
                                   compare_structure=False, progress=progress)
    if args.model == args.reference:
        model_props = dict(ref_props)
        model_props.update(rdf_distance=0.0 if ref_props.get("rdf") else None,
                           adf_distance=0.0 if ref_props.get("adf") else None)
    else:
        model_props = compute_properties(factory(), args.element, reference=reference, config=config,
                                         reference_properties=ref_props, progress=progress)
    errors = compare_properties(model_props, ref_props)
    literature = compare_properties(model_props, ref.literature)
    d = {
        "model": args.model,
        "element": args.element,
        "reference": args.reference,
        "config": config.to_dict(),
        "properties": model_props,
        "reference_properties": ref_props,
        "errors": errors,
        "literature": literature,
    }
    _write_json(d, args.out, "properties.json")
    if args.out:
        from mlptl.evaluate.plots import plot_properties

        for path in plot_properties(model_props, ref_props, args.out,
                                    labels=(args.model, f"{args.reference} (reference)")):
            log.info("wrote %s", path)
    if args.json:
        print_json(d)
        return 0
    from mlptl.metrics import UNITS as units

    print(f"{args.model} vs {args.reference} ({args.element})")
    print(f"{'property':<14} {'model':>10} {args.reference:>10} {'rel.err':>9} {'literature':>11}  unit")
    for k in SCALAR_PROPERTIES:
        if model_props.get(k) is None:
            continue
        e = errors.get(k, {})
        rel = f"{e['rel_error']:.2%}" if e.get("rel_error") is not None else "-"
        lit = ref.literature.get(k)
        print(f"{k:<14} {model_props[k]:>10.4f} {ref_props.get(k, float('nan')):>10.4f} {rel:>9} "
              f"{'-' if lit is None else f'{lit:.4f}':>11}  {units.get(k, '')}")
    for k in ("rdf_distance", "adf_distance"):
        if model_props.get(k) is not None:
            print(f"{k:<14} {model_props[k]:>10.4f}  (integral |model - reference| at {config.temperature:g} K)")
    return 0


def _cmd_evaluate_forces(args: argparse.Namespace) -> int:
    from mlptl.data.readers import read_frames
    from mlptl.evaluate.forces import force_errors

    frames = read_frames(args.data)
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    element = args.element or elements[0]
    if element not in elements:
        raise InputError(f"the data holds {elements}, not {element}", path=args.data)
    from mlptl.tracking import resolve_model_uri

    model = str(resolve_model_uri(args.model, tracking_uri(args))) if args.model.startswith("models:/") else args.model
    result = force_errors(model, frames, element=element, prefix="test")
    if args.json:
        print_json(result)
    else:
        for k, v in result.items():
            print(f"{k:<40} {v:.6g}")
    return 0



def add_commands(sub: argparse._SubParsersAction) -> None:
    # `mlptl evaluate <what> MODEL --element EL`: one leaf per evaluation, each with func=. To add an
    # evaluation, add a parser to `ev_sub` and reuse `add_model_args` / `model_factory`. Defaults and
    # choices are read from the protocols' dataclasses and tables, never restated here.
    from mlptl.evaluate.md import THERMOSTATS
    from mlptl.evaluate.monitor import CRITERIA
    from mlptl.evaluate.properties import PropertyConfig
    from mlptl.evaluate.stability_config import StabilityConfig

    sd, pd = StabilityConfig(), PropertyConfig()
    ev = sub.add_parser("evaluate", help="evaluate a potential: MD stability, crystal properties")
    ev_sub = ev.add_subparsers(dest="evaluate_command", required=True)

    s = ev_sub.add_parser(
        "stability",
        help="NVT MD per temperature and replica until a stability criterion trips",
        description="Run NVT MD from the element's reference crystal; each run stops at the first "
        "criterion that trips (non-finite, temperature, force, min distance, RDF vs the reference's). "
        "Defaults and their reasons: docs/evaluation.md.",
    )
    _add_model_args(s)
    s.add_argument("--temperatures", default=None,
                   help=f"comma-separated K (default {','.join(f'{t:g}' for t in sd.temperatures)})")
    s.add_argument("--replicas", type=int, default=None, help=f"runs per temperature (default {sd.replicas})")
    s.add_argument("--steps", type=int, default=None, help=f"MD steps per run (default {sd.steps})")
    s.add_argument("--timestep", type=float, default=None, help=f"fs (default {sd.timestep_fs:g})")
    s.add_argument("--supercell", type=int, default=None,
                   help=f"repeats of the conventional cell (default: the fewest giving >= {sd.min_atoms} atoms)")
    s.add_argument("--thermostat", choices=THERMOSTATS, default=None, help=f"(default {sd.thermostat})")
    s.add_argument("--friction", type=float, default=None, help=f"1/fs (default {sd.friction:g})")
    s.add_argument("--check-every", type=int, default=None, help=f"steps between checks (default {sd.check_every})")
    s.add_argument("--criteria", default=None, help=f"comma-separated subset of {','.join(CRITERIA)}")
    s.add_argument("--rdf-window", type=float, default=None, help=f"ps (default {sd.rdf_window:g})")
    s.add_argument("--rdf-equilibration", type=float, default=None,
                   help=f"ps before RDF sampling (default {sd.rdf_equilibration:g})")
    s.add_argument("--reference-steps", type=int, default=None,
                   help=f"reference MD steps for its RDF (default {sd.reference_steps})")
    s.add_argument("--cache-dir", default=None, help="reference RDF cache (default: $MLPTL_CACHE/rdf or ~/.cache/mlptl/rdf)")
    s.set_defaults(func=_stability_cmd)

    p = ev_sub.add_parser(
        "properties",
        help="lattice constant, cohesive energy, bulk modulus, elastic constants, RDF/ADF vs the reference",
        description="Static properties of the cubic cell and RDF/ADF from short NVT MD, compared with the "
        "registered reference potential and its literature values.",
    )
    _add_model_args(p)
    p.add_argument("--temperature", type=float, default=None, help=f"K for the RDF/ADF (default {pd.temperature:g})")
    p.add_argument("--md-steps", type=int, default=None,
                   help=f"sampled MD steps (default {pd.md_steps}; 0 skips RDF/ADF)")
    p.add_argument("--md-equilibration", type=int, default=None,
                   help=f"MD steps before sampling (default {pd.md_equilibration_steps})")
    p.add_argument("--supercell", type=int, default=None,
                   help=f"repeats of the conventional cell for the MD (default: the fewest giving >= {pd.md_min_atoms} atoms)")
    p.set_defaults(func=_properties_cmd)

    p = ev_sub.add_parser(
        "forces",
        help="force and energy errors of a model on labelled frames, overall and per group",
        description="Force MAE/RMSE (eV/A, over Cartesian components) and energy-per-atom MAE/RMSE (eV/atom).",
    )
    p.add_argument("model", help="a trained *.nequip.zip, models:/NAME/VERSION, or a reference name (e.g. sw)")
    p.add_argument("data", help="labelled frames: extxyz, mlearn JSON, or anything ASE reads")
    p.add_argument("--element", help="the element (default: the data's only element)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    add_store_arguments(p)
    p.set_defaults(func=_cmd_evaluate_forces)

