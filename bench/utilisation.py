"""How busy a study keeps the machine's cores: CPU utilisation of the search, the final phase and the whole study.

Runs a real study (default: ``studies/quickstart.py`` unchanged) through ``mlptl.run`` (as ``mlptl run``) into a fresh
store under bench/work/utilisation/, then computes from its MLflow runs

    utilisation = sum of the trials' CPU time / (cores x wall time of the window)

for three windows: the search (first search trial's MLflow start to the last search trial's end), the
final phase (the final Ray Tune run's trials; finals back-filled into the search's tail are counted
apart) and the whole study (the parent run's start to its end, pretraining, data, registry and report
included). A trial's CPU time is the ``cpu_time_s`` it logs (process CPU time, all threads); a pruned
trial is stopped by Ray before it logs one, so its CPU time comes from sampling the worker process it ran
in (``/proc`` through psutil, once a second, the process id read from Ray's ``result.json``); the same
sampler gives the CPU of the study's whole process tree (driver, Ray, workers) and of the machine, i.e.
what other users took. The sampled CPU time of every finished trial is checked against its logged
``cpu_time_s``. A Gantt chart shows each trial on the worker process that ran it, coloured by phase.

Results: bench/results/utilisation.{json,png}; samples: bench/work/utilisation/utilisation_samples.{csv,json}.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, WORK_DIR, machine_info, write_json  # noqa: E402

from mlptl import metrics as M  # noqa: E402

log = logging.getLogger("bench.utilisation")
#: The per-trial wall-time metrics a trial logs.
TIMING = (M.TIME_STARTUP, M.TIME_TRAIN, M.TIME_EVALUATE, M.TIME_RECORD)
ROOT = Path(__file__).resolve().parent.parent
STORE = WORK_DIR / "utilisation"


class Sampler(threading.Thread):
    """Once per ``interval``: machine CPU (busy core-seconds) and per-process CPU of this process's tree.

    A process's CPU time is cumulative; the last value seen is kept after it exits, so the tree's total
    loses at most one interval per exited process.
    """

    def __init__(self, interval: float = 1.0):
        super().__init__(daemon=True)
        self.interval = interval
        self.rows: list[dict] = []
        self.procs: dict[int, dict] = {}  # pid -> name, samples [(t, cpu_s)]
        self._halt = threading.Event()
        import psutil  # only a measuring run needs it (the analysis of saved results does not)

        self.me = psutil.Process()
        self.driver = self.me.pid

    @staticmethod
    def _busy() -> float:
        import psutil

        # guest time is already inside user/nice on Linux; steal is the hypervisor's, not ours
        t = psutil.cpu_times()
        return t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)

    def sample(self) -> None:
        import psutil

        now = time.time()
        tree = 0.0
        try:
            procs = [self.me, *self.me.children(recursive=True)]
        except psutil.Error:
            procs = [self.me]
        for p in procs:
            try:
                with p.oneshot():
                    ct = p.cpu_times()
                    cpu = ct.user + ct.system
                    rec = self.procs.setdefault(p.pid, {"name": p.name(), "samples": []})
                    rec["name"] = p.name()  # Ray renames workers (ray::IDLE -> ray::ImplicitFunc.train)
                    rec["samples"].append((now, cpu))
            except psutil.Error:
                continue
        for rec in self.procs.values():
            tree += rec["samples"][-1][1]
        self.rows.append({"t": now, "machine_busy_s": self._busy(), "tree_cpu_s": tree,
                          "load1": os.getloadavg()[0]})

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.frame().to_csv(path.with_suffix(".csv"), index=False)
        path.with_suffix(".json").write_text(json.dumps(
            {"driver": self.driver, "procs": {str(k): v for k, v in self.procs.items()}}))

    @classmethod
    def load(cls, path: Path) -> Sampler:
        s = cls()
        s.rows = pd.read_csv(path.with_suffix(".csv")).to_dict(orient="records")
        saved = json.loads(path.with_suffix(".json").read_text())
        s.driver = int(saved["driver"])
        s.procs = {int(k): v for k, v in saved["procs"].items()}
        return s

    def by_group(self, t0: float, t1: float, trial_pids: set[int]) -> dict[str, float]:
        """CPU seconds in [t0, t1] of the study's processes, grouped by role."""
        out: dict[str, float] = {}
        for pid, rec in self.procs.items():
            if pid == self.driver:
                group = "driver (Tune controller, Optuna, MLflow client)"
            elif pid in trial_pids:
                group = "trial worker processes"
            elif rec["name"].startswith("ray::"):
                group = "other Ray workers (tasks, agents)"
            else:
                group = "Ray daemons (gcs, raylet, monitors)"
            cpu = self.cpu_between(pid, t0, t1)
            if cpu == cpu:
                out[group] = out.get(group, 0.0) + cpu
        return out

    def cpu_between(self, pid: int, t0: float, t1: float) -> float:
        """CPU seconds process ``pid`` used in [t0, t1] (linear between samples)."""
        rec = self.procs.get(pid)
        if rec is None or len(rec["samples"]) < 2:
            return float("nan")
        ts, cs = np.array(rec["samples"]).T
        # outside its lifetime a process used nothing: clamp to the sampled span
        lo, hi = max(t0, ts[0]), min(t1, ts[-1])
        return float(np.interp(hi, ts, cs) - np.interp(lo, ts, cs)) if hi > lo else 0.0


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def make_study(args):
    from mlptl.study.load import add_override_arguments, apply_overrides, load_study

    study = load_study(ROOT / args.study)
    p = argparse.ArgumentParser()
    add_override_arguments(p)
    over = ["--name", args.name, "--storage", str(STORE / args.name)]
    for flag in ("max_epochs", "trials_per_cell", "cpus_per_trial"):
        v = getattr(args, flag)
        if v is not None:
            over += [f"--{flag.replace('_', '-')}", str(v)]
    study = apply_overrides(study, p.parse_args(over))
    return replace(study, description=f"bench/utilisation.py on {args.study}")


