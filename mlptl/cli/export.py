"""`mlptl export`: a trained model for LAMMPS (pair_style allegro), ASE, or TorchScript."""

from __future__ import annotations

import argparse
import logging

from mlptl.cli._common import add_store_arguments, tracking_uri

log = logging.getLogger("mlptl")


def _cmd_export(args: argparse.Namespace) -> int:
    from mlptl.model.export import export_model
    from mlptl.tracking import resolve_model_uri

    model = resolve_model_uri(args.model, tracking_uri(args))
    out = args.out
    if out is None and args.model.startswith("models:/"):
        # A registry download lives in MLflow's cache; put the export where the user runs the command.
        from pathlib import Path

        from mlptl.model.export import default_export_path

        out = Path.cwd() / default_export_path(model, args.format).name
    exported = export_model(model, out, args.format, device=args.device)
    print(exported)
    from mlptl.model.calculator import model_type_names
    from mlptl.model.export import usage

    for line in usage(exported, args.format, model_type_names(model)):
        print(f"  {line}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from mlptl.model.export import FORMATS

    p = sub.add_parser(
        "export",
        help="compile a trained model for LAMMPS (pair_style allegro), ASE or TorchScript",
        description="Formats: " + "; ".join(f"{k}: {v[1]} (*{' or *'.join(v[0])})" for k, v in FORMATS.items()),
    )
    p.add_argument("model", help="a trained *.nequip.zip or a registry URI models:/NAME/VERSION (or alias)")
    p.add_argument("--format", choices=list(FORMATS), default="lammps")
    p.add_argument("--out", default=None, help="output file (default: beside the model, named for the format)")
    p.add_argument("--device", default="cpu", help="the device the compiled model will run on (cpu, cuda)")
    add_store_arguments(p)
    p.set_defaults(func=_cmd_export)
