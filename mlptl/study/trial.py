"""The Ray Tune trainable: one trial of a study, from a :class:`~mlptl.study.job.TrialJob` to MLflow records.

A job is everything a worker needs (the training spec, the evaluation, where to log), so the function
runs the same on the driver's machine or on any node of a cluster. It wraps :func:`mlptl.train.train`
(which knows nothing of Ray or MLflow), reports each epoch to Ray Tune (whose scheduler may stop it) and
to MLflow, checkpoints through Ray so that a trial lost with its node continues elsewhere, and records
failures (NaN loss, unreadable input) as failed trials with their reason instead of failing the study.

A trial with a time limit (``Resources.trial_timeout_s``) runs in a worker thread that Ray Tune's thread
waits on. Past the limit the trial is recorded as failed in MLflow ("time limit of N s exceeded") and
:class:`TrialTimeLimit` is raised in Ray Tune's thread: Ray then stops the trial's actor, which ends the
hung code with its process (Python cannot stop a thread), and never hands that actor to another trial.
Ray retries an errored trial (``max_failures``); the retry finds the recorded time-limit failure and
reports the trial as failed at once, so the searcher, the progress and Optuna see a failed trial (FAIL)
and nothing runs into the same hang again, on this run or on ``--resume``.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Any

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.fsutil import no_space
from mlptl.study.checkpoints import restore_ray_checkpoint, reuse_search_trial, staged_checkpoint
from mlptl.study.job import TrialJob
from mlptl.study.trial_runs import (
    finished_run,
    open_run,
    record_finished,
    record_time_limit,
    study_interrupted,
    timed_out_run,
)

log = logging.getLogger(__name__)

__all__ = ["run_trial", "TrialTimeLimit", "EXPECTED_FAILURES", "RESULT_FINAL", "RESULT_STATUS", "RESULT_KEY",
           "RESULT_REASON", "RESULT_STOPPED"]

# The keys of a trial's Ray Tune results besides the metrics of mlptl.metrics; the searcher, the pruning
# scheduler and the driver read them.
RESULT_FINAL = "final"  # 1 on a trial's last report
RESULT_STATUS = "mlptl_status"  # "finished", "failed" or RESULT_STOPPED
# Stopped by its surroundings, not by a fault of its own (a full disk, a tracking server gone past its bound):
# the study stops as interrupted and ``--resume`` continues the trial from its last epoch.
RESULT_STOPPED = "stopped"
RESULT_KEY = "trial_key"
RESULT_REASON = "reason"  # why a trial failed
RESULT_RECORDED = "recorded"  # 1: read back from MLflow, not trained by this attempt

EXPECTED_FAILURES = "TrainingDiverged, InputError, FloatingPointError"


def _expected_failures():
    from mlptl.errors import InputError
    from mlptl.train import TrainingDiverged

    return (TrainingDiverged, InputError, FloatingPointError)


class TrialTimeLimit(Exception):
    """A trial ran past ``Resources.trial_timeout_s``; it is recorded as failed in MLflow already."""


class _Limit:
    """What the trial's worker thread and the thread that watches its time limit share.

    The worker does each write that completes or reports the trial (an epoch's report, the failed or the
    finished record) inside :meth:`section`: once the limit has expired it does none of them, and the
    watcher never records the time limit in the middle of one.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.expired = False
        self.done = False  # the trial's outcome is recorded and reported

    @contextmanager
    def section(self, *, completes: bool = False):
        with self.lock:
            if self.expired:
                raise TrialTimeLimit("the trial was stopped at its time limit")
            yield
            if completes:
                self.done = True


