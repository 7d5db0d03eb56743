"""Transfer Si -> Ge against training Ge from scratch, at equal epochs and learning rate.

One SW-Si model is pretrained once; then for every training size and seed a Ge model is trained from
scratch and by transfer from it (every weight copied, energy shift/scale re-fitted to Ge, optionally
the first ``freeze_depth`` blocks frozen). All runs share one fixed Ge test set (the split depends on
the data and ``split_seed`` only) and nested training sets (the 20-frame set lies inside the 50-frame
one); the seed varies weight initialisation (scratch) and batch shuffling (both). Scores are the test
errors of the packaged model (mlptl.evaluate.forces through the ASE calculator).

    python bench/transfer_vs_scratch.py                                   # the README's run
    python bench/transfer_vs_scratch.py --sizes 20 50 100 --seeds 0 1 2 3 4 --epochs 100 --model small

Outputs: bench/results/transfer_vs_scratch.{csv,json,png}.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    RESULTS_DIR,
    WORK_DIR,
    ge_data_spec,
    generated,
    machine_info,
    mean_std,
    metrics_row,
    set_threads,
    setup_logging,
    si_data_spec,
    train_or_reuse,
    write_csv,
    write_json,
)

log = logging.getLogger("bench.transfer_vs_scratch")

NAME = "transfer_vs_scratch"
SPLIT_SEED = 0


@dataclass(frozen=True)
class Init:
    """How a Ge run starts: from scratch, or by transfer with the first ``freeze_depth`` blocks frozen."""

    kind: str  # "scratch" | "transfer"
    freeze_depth: int = 0

    @property
    def label(self) -> str:
        return "scratch" if self.kind == "scratch" else f"transfer_fd{self.freeze_depth}"


def _inits(freeze_depths: list[int]) -> list[Init]:
    return [Init("scratch")] + [Init("transfer", d) for d in freeze_depths]


# ---------------------------------------------------------------- runs
def pretrain(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from mlptl.train import TrainSpec

    fpt = max(90, math.ceil((args.pretrain_frames + args.val_size + args.pretrain_test_size) / 2))
    data = generated(si_data_spec(fpt))
    spec = TrainSpec(
        element="Si",
        data=str(data),
        out=str(work / "si-pretrain"),
        lr=args.pretrain_lr,
        max_epochs=args.pretrain_epochs,
        train_size=args.pretrain_frames,
        val_size=args.val_size,
        test_size=args.pretrain_test_size,
        batch_size=args.batch_size,
        seed=0,
        split_seed=SPLIT_SEED,
        model=args.model,
    )
    log.info(
        "pretraining Si: %s model, %d frames, %d epochs, lr %g",
        args.model,
        args.pretrain_frames,
        args.pretrain_epochs,
        args.pretrain_lr,
    )
    rec = train_or_reuse(spec, reuse=not args.no_reuse)
    m = rec["metrics"]
    log.info(
        "Si model: test force MAE %.4f eV/A, energy MAE %.2f meV/atom, %.0f s",
        m["test_forces_mae"],
        1e3 * m["test_energy_per_atom_mae"],
        rec["wall_s"],
    )
    rec["data"] = str(data)
    return rec


def ge_run(args: argparse.Namespace, data: Path, work: Path, init: Init, size: int, seed: int, source: str):
    from mlptl.train import TrainSpec

    spec = TrainSpec(
        element="Ge",
        data=str(data),
        out=str(work / "ge" / f"{init.label}-n{size}-s{seed}-e{args.epochs}-lr{args.lr:g}"),
        init=init.kind,  # type: ignore[arg-type]
        pretrained=source if init.kind == "transfer" else None,
        freeze_depth=init.freeze_depth,
        lr=args.lr,
        max_epochs=args.epochs,
        train_size=size,
        val_size=args.val_size,
        test_size=args.test_size,
        batch_size=args.batch_size,
        seed=seed,
        split_seed=SPLIT_SEED,
        model=args.model,
    )
    rec = train_or_reuse(spec, reuse=not args.no_reuse)
    row = {
        "init": init.label,
        "freeze_depth": init.freeze_depth if init.kind == "transfer" else None,
        "train_size": size,
        "seed": seed,
        **metrics_row(rec),
    }
    log.info(
        "%-13s n=%-3d seed=%d: test force MAE %.4f eV/A, energy MAE %.2f meV/atom (%.0f s)",
        init.label,
        size,
        seed,
        row["test_forces_mae"],
        1e3 * row["test_energy_per_atom_mae"],
        rec["wall_s"],
    )
    return row


# ---------------------------------------------------------------- summary
def summarize(rows: list[dict[str, Any]], inits: list[Init], sizes: list[int]) -> list[dict[str, Any]]:
    """Mean and std over seeds per (init, size); transfer rows also get the ratio to scratch."""
    out = []
    for size in sizes:
        scratch = [r for r in rows if r["train_size"] == size and r["init"] == "scratch"]
        sf, _ = mean_std([r["test_forces_mae"] for r in scratch])
        se, _ = mean_std([r["test_energy_per_atom_mae"] for r in scratch])
        for init in inits:
            rs = [r for r in rows if r["train_size"] == size and r["init"] == init.label]
            f_mean, f_std = mean_std([r["test_forces_mae"] for r in rs])
            e_mean, e_std = mean_std([r["test_energy_per_atom_mae"] for r in rs])
            s: dict[str, Any] = {
                "init": init.label,
                "train_size": size,
                "n_seeds": len(rs),
                "forces_mae_mean": f_mean,
                "forces_mae_std": f_std,
                "energy_mae_mean": e_mean,
                "energy_mae_std": e_std,
                "train_time_s_mean": statistics.fmean(r["train_time_s"] for r in rs),
            }
            if init.kind == "transfer":
                s["forces_ratio_to_scratch"] = f_mean / sf
                s["energy_ratio_to_scratch"] = e_mean / se
                # Of all (transfer seed, scratch seed) pairs, the fraction where transfer is better.
                pairs = [(a, b) for a in rs for b in scratch]
                s["forces_pairs_won"] = sum(
                    a["test_forces_mae"] < b["test_forces_mae"] for a, b in pairs
                ) / len(pairs)
            out.append(s)
    return out


def plot(summary: list[dict[str, Any]], inits: list[Init], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    panels = (
        (axes[0], "forces_mae", "test force MAE [eV/Å]", 1.0),
        (axes[1], "energy_mae", "test energy MAE [meV/atom]", 1e3),
    )
    for ax, key, ylabel, scale in panels:
        for i, init in enumerate(inits):
            ss = sorted((s for s in summary if s["init"] == init.label), key=lambda s: s["train_size"])
            x = [s["train_size"] * (1 + 0.03 * (i - (len(inits) - 1) / 2)) for s in ss]  # dodge error bars
            y = [scale * s[f"{key}_mean"] for s in ss]
            e = [scale * s[f"{key}_std"] for s in ss]
            label = (
                "scratch" if init.kind == "scratch" else f"transfer Si→Ge, freeze depth {init.freeze_depth}"
            )
            ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_locator(ticker.LogLocator(subs=(2.0, 3.0, 5.0)))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.tick_params(axis="y", which="minor", labelsize=7)
        sizes = sorted({s["train_size"] for s in summary})
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.xaxis.set_minor_locator(ticker.NullLocator())
        ax.set_xlabel("Ge training frames")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_table(summary: list[dict[str, Any]]) -> None:
    head = f"{'init':14} {'n':>4} {'seeds':>5} {'force MAE [eV/A]':>20} {'E MAE [meV/atom]':>18} {'F ratio':>8} {'E ratio':>8} {'F wins':>7}"
    print(head)
    for s in summary:
        ratio = s.get("forces_ratio_to_scratch")
        print(
            f"{s['init']:14} {s['train_size']:4d} {s['n_seeds']:5d} "
            f"{s['forces_mae_mean']:10.4f} ± {s['forces_mae_std']:.4f} "
            f"{1e3 * s['energy_mae_mean']:8.2f} ± {1e3 * s['energy_mae_std']:5.2f} "
            + (
                f"{ratio:8.3f} {s['energy_ratio_to_scratch']:8.3f} {s['forces_pairs_won']:7.2f}"
                if ratio is not None
                else f"{'-':>8} {'-':>8} {'-':>7}"
            )
        )


# ---------------------------------------------------------------- main
def _title(settings: dict[str, Any], source_metrics: dict[str, float]) -> str:
    s = settings
    return (
        f"SW Ge, {s['model']} Allegro, {s['epochs']} epochs, lr {s['lr']:g} (plateau), "
        f"{len(s['seeds'])} seeds (mean ± std), {s['test_size']} test frames\n"
        f"source: SW Si {s['pretrain_frames']} frames × {s['pretrain_epochs']} epochs "
        f"(Si test force MAE {source_metrics['test_forces_mae']:.3f} eV/Å)"
    )


def replot(name: str) -> int:
    """Redraw the PNG and reprint the table from the results JSON, without training."""
    res = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    inits = _inits(res["settings"]["freeze_depths"])
    plot(
        res["summary"],
        inits,
        RESULTS_DIR / f"{name}.png",
        _title(res["settings"], res["pretrain"]["metrics"]),
    )
    print_table(res["summary"])
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[20, 50], help="Ge training sizes (nested)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30, help="epochs of every Ge run")
    p.add_argument("--lr", type=float, default=3e-3, help="learning rate of every Ge run (plateau schedule)")
    p.add_argument("--freeze-depths", type=int, nargs="+", default=[0, 1], help="transfer variants")
    p.add_argument("--model", default="tiny", help="model preset for Si pretraining and Ge scratch")
    p.add_argument("--test-size", type=int, default=30, help="fixed Ge test frames")
    p.add_argument("--val-size", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--pretrain-frames", type=int, default=120, help="Si training frames")
    p.add_argument("--pretrain-epochs", type=int, default=30)
    p.add_argument("--pretrain-lr", type=float, default=5e-3)
    p.add_argument("--pretrain-test-size", type=int, default=20)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 was faster under load here)")
    p.add_argument("--no-reuse", action="store_true", help="retrain runs already finished in bench/work")
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

    sizes = sorted(set(args.sizes))
    fpt = max(50, math.ceil((max(sizes) + args.val_size + args.test_size) / 2))
    ge_spec = ge_data_spec(fpt)
    ge_data = generated(ge_spec)
    source = pretrain(args, work)
    t_pre = time.perf_counter() - t_start

    inits = _inits(args.freeze_depths)
    rows = []
    # Seed-major order: an interrupted run still has complete comparisons for the first seeds.
    for seed in args.seeds:
        for size in sizes:
            for init in inits:
                rows.append(ge_run(args, ge_data, work, init, size, seed, source["model"]))
    summary = summarize(rows, inits, sizes)
    wall = time.perf_counter() - t_start

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    write_csv(rows, RESULTS_DIR / f"{args.name}.csv")
    sm = source["metrics"]
    plot(summary, inits, RESULTS_DIR / f"{args.name}.png", _title(vars(args), sm))
    write_json(
        RESULTS_DIR / f"{args.name}.json",
        {
            "benchmark": NAME,
            "command": " ".join(
                ["python bench/transfer_vs_scratch.py", *(sys.argv[1:] if argv is None else argv)]
            ),
            "machine": {**info, "load_avg_at_end": list(os.getloadavg())},
            "settings": {
                k: v for k, v in vars(args).items() if k not in ("verbose", "no_reuse", "replot", "name")
            },
            "ge_data": {"file": str(ge_data), **ge_spec.as_dict()},
            "split_seed": SPLIT_SEED,
            "pretrain": {
                "data": source["data"],
                "spec": source["spec"],
                "metrics": sm,
                "wall_s": source["wall_s"],
            },
            "pretrain_phase_wall_s": t_pre,
            "benchmark_wall_s": wall,
            "benchmark_cpu_s": time.process_time(),
            "summary": summary,
            "runs": rows,
        },
    )
    print_table(summary)
    log.info(
        "benchmark wall time %.0f s (pretraining phase %.0f s), CPU time %.0f s",
        wall,
        t_pre,
        time.process_time(),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
