"""Freezing depth of Si -> Ge transfer: test force error and MD stability against the number of frozen blocks.

The issue's "Benchmarks" item 3. One pretrained SW-Si model (by default the source model of
``transfer_vs_scratch.py``) is transferred to Ge with every freeze depth the architecture allows (0: nothing
frozen; 1: the two-body embedding; 1+i: also Allegro layers 0..i-1; the deepest leaves only the readout
trainable, see mlptl.model.transfer.freeze), and a Ge model trained from scratch is the baseline. Each is
trained at a small and a large Ge training size and several seeds, at equal epochs and learning rate, and
scored twice:

- test force/energy errors of the packaged model on one fixed Ge test set (mlptl.evaluate.forces, via
  mlptl.train's final evaluation);
- MD stability (mlptl.evaluate.stability): short NVT runs from the Ge diamond crystal at a room and a high
  temperature, watched by the non-finite, temperature, force, minimum-distance and RDF criteria, the RDF
  compared with SW Ge's own at the same temperature.

The data split depends on the data and ``split_seed`` only, so every run sees the same test frames, and the
small training set lies inside the large one; the seed varies weight initialisation (scratch) and batch order.

    python bench/freeze_depth.py                      # the README's run
    python bench/freeze_depth.py --replot             # redraw the figure and table from the JSON

Outputs: bench/results/freeze_depth.{csv,json,png}; runs and caches under bench/work/freeze_depth.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    finished_run,
    ge_data_spec,
    generated,
    machine_info,
    mean_std,
    metrics_row,
    set_threads,
    setup_logging,
    train_or_reuse,
    write_csv,
    write_json,
)

log = logging.getLogger("bench.freeze_depth")

NAME = "freeze_depth"
SPLIT_SEED = 0
DEFAULT_SOURCE = WORK_DIR / "transfer_vs_scratch" / "si-pretrain" / "model.nequip.zip"
SCRATCH = "scratch"


def _label(depth: int | None) -> str:
    return SCRATCH if depth is None else f"transfer_fd{depth}"


# ---------------------------------------------------------------- source model
def source_info(path: Path, model: str) -> dict[str, Any]:
    """The source's architecture, checked against the scratch preset, and trainable parameters per depth."""
    from nequip.model.saved_models.package import ModelFromPackage

    from mlptl.model.spec import max_freeze_depth, model_preset
    from mlptl.model.transfer import freeze, load_source

    src = load_source(path)
    spec = src.spec()
    if spec != model_preset(model):
        # Scratch would then be a different architecture from every transfer run: not a fair baseline.
        raise SystemExit(f"source model {path} is not the {model!r} preset: {spec} != {model_preset(model)}")
    depth_max = max_freeze_depth(spec)
    trainable = {}
    graph = ModelFromPackage(str(path))
    for depth in range(depth_max + 1):
        for prm in graph.parameters():
            prm.requires_grad_(True)
        frozen = set(freeze(graph, depth, spec.num_layers))
        params = list(graph.named_parameters())
        # Energy scale/shift are buffers here; every counted parameter is a network weight.
        trainable[depth] = sum(p.numel() for n, p in params if n not in frozen)
    total = trainable[0]
    log.info(
        "source %s: %d Allegro layers, freeze depths 0-%d, trainable parameters %s of %d",
        path,
        spec.num_layers,
        depth_max,
        [trainable[d] for d in sorted(trainable)],
        total,
    )
    return {"path": str(path), "max_freeze_depth": depth_max, "trainable_params": trainable, "params": total}


# ---------------------------------------------------------------- runs
def stability_config(args: argparse.Namespace):
    from mlptl.evaluate.stability import StabilityConfig

    return StabilityConfig(
        temperatures=tuple(args.md_temperatures),
        replicas=args.md_replicas,
        steps=args.md_steps,
        rdf_window=args.rdf_window,
        reference_steps=args.reference_steps,
        # The published runs' absolute thresholds (Si-calibrated); the defaults now scale with the
        # crystal's nearest-neighbour distance (1.04 and 5.20 A for SW Ge).
        rdf_threshold=1.0,
        rdf_rmax=5.0,
    )


