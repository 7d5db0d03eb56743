"""Phase 3 of a study: each cell's best configuration re-trained as replicates, and the model to register.

Replicate r of a cell trains on training subset r with weight seed ``seeds[r]`` (see
:class:`~mlptl.study.spec.Study`); replicate 0 with seed ``seeds[0]`` is exactly what the search ran, so
it reuses the search trial's training and adds only the full evaluation. The model registered per cell
is chosen on validation data only; test data is reported, never used to choose.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from mlptl import metrics as M
from mlptl import tracking as T
from mlptl.study.job import TrialJob
from mlptl.study.spec import Cell, Study

log = logging.getLogger(__name__)

__all__ = ["final_key", "plan_final", "replicates_left", "register_best_models"]


def final_key(cell: Cell, replicate: int) -> str:
    return f"{cell.id}-final-r{replicate}"


def replicates_left(c, exp_id: str, study: Study, cell: Cell) -> list[int]:
    """The replicates of ``cell`` without a finished or failed run."""
    left = []
    for r in range(len(study.seeds)):
        run = T.find_run(c, exp_id, **{T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: final_key(cell, r)})
        if run is None or run.data.tags.get(T.TAG_STATUS) not in ("finished", "failed"):
            left.append(r)
    return left


def plan_final(
    c,
    exp_id: str,
    study: Study,
    best: dict[str, tuple[dict, str] | None],
    make_job: Callable[..., TrialJob],
    trial_dir: Callable[[Cell, str], Path],
    only: str | None = None,
) -> list[TrialJob]:
    """The final jobs still to run: every (cell, replicate) without a finished or failed run (of one
    cell with ``only``)."""
    jobs = []
    for cell in study.cells():
        if only is not None and cell.id != only:
            continue
        chosen = best.get(cell.id)
        if chosen is None:
            log.warning("cell %s has no finished search trial: nothing to re-train", cell.id)
            continue
        params, search_key = chosen
        for r in replicates_left(c, exp_id, study, cell):
            key = final_key(cell, r)
            # The search ran replicate 0 (subset 0, seed 0) with these very parameters.
            reuse = str(trial_dir(cell, search_key)) if r == 0 else None
            jobs.append(make_job(cell, key, params, phase="final", replicate=r, reuse_run_dir=reuse))
    return jobs


def _is_stable(run) -> bool:
    return run.data.metrics.get(M.STABLE_FRACTION, 0.0) >= 1.0


def register_best_models(c, exp_id: str, study: Study) -> dict[str, str]:
    """Per cell, the final replicate with the lowest best validation force MAE goes to the registry.

    With ``selection="val_stable"`` only MD-stable replicates compete (all, if none is stable).
    """
    out = {}
    for cell in study.cells():
        runs = c.search_runs(
            [exp_id],
            filter_string=(
                f"tags.`{T.TAG_CELL}` = '{cell.id}' and tags.`{T.TAG_PHASE}` = 'final' "
                f"and tags.`{T.TAG_STATUS}` = 'finished'"
            ),
            order_by=[f"metrics.{M.BEST_VAL_FORCES_MAE} ASC"],
            max_results=1000,
        )
        if not runs:
            continue
        runs_all = runs
        selected_by = M.BEST_VAL_FORCES_MAE
        if study.selection == "val_stable":
            stable = [r for r in runs if _is_stable(r)]
            if stable:
                runs, selected_by = stable, f"{M.BEST_VAL_FORCES_MAE} among MD-stable replicates"
            else:
                selected_by = f"{M.BEST_VAL_FORCES_MAE} (no replicate was MD-stable)"
        run = runs[0]
        name = f"{study.name}-{cell.id}"
        tags = {
            T.TAG_STUDY: study.name,
            T.TAG_CELL: cell.id,
            "element": study.target_element,
            T.TAG_SELECTION: selected_by,
        }
        version = T.register_model(c, run.info.run_id, name, tags)
        for r in runs_all:  # every replicate says what chose among them; the registered one is the model's run
            c.set_tag(r.info.run_id, T.TAG_SELECTION, selected_by)
        out[cell.id] = f"{name}/{version}"
        log.info(
            "registered %s version %s, selected by %s = %.4f eV/A (test force MAE %.4f, reported only)",
            name,
            version,
            selected_by,
            run.data.metrics.get(M.BEST_VAL_FORCES_MAE, float("nan")),
            run.data.metrics.get(M.TEST_FORCES_MAE, float("nan")),
        )
    return out
