"""Helpers shared by the benchmark scripts: paths, logging, threads, machine description, data sets.

The benchmarks are scripts, not part of the package: they import :mod:`mlptl` like a user would.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import platform
import re
import statistics
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
# Where results are written (and re-analysed from): bench/results, or MLPTL_BENCH_RESULTS (tests/test_bench.py
# points it at a copy, so that a test never rewrites the committed results).
RESULTS_DIR = Path(os.environ.get("MLPTL_BENCH_RESULTS") or BENCH_DIR / "results")
WORK_DIR = BENCH_DIR / "work"  # git-ignored: data caches and run directories
DATA_CACHE = WORK_DIR / "data"

log = logging.getLogger("bench")


class _QuietFilter(logging.Filter):
    """INFO from the benchmark's own loggers; WARNING and above from everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("bench") or record.levelno >= logging.WARNING


def setup_logging(verbose: bool = False) -> None:
    """One stderr handler on the root logger, filtered to the benchmark's progress.

    Importing ``nequip.scripts.package`` (which mlptl.train does to package models) runs Hydra's
    ``configure_log``, adding a second root handler that repeats every line; import it first and
    replace the handlers, so that later imports find logging already configured.
    """
    import nequip.scripts.package  # noqa: F401  (side effect: Hydra's root log handler)

    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_QuietFilter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def set_threads(n: int) -> None:
    """Pin torch's intra-op threads (and OpenMP's, for child processes) before any heavy work."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(n)
    torch.set_num_threads(n)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_state() -> dict[str, Any]:
    """The commit the benchmark ran against, and whether mlptl/ had uncommitted edits."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=BENCH_DIR, capture_output=True, text=True, check=False
        ).stdout.strip()

    return {
        "mlptl_commit": git("rev-parse", "--short", "HEAD"),
        "mlptl_dirty": bool(git("status", "--porcelain", "--", "../mlptl")),
    }


def machine_info() -> dict[str, Any]:
    """Where and when a benchmark ran: enough to judge whether two result files are comparable."""
    from importlib.metadata import version

    info: dict[str, Any] = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "load_avg_at_start": list(os.getloadavg()),
        "python": platform.python_version(),
    }
    info.update(_git_state())
    for pkg in ("torch", "nequip", "nequip-allegro", "lightning"):
        try:
            info[pkg] = version(pkg)
        except Exception:  # a missing package should not stop the benchmark
            info[pkg] = None
    return info


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(obj, indent=2, default=str) + "\n"
    # Paths are written relative to the repository (its sibling ../shared included): results must not
    # carry a machine's layout.
    root = Path(__file__).resolve().parent.parent
    for prefix, rel in ((root, ""), (root.parent, "../")):  # only where a path starts, not inside one
        text = re.sub(r"(?<![\w.-])" + re.escape(json.dumps(f"{prefix}/")[1:-1]), rel, text)
    tmp.write_text(text)
    os.replace(tmp, path)


def ge_data_spec(frames_per_temperature: int = 50):
    """The fixed SW Ge data set of the benchmarks: 64-atom cells from NVT MD at 300 and 900 K.

    Frames are 20 fs apart after 200 fs of equilibration; the data set is cached by its spec hash.
    """
    from mlptl.data.generate import GenerationSpec

    return GenerationSpec(
        element="Ge",
        temperatures=(300.0, 900.0),
        frames_per_temperature=frames_per_temperature,
        supercell=2,
        equilibration_steps=200,
        interval_steps=20,
        friction=0.02,
        seed=0,
    )


def si_data_spec(frames_per_temperature: int = 90):
    """SW Si sampled like :func:`ge_data_spec`, for pretraining the source model."""
    from dataclasses import replace

    return replace(ge_data_spec(frames_per_temperature), element="Si")


def generated(spec, progress: bool = False) -> Path:
    from mlptl.data.generate import generate

    return generate(spec, DATA_CACHE, progress=progress)


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import pandas as pd

    tmp = path.with_name(path.name + ".tmp")
    pd.DataFrame(rows).to_csv(tmp, index=False)
    os.replace(tmp, path)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def finished_run(out: Path, spec_dict: dict[str, Any]) -> dict[str, Any] | None:
    """A finished run of exactly this spec (from an interrupted benchmark), or None."""
    done = out / "bench-run.json"
    if not done.is_file():
        return None
    rec = json.loads(done.read_text())
    return rec if rec.get("spec") == spec_dict else None


def train_or_reuse(spec, reuse: bool) -> dict[str, Any]:
    """Train one :class:`mlptl.train.TrainSpec` (or reuse its finished run); returns spec, metrics, wall time.

    The record is written to ``OUT/bench-run.json`` so that an interrupted benchmark resumes where it stopped.
    """
    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.train import train

    out = Path(spec.out)
    spec_dict = spec.to_dict()
    if reuse and (rec := finished_run(out, spec_dict)) is not None:
        log.info("reusing finished run %s", out.name)
        return rec
    t0 = time.perf_counter()
    result = train(spec, resume=False)
    rec = {
        "spec": spec_dict,
        "metrics": {**evaluate_test_set(result.model_path, result.test_path, element=spec.element, out=out),
                    **result.metrics},
        "epochs_run": result.epochs_run,
        "final_lr": result.history[-1]["lr"],
        "last_val_forces_mae": result.history[-1]["val_forces_mae"],
        "wall_s": time.perf_counter() - t0,
        "model": str(result.model_path),
    }
    write_json(out / "bench-run.json", rec)
    return rec


def metrics_row(rec: dict[str, Any]) -> dict[str, Any]:
    """The columns every benchmark table takes from a :func:`train_or_reuse` record.

    Test errors (overall and per temperature, e.g. ``test_forces_mae.T900``), the validation error, and
    how far training got (epochs, final learning rate, last validation error) and what it cost.
    """
    m = rec["metrics"]
    row = {
        "test_forces_mae": m["test_forces_mae"],
        "test_forces_rmse": m["test_forces_rmse"],
        "test_energy_per_atom_mae": m["test_energy_per_atom_mae"],
        "best_val_forces_mae": m["best_val_forces_mae"],
        "epochs": rec["epochs_run"],
        "final_lr": rec["final_lr"],
        "last_val_forces_mae": rec["last_val_forces_mae"],
        "train_time_s": m["train_time_s"],
        "wall_s": rec["wall_s"],
    }
    for k, v in m.items():
        if k.startswith(("test_forces_mae.", "test_energy_per_atom_mae.")):
            row[k] = v
    return row
