"""The ``mlptl`` command: parse arguments, call the same functions a study script calls.

Each command group has one ``_add_*`` function that registers its subcommands. An
:class:`~mlptl.errors.InputError` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from mlptl.errors import InputError

log = logging.getLogger("mlptl")


def _print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# ---------------------------------------------------------------- data
def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    # Handlers import lazily: `mlptl --help` should not pay for importing ase and matscipy.
    def generate_cmd(args: argparse.Namespace) -> int:
        import dataclasses
        import os
        import shutil
        import tempfile
        from pathlib import Path

        from mlptl.data.generate import GenerationSpec, generate, parse_temperatures, preset

        overrides = {
            "reference": args.reference,
            "temperatures": None if args.temperatures is None else parse_temperatures(args.temperatures),
            "frames_per_temperature": args.frames,
            "supercell": args.supercell,
            "timestep_fs": args.timestep,
            "equilibration_steps": args.equilibration,
            "interval_steps": args.interval,
            "friction": args.friction,
            "seed": args.seed,
            "strain": args.strain,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if args.preset:
            spec = preset(args.preset, args.element)
            spec = dataclasses.replace(spec, **overrides) if overrides else spec
        else:
            spec = GenerationSpec(element=args.element, **overrides)
        path = generate(spec, args.cache_dir, progress=not args.no_progress)
        if args.out:
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
            os.close(fd)
            try:
                shutil.copyfile(path, tmp)
                os.replace(tmp, out)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            path = out
        print(path)
        return 0

    def info_cmd(args: argparse.Namespace) -> int:
        from mlptl.data.readers import data_hash, read_frames, summarize

        summary = {"file": str(args.file), **summarize(read_frames(args.file))}
        summary["sha256"] = data_hash(args.file)
        if args.json:
            _print_json(summary)
            return 0
        width = max(len(k) for k in summary)
        for key, value in summary.items():
            if isinstance(value, dict):
                value = ", ".join(f"{k}: {v}" for k, v in value.items())
            elif isinstance(value, list):
                value = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) or "-"
            elif isinstance(value, float):
                value = f"{value:.6g}"
            print(f"{key:<{width}}  {value}")
        return 0

    data = sub.add_parser("data", help="generate, inspect and split data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    g = data_sub.add_parser(
        "generate",
        help="MD-sampled frames labelled by a reference potential (cached by spec hash)",
        description="Sample frames from Langevin NVT MD of the reference crystal, one trajectory per "
        "temperature. Flags given with --preset override single fields of the preset.",
    )
    g.add_argument("--element", required=True, help="chemical symbol with a registered reference, e.g. Ge")
    g.add_argument("--reference", default=None, help="reference potential name (default: sw)")
    g.add_argument("--preset", default=None, help="start from a named spec: tiny, paper")
    g.add_argument("--temperatures", default=None, help="comma-separated temperatures in K, e.g. 300,900")
    g.add_argument("--frames", type=int, default=None, help="frames per temperature")
    g.add_argument("--supercell", type=int, default=None, help="repeats of the cubic cell (2 = 64 atoms)")
    g.add_argument("--timestep", type=float, default=None, help="MD time step in fs")
    g.add_argument("--equilibration", type=int, default=None, help="MD steps before the first frame")
    g.add_argument("--interval", type=int, default=None, help="MD steps between frames")
    g.add_argument("--friction", type=float, default=None, help="Langevin friction in 1/fs")
    g.add_argument("--strain", type=float, default=None, help="isotropic strain of the lattice constant")
    g.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    g.add_argument("--cache-dir", default=None, help="cache directory (default: $MLPTL_CACHE or ~/.cache/mlptl/data)")
    g.add_argument("--out", default=None, help="copy the data set here (extxyz); prints the path")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.set_defaults(func=generate_cmd)

    i = data_sub.add_parser("info", help="summarise a data file (extxyz, mlearn JSON, ...)")
    i.add_argument("file", help="data file")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i.set_defaults(func=info_cmd)


# ---------------------------------------------------------------- train
def _groups(text: str | None) -> tuple[str, ...] | None:
    return tuple(g.strip() for g in text.split(",") if g.strip()) if text else None


def _cmd_train(args: argparse.Namespace) -> int:
    from mlptl.train import TrainSpec, train

    spec = TrainSpec(
        element=args.element,
        data=args.data,
        out=args.out,
        init=args.init,
        pretrained=args.pretrained,
        source_type=args.source_type,
        freeze_depth=args.freeze_depth,
        lr=args.lr,
        lr_schedule=args.lr_schedule,
        max_epochs=args.max_epochs,
        train_size=args.train_size,
        val_size=args.val_size,
        test_size=args.test_size,
        test_data=args.test_data,
        train_groups=_groups(args.train_groups),
        test_groups=_groups(args.test_groups),
        batch_size=args.batch_size,
        seed=args.seed,
        split_seed=args.split_seed,
        model=args.model_size,
    )
    result = train(spec, resume=not args.restart, progress=args.progress)
    _print_json({"model": str(result.model_path), "epochs": result.epochs_run, **result.metrics})
    return 0


def _add_train_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train one Allegro model from scratch or by transfer",
        description="Train one model. Leaves OUT/model.nequip.zip, OUT/metrics.json and OUT/history.csv.",
    )
    p.add_argument("--element", required=True, help="the element the model is for, e.g. Ge")
    p.add_argument("--data", required=True, help="frames: extxyz, mlearn JSON, or anything ASE reads")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--init", choices=["scratch", "transfer"], default="scratch")
    p.add_argument("--pretrained", help="source model (*.nequip.zip) for --init transfer")
    p.add_argument("--source-type", help="the source model's type to start from (if it has several)")
    p.add_argument("--freeze-depth", type=int, default=0, help="0 none, 1 two-body embedding, 1+i also layers <i")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--lr-schedule", choices=["constant", "plateau", "cosine"], default="plateau")
    p.add_argument("--max-epochs", type=int, default=20)
    p.add_argument("--train-size", type=int, help="training frames (a nested subset); default all")
    p.add_argument("--val-size", type=int, default=10)
    p.add_argument("--test-size", type=int, default=20, help="test frames split off --data (ignored with --test-data)")
    p.add_argument("--test-data", help="a separate test file")
    p.add_argument("--train-groups", help="comma-separated groups to train on, e.g. T300")
    p.add_argument("--test-groups", help="comma-separated groups to test on, e.g. T900")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0, help="weights and shuffling")
    p.add_argument("--split-seed", type=int, default=0, help="test/validation split and subset order")
    p.add_argument("--model-size", default="tiny", help="model preset: tiny, small, paper")
    p.add_argument("--restart", action="store_true", help="ignore checkpoints in OUT and start over")
    p.add_argument("--progress", action="store_true", help="show Lightning's progress bar")
    p.set_defaults(func=_cmd_train)


# ---------------------------------------------------------------- evaluate
def _add_evaluate_commands(sub: argparse._SubParsersAction) -> None:
    # `mlptl evaluate <what> MODEL --element EL`: one leaf per evaluation, each with func=. To add an
    # evaluation, add a parser to `ev_sub` and reuse `add_model_args` / `model_factory`. Handlers import
    # lazily: `mlptl --help` should not pay for importing ase and matscipy.
    def add_model_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("model", help="a reference name for --element (e.g. sw) or a trained *.nequip.zip")
        p.add_argument("--element", required=True, help="chemical symbol with a registered reference, e.g. Ge")
        p.add_argument("--json", action="store_true", help="print JSON instead of a table")
        p.add_argument("--out", default=None, help="directory for plots and the JSON result")
        p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
        p.add_argument("--no-progress", action="store_true", help="no progress bar")

    def model_factory(model: str, element: str):
        """A calculator factory: the model is loaded once (a nequip package takes seconds) and reset per run."""
        import os

        from mlptl.data.references import get_reference, known_references

        get_reference(element)  # an unknown element fails here, before any model is loaded
        if (element, model) in known_references() and not os.path.exists(model):
            calc = get_reference(element, model).calculator()  # no torch import for a reference
        else:
            from mlptl.model import load_calculator

            calc = load_calculator(model, element)

        def factory():
            calc.reset()
            return calc

        return factory

    def write_json(obj, out_dir: str | None, name: str) -> None:
        if out_dir:
            from pathlib import Path

            path = Path(out_dir) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(obj, indent=2, default=str) + "\n")

    def stability_cmd(args: argparse.Namespace) -> int:
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
        factory = model_factory(args.model, args.element)
        result = run_stability(factory, args.element, config, progress=not args.no_progress,
                               cache_dir=args.cache_dir)
        d = result.to_dict()
        d["model"] = args.model
        write_json(d, args.out, "stability.json")
        if args.out:
            from mlptl.evaluate.plots import plot_stability

            for path in plot_stability(result, args.out):
                log.info("wrote %s", path)
        if args.json:
            _print_json(d)
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

    def properties_cmd(args: argparse.Namespace) -> int:
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
        factory = model_factory(args.model, args.element)
        ref = get_reference(args.element, args.reference)
        progress = not args.no_progress
        ref_props = compute_properties(ref.calculator(), args.element, config=config, compare_structure=False,
                                       progress=progress)
        if args.model == args.reference:
            model_props = dict(ref_props)
            model_props.update(rdf_distance=0.0 if ref_props.get("rdf") else None,
                               adf_distance=0.0 if ref_props.get("adf") else None)
        else:
            model_props = compute_properties(factory(), args.element, config=config, reference=ref_props,
                                             progress=progress)
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
        write_json(d, args.out, "properties.json")
        if args.out:
            from mlptl.evaluate.plots import plot_properties

            for path in plot_properties(model_props, ref_props, args.out,
                                        labels=(args.model, f"{args.reference} (reference)")):
                log.info("wrote %s", path)
        if args.json:
            _print_json(d)
            return 0
        units = {"a0": "A", "ecoh": "eV/atom", "B": "GPa", "C11": "GPa", "C12": "GPa", "C44": "GPa",
                 "C44_unrelaxed": "GPa", "volume": "A^3/atom"}
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

    ev = sub.add_parser("evaluate", help="evaluate a potential: MD stability, crystal properties")
    ev_sub = ev.add_subparsers(dest="evaluate_command", required=True)

    s = ev_sub.add_parser(
        "stability",
        help="NVT MD per temperature and replica until a stability criterion trips",
        description="Run NVT MD from the element's reference crystal; each run stops at the first "
        "criterion that trips (non-finite, temperature, force, min distance, RDF vs the reference's). "
        "Defaults and their reasons: docs/evaluation.md.",
    )
    add_model_args(s)
    s.add_argument("--temperatures", default=None, help="comma-separated K (default 300,900,1500)")
    s.add_argument("--replicas", type=int, default=None, help="runs per temperature (default 3)")
    s.add_argument("--steps", type=int, default=None, help="MD steps per run (default 10000)")
    s.add_argument("--timestep", type=float, default=None, help="fs (default 1)")
    s.add_argument("--supercell", type=int, default=None, help="repeats of the cubic cell (default 2 = 64 atoms)")
    s.add_argument("--thermostat", choices=["langevin", "nose-hoover"], default=None)
    s.add_argument("--friction", type=float, default=None, help="1/fs (default 0.01)")
    s.add_argument("--check-every", type=int, default=None, help="steps between checks (default 10)")
    s.add_argument("--criteria", default=None, help="comma-separated subset of temperature,force,min_distance,rdf")
    s.add_argument("--rdf-window", type=float, default=None, help="ps (default 0.5)")
    s.add_argument("--rdf-equilibration", type=float, default=None, help="ps before RDF sampling (default 0.5)")
    s.add_argument("--reference-steps", type=int, default=None, help="reference MD steps for its RDF (default 5000)")
    s.add_argument("--cache-dir", default=None, help="reference RDF cache (default: $MLPTL_CACHE/rdf or ~/.cache/mlptl/rdf)")
    s.set_defaults(func=stability_cmd)

    p = ev_sub.add_parser(
        "properties",
        help="lattice constant, cohesive energy, bulk modulus, elastic constants, RDF/ADF vs the reference",
        description="Static properties of the cubic cell and RDF/ADF from short NVT MD, compared with the "
        "registered reference potential and its literature values.",
    )
    add_model_args(p)
    p.add_argument("--reference", default="sw", help="reference potential to compare with (default sw)")
    p.add_argument("--temperature", type=float, default=None, help="K for the RDF/ADF (default 900)")
    p.add_argument("--md-steps", type=int, default=None, help="sampled MD steps (default 2000; 0 skips RDF/ADF)")
    p.add_argument("--md-equilibration", type=int, default=None, help="MD steps before sampling (default 500)")
    p.add_argument("--supercell", type=int, default=None, help="repeats of the cubic cell for the MD (default 2)")
    p.set_defaults(func=properties_cmd)

    p = ev_sub.add_parser(
        "forces",
        help="force and energy errors of a model on labelled frames, overall and per group",
        description="Force MAE/RMSE (eV/A, over Cartesian components) and energy-per-atom MAE/RMSE (eV/atom).",
    )
    p.add_argument("model", help="a trained *.nequip.zip, or a reference name (e.g. sw) with --element")
    p.add_argument("data", help="labelled frames: extxyz, mlearn JSON, or anything ASE reads")
    p.add_argument("--element", help="the element (default: the data's only element)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_cmd_evaluate_forces)


def _cmd_evaluate_forces(args: argparse.Namespace) -> int:
    from mlptl.data.readers import read_frames
    from mlptl.evaluate.forces import force_errors

    frames = read_frames(args.data)
    elements = sorted({s for a in frames for s in a.get_chemical_symbols()})
    element = args.element or elements[0]
    if element not in elements:
        raise InputError(f"the data holds {elements}, not {element}", path=args.data)
    result = force_errors(args.model, frames, element=element, prefix="test")
    if args.json:
        _print_json(result)
    else:
        for k, v in result.items():
            print(f"{k:<40} {v:.6g}")
    return 0


# ---------------------------------------------------------------- studies
def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default="mlptl-store", help="the study store directory (default: ./mlptl-store)")
    p.add_argument("--tracking-uri", help="an MLflow tracking URI (default: sqlite in the storage dir)")


def _uri(args: argparse.Namespace) -> str:
    from pathlib import Path

    from mlptl.tracking import resolve_tracking_uri

    return resolve_tracking_uri(Path(args.storage).resolve(), args.tracking_uri)


def _cmd_run(args: argparse.Namespace) -> int:
    from mlptl.study.load import _summary, apply_overrides, load_study
    from mlptl.study.runner import run_study

    study = apply_overrides(load_study(args.study_file), args)
    _summary(run_study(study, resume=args.resume))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlptl.report import build_report

    out = Path(args.out) if args.out else Path(args.storage) / "reports" / args.study
    path = build_report(_uri(args), args.study, out)
    print(path / "report.md")
    return 0


def _cmd_studies(args: argparse.Namespace) -> int:
    from mlptl import tracking as T

    c = T.client(_uri(args))
    rows = []
    for exp in c.search_experiments():
        parents = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'", max_results=1)
        if not parents:
            continue
        trials = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=100000)
        states: dict[str, int] = {}
        for r in trials:
            st = r.data.tags.get(T.TAG_STATUS, "?")
            states[st] = states.get(st, 0) + 1
        rows.append({"study": exp.name, "state": parents[0].data.tags.get(T.TAG_STATUS, "?"), "trials": states})
    if args.json:
        _print_json(rows)
    else:
        for r in rows:
            print(f"{r['study']:<30} {r['state']:<10} " + ", ".join(f"{k} {v}" for k, v in sorted(r["trials"].items())))
        if not rows:
            print("no studies in this store")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    import os
    import subprocess

    uri = _uri(args)
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", args.host, "--port", str(args.port)]
    log.info("MLflow UI on http://%s:%s over %s", args.host, args.port, uri)
    # The UI needs no background job runner (it would add seven processes to every `mlptl ui`).
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **os.environ}
    return subprocess.call(cmd, env=env)


def _add_study_commands(sub: argparse._SubParsersAction) -> None:
    from mlptl.study.load import add_override_arguments

    p = sub.add_parser("run", help="run a study defined in a Python file (studies/*.py)")
    p.add_argument("study_file")
    add_override_arguments(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="rebuild a study's report from the tracking store")
    p.add_argument("study", help="the study name")
    p.add_argument("--out", help="output directory (default: STORAGE/reports/STUDY)")
    _store_args(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("studies", help="the studies in a store and their state")
    p.add_argument("--json", action="store_true")
    _store_args(p)
    p.set_defaults(func=_cmd_studies)

    p = sub.add_parser("ui", help="the MLflow UI over a study store (binds 127.0.0.1 unless told otherwise)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    _store_args(p)
    p.set_defaults(func=_cmd_ui)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlptl", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_train_commands(sub)
    _add_evaluate_commands(sub)
    _add_study_commands(sub)
    return p


def run_with_errors(func, args: argparse.Namespace) -> int:
    """Logging set up, then ``func(args)``; bad input becomes one line on stderr and exit code 2."""
    logging.basicConfig(
        level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(func(args) or 0)
    except InputError as e:
        print(f"mlptl: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlptl: interrupted; finish with --resume", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_with_errors(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
