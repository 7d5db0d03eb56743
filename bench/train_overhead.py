"""mlptl's training time against plain ``nequip-train`` on the equivalent config.

Both run as subprocesses on the same data files, the same seed, epochs and thread count, interleaved
(mlptl, nequip, mlptl, nequip, ...) so that load from other processes hits both alike. Two clocks:

* **fit**: the wall time of Lightning's ``trainer.fit`` alone. mlptl: ``train_time_s`` in the run's
  metrics.json (a perf_counter around ``trainer.fit``). nequip-train: the time between its
  ``TRAIN RUN START`` and ``TRAIN RUN END`` log lines in train.log, which bracket its ``trainer.fit`` call.
* **whole command**: process start to exit. mlptl's command does extra work nequip-train does not:
  splitting and writing the data, packaging the best checkpoint and evaluating the package on the test set;
  these are timed separately once (``--breakdown``).

The nequip config is built from the same functions mlptl.train uses (``mlptl.train.config``: ``data_config``,
``model_config``, ``training_module_config``) and written as YAML next to the runs, with the trainer settings mlptl uses
(no logger, ModelCheckpoint on ``val0_epoch/weighted_sum`` with ``save_last``). The only edit: the
optimizer's ``param_groups`` factory (mlptl's hook for frozen weights) is dropped; for a scratch run it
selects every parameter, as nequip's default does.

``--threads-probe`` instead compares mlptl's fit time with 1 and 2 torch threads, interleaved, to choose
the thread count under the current load.

    python bench/train_overhead.py                       # defaults: tiny model, 50 frames, 20 epochs, 4 pairs
    python bench/train_overhead.py --threads-probe
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    ge_data_spec,
    generated,
    machine_info,
    set_threads,
    setup_logging,
    write_json,
)

log = logging.getLogger("bench.train_overhead")

VENV_BIN = Path(sys.executable).parent
# nequip-train's Hydra log: "[2026-11-25 14:05:42,462][nequip.scripts.train][INFO] - TRAIN RUN START"
_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]")


# ---------------------------------------------------------------- configs
def _train_spec(args: argparse.Namespace, data: Path, out: Path):
    from mlptl.train import TrainSpec

    return TrainSpec(
        element="Ge",
        data=str(data),
        out=str(out),
        lr=args.lr,
        max_epochs=args.epochs,
        train_size=args.train_size,
        val_size=args.val_size,
        test_size=args.test_size,
        batch_size=args.batch_size,
        seed=args.seed,
        model=args.model,
    )


def nequip_config(spec, paths: dict[str, Path]) -> dict[str, Any]:
    """The nequip-train config equivalent to what :func:`mlptl.train.train` builds for ``spec``."""
    from hydra.utils import instantiate
    from nequip.utils.global_state import set_global_state

    from mlptl.train.config import data_config as _data_config
    from mlptl.train.config import model_config as _model_config
    from mlptl.train.config import training_module_config as _training_module_config

    set_global_state()
    data_cfg = _data_config(spec, paths, spec.model_spec().r_max)
    # The same statistics mlptl computes in prepare(); nequip-train computes them again at start-up
    # (it always calls get_statistics), so both commands pay for them once.
    datamodule = instantiate(data_cfg, _recursive_=False)
    stats = {
        k: (v.item() if hasattr(v, "numel") and v.numel() == 1 else v)
        for k, v in datamodule.get_statistics(dataset="train").items()
    }
    model_cfg, _ = _model_config(spec, stats, None)
    tm_cfg = _training_module_config(spec, model_cfg)
    tm_cfg["optimizer"].pop("param_groups", None)
    # val and test metrics are one shared dict: copy it, so the YAML needs no anchors
    tm_cfg["test_metrics"] = copy.deepcopy(tm_cfg["test_metrics"])
    return {
        "run": ["train"],
        "global_options": {"allow_tf32": False},  # ignored by nequip 0.19; kept for older/newer configs
        "data": data_cfg,
        "trainer": {
            "_target_": "lightning.Trainer",
            "max_epochs": spec.max_epochs,
            "check_val_every_n_epoch": 1,
            "num_sanity_val_steps": 0,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "logger": False,
            "accelerator": "auto",
            "devices": 1,
            "callbacks": [
                {
                    "_target_": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "dirpath": "${hydra:runtime.output_dir}/checkpoints",
                    "filename": "best",
                    "monitor": "val0_epoch/weighted_sum",
                    "mode": "min",
                    "save_last": True,
                }
            ],
        },
        "training_module": tm_cfg,
    }


# ---------------------------------------------------------------- runs
# Both commands run through the same wrapper: it patches lightning.Trainer.fit with a clock (wall and
# CPU time of this process) and then calls the command's console entry point exactly as its script in
# the venv's bin/ does. The bracket is therefore identical for the two tools. With BENCH_PROFILE set,
# the fit (only) runs under cProfile with a CPU-time timer (robust to other processes' load).
_WRAPPER = """
import cProfile, json, os, sys, time
import lightning

