"""The MLflow UI over a finished study store, in a real headless Chromium.

A user browsing a study needs no code: the experiment, its trial runs with their cell parameters and
metrics, a pruned trial marked as such, and the registered models must all be on the pages. Screenshots
are kept in ``test-artifacts/`` as evidence.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mlptl import tracking as T

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(e2e_study):
    store = e2e_study.storage
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlptl.cli", "ui", "--storage", str(store), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # mlflow ui starts a tree of processes: stop them all
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):  # the UI starts slowly on a loaded 2-core machine
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                time.sleep(1)
        else:
            pytest.fail("the MLflow UI did not come up")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _render(url: str, name: str) -> str:
    """The page's DOM after its JavaScript ran, and a screenshot of it."""
    ARTIFACTS.mkdir(exist_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1600,1000",
        "--virtual-time-budget=20000",
    ]
    profile = ARTIFACTS / f".profile-{name}"
    shutil.rmtree(profile, ignore_errors=True)
    flags.append(f"--user-data-dir={profile}")
    subprocess.run([CHROMIUM, *flags, f"--screenshot={ARTIFACTS / (name + '.png')}", url], capture_output=True, timeout=120)
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120).stdout
    (ARTIFACTS / f"{name}.html").write_text(dom)
    shutil.rmtree(profile, ignore_errors=True)
    return dom


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (Debian package chromium)")
def test_mlflow_ui_shows_the_study(ui, e2e_study):
    c = T.client(e2e_study.tracking_uri)
    exp_id = e2e_study.experiment_id
    trials = c.search_runs([exp_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'")
    pruned = [r for r in trials if r.data.tags.get(T.TAG_STATUS) == "pruned"]
    finished = [r for r in trials if r.data.tags.get(T.TAG_PHASE) == "final" and r.data.tags.get(T.TAG_STATUS) == "finished"]
    assert pruned and finished

    home = _render(f"{ui}/#/experiments", "experiments")
    assert e2e_study.name in home

    # The runs table nests trial runs under the study's parent run (one click expands them).
    runs_page = _render(f"{ui}/#/experiments/{exp_id}/runs", "runs")
    n_runs = len(c.search_runs([exp_id], max_results=1000))
    assert re.search(rf"<strong>{n_runs}</strong>\s*matching runs", runs_page)
    assert e2e_study.name in runs_page

    r = pruned[0]
    page = _render(f"{ui}/#/experiments/{exp_id}/runs/{r.info.run_id}", "pruned-run")
    assert r.info.run_name in page
    assert "Killed" in page or "KILLED" in page
    assert "mlptl.pruned_at_epoch" in page
    assert "train_size" in page and "lr" in page and "cell" in page

    f = finished[0]
    page = _render(f"{ui}/#/experiments/{exp_id}/runs/{f.info.run_id}", "final-run")
    for name in ("test_forces_mae", "stability_stable_fraction", "val_forces_mae"):
        assert name in page, name

    models = _render(f"{ui}/#/models", "models")
    assert any(name.split("/")[0] in models for name in e2e_study.registered.values())
