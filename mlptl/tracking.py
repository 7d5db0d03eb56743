"""MLflow conventions: where a study's runs live, how they are named, tagged and found again.

One experiment per study; a parent run for the study (its definition, data hashes, report); a child run
per trial, found again by its ``mlptl.trial_key`` tag so that a resumed study reuses runs instead of
duplicating them. Every function takes explicit run ids (``MlflowClient``), never MLflow's global
"active run", because trials log from Ray worker processes.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Tags: the vocabulary a user filters on in the MLflow UI.
TAG_ROLE = "mlptl.role"  # "study" | "pretraining" | "trial"
TAG_STUDY = "mlptl.study"
TAG_TRIAL_KEY = "mlptl.trial_key"
TAG_CELL = "mlptl.cell"
TAG_PHASE = "mlptl.phase"  # "search" | "final"
TAG_STATUS = "mlptl.status"  # "running" | "finished" | "pruned" | "failed" | "interrupted" (study: also "reporting")
TAG_REASON = "mlptl.failure_reason"
TAG_PRUNED_EPOCH = "mlptl.pruned_at_epoch"
TAG_TIME_LIMIT = "mlptl.time_limit_s"  # set on a trial stopped at its time limit (Resources.trial_timeout_s)
TAG_INIT = "mlptl.init"  # "scratch" | "transfer": group runs by it in the UI
TAG_SOURCE = "mlptl.source_element"
TAG_ELEMENT_INIT = "mlptl.element_init"  # a transfer run: how each target element started ("Ni: copy of Cu")
TAG_TRAIN_SIZE = "mlptl.train_size"
TAG_REPLICATE = "mlptl.replicate"
TAG_EPOCHS_RUN = "mlptl.epochs_run"
TAG_ATTEMPTS = "mlptl.attempts"  # how many times Ray started this trial (node failures retry it)
TAG_NODE = "mlptl.node"
TAG_NODES = "mlptl.nodes"
TAG_REUSED_FROM = "mlptl.reused_from"  # a final replicate that repeats a search trial takes its model
TAG_SELECTION = "mlptl.selection_metric"  # the validation metric that chose each cell's registered model
TAG_RESUME = "mlptl.resume_command"
TAG_WARM_START = "mlptl.warm_start"  # parent run: the finished study whose best trials seeded this one
TAG_REMAINING = "mlptl.remaining"
TAG_TARGET_DATA = "mlptl.target_data"
TAG_TARGET_DATA_SHA = "mlptl.target_data_sha256"
TAG_TARGET_TEST_SHA = "mlptl.target_test_sha256"
TAG_PRETRAINED = "mlptl.pretrained"
TAG_PARENT = "mlflow.parentRunId"
TAG_RUN_NAME = "mlflow.runName"
# Experiment tags. MLflow 3 opens an experiment of kind "custom_model_development" in its model-training
# view (runs table), any other in the GenAI view (traces); 3.17 decides by its UI's GenAI / Model training
# switch instead, which the link's ``workflowType=machine_learning`` sets (see trials_view_url).
TAG_EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# A saved runs-table view ("Share" in the MLflow UI): the trials grouped by cell, their status and headline
# metrics as columns; opened by ``...?viewStateShareKey=<name>``.
TAG_SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
TRIALS_VIEW = "mlptl-trials"
#: A local store's files in a storage directory: the MLflow database and the artifact root.
MLFLOW_DB = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
MODEL_ARTIFACT_DIR = "model"

STATUS_TO_MLFLOW = {"finished": "FINISHED", "pruned": "KILLED", "failed": "FAILED", "interrupted": "KILLED"}


def default_tracking_uri(storage_dir: Path) -> str:
    return f"sqlite:///{(storage_dir / MLFLOW_DB).resolve()}"


def resolve_tracking_uri(storage_dir: Path, explicit: str | None = None) -> str:
    """The study's field first, then ``MLFLOW_TRACKING_URI``, then a sqlite store in the storage dir."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(storage_dir)