_fit = lightning.Trainer.fit
_profile = os.environ.get("BENCH_PROFILE")


def _clocked_fit(self, *args, **kwargs):
    prof = cProfile.Profile(time.process_time) if _profile else None
    c0, w0 = time.process_time(), time.perf_counter()
    try:
        if prof is None:
            return _fit(self, *args, **kwargs)
        return prof.runcall(_fit, self, *args, **kwargs)
    finally:
        clock = {"fit_wall_s": time.perf_counter() - w0, "fit_cpu_s": time.process_time() - c0}
        with open(os.environ["BENCH_FIT_CLOCK"], "w") as f:
            json.dump(clock, f)
        if prof is not None:
            prof.dump_stats(_profile)


lightning.Trainer.fit = _clocked_fit
tool = sys.argv.pop(1)
if tool.startswith("mlptl"):
    from mlptl.cli import main
else:
    from nequip.scripts.train import main
sys.argv[0] = tool
sys.exit(main())
"""


def _env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    env["MKL_NUM_THREADS"] = str(threads)
    return env


def _run(tool: str, argv: list[str], out: Path, threads: int, profile: Path | None) -> dict[str, float]:
    """Run one command; its wall and CPU time (user + system, from the children's rusage) and fit clock."""
    clock = out.with_name(out.name + ".fit-clock.json")
    clock.unlink(missing_ok=True)
    env = _env(threads)
    env["BENCH_FIT_CLOCK"] = str(clock)
    if profile is not None:
        env["BENCH_PROFILE"] = str(profile)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, tool, *argv], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    fit = json.loads(clock.read_text())
    return {
        "whole_s": wall,
        "whole_cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
        "fit_s": fit["fit_wall_s"],
        "fit_cpu_s": fit["fit_cpu_s"],
    }


def _log_times(train_log: Path) -> float:
    """Seconds between nequip-train's TRAIN RUN START and TRAIN RUN END lines (a cross-check)."""
    start = end = None
    for line in train_log.read_text().splitlines():
        m = _LOG_TIME.match(line)
        if not m:
            continue
        t = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if "TRAIN RUN START" in line:
            start = t
        elif "TRAIN RUN END" in line:
            end = t
    if start is None or end is None:
        raise RuntimeError(f"no TRAIN RUN START/END in {train_log}")
    return end - start


def run_nequip(cfg_path: Path, out: Path, threads: int, profile: Path | None = None) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    argv = ["-cp", str(cfg_path.parent.resolve()), "-cn", cfg_path.name, f"hydra.run.dir={out.resolve()}"]
    r = _run("nequip-train", argv, out, threads, profile)
    r["fit_log_s"] = _log_times(out / "train.log")
    r["best_val_loss"] = _nequip_best_val(out)
    return r


def _nequip_best_val(out: Path) -> float:
    import torch

    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    for cb in ckpt.get("callbacks", {}).values():
        if "best_model_score" in cb and cb["best_model_score"] is not None:
            return float(cb["best_model_score"])
    return float("nan")


