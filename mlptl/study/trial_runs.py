"""The MLflow side of one trial: its run found or created (one per trial key, across attempts), where
each attempt ran, and what a finished trial leaves (metrics, the model, artifacts, status)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlptl import tracking as T
from mlptl.study.job import TrialJob
from mlptl.train.spec import HISTORY_FILE, METRICS_FILE, TrainResult

__all__ = ["finished_run", "timed_out_run", "record_time_limit", "time_limit_reason", "open_run", "record_finished",
           "study_interrupted"]


def finished_run(c, job: TrialJob):
    """The trial's run if it finished already (a driver killed before it heard of it), else None."""
    run = T.find_run(c, job.experiment_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: job.trial_key})
    return run if run is not None and run.data.tags.get(T.TAG_STATUS) == "finished" else None


def time_limit_reason(limit_s: float) -> str:
    return f"time limit of {limit_s:g} s exceeded"


def timed_out_run(c, job: TrialJob):
    """The trial's run if an earlier attempt was stopped at its time limit, else None: such a trial is not
    run again (Ray's retry of the stopped attempt, or a resumed driver, would run into the same hang)."""
    run = T.find_run(c, job.experiment_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: job.trial_key})
    tags = run.data.tags if run is not None else {}
    return run if tags.get(T.TAG_STATUS) == "failed" and T.TAG_TIME_LIMIT in tags else None


def record_time_limit(c, job: TrialJob, limit_s: float) -> str:
    """Record the trial as failed at its time limit (its run created if the attempt hung before making it);
    returns the reason."""
    reason = time_limit_reason(limit_s)
    run_id, _ = T.find_or_create_run(c, job.experiment_id, name=job.trial_key, tags=_tags(job))
    c.set_tag(run_id, T.TAG_TIME_LIMIT, f"{limit_s:g}")
    T.set_status(c, run_id, "failed", reason=reason)
    return reason


def _tags(job: TrialJob) -> dict[str, str]:
    t = job.train
    tags = {
        T.TAG_ROLE: "trial",
        T.TAG_STUDY: job.study,
        T.TAG_TRIAL_KEY: job.trial_key,
        T.TAG_CELL: job.cell,
        T.TAG_PHASE: job.phase,
        T.TAG_INIT: t.init,
        T.TAG_TRAIN_SIZE: str(t.train_size),
        T.TAG_REPLICATE: str(job.replicate),
        T.TAG_PARENT: job.parent_run_id,
        T.TAG_STATUS: "running",
    }
    if job.source_element:
        tags[T.TAG_SOURCE] = job.source_element
    if job.warm_start_from:
        tags[T.TAG_WARM_START] = job.warm_start_from
    return tags


def _tag_attempt(c, run_id: str) -> None:
    """Where each attempt of a trial ran: a trial retried after a node failure shows both nodes."""
    import socket

    import ray

    node = f"{ray.util.get_node_ip_address()}/{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:8]}"
    tags = c.get_run(run_id).data.tags
    c.set_tag(run_id, T.TAG_ATTEMPTS, str(int(tags.get(T.TAG_ATTEMPTS, "0")) + 1))
    c.set_tag(run_id, T.TAG_NODE, node)
    c.set_tag(run_id, T.TAG_NODES, ",".join(filter(None, [tags.get(T.TAG_NODES), node])))


def open_run(c, job: TrialJob) -> tuple[str, bool]:
    """The trial's run, marked running for this attempt: (run id, whether an earlier attempt made it)."""
    run_id, reused = T.find_or_create_run(c, job.experiment_id, name=job.trial_key, tags=_tags(job))
    c.set_tag(run_id, T.TAG_STATUS, "running")
    _tag_attempt(c, run_id)
    T.log_params(c, run_id, job.mlflow_params())
    return run_id, reused


def study_interrupted(c, job: TrialJob) -> bool:
    """Whether the driver has marked the study interrupted. Asked before :func:`open_run` (an attempt that
    starts after the mark opens no run) and after it: the driver marks the study first and then every
    trial run tagged running, so an attempt that tagged its run after that sweep finds the study marked
    here and records itself interrupted, and none is left running."""
    return c.get_run(job.parent_run_id).data.tags.get(T.TAG_STATUS) == "interrupted"


def record_finished(c, run_id: str, result: TrainResult, metrics: dict[str, Any], evaluation_dir: Path) -> None:
    """A finished trial's figures, its packaged model and its files, then its status."""
    T.log_metrics(c, run_id, metrics)
    c.log_artifact(run_id, str(result.model_path), T.MODEL_ARTIFACT_DIR)
    for name in (METRICS_FILE, HISTORY_FILE):
        if (result.out / name).exists():
            c.log_artifact(run_id, str(result.out / name))
    if evaluation_dir.is_dir():
        c.log_artifacts(run_id, str(evaluation_dir), "evaluation")
    c.set_tag(run_id, T.TAG_EPOCHS_RUN, str(result.epochs_run))
    if result.element_init:
        c.set_tag(run_id, T.TAG_ELEMENT_INIT, "; ".join(f"{el}: {how}" for el, how in result.element_init.items()))
    T.set_status(c, run_id, "finished")
