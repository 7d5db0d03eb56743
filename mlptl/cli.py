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
    pass


# ---------------------------------------------------------------- studies
def _add_study_commands(sub: argparse._SubParsersAction) -> None:
    pass


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlptl", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)
    _add_data_commands(sub)
    _add_train_commands(sub)
    _add_evaluate_commands(sub)
    _add_study_commands(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        rc = args.func(args)
    except InputError as e:
        print(f"mlptl: error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
