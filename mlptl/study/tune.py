"""Ray for a study: connecting, Ray Tune runs with the study's resources, tasks that keep mlptl's errors.

Everything Ray-specific the runner needs is here, so that the runner reads as the list of its phases.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mlptl.errors import InputError
from mlptl.study.spec import Study

log = logging.getLogger(__name__)

__all__ = ["init_ray", "make_tuner", "progress_callback", "run_task", "get"]


def init_ray() -> None:
    import ray

    if ray.is_initialized():
        return
    # mlptl handles SIGINT itself (stop, save the bookkeeping, exit 130); Ray Tune's own handler would
    # swallow the first Ctrl-C and return from fit() as if the search had ended.
    os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
    # Workers must import mlptl and find the same files; locally they share this machine's Python. The
    # tracking layer's outage bound, if set, goes to workers on every node (a remote one has its own env).
    from mlptl.tracking import OUTAGE_ENV

    env = {OUTAGE_ENV: os.environ[OUTAGE_ENV]} if os.environ.get(OUTAGE_ENV) else {}
    ray.init(address=_ray_address(), include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": env} if env else None)
    from mlptl.study.signals import reinstall

    reinstall()
    log.info("Ray resources: %s", ray.cluster_resources())


def _with_references(references, func, *args, **kwargs):
    from mlptl.data.systems import register_shipped

    register_shipped(references)
    return func(*args, **kwargs)


def _ray_address() -> str | None:
    """RAY_ADDRESS if set; else the cluster `ray start` left on this machine (what `ray submit` relies on on a
    head node) if it still answers; else a new local Ray ("local").

    Why the check: Ray records the last `ray start` cluster in its temp dir and ``ray.init()`` connects to
    it; if that cluster died without `ray stop`, the record stays and ``ray.init()`` waits for a dead GCS.
    """
    import socket

    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:  # Ray's own lookup of the `ray start` record (not public API: any failure leaves it to Ray)
        from ray._private.services import find_bootstrap_address

        address = find_bootstrap_address(None) or ""
    except Exception:
        return None
    if not address:
        return "local"
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return address
    except (OSError, ValueError):
        log.warning("the Ray cluster `ray start` recorded (%s) does not answer: starting a local Ray", address)
        return "local"


def run_task(func, *args, num_cpus: float = 1.0, num_gpus: float = 0.0, references=(), **kwargs):
    """Start ``func(*args, **kwargs)`` as a Ray task; :func:`get` its result.

    ``references``: the study's own reference potentials, registered in the worker first (a worker is
    another process, maybe on another node: it knows only mlptl's library).
    """
    import ray

    task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_with_references)
    return task.remote(tuple(references), func, *args, **kwargs)


def get(ref) -> Any:
    """``ray.get``, except that bad input inside the task stays one :class:`InputError` for the user."""
    import ray
    from ray.exceptions import RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, InputError):
            raise InputError(str(cause)) from None
        raise


def progress_callback(progress, on_step=None, on_stopped=None, on_error=None):
    """A Ray Tune callback that tells ``progress`` of every finished final replicate (search trials are told
    by the searcher, which knows their outcome), calls ``on_step()`` at each step of Tune's loop,
    ``on_stopped(reason)`` for a trial stopped by its surroundings (a full disk, the tracking server gone)
    and ``on_error(trial_key, reason)`` for a trial that errored past its retries (``error_reason``)."""
    from ray.tune import Callback

    from mlptl.study.trial import RESULT_REASON, RESULT_STATUS, RESULT_STOPPED

    class Progress(Callback):
        def on_step_begin(self, iteration, trials, **info):
            if on_step is not None:
                on_step()
            progress.tick()

        def on_trial_complete(self, iteration, trials, trial, **info):
            result = trial.last_result or {}
            if result.get(RESULT_STATUS) == RESULT_STOPPED:
                if on_stopped is not None:
                    on_stopped(result.get(RESULT_REASON) or "stopped")
                return
            self._final(trial, result.get(RESULT_STATUS, "finished"))

        def on_trial_error(self, iteration, trials, trial, **info):
            self._final(trial, "failed")
            key = ((trial.config or {}).get("job") or {}).get("trial_key")
            if on_error is not None and key:
                on_error(key, error_reason(trial))

        @staticmethod
        def _final(trial, outcome: str) -> None:
            job = (trial.config or {}).get("job") or {}
            if job.get("phase") == "final":
                progress.final_trial(job["cell"], outcome)

    return Progress()


#: What a trial that errored is recorded with when Ray's error cannot be read.
UNKNOWN_ERROR = "the trial raised an error (see the Ray logs)"


def error_reason(trial) -> str:
    """One line for why Ray Tune gave up on ``trial``, from Ray's error record: a process that died (a
    SIGKILL, e.g. from the kernel's out-of-memory killer) says so; an exception gives its last line."""
    import re
    from pathlib import Path

    text = ""
    try:  # the driver's copy first: the one on the run's storage is written later
        local = trial.error_file
        text = Path(local).read_text() if local and Path(local).is_file() else str(trial.get_error() or "")
    except Exception:  # Ray's files; a reason is not worth failing the study for
        pass
    if "worker process has died" in text or "actor died unexpectedly" in text:
        kind = re.search(r"Worker exit type: (\w+)", text)
        return ("the trial's process died" + (f" (Ray: worker exit {kind.group(1)})" if kind else "")
                + ": killed by a signal, e.g. the kernel's out-of-memory killer, or crashed")
    lines = [ln.strip() for ln in text.splitlines() if re.match(r"^\s*[\w.]+(Error|Exception|Exit|Interrupt)\b", ln)]
    return lines[-1][:1000] if lines else UNKNOWN_ERROR


