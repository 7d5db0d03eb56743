"""`mlptl train`: one model, from scratch or by transfer."""

from __future__ import annotations

import argparse
import logging

from mlptl.cli._common import print_json

log = logging.getLogger("mlptl")


def _groups(text: str | None) -> tuple[str, ...] | None:
    return tuple(g.strip() for g in text.split(",") if g.strip()) if text else None


def _cmd_train(args: argparse.Namespace) -> int:
    from mlptl.evaluate.forces import evaluate_test_set
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
        compile=args.compile,
    )
    result = train(spec, resume=not args.restart, progress=args.progress)
    test = evaluate_test_set(result.model_path, result.test_path, element=spec.element, out=result.out)
    print_json({"model": str(result.model_path), "epochs": result.epochs_run, **test, **result.metrics})
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--compile", action="store_true",
                   help="train through torch.compile: ~3x faster epochs on CPU after a 20-150 s first epoch")
    p.add_argument("--progress", action="store_true", help="show Lightning's progress bar")
    p.set_defaults(func=_cmd_train)

