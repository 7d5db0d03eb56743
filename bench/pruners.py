"""Which Optuna pruner should a study default to? Recorded learning curves replayed through real pruners.

Training every configuration once per pruner would cost (pruners x trials x epochs) trainings; instead,
as tabular HPO benchmarks do (NAS-Bench-201, HPOBench, LCBench: train each configuration once, unpruned,
record its learning curve, then replay the curves to the early-stopping method under test), this script

1. **records**: per sampler seed and cell (scratch-n10, transfer-n10 of SW Si -> Ge), asks the study's
   own sampler (``mlptl.study.search.make_sampler``: TPE, seeded per cell) for ``--trials`` configurations,
   two at a time (a study with two concurrent trials), trains each **unpruned** to the full epoch budget
   with ``mlptl.train.train`` exactly as a study trial would, and tells the sampler the result. Each
   trial's per-epoch validation force MAE and final test force MAE are stored;
2. **replays** each recorded sequence of configurations, in the same order and with two concurrent trials
   (one epoch = one time unit for every trial), through real Optuna pruners built by mlptl's
   ``make_pruner`` in a real in-memory Optuna study: each epoch is reported with ``report_epoch`` (the
   step numbering a study uses) and a trial the pruner stops releases its slot to the next
   configuration. Measured: epochs spent, the best validation force MAE among *completed* trials (what
   the study's final phase picks), that configuration's test force MAE, and whether the unpruned best
   configuration survived.

"Same configurations" means this fixed sequence. Its limit: in a real pruned study TPE would learn
from pruned trials and propose different configurations after its 4 random start-up trials; the replay
measures the pruner's decisions on a fixed sequence, not the sampler-pruner interplay.

The study is bench/studies/pruners.py (its sampler, search space and sizes). Results:
bench/results/pruners/{curves.json,replay.csv,summary.csv,pruners.json,pruners.png}; ``--replay-only``
replays the stored curves without training (``--main-only``: the main pruners alone, into summary_main.csv).
Run directories: bench/work/pruners/ (resumable: finished trainings are reused).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _common import BENCH_DIR, RESULTS_DIR, WORK_DIR, machine_info, set_threads, setup_logging, write_json  # noqa: E402

log = logging.getLogger("bench.pruners")
WORK = WORK_DIR / "pruners"
OUT = RESULTS_DIR / "pruners"
GE_FRAMES_PER_T = 20  # 40 frames: 20 test, 10 validation, 10 training
SI_FRAMES_PER_T = 30  # 60 frames: 40 training for the source model


# ---------------------------------------------------------------- data, source model, study
def test_forces_mae(result, spec) -> float:
    """Test force MAE of a finished training (from the evaluation once training stops computing it)."""
    if "test_forces_mae" in result.metrics:
        return float(result.metrics["test_forces_mae"])
    from mlptl.evaluate.forces import force_errors

    errors = force_errors(result.model_path, result.test_path, element=spec.element, prefix="test", by_group=False)
    return float(errors["test_forces_mae"])


def data_and_source(args) -> tuple[Path, Path]:
    """The SW data (the 'tiny' preset, more frames) and the Si model, pretrained once and cached."""
    from mlptl.data.generate import generate, preset
    from mlptl.train import TrainSpec, train

    cache = WORK / "data"
    ge = generate(preset("tiny", "Ge", reference="sw", frames_per_temperature=GE_FRAMES_PER_T), cache, progress=False)
    si = generate(preset("tiny", "Si", reference="sw", frames_per_temperature=SI_FRAMES_PER_T), cache, progress=False)
    spec = TrainSpec(element="Si", data=str(si), out=str(WORK / "si-pretrain"), lr=5e-3, max_epochs=30,
                     val_size=10, test_size=10, model="tiny")
    done = Path(spec.out) / "bench-source.json"
    if done.is_file() and (rec := json.loads(done.read_text()))["spec"] == spec.to_dict():
        log.info("Si source model reused: test force MAE %.4f eV/A", rec["test_forces_mae"])
        return ge, Path(rec["model"])
    t0 = time.perf_counter()
    result = train(spec, resume=False)
    rec = {"spec": spec.to_dict(), "model": str(result.model_path), "test_forces_mae": test_forces_mae(result, spec),
           "wall_s": time.perf_counter() - t0}
    write_json(done, rec)
    log.info("Si source model: test force MAE %.4f eV/A (%.0f s)", rec["test_forces_mae"], rec["wall_s"])
    return ge, result.model_path


def make_study(args, ge: Path, source: Path, sampler_seed: int):
    """bench/studies/pruners.py's study with this run's sampler seed and sizes (its own: seed 0, 10 Ge
    frames, scratch and transfer, 16 trials of 30 epochs)."""
    import runpy

    study = runpy.run_path(str(BENCH_DIR / "studies" / "pruners.py"), run_name="mlptl_study")["STUDY"]
    assert Path(study.target_data.path) == ge and Path(study.pretraining.pretrained) == source, (ge, source)
    return study.with_overrides(name=f"pruners-s{sampler_seed}", sampler_seed=sampler_seed,
                                train_sizes=(args.train_size,), inits=tuple(args.inits),
                                trials_per_cell=args.trials, max_epochs=args.epochs)


# ---------------------------------------------------------------- 1. record unpruned learning curves
def train_trial(study, cell, number: int, params: dict[str, Any]) -> dict[str, Any]:
    """One search trial, trained as a study trial would be (TrialJob.train_spec), to the full budget."""
    from mlptl.train import TrainingDiverged, TrainSpec, train

    out = WORK / "curves" / study.name / cell.id / f"t{number:03d}"
    spec = TrainSpec(
        element=study.target_element, data=study.target_data.path, out=str(out), init=cell.init,
        pretrained=study.pretraining.pretrained if cell.init == "transfer" else None,
        freeze_depth=int(params.get("freeze_depth", 0)) if cell.init == "transfer" else 0,
        lr=float(params["lr"]), lr_schedule=params.get("lr_schedule", "plateau"),
        batch_size=int(params.get("batch_size", 4)), max_epochs=study.max_epochs, train_size=cell.train_size,
        val_size=study.val_size, test_size=study.test_size, seed=study.seeds[0], split_seed=study.split_seed,
        model="tiny",
    )
    done = out / "bench-trial.json"
    if done.is_file() and (rec := json.loads(done.read_text())).get("spec") == spec.to_dict():
        return rec
    t0 = time.perf_counter()
    try:
        result = train(spec, resume=False)
        rec = {
            "val_forces_mae": [h["val_forces_mae"] for h in result.history],
            "epoch_time_s": [h["epoch_time_s"] for h in result.history],
            "test_forces_mae": test_forces_mae(result, spec),
            "failed": None,
        }
    except TrainingDiverged as e:  # a failed trial: the study records it as failed and goes on
        rec = {"val_forces_mae": [], "epoch_time_s": [], "test_forces_mae": None, "failed": str(e)}
    rec.update(spec=spec.to_dict(), params=params, wall_s=time.perf_counter() - t0)
    shutil.rmtree(out / "checkpoints", ignore_errors=True)  # 1 MB per run, never read again
    write_json(done, rec)
    return rec


def record_cell(args, study, cell_index: int) -> list[dict[str, Any]]:
    """The unpruned study of one cell: the study's sampler, ``--concurrency`` trials asked at a time."""
    import optuna

    from mlptl.study.search import distributions, make_sampler

    cell = study.cells()[cell_index]
    ost = optuna.create_study(direction="minimize", sampler=make_sampler(study, cell_index),
                              pruner=optuna.pruners.NopPruner())
    dists = distributions(study, cell)
    trials: list[dict[str, Any]] = []
    while len(trials) < study.trials_per_cell:
        batch = [ost.ask(dists) for _ in range(min(args.concurrency, study.trials_per_cell - len(trials)))]
        for t in batch:  # equal-length trials started together finish together: tell after the batch
            rec = train_trial(study, cell, t.number, dict(t.params))
            rec["number"] = t.number
            trials.append(rec)
            curve = rec["val_forces_mae"]
            log.info("%s %s t%03d %s: best val %.4f, test %s, %.0f s", study.name, cell.id, t.number,
                     {k: round(v, 5) if isinstance(v, float) else v for k, v in t.params.items()},
                     min(curve) if curve else float("nan"), rec["test_forces_mae"], rec["wall_s"])
        for t, rec in zip(batch, trials[-len(batch):]):
            if rec["failed"]:
                ost.tell(t, state=optuna.trial.TrialState.FAIL)
            else:
                ost.tell(t, min(rec["val_forces_mae"]))
    return trials


