"""Force calls of the matscipy reference potentials: stock matscipy against mlptl's (mlptl/data/_matscipy.py).

mlptl's many-body references are matscipy's ``Manybody`` calculators with a neighbourhood that skips the
j-k bond index matscipy pairs with every triplet in a Python loop, which the energy and forces never use.
This script times both side by side on the same calculator functions:

- energy+force calls on diamond cells of 8, 64 and 512 atoms (rattled anew before every call, so that no
  result is reused), for SW Si, SW Ge (Ding-Andersen), Tersoff Si and the Si-Ge Tersoff on a mixed cell;
  every round times a block of each, stock and mlptl alternating first, and the ratio is taken per round;
- labelling the "tiny" SW Ge data set (the MD that ``mlptl data generate`` and a study's phase 1 run),
  stock against mlptl, alternating per round; the two data sets must be identical to the last bit.

    python bench/reference_speed.py                 # the bench/README.md run
    python bench/reference_speed.py --replot        # recompute the summary and figure from the JSON

Outputs: bench/results/reference_speed.{json,csv,png}.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, machine_info, setup_logging, write_csv, write_json  # noqa: E402

NAME = "reference_speed"
POTENTIALS = ("SW Si", "SW Ge", "Tersoff Si", "Tersoff Si-Ge")


def calculators(potential: str) -> tuple[Any, Any, Any]:
    """(mlptl's calculator, stock matscipy's with the same functions, the crystal's Reference)."""
    import inspect

    from matscipy.calculators.manybody import Manybody

    from mlptl.data.references import get_reference
    from mlptl.data.systems import tersoff_si_ge

    element, name = {"SW Si": ("Si", "sw"), "SW Ge": ("Ge", "sw"), "Tersoff Si": ("Si", "tersoff"),
                     "Tersoff Si-Ge": ("Si", "tersoff")}[potential]
    ref = get_reference(element, name)
    ours = tersoff_si_ge() if potential == "Tersoff Si-Ge" else ref.calculator()
    # stock matscipy: the same functions, its own default neighbourhood
    fields = [p for p in inspect.signature(Manybody).parameters if p != "neighbourhood"]
    return ours, Manybody(**{f: getattr(ours, f) for f in fields}), ref


def time_calls(calc: Any, atoms: Any, calls: int, rng: Any) -> float:
    """Milliseconds per energy+force call, the atoms rattled before each (not timed)."""
    total = 0.0
    base = atoms.positions.copy()
    for _ in range(calls):
        atoms.positions = base + rng.normal(scale=0.05, size=base.shape)
        t0 = time.perf_counter()
        calc.calculate(atoms, ["energy", "forces"], ["positions"])
        total += time.perf_counter() - t0
    return 1e3 * total / calls


def label_seconds(stock: bool) -> tuple[float, list[Any]]:
    """Wall seconds to label the tiny SW Ge preset (no cache), with stock matscipy or mlptl's calculator."""
    import dataclasses

    from mlptl.data.generate import generate_frames, preset
    from mlptl.data.references import get_reference, register_reference

    name = "sw"
    if stock:
        name = "sw-stock-matscipy"
        register_reference(dataclasses.replace(get_reference("Ge", "sw"), name=name,
                                               factory=_stock_sw_ge), replace=True)
    t0 = time.perf_counter()
    frames = generate_frames(preset("tiny", "Ge", reference=name), progress=False)
    return time.perf_counter() - t0, frames


def _stock_sw_ge() -> Any:
    return calculators("SW Ge")[1]


def measure(rounds: int, sizes: list[int], label_rounds: int) -> list[dict[str, Any]]:
    import numpy as np

    rows = []
    rng = np.random.default_rng(0)
    for rnd in range(rounds):
        for potential in POTENTIALS:
            ours, stock, ref = calculators(potential)
            for reps in sizes:
                atoms = ref.crystal(reps)
                if potential == "Tersoff Si-Ge":
                    atoms.symbols[::2] = "Ge"
                calls = max(3, 400 // len(atoms))
                order = [("mlptl", ours), ("stock", stock)][:: 1 if rnd % 2 == 0 else -1]
                for impl, calc in order:
                    time_calls(calc, atoms, 2, rng)  # warm-up
                    ms = time_calls(calc, atoms, calls, rng)
                    rows.append({"kind": "force_call", "round": rnd, "potential": potential,
                                 "n_atoms": len(atoms), "impl": impl, "calls": calls, "ms_per_call": ms})
    for rnd in range(label_rounds):
        done = {}
        for stock in ((False, True) if rnd % 2 == 0 else (True, False)):
            s, frames = label_seconds(stock)
            done[stock] = frames
            rows.append({"kind": "label_tiny_ge", "round": rnd, "potential": "SW Ge",
                         "n_atoms": len(frames[0]), "impl": "stock" if stock else "mlptl", "calls": len(frames),
                         "seconds": s})
        identical = all(np.array_equal(a.get_forces(), b.get_forces()) and
                        a.get_potential_energy() == b.get_potential_energy() for a, b in zip(done[False], done[True]))
        rows[-1]["identical_to_the_other"] = rows[-2]["identical_to_the_other"] = bool(identical)
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per potential and size: median ms per call of each, and the per-round ratio mlptl/stock."""
    calls, out = [r for r in rows if r["kind"] == "force_call"], {"force_calls": [], "labelling": None}
    for potential in POTENTIALS:
        for n in sorted({r["n_atoms"] for r in calls if r["potential"] == potential}):
            sel = [r for r in calls if r["potential"] == potential and r["n_atoms"] == n]
            by_round = {}
            for r in sel:
                by_round.setdefault(r["round"], {})[r["impl"]] = r["ms_per_call"]
            ratios = [v["mlptl"] / v["stock"] for v in by_round.values() if len(v) == 2]
            out["force_calls"].append({
                "potential": potential, "n_atoms": n,
                "stock_ms": statistics.median(v["stock"] for v in by_round.values()),
                "mlptl_ms": statistics.median(v["mlptl"] for v in by_round.values()),
                "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            })
    lab = [r for r in rows if r["kind"] == "label_tiny_ge"]
    if lab:
        by_round = {}
        for r in lab:
            by_round.setdefault(r["round"], {})[r["impl"]] = r["seconds"]
        ratios = [v["mlptl"] / v["stock"] for v in by_round.values()]
        out["labelling"] = {
            "frames": lab[0]["calls"], "n_atoms": lab[0]["n_atoms"],
            "stock_s": statistics.median(v["stock"] for v in by_round.values()),
            "mlptl_s": statistics.median(v["mlptl"] for v in by_round.values()),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "identical": all(r["identical_to_the_other"] for r in lab),
        }
    return out


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for potential in POTENTIALS:
        sel = [s for s in summary["force_calls"] if s["potential"] == potential]
        ax.plot([s["n_atoms"] for s in sel], [s["ratio_median"] for s in sel], "o-", label=potential)
        ax.vlines([s["n_atoms"] for s in sel], [s["ratio_min"] for s in sel], [s["ratio_max"] for s in sel], alpha=0.5)
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xscale="log", xlabel="atoms in the cell", ylabel="time per force call, mlptl / stock matscipy",
           ylim=(0, 1.1), title="matscipy many-body references without the unused j-k loop")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5, help="rounds of force-call blocks (default 5)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4],
                    help="conventional cells per side (default 1 2 4: 8, 64, 512 atoms)")
    ap.add_argument("--label-rounds", type=int, default=2, help="rounds of labelling the tiny Ge set (default 2)")
    ap.add_argument("--replot", action="store_true", help="recompute the summary and figure from the results JSON")
    a = ap.parse_args(argv)
    setup_logging()
    json_path = RESULTS_DIR / f"{NAME}.json"
    if a.replot:
        import json

        res = json.loads(json_path.read_text())
        res["summary"] = summarise(res["rows"])
    else:
        machine = machine_info()
        rows = measure(a.rounds, a.sizes, a.label_rounds)
        res = {"benchmark": NAME, "machine": machine, "settings": vars(a), "rows": rows, "summary": summarise(rows)}
    write_json(json_path, res)
    write_csv(res["summary"]["force_calls"], RESULTS_DIR / f"{NAME}.csv")
    plot(res["summary"], RESULTS_DIR / f"{NAME}.png")
    for s in res["summary"]["force_calls"]:
        print(f"{s['potential']:14s} {s['n_atoms']:4d} atoms: stock {s['stock_ms']:7.2f} ms, mlptl {s['mlptl_ms']:7.2f} ms,"
              f" ratio {s['ratio_median']:.2f} ({s['ratio_min']:.2f}-{s['ratio_max']:.2f})")
    if res["summary"]["labelling"]:
        lab = res["summary"]["labelling"]
        print(f"labelling the tiny Ge set: stock {lab['stock_s']:.1f} s, mlptl {lab['mlptl_s']:.1f} s, ratio "
              f"{lab['ratio_median']:.2f}, identical: {lab['identical']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