def run_trial(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: train, evaluate, record; an expected failure is a failed trial."""
    import time

    cpu0 = time.process_time()  # this process's CPU time, all its threads: the trial's share of the machine
    t0 = time.monotonic()
    job = TrialJob.from_dict(config["job"])
    c = T.client(job.tracking_uri)
    try:
        done = finished_run(c, job)
        over = timed_out_run(c, job) if done is None else None
    except T.TrackingUnavailable as e:  # a trial started while the server is down: stopped, not failed
        return _stopped(job, None, None, None, str(e))
    if done is not None:
        return _report_recorded(job, done)
    if over is not None:
        return _report_failed(job, over.data.tags.get(T.TAG_REASON, "time limit exceeded"))
    limit = _Limit()
    if job.time_limit_s is None:
        return _attempt(job, c, limit, t0, cpu0)
    outcome: list[BaseException] = []

    def work() -> None:
        try:
            _attempt(job, c, limit, t0, cpu0)
        except BaseException as e:  # SystemExit included: Ray's way of stopping a trial at its report
            outcome.append(e)

    worker = threading.Thread(target=work, name=f"mlptl-trial-{job.trial_key}", daemon=True)
    worker.start()
    worker.join(max(0.0, job.time_limit_s - (time.monotonic() - t0)))
    if worker.is_alive():
        with limit.lock:  # waits for a write in progress (an epoch's report) to end
            worker.join(0.2)
            limit.expired = worker.is_alive() and not limit.done
        if limit.expired:
            reason = record_time_limit(T.client(job.tracking_uri), job, job.time_limit_s)
            log.warning("trial %s failed: %s", job.trial_key, reason)
            # Ray stops the errored trial's actor, and with it the hung thread; its retry reports the failure.
            raise TrialTimeLimit(f"trial {job.trial_key}: {reason}")
        worker.join()  # it recorded its outcome in time and is reporting it
    if outcome:
        raise outcome[0]


def _attempt(job: TrialJob, c, limit: _Limit, t0: float, cpu0: float) -> None:
    """One attempt at the trial: train, evaluate, record, report."""
    import time

    import torch

    from mlptl.data.systems import register_shipped

    register_shipped(job.references)
    torch.set_num_threads(max(1, int(job.cpus)))
    job.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        # Asked before the run is opened too: an attempt that starts after the driver marked the study opens
        # no run, which the driver's exit could then kill before it is recorded (CI stress, 2026-12-07)
        if study_interrupted(c, job):
            return _stopped(job, None, None, limit, "the study was interrupted before this trial started")
        run_id, reused = open_run(c, job)
        stopping = study_interrupted(c, job)
    except T.TrackingUnavailable as e:
        return _stopped(job, None, None, limit, str(e))
    if stopping:  # the driver stopped the study while this attempt started (a signal): nothing to train
        return _stopped(job, c, run_id, limit, "the study was interrupted as this trial started")
    try:
        if reuse_search_trial(job.reuse_run_dir, job.run_dir):
            c.set_tag(run_id, T.TAG_REUSED_FROM, job.reuse_run_dir.rstrip("/").rsplit("/", 1)[-1])
        restore_ray_checkpoint(job.run_dir)
        timing = {M.TIME_STARTUP: time.monotonic() - t0}
        on_epoch = _epoch_reporter(job, c, run_id, reused, limit)
        result, metrics = _train_and_evaluate(job, on_epoch, timing)
        if reused:
            # Epochs an earlier attempt trained and kept (its checkpoint) but could not log, e.g. a tracking
            # outage stopped it right there: training went on after them, so they are logged now, once.
            with limit.section():
                for row in result.history:
                    if int(row[M.EPOCH]) not in on_epoch.logged:
                        T.log_metrics(c, run_id, row, step=int(row[M.EPOCH]))
    except TrialTimeLimit:
        raise
    except T.TrackingUnavailable as e:  # nothing can be recorded in MLflow; the resume reconciles the run
        return _stopped(job, None, run_id, limit, str(e))
    except Exception as e:
        full = no_space(e)
        if full is not None:
            return _stopped(job, c, run_id, limit, _disk_full(job, full))
        reason = f"{type(e).__name__}: {e}"
        if not isinstance(e, _expected_failures()):
            with limit.section(completes=True):
                T.set_status(c, run_id, "failed", reason=reason)
            raise
        with limit.section(completes=True):
            log.warning("trial %s failed: %s", job.trial_key, reason)
            T.set_status(c, run_id, "failed", reason=reason)
            _report_failed(job, reason)
        return
    with limit.section(completes=True):
        metrics[M.CPU_TIME] = time.process_time() - cpu0
        t_record = time.monotonic()
        try:
            record_finished(c, run_id, result, {**metrics, **timing}, job.run_dir / "evaluation")
            timing[M.TIME_RECORD] = time.monotonic() - t_record
            T.log_metrics(c, run_id, {M.TIME_RECORD: timing[M.TIME_RECORD]})
        except T.TrackingUnavailable as e:  # the resume records the trained trial again (its checkpoint is kept)
            return _stopped(job, None, run_id, None, str(e))  # inside this section already
        except Exception as e:
            full = no_space(e)
            if full is None:
                raise
            return _stopped(job, c, run_id, None, _disk_full(job, full))  # inside this section already
        metrics.update(timing)
        final = {**result.history[-1], **{k: v for k, v in metrics.items() if isinstance(v, int | float)}}
        from ray import tune

        tune.report({**final, RESULT_FINAL: 1, RESULT_STATUS: "finished", M.EPOCH: result.epochs_run,
                     RESULT_KEY: job.trial_key})


def _disk_full(job: TrialJob, why: str) -> str:
    return f"the disk under {job.run_dir.parent} is full ({why}): free space there"


def _stopped(job: TrialJob, c, run_id: str | None, limit: _Limit | None, reason: str) -> None:
    """A trial stopped by its surroundings (:data:`RESULT_STOPPED`): recorded as interrupted, not failed,
    where MLflow can be reached (``c``), and reported as such, so that the driver stops the study and
    ``--resume`` continues the trial from its last checkpoint (every file it wrote is whole: :mod:`mlptl.fsutil`)."""
    from contextlib import nullcontext

    from ray import tune

    with limit.section(completes=True) if limit is not None else nullcontext():
        log.warning("trial %s stopped: %s", job.trial_key, reason)
        if c is not None:
            try:
                T.set_status(c, run_id, "interrupted", reason=reason)
            except Exception:  # the tracking store may be on the same full disk; the resume reconciles the run
                log.exception("recording trial %s as interrupted failed", job.trial_key)
        tune.report({RESULT_STATUS: RESULT_STOPPED, RESULT_REASON: reason, RESULT_FINAL: 1,
                     M.VAL_FORCES_MAE: float("nan"), RESULT_KEY: job.trial_key})


def _report_failed(job: TrialJob, reason: str) -> None:
    """The trial's last report: failed, with its reason (the searcher tells Optuna FAIL)."""
    from ray import tune

    tune.report({RESULT_STATUS: "failed", RESULT_REASON: reason, RESULT_FINAL: 1,
                 M.VAL_FORCES_MAE: float("nan"), RESULT_KEY: job.trial_key})


def _epoch_reporter(job: TrialJob, c, run_id: str, reused: bool, limit: _Limit):
    """The per-epoch callback: the epoch's metrics to MLflow (once) and to Ray Tune with its checkpoint.

    A restarted trial may retrain epochs that its lost attempt already logged: the attempt can die between
    logging epoch k and Ray persisting epoch k's checkpoint, and a resumed driver may restore a checkpoint
    older than the worker's last report. MLflow cannot replace a metric point, so an epoch is logged once.
    """
    from ray import tune

    logged = T.logged_steps(c, run_id, M.OBJECTIVE) if reused else set()

    def on_epoch(report) -> bool:
        with limit.section():
            if report.epoch not in logged:
                T.log_metrics(c, run_id, report.metrics, step=report.epoch)
                logged.add(report.epoch)
            with staged_checkpoint(job.run_dir) as checkpoint:
                tune.report({**report.metrics, RESULT_KEY: job.trial_key}, checkpoint=checkpoint)
        return False

    on_epoch.logged = logged  # what is in MLflow now: the attempt logs what training kept but this never saw
    return on_epoch


def _train_and_evaluate(job: TrialJob, on_epoch, timing: dict[str, float]):
    """The training run, its test-set errors, and the search's MD check or the final evaluation; their
    wall times go to ``timing``."""
    import time

    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.train import train

    t0 = time.monotonic()
    result = train(job.train, on_epoch=on_epoch, resume=True)
    t1 = timing[M.TIME_TRAIN] = time.monotonic() - t0
    element = job.train.element
    metrics = {**result.metrics, **evaluate_test_set(result.model_path, result.test_path, element=element, out=job.run_dir)}
    if job.source_test is not None:  # forgetting: the extended model on the source's own test frames
        from mlptl.evaluate.forces import force_errors

        for model, prefix in ((result.model_path, M.SOURCE_PREFIX), (job.train.pretrained, M.SOURCE_MODEL_PREFIX)):
            metrics.update(force_errors(model, job.source_test, prefix=prefix, by_group=False))
    if job.search_md is not None:
        from mlptl.evaluate.full import md_check

        metrics.update(md_check(result.model_path, element, reference=job.reference, steps=job.search_md.steps,
                                temperature=job.search_md.temperature, cache_dir=job.cache_dir,
                                compositions=job.compositions or None))
    if job.phase == "final" and job.evaluation is not None:
        from mlptl.evaluate.full import evaluate_model

        metrics.update(evaluate_model(
            result.model_path, element, job.run_dir / "evaluation", stability=job.evaluation.stability,
            properties=job.evaluation.properties, reference=job.reference, cache_dir=job.cache_dir,
            compositions=job.compositions or None,
        ))
    timing[M.TIME_EVALUATE] = time.monotonic() - t0 - t1
    return result, metrics


def _report_recorded(job: TrialJob, run) -> None:
    """A trial whose MLflow run finished before the driver heard of it (the driver was killed between the
    two): Ray Tune and Optuna get the recorded result, and the run is left exactly as it finished."""
    from ray import tune

    log.info("trial %s finished before the driver was stopped: its recorded result is reported", job.trial_key)
    epochs = int(run.data.tags.get(T.TAG_EPOCHS_RUN, run.data.metrics.get(M.EPOCH, 0)))
    tune.report({**run.data.metrics, RESULT_FINAL: 1, RESULT_STATUS: "finished", M.EPOCH: epochs,
                 RESULT_KEY: job.trial_key, RESULT_RECORDED: 1})