# ---------------------------------------------------------------- 2. replay through real pruners
def pruner_specs(epochs: int) -> dict[str, Any]:
    """The pruners compared: name -> PrunerSpec. The first group is the main table; the rest a sweep."""
    from mlptl.study import PrunerSpec as P

    main = {
        "none": P(kind="none"),
        "median (current default: 2 start-up, 2 warm-up)": P(kind="median", n_startup_trials=2, n_warmup_steps=2),
        "median, no warm-up": P(kind="median", n_startup_trials=2, n_warmup_steps=0),
        "median, 5 warm-up": P(kind="median", n_startup_trials=2, n_warmup_steps=5),
        "percentile 25": P(kind="percentile", n_startup_trials=2, n_warmup_steps=2, options={"percentile": 25.0}),
        "patient median (patience 3)": P(kind="patient", n_startup_trials=2, n_warmup_steps=2,
                                         options={"patience": 3}),
        "successive halving (r=2, eta=4)": P(kind="successive_halving", n_warmup_steps=2),
        "hyperband (r=1, eta=3, R auto)": P(kind="hyperband", n_warmup_steps=1),
        f"hyperband (r=2, eta=3, R={epochs})": P(kind="hyperband", n_warmup_steps=2,
                                                 options={"reduction_factor": 3, "max_resource": epochs}),
        "ASHA-like SH (r=3, eta=4)": P(kind="successive_halving", n_warmup_steps=3, options={"reduction_factor": 4}),
    }
    sweep: dict[str, Any] = {}
    for s in (1, 2, 3):
        for w in (0, 1, 2, 3, 5, 8):
            sweep[f"median s{s} w{w}"] = P(kind="median", n_startup_trials=s, n_warmup_steps=w)
    for q in (10.0, 25.0, 50.0):
        for w in (1, 2, 3, 5):
            sweep[f"percentile {q:g} s2 w{w}"] = P(kind="percentile", n_startup_trials=2, n_warmup_steps=w,
                                                   options={"percentile": q})
    for pat in (1, 2, 3, 5):
        sweep[f"patient{pat} median s2 w2"] = P(kind="patient", n_startup_trials=2, n_warmup_steps=2,
                                                options={"patience": pat})
    for r in (1, 2, 3, 5, 8):
        for eta in (2, 3, 4):
            for b in (0, 1):  # Optuna prunes the first b trials to reach each rung (it cannot pause them)
                sweep[f"SH r{r} eta{eta} b{b}"] = P(kind="successive_halving", n_warmup_steps=r,
                                                    options={"reduction_factor": eta, "bootstrap_count": b})
            # min_early_stopping_rate s: the first rung is at r * eta**s
            sweep[f"SH r{r} eta{eta} s1"] = P(kind="successive_halving", n_warmup_steps=r,
                                              options={"reduction_factor": eta, "min_early_stopping_rate": 1})
    for r in (1, 2, 3):
        for eta in (2, 3, 4):
            sweep[f"hyperband r{r} eta{eta} R auto"] = P(kind="hyperband", n_warmup_steps=r,
                                                        options={"reduction_factor": eta})
            sweep[f"hyperband r{r} eta{eta} R{epochs}"] = P(kind="hyperband", n_warmup_steps=r,
                                                           options={"reduction_factor": eta, "max_resource": epochs})
    return {"main": main, "sweep": sweep}


