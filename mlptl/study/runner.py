"""Running a study: validate, then its phases, each resumable.

1. data and pretraining as Ray tasks, cached by their specs (:mod:`mlptl.study.prepare`);
2. the search: one Ray Tune run over all cells, Optuna sampling and pruning within each cell
   (:mod:`mlptl.study.search`, :mod:`mlptl.study.pruning`);
3. the final phase: each cell's best configuration re-trained as replicates and fully evaluated, and the
   model of each cell chosen on validation data registered (:mod:`mlptl.study.final`).
The report is built from MLflow afterwards, by the caller (:mod:`mlptl.cli.run`), since it reads what
this module writes.

SIGINT/SIGTERM at any point: the parent run is marked interrupted (never FINISHED), nothing more is
registered, and :class:`~mlptl.errors.Interrupted` propagates; ``resume=True`` then finishes the study.
"""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlptl import tracking as T
from mlptl.errors import InputError, Interrupted, StudyFailed
from mlptl.study.inputs import Inputs
from mlptl.study.job import Evaluation, TrialJob
from mlptl.study.progress import StudyProgress
from mlptl.study.spec import Cell, StoreLayout, Study
from mlptl.study.stores import check_stores
from mlptl.study.validate import study_warnings
from mlptl.train.spec import split_file

log = logging.getLogger(__name__)

__all__ = ["run_study", "StudyResult", "StudyExists"]


class StudyExists(InputError):
    pass


@dataclass
class StudyResult:
    study: Study
    name: str
    storage: Path
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    counts: dict[str, int]
    best: dict[str, dict[str, Any] | None]
    registered: dict[str, str]
    wall_time_s: float
    report_dir: Path | None = None
    headline: dict[str, float] = field(default_factory=dict)


@dataclass
class _Run:
    """What every phase of one study run shares: the study, its stores and its parent MLflow run."""

    study: Study
    storage: Path
    uri: str
    client: Any
    exp_id: str
    parent_id: str
    started: float
    target_data: Path | None = None
    target_test: Path | None = None
    pretrained: dict[str, Path] = field(default_factory=dict)  # per source element
    references: tuple = ()  # references the study file registered: shipped to every worker
    progress: StudyProgress | None = None
    inputs: Inputs | None = None  # phase 1's tasks, read as they finish
    evaluation: Evaluation | None = None  # the final phase's, built once from the study's EvaluationSpec

    def __post_init__(self) -> None:
        ev = self.study.evaluation
        self.evaluation = Evaluation(ev.stability(), ev.property_config())

    @property
    def stores(self) -> StoreLayout:
        return StoreLayout(self.storage)

    def trial_dir(self, cell: Cell, key: str) -> Path:
        return self.stores.trial_dir(self.study.name, cell.id, key)

    def job(
        self, cell: Cell, key: str, params: dict[str, Any], *, phase: str, replicate: int = 0,
        reuse_run_dir: str | None = None, warm_start_from: str | None = None,
    ) -> TrialJob:
        """One trial of ``cell``: the study's training run with Optuna's ``params`` for ``replicate``."""
        s = self.study
        source = cell.source or s.sources[0]
        pretrained = self.pretrained.get(source)
        train = s.train_spec(cell, params, replicate, data=self.target_data, test_data=self.target_test,
                             pretrained=pretrained, out=self.trial_dir(cell, key))
        source_test = None
        if phase == "final" and cell.init == "transfer" and s.extends(source) and pretrained is not None:
            frames = split_file(Path(pretrained).parent, "test")
            source_test = str(frames) if frames.is_file() else None
        return TrialJob(
            study=s.name, trial_key=key, cell=cell.id, phase=phase, replicate=replicate, train=train,
            tracking_uri=self.uri, experiment_id=self.exp_id, parent_run_id=self.parent_id,
            cpus=s.resources.cpus_per_trial, cache_dir=str(self.stores.cache), reference=s.reference_for_target(),
            compositions=s.alloy_compositions(),
            evaluation=self.evaluation if phase == "final" else None,
            search_md=s.search_md() if phase == "search" else None,
            reuse_run_dir=reuse_run_dir, warm_start_from=warm_start_from, references=self.references,
            source=source if cell.init == "transfer" else None, source_test=source_test,
            time_limit_s=s.resources.trial_timeout_s,
        )