def client(tracking_uri: str, guard: Callable[[], AbstractContextManager] | None = None):
    """A client bound to one store whose every call waits out a tracking server outage (:class:`Retrying`).
    MLflow's global URI is left alone: ``mlflow.set_tracking_uri`` also exports MLFLOW_TRACKING_URI, which
    child processes (a second study, a test) would then inherit."""
    from mlflow.tracking import MlflowClient

    if tracking_uri.startswith(("http://", "https://")):
        # MLflow's own HTTP retries (7 in about 4 minutes, unlogged) would come before each wait of ours;
        # a user's explicit setting is kept.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    return Retrying(MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri), tracking_uri, guard)


# ---------------------------------------------------------------- a tracking server that stops answering
#: How long a study waits for its tracking server to answer again (a restart, a network blip) before it
#: gives up: each MLflow call retries within this bound, one logged line per wait.
OUTAGE_LIMIT_S = 300.0
#: The environment variable that sets another bound, in seconds (e.g. a server with maintenance windows);
#: a study passes it on to its Ray workers.
OUTAGE_ENV = "MLPTL_TRACKING_OUTAGE_S"
#: The waits between tries, in seconds; the last repeats until the bound.
BACKOFF_S = (1.0, 2.0, 4.0, 8.0, 10.0)


class TrackingUnavailable(RuntimeError):
    """The tracking server did not answer for :func:`outage_limit_s`; what was logged before is kept."""


def outage_limit_s() -> float:
    """The bound on waiting out a tracking server outage: ``$MLPTL_TRACKING_OUTAGE_S``, else :data:`OUTAGE_LIMIT_S`."""
    raw = os.environ.get(OUTAGE_ENV, "").strip()
    if not raw:
        return OUTAGE_LIMIT_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        from mlptl.errors import InputError

        raise InputError(f"{OUTAGE_ENV} must be a positive number of seconds, got {raw!r}")
    return value


def _transient(e: BaseException) -> str | None:
    """Why ``e`` means the server is not answering now (refused, reset, timed out, an answer cut off,
    HTTP 502-504), else None. MLflow wraps what requests raised, so the chain is walked."""
    import http.client

    import requests

    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, requests.exceptions.HTTPError):
            code = getattr(e.response, "status_code", None)
            return f"HTTP {code}" if code in (502, 503, 504) else None
        if isinstance(e, requests.exceptions.SSLError):
            return None  # a certificate problem does not pass with time
        if isinstance(e, requests.exceptions.RetryError):
            return "HTTP 5xx"
        if isinstance(e, requests.exceptions.ChunkedEncodingError | http.client.IncompleteRead):
            return "answer cut off"  # the server died while it sent its reply
        if isinstance(e, requests.exceptions.ConnectionError | requests.exceptions.Timeout | ConnectionError):
            text = str(e)
            for why in ("Connection refused", "Connection reset", "Remote end closed", "timed out"):
                if why in text:
                    return why
            return type(e).__name__
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


class Retrying:
    """An ``MlflowClient`` whose calls wait out an outage of the tracking server, within
    :func:`outage_limit_s`, then raise :class:`TrackingUnavailable`.

    A call that may have reached the server before its answer was lost is looked up before it is sent
    again, so that an epoch's metrics, a run or a model version is never written twice. ``guard``, if
    given, is entered around each attempt (not the waits between them): the study driver's holds signals.
    """

    def __init__(self, raw, uri: str, guard: Callable[[], AbstractContextManager] | None = None):
        self.raw = raw
        self.uri = uri
        self.guard = guard or nullcontext

    def __getattr__(self, name: str):
        if name.startswith("__") or "raw" not in self.__dict__:  # copy and pickle probe before __init__
            raise AttributeError(name)
        method = getattr(self.raw, name)
        if not callable(method):
            return method

        def call(*args, **kwargs):
            if name == "create_run":  # an explicit start time names the run if its answer is lost
                kwargs.setdefault("start_time", int(time.time() * 1000))
            landed = _LANDED.get(name)
            bound = outage_limit_s()
            waited, tries = 0.0, 0
            t0 = time.monotonic()
            while True:
                try:
                    with self.guard():
                        if tries and landed is not None:
                            found = landed(self.raw, *args, **kwargs)
                            if found is not _NOT_FOUND:
                                return found
                        out = method(*args, **kwargs)
                    if tries:
                        log.info("the tracking server at %s answers again (after %.0f s)", self.uri, waited)
                    return out
                except Exception as e:
                    why = _transient(e)
                    if why is None:
                        raise
                    waited = time.monotonic() - t0
                    pause = BACKOFF_S[min(tries, len(BACKOFF_S) - 1)]
                    if waited + pause > bound:
                        raise TrackingUnavailable(
                            f"the tracking server at {self.uri} is unreachable ({why}; waited {waited:.0f} s, the "
                            f"bound is {bound:g} s, {OUTAGE_ENV})") from None
                    log.warning("the tracking server at %s does not answer (%s, %s): retrying in %.0f s "
                                "(%.0f of %g s)", self.uri, why, name, pause, waited, bound)
                    time.sleep(pause)
                    tries += 1
                    waited = time.monotonic() - t0

        return call