def ray_trials(storage: Path) -> pd.DataFrame:
    """Every Ray Tune trial of the study: its trial key, the Tune run it belonged to and its worker's pid."""
    rows = []
    for res in (storage / "ray").glob("*/*/result.json"):
        run_name = res.parent.parent.name
        lines = [json.loads(x) for x in res.read_text().splitlines() if x.strip()]
        if not lines:
            continue
        key = next((x["trial_key"] for x in lines if "trial_key" in x), None)
        rows.append({"trial_key": key, "ray_run": "search" if "-search-" in run_name else "final",
                     "pid": int(lines[-1]["pid"]), "reports": len(lines)})
    return pd.DataFrame(rows)


def window(t0: float, t1: float, trials: pd.DataFrame, label: str, cores: int, samples: pd.DataFrame,
           sampler: Sampler | None = None, trial_pids: set[int] = frozenset()) -> dict:
    """Utilisation of the window [t0, t1]: the trials' CPU time in it over cores x its wall time; with
    ``samples``, also the sampled CPU of the study's process tree and of the machine."""
    w = t1 - t0
    # each trial's CPU counted in proportion to the part of its run inside the window
    ov = (np.minimum(trials.end, t1) - np.maximum(trials.start, t0)).clip(lower=0)
    frac = (ov / trials.wall_s.replace(0, np.nan)).fillna(0)
    cpu = float((trials.cpu_s * frac).sum())
    out = {"window": label, "start": t0, "end": t1, "wall_s": w, "trials": int((ov > 0).sum()),
           "trial_cpu_s": cpu, "utilisation": cpu / (cores * w) if w > 0 else float("nan"),
           "trial_wall_in_window_s": float(ov.sum()),
           "slot_occupancy": float(ov.sum()) / (cores * w) if w > 0 else float("nan")}
    if not samples.empty:
        s = samples.set_index("t")
        tree = np.interp([t0, t1], s.index, s.tree_cpu_s)
        mach = np.interp([t0, t1], s.index, s.machine_busy_s)
        out["tree_utilisation_sampled"] = float(tree[1] - tree[0]) / (cores * w)
        out["machine_busy_sampled"] = float(mach[1] - mach[0]) / (cores * w)
        out["others_busy_sampled"] = out["machine_busy_sampled"] - out["tree_utilisation_sampled"]
        seg = samples[(samples.t >= t0) & (samples.t <= t1)]
        out["load1_range"] = [float(seg.load1.min()), float(seg.load1.max())] if len(seg) else None
        if sampler is not None:
            out["study_cpu_by_process_group_s"] = sampler.by_group(t0, t1, trial_pids)
    return out


