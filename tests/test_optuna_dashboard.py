"""The study's Optuna storage opens in optuna-dashboard as the README says: one Optuna study per cell,
each trial with its per-epoch validation error, pruned trials marked as pruned."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from mlptl import tracking as T

pytestmark = pytest.mark.slow  # needs the end-to-end study


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.load(r)


def test_optuna_dashboard_serves_the_study(e2e_study, tmp_path):
    exe = shutil.which("optuna-dashboard")
    assert exe, "optuna-dashboard is not installed: `bash tests/run.sh` installs it"
    storage = f"sqlite:///{e2e_study.storage / 'optuna.db'}"  # what the README tells a user to open
    port = _free_port()
    log = tmp_path / "dashboard.log"
    proc = subprocess.Popen(
        [exe, storage, "--host", "127.0.0.1", "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, log.read_text()
                time.sleep(1)
        else:
            pytest.fail("optuna-dashboard did not come up:\n" + log.read_text())

        c = T.client(e2e_study.tracking_uri)
        runs = c.search_runs(
            [e2e_study.experiment_id],
            filter_string=f"tags.`{T.TAG_ROLE}` = 'trial' and tags.`{T.TAG_PHASE}` = 'search'",
            max_results=1000,
        )
        cells = {r.data.tags[T.TAG_CELL] for r in runs}
        by_name = {s["study_name"]: s["study_id"] for s in studies}
        assert {f"{e2e_study.name}/{cell}" for cell in cells} <= set(by_name), by_name

        states: dict[str, int] = {}
        for cell in cells:
            detail = _get(f"{base}/api/studies/{by_name[f'{e2e_study.name}/{cell}']}?after=0")
            assert detail["directions"] == ["minimize"]
            for t in detail["trials"]:
                states[t["state"]] = states.get(t["state"], 0) + 1
                if t["state"] in ("Complete", "Pruned"):
                    assert t["intermediate_values"], t  # the learning curve the pruner judged
        pruned_in_mlflow = sum(r.data.tags.get(T.TAG_STATUS) == "pruned" for r in runs)
        assert states.get("Pruned", 0) == pruned_in_mlflow > 0, states
        assert states.get("Complete", 0) > 0, states
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
