"""bench/gpu_packing.py: its CPU dry run packs real trainings, and its workers need no Ray, MLflow or Optuna.

A bare GPU machine may lack the study layer's packages, so the whole dry run (parent and workers) runs
here with ``ray``, ``mlflow`` and ``optuna`` made unimportable by a ``sitecustomize`` on PYTHONPATH
(``sys.modules[name] = None``: ``import ray`` raises ImportError), which the workers inherit.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "bench" / "gpu_packing.py"
BLOCKED = ("ray", "mlflow", "optuna")


@pytest.fixture(scope="module")
def blocked_env(tmp_path_factory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("no-study-layer")
    (site / "sitecustomize.py").write_text(
        "import sys\n" + "".join(f"sys.modules[{m!r}] = None\n" for m in BLOCKED)
    )
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory, blocked_env) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("results")
    work = tmp_path_factory.mktemp("work")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--out", str(out), "--work", str(work)],
                          cwd=REPO_ROOT, env=blocked_env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out, proc


def test_blocker_makes_the_study_layer_unimportable(blocked_env):
    for name in BLOCKED:
        proc = subprocess.run([sys.executable, "-c", f"import {name}"], env=blocked_env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode != 0 and "None in sys.modules" in proc.stderr, (name, proc.stderr[-500:])


def test_dry_run_packs_n_trainings_per_device(dry_run):
    out, _ = dry_run
    text = (out / "gpu_packing_dry_run.json").read_text()
    assert f"{REPO_ROOT}/" not in text  # write_json makes repository paths relative
    res = json.loads(text)
    assert res["benchmark"] == "gpu_packing" and res["device"] == "cpu"
    assert res["settings"]["dry_run"] is True and res["settings"]["packings"] == [1, 2]
    assert {"torch", "nequip", "mlptl_commit", "load_avg_at_start"} <= set(res["machine"])
    epochs = res["settings"]["epochs"]
    assert [p["trials_per_gpu"] for p in res["packings"]] == [1, 2]
    for p in res["packings"]:
        n = p["trials_per_gpu"]
        assert p["ok"] and p["error"] is None, p
        assert p["processes"] == p["trials_finished"] == len(p["trials"]) == n
        assert len({t["pid"] for t in p["trials"]}) == n  # N separate processes
        assert p["gpus_per_trial"] == pytest.approx(1 / n)
        assert p["total_epochs"] == n * epochs
        assert p["epochs_per_s_per_gpu"] > 0 and p["wall_s"] > 0
        assert len(p["per_trial_epochs_per_s"]) == n and all(r > 0 for r in p["per_trial_epochs_per_s"])
        assert p["steady_epochs_per_s_per_gpu"] > 0
        assert p["peak_gpu_allocated_mib_per_trial"] is None  # CPU: no GPU memory
        assert p["peak_rss_mib_per_trial"] > 0
        for t in p["trials"]:
            assert t["device"] == "cpu" and t["cuda_visible_devices"] == ""
            assert t["epochs"] == epochs == len(t["epoch_ends"]) == len(t["epoch_time_s"])
            assert t["forbidden_modules_loaded"] == []
        if n > 1:  # the trials overlapped: each started before any other finished
            trials = p["trials"]
            assert max(t["t_start"] for t in trials) < min(t["t_end"] for t in trials)
    best = res["best"]
    assert best["trials_per_gpu"] in (1, 2)
    assert best["epochs_per_s_per_gpu"] == max(p["epochs_per_s_per_gpu"] for p in res["packings"])
    with open(out / "gpu_packing_dry_run.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["trials_per_gpu"]) for r in rows] == [1, 2]
    assert (out / "gpu_packing_dry_run.png").stat().st_size > 1000
    assert not (out / "gpu_packing.json").exists()  # a dry run never overwrites a measurement


def test_worker_imports_need_no_study_layer(blocked_env):
    """The worker's imports (the script, mlptl.train, the data layer) load with Ray/MLflow/Optuna absent."""
    code = (
        "import sys; sys.path.insert(0, 'bench'); import gpu_packing, mlptl.train, mlptl.data.generate, torch;"
        f"print(sorted(m for m in {BLOCKED!r} if sys.modules.get(m) is not None))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=blocked_env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