#: Ray Tune's logger of its experiment-state snapshots (``ray/tune/execution/experiment_state.py``).
_EXPERIMENT_STATE_LOGGER = "ray.tune.execution.experiment_state"


class _RenamedTempFile(logging.Filter):
    """Ray Tune copies its experiment state to the storage in a background thread while its next snapshot
    writes a temporary file and renames it; a copy that listed the temporary file then misses it, and Ray
    logs that with a traceback (seen on a bad input found in phase 1: the user's one line came after a Ray
    traceback). The next snapshot is copied again, and mlptl resumes from its own stores, never from that
    state, so the record becomes one debug line; any other failure to save it is logged as Ray logs it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, FileNotFoundError) and "-tmp-" in str(exc):
            log.debug("Ray Tune's experiment-state copy missed a temporary file renamed meanwhile: %s", exc)
            return False
        return True


def _quiet_experiment_state_race() -> None:
    logger = logging.getLogger(_EXPERIMENT_STATE_LOGGER)
    if not any(isinstance(f, _RenamedTempFile) for f in logger.filters):
        logger.addFilter(_RenamedTempFile())


def make_tuner(study: Study, storage: Path, name: str, param_space, tune_config, callbacks):
    # Every trial checkpoints each epoch and keeps one: Ray then snapshots its state often and says so
    # at every epoch; the snapshot is cheap on local storage, the warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Ray Tune's result.json and progress.csv per trial (where each trial ran: clusters/README.md), but not
    # its TensorBoard event files: the metrics are in MLflow, and tensorboardX would import torch into the
    # driver, which trains nothing (about 1.2 s per driver start).
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    _quiet_experiment_state_race()
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from mlptl.study.trial import run_trial

    res = {"cpu": study.resources.cpus_per_trial}
    if study.resources.gpus_per_trial:
        res["gpu"] = study.resources.gpus_per_trial
    return tune.Tuner(
        tune.with_resources(run_trial, res),
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(storage / "ray"),
            failure_config=tune.FailureConfig(max_failures=study.resources.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[*callbacks, JsonLoggerCallback(), CSVLoggerCallback()],
            verbose=0,
        ),
    )
