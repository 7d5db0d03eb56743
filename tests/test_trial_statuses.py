"""The statuses a user filters on: each trial outcome's MLflow run status and ``mlptl.status`` tag, and
`mlptl studies` counting finished, pruned, failed and interrupted trials per study (text and --json).

A real local MLflow store, written through :mod:`mlptl.tracking` as the study writes it; no training.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlptl import tracking as T
from mlptl.cli import main

OUTCOMES = {"t0": "finished", "t1": "finished", "t2": "pruned", "t3": "failed", "t4": "interrupted", "t5": "running"}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Two studies: 'half' interrupted with one trial of each outcome, 'empty' with no trial yet."""
    storage = tmp_path_factory.mktemp("studies") / "store"
    storage.mkdir()
    c = T.client(T.default_tracking_uri(storage))
    for name, state in (("half", "interrupted"), ("empty", "running")):
        exp = T.ensure_experiment(c, name, storage / "artifacts")
        parent = c.create_run(exp, run_name=name, tags={T.TAG_ROLE: "study", T.TAG_STUDY: name, T.TAG_STATUS: state})
        T.log_params(c, parent.info.run_id, {"trials_per_cell": 3, "inits": ["scratch"], "train_sizes": [4, 10],
                                             "seeds": [0]})
        if name == "half":
            c.set_tag(parent.info.run_id, T.TAG_RESUME, "mlptl run half.py --resume")
            for key, outcome in OUTCOMES.items():
                run_id, _ = T.find_or_create_run(c, exp, name=key, tags={
                    T.TAG_ROLE: "trial", T.TAG_TRIAL_KEY: key, T.TAG_PHASE: "search", T.TAG_STATUS: "running"})
                if outcome == "pruned":
                    T.set_status(c, run_id, "pruned", pruned_epoch=2)
                elif outcome == "failed":
                    T.set_status(c, run_id, "failed", reason="FloatingPointError: non-finite loss")
                elif outcome != "running":
                    T.set_status(c, run_id, outcome)
    return storage


def _runs(store: Path, filt: str):
    c = T.client(T.default_tracking_uri(store))
    exp = c.get_experiment_by_name("half")
    return {r.info.run_name: r for r in c.search_runs([exp.experiment_id], filter_string=filt)}


def test_a_pruned_trial_is_killed_not_failed_and_each_outcome_filters_apart(store):
    runs = _runs(store, f"tags.`{T.TAG_ROLE}` = 'trial'")
    assert {k: (r.info.status, r.data.tags[T.TAG_STATUS]) for k, r in runs.items()} == {
        "t0": ("FINISHED", "finished"),
        "t1": ("FINISHED", "finished"),
        "t2": ("KILLED", "pruned"),
        "t3": ("FAILED", "failed"),
        "t4": ("KILLED", "interrupted"),
        "t5": ("RUNNING", "running"),
    }
    assert runs["t2"].data.tags[T.TAG_PRUNED_EPOCH] == "2" and T.TAG_REASON not in runs["t2"].data.tags
    assert runs["t3"].data.tags[T.TAG_REASON].startswith("FloatingPointError")
    # the filters a user types in the MLflow UI's search box
    assert set(_runs(store, "attributes.status = 'FAILED'")) == {"t3"}
    assert set(_runs(store, f"tags.`{T.TAG_STATUS}` = 'pruned'")) == {"t2"}


def test_studies_counts_every_outcome_per_study(store, capsys):
    assert main(["studies", "--json", "--storage", str(store)]) == 0
    rows = {r["study"]: r for r in json.loads(capsys.readouterr().out)}
    half, empty = rows["half"], rows["empty"]
    assert half["state"] == "interrupted" and half["resume"] == "mlptl run half.py --resume"
    assert half["trials"] == {"finished": 2, "pruned": 1, "failed": 1, "interrupted": 1, "running": 1}
    assert list(half["trials"])[:4] == ["finished", "pruned", "failed", "interrupted"]
    # finished, pruned and failed trials are done; the interrupted and the running one are run again
    assert half["remaining"] == {"search_trials": 2 * 3 - 4, "final_replicates": 2}
    assert empty["trials"] == {"finished": 0, "pruned": 0, "failed": 0, "interrupted": 0}

    assert main(["studies", "--storage", str(store)]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "trials: 2 finished, 1 pruned, 1 failed, 1 interrupted, 1 running" in lines["half"]
    assert "trials: 0 finished, 0 pruned, 0 failed, 0 interrupted" in lines["empty"]