def replay(spec, trials: list[dict[str, Any]], study_name: str, concurrency: int,
           one_based: bool = False) -> dict[str, Any]:
    """One cell's recorded trials through one pruner, in order, ``concurrency`` at a time.

    ``one_based`` reports epoch e as Optuna step e (mlptl before the step-numbering fix), for comparison.
    """
    import optuna

    from mlptl.study.pruners import make_pruner, report_epoch

    # Hyperband assigns brackets by a hash of the study name and trial number: name the study as a study would.
    ost = optuna.create_study(direction="minimize", pruner=make_pruner(spec), study_name=study_name,
                              sampler=optuna.samplers.RandomSampler(seed=0))
    queue = list(enumerate(trials))
    running: list[dict[str, Any]] = []
    spent, clock, outcome = [0] * len(trials), 0, {}
    while queue or running:
        while queue and len(running) < concurrency:
            i, rec = queue.pop(0)
            ost.enqueue_trial(rec["params"])
            running.append({"i": i, "rec": rec, "trial": ost.ask(), "epoch": 0})
        clock += 1  # every running trial completes one more epoch
        for slot in list(running):
            i, rec, trial = slot["i"], slot["rec"], slot["trial"]
            curve = rec["val_forces_mae"]
            if rec["failed"]:  # diverged in its first epochs: the study marks it failed
                spent[i] += 1
                ost.tell(trial, state=optuna.trial.TrialState.FAIL)
                outcome[i] = "failed"
                running.remove(slot)
                continue
            slot["epoch"] += 1
            e = slot["epoch"]
            spent[i] = e
            # as in a study: every epoch's result, the last included, goes to the pruner before the trial ends
            if one_based:
                trial.report(curve[e - 1], e)
                stop = trial.should_prune()
            else:
                stop = report_epoch(trial, e, curve[e - 1])
            if stop:
                ost.tell(trial, state=optuna.trial.TrialState.PRUNED)
                outcome[i] = "pruned" if e < len(curve) else "pruned at last epoch"
                running.remove(slot)
            elif e == len(curve):
                ost.tell(trial, min(curve))
                outcome[i] = "complete"
                running.remove(slot)
    ok = [i for i, r in enumerate(trials) if not r["failed"]]
    best_all = min(ok, key=lambda i: min(trials[i]["val_forces_mae"]))
    done = [i for i in ok if outcome[i] == "complete"]
    chosen = min(done, key=lambda i: min(trials[i]["val_forces_mae"])) if done else None
    budget = sum(len(trials[i]["val_forces_mae"]) for i in ok) + (len(trials) - len(ok))
    val = lambda i: min(trials[i]["val_forces_mae"])  # noqa: E731
    rank = sorted(ok, key=val).index(chosen) + 1 if chosen is not None else None
    return {
        "epochs_spent": sum(spent),
        "epochs_fraction": sum(spent) / budget,
        "makespan_fraction": clock / (budget / concurrency),
        "n_pruned": sum(o.startswith("pruned") for o in outcome.values()),
        "n_pruned_at_last_epoch": sum(o == "pruned at last epoch" for o in outcome.values()),
        "n_complete": len(done),
        "best_val": val(chosen) if chosen is not None else None,
        "unpruned_best_val": val(best_all),
        "val_gap_pct": 100 * (val(chosen) / val(best_all) - 1) if chosen is not None else None,
        "test_of_best": trials[chosen]["test_forces_mae"] if chosen is not None else None,
        "unpruned_test_of_best": trials[best_all]["test_forces_mae"],
        "test_gap_pct": (100 * (trials[chosen]["test_forces_mae"] / trials[best_all]["test_forces_mae"] - 1)
                         if chosen is not None else None),
        "best_survived": outcome[best_all] == "complete",
        "chosen_rank": rank,
    }


