"""Evaluate few-frame Ge models beyond force errors: MD stability, crystal properties, temperature transfer.

``transfer_vs_scratch.py`` scores Ge models by their test force error on the temperatures they were
trained on (300 and 900 K). A potential is used for MD, often at other temperatures, so this script
asks the questions force errors do not answer, for the transfer and the scratch models trained on
20 frames (3 seeds each) and for the SW Ge reference itself as a control:

- **stability** per temperature (default 300, 900, 1500 K; 1500 K is absent from the training data):
  stable fraction, median time to failure and the criteria that tripped (mlptl.evaluate.stability);
- **properties** against SW Ge: a0, cohesive energy, bulk modulus, C11, C12, C44, RDF/ADF distances
  (mlptl.evaluate.properties);
- **temperature transferability**: force and energy errors on fresh SW Ge frames at the trained
  temperatures (300, 900 K) and at temperatures absent from the training data (600, 1500 K)
  (mlptl.evaluate.forces).

The models are not trained here: they are the runs of ``python bench/transfer_vs_scratch.py`` under
bench/work/transfer_vs_scratch/ge/. Every (model, stage) result is cached as JSON under
bench/work/evaluate_transfer/, so an interrupted run resumes where it stopped.

    python bench/evaluate_transfer.py                       # the README's run
    python bench/evaluate_transfer.py --models transfer_fd0-n20-s0 --steps 200 --name evaluate_transfer_probe

Outputs: bench/results/NAME.{json,png}, NAME_{stability,properties,forces}.csv, NAME_ttf.png, NAME_rdf.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    DATA_CACHE,
    RESULTS_DIR,
    WORK_DIR,
    machine_info,
    set_threads,
    setup_logging,
    write_json,
)

log = logging.getLogger("bench.evaluate_transfer")

NAME = "evaluate_transfer"
ELEMENT = "Ge"
MODELS_DIR = WORK_DIR / "transfer_vs_scratch" / "ge"
CACHE = WORK_DIR / NAME
REFERENCE = "sw"
TRAINED_TEMPERATURES = (300.0, 900.0)
MAKE_MODELS = "python bench/transfer_vs_scratch.py --sizes 20 --freeze-depths 0 --seeds 0 1 2"
PROPS = ("a0", "ecoh", "B", "C11", "C12", "C44")
UNITS = {"a0": "A", "ecoh": "eV/atom", "B": "GPa", "C11": "GPa", "C12": "GPa", "C44": "GPa"}


def _label_init(label: str) -> str:
    return REFERENCE if label == REFERENCE else label.rsplit("-s", 1)[0]


# ---------------------------------------------------------------- inputs
def model_paths(labels: list[str]) -> dict[str, Path]:
    """Package path per model label; exit with the command that creates them if any is missing."""
    paths = {lab: MODELS_DIR / lab / "model.nequip.zip" for lab in labels}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        log.error("missing trained models:\n  %s\ncreate them with:\n  %s", "\n  ".join(missing), MAKE_MODELS)
        raise SystemExit(2)
    return paths


def test_frames(temperatures: list[float], frames_per_temperature: int, seed: int) -> Path:
    """Fresh SW Ge frames at every test temperature, sampled like the training data but with another seed.

    Same cell, thermostat, equilibration and spacing as bench/_common.ge_data_spec (the training data,
    seed 0); seed 1 gives independent trajectories, so the trained and the absent temperatures are
    scored on equally fresh frames.
    """
    from mlptl.data.generate import GenerationSpec, generate

    spec = GenerationSpec(element=ELEMENT, temperatures=tuple(temperatures),
                          frames_per_temperature=frames_per_temperature, supercell=2,
                          equilibration_steps=200, interval_steps=20, friction=0.02, seed=seed)
    return generate(spec, DATA_CACHE, progress=False)


# ---------------------------------------------------------------- stages (cached per model)
CACHED_ONLY = False  # --cached-only: collect finished stages, compute nothing


def _cached(label: str, stage: str, settings: dict[str, Any], compute) -> dict[str, Any] | None:
    path = CACHE / label / f"{stage}.json"
    if path.is_file():
        rec = json.loads(path.read_text())
        if rec.get("settings") == json.loads(json.dumps(settings, default=str)):
            log.info("%s %s: cached (%s)", label, stage, path)
            return rec
    if CACHED_ONLY:
        log.warning("%s %s: not computed yet, left out (--cached-only)", label, stage)
        return None
    t0 = time.perf_counter()
    result = compute()
    rec = {"settings": settings, "result": result, "wall_time_s": time.perf_counter() - t0}
    write_json(path, rec)
    rec = json.loads(path.read_text())
    log.info("%s %s: %.0f s", label, stage, rec["wall_time_s"])
    return rec


def _factory(label: str, path: Path | None):
    from mlptl.model.calculator import load_calculator

    return lambda: load_calculator(REFERENCE if path is None else path, ELEMENT)


def forces_stage(label: str, path: Path, frames_file: Path, settings: dict[str, Any]) -> dict[str, Any]:
    from mlptl.evaluate.forces import force_errors

    return _cached(label, "forces", settings,
                   lambda: force_errors(_factory(label, path)(), frames_file, element=ELEMENT, prefix="test"))


def properties_stage(label: str, path: Path | None, config, ref_props: dict[str, Any] | None,
                     settings: dict[str, Any]) -> dict[str, Any]:
    from mlptl.evaluate.properties import compare_properties, compute_properties

    def compute():
        calc = _factory(label, path)()
        scan = ev_scan(calc, config)
        if path is None:  # the reference itself: no distances to itself (they are 0 by construction)
            props = compute_properties(calc, ELEMENT, reference=REFERENCE, config=config, compare_structure=False)
            return {"properties": props, "ev_scan": scan}
        try:
            props = compute_properties(calc, ELEMENT, reference=REFERENCE, config=config, reference_properties=ref_props)
        except RuntimeError as e:
            # No E-V minimum the fit can find (a model trained at one density only): a result, not a
            # crash. Elastic constants then at the SW lattice constant, RDF/ADF as usual.
            log.warning("%s: %s; elastic constants at the SW lattice constant instead", label, e)
            props = fallback_properties(calc, config, ref_props)
            props["eos_error"] = str(e)
        return {"properties": props, "errors": compare_properties(props, ref_props), "ev_scan": scan}

    return _cached(label, "properties", settings, compute)


def ev_scan(calc, config) -> dict[str, Any]:
    """Energy per atom and pressure of the 8-atom crystal at SW a0 x (1 +/- eos_strain): is there a minimum?"""
    import numpy as np
    from ase import units

    from mlptl.evaluate.md import starting_cell

    cell = starting_cell(ELEMENT, REFERENCE)
    cell0 = np.array(cell.cell)
    out: dict[str, list[float]] = {"scale": [], "energy_per_atom": [], "pressure_gpa": []}
    for f in np.linspace(1 - config.eos_strain, 1 + config.eos_strain, config.eos_points):
        a = cell.copy()
        a.set_cell(cell0 * f, scale_atoms=True)
        a.calc = calc
        out["scale"].append(float(f))
        out["energy_per_atom"].append(float(a.get_potential_energy() / len(a)))
        out["pressure_gpa"].append(float(-np.trace(a.get_stress(voigt=False)) / 3 / units.GPa))
    return out


def fallback_properties(calc, config, ref_props: dict[str, Any]) -> dict[str, Any]:
    """Properties without an EOS: energy and relaxed-ion elastic constants at the SW lattice constant."""
    from mlptl.evaluate.md import starting_cell
    from mlptl.evaluate.properties import elastic_constants, sample_structure

    cell = starting_cell(ELEMENT, REFERENCE)
    cell.calc = calc
    props: dict[str, Any] = {"element": ELEMENT, "a0": None, "B": None,
                             "ecoh_at_sw_a0": float(cell.get_potential_energy() / len(cell))}
    props.update(elastic_constants(cell, config))
    if config.md_steps > 0:
        props.update(sample_structure(lambda: calc, starting_cell(ELEMENT, REFERENCE), config))
    return props


def stability_stage(label: str, path: Path | None, config, rdf_cache: Path,
                    settings: dict[str, Any]) -> dict[str, Any]:
    from mlptl.evaluate.stability import run_stability

    def compute():
        res = run_stability(_factory(label, path), ELEMENT, config, reference=REFERENCE, progress=False,
                            cache_dir=rdf_cache)
        return res.to_dict()

    return _cached(label, "stability", settings, compute)


# ---------------------------------------------------------------- tables
def _mean_std(xs: list[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None]
    if not xs:
        return float("nan"), float("nan")
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def stability_rows(stab: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label, rec in stab.items():
        for s in rec["result"]["summary"]:
            rows.append({
                "model": label, "init": _label_init(label), "temperature": s["temperature"],
                "trained_temperature": s["temperature"] in TRAINED_TEMPERATURES,
                "n_runs": s["n_runs"], "n_stable": s["n_stable"], "stable_fraction": s["stable_fraction"],
                "median_time_to_failure_ps": s["median_time_to_failure_ps"],
                "min_time_to_failure_ps": s["min_time_to_failure_ps"], "run_length_ps": s["run_length_ps"],
                "criteria": ",".join(f"{k}:{v}" for k, v in sorted(s["criteria"].items())),
            })
    return rows


def stability_extremes(stab: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model and temperature, the most extreme value each criterion saw over its runs."""
    rows = []
    for label, rec in stab.items():
        by_t: dict[float, list[dict[str, Any]]] = {}
        for r in rec["result"]["runs"]:
            by_t.setdefault(r["temperature"], []).append(r["extremes"])
        for t, exts in by_t.items():
            row: dict[str, Any] = {"model": label, "temperature": t}
            for k in exts[0]:
                vals = [e[k] for e in exts if e.get(k) is not None]
                row[k] = (min if k.startswith("min") else max)(vals) if vals else None
            rows.append(row)
    return rows


