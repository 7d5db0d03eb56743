"""A trial's checkpoints through Ray: staged after each epoch, restored when Ray restarts the trial on
another node, and a finished search trial's run directory taken over by the final replicate it equals."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlptl.fsutil import atomic_copy
from mlptl.train.spec import BEST_CHECKPOINT, CHECKPOINT_DIR, HISTORY_FILE, LAST_CHECKPOINT

log = logging.getLogger(__name__)

# The prefix of a staged checkpoint's directory inside the run directory (tests look for leftovers by it).
STAGE_PREFIX = ".ray-stage-"

__all__ = ["restore_ray_checkpoint", "staged_checkpoint", "reuse_search_trial"]


def restore_ray_checkpoint(run_dir: Path) -> None:
    """A trial restarted by Ray (its node died) gets its last epoch's checkpoint back."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return
    with ckpt.as_directory() as d:
        dest = run_dir / CHECKPOINT_DIR
        dest.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(d):  # atomic: a disk that fills up midway leaves the older files whole
            atomic_copy(Path(d) / name, run_dir / name if name == HISTORY_FILE else dest / name)
    log.info("restored Ray checkpoint into %s", run_dir)


@contextmanager
def staged_checkpoint(run_dir: Path) -> Iterator:
    """This epoch's checkpoint as a Ray ``Checkpoint`` (None before the first) for ``tune.report``: the last
    and the best checkpoint (packaging reads it on whatever node ends the trial) and the history, staged
    in a directory that is removed on leaving (``tune.report`` has copied it to the run's Ray storage by
    then). The stage lies inside the run directory, not in /tmp: a process killed mid-report leaves it
    with its trial, where the next epoch's staging removes it, and the files are hard links, not copies."""
    from ray import tune

    ckpt_dir = run_dir / CHECKPOINT_DIR
    if not (ckpt_dir / LAST_CHECKPOINT).exists():
        yield None
        return
    for old in run_dir.glob(f"{STAGE_PREFIX}*"):  # a stage whose process was killed before removing it
        shutil.rmtree(old, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=run_dir))
    try:
        for src in (ckpt_dir / LAST_CHECKPOINT, ckpt_dir / BEST_CHECKPOINT, run_dir / HISTORY_FILE):
            if src.exists():
                try:
                    os.link(src, stage / src.name)  # nothing writes the files while Ray copies the stage
                except OSError:  # a file system without hard links
                    shutil.copy2(src, stage / src.name)
        yield tune.Checkpoint.from_directory(str(stage))
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def reuse_search_trial(search_run_dir: str | None, run_dir: Path) -> bool:
    """A final replicate identical to a finished search trial (same config, subset, seed) takes its
    training: the run directory is copied, and training resumes at its last epoch, i.e. does nothing."""
    src = Path(search_run_dir) if search_run_dir else None
    if src is None or not (src / CHECKPOINT_DIR / LAST_CHECKPOINT).is_file() or (run_dir / CHECKPOINT_DIR).exists():
        return False
    # Copied beside the run directory and moved in, the checkpoints last: a copy cut short (a full disk)
    # leaves no checkpoint directory, so the next attempt copies again instead of resuming from half a file.
    staging = run_dir.with_name(f".{run_dir.name}.reusing")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(src, staging, ignore=shutil.ignore_patterns(f"{STAGE_PREFIX}*"))
        run_dir.mkdir(parents=True, exist_ok=True)
        for entry in sorted(staging.iterdir(), key=lambda p: p.name == CHECKPOINT_DIR):
            shutil.rmtree(run_dir / entry.name, ignore_errors=True)
            os.replace(entry, run_dir / entry.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("%s repeats search trial %s: reusing its training", run_dir.name, src.name)
    return True
