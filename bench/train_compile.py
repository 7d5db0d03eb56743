"""Training with nequip's train-time ``torch.compile`` against eager, per epoch, on the CPU.

nequip 0.19 has two training modes, set by ``compile_mode`` in the model config: ``eager`` (the default)
and ``compile`` (``nequip.nn.compile.CompileGraphModel``: the model is traced with make_fx and compiled by
``torch.compile(dynamic=True)`` on its first batch; Inductor writes C++ on the CPU). ``aotinductor`` is an
export mode for inference (``nequip-compile``, bench/md_speed.py), not a training mode. mlptl exposes the
switch as ``TrainSpec.compile``.

The same training (SW Ge data, one split, seed 0, lr 5e-3, batch 4) runs in both modes, each in a fresh
process, interleaved (eager, compile, eager, compile) per model preset. The first compiled run has an empty
Inductor cache (a new $TMPDIR: Inductor caches under $TMPDIR/torchinductor_$USER); the second reuses the
first's cache, as later trials of a study on the same node would (see :func:`run_child` for what
"empty" takes). The per-epoch figure is the median
epoch time (training + validation, ``epoch_time_s`` of history.csv) over epochs 2..N, beside the
process's CPU time per epoch (less sensitive to other users' load on a shared machine); the first epoch,
which holds the compilation, is reported apart.

Results: bench/results/train_compile.{json,png}. Run directories: bench/work/train_compile/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import RESULTS_DIR, WORK_DIR, machine_info, write_json

log = logging.getLogger("bench.train_compile")
OUT = WORK_DIR / "train_compile"


def data_path(frames_per_temperature: int) -> Path:
    from mlptl.data.generate import generate, preset

    spec = preset("tiny", "Ge", reference="sw", frames_per_temperature=frames_per_temperature)
    return generate(spec, WORK_DIR / "data", progress=False)


def one(cfg: dict) -> dict:
    """A single training in this process (called in a child process by :func:`main`)."""
    import torch
    from _common import set_threads, setup_logging

    setup_logging()
    set_threads(cfg["threads"])
    from mlptl.evaluate.forces import evaluate_test_set
    from mlptl.train import TrainSpec, train

    spec = TrainSpec(element="Ge", data=cfg["data"], out=cfg["out"], model=cfg["model"], lr=5e-3,
                     max_epochs=cfg["epochs"], val_size=cfg["val_size"], test_size=cfg["test_size"], seed=0,
                     batch_size=4, compile=cfg["mode"] == "compile")
    marks = [time.process_time()]

    def on_epoch(report) -> None:
        marks.append(time.process_time())

    t0, c0 = time.perf_counter(), time.process_time()
    res = train(spec, on_epoch=on_epoch, resume=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    # CPU time of this process between epoch ends (the first from before training: setup included);
    # less sensitive to other users' load than the wall-clock epoch time
    epoch_cpu = [b - a for a, b in zip(marks, marks[1:])]
    test = evaluate_test_set(res.model_path, res.test_path, element="Ge")
    return {
        **cfg, "torch_threads": torch.get_num_threads(), "train_wall_s": wall, "train_cpu_s": cpu,
        "epoch_time_s": [h["epoch_time_s"] for h in res.history], "epoch_cpu_s": epoch_cpu,
        "val_forces_mae": [h["val_forces_mae"] for h in res.history],
        "test_forces_mae": test["test_forces_mae"], "n_train": res.metrics["n_train"],
    }


def run_child(cfg: dict, tmpdir: Path, cache_user: str) -> dict:
    tmpdir.mkdir(parents=True, exist_ok=True)
    # Inductor caches under $TMPDIR/torchinductor_$USER, but some of its C++ kernels still land in
    # /tmp/torchinductor_$USER whatever TMPDIR says (and other users' compiles share that one): a user
    # name of our own per cache makes "cold" cold. getpass.getuser() reads LOGNAME/USER first.
    env = {**os.environ, "TMPDIR": str(tmpdir), "TORCHINDUCTOR_CACHE_DIR": str(tmpdir / "inductor"),
           "USER": cache_user, "LOGNAME": cache_user, "OMP_NUM_THREADS": str(cfg["threads"])}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = Path(cfg["out"]) / "bench-result.json"
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--one", json.dumps(cfg)], env=env, cwd=Path(__file__).parent,
                          capture_output=True, text=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"run {cfg['label']} failed:\n{proc.stderr[-4000:]}")
    rec = json.loads(out.read_text())
    rec["process_wall_s"] = time.perf_counter() - t0
    # the child, Inductor's compile workers and gcc, all waited for
    rec["process_tree_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    rec["load1_after"] = os.getloadavg()[0]
    return rec


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for model in dict.fromkeys(r["model"] for r in runs):
        rs = [r for r in runs if r["model"] == model]
        eager = [t for r in rs if r["mode"] == "eager" for t in r["epoch_time_s"][1:]]
        comp = [t for r in rs if r["mode"] == "compile" for t in r["epoch_time_s"][1:]]
        e_med, c_med = statistics.median(eager), statistics.median(comp)
        e_cpu = statistics.median(t for r in rs if r["mode"] == "eager" for t in r["epoch_cpu_s"][1:])
        c_cpu = statistics.median(t for r in rs if r["mode"] == "compile" for t in r["epoch_cpu_s"][1:])
        e_first = statistics.median(r["epoch_time_s"][0] for r in rs if r["mode"] == "eager")
        row = {"model": model, "eager_epoch_s": e_med, "compile_epoch_s": c_med, "ratio_compile_over_eager": c_med / e_med,
               "eager_first_epoch_s": e_first, "eager_epoch_cpu_s": e_cpu, "compile_epoch_cpu_s": c_cpu,
               "cpu_ratio_compile_over_eager": c_cpu / e_cpu}
        # the same ratio per interleaved pair (eager-k against compile-k), which ran under similar load
        row["ratio_per_pair"] = [
            statistics.median(c["epoch_time_s"][1:]) / statistics.median(e["epoch_time_s"][1:])
            for e, c in zip([r for r in rs if r["mode"] == "eager"], [r for r in rs if r["mode"] == "compile"])]
        for r in rs:
            if r["mode"] == "compile":
                tag = r["cache"]
                row[f"compile_first_epoch_s_{tag}"] = r["epoch_time_s"][0]
                # what compiling costs over an eager first epoch
                row[f"compile_overhead_s_{tag}"] = r["epoch_time_s"][0] - e_first
                row[f"compile_process_tree_cpu_s_{tag}"] = r["process_tree_cpu_s"]
                row[f"break_even_epochs_{tag}"] = (row[f"compile_overhead_s_{tag}"] / (e_med - c_med)
                                                   if e_med > c_med else float("inf"))
        row["eager_process_tree_cpu_s"] = statistics.median(r["process_tree_cpu_s"] for r in rs if r["mode"] == "eager")
        ve = [r["val_forces_mae"][-1] for r in rs if r["mode"] == "eager"]
        vc = [r["val_forces_mae"][-1] for r in rs if r["mode"] == "compile"]
        row["last_val_forces_mae_eager"], row["last_val_forces_mae_compile"] = ve, vc
        row["test_forces_mae_eager"] = [r["test_forces_mae"] for r in rs if r["mode"] == "eager"]
        row["test_forces_mae_compile"] = [r["test_forces_mae"] for r in rs if r["mode"] == "compile"]
        rows.append(row)
    return rows


def plot(runs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in runs))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        for r in (r for r in runs if r["model"] == model):
            ls = "-" if r["mode"] == "eager" else ("--" if r["cache"] == "cold" else ":")
            ax.plot(range(1, len(r["epoch_time_s"]) + 1), r["epoch_time_s"], ls, marker="o", ms=3,
                    color="tab:grey" if r["mode"] == "eager" else "tab:blue", label=r["label"])
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_ylabel("epoch time, training + validation [s]")
        ax.set_title(f"{model} preset", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "small"])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--threads", type=int, default=1, help="torch threads (a study trial's default is 1)")
    p.add_argument("--frames-per-temperature", type=int, default=25, help="SW Ge frames per temperature (2 temps)")
    p.add_argument("--val-size", type=int, default=5)
    p.add_argument("--test-size", type=int, default=5)
    p.add_argument("--replot", action="store_true",
                   help="only recompute the summary from the runs in results/train_compile.json and redraw the figure")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.replot:
        runs = json.loads((RESULTS_DIR / "train_compile.json").read_text())["runs"]
        plot(runs, RESULTS_DIR / "train_compile.png")
        for row in summarise(runs):
            print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
        return 0
    if args.one:
        cfg = json.loads(args.one)
        write_json(Path(cfg["out"]) / "bench-result.json", one(cfg))
        return 0
    from _common import setup_logging

    setup_logging()
    info = {"benchmark": "train_compile", "machine": machine_info(), "settings": vars(args),
            "command": "python bench/train_compile.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    data = data_path(args.frames_per_temperature)
    if OUT.exists():
        shutil.rmtree(OUT)
    runs = []
    user = f"mlptl-bench-{os.getpid()}-{int(time.time())}"
    info["inductor_cache_user"] = user
    for model in args.models:
        cache = OUT / f"inductor-{model}"  # one Inductor cache per preset: cold on first use
        for rep in range(2):
            for mode in ("eager", "compile"):
                label = f"{mode}-{rep}" + ("" if mode == "eager" else ("-cold" if rep == 0 else "-warm"))
                cfg = {"label": label, "mode": mode, "model": model, "epochs": args.epochs, "threads": args.threads,
                       "data": str(data), "out": str(OUT / model / label), "val_size": args.val_size,
                       "test_size": args.test_size, "cache": "cold" if rep == 0 else "warm"}
                rec = run_child(cfg, cache if mode == "compile" else OUT / "tmp-eager", f"{user}-{model}")
                runs.append(rec)
                log.info("%s %s: epochs %s s (CPU %s s), process %.0f s wall / %.0f s CPU, last val force MAE %.5f",
                         model, label, [round(t, 2) for t in rec["epoch_time_s"]],
                         [round(t, 2) for t in rec["epoch_cpu_s"]], rec["process_wall_s"],
                         rec["process_tree_cpu_s"], rec["val_forces_mae"][-1])
    summary = summarise(runs)
    info.update(runs=runs, summary=summary)
    info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    write_json(RESULTS_DIR / "train_compile.json", info)
    plot(runs, RESULTS_DIR / "train_compile.png")
    for row in summary:
        log.info("%s", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