def stability(
    model: str, out: Path, args: argparse.Namespace, reuse: bool, run: bool = True
) -> dict[str, Any] | None:
    """Run (or reuse) the stability protocol on one packaged model; a JSON-able summary per temperature.

    With ``run`` False only a finished result is returned (None if there is none).
    """
    from mlptl.evaluate.stability import run_stability
    from mlptl.model.calculator import load_calculator

    cfg = stability_config(args)
    key = hashlib.sha256(json.dumps(cfg.to_dict(), sort_keys=True).encode()).hexdigest()[:12]
    done = out / f"bench-stability-{key}.json"
    if reuse and done.is_file():
        return json.loads(done.read_text())
    if not run:
        return None
    calc = load_calculator(model, "Ge")  # loaded once, reset for every MD run (as mlptl.evaluate.full)

    def factory():
        calc.reset()
        return calc

    res = run_stability(factory, "Ge", cfg, reference="sw", progress=False, cache_dir=WORK_DIR / "rdf")
    runs = res.table()

    def worst(key: str, t: float) -> float | None:
        return _max_or_none(r[f"observed_{key}"] for r in runs if r["temperature"] == t)

    rec = {
        "config": cfg.to_dict(),
        "wall_s": res.wall_time_s,
        "by_temperature": {
            f"{t:g}": {
                "stable_fraction": s["stable_fraction"],
                "median_time_to_failure_ps": s["median_time_to_failure_ps"],
                "criteria": s["criteria"],
                "max_rdf_deviation": worst("max_rdf_deviation", t),
                "max_force": worst("max_force", t),
                "max_temperature_ratio": worst("max_temperature_ratio", t),
            }
            for t, s in res.by_temperature().items()
        },
    }
    write_json(done, rec)
    return rec


def _max_or_none(values) -> float | None:
    vals = [v for v in values if v is not None]
    return max(vals) if vals else None


def _epochs(args: argparse.Namespace, size: int) -> int:
    """The epochs at this training size: equal for every init (scratch and each freeze depth)."""
    if len(args.epochs) == 1:
        return args.epochs[0]
    return args.epochs[sorted(set(args.sizes)).index(size)]


def ge_run(
    args: argparse.Namespace, data: Path, work: Path, depth: int | None, size: int, seed: int
) -> dict[str, Any] | None:
    from mlptl.train import TrainSpec

    label = _label(depth)
    epochs = _epochs(args, size)
    spec = TrainSpec(
        element="Ge",
        data=str(data),
        out=str(work / "ge" / f"{label}-n{size}-s{seed}-e{epochs}-lr{args.lr:g}"),
        init="scratch" if depth is None else "transfer",
        pretrained=None if depth is None else str(args.source),
        freeze_depth=depth or 0,
        lr=args.lr,
        max_epochs=epochs,
        train_size=size,
        val_size=args.val_size,
        test_size=args.test_size,
        batch_size=args.batch_size,
        seed=seed,
        split_seed=SPLIT_SEED,
        model=args.model,
    )
    reuse = not args.no_reuse
    if args.collect:
        rec = finished_run(Path(spec.out), spec.to_dict())
        if rec is None:
            log.warning("%s n=%d seed=%d: no finished run, left out (--collect)", label, size, seed)
            return None
    else:
        rec = train_or_reuse(spec, reuse=reuse)
    row: dict[str, Any] = {"init": label, "freeze_depth": depth, "train_size": size, "seed": seed}
    row.update(metrics_row(rec))
    row["train_wall_s"] = row.pop("wall_s")
    st = None
    if not args.no_md:
        run_md = not args.collect and (args.md_seeds is None or seed in args.md_seeds)
        st = stability(rec["model"], Path(spec.out), args, reuse, run=run_md)
    if st is not None:
        row["md_wall_s"] = st["wall_s"]
        for t, s in st["by_temperature"].items():
            row[f"md_stable.T{t}"] = s["stable_fraction"]
            row[f"md_ttf_ps.T{t}"] = s["median_time_to_failure_ps"]
            row[f"md_criteria.T{t}"] = ",".join(f"{k}:{v}" for k, v in sorted(s["criteria"].items()))
            row[f"md_max_rdf_dev.T{t}"] = s["max_rdf_deviation"]
            row[f"md_max_force.T{t}"] = s["max_force"]
    log.info(
        "%-13s n=%-3d seed=%d: test force MAE %.4f eV/A, energy MAE %.2f meV/atom; MD stable %s "
        "(train %.0f s, MD %.0f s)",
        label,
        size,
        seed,
        row["test_forces_mae"],
        1e3 * row["test_energy_per_atom_mae"],
        {k[10:]: v for k, v in row.items() if k.startswith("md_stable.")} or "-",
        rec["wall_s"],
        row.get("md_wall_s", 0.0),
    )
    return row


