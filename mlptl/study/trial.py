"""The Ray Tune trainable: one trial of a study, from a plain job dict to MLflow records.

A :class:`TrialJob` is everything a worker needs (paths, hyperparameters, where to log), so the function
runs the same on the driver's machine or on any node of a cluster. It wraps :func:`mlptl.train.train`
(which knows nothing of Ray or MLflow), reports each epoch to Ray Tune (whose scheduler may stop it) and
to MLflow, checkpoints through Ray so that a trial lost with its node continues elsewhere, and records
failures (NaN loss, unreadable input) as failed trials with their reason instead of failing the study.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlptl import metrics as M
from mlptl import tracking as T

log = logging.getLogger(__name__)

__all__ = ["TrialJob", "run_trial", "EXPECTED_FAILURES"]


@dataclass(frozen=True)
class TrialJob:
    study: str
    trial_key: str
    cell: str
    phase: str  # "search" | "final"
    element: str
    init: str
    train_size: int
    params: dict[str, Any]
    seed: int
    run_dir: str
    data: str
    test_data: str | None
    pretrained: str | None
    max_epochs: int
    val_size: int
    test_size: int
    split_seed: int
    model: Any
    train_groups: tuple[str, ...] | None
    test_groups: tuple[str, ...] | None
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    cpus: float = 1.0
    evaluation: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def train_spec(self):
        from mlptl.train import TrainSpec

        p = self.params
        return TrainSpec(
            element=self.element,
            data=self.data,
            out=self.run_dir,
            init=self.init,
            pretrained=self.pretrained if self.init == "transfer" else None,
            freeze_depth=int(p.get("freeze_depth", 0)) if self.init == "transfer" else 0,
            lr=float(p["lr"]),
            lr_schedule=p.get("lr_schedule", "plateau"),
            batch_size=int(p.get("batch_size", 4)),
            max_epochs=self.max_epochs,
            train_size=self.train_size,
            val_size=self.val_size,
            test_size=self.test_size,
            test_data=self.test_data,
            train_groups=tuple(self.train_groups) if self.train_groups else None,
            test_groups=tuple(self.test_groups) if self.test_groups else None,
            seed=self.seed,
            split_seed=self.split_seed,
            model=self.model,
        )


def _expected_failures():
    from mlptl.errors import InputError
    from mlptl.train import TrainingDiverged

    return (TrainingDiverged, InputError, FloatingPointError)


EXPECTED_FAILURES = "TrainingDiverged, InputError, FloatingPointError"


def _restore_ray_checkpoint(run_dir: Path) -> None:
    """A trial restarted by Ray (its node died) gets its last epoch's checkpoint back."""
    from ray import tune

    ckpt = tune.get_checkpoint()
    if ckpt is None:
        return
    with ckpt.as_directory() as d:
        dest = run_dir / "checkpoints"
        dest.mkdir(parents=True, exist_ok=True)
        for name in os.listdir(d):
            src = Path(d) / name
            target = run_dir / name if name == "history.csv" else dest / name
            shutil.copy2(src, target)
    log.info("restored Ray checkpoint into %s", run_dir)


def _tag_attempt(c, run_id: str) -> None:
    """Where each attempt of a trial ran: a trial retried after a node failure shows both nodes."""
    import socket

    import ray

    node = f"{ray.util.get_node_ip_address()}/{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    tags = c.get_run(run_id).data.tags
    c.set_tag(run_id, "mlptl.attempts", str(int(tags.get("mlptl.attempts", "0")) + 1))
    c.set_tag(run_id, "mlptl.node", node)
    c.set_tag(run_id, "mlptl.nodes", ",".join(filter(None, [tags.get("mlptl.nodes"), node])))


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable."""
    import tempfile

    import torch
    from ray import tune

    from mlptl.train import train

    job = TrialJob(**config["job"])
    torch.set_num_threads(max(1, int(job.cpus)))
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    c = T.client(job.tracking_uri)
    tags = {
        T.TAG_ROLE: "trial",
        T.TAG_STUDY: job.study,
        T.TAG_TRIAL_KEY: job.trial_key,
        T.TAG_CELL: job.cell,
        T.TAG_PHASE: job.phase,
        T.TAG_PARENT: job.parent_run_id,
        T.TAG_STATUS: "running",
    }
    run_id, reused = T.find_or_create_run(c, job.experiment_id, name=job.trial_key, tags=tags)
    c.set_tag(run_id, T.TAG_STATUS, "running")
    _tag_attempt(c, run_id)
    T.log_params(
        c,
        run_id,
        {
            "cell": job.cell,
            "init": job.init,
            "train_size": job.train_size,
            "seed": job.seed,
            "phase": job.phase,
            "max_epochs": job.max_epochs,
            "model": job.model if isinstance(job.model, str) else "custom",
            "lr": job.params["lr"],
            "freeze_depth": job.params.get("freeze_depth", 0) if job.init == "transfer" else 0,
            "lr_schedule": job.params.get("lr_schedule", "plateau"),
            "batch_size": job.params.get("batch_size", 4),
            "element": job.element,
        },
    )
    _restore_ray_checkpoint(run_dir)

    def on_epoch(report) -> bool:
        T.log_metrics(c, run_id, report.metrics, step=report.epoch)
        ckpt_dir = run_dir / "checkpoints"
        checkpoint = None
        if (ckpt_dir / "last.ckpt").exists():
            stage = Path(tempfile.mkdtemp(prefix="mlptl-ckpt-"))
            for name in ("last.ckpt", "best.ckpt"):  # best.ckpt: packaging reads it on whatever node ends the trial
                if (ckpt_dir / name).exists():
                    shutil.copy2(ckpt_dir / name, stage / name)
            if (run_dir / "history.csv").exists():
                shutil.copy2(run_dir / "history.csv", stage / "history.csv")
            checkpoint = tune.Checkpoint.from_directory(str(stage))
        tune.report({**report.metrics, "trial_key": job.trial_key}, checkpoint=checkpoint)
        return False

    try:
        result = train(job.train_spec(), on_epoch=on_epoch, resume=True)
        metrics = dict(result.metrics)
        if job.phase == "final" and job.evaluation:
            from mlptl.evaluate.full import evaluate_model

            metrics.update(evaluate_model(result.model_path, job.element, job.evaluation, run_dir / "evaluation"))
    except _expected_failures() as e:
        reason = f"{type(e).__name__}: {e}"
        log.warning("trial %s failed: %s", job.trial_key, reason)
        T.set_status(c, run_id, "failed", reason=reason)
        tune.report(
            {"mlptl_status": "failed", "reason": reason, "final": 1, M.VAL_FORCES_MAE: float("nan"), "trial_key": job.trial_key}
        )
        return
    except Exception as e:
        T.set_status(c, run_id, "failed", reason=f"{type(e).__name__}: {e}")
        raise
    T.log_metrics(c, run_id, metrics)
    c.log_artifact(run_id, str(result.model_path), T.MODEL_ARTIFACT_DIR)
    for name in ("metrics.json", "history.csv"):
        if (run_dir / name).exists():
            c.log_artifact(run_id, str(run_dir / name))
    if (run_dir / "evaluation").is_dir():
        c.log_artifacts(run_id, str(run_dir / "evaluation"), "evaluation")
    c.set_tag(run_id, "mlptl.epochs_run", str(result.epochs_run))
    T.set_status(c, run_id, "finished")
    final = {**result.history[-1], **{k: v for k, v in metrics.items() if isinstance(v, int | float)}}
    tune.report({**final, "final": 1, "mlptl_status": "finished", M.EPOCH: result.epochs_run, "trial_key": job.trial_key})