def run_mlptl(
    args: argparse.Namespace,
    data: Path,
    out: Path,
    threads: int,
    profile: Path | None = None,
    tool: str = "mlptl",
) -> dict[str, float]:
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        "train",
        "--element=Ge",
        f"--data={data}",
        f"--out={out}",
        f"--lr={args.lr}",
        f"--max-epochs={args.epochs}",
        f"--train-size={args.train_size}",
        f"--val-size={args.val_size}",
        f"--test-size={args.test_size}",
        f"--batch-size={args.batch_size}",
        f"--seed={args.seed}",
        f"--model-size={args.model}",
        "--restart",
    ]
    r = _run(tool, argv, out, threads, profile)
    metrics = json.loads((out / "metrics.json").read_text())
    import pandas as pd

    hist = pd.read_csv(out / "history.csv")
    r.update(
        train_time_s=float(metrics["train_time_s"]),  # mlptl's own clock: fit + writing history.csv
        epoch_time_sum_s=float(hist["epoch_time_s"].sum()),
        best_val_loss=float(hist["val_loss"].min()),
        test_forces_mae=float(metrics["test_forces_mae"]),
    )
    return r


def _summary(values: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def breakdown(args: argparse.Namespace, run_dir: Path, threads: int) -> dict[str, float]:
    """Time mlptl's work outside the fit once, in this process: packaging and test evaluation."""
    from mlptl.evaluate.forces import force_errors
    from mlptl.train import package

    set_threads(threads)
    ckpt = run_dir / "checkpoints" / "best.ckpt"
    t0, c0 = time.perf_counter(), time.process_time()
    pkg = package(ckpt, run_dir / "bench-breakdown.nequip.zip")
    t1, c1 = time.perf_counter(), time.process_time()
    force_errors(pkg, run_dir / "data" / "test.extxyz", element="Ge")
    t2, c2 = time.perf_counter(), time.process_time()
    pkg.unlink()
    return {
        "package_s": t1 - t0,
        "package_cpu_s": c1 - c0,
        "test_eval_s": t2 - t1,
        "test_eval_cpu_s": c2 - c1,
    }


def import_time(threads: int, repeats: int = 3) -> dict[str, float]:
    """Process start-up: importing what both commands import (torch, lightning, nequip, allegro)."""
    code = "import torch, lightning, nequip.train, allegro.model, hydra"
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], env=_env(threads), check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return _summary(times)


# ---------------------------------------------------------------- main modes
CLOCKS = {
    "fit_s": "fit, wall [s]",
    "fit_cpu_s": "fit, CPU [s]",
    "whole_s": "whole command, wall [s]",
    "whole_cpu_s": "whole command, CPU [s]",
}


def _setup_overhead(args: argparse.Namespace) -> tuple[Path, Path, Path, dict[str, Path]]:
    """The data file, the split nequip-train reads, and the nequip config written as YAML."""
    import yaml

    from mlptl.train import prepare_data

    work = WORK_DIR / "overhead"
    work.mkdir(parents=True, exist_ok=True)
    data = generated(ge_data_spec())
    # The split mlptl makes for this spec, written once; nequip-train reads these files.
    spec = _train_spec(args, data, work / "nequip-data")
    paths = prepare_data(spec, work / "nequip-data")
    cfg = nequip_config(spec, paths)
    cfg_path = work / "nequip_config.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cfg_path, RESULTS_DIR / "train_overhead_nequip_config.yaml")
    log.info("nequip config: %s", cfg_path)
    return work, data, cfg_path, paths


def _arms(args: argparse.Namespace) -> list[str]:
    """What runs in each interleaved round (a list, so that a variant can be added as a third arm)."""
    return ["mlptl", "nequip"]


def summarise(runs: list[dict[str, Any]], arms: list[str]) -> dict[str, Any]:
    """Per arm, the clocks' median and range over the counted rounds; per arm against nequip-train, the
    ratio of the medians and the median of the per-round (paired) ratios."""
    counted = [r for r in runs if r["counted"]]
    res: dict[str, Any] = {"arms": arms, "per_tool": {}, "ratio": {}}
    for tool in arms:
        rs = [r for r in counted if r["tool"] == tool]
        res["per_tool"][tool] = {k: _summary([r[k] for r in rs]) for k in CLOCKS}
        res["per_tool"][tool]["outside_fit_s"] = _summary([r["whole_s"] - r["fit_s"] for r in rs])
    n = {r["pair"]: r for r in counted if r["tool"] == "nequip"}
    for tool in arms:
        if tool == "nequip":
            continue
        m = {r["pair"]: r for r in counted if r["tool"] == tool}
        res["ratio"][tool] = {
            k: {
                "of_medians": res["per_tool"][tool][k]["median"] / res["per_tool"]["nequip"][k]["median"],
                "paired": _summary([m[p][k] / n[p][k] for p in sorted(m)]),
            }
            for k in CLOCKS
        }
    return res


