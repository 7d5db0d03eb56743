"""`mlptl data ...`: generate, inspect data sets."""

from __future__ import annotations

import argparse
import logging

from mlptl.cli._common import print_json

log = logging.getLogger("mlptl")

def _generate_cmd(args: argparse.Namespace) -> int:
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
        spec = preset(args.preset, args.element, **overrides)
    else:
        spec = GenerationSpec(element=args.element, **overrides)
    return _deliver(generate(spec, args.cache_dir, progress=not args.no_progress), args)


def _deliver(path, args: argparse.Namespace) -> int:
    """A cached data set, copied to ``--out`` if given; its path printed."""
    if args.out:
        from pathlib import Path

        from mlptl.fsutil import atomic_copy

        path = atomic_copy(path, Path(args.out))
    print(path)
    return 0


def _mixture_cmd(args: argparse.Namespace) -> int:
    """Alloys and compounds: the same MD sampling over compositions (a MixtureSpec), cached by its hash."""
    from mlptl.data.generate import parse_temperatures
    from mlptl.data.mixtures import MixtureSpec, generate_mixture

    def items(text: str | None) -> tuple[str, ...]:
        return tuple(x.strip() for x in (text or "").split(",") if x.strip())

    given = {
        "temperatures": None if args.temperatures is None else parse_temperatures(args.temperatures),
        "frames_per_condition": args.frames, "supercell": args.supercell, "lattice": args.lattice,
        "equilibration_steps": args.equilibration, "interval_steps": args.interval, "seed": args.seed,
    }
    spec = MixtureSpec(reference=args.reference, compositions=items(args.compositions), compounds=items(args.compounds),
                       **{k: v for k, v in given.items() if v is not None})
    return _deliver(generate_mixture(spec, args.cache_dir, progress=not args.no_progress), args)


def _info_cmd(args: argparse.Namespace) -> int:
    from mlptl.data.readers import data_hash, read_frames, summarize

    summary = {"file": str(args.file), **summarize(read_frames(args.file))}
    summary["sha256"] = data_hash(args.file)
    if args.json:
        print_json(summary)
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



def _sampling_arguments(p: argparse.ArgumentParser, frames_help: str) -> None:
    """The MD sampling and output flags `generate` and `mixture` share."""
    p.add_argument("--temperatures", default=None, help="comma-separated temperatures in K, e.g. 300,900")
    p.add_argument("--frames", type=int, default=None, help=frames_help)
    p.add_argument("--supercell", type=int, default=None, help="repeats of the cubic cell (2 = 64 atoms of diamond)")
    p.add_argument("--equilibration", type=int, default=None, help="MD steps before the first frame")
    p.add_argument("--interval", type=int, default=None, help="MD steps between frames")
    p.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: $MLPTL_CACHE or ~/.cache/mlptl/data)")
    p.add_argument("--out", default=None, help="copy the data set here (extxyz); prints the path")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_commands(sub: argparse._SubParsersAction) -> None:
    # Handlers import lazily: `mlptl --help` should not pay for importing ase and matscipy.
    data = sub.add_parser("data", help="generate, inspect and split data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True)

    g = data_sub.add_parser(
        "generate",
        help="MD-sampled frames labelled by a reference potential (cached by spec hash)",
        description="Sample frames from Langevin NVT MD of the reference crystal, one trajectory per "
        "temperature. Flags given with --preset override single fields of the preset.",
    )
    g.add_argument("--element", required=True, help="chemical symbol with a registered reference, e.g. Ge")
    g.add_argument("--reference", default=None, help="reference potential name, or 'package.module:factory' (default: the element's only one)")
    g.add_argument("--preset", default=None, help="start from a named spec: tiny, paper")
    _sampling_arguments(g, "frames per temperature")
    g.add_argument("--timestep", type=float, default=None, help="MD time step in fs")
    g.add_argument("--friction", type=float, default=None, help="Langevin friction in 1/fs")
    g.add_argument("--strain", type=float, default=None, help="isotropic strain of the lattice constant")
    g.set_defaults(func=_generate_cmd)

    m = data_sub.add_parser(
        "mixture",
        help="MD-sampled frames of alloys and compounds, labelled by a reference of their elements (cached)",
        description="Sample frames of random substitutional alloys at given compositions and of a reference's "
        "ordered compounds, one trajectory per structure and temperature (mlptl.data.mixtures.MixtureSpec).",
    )
    m.add_argument("--reference", required=True, help="a reference covering every element: emt, tersoff, erhart-albe")
    m.add_argument("--compositions", default=None, help="comma-separated random alloys, e.g. Cu0.5Ni0.5,Cu3Ni,Ni")
    m.add_argument("--compounds", default=None, help="comma-separated ordered compounds of the reference, e.g. Cu3Au")
    _sampling_arguments(m, "frames per structure and temperature")
    m.add_argument("--lattice", default=None, help="the alloys' parent lattice (default: the elements' shared one)")
    m.set_defaults(func=_mixture_cmd)

    i = data_sub.add_parser("info", help="summarise a data file (extxyz, mlearn JSON, ...)")
    i.add_argument("file", help="data file")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    i.set_defaults(func=_info_cmd)