def windows(df: pd.DataFrame, p_start: float, p_end: float, cores: int, samples: pd.DataFrame,
            sampler: Sampler | None = None, trial_pids: set[int] = frozenset()) -> dict:
    """The five windows of the results: the search (its trials alone, and all trials), the whole study,
    the final Tune run and the span of the final trials. ``df``: one row per trial with its phase,
    start, end, wall_s, cpu_s and whether it was a back-filled final."""
    def win(t0, t1, trials, label):
        return window(t0, t1, trials, label, cores, samples, sampler, trial_pids)

    search = df[df.phase == "search"]
    s0, s1 = float(search.start.min()), float(search.end.max())
    finals = df[df.phase == "final"]
    fin = finals[~finals.backfilled.astype(bool)]
    return {
        "search_trials_only": win(s0, s1, search, "search (search trials' CPU)"),
        "search_all_trials": win(s0, s1, df, "search window (all trials, back-filled finals included)"),
        "whole_study": win(p_start, p_end, df, "whole study (parent run start to end)"),
        "final_phase": win(float(fin.start.min()), float(fin.end.max()), fin, "final Tune run") if len(fin) else None,
        "final_trials": win(float(finals.start.min()), float(finals.end.max()), df,
                            "first to last final trial (back-filled ones included), all trials' CPU")
        if len(finals) else None,
    }


def replot(out: str) -> dict:
    """The windows recomputed from the trials in the results JSON (the sampled columns need the samples,
    kept beside the store) and the figure redrawn without the sampled panel."""
    res = json.loads((RESULTS_DIR / f"{out}.json").read_text())
    df = pd.DataFrame(res["trials"])
    recomputed = windows(df, res["parent"]["start"], res["parent"]["end"], res["cores"], pd.DataFrame())
    plot(res, pd.DataFrame(), res["cores"], RESULTS_DIR / f"{out}.png")
    return recomputed


def analyse(study, sampler: Sampler, cores: int) -> dict:
    from mlptl import tracking as T
    from mlptl.report import load_runs

    samples = sampler.frame()
    storage = study.storage_dir()
    uri = T.resolve_tracking_uri(storage, study.tracking_uri)
    runs = load_runs(uri, study.name)
    c = T.client(uri)
    exp = c.get_experiment_by_name(study.name)
    parent = T.find_run(c, exp.experiment_id, **{T.TAG_ROLE: "study"})
    p_start, p_end = parent.info.start_time / 1000, parent.info.end_time / 1000
    ray = ray_trials(storage)
    timing = [k for k in TIMING if k in runs]
    df = runs[["trial_key", "phase", "status", "cell", "start_time", "end_time", "epochs_run"]
              + [k for k in ("cpu_time_s",) if k in runs] + timing].copy()
    reused_tag = f"tags.{T.TAG_REUSED_FROM}"
    df["reused"] = runs[reused_tag].notna() if reused_tag in runs else False
    df["start"], df["end"] = df.start_time / 1000, df.end_time / 1000
    df = df.merge(ray, on="trial_key", how="left")
    df["backfilled"] = (df.phase == "final") & (df.ray_run == "search")
    df["wall_s"] = df.end - df.start
    df["cpu_sampled_s"] = [sampler.cpu_between(int(r.pid), r.start, r.end) if r.pid == r.pid else np.nan
                           for r in df.itertuples()]
    logged = df["cpu_time_s"] if "cpu_time_s" in df else pd.Series(np.nan, index=df.index)
    df["cpu_s"] = logged.fillna(df.cpu_sampled_s)
    df["cpu_source"] = np.where(logged.notna(), "logged", "sampled")
    chk = df[logged.notna() & df.cpu_sampled_s.notna()]
    check = {"trials": len(chk), "sampled_over_logged_median": float((chk.cpu_sampled_s / chk.cpu_time_s).median())
             if len(chk) else None}

    trial_pids = {int(x) for x in df.pid.dropna()}
    search = df[df.phase == "search"]
    s0, s1 = float(search.start.min()), float(search.end.max())
    res = {
        **windows(df, p_start, p_end, cores, samples, sampler, trial_pids),
        "finals": {"total": int((df.phase == "final").sum()), "backfilled": int(df.backfilled.sum()),
                   "reused_search_training": int(df[df.phase == "final"].reused.sum())},
        "counts": df.groupby(["phase", "status"]).size().rename("n").reset_index().to_dict(orient="records"),
        "parent": {"start": p_start, "end": p_end, "wall_s_span": p_end - p_start,
                   "wall_time_s_metric": parent.data.metrics.get("wall_time_s")},
        "cpu_check_sampled_vs_logged": check,
        "trial_cpu_over_wall_median": float((df.cpu_s / df.wall_s).median()),
        "phases_s": {"before_search": s0 - p_start, "search": s1 - s0,
                     "after_search": p_end - s1, "after_last_trial": p_end - float(df.end.max())},
    }
    # Where the search window's core-seconds went: trials' CPU, trial time off CPU, no trial running.
    sw = res["search_all_trials"]
    res["search_breakdown_core_s"] = {
        "capacity": cores * sw["wall_s"],
        "trial_cpu": sw["trial_cpu_s"],
        "trial_running_not_on_cpu": sw["trial_wall_in_window_s"] - sw["trial_cpu_s"],
        "no_trial_on_slot": cores * sw["wall_s"] - sw["trial_wall_in_window_s"],
    }
    res["trial_time_breakdown_s"] = time_breakdown(df)
    res["trials"] = df.drop(columns=[c for c in ("start_time", "end_time") if c in df]).to_dict(orient="records")
    return res