_NOT_FOUND = object()


def _batch_landed(c, run_id: str, metrics=(), params=(), tags=(), **_):
    """None if the batch's first metric point is already stored (a batch is one transaction), else _NOT_FOUND."""
    if not metrics:
        return _NOT_FOUND  # params and tags are idempotent: the same value again is accepted
    m = metrics[0]
    stored = c.get_metric_history(run_id, m.key)
    return None if any((p.step, p.timestamp, p.value) == (m.step, m.timestamp, m.value) for p in stored) else _NOT_FOUND


def _run_landed(c, experiment_id: str, start_time: int, tags=None, run_name=None, **_):
    """The run a lost ``create_run`` made (same name and start time), else _NOT_FOUND."""
    filt = f"attributes.start_time = {start_time}"
    if run_name:
        filt += f" and attributes.run_name = '{run_name}'"
    runs = c.search_runs([experiment_id], filter_string=filt, max_results=1)
    return runs[0] if runs else _NOT_FOUND


def _experiment_landed(c, name: str, artifact_location=None, tags=None, **_):
    """The id of the experiment a lost ``create_experiment`` made, else _NOT_FOUND."""
    exp = c.get_experiment_by_name(name)
    return exp.experiment_id if exp is not None else _NOT_FOUND


def _version_landed(c, name: str, source: str, run_id: str | None = None, tags=None, **_):
    """The model version of this run a lost ``create_model_version`` made, else _NOT_FOUND."""
    for mv in c.search_model_versions(f"name = '{name}'"):
        if mv.run_id == run_id:
            return mv
    return _NOT_FOUND


#: The calls that are not idempotent, and how to find what a lost one wrote.
_LANDED = {"log_batch": _batch_landed, "create_run": _run_landed, "create_experiment": _experiment_landed,
           "create_model_version": _version_landed}


def _trials_view() -> dict[str, Any]:
    from mlptl import metrics as M

    columns = [f"metrics.`{m}`" for m in (M.BEST_VAL_FORCES_MAE, M.TEST_FORCES_MAE, M.STABLE_FRACTION)]
    columns += ["params.`lr`", "params.`freeze_depth`", f"tags.`{TAG_STATUS}`", f"tags.`{TAG_PHASE}`"]
    return {
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
        # Grouping lists every trial at once (nested under the parent they start collapsed); the group row
        # shows the cell's best value of each metric.
        "groupBy": {"aggregateFunction": "min", "groupByKeys": [{"mode": "tag", "groupByData": TAG_CELL}]},
    }


def ensure_experiment(c, name: str, artifact_root: Path | None) -> str:
    """The study's experiment, created if missing, with the tags that make the MLflow UI show it as model
    training; an experiment made by an older mlptl gets them too."""
    tags = {
        TAG_STUDY: name,
        TAG_EXPERIMENT_KIND: EXPERIMENT_KIND,
        TAG_SHARED_VIEW_PREFIX + TRIALS_VIEW: json.dumps(_trials_view()),
    }
    exp = c.get_experiment_by_name(name)
    if exp is None:
        location = artifact_root.resolve().as_uri() if artifact_root is not None else None
        return c.create_experiment(name, artifact_location=location, tags=tags)
    for k, v in tags.items():  # the kind only where unset: a user may have changed it in the UI
        if exp.tags.get(k) != v and (k not in exp.tags or k != TAG_EXPERIMENT_KIND):
            c.set_experiment_tag(exp.experiment_id, k, v)
    return exp.experiment_id