def overhead(args: argparse.Namespace) -> dict[str, Any]:
    work, data, cfg_path, paths = _setup_overhead(args)
    runs: list[dict[str, Any]] = []
    for i in range(args.warmup + args.repeats):
        counted = i >= args.warmup
        # ABBA: every other round starts with the other command, so that a systematic advantage of
        # running first or second (caches, the load of the moment) cancels over pairs of rounds.
        order = _arms(args) if i % 2 == 0 else _arms(args)[::-1]
        for pos, tool in enumerate(order):
            out = work / f"{tool}-run"
            if tool.startswith("mlptl"):
                r = run_mlptl(args, data, out, args.threads, tool=tool)
            else:
                r = run_nequip(cfg_path, out, args.threads)
            r.update(
                tool=tool, pair=i - args.warmup, position=pos, counted=counted, load_avg_1m=os.getloadavg()[0]
            )
            runs.append(r)
            log.info(
                "%s %s: fit %.1f s wall / %.1f s CPU, whole %.1f s wall / %.1f s CPU, load %.1f%s",
                "pair" if counted else "warm-up",
                tool,
                r["fit_s"],
                r["fit_cpu_s"],
                r["whole_s"],
                r["whole_cpu_s"],
                r["load_avg_1m"],
                "" if counted else " (not counted)",
            )
        if i == 0:  # the data files both commands read must be the same bytes (mlptl writes its own)
            for name in ("train", "val", "test"):
                if (work / "mlptl-run" / "data" / f"{name}.extxyz").read_bytes() != paths[name].read_bytes():
                    raise RuntimeError(f"mlptl's {name} split differs from the nequip config's file")
    res = summarise(runs, _arms(args))
    res["runs"] = runs
    if args.breakdown:
        res["mlptl_extra_work"] = breakdown(args, work / "mlptl-run", args.threads)
        res["import_time_s"] = import_time(args.threads)
    return res


_KEY_FUNCTIONS = {
    # what the fit does per epoch that could differ between the commands
    "trainer.py(save_checkpoint)": "checkpoint writes (Trainer.save_checkpoint)",
    "train.py(_write_history)": "mlptl: history.csv",
    "train.py(on_train_epoch_end)": "mlptl: epoch callback, end of epoch",
    "train.py(on_validation_end)": "mlptl: epoch callback, after validation",
    "<frozen importlib._bootstrap>(_find_and_load)": "module imports inside the fit",
    "lightning.py(training_step)": "nequip training_step",
    "lightning.py(validation_step)": "nequip validation_step",
}


