"""Per-cell hyperparameter search with Optuna, offered to Ray Tune as a Searcher.

Force errors at 10 and at 500 training frames are not comparable, so each cell (init, training size)
has its own Optuna study: its own seeded sampler, its own pruner, its own history. One Ray Tune run
still drives all cells at once, so the cluster stays busy: the searcher hands out trials round-robin
over the cells that still need them. Optuna's studies live in an RDB (sqlite) next to the MLflow store,
which is what lets an interrupted study resume: finished trials stay finished, interrupted ones are
asked again with the same parameters and trial key, so they continue from their checkpoints.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState
from ray.tune.search import Searcher

from mlptl import metrics as M
from mlptl.study import samplers
from mlptl.study.pruners import make_pruner, report_epoch
from mlptl.study.spec import Cell, Study
from mlptl.study.trial import RESULT_STATUS, RESULT_STOPPED

log = logging.getLogger(__name__)

__all__ = ["CellStudies", "OptunaCellSearcher", "make_sampler"]

ATTR_KEY = "trial_key"
# Set on every trial this driver ends itself (finished, pruned, failed): a FAIL without it is a trial an
# interrupted driver left running, closed on resume and asked again.
ATTR_OUTCOME = "outcome"
# Study.search_stability: [0.0] for a trial that passed the MD check, [1.0] for one that failed it
# (Optuna's convention: a constraint value <= 0 is feasible).
ATTR_CONSTRAINT = "md_constraint"
ATTR_WARM_START = "warm_start_from"
# The study's driver is the only process that writes its Optuna store (trials never open it), but another
# process may hold it for a while: optuna-dashboard, `mlptl studies`, a user's script. SQLite's default
# wait of 5 s then ends the study with "database is locked"; the driver waits this long instead.
OPTUNA_BUSY_TIMEOUT_S = 120.0


def optuna_storage(url: str) -> optuna.storages.RDBStorage:
    """The study's Optuna store, waiting up to :data:`OPTUNA_BUSY_TIMEOUT_S` for another process's lock."""
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": OPTUNA_BUSY_TIMEOUT_S}})


def md_constraint(trial: optuna.trial.FrozenTrial) -> list[float]:
    """Optuna's ``constraints_func``: trials without an MD check (pruned, failed) count as feasible, since
    only finished trials can win anyway."""
    return list(trial.user_attrs.get(ATTR_CONSTRAINT, [0.0]))


def _in_space(d: optuna.distributions.BaseDistribution, value: Any) -> bool:
    if isinstance(d, FloatDistribution):
        return d.low <= float(value) <= d.high
    return value in d.choices


def feasible(trial: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0 for v in md_constraint(trial))


def make_sampler(study: Study, cell_index: int) -> optuna.samplers.BaseSampler:
    """A sampler seeded per cell, so each cell's proposals are reproducible and independent."""
    return samplers.make_sampler(
        study.sampler,
        study.sampler_seed * 1000 + cell_index,
        n_startup_trials=max(1, min(4, study.trials_per_cell // 2)),
        constraints_func=md_constraint if study.search_stability is not None else None,
    )


def distributions(study: Study, cell: Cell) -> dict[str, optuna.distributions.BaseDistribution]:
    s = study.search_for(cell.init)
    d: dict[str, Any] = {"lr": FloatDistribution(s.lr[0], s.lr[1], log=True)}
    if cell.init == "transfer":
        d["freeze_depth"] = CategoricalDistribution(list(s.freeze_depth))
        if len(s.new_element_init) > 1 and study.new_elements(cell.source or study.sources[0]):
            d["new_element_init"] = CategoricalDistribution(list(s.new_element_init))
    if len(s.lr_schedule) > 1:
        d["lr_schedule"] = CategoricalDistribution(list(s.lr_schedule))
    if len(s.batch_size) > 1:
        d["batch_size"] = CategoricalDistribution(list(s.batch_size))
    return d


@dataclass
class LiveTrial:
    cell: Cell
    trial: optuna.trial.Trial
    key: str
    pruned_at: int | None = None
    last_epoch: int = 0
    best: float = float("inf")


@dataclass
class CellStudies:
    """The Optuna side of a study: one Optuna study per cell and the trials now running."""

    study: Study
    storage_url: str
    make_job: Callable[[Cell, str, dict[str, Any]], Any]
    ready: Callable[[Cell], bool] = lambda cell: True  # whether a cell's inputs exist (a transfer cell's source)
    studies: dict[str, optuna.Study] = field(default_factory=dict)
    live: dict[str, LiveTrial] = field(default_factory=dict)
    remaining: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: {"finished": 0, "pruned": 0, "failed": 0})

    def __post_init__(self) -> None:
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna_storage(self.storage_url)
        self.cells = {c.id: c for c in self.study.cells()}
        for i, cell in enumerate(self.study.cells()):
            self.studies[cell.id] = optuna.create_study(
                study_name=f"{self.study.name}/{cell.id}",
                storage=storage,
                sampler=make_sampler(self.study, i),
                pruner=make_pruner(self.study.pruner),
                direction="minimize",
                load_if_exists=True,
            )
        self.warm_started = self._warm_start() if self.study.warm_start is not None else 0
        self._order = itertools.cycle(list(self.cells))

    def _warm_start(self) -> int:
        """Enqueue the best configurations of a finished study in every cell that has no trials yet."""
        import math

        ws = self.study.warm_start
        url = f"sqlite:///{ws.optuna_db()}"
        names = set(optuna.get_all_study_names(url))
        n = 0
        for cid, st in self.studies.items():
            if st.get_trials(deepcopy=False):
                continue  # a resumed study was seeded already
            cell = self.cells[cid]
            same = f"{ws.study}/{cid}"
            if same not in names:
                # the same init at the nearest training size (log scale)
                cands = [(abs(math.log(int(m.rsplit("-n", 1)[1]) / cell.train_size)), m) for m in names
                         if m.startswith(f"{ws.study}/") and m.rsplit("-n", 1)[0].endswith(cell.init)]
                if not cands:
                    continue
                same = min(cands)[1]
            src = optuna.load_study(study_name=same, storage=url)
            done = sorted(src.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.value)
            space = distributions(self.study, cell)
            for t in done[: ws.top_k]:
                params = {k: v for k, v in t.params.items() if k in space and _in_space(space[k], v)}
                st.enqueue_trial(params, user_attrs={ATTR_WARM_START: same})
                n += 1
        log.info("warm start: %d trials seeded from study %s", n, ws.study)
        return n

    # ------------------------------------------------------------ planning and resume
    def plan(self) -> int:
        """How many trials are still to run; interrupted trials are queued again with their keys."""
        total = 0
        for cid, st in self.studies.items():
            done = 0
            trials = st.get_trials(deepcopy=False)
            # A trial's key's latest Optuna trial speaks for it: an earlier one closed as interrupted may carry
            # an outcome recorded just before the driver stopped, which its re-queued successor overrides.
            latest = {t.user_attrs[ATTR_KEY]: t.number for t in trials if t.user_attrs.get(ATTR_KEY)}
            for t in trials:
                if t.state == TrialState.WAITING:
                    continue  # enqueued by an earlier resume; ask() hands it out first
                if t.state == TrialState.RUNNING:
                    # Left running by an interrupted driver: close it, ask again with the same
                    # parameters and key so the run directory (and its checkpoint) is reused.
                    st.tell(t.number, state=TrialState.FAIL)
                    st.enqueue_trial(t.params, user_attrs={ATTR_KEY: t.user_attrs.get(ATTR_KEY)})
                    log.info("cell %s: trial %s was interrupted; it will continue", cid, t.user_attrs.get(ATTR_KEY))
                    continue
                superseded = latest.get(t.user_attrs.get(ATTR_KEY), t.number) != t.number
                if t.state == TrialState.FAIL and (ATTR_OUTCOME not in t.user_attrs or superseded):
                    continue
                done += 1
            self.remaining[cid] = max(0, self.study.trials_per_cell - done)
            total += self.remaining[cid]
        return total

    # ------------------------------------------------------------ Ray Tune side
    def next_job(self, ray_trial_id: str) -> Any:
        for _ in range(len(self.cells)):
            cid = next(self._order)
            if self.remaining.get(cid, 0) > 0 and self.ready(self.cells[cid]):
                break
        else:
            return None
        cell = self.cells[cid]
        st = self.studies[cid]
        trial = st.ask(distributions(self.study, cell))
        key = trial.user_attrs.get(ATTR_KEY) or f"{cid}-t{trial.number:03d}"
        trial.set_user_attr(ATTR_KEY, key)
        self.remaining[cid] -= 1
        self.live[ray_trial_id] = LiveTrial(cell=cell, trial=trial, key=key)
        warm = trial.user_attrs.get(ATTR_WARM_START)
        extra = {"warm_start_from": warm} if warm else {}
        return self.make_job(cell, key, dict(trial.params), **extra)

    def search_done(self, cid: str) -> bool:
        """No search trial of the cell is left to start or still running."""
        return self.remaining.get(cid, 0) == 0 and not any(lt.cell.id == cid for lt in self.live.values())

    def report(self, ray_trial_id: str, epoch: int, value: float) -> bool:
        """Feed one epoch's validation error to the cell's pruner; True means prune."""
        lt = self.live.get(ray_trial_id)
        if lt is None or epoch <= lt.last_epoch:
            return False
        lt.last_epoch = epoch
        lt.best = min(lt.best, value)
        prune = report_epoch(lt.trial, epoch, value)
        # The last epoch is reported too (its value counts for later trials), but a trial that has run its
        # whole budget is finished, not pruned: stopping it would save nothing.
        if prune and epoch < self.study.max_epochs:
            lt.pruned_at = epoch
            return True
        return False

    def complete(self, ray_trial_id: str, result: dict | None, error: bool) -> tuple[LiveTrial, str] | None:
        lt = self.live.pop(ray_trial_id, None)
        if lt is None:
            return None
        st = self.studies[lt.cell.id]
        result = result or {}
        if result.get(RESULT_STATUS) == RESULT_STOPPED:
            return lt, "stopped"  # left RUNNING in Optuna: the resumed study asks it again, with its key
        if lt.pruned_at is not None:
            outcome, state, value = "pruned", TrialState.PRUNED, None
        elif error or result.get(RESULT_STATUS) == "failed":
            outcome, state, value = "failed", TrialState.FAIL, None
        else:
            v = result.get(M.BEST_VAL_FORCES_MAE, lt.best)
            outcome, state, value = "finished", TrialState.COMPLETE, (v if v == v else float("inf"))
            if M.SEARCH_MD_STABLE in result:
                lt.trial.set_user_attr(ATTR_CONSTRAINT, [0.0 if result[M.SEARCH_MD_STABLE] >= 1 else 1.0])
        lt.trial.set_user_attr(ATTR_OUTCOME, outcome)
        st.tell(lt.trial, value, state=state)
        self.counts[outcome] += 1
        return lt, outcome

    # ------------------------------------------------------------ results
    def best_trials(self) -> dict[str, tuple[dict[str, Any], str] | None]:
        """Per cell, the parameters and trial key of the finished trial with the lowest validation error."""
        out: dict[str, tuple[dict[str, Any], str] | None] = {}
        for cid, st in self.studies.items():
            done = st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            # With the search's MD check, an unstable trial wins only if no trial of its cell is stable.
            done = [t for t in done if feasible(t)] or done
            best = min(done, key=lambda t: t.value) if done else None
            out[cid] = (dict(best.params), best.user_attrs[ATTR_KEY]) if best else None
        return out

    def best_params(self) -> dict[str, dict[str, Any] | None]:
        return {cid: (b[0] if b else None) for cid, b in self.best_trials().items()}

    def best_values(self) -> dict[str, float | None]:
        out = {}
        for cid, st in self.studies.items():
            done = st.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            done = [t for t in done if feasible(t)] or done
            out[cid] = min(t.value for t in done) if done else None
        return out


class OptunaCellSearcher(Searcher):
    """Ray Tune's view of :class:`CellStudies`: suggest from the cell studies, tell them the outcome.

    ``backfill(cell_id)`` gives the final-phase jobs of a cell whose search has ended (None: not yet, its
    inputs are not ready): they are handed out when no search trial is ready to start, so that a core
    freed at the search's tail takes a finished cell's re-training instead of waiting for the slowest
    search trial. ``abort()`` true ends the search: no new trial starts.
    """

    def __init__(
        self,
        cells: CellStudies,
        on_complete: Callable[[LiveTrial, str, dict], None] | None = None,
        backfill: Callable[[str], list[Any] | None] | None = None,
        abort: Callable[[], bool] | None = None,
    ):
        super().__init__(metric=M.VAL_FORCES_MAE, mode="min")
        self.cells = cells
        self.on_complete = on_complete
        self.backfill = backfill
        self.abort = abort
        self._filled: set[str] = set()
        self._queue: list[Any] = []
        self.backfilled = 0

    def suggest(self, trial_id: str) -> dict | None:
        if self.abort is not None and self.abort():
            return Searcher.FINISHED
        job = self.cells.next_job(trial_id)
        if job is not None:
            return {"job": job.to_dict()}
        if self.backfill is None:
            return Searcher.FINISHED
        for cid in self.cells.cells:
            if cid not in self._filled and self.cells.search_done(cid):
                jobs = self.backfill(cid)
                if jobs is not None:
                    self._filled.add(cid)
                    self._queue += jobs
        if self._queue:
            self.backfilled += 1
            return {"job": self._queue.pop(0).to_dict()}
        if len(self._filled) == len(self.cells.cells):
            return Searcher.FINISHED
        return None  # a cell is still searching: its final jobs come when it ends

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        done = self.cells.complete(trial_id, result, error)
        if done is not None and self.on_complete is not None:
            lt, outcome = done
            self.on_complete(lt, outcome, result or {})