def run_study(study: Study, *, resume: bool = False, resume_command: str | None = None) -> StudyResult:
    """Run (or with ``resume``, finish) a study. Everything is validated before Ray starts."""
    from mlptl.study.signals import interrupted, stop_on_signals

    study.validate()
    check_stores(study.storage_dir(), study.tracking_uri, resume=resume)
    for warning in study_warnings(study):
        log.warning(warning)
    with stop_on_signals():
        run = _open(study, resume)
        try:
            with StudyProgress(study.name, [c.id for c in study.cells()]) as run.progress:
                _prepare(run)
                cells = _search(run)
                _final(run, cells)
            registered = _register(run)
        except KeyboardInterrupt as e:
            # Ray re-raises a plain KeyboardInterrupt from inside ray.wait; the signal handler knows which.
            stop = e if isinstance(e, Interrupted) else Interrupted(interrupted() or signal.SIGINT)
            try:
                _mark_interrupted(run, stop, resume_command)
            except Exception:  # the exit code must still say "interrupted"; resume reconciles the rest
                log.exception("recording the interruption failed")
            raise stop from None
        except T.TrackingUnavailable as e:
            # Nothing can be recorded in MLflow now; the resume reconciles the runs left running.
            raise Interrupted(signal.SIGTERM, str(e)) from None
        except StudyFailed as e:
            run.client.set_tag(run.parent_id, T.TAG_STATUS, "failed")
            run.client.set_tag(run.parent_id, T.TAG_REASON, str(e)[:4000])
            run.client.set_terminated(run.parent_id, "FAILED")
            raise
    counts = dict(cells.counts)
    T.log_metrics(run.client, run.parent_id, {f"trials_{k}": v for k, v in counts.items()})
    return StudyResult(
        study=study,
        name=study.name,
        storage=run.storage,
        tracking_uri=run.uri,
        experiment_id=run.exp_id,
        parent_run_id=run.parent_id,
        counts=counts,
        best=cells.best_params(),
        registered=registered,
        wall_time_s=time.time() - run.started,
    )


# ---------------------------------------------------------------- the phases
def _open(study: Study, resume: bool) -> _Run:
    """The study's stores and its parent run: created, or found again with ``resume``."""
    from mlptl.study.signals import held

    storage = study.storage_dir()
    storage.mkdir(parents=True, exist_ok=True)
    uri = T.resolve_tracking_uri(storage, study.tracking_uri)
    c = T.client(uri, guard=held)  # a signal raises between the driver's store calls, not inside one
    # A tracking server stores artifacts itself (--artifacts-destination); a local store keeps them here.
    exp_id = T.ensure_experiment(c, study.name, None if uri.startswith(("http://", "https://")) else storage / T.ARTIFACTS_DIR)
    parent = T.find_run(c, exp_id, **{T.TAG_ROLE: "study"})
    if parent is not None and not resume:
        raise StudyExists(
            f"study {study.name!r} already exists in {uri} (status {parent.data.tags.get(T.TAG_STATUS, '?')}); "
            "pass --resume to finish or extend it, or choose another name or storage"
        )
    if parent is None:
        tags = {T.TAG_ROLE: "study", T.TAG_STUDY: study.name, T.TAG_STATUS: "running", "mlflow.note.content": study.description}
        parent_id = c.create_run(exp_id, run_name=study.name, tags=tags).info.run_id
        T.log_params(c, parent_id, study.to_dict())
        c.log_dict(parent_id, study.to_dict(), "study.json")
    else:
        parent_id = parent.info.run_id
        c.update_run(parent_id, status="RUNNING")
        c.set_tag(parent_id, T.TAG_STATUS, "running")
        log.info("resuming study %s (run %s)", study.name, parent_id)
    from mlptl.data.systems import shipped_references

    refs = shipped_references()
    if refs:
        log.info("shipping %d study references to the workers: %s", len(refs), ", ".join(f"{getattr(r, 'element', None) or r.chemistry}/{r.name}" for r in refs))
    return _Run(study, storage, uri, c, exp_id, parent_id, time.time(), references=refs)