def replay_all(curves: dict[str, list[dict[str, Any]]], specs: dict[str, Any], concurrency: int) -> pd.DataFrame:
    rows = []
    runs = [(group, name, spec, False) for group, named in specs.items() for name, spec in named.items()]
    runs += [("1-based", name, spec, True) for name, spec in specs["main"].items() if spec.kind != "none"]
    for group, name, spec, one_based in runs:
        for key, trials in curves.items():
            seed, cell = key.split("/")
            r = replay(spec, trials, study_name=f"pruners-s{seed}/{cell}", concurrency=concurrency,
                       one_based=one_based)
            rows.append({"group": group, "pruner": name, "spec": json.dumps(asdict(spec)),
                         "sampler_seed": int(seed), "cell": cell, **r})
    return pd.DataFrame(rows)


def summarise(df: pd.DataFrame, gap_goal: float, epochs_goal: float) -> pd.DataFrame:
    g = df.groupby(["group", "pruner"], sort=False)
    s = pd.DataFrame({
        "replicates": g.size(),
        "epochs_fraction_mean": g.epochs_fraction.mean(),
        "epochs_fraction_max": g.epochs_fraction.max(),
        "makespan_fraction_mean": g.makespan_fraction.mean(),
        "val_gap_pct_mean": g.val_gap_pct.mean(),
        "val_gap_pct_worst": g.val_gap_pct.max(),
        "best_survived": g.best_survived.sum(),
        "replicates_meeting_goal": g.apply(
            lambda x: int(((x.val_gap_pct <= gap_goal) & (x.epochs_fraction <= epochs_goal)).sum()),
            include_groups=False),
        "test_of_best_mean": g.test_of_best.mean(),
        "test_gap_pct_mean": g.test_gap_pct.mean(),
        "test_gap_pct_worst": g.test_gap_pct.max(),
        "n_pruned_at_last_epoch": g.n_pruned_at_last_epoch.sum(),
    }).reset_index()
    # a replicate where the pruner stopped every trial leaves the cell without a model: it fails the goal
    s.insert(2, "replicates_without_result", g.n_complete.apply(lambda x: int((x == 0).sum())).values)
    s["meets_goal"] = ((s.replicates_without_result == 0) & (s.val_gap_pct_worst <= gap_goal)
                       & (s.epochs_fraction_mean <= epochs_goal))
    return s


