"""The per-epoch record of a run: the Lightning callback that collects it, and history.csv.

The callback is where an outside tuner meets nequip's loop: it sees the validation metrics of each epoch,
rejects non-finite ones, saves the epoch's checkpoint and then asks ``on_epoch`` whether to stop.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlptl import metrics as M
from mlptl.fsutil import atomic_write
from mlptl.train.spec import HISTORY_FILE, LAST_CHECKPOINT, EpochReport, TrainingDiverged

log = logging.getLogger(__name__)

__all__ = ["make_epoch_callback", "write_history", "load_history"]


def write_history(out: Path, history: list[dict[str, float]]) -> None:
    """Written every epoch inside the fit: the csv module, not pandas, keeps that cheap."""
    if not history:
        return
    keys = list(dict.fromkeys(k for h in history for k in h))
    with atomic_write(out / HISTORY_FILE) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def load_history(out: Path) -> list[dict[str, float]]:
    p = out / HISTORY_FILE
    if not p.exists():
        return []
    with open(p, newline="") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def make_epoch_callback(
    on_epoch: Callable[[EpochReport], bool | None] | None,
    history: list[dict[str, float]],
    ckpt_dir: Path,
    state: dict[str, Any],
):
    import lightning

    class EpochCallback(lightning.Callback):
        """Collects nequip's validation metrics after each epoch, checks them, asks whether to stop.

        Validation metrics exist in ``on_validation_end`` (not yet in ``on_validation_epoch_end``).
        """

        def on_train_epoch_start(self, trainer, pl_module):
            state["t0"] = time.perf_counter()

        def on_validation_end(self, trainer, pl_module):
            if trainer.sanity_checking:
                return
            m = M.from_nequip({k: float(v) for k, v in trainer.callback_metrics.items()})
            epoch = trainer.current_epoch + 1
            m[M.EPOCH] = epoch
            m[M.EPOCH_TIME] = time.perf_counter() - state.get("t0", time.perf_counter())
            m[M.LEARNING_RATE] = float(trainer.optimizers[0].param_groups[0]["lr"])
            bad = [k for k, v in m.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"non-finite {', '.join(sorted(bad))} after epoch {epoch}")
            history.append(m)

        def on_train_epoch_end(self, trainer, pl_module):
            # Lightning runs its checkpoint callbacks after ours, so last.ckpt would still hold the
            # previous epoch: save it here, then report, so that every reported epoch has its own
            # checkpoint and a stopped or crashed run resumes at the next epoch.
            if not history or history[-1][M.EPOCH] != trainer.current_epoch + 1:
                return
            train_metrics = M.from_nequip({k: float(v) for k, v in trainer.callback_metrics.items()})
            history[-1].update({k: v for k, v in train_metrics.items() if k.startswith("train_")})
            write_history(ckpt_dir.parent, history)
            trainer.save_checkpoint(str(ckpt_dir / LAST_CHECKPOINT))
            if on_epoch is None:
                return
            m = history[-1]
            report = EpochReport(epoch=int(m[M.EPOCH]), metrics=dict(m), checkpoint=ckpt_dir / LAST_CHECKPOINT)
            if on_epoch(report):
                log.info("stop requested after epoch %d", m[M.EPOCH])
                state["stopped"] = True
                trainer.should_stop = True

    return EpochCallback()