def _prepare(run: _Run) -> None:
    """Phase 1: the target data, the source models and the reference RDF start together as Ray tasks; the
    search waits for the target data only (:mod:`mlptl.study.inputs`)."""
    run.inputs = Inputs(run)
    run.inputs.start()
    run.inputs.target()


def _search(run: _Run):
    """Phase 2: one Ray Tune run over all cells; Optuna samples and prunes within each cell."""
    from ray import tune

    from mlptl.study.final import replicates_left
    from mlptl.study.pruning import OptunaPruningScheduler
    from mlptl.study.search import CellStudies, OptunaCellSearcher
    from mlptl.study.tune import make_tuner, progress_callback

    s, c, progress = run.study, run.client, run.progress
    failure: list[BaseException] = []  # a phase-1 task's error, raised once the search has stopped

    def guarded(check, default):
        def call(*args):
            if failure:
                return default
            try:
                return check(*args)
            except Exception as e:  # raised after fit(): an exception inside Ray Tune's loop would be wrapped
                failure.append(e)
                return default
        return call

    def ready(cell) -> bool:
        ok = cell.init != "transfer" or run.inputs.source(cell.source or s.sources[0])
        if ok:
            progress.phase(cell.id, "search")
        return ok

    cells = CellStudies(
        s,
        run.stores.optuna_url,
        make_job=lambda cell, key, params, **kw: run.job(cell, key, params, phase="search", **kw),
        ready=guarded(ready, False),
    )

    def on_complete(lt, outcome: str, result: dict) -> None:
        if outcome == "stopped":
            return  # the study stops (on_stopped); the trial continues on --resume
        progress.search_trial(lt.cell.id, outcome, cells.best_values().get(lt.cell.id))
        if outcome == "pruned":
            r = T.find_run(c, run.exp_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: lt.key})
            if r is not None:
                T.set_status(c, r.info.run_id, "pruned", pruned_epoch=lt.pruned_at)
                c.set_tag(r.info.run_id, T.TAG_EPOCHS_RUN, str(lt.pruned_at))
        # an errored trial (its process died, or it raised past its retries) is recorded by on_error

    if cells.warm_started:
        ws = s.warm_start
        c.set_tag(run.parent_id, T.TAG_WARM_START, f"{ws.study} ({ws.storage})")
        T.log_metrics(c, run.parent_id, {"warm_started_trials": cells.warm_started})
    n_search = cells.plan()
    for cell in s.cells():
        progress.plan(cell.id, search=cells.remaining[cell.id], final=len(replicates_left(c, run.exp_id, s, cell)))
    log.info("search: %d trials to run over %d cells (%d per cell)", n_search, len(cells.cells), s.trials_per_cell)
    if n_search:
        from mlptl.study.final import plan_final

        def backfill(cid: str) -> list[TrialJob] | None:
            if not run.inputs.rdf_ready():
                return None
            progress.phase(cid, "final")
            return plan_final(c, run.exp_id, s, cells.best_trials(), run.job, run.trial_dir, only=cid)

        searcher = OptunaCellSearcher(cells, guarded(on_complete, None), backfill=guarded(backfill, None), abort=lambda: bool(failure))
        make_tuner(
            s,
            run.storage,
            f"{s.name}-search-{int(time.time())}",
            {},
            tune.TuneConfig(
                search_alg=searcher,
                scheduler=OptunaPruningScheduler(cells.report),
                num_samples=n_search + len(cells.cells) * len(s.seeds),  # search trials + backfilled finals
                max_concurrent_trials=s.resources.max_concurrent_trials,
                reuse_actors=True,
            ),
            [progress_callback(progress, on_step=guarded(run.inputs.poll, None),
                               on_stopped=lambda reason: failure or failure.append(_stopped(reason)),
                               on_error=guarded(lambda key, reason: _record_error(run, key, reason), None))],
        ).fit()
        if failure:
            raise failure[0]
        log.info("search: %d final re-trainings ran in the search's tail (backfill)", searcher.backfilled)
    if all(v is None for v in cells.best_values().values()):
        raise StudyFailed(
            f"no search trial of study {s.name!r} finished ({cells.counts}); the failure reasons are in the "
            f"MLflow runs' {T.TAG_REASON} tags (`mlptl ui --storage {run.storage}`)"
        )
    return cells