def time_breakdown(df: pd.DataFrame) -> dict:
    """Per phase, the mean wall time of a finished trial and where it went (the trials' time_* metrics:
    start-up before training, training, evaluation, recording to MLflow) and what is left (Ray's hand-over,
    process start); trials recorded before those metrics existed give NaN."""
    done = df[df.status == "finished"].copy()
    for k in TIMING:
        if k not in done:
            done[k] = np.nan
    done["other_s"] = done.wall_s - done[list(TIMING)].sum(axis=1, min_count=len(TIMING))
    cols = [*TIMING, "other_s", "wall_s"]
    out = done.groupby("phase")[cols].mean().round(2)
    return {phase: {**row.to_dict(), "trials": int((done.phase == phase).sum())} for phase, row in out.iterrows()}


def plot(res: dict, samples: pd.DataFrame, cores: int, out: Path) -> None:
    df = pd.DataFrame(res["trials"])
    t0 = res["parent"]["start"]
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    lanes = {pid: i for i, pid in enumerate(sorted(df.pid.dropna().unique(), key=lambda p: df[df.pid == p].start.min()))}
    colours = {"search finished": "tab:blue", "search pruned": "lightsteelblue", "search failed": "tab:red",
               "final (back-filled)": "tab:green", "final": "darkgreen", "final failed": "tab:red"}
    seen = set()
    for r in df.itertuples():
        kind = f"search {r.status}" if r.phase == "search" else ("final (back-filled)" if r.backfilled else "final")
        if r.phase == "final" and r.status == "failed":
            kind = "final failed"
        y = lanes.get(r.pid, -1)
        ax.barh(y, r.end - r.start, left=r.start - t0, height=0.8, color=colours.get(kind, "grey"),
                edgecolor="k", lw=0.4, label=None if kind in seen else kind)
        seen.add(kind)
        ax.text(r.start - t0 + 1, y, str(r.trial_key).split("-t")[-1] if r.phase == "search" else f"r{r.trial_key[-1]}",
                va="center", fontsize=6)
    s = res["search_all_trials"]
    for a in (ax, ax2):
        a.axvspan(s["start"] - t0, s["end"] - t0, color="y", alpha=0.08)
        a.axvline(res["parent"]["end"] - t0, color="k", ls=":", lw=0.8)
    ax.set_yticks(list(lanes.values()), [f"pid {int(p)}" for p in lanes])
    ax.set_ylabel("Ray worker process")
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    ax.set_title(f"{res['study']}: search utilisation {100 * res['search_trials_only']['utilisation']:.0f} % "
                 f"(search trials), {100 * s['utilisation']:.0f} % (all trials in the search window), "
                 f"whole study {100 * res['whole_study']['utilisation']:.0f} % on {cores} cores", fontsize=9)
    if not samples.empty:
        t = samples.t.values
        dt = np.gradient(t)
        for col, label, colour in (("machine_busy_s", "machine (all users)", "grey"),
                                   ("tree_cpu_s", "this study's processes", "tab:blue")):
            rate = np.gradient(samples[col].values) / dt
            k = 5
            smooth = np.convolve(rate, np.ones(k) / k, mode="same")
            ax2.plot(t - t0, smooth, label=label, color=colour, lw=1)
        ax2.axhline(cores, color="k", lw=0.6, ls="--")
    ax2.set_ylabel("busy cores (5-s mean)")
    ax2.set_xlabel("seconds since the study's parent run started (shaded: search window; dotted: study end)")
    ax2.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--study", default="studies/quickstart.py", help="study file, relative to the repository")
    p.add_argument("--name", default="quickstart-utilisation")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--trials-per-cell", type=int)
    p.add_argument("--cpus-per-trial", type=float)
    p.add_argument("--analyse-only", action="store_true", help="recompute from the store and the saved samples")
    p.add_argument("--out", default="utilisation", help="basename of the result files")
    p.add_argument("--replot", action="store_true",
                   help="only recompute the windows from the results JSON's trials and redraw the figure")
    args = p.parse_args(argv)
    if args.replot:
        for k, w in replot(args.out).items():
            log.info("%-20s utilisation %.3f", k, w["utilisation"] if w else float("nan"))
        return 0
    from _common import setup_logging

    setup_logging()
    logging.getLogger().handlers[0].filters.clear()
    for name in ("mlptl", "bench"):
        logging.getLogger(name).setLevel(logging.INFO)
    for noisy in ("nequip", "lightning", "hydra", "mlflow", "alembic", "ray", "matplotlib", "optuna"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # A Ray instance of our own with all the cores: never another user's cluster found in /tmp/ray.
    os.environ.setdefault("RAY_ADDRESS", "local")
    cores = os.cpu_count() or 1
    study = make_study(args)
    info = {"benchmark": "utilisation", "machine": machine_info(), "settings": vars(args),
            "command": "python bench/utilisation.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "uptime_before": uptime(), "cores": cores,
            "study": {"name": study.name, "trials_per_cell": study.trials_per_cell, "max_epochs": study.max_epochs,
                      "cells": [c.id for c in study.cells()], "seeds": list(study.seeds),
                      "cpus_per_trial": study.resources.cpus_per_trial,
                      "max_concurrent_trials": study.resources.max_concurrent_trials,
                      "pruner": study.pruner.kind}}
    samples_path = STORE / f"{args.out}_samples"
    if args.analyse_only:
        sampler = Sampler.load(samples_path)
        # what only the run itself could record: its machine state, load before and after, wall time
        ran = json.loads((RESULTS_DIR / f"{args.out}.json").read_text())
        info.update({k: ran[k] for k in ("machine", "command", "uptime_before", "uptime_after", "run_wall_s", "counts")
                     if k in ran})
    else:
        storage = Path(study.storage_dir())
        if storage.exists():
            shutil.rmtree(storage)
        from mlptl import run

        sampler = Sampler()
        sampler.start()
        t0 = time.time()
        result = run(study)
        info["run_wall_s"] = time.time() - t0
        sampler.stop()
        info["counts"] = result.counts
        sampler.save(samples_path)
        info["uptime_after"] = uptime()
    res = analyse(study, sampler, cores)
    samples = sampler.frame()
    res["study"] = study.name
    info.update(res)
    if not args.analyse_only:
        info["machine"]["load_avg_at_end"] = list(os.getloadavg())
    write_json(RESULTS_DIR / f"{args.out}.json", info)
    plot(res, samples, cores, RESULTS_DIR / f"{args.out}.png")
    for k in ("search_trials_only", "search_all_trials", "final_phase", "final_trials", "whole_study"):
        w = res[k]
        if w:
            log.info("%-20s wall %6.0f s  utilisation %.3f  (sampled tree %.3f, machine %.3f)", k, w["wall_s"],
                     w["utilisation"], w.get("tree_utilisation_sampled", float("nan")),
                     w.get("machine_busy_sampled", float("nan")))
    log.info("finals %s; cpu check %s; breakdown %s", res["finals"], res["cpu_check_sampled_vs_logged"],
             res["search_breakdown_core_s"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
