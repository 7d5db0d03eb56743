"""MD steps per second of a trained model in ASE on this CPU: eager against AOTInductor-compiled, 64 and 512 atoms.

mlptl evaluates models (stability, RDF/ADF) with the *eager* packaged model because, in the facts note,
the AOTInductor-compiled model ran 64-atom MD slower on this CPU. This script measures that claim side
by side, at two system sizes, with the SW reference calculator (the cost of the reference MD) as a
baseline:

- compile the package once with ``nequip-compile PKG OUT.nequip.pt2 --mode aotinductor --device cpu
  --target ase`` (cached under bench/work/md_speed/, compile wall time recorded);
- for each thread count and cell (2x2x2 = 64 and 4x4x4 = 512 atoms of diamond Ge at the SW lattice
  constant), build each calculator once, run warm-up steps (not timed: the first calls of either model
  pay for allocation and, for the compiled one, loading), then time blocks of Langevin NVT MD at 300 K
  (1 fs, friction 0.01/fs, as the stability protocol), **interleaved**: every round runs one block of
  each calculator, so foreign load on the shared machine hits all of them alike;
- per round, compiled ms/step / eager ms/step (the ratio is taken within a round, side by side).

Optionally (``--stability-cost``) also ``measure_md_cost`` (below) on the eager model (64 atoms, bare
and with the stability monitor), the number docs/evaluation.md quotes for the cost of a stability trial.

    python bench/md_speed.py                       # the README's run (1 thread)
    python bench/md_speed.py --threads 1 2 --rounds 5

Outputs: bench/results/NAME.{json,csv,png}.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
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
    machine_info,
    set_threads,
    setup_logging,
    write_json,
)

log = logging.getLogger("bench.md_speed")

NAME = "md_speed"
ELEMENT = "Ge"
REFERENCE = "sw"  # the reference potential: the SW baseline and the crystal every run starts from
DEFAULT_MODEL = WORK_DIR / "transfer_vs_scratch" / "ge" / "transfer_fd0-n20-s0" / "model.nequip.zip"
MAKE_MODEL = "python bench/transfer_vs_scratch.py --sizes 20 --freeze-depths 0 --seeds 0"
CALCS = ("eager", "compiled", "sw")


def compile_model(package: Path, out: Path, threads: int) -> dict[str, Any]:
    """``nequip-compile`` to an AOTInductor .pt2 for ASE, unless a compiled file newer than the package exists."""
    if out.is_file() and out.stat().st_mtime > package.stat().st_mtime:
        log.info("using compiled model %s", out)
        return {"path": str(out), "cached": True, "wall_s": None}
    cmd = ["nequip-compile", str(package), str(out), "--mode", "aotinductor", "--device", "cpu", "--target", "ase"]
    log.info("compiling: %s", " ".join(cmd))
    out.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    (out.parent / "compile.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not out.is_file():
        log.error("nequip-compile failed (exit %d); see %s", proc.returncode, out.parent / "compile.log")
        raise SystemExit(1)
    log.info("compiled in %.0f s -> %s", wall, out)
    return {"path": str(out), "cached": False, "wall_s": wall, "command": " ".join(cmd)}


def make_calculator(kind: str, package: Path, compiled: Path):
    if kind == "eager":
        from mlptl.model.calculator import load_calculator

        return load_calculator(package, ELEMENT)
    if kind == "compiled":
        from nequip.integrations.ase import NequIPCalculator

        return NequIPCalculator.from_compiled_model(str(compiled), device="cpu")
    from mlptl.model.calculator import load_calculator

    return load_calculator(REFERENCE, ELEMENT)


class Runner:
    """One calculator on its own cell with its own Langevin integrator, advanced block by block."""

    def __init__(self, kind: str, supercell: int, package: Path, compiled: Path, seed: int):
        import numpy as np

        from mlptl.data.md import thermalize
        from mlptl.evaluate.md import make_dynamics, starting_cell

        self.kind = kind
        self.atoms = starting_cell(ELEMENT, REFERENCE, supercell)
        self.atoms.calc = make_calculator(kind, package, compiled)
        rng = np.random.default_rng(seed)
        thermalize(self.atoms, 300.0, rng)
        self.dyn = make_dynamics(self.atoms, 300.0, timestep_fs=1.0, thermostat="langevin", friction=0.01, rng=rng)

    def run(self, steps: int) -> tuple[float, float]:
        """Wall and CPU seconds of ``steps`` MD steps."""
        import numpy as np

        w0, c0 = time.perf_counter(), time.process_time()
        self.dyn.run(steps)
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        if not np.isfinite(self.atoms.positions).all():
            raise RuntimeError(f"{self.kind} MD went non-finite")
        return wall, cpu


def _steps_for(n_atoms: int, steps_64: int, min_steps: int) -> int:
    return max(min_steps, round(steps_64 * 64 / n_atoms))


def benchmark(args, package: Path, compiled: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for threads in args.threads:
        set_threads(threads)
        for supercell in args.supercells:
            runners = {}
            for kind in args.calculators:
                t0 = time.perf_counter()
                runners[kind] = Runner(kind, supercell, package, compiled, seed=args.seed)
                n_atoms = len(runners[kind].atoms)
                load_s = time.perf_counter() - t0
                warm = _steps_for(n_atoms, args.warmup, 3)
                w, _ = runners[kind].run(warm)
                log.info("threads=%d %d atoms %s: load %.1f s, %d warm-up steps %.1f s", threads, n_atoms,
                         kind, load_s, warm, w)
            steps = _steps_for(n_atoms, args.steps, args.min_steps)
            for rnd in range(args.rounds):
                # rotate the order every round so that no calculator always runs first or last
                order = list(args.calculators)
                k = rnd % len(order)
                order = order[k:] + order[:k]
                for kind in order:
                    wall, cpu = runners[kind].run(steps)
                    row = {"threads": threads, "n_atoms": n_atoms, "calculator": kind, "round": rnd,
                           "steps": steps, "wall_s": wall, "cpu_s": cpu, "ms_per_step": 1000 * wall / steps,
                           "steps_per_s": steps / wall, "cpu_ms_per_step": 1000 * cpu / steps,
                           "load_1min": os.getloadavg()[0]}
                    rows.append(row)
                    log.info("threads=%d %4d atoms round %d %-8s %7.2f ms/step (%6.1f steps/s, cpu %.2f ms)",
                             threads, n_atoms, rnd, kind, row["ms_per_step"], row["steps_per_s"],
                             row["cpu_ms_per_step"])
            del runners
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["threads"], r["n_atoms"]) for r in rows})
    for threads, n in keys:
        sel = [r for r in rows if r["threads"] == threads and r["n_atoms"] == n]
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for r in sel:
            by_kind.setdefault(r["calculator"], []).append(r)
        entry: dict[str, Any] = {"threads": threads, "n_atoms": n}
        for kind, rs in by_kind.items():
            ms = [r["ms_per_step"] for r in rs]
            entry[kind] = {"median_ms_per_step": statistics.median(ms), "min_ms_per_step": min(ms),
                           "max_ms_per_step": max(ms), "median_steps_per_s": 1000 / statistics.median(ms),
                           "median_cpu_ms_per_step": statistics.median(r["cpu_ms_per_step"] for r in rs),
                           "rounds": len(rs)}
        if "eager" in by_kind and "compiled" in by_kind:
            eager = {r["round"]: r["ms_per_step"] for r in by_kind["eager"]}
            ratios = [r["ms_per_step"] / eager[r["round"]] for r in by_kind["compiled"] if r["round"] in eager]
            # time ratio compiled/eager: < 1 means compiled is faster
            entry["time_ratio_compiled_over_eager"] = {"median": statistics.median(ratios), "min": min(ratios),
                                                       "max": max(ratios), "per_round": ratios}
        out.append(entry)
    return out


def measure_md_cost(calculator_factory, element: str, reference: str, *, steps: int = 200,
                    config=None) -> dict[str, float]:
    """Wall time per MD step in ms, bare and with mlptl's stability monitor attached (RDF criterion off).

    The monitor's cost is what the stability protocol adds to the calculator's; both are quoted in
    docs/evaluation.md with the command that produced them. The cell is the stability protocol's.
    """
    import numpy as np

    from mlptl.data.md import thermalize
    from mlptl.evaluate.md import make_dynamics, nearest_neighbour_distance
    from mlptl.evaluate.monitor import Monitor
    from mlptl.evaluate.stability import StabilityConfig
    from mlptl.evaluate.stability_config import stability_cell

    config = config or StabilityConfig()
    out: dict[str, float] = {}
    cell = stability_cell(element, reference, config)
    limits = config.limits(nearest_neighbour_distance(cell), tuple(c for c in config.criteria if c != "rdf"))
    t = config.temperatures[0]
    for label, monitored in (("bare", False), ("monitored", True)):
        atoms = cell.copy()
        atoms.calc = calculator_factory()
        atoms.get_forces()
        rng = np.random.default_rng(config.seed)
        thermalize(atoms, t, rng)
        dyn = make_dynamics(atoms, t, timestep_fs=config.timestep_fs, thermostat=config.thermostat,
                            friction=config.friction, rng=rng)
        if monitored:
            dyn.attach(Monitor(atoms, dyn, t, limits, None), interval=1)
        t0 = time.perf_counter()
        dyn.run(steps)
        out[f"ms_per_step_{label}"] = (time.perf_counter() - t0) / steps * 1000.0
    out["n_atoms"] = float(len(cell))
    out["steps"] = float(steps)
    return out


def stability_cost(package: Path, steps: int) -> dict[str, Any]:
    """measure_md_cost on the eager model (64 atoms), and what the default protocol costs at that rate."""
    from mlptl.evaluate.stability import StabilityConfig
    from mlptl.model.calculator import load_calculator

    cost = measure_md_cost(lambda: load_calculator(package, ELEMENT), ELEMENT, REFERENCE, steps=steps)
    c = StabilityConfig()
    total_steps = len(c.temperatures) * c.replicas * c.steps
    cost["default_protocol_steps"] = total_steps
    cost["default_protocol_minutes_at_monitored_rate"] = total_steps * cost["ms_per_step_monitored"] / 60000
    return cost


def plot(summary: list[dict[str, Any]], rows: list[dict[str, Any]], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colours = {"eager": "tab:blue", "compiled": "tab:orange", "sw": "0.5"}
    groups = [(s["threads"], s["n_atoms"]) for s in summary]
    kinds = [k for k in CALCS if any(k in s for s in summary)]
    fig = Figure(figsize=(max(5.5, 2.2 * len(groups)), 4.0))
    ax = fig.add_subplot()
    width = 0.8 / len(kinds)
    for j, kind in enumerate(kinds):
        for i, (threads, n) in enumerate(groups):
            x = i + (j - (len(kinds) - 1) / 2) * width
            pts = [r["ms_per_step"] for r in rows if r["threads"] == threads and r["n_atoms"] == n
                   and r["calculator"] == kind]
            if not pts:
                continue
            ax.bar(x, statistics.median(pts), width, color=colours[kind], label=kind if i == 0 else None)
            ax.plot([x] * len(pts), pts, "k.", ms=3)
    for i, s in enumerate(summary):
        if "time_ratio_compiled_over_eager" in s:
            ax.annotate(f"compiled/eager\n{s['time_ratio_compiled_over_eager']['median']:.2f}", (i, 0),
                        xytext=(0, -38), textcoords="offset points", ha="center", fontsize=8)
    ax.set_xticks(range(len(groups)), [f"{n} atoms\n{t} thread{'s' if t > 1 else ''}" for t, n in groups])
    ax.set_yscale("log")
    ax.set_ylabel("wall ms per MD step (median; dots: rounds)")
    ax.set_title("Ge Langevin NVT 300 K in ASE, tiny Allegro")
    ax.legend(frameon=False)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    log.info("wrote %s", path)


def replot(name: str) -> list[dict[str, Any]]:
    """The summary recomputed from the timed rows of the results JSON, and the figure redrawn."""
    rows = json.loads((RESULTS_DIR / f"{name}.json").read_text())["rows"]
    summary = summarise(rows)
    plot(summary, rows, RESULTS_DIR / f"{name}.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="trained package (*.nequip.zip)")
    p.add_argument("--threads", type=int, nargs="+", default=[1], help="torch thread counts to measure")
    p.add_argument("--supercells", type=int, nargs="+", default=[2, 4],
                   help="diamond cubic cells per axis (2: 64 atoms, 4: 512)")
    p.add_argument("--calculators", nargs="+", default=list(CALCS), choices=CALCS)
    p.add_argument("--steps", type=int, default=200, help="timed steps per block for 64 atoms (scaled by 64/N)")
    p.add_argument("--min-steps", type=int, default=20, help="at least this many timed steps per block")
    p.add_argument("--warmup", type=int, default=50, help="untimed steps for 64 atoms (scaled by 64/N)")
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds (one block per calculator each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stability-cost", action="store_true",
                   help="also mlptl's measure_md_cost of the eager model, 64 atoms (for docs/evaluation.md)")
    p.add_argument("--cost-steps", type=int, default=300)
    p.add_argument("--name", default=NAME, help="results file name (bench/results/NAME.*)")
    p.add_argument("--replot", action="store_true",
                   help="only recompute the summary from the timed rows of NAME.json and redraw the figure")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    if args.replot:
        for s in replot(args.name):
            log.info("summary %s", s)
        return 0
    set_threads(args.threads[0])
    package = args.model.resolve()
    if not package.is_file():
        log.error("model %s not found; create it with:\n  %s", package, MAKE_MODEL)
        return 2
    info = machine_info()
    t_start = time.perf_counter()
    compiled_path = WORK_DIR / NAME / (package.parent.name + ".nequip.pt2")
    comp = compile_model(package, compiled_path, args.threads[0]) if "compiled" in args.calculators else None
    rows = benchmark(args, package, compiled_path)
    summary = summarise(rows)
    result: dict[str, Any] = {
        "benchmark": NAME, "machine": info, "settings": {k: (str(v) if isinstance(v, Path) else v)
                                                         for k, v in vars(args).items()},
        "compile": comp, "summary": summary, "rows": rows,
    }
    if args.stability_cost:
        set_threads(1)
        result["stability_cost_eager_64_atoms_1_thread"] = stability_cost(package, args.cost_steps)
        log.info("stability cost (eager, 64 atoms, 1 thread): %s", result["stability_cost_eager_64_atoms_1_thread"])
    result["wall_s"] = time.perf_counter() - t_start
    result["load_avg_at_end"] = list(os.getloadavg())
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS_DIR / f"{args.name}.json", result)
    with (RESULTS_DIR / f"{args.name}.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot(summary, rows, RESULTS_DIR / f"{args.name}.png")
    for s in summary:
        log.info("summary %s", s)
    log.info("done in %.0f s", result["wall_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
