"""GPU packing: how many quick-start trials to run at once on one GPU (Ray's fractional ``gpus_per_trial``).

A study with ``gpus_per_trial = 1/N`` puts N trials on one GPU, each its own process seeing only that GPU
(Ray sets ``CUDA_VISIBLE_DEVICES``). This script does the same without Ray, MLflow or Optuna (which a bare
GPU machine may lack): for each N of ``--packings`` it starts N worker processes of this script on one
device, each training one quick-start search trial through :func:`mlptl.train.train` (tiny Allegro model,
the quick start's SW Ge data, 16 training / 6 validation / 12 test frames, batch 4, scratch, lr 5e-3, one
torch thread; seed = trial index). The workers import and prepare first, then start training together on
a signal from the parent, so that every packing measures trials that actually overlap.

Per packing it writes: the aggregate throughput (all trials' epochs / the wall time from the start signal
to the last trial's last epoch: epochs/s per GPU), the per-trial throughput, a steady-state figure that
leaves out each trial's first epoch (CUDA warm-up), every trial's epoch times, and the memory per trial:
on CUDA the peak of ``torch.cuda.max_memory_allocated`` / ``max_memory_reserved`` (the caching allocator's
view) and, where ``nvidia-smi`` runs, each process's used GPU memory (CUDA context included, what decides
how many trials fit) sampled every 0.5 s; on the CPU the peak RSS (the GPU fields are null). The best
packing is the N of the highest aggregate throughput; ``gpus_per_trial`` = 1/N.

    python bench/gpu_packing.py --device cuda --packings 1,2,4,8 --epochs 20   # on a GPU machine
    python bench/gpu_packing.py --dry-run                                      # CPU, ~1 min: the script works

Results: bench/results/gpu_packing.{json,csv,png} (``--dry-run``: gpu_packing_dry_run.*, so that a dry
run never overwrites a measurement). Data and run directories: bench/work/gpu_packing/ (``--work``).
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
import threading
import time
from pathlib import Path

from _common import RESULTS_DIR, WORK_DIR, machine_info, write_csv, write_json

log = logging.getLogger("bench.gpu_packing")

# Modules a worker must not need: the study layer's, absent from a bare GPU machine.
FORBIDDEN = ("ray", "mlflow", "optuna")
RESULT_FILE = "packing-result.json"


# ----------------------------------------------------------------------------------------- worker
def worker(cfg: dict) -> dict:
    """One trial in this process: import and prepare, wait for the parent's start signal, train."""
    import torch

    torch.set_num_threads(cfg["threads"])
    from mlptl.train import TrainSpec, train

    spec = TrainSpec(element="Ge", data=cfg["data"], out=cfg["out"], model=cfg["model"], lr=cfg["lr"],
                     max_epochs=cfg["epochs"], train_size=cfg["train_size"], val_size=cfg["val_size"],
                     test_size=cfg["test_size"], batch_size=cfg["batch_size"], seed=cfg["seed"], split_seed=0)
    spec.validate()
    Path(cfg["ready"]).touch()
    go = Path(cfg["go"])
    deadline = time.monotonic() + cfg["start_timeout_s"]
    while not go.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("no start signal from the parent")
        time.sleep(0.02)

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    epoch_ends: list[float] = []

    def on_epoch(report) -> None:
        if cuda:
            torch.cuda.synchronize()
        epoch_ends.append(time.time())

    t_start, c0 = time.time(), time.process_time()
    res = train(spec, on_epoch=on_epoch, resume=False)
    t_end, cpu = time.time(), time.process_time() - c0
    mib = 1024.0 ** 2
    rec = {
        "trial": cfg["trial"], "seed": cfg["seed"], "pid": os.getpid(),
        "device": f"cuda ({torch.cuda.get_device_name(0)})" if cuda else "cpu",
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "torch_threads": torch.get_num_threads(),
        "t_start": t_start, "t_end": t_end, "epoch_ends": epoch_ends,
        "epochs": res.epochs_run, "epoch_time_s": [h["epoch_time_s"] for h in res.history],
        "fit_time_s": res.metrics["train_time_s"], "train_call_s": t_end - t_start, "train_cpu_s": cpu,
        # data split, neighbour lists, model build: train() before its first epoch began
        "setup_s": (epoch_ends[0] - res.history[0]["epoch_time_s"] - t_start) if epoch_ends else None,
        "n_train": res.metrics["n_train"], "last_val_forces_mae": res.history[-1]["val_forces_mae"],
        "peak_gpu_allocated_mib": torch.cuda.max_memory_allocated() / mib if cuda else None,
        "peak_gpu_reserved_mib": torch.cuda.max_memory_reserved() / mib if cuda else None,
        "gpu_total_mib": torch.cuda.get_device_properties(0).total_memory / mib if cuda else None,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,  # KiB on Linux
        # what the worker ended up importing of the study layer's packages (must stay empty)
        "forbidden_modules_loaded": sorted(m for m in FORBIDDEN if sys.modules.get(m) is not None),
    }
    return rec


