"""Running a study: validate, get the data and the source model, search per cell, re-train, report.

The phases, each resumable:
1. data and pretraining as Ray tasks, cached by their specs (reused across trials and studies);
2. the search: one Ray Tune run over all cells, Optuna sampling and pruning within each cell;
3. the final phase: each cell's best configuration re-trained with the study's seeds and fully
   evaluated (force errors by group, MD stability, properties); the best model of each cell registered;
4. the report, rebuilt from MLflow and logged to the study's parent run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.errors import InputError
from mlptl.study.spec import Cell, DataSource, Study

log = logging.getLogger(__name__)

__all__ = ["run_study", "StudyResult", "pretrain", "StudyExists"]


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
    report_dir: Path | None
    wall_time_s: float


# ---------------------------------------------------------------- data and pretraining
def resolve_data(source: DataSource, cache_dir: Path) -> Path:
    if source.generate is not None:
        from mlptl.data.generate import generate

        return generate(source.generate, cache_dir, progress=False)
    return source.resolved_path()


def _pretrain_key(study: Study, data_hash: str) -> str:
    p = study.pretraining
    spec = {
        "element": study.source_element,
        "data": data_hash,
        "model": p.model if isinstance(p.model, str) else asdict(p.model),
        "epochs": p.max_epochs,
        "lr": p.lr,
        "train_size": p.train_size,
        "val": p.val_size,
        "test": p.test_size,
        "batch": p.batch_size,
        "seed": p.seed,
        "format": 1,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def pretrain(study: Study, storage: Path) -> tuple[Path, dict[str, Any]]:
    """The source-element model: given, or trained once per spec and cached in the storage dir."""
    p = study.pretraining
    if p.pretrained:
        return Path(os.path.expandvars(os.path.expanduser(p.pretrained))).resolve(), {"pretrained": "given"}
    from mlptl.data.readers import data_hash
    from mlptl.train import TrainSpec, train

    data = resolve_data(p.data, storage / "data")
    key = _pretrain_key(study, data_hash(data))
    out = storage / "pretrained" / f"{study.source_element}-{key}"
    model = out / "model.nequip.zip"
    if model.is_file() and (out / "metrics.json").is_file():
        log.info("pretrained %s model found in cache: %s", study.source_element, model)
        return model, json.loads((out / "metrics.json").read_text())
    log.info("pretraining the %s model (%d epochs) into %s", study.source_element, p.max_epochs, out)
    spec = TrainSpec(
        element=study.source_element,
        data=str(data),
        out=str(out),
        test_data=str(p.data.resolved_test_path()) if p.data.test_path else None,
        lr=p.lr,
        max_epochs=p.max_epochs,
        train_size=p.train_size,
        val_size=p.val_size,
        test_size=p.test_size,
        batch_size=p.batch_size,
        seed=p.seed,
        model=p.model,
    )
    result = train(spec)
    return result.model_path, result.metrics


# ---------------------------------------------------------------- progress
def _progress_callback(cells, started: float):
    from ray.tune import Callback

    class Progress(Callback):
        """One log line per finished trial: counts, and the best validation error per cell so far."""

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._line(trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self._line(trials)

        def _line(self, trials):
            running = sum(1 for t in trials if t.status == "RUNNING")
            best = {k: (f"{v:.3f}" if v is not None else "-") for k, v in cells.best_values().items()}
            c = cells.counts
            log.info(
                "[%5.0f s] running %d, finished %d, pruned %d, failed %d | best val force MAE per cell: %s",
                time.time() - started,
                running,
                c["finished"],
                c["pruned"],
                c["failed"],
                ", ".join(f"{k} {v}" for k, v in best.items()),
            )

    return Progress()


# ---------------------------------------------------------------- the study
class _Context:
    """What every trial job of this study shares."""

    def __init__(self, study, storage, uri, exp_id, parent_id, target_data, target_test, pretrained):
        self.study, self.storage, self.uri = study, storage, uri
        self.exp_id, self.parent_id = exp_id, parent_id
        self.target_data, self.target_test, self.pretrained = target_data, target_test, pretrained

    def job(self, cell: Cell, key: str, params: dict[str, Any], *, phase: str, seed: int) -> dict[str, Any]:
        from mlptl.study.trial import TrialJob

        s = self.study
        model = s.target_model_spec()
        ev = {**asdict(s.evaluation), "cache_dir": str(self.storage / "cache")} if phase == "final" else {}
        return TrialJob(
            study=s.name,
            trial_key=key,
            cell=cell.id,
            phase=phase,
            element=s.target_element,
            init=cell.init,
            train_size=cell.train_size,
            params=params,
            seed=seed,
            run_dir=str(self.storage / "trials" / cell.id / key),
            data=str(self.target_data),
            test_data=str(self.target_test) if self.target_test else None,
            pretrained=str(self.pretrained) if self.pretrained else None,
            max_epochs=s.max_epochs,
            val_size=s.val_size,
            test_size=s.test_size,
            split_seed=s.split_seed,
            model=s.model if isinstance(s.model, str) else (asdict(model) if s.model is not None else s.pretraining.model),
            train_groups=s.train_groups,
            test_groups=s.test_groups,
            tracking_uri=self.uri,
            experiment_id=self.exp_id,
            parent_run_id=self.parent_id,
            cpus=s.resources.cpus_per_trial,
            evaluation=ev,
        ).to_dict()


def _init_ray(study: Study) -> None:
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    # Workers must import mlptl and find the same files; locally they share this machine's Python.
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    log.info("Ray resources: %s", ray.cluster_resources())


def _tuner(study: Study, storage: Path, name: str, param_space, tune_config, callbacks):
    # Every trial checkpoints each epoch and keeps one: Ray then snapshots its state often and says so
    # at every epoch; the snapshot is cheap on local storage, the warning is noise.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    from ray import tune

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
            callbacks=callbacks,
            verbose=0,
        ),
    )


def run_study(study: Study, *, resume: bool = False) -> StudyResult:
    """Run (or with ``resume``, finish) a study. Everything is validated before Ray starts."""
    study.validate()
    t_start = time.time()
    storage = study.storage_dir()
    storage.mkdir(parents=True, exist_ok=True)
    uri = T.resolve_tracking_uri(storage, study.tracking_uri)
    c = T.client(uri)
    # A tracking server stores artifacts itself (--artifacts-destination); a local store keeps them here.
    exp_id = T.ensure_experiment(c, study.name, None if uri.startswith(("http://", "https://")) else storage / "artifacts")
    parent = T.find_run(c, exp_id, **{T.TAG_ROLE: "study"})
    if parent is not None and not resume:
        raise StudyExists(
            f"study {study.name!r} already exists in {uri} (status {parent.data.tags.get(T.TAG_STATUS, '?')}); "
            "pass --resume to finish or extend it, or choose another name or storage"
        )
    if parent is None:
        run = c.create_run(
            exp_id,
            run_name=study.name,
            tags={T.TAG_ROLE: "study", T.TAG_STUDY: study.name, T.TAG_STATUS: "running", "mlflow.note.content": study.description},
        )
        parent_id = run.info.run_id
        T.log_params(c, parent_id, study.to_dict())
        c.log_dict(parent_id, study.to_dict(), "study.json")
    else:
        parent_id = parent.info.run_id
        c.update_run(parent_id, status="RUNNING")
        log.info("resuming study %s (run %s)", study.name, parent_id)

    _init_ray(study)
    import ray

    from mlptl.data.readers import data_hash

    # 1. data and pretraining, in parallel as Ray tasks
    cpus = study.resources.cpus_per_trial
    target_ref = ray.remote(num_cpus=cpus)(resolve_data).remote(study.target_data, storage / "data")
    pre_ref = None
    if "transfer" in study.inits:
        gpus = 1 if study.resources.gpus_per_trial else 0  # else it would use its node's GPUs unaccounted
        pre_ref = ray.remote(num_cpus=cpus, num_gpus=gpus)(pretrain).remote(study, storage)
    target_data = ray.get(target_ref)
    target_test = study.target_data.resolved_test_path()
    pretrained, pre_metrics = ray.get(pre_ref) if pre_ref is not None else (None, {})
    c.set_tag(parent_id, "mlptl.target_data", str(target_data))
    c.set_tag(parent_id, "mlptl.target_data_sha256", data_hash(target_data))
    if target_test:
        c.set_tag(parent_id, "mlptl.target_test_sha256", data_hash(target_test))
    if pretrained:
        c.set_tag(parent_id, "mlptl.pretrained", str(pretrained))
        T.log_metrics(c, parent_id, {f"pretrain_{k}": v for k, v in pre_metrics.items() if isinstance(v, int | float) and "." not in k})
    ctx = _Context(study, storage, uri, exp_id, parent_id, target_data, target_test, pretrained)

    # 2. search
    from ray import tune

    from mlptl.study.pruning import OptunaPruningScheduler
    from mlptl.study.search import CellStudies, OptunaCellSearcher

    cells = CellStudies(
        study,
        f"sqlite:///{storage / 'optuna.db'}",
        make_job=lambda cell, key, params: ctx.job(cell, key, params, phase="search", seed=study.seeds[0]),
    )

    def on_complete(lt, outcome: str, result: dict) -> None:
        if outcome == "pruned":
            run = T.find_run(c, exp_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: lt.key})
            if run is not None:
                T.set_status(c, run.info.run_id, "pruned", pruned_epoch=lt.pruned_at)
                c.set_tag(run.info.run_id, "mlptl.epochs_run", str(lt.pruned_at))
        elif outcome == "failed" and not result.get("reason"):
            run = T.find_run(c, exp_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: lt.key})
            if run is not None and run.info.status != "FAILED":
                T.set_status(c, run.info.run_id, "failed", reason="the trial raised an error (see the Ray logs)")

    n_search = cells.plan()
    log.info("search: %d trials to run over %d cells (%d per cell)", n_search, len(cells.cells), study.trials_per_cell)
    if n_search:
        tuner = _tuner(
            study,
            storage,
            f"{study.name}-search-{int(time.time())}",
            {},
            tune.TuneConfig(
                search_alg=OptunaCellSearcher(cells, on_complete),
                scheduler=OptunaPruningScheduler(cells.report),
                num_samples=n_search,
                max_concurrent_trials=study.resources.max_concurrent_trials,
                reuse_actors=True,
            ),
            [_progress_callback(cells, t_start)],
        )
        tuner.fit()

    # 3. final: re-train each cell's best with the study's seeds
    best = cells.best_params()
    jobs = []
    for cell in study.cells():
        params = best.get(cell.id)
        if params is None:
            log.warning("cell %s has no finished search trial: nothing to re-train", cell.id)
            continue
        for seed in study.seeds:
            key = f"{cell.id}-final-s{seed}"
            run = T.find_run(c, exp_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: key})
            if run is not None and run.data.tags.get(T.TAG_STATUS) in ("finished", "failed"):
                continue
            jobs.append(ctx.job(cell, key, params, phase="final", seed=seed))
    log.info("final phase: %d re-trainings (%d seeds per cell)", len(jobs), len(study.seeds))
    if jobs and study.evaluation.stability_temperatures:
        # The reference RDF (MD with the reference potential) once, cached, before trials need it.
        from mlptl.data.references import known_references
        from mlptl.evaluate.full import stability_config
        from mlptl.evaluate.stability import reference_rdf

        if (study.target_element, "sw") in known_references():
            cfg = stability_config(asdict(study.evaluation))
            ray.get(
                ray.remote(num_cpus=cpus)(reference_rdf).remote(
                    study.target_element, cfg.temperatures, cfg, cache_dir=str(storage / "cache")
                )
            )
    if jobs:
        tuner = _tuner(
            study,
            storage,
            f"{study.name}-final-{int(time.time())}",
            {"job": tune.grid_search(jobs)},
            tune.TuneConfig(max_concurrent_trials=study.resources.max_concurrent_trials, reuse_actors=True),
            [],
        )
        tuner.fit()

    # 4. registry and report
    registered = register_best_models(c, exp_id, study)
    from mlptl.report import build_report

    report_dir = None
    try:
        report_dir = build_report(uri, study.name, storage / "reports" / study.name)
        c.log_artifacts(parent_id, str(report_dir), "report")
    except Exception:
        log.exception("building the report failed; the runs are intact: rebuild with `mlptl report`")
    counts = dict(cells.counts)
    T.log_metrics(c, parent_id, {f"trials_{k}": v for k, v in counts.items()} | {"wall_time_s": time.time() - t_start})
    c.set_tag(parent_id, T.TAG_STATUS, "finished")
    c.set_terminated(parent_id, "FINISHED")
    return StudyResult(
        study=study,
        name=study.name,
        storage=storage,
        tracking_uri=uri,
        experiment_id=exp_id,
        parent_run_id=parent_id,
        counts=counts,
        best=best,
        registered=registered,
        report_dir=report_dir,
        wall_time_s=time.time() - t_start,
    )


def register_best_models(c, exp_id: str, study: Study) -> dict[str, str]:
    """Per cell, the final model with the lowest test force MAE goes to the MLflow model registry."""
    out = {}
    for cell in study.cells():
        runs = c.search_runs(
            [exp_id],
            filter_string=(
                f"tags.`{T.TAG_CELL}` = '{cell.id}' and tags.`{T.TAG_PHASE}` = 'final' "
                f"and tags.`{T.TAG_STATUS}` = 'finished'"
            ),
            order_by=[f"metrics.{M.TEST_FORCES_MAE} ASC"],
            max_results=1,
        )
        if not runs:
            continue
        name = f"{study.name}-{cell.id}"
        tags = {T.TAG_STUDY: study.name, T.TAG_CELL: cell.id, "element": study.target_element}
        version = T.register_model(c, runs[0].info.run_id, name, tags)
        out[cell.id] = f"{name}/{version}"
        log.info("registered %s version %s (test force MAE %.4f eV/A)", name, version, runs[0].data.metrics.get(M.TEST_FORCES_MAE, float("nan")))
    return out
