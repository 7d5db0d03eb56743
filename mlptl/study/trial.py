"""The Ray Tune trainable: one trial of a study, from a :class:`~mlptl.study.job.TrialJob` to MLflow records.

A job is everything a worker needs (paths, hyperparameters, where to log), so the function runs the same
on the driver's machine or on any node of a cluster. It wraps :func:`mlptl.train.train`
(which knows nothing of Ray or MLflow), reports each epoch to Ray Tune (whose scheduler may stop it) and
to MLflow, checkpoints through Ray so that a trial lost with its node continues elsewhere, and records
failures (NaN loss, unreadable input) as failed trials with their reason instead of failing the study.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.study.job import TrialJob

log = logging.getLogger(__name__)

__all__ = ["run_trial", "EXPECTED_FAILURES"]


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
    c.set_tag(run_id, T.TAG_ATTEMPTS, str(int(tags.get(T.TAG_ATTEMPTS, "0")) + 1))
    c.set_tag(run_id, T.TAG_NODE, node)
    c.set_tag(run_id, T.TAG_NODES, ",".join(filter(None, [tags.get(T.TAG_NODES), node])))


def _reuse_search_trial(job: TrialJob, run_dir: Path) -> bool:
    """A final replicate identical to a finished search trial (same config, subset, seed) takes its
    training: the run directory is copied, and training resumes at its last epoch, i.e. does nothing."""
    src = Path(job.reuse_run_dir) if job.reuse_run_dir else None
    if src is None or not (src / "checkpoints" / "last.ckpt").is_file() or (run_dir / "checkpoints").exists():
        return False
    shutil.copytree(src, run_dir, dirs_exist_ok=True)
    log.info("trial %s repeats search trial %s: reusing its training", job.trial_key, src.name)
    return True


def _report_recorded(job: TrialJob, run) -> None:
    """A trial whose MLflow run finished before the driver heard of it (the driver was killed between the
    two): Ray Tune and Optuna get the recorded result, and the run is left exactly as it finished."""
    from ray import tune

    log.info("trial %s finished before the driver was stopped: its recorded result is reported", job.trial_key)
    epochs = int(run.data.tags.get(T.TAG_EPOCHS_RUN, run.data.metrics.get(M.EPOCH, 0)))
    tune.report({**run.data.metrics, "final": 1, "mlptl_status": "finished", M.EPOCH: epochs,
                 "trial_key": job.trial_key, "recorded": 1})


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable."""
    import tempfile
    import time

    import torch
    from ray import tune

    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.train import train

    cpu0 = time.process_time()  # this process's CPU time, all its threads: the trial's share of the machine
    job = TrialJob.from_dict(config["job"])
    c = T.client(job.tracking_uri)
    done = T.find_run(c, job.experiment_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: job.trial_key})
    if done is not None and done.data.tags.get(T.TAG_STATUS) == "finished":
        _report_recorded(job, done)
        return
    from mlptl.data.references import register_shipped

    register_shipped(job.references)
    torch.set_num_threads(max(1, int(job.cpus)))
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    tags = {
        T.TAG_ROLE: "trial",
        T.TAG_STUDY: job.study,
        T.TAG_TRIAL_KEY: job.trial_key,
        T.TAG_CELL: job.cell,
        T.TAG_PHASE: job.phase,
        T.TAG_INIT: job.init,
        T.TAG_TRAIN_SIZE: str(job.train_size),
        T.TAG_REPLICATE: str(job.replicate),
        T.TAG_PARENT: job.parent_run_id,
        T.TAG_STATUS: "running",
    }
    if job.init == "transfer":
        tags[T.TAG_SOURCE] = job.source_element
    if job.warm_start_from:
        tags[T.TAG_WARM_START] = job.warm_start_from
    run_id, reused = T.find_or_create_run(c, job.experiment_id, name=job.trial_key, tags=tags)
    c.set_tag(run_id, T.TAG_STATUS, "running")
    _tag_attempt(c, run_id)
    T.log_params(c, run_id, job.mlflow_params())
    if _reuse_search_trial(job, run_dir):
        c.set_tag(run_id, T.TAG_REUSED_FROM, Path(job.reuse_run_dir).name)
    _restore_ray_checkpoint(run_dir)
    # A restarted trial may retrain epochs that its lost attempt already logged: the attempt can die between
    # logging epoch k and Ray persisting epoch k's checkpoint, and a resumed driver may restore a checkpoint
    # older than the worker's last report. MLflow cannot replace a metric point, so an epoch is logged once.
    logged = T.logged_steps(c, run_id, M.OBJECTIVE) if reused else set()

    def on_epoch(report) -> bool:
        if report.epoch not in logged:
            T.log_metrics(c, run_id, report.metrics, step=report.epoch)
            logged.add(report.epoch)
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
        metrics.update(evaluate_test_set(result.model_path, result.test_path, element=job.element, out=run_dir))
        if job.search_md:
            from mlptl.evaluate.full import md_check

            metrics.update(md_check(result.model_path, job.element, reference=job.reference, **job.search_md))
        if job.phase == "final" and job.evaluation:
            from mlptl.evaluate.full import evaluate_model

            metrics.update(
                evaluate_model(
                    result.model_path, job.element, job.evaluation, run_dir / "evaluation", reference=job.reference
                )
            )
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
    metrics[M.CPU_TIME] = time.process_time() - cpu0
    T.log_metrics(c, run_id, metrics)
    c.log_artifact(run_id, str(result.model_path), T.MODEL_ARTIFACT_DIR)
    for name in ("metrics.json", "history.csv"):
        if (run_dir / name).exists():
            c.log_artifact(run_id, str(run_dir / name))
    if (run_dir / "evaluation").is_dir():
        c.log_artifacts(run_id, str(run_dir / "evaluation"), "evaluation")
    c.set_tag(run_id, T.TAG_EPOCHS_RUN, str(result.epochs_run))
    T.set_status(c, run_id, "finished")
    final = {**result.history[-1], **{k: v for k, v in metrics.items() if isinstance(v, int | float)}}
    tune.report({**final, "final": 1, "mlptl_status": "finished", M.EPOCH: result.epochs_run, "trial_key": job.trial_key})
