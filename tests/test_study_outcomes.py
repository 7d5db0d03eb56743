"""What a study's user sees at its edges: a non-SW pair end to end, registration by validation, and failures
that exit non-zero with one line (real Ray, Optuna, nequip, MLflow). Replicates as new draws of the data and
a custom architecture end to end: tests/test_interrupt.py, on its many times resumed study."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from mlptl import tracking as T

SOURCE = """
from mlptl.data.generate import preset
from mlptl.study import DataSource, EvaluationSpec, Pretraining, PrunerSpec, Resources, SearchSpace, Study
from mlptl import main

STUDY = Study(
    name={name!r},
    source_element="Si",
    target_element="Ge",
    pretraining=Pretraining(
        data=DataSource(generate=preset("tiny", "Si", reference="sw", frames_per_temperature=10)),
        model="tiny", max_epochs=2, lr=5e-3, val_size=4, test_size=4, {pretrain_extra}
    ),
    target_data=DataSource(generate=preset("tiny", "Ge", reference="sw", frames_per_temperature=12)),
    inits={inits},
    train_sizes=(4,),
    search={search},
    trials_per_cell=1,
    seeds=(0, 1),
    max_epochs=2,
    pruner=PrunerSpec(kind="none"),
    evaluation=EvaluationSpec(stability_temperatures=(), properties=False),
    resources=Resources(cpus_per_trial=1, max_failures=0),
    val_size=4,
    test_size=6,
    storage={storage!r},
)

if __name__ == "__main__":
    raise SystemExit(main(STUDY))
"""


def _write(tmp_path: Path, name: str, *, inits=("scratch", "transfer"),
           search: str = "SearchSpace(lr=(3e-3, 1e-2), freeze_depth=(0,))", pretrain_extra: str = "") -> Path:
    f = tmp_path / f"{name}.py"
    f.write_text(SOURCE.format(name=name, inits=inits, search=search, pretrain_extra=pretrain_extra,
                               storage=str(tmp_path / "store")))
    return f


def _run(study_file: Path, timeout: float = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(study_file)], capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_a_study_in_which_no_trial_finishes_fails(tmp_path):
    """lr 1e4 makes every trial diverge: the study exits 1 with one line, writes no report, and its
    parent run is FAILED with the reason."""
    f = _write(tmp_path, "doomed", inits=("scratch",), search="SearchSpace(lr=(1e4, 1e5))")
    proc = _run(f)
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("mlptl: study failed: no search trial") and "finished" in last
    assert not (tmp_path / "store" / "reports").exists()
    c = T.client(T.default_tracking_uri(tmp_path / "store"))
    parent = c.search_runs([c.get_experiment_by_name("doomed").experiment_id],
                           filter_string=f"tags.`{T.TAG_ROLE}` = 'study'")[0]
    assert parent.info.status == "FAILED" and parent.data.tags[T.TAG_STATUS] == "failed"


def test_bad_input_found_inside_a_ray_task_is_one_line(tmp_path):
    """More pretraining frames than the source data has is found only when the data exists (inside the
    pretraining Ray task): the user still gets mlptl's one line and exit code 2, no Ray traceback."""
    f = _write(tmp_path, "toomany", inits=("transfer",), pretrain_extra="train_size=10_000,")
    proc = _run(f, timeout=600)
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("mlptl: error:") and "10000" in err[-1]
    assert "Traceback" not in proc.stderr and "RayTaskError" not in proc.stderr




def test_ray_tunes_copy_of_a_renamed_temporary_file_is_no_traceback(caplog):
    """Ray Tune copies its experiment state in the background while the next snapshot renames a temporary
    file; the failed copy came out as a Ray traceback before the bad-input test's one line (CI, 2026-12-06).
    That race is one debug line now; any other failure to save the state is still logged as Ray logs it."""
    from mlptl.study.tune import _EXPERIMENT_STATE_LOGGER, _quiet_experiment_state_race

    _quiet_experiment_state_race()
    ray_log = logging.getLogger(_EXPERIMENT_STATE_LOGGER)
    race = FileNotFoundError(2, "Failed to open local file 'ray-session/driver_artifacts/.8ec3-tmp-search_gen_state-x.json'")
    other = FileNotFoundError(2, "Failed to open local file 'store/ray/study-search/experiment_state-x.json'")
    with caplog.at_level(logging.DEBUG, logger="mlptl.study.tune"):
        for exc in (race, other):
            try:
                raise exc
            except FileNotFoundError:
                ray_log.error("Saving experiment state to storage failed with exception: ", exc_info=True)
    assert [r.exc_info[1] for r in caplog.records if r.name == _EXPERIMENT_STATE_LOGGER] == [other]
    assert [r.levelno for r in caplog.records if "renamed meanwhile" in r.getMessage()] == [logging.DEBUG]


@pytest.mark.slow
def test_a_non_sw_pair_runs_end_to_end(tmp_path):
    """Ni -> Cu on EMT (fcc metals) in smoke mode: data, pretraining, search, replicates, MD stability from
    the EMT Cu crystal, registry and report, as a user runs studies/ni_to_cu.py (one search trial per cell:
    what a second one would add, pruning and the sampler, other tests cover)."""
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, str(repo / "studies" / "ni_to_cu.py"), "--smoke", "--trials-per-cell", "1",
         "--storage", str(tmp_path / "store")],
        capture_output=True, text=True, timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    c = T.client(T.default_tracking_uri(tmp_path / "store"))
    exp = c.get_experiment_by_name("ni_to_cu-smoke")
    final = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_PHASE}` = 'final'")
    assert {r.data.tags[T.TAG_CELL] for r in final if r.data.tags[T.TAG_STATUS] == "finished"} == {
        "scratch-n4", "scratch-n16", "transfer-n4", "transfer-n16"}
    assert all("stability_stable_fraction" in r.data.metrics for r in final)
    assert {r.data.params["element"] for r in final} == {"Cu"}
    assert (tmp_path / "store" / "reports" / "ni_to_cu-smoke" / "report.md").is_file()


def test_registration_chooses_by_validation_even_when_test_disagrees(tmp_path):
    """Two finished replicates of one cell: the one with the better test error has the worse validation
    error. The registry takes the validation winner; the test error is only reported."""
    from mlptl.study.final import register_best_models
    from mlptl.study.load import load_study

    f = _write(tmp_path, "sel", inits=("scratch",))
    study = load_study(f)
    c = T.client(T.default_tracking_uri(tmp_path / "store"))
    exp = T.ensure_experiment(c, "sel", tmp_path / "store" / "artifacts")
    ids = {}
    model = tmp_path / "model.nequip.zip"
    model.write_bytes(b"not a real model: registration only records the artifact")
    for name, val, test in (("val-best", 0.10, 0.30), ("test-best", 0.20, 0.05)):
        run = c.create_run(exp, run_name=name, tags={T.TAG_ROLE: "trial", T.TAG_CELL: "scratch-n4", T.TAG_PHASE: "final",
                                                     T.TAG_STATUS: "finished"})
        c.log_metric(run.info.run_id, "best_val_forces_mae", val)
        c.log_metric(run.info.run_id, "test_forces_mae", test)
        c.log_artifact(run.info.run_id, str(model), T.MODEL_ARTIFACT_DIR)
        ids[name] = run.info.run_id
    registered = register_best_models(c, exp, study)
    assert registered == {"scratch-n4": "sel-scratch-n4/1"}
    (version,) = c.search_model_versions("name = 'sel-scratch-n4'")
    assert version.run_id == ids["val-best"]