# ---------------------------------------------------------------- summary
def _md_temperatures(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k.split(".T", 1)[1] for r in rows for k in r if k.startswith("md_stable.T")}, key=float)


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (init, size): mean and std over seeds; ratios to scratch and to transfer with nothing frozen."""
    out = []
    temps = _md_temperatures(rows)
    for size in sorted({r["train_size"] for r in rows}):
        at = [r for r in rows if r["train_size"] == size]
        ref = {}
        for label in (SCRATCH, _label(0)):
            ref[label] = [r for r in at if r["init"] == label]
        labels = sorted({r["init"] for r in at}, key=lambda s: (s != SCRATCH, s))
        for label in labels:
            rs = [r for r in at if r["init"] == label]
            f_mean, f_std = mean_std([r["test_forces_mae"] for r in rs])
            e_mean, e_std = mean_std([r["test_energy_per_atom_mae"] for r in rs])
            s: dict[str, Any] = {
                "init": label,
                "freeze_depth": rs[0]["freeze_depth"],
                "train_size": size,
                "n_seeds": len(rs),
                "forces_mae_mean": f_mean,
                "forces_mae_std": f_std,
                "energy_mae_mean": e_mean,
                "energy_mae_std": e_std,
                "train_time_s_mean": statistics.fmean(r["train_time_s"] for r in rs),
            }
            for base, rb in ref.items():
                if rb and label != base:
                    s[f"forces_ratio_to_{base}"] = f_mean / statistics.fmean(r["test_forces_mae"] for r in rb)
            for t in temps:
                vals = [r[f"md_stable.T{t}"] for r in rs if r.get(f"md_stable.T{t}") is not None]
                devs = [r[f"md_max_rdf_dev.T{t}"] for r in rs if r.get(f"md_max_rdf_dev.T{t}") is not None]
                s[f"md_stable_fraction.T{t}"] = statistics.fmean(vals) if vals else None
                s[f"md_n_models.T{t}"] = len(vals)
                s[f"md_min_ttf_ps.T{t}"] = min(
                    (r[f"md_ttf_ps.T{t}"] for r in rs if r.get(f"md_ttf_ps.T{t}") is not None), default=None
                )
                s[f"md_max_rdf_dev_max.T{t}"] = max(devs) if devs else None
                s[f"md_max_rdf_dev_mean.T{t}"] = statistics.fmean(devs) if devs else None
            out.append(s)
    return out


def plot(summary: list[dict[str, Any]], path: Path, title: str, run_length_ps: float | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    temps = sorted({k.split(".T", 1)[1] for s in summary for k in s if k.startswith("md_stable_fraction.T")},
                   key=float)
    sizes = sorted({s["train_size"] for s in summary})
    fig, axes = plt.subplots(1, 2 if temps else 1, figsize=(11 if temps else 6, 4.6), squeeze=False)
    ax = axes[0][0]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    depths = sorted({s["freeze_depth"] for s in summary if s["freeze_depth"] is not None})
    for i, size in enumerate(sizes):
        c = colors[i % len(colors)]
        ss = sorted((s for s in summary if s["train_size"] == size and s["freeze_depth"] is not None),
                    key=lambda s: s["freeze_depth"])
        ax.errorbar([s["freeze_depth"] for s in ss], [s["forces_mae_mean"] for s in ss],
                    yerr=[s["forces_mae_std"] for s in ss], marker="o", capsize=3, color=c,
                    label=f"transfer, {size} Ge frames")
        for s in summary:
            if s["train_size"] == size and s["freeze_depth"] is None:
                ax.axhline(s["forces_mae_mean"], ls="--", color=c, label=f"scratch, {size} Ge frames")
                m, sd = s["forces_mae_mean"], s["forces_mae_std"]
                ax.axhspan(m - sd, m + sd, color=c, alpha=0.08)
    ax.set_yscale("log")
    ax.set_xticks(depths, [f"{d}\n{_DEPTH_NAMES.get(d, '')}" for d in depths], fontsize=8)
    ax.set_xlabel("freeze depth")
    ax.set_ylabel("test force MAE [eV/Å] (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    if temps:
        ax = axes[0][1]
        markers = ("o", "s", "^", "D")
        for i, size in enumerate(sizes):
            c = colors[i % len(colors)]
            for j, t in enumerate(temps):
                ss = sorted((s for s in summary if s["train_size"] == size and s["freeze_depth"] is not None
                             and s.get(f"md_stable_fraction.T{t}") is not None),
                            key=lambda s: s["freeze_depth"])
                if not ss:
                    continue
                dy = 0.02 * (j - (len(temps) - 1) / 2)  # keep overlapping temperatures apart
                ax.plot([s["freeze_depth"] for s in ss], [s[f"md_stable_fraction.T{t}"] + dy for s in ss],
                        marker=markers[j % len(markers)], color=c, ls="-" if j == 0 else ":", ms=8 - 2 * j,
                        label=f"transfer, {size} frames, {t} K")
                for s in summary:
                    v = s.get(f"md_stable_fraction.T{t}")
                    if s["train_size"] == size and s["freeze_depth"] is None and v is not None:
                        ax.axhline(v + dy, ls="--" if j == 0 else "-.", color=c, lw=1,
                                   label=f"scratch, {size} frames, {t} K")
        ax.set_ylim(-0.1, 1.1)
        ax.set_xticks(depths, [str(d) for d in depths])
        ax.set_xlabel("freeze depth")
        ax.set_ylabel("fraction of MD runs stable")
        ax.set_title(f"MD stability, {run_length_ps or '?'} ps runs (models that ran MD)", fontsize=9)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_DEPTH_NAMES = {0: "none", 1: "2-body", 2: "+layer 0", 3: "+layer 1"}


def print_table(summary: list[dict[str, Any]]) -> None:
    temps = sorted({k.split(".T", 1)[1] for s in summary for k in s if k.startswith("md_stable_fraction.T")},
                   key=float)
    head = (
        f"{'init':14} {'n':>4} {'seeds':>5} {'force MAE [eV/A]':>20} {'E MAE [meV/at]':>16} "
        f"{'/scratch':>8} {'/fd0':>6}"
    )
    for t in temps:
        head += f" {'stable ' + t + 'K':>12} {'RDFdev':>7}"
    print(head)
    for s in summary:
        line = (
            f"{s['init']:14} {s['train_size']:4d} {s['n_seeds']:5d} "
            f"{s['forces_mae_mean']:10.4f} ± {s['forces_mae_std']:.4f} "
            f"{1e3 * s['energy_mae_mean']:7.2f} ± {1e3 * s['energy_mae_std']:5.2f} "
            f"{s.get('forces_ratio_to_scratch', float('nan')):8.3f} "
            f"{s.get('forces_ratio_to_transfer_fd0', float('nan')):6.3f}"
        )
        for t in temps:
            st, dev = s[f"md_stable_fraction.T{t}"], s[f"md_max_rdf_dev_max.T{t}"]
            line += f" {'-' if st is None else f'{st:.2f}':>12} {'-' if dev is None else f'{dev:.2f}':>7}"
        print(line)


# ---------------------------------------------------------------- main
def _title(s: dict[str, Any]) -> str:
    temps = "/".join(f"{t:g}" for t in s["md_temperatures"])
    sizes = sorted(set(s["sizes"]))
    ep = "/".join(map(str, s["epochs"]))
    if len(s["epochs"]) > 1:
        ep += f" (at {'/'.join(map(str, sizes))} frames)"
    md = "" if s.get("no_md") else f"; MD {s['md_steps']} steps × {s['md_replicas']} replica at {temps} K"
    return (
        f"SW Ge, transfer from SW Si, {s['model']} Allegro, {ep} epochs, lr {s['lr']:g} (plateau), "
        f"{len(s['seeds'])} seeds, {s['test_size']} test frames{md}"
    )


def replot(name: str) -> int:
    """Redraw the PNG and reprint the table from the results JSON, without training."""
    res = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    cfg = res.get("stability_config")
    run_length = cfg["steps"] * cfg["timestep_fs"] / 1000.0 if cfg else None
    plot(res["summary"], RESULTS_DIR / f"{name}.png", _title(res["settings"]), run_length)
    print_table(res["summary"])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100], help="Ge training sizes (nested)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pool-size", type=int, default=100,
                   help="Ge training pool the data set is generated for (at least the largest size)")
    p.add_argument("--depths", type=int, nargs="+", default=None,
                   help="freeze depths to run (default: every depth the source allows, 0..max)")
    p.add_argument("--no-scratch", action="store_true", help="skip the scratch baseline")
    p.add_argument("--epochs", type=int, nargs="+", default=[20, 6],
                   help="epochs of every Ge run: one value, or one per size (in increasing size order)")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of every Ge run (plateau schedule)")
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="pretrained SW-Si package")
    p.add_argument("--model", default="tiny", help="model preset for scratch (must match the source)")
    p.add_argument("--test-size", type=int, default=30, help="fixed Ge test frames")
    p.add_argument("--val-size", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--md-temperatures", type=float, nargs="+", default=[300.0, 1200.0])
    p.add_argument("--md-steps", type=int, default=800, help="MD steps (1 fs) per stability run")
    p.add_argument("--rdf-window", type=float, default=0.3,
                   help="ps of MD averaged per RDF comparison (after the default 0.5 ps equilibration)")
    p.add_argument("--md-replicas", type=int, default=1)
    p.add_argument("--reference-steps", type=int, default=2000, help="SW Ge MD steps for the reference RDFs")
    p.add_argument("--no-md", action="store_true", help="skip the stability runs")
    p.add_argument("--md-seeds", type=int, nargs="+", default=None,
                   help="run MD only for the models of these seeds (others use finished MD results if any)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 was faster under load here)")
    p.add_argument("--no-reuse", action="store_true", help="redo runs already finished in bench/work")
    p.add_argument("--collect", action="store_true",
                   help="train and simulate nothing: tabulate the grid's finished runs, leave out the rest")
    p.add_argument("--name", default=NAME, help="results file name (bench/results/NAME.{csv,json,png})")
    p.add_argument("--replot", action="store_true", help="only redraw the plot from the results JSON")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if args.replot:
        return replot(args.name)
    setup_logging(args.verbose)
    set_threads(args.threads)
    info = machine_info()
    t_start = time.perf_counter()
    work = WORK_DIR / NAME
    work.mkdir(parents=True, exist_ok=True)

    if not args.source.is_file():
        raise SystemExit(
            f"no source model at {args.source}: run bench/transfer_vs_scratch.py first or pass --source"
        )
    source = source_info(args.source, args.model)
    depths = args.depths if args.depths is not None else list(range(source["max_freeze_depth"] + 1))
    inits: list[int | None] = ([] if args.no_scratch else [None]) + sorted(depths)
    sizes = sorted(set(args.sizes))
    if len(args.epochs) not in (1, len(sizes)):
        raise SystemExit(f"--epochs takes one value or one per size ({len(sizes)})")
    # The data (so the test set) depend on the pool only: a run of some of the sizes matches the full grid.
    pool = max(args.pool_size, *sizes)
    fpt = max(50, math.ceil((pool + args.val_size + args.test_size) / 2))
    ge_spec = ge_data_spec(fpt)
    ge_data = generated(ge_spec)
    if not args.no_md:
        from mlptl.evaluate.reference_rdf import reference_rdf

        cfg = stability_config(args)
        t0 = time.perf_counter()
        reference_rdf("Ge", cfg.temperatures, cfg, reference="sw", cache_dir=WORK_DIR / "rdf")
        log.info("SW Ge reference RDFs ready (%.0f s)", time.perf_counter() - t0)

    rows = []
    # Seed-major order: an interrupted run still has complete comparisons for the first seeds.
    for seed in args.seeds:
        for size in sizes:
            for depth in inits:
                if (row := ge_run(args, ge_data, work, depth, size, seed)) is not None:
                    rows.append(row)
    summary = summarize(rows)
    wall = time.perf_counter() - t_start

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    write_csv(rows, RESULTS_DIR / f"{args.name}.csv")
    rdf_threshold = None if args.no_md else stability_config(args).rdf_threshold
    run_length = None if args.no_md else stability_config(args).duration_ps
    plot(summary, RESULTS_DIR / f"{args.name}.png", _title(vars(args)), run_length)
    write_json(
        RESULTS_DIR / f"{args.name}.json",
        {
            "benchmark": NAME,
            "command": " ".join(["python bench/freeze_depth.py", *(sys.argv[1:] if argv is None else argv)]),
            "machine": {**info, "load_avg_at_end": list(os.getloadavg())},
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k not in ("verbose", "no_reuse", "replot", "name")},
            "source": source,
            "ge_data": {"file": str(ge_data), **ge_spec.as_dict()},
            "split_seed": SPLIT_SEED,
            "stability_config": None if args.no_md else stability_config(args).to_dict(),
            "rdf_threshold": rdf_threshold,
            "benchmark_wall_s": wall,
            "benchmark_cpu_s": time.process_time(),
            "summary": summary,
            "runs": rows,
        },
    )
    print_table(summary)
    log.info("benchmark wall time %.0f s, CPU time %.0f s", wall, time.process_time())
    return 0


if __name__ == "__main__":
    sys.exit(main())
