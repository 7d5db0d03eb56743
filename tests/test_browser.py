"""The MLflow UI over a finished study store, in a real headless Chromium driven by Playwright.

A user browsing a study needs no code and no clicks: the link `mlptl ui` prints for the study opens the
model-training view (not MLflow 3's GenAI overview) on the runs table, where every trial is listed by
cell with its headline metrics and status as columns, pruned trials included. The run pages and the model
registry carry the rest. Screenshots and page texts are kept in ``test-artifacts/`` as evidence.

Chromium is Debian's (``/usr/bin/chromium``, installed by ``tests/run.sh``); Playwright's own browser
download does not work offline, and Playwright drives any Chromium through ``executable_path``.
"""

from __future__ import annotations

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

from mlptl import metrics as M
from mlptl import tracking as T

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
VIEWPORT = {"width": 1920, "height": 1080}  # a common desktop screen: what "without scrolling" means here
LOAD_MS = 120_000  # the first page load compiles the UI's JavaScript; slow on a loaded 2-core machine

pytestmark = [pytest.mark.slow, pytest.mark.browser]

UI_SCRIPT = (
    "import logging, sys; logging.basicConfig(level=logging.INFO); "
    "from mlptl.cli.ui import run_ui; sys.exit(run_ui(sys.argv[1], '127.0.0.1', int(sys.argv[2])))"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ui(e2e_study, tmp_path_factory):
    """The UI as `mlptl ui` serves it (run_ui), and the per-study links it logged."""
    port = _free_port()
    log = tmp_path_factory.mktemp("ui") / "ui.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", UI_SCRIPT, e2e_study.tracking_uri, str(port)],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url + "/health", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, log.read_text()[-3000:]
                time.sleep(1)
        else:
            pytest.fail("the MLflow UI did not come up:\n" + log.read_text()[-3000:])
        links = dict(re.findall(r"study (\S+): (http\S+)", log.read_text()))
        yield url, links
    finally:
        proc.send_signal(signal.SIGTERM)  # run_ui stops the server's whole process tree (tests/test_ui.py)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.fail("headless Chromium is not installed: `bash tests/run.sh` installs it (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            # Without the background-networking flags Chromium keeps dialling Google on this closed network.
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport=VIEWPORT)  # a fresh profile: what a first-time user sees
    yield ctx.new_page()
    ctx.close()


def _keep(page, name: str) -> str:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    text = page.inner_text("body")
    (ARTIFACTS / f"{name}.txt").write_text(text)
    return text


def _trials(e2e_study):
    c = T.client(e2e_study.tracking_uri)
    return c.search_runs([e2e_study.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=1000)


def test_study_link_opens_the_trials_table_with_metrics_and_pruned_trials(ui, page, e2e_study):
    url, links = ui
    link = links.get(e2e_study.name)
    assert link, f"`mlptl ui` logged no link for study {e2e_study.name!r}: {links}"
    trials = _trials(e2e_study)
    pruned = [r for r in trials if r.data.tags.get(T.TAG_STATUS) == "pruned"]
    finished = [r for r in trials if r.data.tags.get(T.TAG_STATUS) == "finished" and M.BEST_VAL_FORCES_MAE in r.data.metrics]
    assert pruned and finished

    page.goto(link)
    page.get_by_text(pruned[0].info.run_name, exact=True).first.wait_for(timeout=LOAD_MS)
    page.wait_for_timeout(1000)  # the last columns settle
    text = _keep(page, "study-trials-view")

    # The model-training view's runs table, not the GenAI overview MLflow 3 opens by default.
    assert page.get_by_role("heading", name="Runs").first.is_visible()
    assert "Detect Issues" not in text and "Token Usage" not in text

    headers = [h.strip() for h in page.locator("[role=columnheader]").all_inner_texts()]
    for column in (M.BEST_VAL_FORCES_MAE, M.TEST_FORCES_MAE, M.STABLE_FRACTION, "lr", T.TAG_STATUS):
        assert column in headers, (column, headers)
    status_header = page.locator("[role=columnheader]", has_text=T.TAG_STATUS).first.bounding_box()
    assert status_header and status_header["x"] + status_header["width"] / 2 < VIEWPORT["width"], status_header

    # Every cell's trials are listed (grouped by cell, expanded), pruned ones with their status.
    for cell in {r.data.tags[T.TAG_CELL] for r in trials}:
        assert f"Group: {cell}" in text, cell
    for r in pruned:
        row = " ".join(page.locator(f'[role=row][row-id$=".{r.info.run_id}"]').all_inner_texts())
        assert r.info.run_name in row and "pruned" in row, (r.info.run_name, row)
    f = finished[0]
    row = " ".join(page.locator(f'[role=row][row-id$=".{f.info.run_id}"]').all_inner_texts())
    assert f"{f.data.metrics[M.BEST_VAL_FORCES_MAE]:.6f}"[:7] in row, (f.info.run_name, row)


def test_run_pages_and_registry(ui, page, e2e_study):
    url, _ = ui
    exp_id = e2e_study.experiment_id
    page.goto(f"{url}/#/experiments")
    page.get_by_text(e2e_study.name, exact=True).first.wait_for(timeout=LOAD_MS)
    _keep(page, "experiments")

    trials = _trials(e2e_study)
    r = next(r for r in trials if r.data.tags.get(T.TAG_STATUS) == "pruned")
    page.goto(f"{url}/#/experiments/{exp_id}/runs/{r.info.run_id}")
    page.get_by_text(T.TAG_PRUNED_EPOCH).first.wait_for(timeout=LOAD_MS)
    text = _keep(page, "pruned-run")
    assert r.info.run_name in text
    assert "Killed" in text or "KILLED" in text
    for name in ("train_size", "lr", "cell"):
        assert name in text, name

    f = next(
        r for r in trials if r.data.tags.get(T.TAG_PHASE) == "final" and r.data.tags.get(T.TAG_STATUS) == "finished"
    )
    page.goto(f"{url}/#/experiments/{exp_id}/runs/{f.info.run_id}")
    page.get_by_text(M.TEST_FORCES_MAE).first.wait_for(timeout=LOAD_MS)
    text = _keep(page, "final-run")
    for name in (M.TEST_FORCES_MAE, M.STABLE_FRACTION, M.VAL_FORCES_MAE):
        assert name in text, name

    page.goto(f"{url}/#/models")
    first = next(iter(e2e_study.registered.values())).split("/")[0]
    page.get_by_text(first).first.wait_for(timeout=LOAD_MS)
    text = _keep(page, "models")
    for name in e2e_study.registered.values():
        assert name.split("/")[0] in text, name