def trials_per_cell_table(curves: dict[str, list[dict[str, Any]]], specs: dict[str, Any], args) -> pd.DataFrame:
    """The main pruners on the first k trials of each sequence: a study of k trials per cell.

    The prefix is exactly what a k-trial study samples while TPE's start-up trials (4 for 8-16 trials per
    cell, ``make_sampler``) and the unpruned tells are the same, so savings can be read against study size.
    """
    n = min(len(t) for t in curves.values())
    parts = []
    for k in sorted({k for k in (8, 12, n) if 4 <= k <= n}):
        cut = {key: trials[:k] for key, trials in curves.items()}
        part = summarise(replay_all(cut, {"main": specs["main"]}, args.concurrency), args.gap_goal, args.epochs_goal)
        parts.append(part[part.group == "main"].assign(trials_per_cell=k))
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------- diagnostics, plot
def rank_correlations(curves: dict[str, list[dict[str, Any]]], at: tuple[int, ...]) -> pd.DataFrame:
    """Spearman correlation of the validation error at epoch k with each trial's best: do curves cross?"""
    rows = []
    for key, trials in curves.items():
        ok = [t for t in trials if not t["failed"]]
        best = pd.Series([min(t["val_forces_mae"]) for t in ok])
        for k in at:
            at_k = pd.Series([t["val_forces_mae"][k - 1] for t in ok])
            rows.append({"replicate": key, "epoch": k, "spearman": at_k.rank().corr(best.rank())})
    return pd.DataFrame(rows)