def _profile_table(path: Path) -> dict[str, dict[str, float]]:
    import pstats

    st = pstats.Stats(str(path))
    out: dict[str, dict[str, float]] = {}
    for (file, _line, func), (_cc, nc, tt, ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        key = f"{Path(file).name}({func})"
        d = out.setdefault(key, {"ncalls": 0, "tottime": 0.0, "cumtime": 0.0})
        d["ncalls"] += nc
        d["tottime"] += tt
        d["cumtime"] = max(d["cumtime"], ct)  # recursion and same-named functions: keep the outermost
    return out


def profile(args: argparse.Namespace) -> dict[str, Any]:
    """One run of each arm with its fit under cProfile (CPU-time timer): where does mlptl spend more?"""
    import pstats

    work, data, cfg_path, _ = _setup_overhead(args)
    stats = {}
    for tool in _arms(args)[:: -1 if args.nequip_first else 1]:
        prof = work / f"{tool}.prof"
        out = work / f"{tool}-profile-run"
        if tool.startswith("mlptl"):
            run_mlptl(args, data, out, args.threads, profile=prof, tool=tool)
        else:
            run_nequip(cfg_path, out, args.threads, profile=prof)
        text = RESULTS_DIR / f"train_overhead_profile_{tool}.txt"
        with text.open("w") as f:
            pstats.Stats(str(prof), stream=f).sort_stats("cumulative").print_stats(60)
        stats[tool] = _profile_table(prof)
        log.info("profile of %s: %s", tool, text)
    empty = {"ncalls": 0, "tottime": 0.0, "cumtime": 0.0}
    res: dict[str, Any] = {
        "arms": _arms(args),
        "fit_cpu_s_under_profile": {t: max(v["cumtime"] for v in st.values()) for t, st in stats.items()},
        "key_functions": {
            label: {t: stats[t].get(k, empty) for t in stats} for k, label in _KEY_FUNCTIONS.items()
        },
    }
    for tool in stats:
        if tool == "nequip":
            continue
        diff = []
        for k in set(stats[tool]) | set(stats["nequip"]):
            a, b = stats[tool].get(k, empty), stats["nequip"].get(k, empty)
            diff.append(
                {
                    "function": k,
                    "calls": a["ncalls"],
                    "nequip_calls": b["ncalls"],
                    "extra_self_s": a["tottime"] - b["tottime"],
                    "extra_cum_s": a["cumtime"] - b["cumtime"],
                }
            )
        diff.sort(key=lambda d: -d["extra_self_s"])
        res[f"top_extra_self_time_{tool}"] = diff[:25]
    return res


def threads_probe(args: argparse.Namespace) -> dict[str, Any]:
    work = WORK_DIR / "threads"
    work.mkdir(parents=True, exist_ok=True)
    data = generated(ge_data_spec())
    runs = []
    for i in range(args.warmup + args.repeats):
        for threads in (1, 2):
            r = run_mlptl(args, data, work / f"t{threads}", threads)
            r.update(
                threads=threads,
                pair=i - args.warmup,
                counted=i >= args.warmup,
                load_avg_1m=os.getloadavg()[0],
            )
            runs.append(r)
            log.info(
                "threads %d: fit %.1f s wall, %.1f s CPU (load %.2f)",
                threads,
                r["fit_s"],
                r["fit_cpu_s"],
                r["load_avg_1m"],
            )
    counted = [r for r in runs if r["counted"]]
    per = {t: _summary([r["fit_s"] for r in counted if r["threads"] == t]) for t in (1, 2)}
    return {"fit_s": per, "ratio_2_over_1": per[2]["median"] / per[1]["median"], "runs": runs}


def plot(res: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = res["arms"]
    labels = {"mlptl": "mlptl train", "nequip": "nequip-train", "mlptl-patched": "mlptl +fixes"}
    labels.update({t: t for t in arms if t not in labels})
    counted = [r for r in res["runs"] if r["counted"]]
    fig, axes = plt.subplots(1, len(CLOCKS), figsize=(3.2 * len(CLOCKS), 4.2))
    for ax, (key, label) in zip(axes, CLOCKS.items()):
        for x, tool in enumerate(arms):
            vals = [r[key] for r in counted if r["tool"] == tool]
            ax.bar(x, statistics.median(vals), color=f"C{x}", alpha=0.5, width=0.6)
            ax.plot([x] * len(vals), vals, "ko", ms=4)
        for p in sorted({r["pair"] for r in counted}):  # lines join the runs of one interleaved round
            ys = [next(r[key] for r in counted if r["pair"] == p and r["tool"] == t) for t in arms]
            ax.plot(range(len(arms)), ys, "k-", lw=0.5, alpha=0.4)
        ax.set_xticks(range(len(arms)), [labels[t] for t in arms], fontsize=8)
        ratios = ", ".join(
            f"{labels[t].split()[0] + (' +fixes' if t.endswith('patched') else '')}/nequip "
            f"{res['ratio'][t][key]['of_medians']:.3f}"
            for t in arms
            if t != "nequip"
        )
        ax.set_title(f"{label}\n{ratios}", fontsize=8)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"{title}  (dots: runs, lines: rounds, bars: medians)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _title(s: dict[str, Any]) -> str:
    return (
        f"{s['model']} Allegro, {s['train_size']} Ge frames, {s['epochs']} epochs, "
        f"{s['threads']} thread(s), {s['repeats']} interleaved rounds"
    )


def replot(name: str) -> int:
    """Redraw the PNG and reprint the table from a results JSON, without running anything."""
    res = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    plot(res, RESULTS_DIR / f"{name}.png", _title(res["settings"]))
    print_table(res)
    return 0


def print_table(res: dict[str, Any]) -> None:
    arms = res["arms"]
    others = [t for t in arms if t != "nequip"]
    head = f"{'median over rounds':24}" + "".join(f"{t:>15}" for t in arms)
    head += "".join(f"{t + '/nequip':>22}" for t in others)
    print(head)
    for key, label in CLOCKS.items():
        row = f"{label:24}" + "".join(f"{res['per_tool'][t][key]['median']:15.2f}" for t in arms)
        for t in others:
            r = res["ratio"][t][key]
            row += f"{r['of_medians']:9.3f} ({r['paired']['min']:.3f}-{r['paired']['max']:.3f})"
        print(row)
    if "mlptl_extra_work" in res:
        x = res["mlptl_extra_work"]
        print(
            f"mlptl extra work (once, in-process): packaging {x['package_s']:.2f} s wall / "
            f"{x['package_cpu_s']:.2f} s CPU, test evaluation {x['test_eval_s']:.2f} s wall / "
            f"{x['test_eval_cpu_s']:.2f} s CPU"
        )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tiny", help="model preset (tiny, small, paper)")
    p.add_argument("--train-size", type=int, default=50)
    p.add_argument("--val-size", type=int, default=10)
    p.add_argument("--test-size", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads in each subprocess (OMP_NUM_THREADS)"
    )
    p.add_argument("--repeats", type=int, default=4, help="counted interleaved pairs")
    p.add_argument("--warmup", type=int, default=1, help="uncounted pairs first (cold caches)")
    p.add_argument(
        "--no-breakdown", dest="breakdown", action="store_false", help="skip timing mlptl's extra work"
    )
    p.add_argument("--nequip-first", action="store_true", help="--profile: run nequip-train first")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--threads-probe", action="store_true", help="compare 1 and 2 threads for mlptl instead"
    )
    mode.add_argument("--profile", action="store_true", help="one cProfile'd run of each instead")
    p.add_argument("--replot", metavar="NAME", help="only redraw bench/results/NAME.png from NAME.json")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.replot)
    setup_logging(args.verbose)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    t0 = time.perf_counter()
    if args.threads_probe:
        res, name = threads_probe(args), "threads"
    elif args.profile:
        res, name = profile(args), "train_overhead_profile"
    else:
        res, name = overhead(args), "train_overhead"
    wall = time.perf_counter() - t0
    out = {
        "benchmark": name,
        "command": " ".join(["python bench/train_overhead.py", *(sys.argv[1:] if argv is None else argv)]),
        "machine": {**info, "load_avg_at_end": list(os.getloadavg())},
        "settings": {k: v for k, v in vars(args).items() if k not in ("verbose", "replot")},
        "benchmark_wall_s": wall,
        **res,
    }
    write_json(RESULTS_DIR / f"{name}.json", out)
    if args.threads_probe:
        f = res["fit_s"]
        print(f"fit, 1 thread : median {f[1]['median']:.1f} s  ({f[1]['min']:.1f}-{f[1]['max']:.1f})")
        print(f"fit, 2 threads: median {f[2]['median']:.1f} s  ({f[2]['min']:.1f}-{f[2]['max']:.1f})")
        print(f"2 threads / 1 thread: {res['ratio_2_over_1']:.3f}")
    elif args.profile:
        arms = res["arms"]
        print(
            "fit CPU time under cProfile [s]: "
            + ", ".join(f"{t} {v:.2f}" for t, v in res["fit_cpu_s_under_profile"].items())
        )
        print(f"{'cumulative CPU [s] (calls)':46}" + "".join(f"{t:>20}" for t in arms))
        for label, per in res["key_functions"].items():
            print(f"{label:46}" + "".join(f"{per[t]['cumtime']:12.3f} ({per[t]['ncalls']:>4})" for t in arms))
    else:
        plot(res, RESULTS_DIR / f"{name}.png", _title(vars(args)))
        print_table(res)
    log.info("benchmark wall time %.0f s", wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