def _final(run: _Run, cells) -> None:
    """Phase 3: every cell's best configuration re-trained as replicates, fully evaluated."""
    from ray import tune

    from mlptl.study.final import plan_final
    from mlptl.study.tune import make_tuner, progress_callback

    s = run.study
    run.inputs.wait_all()  # a resumed study may reach here without a search that waited for its inputs
    jobs = plan_final(run.client, run.exp_id, s, cells.best_trials(), run.job, run.trial_dir)
    log.info("final phase: %d re-trainings (%d replicates per cell)", len(jobs), len(s.seeds))
    for cid in {j.cell for j in jobs}:
        run.progress.phase(cid, "final")
    if not jobs:
        return
    stopped: list[str] = []
    make_tuner(
        s,
        run.storage,
        f"{s.name}-final-{int(time.time())}",
        {"job": tune.grid_search([j.to_dict() for j in jobs])},
        tune.TuneConfig(max_concurrent_trials=s.resources.max_concurrent_trials, reuse_actors=True),
        [progress_callback(run.progress, on_stopped=stopped.append,
                           on_error=lambda key, reason: _record_error(run, key, reason))],
    ).fit()
    if stopped:
        raise _stopped(stopped[0])


def _record_error(run: _Run, key: str, reason: str) -> None:
    """A trial Ray Tune gave up on: failed in MLflow with Ray's reason, unless the trial recorded its own
    (it does for an exception it catches; a process that died records nothing)."""
    from mlptl.study.tune import UNKNOWN_ERROR

    r = T.find_run(run.client, run.exp_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: key})
    if r is None or (r.info.status == "FAILED" and r.data.tags.get(T.TAG_REASON, UNKNOWN_ERROR) != UNKNOWN_ERROR):
        return
    log.warning("trial %s failed: %s", key, reason)
    T.set_status(run.client, r.info.run_id, "failed", reason=reason)


def _stopped(reason: str) -> Interrupted:
    """A trial stopped by its surroundings: the study stops as interrupted (SIGTERM's exit code), to be resumed."""
    return Interrupted(signal.SIGTERM, f"{reason} (finished trials are kept; stopped ones continue from their last "
                                       "epoch)")


def _register(run: _Run) -> dict[str, str]:
    from mlptl.study.final import register_best_models

    registered = register_best_models(run.client, run.exp_id, run.study)
    if not registered:
        raise StudyFailed(
            f"no final replicate of study {run.study.name!r} finished, so there is nothing to report or register; "
            f"the failure reasons are in the MLflow runs' {T.TAG_REASON} tags"
        )
    run.client.set_tag(run.parent_id, T.TAG_STATUS, "reporting")
    return registered


def _mark_interrupted(run: _Run, e: Interrupted, resume_command: str | None) -> None:
    """Record where the study stopped: the study first, then its trial runs tagged running (a trial that
    starts meanwhile finds the study marked: :func:`~mlptl.study.trial_runs.study_interrupted`)."""
    c = run.client
    c.set_tag(run.parent_id, T.TAG_STATUS, "interrupted")
    if resume_command:
        c.set_tag(run.parent_id, T.TAG_RESUME, resume_command)
    for r in c.search_runs(
        [run.exp_id],
        filter_string=f"tags.`{T.TAG_ROLE}` = 'trial' and tags.`{T.TAG_STATUS}` = 'running'",
        max_results=50000,
    ):
        T.set_status(c, r.info.run_id, "interrupted")
    c.set_terminated(run.parent_id, "KILLED")
    log.warning("study %s interrupted (%s); its state is saved", run.study.name, e)