def plot(df: pd.DataFrame, curves: dict[str, list[dict[str, Any]]], path: Path, gap_goal: float,
         epochs_goal: float) -> None:
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    main = df[df.group == "main"]
    for (name, sub), marker in zip(main.groupby("pruner", sort=False), "osD^v<>ph*"):
        ax.scatter(100 * sub.epochs_fraction, sub.val_gap_pct, marker=marker, alpha=0.45, s=25)
        ax.scatter(100 * sub.epochs_fraction.mean(), sub.val_gap_pct.mean(), marker=marker, s=110,
                   edgecolor="k", label=name, color=ax.collections[-1].get_facecolor()[0][:3])
    ax.axvline(100 * epochs_goal, color="grey", ls=":")
    ax.axhline(gap_goal, color="grey", ls=":")
    ax.set_xlabel("epochs spent [% of the unpruned search]")
    ax.set_ylabel("best val force MAE found, gap to the unpruned best [%]")
    ax.set_title("each (sampler seed, cell) small; mean large; goal: lower left of the dotted lines")
    ax.legend(fontsize=7)
    key = next(iter(curves))
    for t in curves[key]:
        if t["val_forces_mae"]:
            ax2.plot(range(1, len(t["val_forces_mae"]) + 1), t["val_forces_mae"], lw=1)
    ax2.set_yscale("log")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val force MAE [eV/A]")
    ax2.set_title(f"recorded unpruned learning curves, {key}")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="sampler seeds (comma-separated)")
    p.add_argument("--trials", type=int, default=16, help="configurations per cell and seed")
    p.add_argument("--epochs", type=int, default=30, help="epoch budget of every trial")
    p.add_argument("--train-size", type=int, default=10, help="Ge training frames of both cells")
    p.add_argument("--inits", default="scratch,transfer")
    p.add_argument("--concurrency", type=int, default=2, help="trials running at once")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--gap-goal", type=float, default=5.0, help="val gap goal [%%]")
    p.add_argument("--epochs-goal", type=float, default=0.30, help="epochs fraction goal")
    p.add_argument("--replay-only", action="store_true", help="replay the stored curves.json, train nothing")
    p.add_argument("--main-only", action="store_true",
                   help="replay only the main pruners (not the sweep, nor the 1-based and study-size tables)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.inits = args.inits.split(",")
    setup_logging(args.verbose)
    OUT.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.replay_only:
        stored = json.loads((OUT / "curves.json").read_text())
        curves, meta = stored["curves"], stored["meta"]
    else:
        set_threads(args.threads)
        meta = {"settings": vars(args), "machine": machine_info()}
        ge, source = data_and_source(args)
        curves = {}
        for seed in seeds:
            study = make_study(args, ge, source, seed)
            for i, cell in enumerate(study.cells()):
                curves[f"{seed}/{cell.id}"] = record_cell(args, study, i)
        meta["record_wall_s"] = time.perf_counter() - t0
        meta["record_cpu_s"] = time.process_time()
        meta["load_avg_at_end"] = list(__import__("os").getloadavg())
        write_json(OUT / "curves.json", {"meta": meta, "curves": curves})
    epochs = meta["settings"]["epochs"]
    t1 = time.perf_counter()
    specs = pruner_specs(epochs)
    if args.main_only:  # a quick check: the main table (and its 1-based rows) and the figure, nothing else
        df = replay_all(curves, {"main": specs["main"]}, args.concurrency)
        summarise(df, args.gap_goal, args.epochs_goal).to_csv(OUT / "summary_main.csv", index=False)
        plot(df, curves, OUT / "pruners.png", args.gap_goal, args.epochs_goal)
        return 0
    df = replay_all(curves, specs, args.concurrency)
    df.to_csv(OUT / "replay.csv", index=False)
    summary = summarise(df, args.gap_goal, args.epochs_goal)
    summary.to_csv(OUT / "summary.csv", index=False)
    by_trials = trials_per_cell_table(curves, specs, args)
    by_trials.to_csv(OUT / "by_trials_per_cell.csv", index=False)
    corr = rank_correlations(curves, tuple(k for k in (1, 2, 3, 5, 10, 20, epochs) if k <= epochs))
    corr_table = corr.groupby("epoch").spearman.agg(["mean", "min", "max"]).reset_index()
    times = [x for ts in curves.values() for t in ts for x in t["epoch_time_s"][1:]]
    write_json(OUT / "pruners.json", {
        "meta": meta, "replay_wall_s": time.perf_counter() - t1,
        "median_epoch_time_s": float(pd.Series(times).median()) if times else None,
        "train_wall_s_total": sum(t["wall_s"] for ts in curves.values() for t in ts),
        "rank_correlation_with_best": corr_table.to_dict(orient="records"),
        "summary": json.loads(summary.to_json(orient="records")),  # NaN -> null: strict JSON
    })
    plot(df, curves, OUT / "pruners.png", args.gap_goal, args.epochs_goal)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.max_rows", 200):
        log.info("rank correlation of val at epoch k with the best:\n%s", corr_table)
        log.info("summary (main pruners; the sweep is in summary.csv):\n%s",
                 summary[summary.group == "main"].drop(columns=["group"]).round(3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