# ----------------------------------------------------------------------------------------- GPU sampling
class SmiSampler:
    """Per-process and whole-GPU used memory (MiB) and GPU utilisation from ``nvidia-smi``, every 0.5 s.

    Per-process figures need the processes' PIDs to be visible to nvidia-smi (not inside every container);
    the whole-GPU figure, minus what was used before the packing started, is the fallback.
    """

    def __init__(self, gpu: str) -> None:
        self.gpu = gpu
        self.per_pid: dict[int, float] = {}
        self.total_used: list[float] = []
        self.util: list[float] = []
        self.baseline_used: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("nvidia-smi") is not None

    def _query(self, *args: str) -> list[list[str]]:
        out = subprocess.run(["nvidia-smi", *args, "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=10, check=False).stdout
        return [[c.strip() for c in line.split(",")] for line in out.splitlines() if line.strip()]

    def _gpu_sample(self) -> tuple[float, float] | None:
        rows = self._query("-i", self.gpu, "--query-gpu=memory.used,utilization.gpu")
        try:
            return float(rows[0][0]), float(rows[0][1])
        except (IndexError, ValueError):
            return None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if (s := self._gpu_sample()) is not None:
                    self.total_used.append(s[0])
                    self.util.append(s[1])
                for row in self._query("-i", self.gpu, "--query-compute-apps=pid,used_memory"):
                    try:
                        pid, used = int(row[0]), float(row[1])
                    except (IndexError, ValueError):
                        continue
                    self.per_pid[pid] = max(used, self.per_pid.get(pid, 0.0))
            except (OSError, subprocess.SubprocessError):
                pass
            self._stop.wait(0.5)

    def start(self) -> None:
        if (s := self._gpu_sample()) is not None:
            self.baseline_used = s[0]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)


# ----------------------------------------------------------------------------------------- parent
def data_path(frames_per_temperature: int, cache: Path) -> Path:
    """The quick start's Ge data set (``preset("tiny", "Ge", reference="sw")``), generated here (no download)."""
    from mlptl.data.generate import generate, preset

    spec = preset("tiny", "Ge", reference="sw", frames_per_temperature=frames_per_temperature)
    return generate(spec, cache, progress=False)


def resolve_device(device: str, gpu: int) -> tuple[str, str | None]:
    """("cuda" or "cpu", the CUDA_VISIBLE_DEVICES value the workers get: one GPU, or none for the CPU)."""
    if device == "cpu":
        return "cpu", ""
    import torch  # device_count() creates no CUDA context in this process

    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        if device == "cuda":
            raise SystemExit(f"--device cuda: torch sees no CUDA device (torch {torch.__version__})")
        return "cpu", ""
    if not 0 <= gpu < n:
        raise SystemExit(f"--gpu {gpu}: torch sees {n} CUDA device(s)")
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [s for s in visible.split(",") if s.strip()] if visible else [str(i) for i in range(n)]
    return "cuda", ids[gpu]


def run_packing(n: int, args: argparse.Namespace, data: Path, work: Path, visible: str) -> dict:
    """N concurrent trials on the device; returns the packing's record (``ok`` False if any trial failed)."""
    pdir = work / f"p{n}"
    shutil.rmtree(pdir, ignore_errors=True)
    pdir.mkdir(parents=True)
    go = pdir / "go"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible, "OMP_NUM_THREADS": str(args.threads),
           "MKL_NUM_THREADS": str(args.threads)}
    procs, cfgs, logs = [], [], []
    t_launch = time.time()
    for i in range(n):
        tdir = pdir / f"trial{i}"
        tdir.mkdir()
        cfg = {"trial": i, "seed": i, "data": str(data), "out": str(tdir / "run"), "model": args.model,
               "lr": args.lr, "epochs": args.epochs, "train_size": args.train_size, "val_size": args.val_size,
               "test_size": args.test_size, "batch_size": args.batch_size, "threads": args.threads,
               "ready": str(tdir / "ready"), "go": str(go), "result": str(tdir / RESULT_FILE),
               "start_timeout_s": args.timeout}
        logf = open(tdir / "worker.log", "w")  # noqa: SIM115  (closed below)
        logs.append(logf)
        procs.append(subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(cfg)],
                                      cwd=Path(__file__).resolve().parent, env=env, stdout=logf,
                                      stderr=subprocess.STDOUT))
        cfgs.append(cfg)
    sampler = SmiSampler(visible) if visible and SmiSampler.available() else None
    if sampler is not None:
        sampler.start()
    failed = None
    try:
        deadline = time.monotonic() + args.timeout
        while not all(Path(c["ready"]).exists() for c in cfgs):
            if any(p.poll() is not None for p in procs):
                failed = "a worker exited before it was ready"
                break
            if time.monotonic() > deadline:
                failed = f"workers not ready after {args.timeout} s"
                break
            time.sleep(0.05)
        t_go = time.time()
        if failed is None:
            go.touch()
        for p in procs:
            try:
                p.wait(timeout=max(1.0, deadline + args.timeout - time.monotonic()) if failed is None else 30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                failed = failed or "a worker timed out"
    finally:
        for p in procs:  # only our own workers, by their handles
            if p.poll() is None:
                p.kill()
                p.wait()
        if sampler is not None:
            sampler.stop()
        for f in logs:
            f.close()
    t_done = time.time()

    trials, errors = [], []
    for cfg, p in zip(cfgs, procs):
        res = Path(cfg["result"])
        if p.returncode == 0 and res.is_file():
            trials.append(json.loads(res.read_text()))
        else:
            tail = (Path(cfg["ready"]).parent / "worker.log").read_text(errors="replace")[-3000:]
            errors.append({"trial": cfg["trial"], "returncode": p.returncode, "log_tail": tail})
    rec: dict = {"trials_per_gpu": n, "gpus_per_trial": 1.0 / n, "processes": n, "trials_finished": len(trials),
                 "ok": failed is None and not errors, "error": failed or (errors and "a worker failed") or None,
                 "worker_errors": errors, "launch_to_exit_s": t_done - t_launch, "launch_to_start_s": t_go - t_launch}
    if trials:
        ends = [t["epoch_ends"][-1] for t in trials if t["epoch_ends"]]
        window = max(ends) - t_go if ends else float("nan")
        total_epochs = sum(t["epochs"] for t in trials)
        per_trial = [t["epochs"] / (t["epoch_ends"][-1] - t_go) for t in trials if t["epoch_ends"]]
        # after each trial's first epoch (CUDA warm-up, first batches): its own rate, summed over the trials
        steady = [(len(t["epoch_ends"]) - 1) / (t["epoch_ends"][-1] - t["epoch_ends"][0])
                  for t in trials if len(t["epoch_ends"]) > 1]
        later_epochs = [s for t in trials for s in t["epoch_time_s"][1:]]

        def peak(key: str) -> float | None:
            vals = [t[key] for t in trials if t.get(key) is not None]
            return max(vals) if vals else None

        rec.update({
            "wall_s": window,
            "total_epochs": total_epochs,
            "epochs_per_s_per_gpu": total_epochs / window if window > 0 else None,
            "per_trial_epochs_per_s": per_trial,
            "per_trial_epochs_per_s_mean": statistics.fmean(per_trial) if per_trial else None,
            "steady_epochs_per_s_per_gpu": sum(steady) if len(steady) == len(trials) else None,
            "median_epoch_s_after_first": statistics.median(later_epochs) if later_epochs else None,
            "first_epoch_s": [t["epoch_time_s"][0] for t in trials],
            "setup_s": [t["setup_s"] for t in trials],
            "peak_gpu_allocated_mib_per_trial": peak("peak_gpu_allocated_mib"),
            "peak_gpu_reserved_mib_per_trial": peak("peak_gpu_reserved_mib"),
            "peak_rss_mib_per_trial": peak("peak_rss_mib"),
            "gpu_total_mib": peak("gpu_total_mib"),
            "trials": trials,
        })
        pids = {t["pid"] for t in trials}
        if sampler is not None:
            seen = {pid: m for pid, m in sampler.per_pid.items() if pid in pids}
            rec["smi_used_mib_per_trial"] = max(seen.values()) if seen else None  # context included
            rec["smi_gpu_used_mib_peak"] = max(sampler.total_used) if sampler.total_used else None
            rec["smi_gpu_used_mib_baseline"] = sampler.baseline_used
            if sampler.total_used and sampler.baseline_used is not None:
                rec["smi_gpu_used_mib_per_trial_from_total"] = (max(sampler.total_used) - sampler.baseline_used) / n
            rec["smi_gpu_util_mean_pct"] = statistics.fmean(sampler.util) if sampler.util else None
    return rec


def summary_rows(packings: list[dict]) -> list[dict]:
    cols = ("trials_per_gpu", "gpus_per_trial", "ok", "trials_finished", "total_epochs", "wall_s",
            "epochs_per_s_per_gpu", "per_trial_epochs_per_s_mean", "steady_epochs_per_s_per_gpu",
            "median_epoch_s_after_first", "peak_gpu_allocated_mib_per_trial", "peak_gpu_reserved_mib_per_trial",
            "smi_used_mib_per_trial", "smi_gpu_used_mib_per_trial_from_total", "smi_gpu_util_mean_pct",
            "peak_rss_mib_per_trial", "launch_to_exit_s", "error")
    return [{c: p.get(c) for c in cols} for p in packings]


def best_packing(packings: list[dict]) -> dict | None:
    ok = [p for p in packings if p["ok"] and p.get("epochs_per_s_per_gpu")]
    if not ok:
        return None
    best = max(ok, key=lambda p: p["epochs_per_s_per_gpu"])
    base = next((p for p in ok if p["trials_per_gpu"] == 1), None)
    return {"trials_per_gpu": best["trials_per_gpu"], "gpus_per_trial": best["gpus_per_trial"],
            "epochs_per_s_per_gpu": best["epochs_per_s_per_gpu"],
            "speedup_over_1": best["epochs_per_s_per_gpu"] / base["epochs_per_s_per_gpu"] if base else None}


def plot(packings: list[dict], device: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [p for p in packings if p.get("epochs_per_s_per_gpu")]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.8))
    ns = [p["trials_per_gpu"] for p in ok]
    unit = "GPU" if device == "cuda" else "CPU device"
    ax.plot(ns, [p["epochs_per_s_per_gpu"] for p in ok], "o-", label=f"all trials (per {unit})")
    ax.plot(ns, [p["per_trial_epochs_per_s_mean"] for p in ok], "s--", label="one trial (mean)")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ns, [str(n) for n in ns])
    ax.set_xlabel(f"trials at once per {unit}")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("epochs / s")
    ax.set_title("throughput", fontsize=9)
    if ok:
        ax.legend(fontsize=8)
    for key, label in (("smi_used_mib_per_trial", "nvidia-smi, per process"),
                       ("peak_gpu_reserved_mib_per_trial", "torch reserved"),
                       ("peak_gpu_allocated_mib_per_trial", "torch allocated"),
                       ("peak_rss_mib_per_trial", "host RSS")):
        pts = [(p["trials_per_gpu"], p[key]) for p in ok if p.get(key) is not None]
        if pts:
            ax2.plot(*zip(*pts), "o-", label=label)
    ax2.set_xscale("log", base=2)
    ax2.set_xticks(ns, [str(n) for n in ns])
    ax2.set_xlabel(ax.get_xlabel())
    ax2.set_ylabel("peak memory per trial [MiB]")
    ax2.set_ylim(bottom=0)
    ax2.set_title("memory", fontsize=9)
    if ax2.lines:
        ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_packings(text: str) -> list[int]:
    try:
        ns = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"integers separated by commas, not {text!r}") from None
    if not ns or any(n < 1 for n in ns):
        raise argparse.ArgumentTypeError(f"positive integers, not {text!r}")
    return ns


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                   help="cuda: fail without a GPU; auto: cuda if torch sees one, else cpu")
    p.add_argument("--gpu", type=int, default=0, help="which visible GPU the trials share")
    p.add_argument("--packings", type=parse_packings, default=[1, 2, 4, 8], help="trials per GPU, e.g. 1,2,4,8")
    p.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    p.add_argument("--model", default="tiny")
    p.add_argument("--lr", type=float, default=5e-3)
    p.add_argument("--frames-per-temperature", type=int, default=20, help="quick start's Ge data (2 temperatures)")
    p.add_argument("--train-size", type=int, default=16)
    p.add_argument("--val-size", type=int, default=6)
    p.add_argument("--test-size", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--threads", type=int, default=1, help="torch threads per trial (a study trial's default)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per packing to start, and again to train")
    p.add_argument("--dry-run", action="store_true",
                   help="CPU, packings 1,2, 2 epochs, 8 frames: checks the script in about a minute")
    p.add_argument("--out", type=Path, default=RESULTS_DIR, help="results directory")
    p.add_argument("--work", type=Path, default=WORK_DIR / "gpu_packing", help="data and run directories")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        cfg = json.loads(args.worker)
        write_json(Path(cfg["result"]), worker(cfg))
        return 0

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.dry_run:
        args.device, args.packings, args.epochs = "cpu", [1, 2], 2
        args.frames_per_temperature, args.train_size, args.val_size, args.test_size = 4, 4, 2, 2
    stem = "gpu_packing_dry_run" if args.dry_run else "gpu_packing"
    device, visible = resolve_device(args.device, args.gpu)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "worker"}
    info: dict = {"benchmark": "gpu_packing", "machine": machine_info(), "settings": settings, "device": device,
                  "cuda_visible_devices": visible or None,
                  "command": "python bench/gpu_packing.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    if device == "cuda" and SmiSampler.available():
        smi = subprocess.run(["nvidia-smi", "-i", visible, "--query-gpu=name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, check=False)
        info["gpu"] = smi.stdout.strip() or None
    log.info("device %s%s, packings %s, %d epochs per trial", device, f" (GPU {visible})" if visible else "",
             args.packings, args.epochs)

    t0 = time.perf_counter()
    data = data_path(args.frames_per_temperature, args.work / "data")
    info["data_generation_s"] = time.perf_counter() - t0
    packings = []
    for n in args.packings:
        rec = run_packing(n, args, data, args.work, visible or "")
        packings.append(rec)
        if rec["ok"]:
            log.info("%d trial(s) at once: %.3f epochs/s per device (%.3f per trial), peak memory per trial: "
                     "GPU allocated %s MiB, nvidia-smi %s MiB, RSS %.0f MiB; %.1f s", n, rec["epochs_per_s_per_gpu"],
                     rec["per_trial_epochs_per_s_mean"], _fmt(rec["peak_gpu_allocated_mib_per_trial"]),
                     _fmt(rec.get("smi_used_mib_per_trial")), rec["peak_rss_mib_per_trial"], rec["wall_s"])
        else:
            log.warning("%d trial(s) at once failed: %s %s", n, rec["error"],
                        rec["worker_errors"][0]["log_tail"][-1500:] if rec["worker_errors"] else "")
    info["packings"] = packings
    info["summary"] = summary_rows(packings)
    info["best"] = best_packing(packings)
    info["total_s"] = time.perf_counter() - t0
    info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{stem}.json", info)
    write_csv(info["summary"], args.out / f"{stem}.csv")
    plot(packings, device, args.out / f"{stem}.png")
    if info["best"]:
        b = info["best"]
        log.info("best packing: %d trials per %s (gpus_per_trial %.3g), %.3f epochs/s", b["trials_per_gpu"],
                 "GPU" if device == "cuda" else "CPU device", b["gpus_per_trial"], b["epochs_per_s_per_gpu"])
    log.info("wrote %s", args.out / f"{stem}.json")
    return 0 if all(p["ok"] for p in packings) else 1


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f}"


if __name__ == "__main__":
    raise SystemExit(main())
