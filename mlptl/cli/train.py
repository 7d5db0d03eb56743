"""`mlptl train`: one model, from scratch or by transfer. Every default, choice and help list comes from
:class:`~mlptl.train.TrainSpec` and the tables beside it."""

from __future__ import annotations

import argparse
import dataclasses
import logging

from mlptl.cli._common import print_json

log = logging.getLogger("mlptl")

# flag destination -> TrainSpec field, where the names differ
_RENAMED = {"model_size": "model"}
_GROUPS = ("train_groups", "test_groups")
_NOT_SPEC = {"restart", "progress", "func", "verbose", "command"}


def _groups(text: str | None) -> tuple[str, ...] | None:
    return tuple(g.strip() for g in text.split(",") if g.strip()) if text else None


def _element_map(text: str | None) -> dict[str, str] | None:
    """``Ge=Si,C=C`` -> {"Ge": "Si", "C": "C"}; TrainSpec checks the elements."""
    if not text:
        return None
    from mlptl.errors import InputError

    pairs = [p.strip() for p in text.split(",") if p.strip()]
    if not all(p.count("=") == 1 for p in pairs):
        raise InputError(f"--element-map takes TARGET=SOURCE pairs separated by commas (e.g. Ge=Si), not {text!r}")
    return dict(tuple(x.strip() for x in p.split("=")) for p in pairs)


def _cmd_train(args: argparse.Namespace) -> int:
    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.train import TrainSpec, train

    values = {_RENAMED.get(k, k): v for k, v in vars(args).items() if k not in _NOT_SPEC}
    values.update({k: _groups(values[k]) for k in _GROUPS})
    values["element_map"] = _element_map(values["element_map"])
    spec = TrainSpec(**values)
    result = train(spec, resume=not args.restart, progress=args.progress)
    test = evaluate_test_set(result.model_path, result.test_path, element=spec.element, out=result.out)
    print_json({"model": str(result.model_path), "epochs": result.epochs_run, **test, **result.metrics})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    from mlptl.model.spec import MODEL_PRESETS, NEW_ELEMENT_INITS
    from mlptl.train.schedules import LR_SCHEDULES
    from mlptl.train.spec import INITS, TrainSpec

    default = {f.name: f.default for f in dataclasses.fields(TrainSpec)}
    p = sub.add_parser(
        "train",
        help="train one Allegro model from scratch or by transfer",
        description="Train one model. Leaves OUT/model.nequip.zip, OUT/metrics.json and OUT/history.csv.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--element", required=True, help="the element(s) the model is for, e.g. Ge or Cu,Ni")
    p.add_argument("--data", required=True, help="frames: extxyz, mlearn JSON, or anything ASE reads")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--init", choices=INITS, default=default["init"])
    p.add_argument("--pretrained", help="source model (*.nequip.zip) for --init transfer")
    p.add_argument("--source-type", help="the source model's type a new element starts from (if it has several)")
    p.add_argument("--element-map", help="target elements that start from another source element, e.g. Ge=Si")
    p.add_argument("--new-element-init", choices=NEW_ELEMENT_INITS, default=default["new_element_init"],
                   help="how an element the source model lacks starts")
    p.add_argument("--freeze-depth", type=int, default=default["freeze_depth"],
                   help="0 none, 1 two-body embedding, 1+i also layers <i")
    p.add_argument("--lr", type=float, default=default["lr"])
    p.add_argument("--lr-schedule", choices=LR_SCHEDULES, default=default["lr_schedule"])
    p.add_argument("--max-epochs", type=int, default=default["max_epochs"])
    p.add_argument("--train-size", type=int, help="training frames (a nested subset); default all")
    p.add_argument("--val-size", type=int, default=default["val_size"])
    p.add_argument("--test-size", type=int, default=default["test_size"],
                   help="test frames split off --data (ignored with --test-data)")
    p.add_argument("--test-data", help="a separate test file")
    p.add_argument("--train-groups", help="comma-separated groups to train on, e.g. T300")
    p.add_argument("--test-groups", help="comma-separated groups to test on, e.g. T900")
    p.add_argument("--batch-size", type=int, default=default["batch_size"])
    p.add_argument("--seed", type=int, default=default["seed"], help="weights and shuffling")
    p.add_argument("--split-seed", type=int, default=default["split_seed"], help="test/validation split and subset order")
    p.add_argument("--model-size", default=default["model"], help=f"model preset: {', '.join(MODEL_PRESETS)}")
    p.add_argument("--restart", action="store_true", help="ignore checkpoints in OUT and start over")
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile: faster epochs after a first epoch that compiles")
    p.add_argument("--progress", action="store_true", help="show Lightning's progress bar")
    p.set_defaults(func=_cmd_train)
