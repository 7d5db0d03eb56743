"""The fit: nequip's own Lightning machinery, one checkpoint per epoch, resume, and the packaged model."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlptl import metrics as M
from mlptl.fsutil import atomic_write_text
from mlptl.model import _nequip
from mlptl.train.history import load_history, make_epoch_callback, write_history
from mlptl.train.prepare import prepare
from mlptl.train.spec import (
    CHECKPOINT_DIR,
    LAST_CHECKPOINT,
    METRICS_FILE,
    MODEL_FILE,
    EpochReport,
    TrainingDiverged,
    TrainResult,
    TrainSpec,
)

log = logging.getLogger(__name__)

__all__ = ["train", "package"]


def _resume_point(last: Path) -> int:
    import torch

    return int(torch.load(last, map_location="cpu", weights_only=False)["epoch"]) + 1


def train(
    spec: TrainSpec,
    on_epoch: Callable[[EpochReport], bool | None] | None = None,
    *,
    resume: bool = True,
    progress: bool = False,
) -> TrainResult:
    """Train one model: the packaged best model, the validation history and the prepared test split.

    ``on_epoch`` is called after each epoch's validation; returning True stops the run after that epoch.
    With ``resume`` (the default) a run directory holding ``checkpoints/last.ckpt`` continues from it.
    Test-set errors are not computed here (training never imports the evaluation):
    ``mlptl.evaluate.forces.evaluate_test_set`` does that from ``result.model_path`` and ``result.test_path``.
    """
    import lightning

    p = prepare(spec)
    out = p.out
    ckpt_dir = out / CHECKPOINT_DIR
    history: list[dict[str, float]] = []
    state: dict[str, Any] = {}
    checkpoint = lightning.pytorch.callbacks.ModelCheckpoint(
        # save_last=False: the epoch callback saves last.ckpt itself, before reporting (a second save per
        # epoch cost ~10 % of a tiny model's fit time in bench/train_overhead.py).
        dirpath=str(ckpt_dir),
        filename="best",
        monitor=_nequip.CHECKPOINT_MONITOR,
        mode="min",
        save_last=False,
    )
    trainer = lightning.Trainer(
        max_epochs=spec.max_epochs,
        check_val_every_n_epoch=1,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        enable_progress_bar=progress,
        enable_model_summary=False,
        logger=False,
        accelerator="auto",
        devices=1,
        inference_mode=False,
        callbacks=[make_epoch_callback(on_epoch, history, ckpt_dir, state), checkpoint],
    )
    _nequip.bind_trainer(p.module, trainer)

    last = ckpt_dir / LAST_CHECKPOINT
    ckpt_path = str(last) if (resume and last.exists()) else None
    if ckpt_path:
        done = _resume_point(last)
        log.info("resuming from %s after epoch %d", last, done)
        history.extend(load_history(out)[:done])
    else:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    t0 = time.perf_counter()
    try:
        with _nequip.workflow("train"):
            trainer.fit(p.module, datamodule=p.datamodule, ckpt_path=ckpt_path, weights_only=False)
    finally:
        write_history(out, history)
    if not history:
        raise TrainingDiverged("training produced no epochs")
    wall = time.perf_counter() - t0

    best = Path(checkpoint.best_model_path) if checkpoint.best_model_path else last
    model_path = package(best, out / MODEL_FILE)
    result_metrics = {
        "epochs": float(len(history)),
        "train_time_s": wall,
        "n_train": float(_count(p.paths["train"])),
        "n_frozen_tensors": float(len(p.frozen)),
        "best_" + M.VAL_FORCES_MAE: min(h[M.VAL_FORCES_MAE] for h in history),
    }
    atomic_write_text(out / METRICS_FILE, json.dumps(result_metrics, indent=2))
    return TrainResult(
        out=out,
        model_path=model_path,
        metrics=result_metrics,
        history=history,
        epochs_run=len(history),
        stopped_early=bool(state.get("stopped")),
        test_path=p.paths["test"],
        data_paths=dict(p.paths),
        frozen=p.frozen,
        element_init=dict(p.element_init),
    )


def package(ckpt: Path, dest: Path) -> Path:
    """A self-contained model file (nequip package): it loads without the pretrained model's file."""
    return _nequip.build_package(ckpt, dest)


def _count(path: Path) -> int:
    import ase.io

    return len(ase.io.read(path, ":"))