def find_run(c, experiment_id: str, **tags: str):
    """The newest run whose tags match, or None."""
    filt = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = c.search_runs([experiment_id], filter_string=filt, max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None


def find_or_create_run(c, experiment_id: str, *, name: str, tags: dict[str, str]):
    """Reuse the run with this trial key (a resumed trial) or start a new one."""
    key_tags = {k: tags[k] for k in (TAG_ROLE, TAG_TRIAL_KEY) if k in tags}
    existing = find_run(c, experiment_id, **key_tags) if key_tags else None
    if existing is not None:
        c.update_run(existing.info.run_id, status="RUNNING")
        return existing.info.run_id, True
    run = c.create_run(experiment_id, run_name=name, tags={**tags, TAG_RUN_NAME: name})
    return run.info.run_id, False


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def log_params(c, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    existing = c.get_run(run_id).data.params
    batch = []
    for k, v in flatten(params).items():
        value = json.dumps(v) if isinstance(v, list | tuple) else str(v)
        value = value[:6000]
        if k in existing:
            continue  # params are immutable in MLflow; a resumed run keeps its own
        batch.append(Param(k, value))
    for i in range(0, len(batch), 100):
        c.log_batch(run_id, params=batch[i : i + 100])


def log_metrics(c, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(k, float(v), now, int(step or 0))
        for k, v in metrics.items()
        if isinstance(v, int | float) and math.isfinite(float(v))
    ]
    for i in range(0, len(batch), 500):
        c.log_batch(run_id, metrics=batch[i : i + 500])


def logged_steps(c, run_id: str, key: str) -> set[int]:
    """The steps at which a run already holds metric ``key``."""
    return {m.step for m in c.get_metric_history(run_id, key)}


def set_status(c, run_id: str, status: str, reason: str | None = None, pruned_epoch: int | None = None) -> None:
    """Record a trial's outcome where the MLflow UI shows it: the run status and mlptl tags."""
    c.set_tag(run_id, TAG_STATUS, status)
    if reason:
        c.set_tag(run_id, TAG_REASON, reason[:4000])
    if pruned_epoch is not None:
        c.set_tag(run_id, TAG_PRUNED_EPOCH, str(pruned_epoch))
    if status in STATUS_TO_MLFLOW:
        c.set_terminated(run_id, status=STATUS_TO_MLFLOW[status])


def register_model(c, run_id: str, name: str, tags: dict[str, str]) -> str:
    """Register the packaged model of a run; returns the version. Re-registering a run is a no-op."""
    from mlflow.exceptions import MlflowException

    try:
        c.create_registered_model(name, tags=tags)
    except MlflowException:
        pass
    for mv in c.search_model_versions(f"name = '{name}'"):
        if mv.run_id == run_id:
            return mv.version
    source = f"{c.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT_DIR}"
    mv = c.create_model_version(name, source=source, run_id=run_id, tags=tags)
    return mv.version


def resolve_model_uri(model: str, tracking_uri: str, dest: Path | None = None) -> Path:
    """A local model file for ``models:/<name>/<version or alias>`` (the MLflow registry) or a path.

    Registered versions point at a run's ``model/`` artifact directory; the packaged model inside it is
    downloaded once (MLflow's artifact cache) and its path returned, so every command that takes a model
    file takes a registry URI too.
    """
    if not model.startswith("models:/"):
        return Path(model)
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    from mlptl.errors import InputError

    rest = model[len("models:/"):]
    name, _, which = rest.partition("/")
    if not name or not which:
        raise InputError(f"a registry URI is models:/<name>/<version or alias>, not {model!r}")
    c = client(tracking_uri)
    try:
        version = c.get_model_version(name, which) if which.isdigit() else c.get_model_version_by_alias(name, which)
        source = c.get_model_version_download_uri(name, version.version)
        local = Path(download_artifacts(artifact_uri=source, tracking_uri=tracking_uri,
                                        dst_path=str(dest) if dest else None))
    except MlflowException as e:
        raise InputError(f"{model} not found in the registry at {tracking_uri}: {e.message}") from None
    files = sorted(local.rglob("*.nequip.zip")) if local.is_dir() else [local]
    if not files:
        raise InputError(f"{model} holds no *.nequip.zip model (artifacts at {source})")
    return files[0]