def property_rows(props: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for label, rec in props.items():
        p = rec["result"]["properties"]
        errs = rec["result"].get("errors", {})
        row = {"model": label, "init": _label_init(label)}
        row["eos_ok"] = "eos_error" not in p
        if not row["eos_ok"]:
            row["ecoh_at_sw_a0"] = p.get("ecoh_at_sw_a0")
        scan = rec["result"].get("ev_scan")
        if scan:
            row["pressure_at_sw_a0_gpa"] = scan["pressure_gpa"][len(scan["pressure_gpa"]) // 2]
        for k in PROPS:
            row[k] = p.get(k)
            row[f"{k}_rel_error"] = errs.get(k, {}).get("rel_error", 0.0 if label == REFERENCE else None)
        for k in ("rdf_distance", "adf_distance"):
            row[k] = p.get(k, errs.get(k, 0.0 if label == REFERENCE else None))
        row["md_ok"] = p.get("md_ok")
        rows.append(row)
    return rows


def force_rows(forces: dict[str, dict[str, Any]], temperatures: list[float]) -> list[dict[str, Any]]:
    rows = []
    for label, rec in forces.items():
        m = rec["result"]
        for t in temperatures:
            g = f"T{int(round(t))}"
            rows.append({
                "model": label, "init": _label_init(label), "temperature": t,
                "trained_temperature": t in TRAINED_TEMPERATURES,
                "forces_mae": m.get(f"test_forces_mae.{g}"), "forces_rmse": m.get(f"test_forces_rmse.{g}"),
                "energy_per_atom_mae_mev": 1000 * m[f"test_energy_per_atom_mae.{g}"]
                if m.get(f"test_energy_per_atom_mae.{g}") is not None else None,
                "n_frames": m.get(f"test_n_frames.{g}"),
            })
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    log.info("wrote %s", path)


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Per init (seeds pooled): mean and std of every figure the README tables show."""
    out: dict[str, Any] = {"forces": [], "stability": [], "properties": []}
    inits = list(dict.fromkeys(_label_init(lab) for lab in result["models"]))
    for init in inits:
        for t in result["settings"]["test_temperatures"]:
            rows = [r for r in result["forces"] if r["init"] == init and r["temperature"] == t]
            if rows:
                m, s = _mean_std([r["forces_mae"] for r in rows])
                e, es = _mean_std([r["energy_per_atom_mae_mev"] for r in rows])
                out["forces"].append({"init": init, "temperature": t, "trained": t in TRAINED_TEMPERATURES,
                                      "forces_mae_mean": m, "forces_mae_std": s,
                                      "energy_mae_mev_mean": e, "energy_mae_mev_std": es, "n_models": len(rows)})
        for t in result["settings"]["stability_temperatures"]:
            rows = [r for r in result["stability"] if r["init"] == init and r["temperature"] == t]
            if rows:
                crit: dict[str, int] = {}
                for r in rows:
                    for item in filter(None, r["criteria"].split(",")):
                        k, v = item.split(":")
                        crit[k] = crit.get(k, 0) + int(v)
                out["stability"].append({
                    "init": init, "temperature": t, "n_stable": sum(r["n_stable"] for r in rows),
                    "n_runs": sum(r["n_runs"] for r in rows),
                    "median_ttf_per_model": [r["median_time_to_failure_ps"] for r in rows],
                    "criteria": crit,
                })
        rows = [r for r in result["properties"] if r["init"] == init]
        if rows:
            row: dict[str, Any] = {"init": init, "n_models": len(rows),
                                   "n_eos_ok": sum(bool(r["eos_ok"]) for r in rows)}
            for k in (*PROPS, *(f"{p}_rel_error" for p in PROPS), "rdf_distance", "adf_distance",
                      "pressure_at_sw_a0_gpa"):
                row[f"{k}_mean"], row[f"{k}_std"] = _mean_std([r[k] for r in rows])
            out["properties"].append(row)
    return out


# ---------------------------------------------------------------- plots
def plot(result: dict[str, Any], stab_results: dict[str, Any], out_png: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mlptl.evaluate.plots import plot_rdf, plot_time_to_failure

    summ = result["summary"]
    colours = {"scratch": "tab:red", "transfer_fd0": "tab:blue", REFERENCE: "black"}
    fig = Figure(figsize=(15, 4.2))
    fig.subplots_adjust(wspace=0.3)
    ax1, ax2, ax3 = fig.add_subplot(131), fig.add_subplot(132), fig.add_subplot(133)
    # (a) force MAE vs test temperature, trained temperatures marked
    for init in dict.fromkeys(r["init"] for r in summ["forces"]):
        rows = sorted((r for r in summ["forces"] if r["init"] == init), key=lambda r: r["temperature"])
        ax1.errorbar([r["temperature"] for r in rows], [r["forces_mae_mean"] for r in rows],
                     yerr=[r["forces_mae_std"] for r in rows], marker="o", capsize=3, label=init,
                     color=colours.get(init.split("-")[0]))
    for t in TRAINED_TEMPERATURES:
        ax1.axvline(t, color="0.85", lw=6, zorder=0)
    ax1.set_yscale("log")
    ax1.set_xlabel("test temperature (K)  [grey: in training data]")
    ax1.set_ylabel("force MAE (eV/Å), mean ± std over seeds")
    ax1.set_title("temperature transferability")
    ax1.legend(frameon=False)
    # (b) stable runs per temperature
    inits = list(dict.fromkeys(r["init"] for r in summ["stability"]))
    temps = result["settings"]["stability_temperatures"]
    width = 0.8 / max(1, len(inits))
    for k, init in enumerate(inits):
        rows = {r["temperature"]: r for r in summ["stability"] if r["init"] == init}
        xs = [i + (k - (len(inits) - 1) / 2) * width for i in range(len(temps))]
        fr = [rows[t]["n_stable"] / rows[t]["n_runs"] if t in rows else 0 for t in temps]
        ax2.bar(xs, fr, width, label=init, color=colours.get(init.split("-")[0]))
    ax2.set_xticks(range(len(temps)), [f"{t:g}" for t in temps])
    ax2.set_xlabel("MD temperature (K)")
    ax2.set_ylabel("stable fraction of runs (all seeds)")
    ax2.set_ylim(0, 1.05)
    ax2.set_title(f"MD stability, {result['settings']['stability']['steps']} steps of "
                  f"{result['settings']['stability']['timestep_fs']:g} fs")
    ax2.legend(frameon=False, fontsize=8)
    # (c) property relative errors
    props = [r for r in summ["properties"] if r["init"] != REFERENCE]
    width = 0.8 / max(1, len(props))
    for k, r in enumerate(props):
        xs = [i + (k - (len(props) - 1) / 2) * width for i in range(len(PROPS))]
        ax3.bar(xs, [100 * r[f"{p}_rel_error_mean"] for p in PROPS], width,
                yerr=[100 * r[f"{p}_rel_error_std"] for p in PROPS], capsize=2, label=r["init"],
                color=colours.get(r["init"].split("-")[0]))
    ax3.set_xticks(range(len(PROPS)), PROPS)
    ax3.set_yscale("log")
    ax3.set_ylabel("|model - SW Ge| / SW Ge (%)")
    ax3.set_title("crystal properties vs SW Ge")
    ax3.legend(frameon=False, fontsize=8)
    FigureCanvasAgg(fig)
    fig.savefig(out_png, dpi=130, bbox_inches="tight")
    log.info("wrote %s", out_png)
    if stab_results:
        p = plot_time_to_failure(stab_results, out_png.with_name(out_png.stem + "_ttf.png"),
                                 title="Ge: time to failure per model")
        log.info("wrote %s", p)
    curves = {}
    for label, rec in result.get("_props_raw", {}).items():
        rdf = rec["result"]["properties"].get("rdf")
        if rdf and (label == REFERENCE or label.endswith("-s0")):
            curves[label if label != REFERENCE else "SW Ge (reference)"] = (rdf["r"], rdf["g"])
    if curves:
        p = plot_rdf(curves, out_png.with_name(out_png.stem + "_rdf.png"), title="Ge RDF at 900 K (seed 0)")
        log.info("wrote %s", p)


def replot(name: str) -> dict[str, Any]:
    """The summary recomputed from the per-model tables of the results JSON, and its figure redrawn."""
    result = json.loads((RESULTS_DIR / f"{name}.json").read_text())
    result["summary"] = summarise(result)
    plot(result, {}, RESULTS_DIR / f"{name}.png")
    return result["summary"]


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--models", nargs="*",
                   default=[f"{i}-n20-s{s}" for s in (0, 1, 2) for i in ("scratch", "transfer_fd0")],
                   help="run directories under bench/work/transfer_vs_scratch/ge/")
    p.add_argument("--no-reference", action="store_true", help="skip the SW Ge control")
    p.add_argument("--stages", nargs="+", default=["forces", "properties", "stability"],
                   choices=["forces", "properties", "stability"])
    p.add_argument("--stability-temperatures", type=float, nargs="+", default=[300.0, 900.0, 1500.0])
    p.add_argument("--replicas", type=int, default=3)
    p.add_argument("--steps", type=int, default=1000, help="MD steps per stability run (1 fs)")
    p.add_argument("--rdf-window", type=float, default=0.5, help="ps; RDF criterion window (docs default 0.5)")
    p.add_argument("--rdf-equilibration", type=float, default=0.5,
                   help="ps before the RDF criterion starts (docs default 0.5)")
    p.add_argument("--reference-steps", type=int, default=2000,
                   help="SW steps per temperature for the reference RDF (docs default 5000)")
    p.add_argument("--test-temperatures", type=float, nargs="+", default=[300.0, 600.0, 900.0, 1500.0])
    p.add_argument("--test-frames", type=int, default=20, help="fresh SW Ge frames per test temperature")
    p.add_argument("--test-seed", type=int, default=1, help="seed of the test trajectories (training: 0)")
    p.add_argument("--property-md-steps", type=int, default=1000,
                   help="sampled MD steps for the RDF/ADF (after 500 equilibration; docs default 2000)")
    p.add_argument("--property-md-equilibration", type=int, default=500, help="unsampled MD steps before the RDF/ADF")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--name", default=NAME, help="results file name (bench/results/NAME.*)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--cached-only", action="store_true",
                   help="only collect stages finished by earlier (e.g. parallel) runs; compute nothing")
    p.add_argument("--replot", action="store_true",
                   help="only recompute the summary from the tables in NAME.json and redraw NAME.png "
                        "(the time-to-failure and RDF figures need the stage caches in bench/work)")
    args = p.parse_args(argv)
    if args.replot:
        replot(args.name)
        return 0
    global CACHED_ONLY
    CACHED_ONLY = args.cached_only
    setup_logging(args.verbose)
    set_threads(args.threads)

    from mlptl.evaluate.properties import PropertyConfig
    from mlptl.evaluate.stability import StabilityConfig

    t_start = time.perf_counter()
    info = machine_info()
    paths: dict[str, Path | None] = dict(model_paths(args.models))
    if not args.no_reference:
        paths[REFERENCE] = None
    stab_config = replace(StabilityConfig(), temperatures=tuple(args.stability_temperatures),
                          replicas=args.replicas, steps=args.steps, reference_steps=args.reference_steps,
                          rdf_window=args.rdf_window, rdf_equilibration=args.rdf_equilibration)
    prop_config = replace(PropertyConfig(), md_steps=args.property_md_steps,
                          md_equilibration_steps=args.property_md_equilibration)
    settings = {
        "element": ELEMENT, "models": {k: str(v) if v else REFERENCE for k, v in paths.items()},
        "trained_temperatures": list(TRAINED_TEMPERATURES), "test_temperatures": args.test_temperatures,
        "test_frames_per_temperature": args.test_frames, "test_seed": args.test_seed,
        "stability_temperatures": args.stability_temperatures,
        "stability": stab_config.to_dict(), "properties": prop_config.to_dict(), "threads": args.threads,
    }
    rdf_cache = CACHE / "rdf"
    timings: dict[str, float] = {}
    forces, props, stab = {}, {}, {}
    frames_file = None
    if "forces" in args.stages:
        t0 = time.perf_counter()
        frames_file = test_frames(args.test_temperatures, args.test_frames, args.test_seed)
        timings["test_frames_s"] = time.perf_counter() - t0
        s = {"frames": frames_file.name}
        for label, path in paths.items():
            if path is not None:  # the reference scored against its own labels is 0 by construction
                forces[label] = forces_stage(label, path, frames_file, s)
    if "properties" in args.stages:
        s = prop_config.to_dict()
        ref = properties_stage(REFERENCE, None, prop_config, None, s)
        ref_props = ref["result"]["properties"]
        for label, path in paths.items():
            props[label] = ref if path is None else properties_stage(label, path, prop_config, ref_props, s)
    if "stability" in args.stages:
        s = stab_config.to_dict()
        for label, path in paths.items():
            stab[label] = stability_stage(label, path, stab_config, rdf_cache, s)
    forces, props, stab = ({k: v for k, v in d.items() if v is not None} for d in (forces, props, stab))
    for name, d in (("forces", forces), ("properties", props), ("stability", stab)):
        if d:
            timings[f"{name}_s"] = sum(r["wall_time_s"] for r in d.values())
            timings[f"{name}_per_model_s"] = {k: r["wall_time_s"] for k, r in d.items()}
    timings["this_process_wall_s"] = time.perf_counter() - t_start

    result: dict[str, Any] = {
        "benchmark": NAME, "machine": info, "load_avg_at_end": list(__import__("os").getloadavg()),
        "settings": settings, "models": list(paths), "test_frames_file": str(frames_file) if frames_file else None,
        "forces": force_rows(forces, args.test_temperatures),
        "stability": stability_rows(stab), "stability_extremes": stability_extremes(stab),
        "properties": property_rows(props),
        "timings": timings,
    }
    result["summary"] = summarise(result)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS_DIR / f"{args.name}.json", result)
    for kind in ("forces", "stability", "properties"):
        write_csv(RESULTS_DIR / f"{args.name}_{kind}.csv", result[kind])
    result["_props_raw"] = props
    plot(result, {k: v["result"] for k, v in stab.items()}, RESULTS_DIR / f"{args.name}.png")
    log.info("done: %s (this process %.0f s; stage times include cached ones)", RESULTS_DIR / f"{args.name}.json",
             timings["this_process_wall_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
