"""Every benchmark script in bench/ runs its analysis here, so that a change in mlptl that breaks one fails.

Each script is imported and called in this process (its ``main(argv)``): ``--help``, then its analysis on
its committed results in bench/results (``--replot`` and the like: recompute from the results JSON, redraw
the figure), with the recomputed figures checked against the committed ones and bench/README.md's. The
scripts write into a copy of bench/results (``RESULTS_DIR`` of each module, and ``MLPTL_BENCH_RESULTS``
for anything they start), never into the committed files. The study benchmarks' analysis of a store,
which is git-ignored, runs on a synthetic runs frame of the shape :func:`mlptl.report.load_runs` returns,
through the report's own statistics. The study files in bench/studies are loaded and checked against
what their drivers and results say. bench/gpu_packing.py has its own test (tests/test_gpu_packing.py).
"""

from __future__ import annotations

import importlib
import json
import math
import runpy
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "bench"
RESULTS = BENCH / "results"
#: bench script -> the test of its analysis below; a new script without one fails test_every_script_is_tested
ANALYSES = {
    "chemistry": "test_chemistry",
    "evaluate_transfer": "test_evaluate_transfer",
    "freeze_depth": "test_freeze_depth",
    "md_speed": "test_md_speed",
    "mlearn_learning_curve": "test_mlearn_learning_curve",
    "pairs_learning_curve": "test_pairs_learning_curve",
    "process_cpu": "test_process_cpu",
    "pruners": "test_pruners",
    "reference_speed": "test_reference_speed",
    "study_costs": "test_study_costs",
    "sw_learning_curve": "test_sw_learning_curve",
    "train_compile": "test_train_compile",
    "train_overhead": "test_train_overhead",
    "transfer_vs_scratch": "test_transfer_vs_scratch",
    "utilisation": "test_utilisation",
}
OWN_TEST = {"gpu_packing": "tests/test_gpu_packing.py"}
HELPERS = ("_common", "_studies")  # bench's own modules; tests/_studies.py shares a name


def scripts() -> list[str]:
    return sorted(p.stem for p in BENCH.glob("*.py") if not p.stem.startswith("_"))


@pytest.fixture(scope="module")
def bench(tmp_path_factory, monkeypatch_module):
    """The bench scripts as modules, writing into a copy of bench/results; sys.path and sys.modules are
    restored afterwards, so that other tests' ``_studies`` is theirs again."""
    out = tmp_path_factory.mktemp("results")
    shutil.copytree(RESULTS, out, dirs_exist_ok=True)
    monkeypatch_module.setenv("MLPTL_BENCH_RESULTS", str(out))
    monkeypatch_module.syspath_prepend(str(BENCH))
    saved = {m: sys.modules.pop(m) for m in (*HELPERS, *scripts()) if m in sys.modules}
    mods = {}
    try:
        for name in (*HELPERS, *ANALYSES):
            mods[name] = importlib.import_module(name)
        for m in mods.values():  # whatever imported _common first, these modules write into the copy
            if hasattr(m, "RESULTS_DIR"):
                m.RESULTS_DIR = out
        mods["pruners"].OUT = out / "pruners"
        mods["results"] = out
        yield mods
    finally:
        for m in (*HELPERS, *scripts()):
            sys.modules.pop(m, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def committed(name: str):
    return json.loads((RESULTS / name).read_text())


def written(bench, name: str) -> Path:
    path = bench["results"] / name
    assert path.is_file() and path.stat().st_size > 0, f"{name} not written"
    return path


def close(a, b, rel: float = 1e-9) -> bool:
    """Equal numbers (NaN/None equal to each other), recursively through lists and dicts."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(close(x, y, rel) for x, y in zip(a, b))
    nan = (None, float("nan"))
    if (a is None or (isinstance(a, float) and math.isnan(a))) and (b is None or (isinstance(b, float) and math.isnan(b))):
        return True
    if isinstance(a, int | float) and isinstance(b, int | float) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12) or (math.isinf(a) and a == b)
    return a == b or (a in nan and b in nan)


def r(x: float, digits: int) -> float:
    return round(float(x), digits)


def test_every_script_is_tested():
    missing = sorted(set(scripts()) - set(ANALYSES) - set(OWN_TEST))
    assert not missing, f"bench scripts without an analysis test here: {missing}"
    assert all(name in globals() for name in ANALYSES.values())


@pytest.mark.parametrize("name", sorted(ANALYSES))
def test_help(bench, name, capsys):
    with pytest.raises(SystemExit) as e:
        bench[name].main(["--help"])
    assert e.value.code == 0
    assert "usage:" in capsys.readouterr().out


# ---------------------------------------------------------------- study files
def test_study_files_are_the_drivers_studies(bench, capsys):
    """Each study file loads with the public API, names its own store under bench/work, and holds the
    study whose committed results are in bench/results (sizes, replicates, trials, epochs)."""
    from mlptl.study import Study

    files = sorted((BENCH / "studies").glob("*.py"))
    assert {p.stem for p in files} == {"chemistry", "mlearn_learning_curve", "pairs_learning_curve", "pruners",
                                       "study_costs", "sw_learning_curve"}
    for p in files:
        text = p.read_text()
        assert "from mlptl import main" in text and 'if __name__ == "__main__":' in text, p.name
        assert "mlptl.cli" not in text, p.name
        study = runpy.run_path(str(p), run_name="mlptl_study")["STUDY"]
        assert isinstance(study, Study), p.name
        if p.stem != "pruners":  # a study bench/pruners.py samples from, never runs: mlptl's default store
            assert Path(study.storage).is_relative_to(BENCH / "work"), p.name
        with pytest.raises(SystemExit) as e:  # `python bench/studies/X.py --help`: mlptl's study command line
            argv = sys.argv
            sys.argv = [str(p), *(["ni_cu"] if p.stem == "pairs_learning_curve" else []), "--help"]
            try:
                runpy.run_path(str(p), run_name="__main__")
            finally:
                sys.argv = argv
        assert e.value.code == 0, p.name
    sw = bench["_studies"].load_namespace("sw_learning_curve")["STUDY"]
    s = committed("sw_learning_curve_r5.json")["settings"]
    assert (sw.name, list(sw.train_sizes), len(sw.seeds), sw.trials_per_cell, sw.max_epochs) == \
        (s["name"], s["sizes"], s["replicates"], s["trials_per_cell"], s["epochs"])
    assert sw.evaluation.stability_temperatures == tuple(s["md_temperatures"])
    ml = bench["_studies"].load_namespace("mlearn_learning_curve")["STUDY"]
    s = committed("mlearn_learning_curve_r5_md.json")["settings"]
    assert (ml.name, list(ml.train_sizes), len(ml.seeds), ml.max_epochs, ml.evaluation.stability_steps) == \
        (s["name"], s["sizes"], s["replicates"], s["epochs"], s["md_steps"])
    pairs = bench["_studies"].load_namespace("pairs_learning_curve")
    assert {k: (p.source, p.target, p.reference) for k, p in bench["pairs_learning_curve"].PAIRS.items()} == pairs["PAIRS"]
    s = committed("pairs_learning_curve.json")["settings"]
    for study in pairs["STUDIES"].values():
        assert (list(study.train_sizes), len(study.seeds), study.max_epochs, study.val_size, study.test_size) == \
            (s["sizes"], s["replicates"], s["epochs"], s["val_size"], s["test_size"])
    smoke = bench["pairs_learning_curve"].load_studies(smoke=True)["ni_cu"]
    assert (smoke.name, len(smoke.seeds), smoke.trials_per_cell) == ("pairs-ni_cu-smoke", 2, 2)
    costs = bench["_studies"].load_namespace("study_costs")
    assert (costs["STUDY"].pruner.kind, costs["MEDIAN"].pruner.kind) == ("none", "median")
    assert costs["GE_DATA"] == bench["_common"].ge_data_spec()
    s = committed("study_costs.json")["settings"]
    assert (costs["STUDY"].train_sizes, costs["STUDY"].trials_per_cell, costs["STUDY"].max_epochs,
            costs["MEDIAN"].pruner.n_warmup_steps) == ((s["size"],), s["trials_per_cell"], s["epochs"], s["warmup"])
    pr = bench["_studies"].load_namespace("pruners")["STUDY"]
    s = committed("pruners/curves.json")["meta"]["settings"]
    assert (pr.train_sizes, pr.trials_per_cell, pr.max_epochs) == ((s["train_size"],), s["trials"], s["epochs"])


# ---------------------------------------------------------------- the study benchmarks
def synthetic_runs(sizes=(5, 10, 25), reps=5, temps=(300, 600, 900, 1200), groups=()) -> pd.DataFrame:
    """Runs as :func:`mlptl.report.load_runs` returns them: finished final replicates of scratch and
    transfer (transfer 0.3x scratch's error, with noise) and two pruned search trials."""
    rng = np.random.default_rng(0)
    rows = []
    for init, a in (("scratch", 1.0), ("transfer", 0.3)):
        for n in sizes:
            for rep in range(reps):
                y = a * n ** -0.5 * float(np.exp(rng.normal(0, 0.1)))
                row = {"phase": "final", "status": "finished", "init": init, "train_size": n, "replicate": rep,
                       "seed": rep, "subset_seed": 1000 * rep, "lr": 3e-3, "element": "Ge", "cell": f"{init}-n{n}",
                       "trial_key": f"{init}-n{n}-r{rep}", "start_time": 1000 * rep, "end_time": 1000 * rep + 60000,
                       "test_forces_mae": y, "test_energy_per_atom_mae": y / 50,
                       "stability_stable_fraction.T300": 1.0,
                       "stability_stable_fraction.T1000": float(init == "transfer"),
                       "stability_stable_fraction.T1200": float(init == "transfer")}
                row.update({f"test_forces_mae.T{t}": y * (1 + t / 1000) for t in temps})
                row.update({f"test_forces_mae.{g}": y for g in groups})
                rows.append(row)
        rows.append({"phase": "search", "status": "pruned", "init": init, "train_size": sizes[0],
                     "cell": f"{init}-n{sizes[0]}", "trial_key": f"{init}-s", "start_time": 0, "end_time": 5000})
    return pd.DataFrame(rows)


def check_report_statistics(res: dict, runs: pd.DataFrame) -> None:
    """The driver's tables are the report's statistics of the runs (nothing recomputed on the side)."""
    from mlptl.report.runs import final_frame
    from mlptl.report.statistics import cell_stats, paired_tests

    f = final_frame(runs)
    cells = cell_stats(f, "test_forces_mae")
    t = res["table"].set_index(["init", "train_size"])
    assert np.allclose(t.loc[list(zip(cells.init, cells.train_size)), "mean"], cells["mean"])
    assert np.allclose(res["paired"].ratio, paired_tests(f, "test_forces_mae").ratio)
    assert res["answer"].startswith("Transfer is more accurate than scratch")
    assert res["headline"]["headline_train_size"] == min(f.train_size)


def check_replot_csv(bench, stem: str, main) -> None:
    assert main(["--replot"]) == 0
    new, old = pd.read_csv(written(bench, f"{stem}.csv")), pd.read_csv(RESULTS / f"{stem}.csv")
    assert list(new.columns) == list(old.columns)
    pd.testing.assert_frame_equal(new, old, rtol=1e-8)
    written(bench, f"{stem}.png")


def test_sw_learning_curve(bench):
    sw = bench["sw_learning_curve"]
    check_replot_csv(bench, "sw_learning_curve_r5", sw.main)
    # bench/README.md's figures are the committed results' (SW learning curve, Results)
    res = committed("sw_learning_curve_r5.json")
    p = {x["train_size"]: x for x in res["paired"]}
    assert (r(p[5]["ratio"], 2), r(p[5]["ratio_ci_low"], 2), r(p[5]["ratio_ci_high"], 2)) == (0.29, 0.17, 0.42)
    assert (r(p[100]["ratio"], 2), r(p[100]["t_p"], 2)) == (1.02, 0.72)
    s = {x["train_size"]: x for x in res["savings"]}
    assert (r(s[5]["savings"], 1), r(s[5]["ci_low"], 1), r(s[5]["ci_high"], 1)) == (6.1, 4.9, 7.6)
    assert r(s[10]["savings"], 1) == 5.4
    h = {x["train_size"]: x for x in res["held_out"]}
    assert (r(h[5]["held_out_ratio_mean"], 2), r(h[5]["ci_low"], 2), r(h[5]["ci_high"], 2)) == (0.34, 0.20, 0.43)
    # the analysis of a store, on synthetic runs
    runs = synthetic_runs(sizes=(5, 10, 25))
    out = sw.analyse(runs)
    check_report_statistics(out, runs)
    from mlptl.report.runs import final_frame

    f = final_frame(runs)
    f["held"] = f[["test_forces_mae.T900", "test_forces_mae.T1200"]].mean(axis=1)
    w = f[f.train_size == 5].pivot_table(index="replicate", columns="init", values="held")
    assert math.isclose(out["held_out"].iloc[0].held_out_ratio_mean, (w.transfer / w.scratch).mean())
    assert out["held_out"].transfer_wins.tolist() == [5, 5, 5]
    assert out["table"]["stability_stable_fraction.T1200"].tolist() == [0.0] * 3 + [1.0] * 3
    sw.plot(out["table"], bench["results"] / "sw_synthetic.png")
    written(bench, "sw_synthetic.png")


def test_mlearn_learning_curve(bench):
    ml = bench["mlearn_learning_curve"]
    check_replot_csv(bench, "mlearn_learning_curve_r5_md", ml.main)
    res = committed("mlearn_learning_curve_r5_md.json")
    p = {x["train_size"]: x for x in res["paired"]}
    assert (r(p[10]["ratio"], 2), r(p[10]["ratio_ci_low"], 2), r(p[10]["ratio_ci_high"], 2)) == (0.74, 0.62, 0.89)
    assert (r(p[50]["ratio"], 2), r(p[200]["ratio"], 2)) == (0.65, 0.86)
    s = {x["train_size"]: x for x in res["savings"]}
    assert (r(s[10]["savings"], 1), r(s[10]["ci_low"], 1), r(s[10]["ci_high"], 0)) == (7.4, 3.6, 16)
    e = {x["train_size"]: x for x in res["energy"]}
    assert (r(e[10]["ratio_mean"], 2), r(e[10]["ci_low"], 2), r(e[10]["ci_high"], 2)) == (0.45, 0.30, 0.72)
    runs = synthetic_runs(sizes=(10, 50, 200), groups=ml.GROUPS)
    out = ml.analyse(runs)
    check_report_statistics(out, runs)
    assert {f"test_forces_mae.{g}" for g in ml.GROUPS} <= set(out["table"].columns)
    assert len(out["energy"]) == 3
    ml.plot(out["table"], bench["results"] / "mlearn_synthetic.png")
    written(bench, "mlearn_synthetic.png")


def test_pairs_learning_curve(bench):
    pl = bench["pairs_learning_curve"]
    for flags, stem in (([], "pairs_learning_curve"), (["--smoke"], "pairs_learning_curve_smoke")):
        assert pl.main(["--replot", *flags]) == 0
        written(bench, f"{stem}.png")
    res = committed("pairs_learning_curve.json")
    summary = {x["pair"]: x for x in res["summary"]}
    ni = summary["Ni -> Cu (emt)"]
    assert (r(ni["mae_ratio"], 2), r(ni["mae_ratio_ci_low"], 2), r(ni["mae_ratio_ci_high"], 2)) == (0.16, 0.09, 0.41)
    assert (r(ni["savings"], 1), r(ni["savings_ci_low"], 1), r(ni["savings_ci_high"], 1)) == (8.8, 5.9, 13.2)
    si = summary["Si -> Ge (sw)"]
    assert (r(si["savings"], 1), r(si["savings_ci_low"], 1), r(si["savings_ci_high"], 1)) == (5.6, 4.5, 7.2)
    assert r(100 * ni["a0_mismatch"], 1) == 2.9
    # one pair's analysis of its store, on synthetic runs; the tables and the figure from it
    result = pl.pair_result("ni_cu", "pairs-ni_cu", synthetic_runs(sizes=(4, 16, 64)), [{"wall_s": 10.0}])
    assert result["similarity"]["same_lattice"] and result["runs"] == {"search": 2, "final": 30, "pruned": 2, "failed": 0}
    long, summary = pl.long_table([result]), pl.summary_table([result])
    assert long.train_size.tolist() == [4, 16, 64] and long.pairs.tolist() == [5, 5, 5]
    assert math.isclose(summary.mae_ratio.iloc[0], result["headline"]["mae_ratio"])
    assert math.isclose(summary.savings.iloc[0], result["headline"]["savings_factor"])
    pl.plot([result], bench["results"] / "pairs_synthetic.png")
    written(bench, "pairs_synthetic.png")


def test_chemistry(bench):
    ch = bench["chemistry"]
    assert ch.main(["--replot"]) == 0
    written(bench, "chemistry.png")
    for stem in ("chemistry", "chemistry_inits"):
        pd.testing.assert_frame_equal(pd.read_csv(written(bench, f"{stem}.csv")), pd.read_csv(RESULTS / f"{stem}.csv"))
    res = committed("chemistry.json")
    cases = {c["case"]: c for c in res["cases"]}
    e, m, sub = cases["extend"], cases["map"], cases["subset"]
    # bench/README.md's table
    assert (r(e["savings"], 1), r(e["savings_ci_low"], 1), r(e["savings_ci_high"], 0)) == (9.4, 4.2, 481)
    assert (r(e["forgetting_ratio"], 2), r(e["forgetting_ci_low"], 2), r(e["forgetting_ci_high"], 2)) == (2.24, 1.27, 3.57)
    assert (r(m["savings"], 1), r(m["savings_ci_low"], 1), r(m["savings_ci_high"], 1)) == (12.2, 8.2, 32.3)
    assert (r(sub["savings"], 1), r(sub["savings_ci_low"], 1), r(sub["savings_ci_high"], 1)) == (4.8, 3.9, 8.4)
    assert [r(c["mixing_energy_error"], 1) for c in (e, m, sub)] == [17.2, 22.0, 68.3]
    assert m["element_map"] == {"Au": "Pt"} and e["mode"] == "extend" and sub["mode"] == "subset"
    inits = pd.DataFrame(res["inits"]).set_index(["case", "train_size"])
    assert (r(inits.loc[("init_copy", 4), "test_forces_mae"], 3), r(inits.loc[("init_random", 4), "test_forces_mae"], 3)) \
        == (0.074, 0.240)
    # one case's analysis of its store, on synthetic runs with forgetting and mixing-energy figures
    runs = synthetic_runs(sizes=(4, 16), temps=())
    transfer = runs["init"] == "transfer"
    runs.loc[transfer, "source_model_forces_mae"] = 0.05
    runs.loc[transfer, "source_forces_mae"] = 0.1
    runs["alloy_e_mix_mae"] = np.where(transfer, 20.0, 10.0)
    study = bench["_studies"].load_namespace("chemistry")["STUDIES"]["extend"]
    row = ch._case_row("extend", "extend", study, runs.assign(**{"tags.mlptl.phase": runs.phase}), {"run": {"wall_s": 1}})
    assert row["smallest_size"] == 4 and math.isclose(row["forgetting_ratio"], 2.0)
    assert (row["mixing_energy_error"], row["mixing_energy_error_scratch"]) == (20.0, 10.0)
    assert row["new_element_init"] == "copy/random" and row["savings"] > 1


def test_study_costs(bench):
    sc = bench["study_costs"]
    assert sc.main(["--replot"]) == 0
    written(bench, "study_costs.png")
    res = committed("study_costs.json")
    again = sc.replot()
    assert close(again["overhead"], res["overhead"]) and close(again["pruning"], res["pruning"])
    assert res["pruning"]["epochs_spent"] == {"median pruner": 181.0, "no pruner": 240.0}  # README: -25 %
    o = committed("study_costs_overhead.json")["overhead"]
    assert (round(100 * o["overhead_trials"], 1), round(100 * o["overhead_whole"], 1)) == (2.4, 9.0)
    # the per-cell table of a store's runs
    runs = synthetic_runs(sizes=(50,), reps=1).assign(epochs_run=20, max_epochs=20, best_val_forces_mae=0.1)
    runs["wall_s"] = (runs.end_time - runs.start_time) / 1000
    runs.loc[runs.phase == "search", "epochs_run"] = 7
    cells = sc.per_cell(runs)
    assert cells.pruned.tolist() == [1, 1] and cells.epochs_spent.tolist() == [7.0, 7.0]


def test_pruners(bench):
    pr = bench["pruners"]
    assert pr.main(["--replay-only", "--main-only"]) == 0
    written(bench, "pruners/pruners.png")
    new = pd.read_csv(written(bench, "pruners/summary_main.csv"))
    old = pd.read_csv(RESULTS / "pruners" / "summary.csv")
    old = old[old.group.isin(["main", "1-based"])].reset_index(drop=True)
    pd.testing.assert_frame_equal(new, old, rtol=1e-9)
    best = old[old.pruner == "median, no warm-up"].iloc[0]  # the README's default pick
    assert (r(100 * best.epochs_fraction_mean, 1), r(best.val_gap_pct_worst, 1)) == (46.9, 4.8)


def test_utilisation(bench):
    ut = bench["utilisation"]
    for out in ("utilisation", "utilisation_rep2"):
        assert ut.main(["--replot", "--out", out]) == 0
        written(bench, f"{out}.png")
        res, again = committed(f"{out}.json"), ut.replot(out)
        for k, w in again.items():
            if w is not None:
                assert close({x: res[k][x] for x in w}, w), (out, k)
    res = committed("utilisation.json")
    assert (r(100 * res["search_trials_only"]["utilisation"], 1), r(100 * res["search_all_trials"]["utilisation"], 1),
            r(100 * res["whole_study"]["utilisation"], 1)) == (89.1, 90.2, 47.7)


def test_process_cpu(bench, tmp_path):
    """The sampler adds a command's CPU to the command and its child's to the child's kind; the exit code
    passes through. Each process burns about 1 s of CPU; a sampler that missed either could not reach 0.5 s."""
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 1.0: pass\n"
    child = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {burn!r}])\n{burn}raise SystemExit(3)\n"
    out = tmp_path / "cpu.json"
    assert bench["process_cpu"].main(["--out", str(out), "--interval", "0.1", "--", sys.executable, "-c", child]) == 3
    res = json.loads(out.read_text())
    assert res["returncode"] == 3 and res["wall_s"] >= 2.0
    assert res["cpu_s_by_kind"]["driver (the command)"] >= 0.5
    assert res["cpu_s_by_kind"][f"other: {Path(sys.executable).name}"] >= 0.5


# ---------------------------------------------------------------- the other benchmarks
def test_train_compile(bench):
    tc = bench["train_compile"]
    assert tc.main(["--replot"]) == 0
    written(bench, "train_compile.png")
    res = committed("train_compile.json")
    summary = tc.summarise(res["runs"])
    assert close(json.loads(json.dumps(summary)), res["summary"])
    assert [r(s["ratio_compile_over_eager"], 2) for s in summary] == [0.34, 0.37]


def test_reference_speed(bench):
    rs = bench["reference_speed"]
    assert rs.main(["--replot"]) == 0
    written(bench, "reference_speed.png")
    res = committed("reference_speed.json")
    assert close(json.loads(json.dumps(rs.summarise(res["rows"]))), res["summary"])
    by = {(s["potential"], s["n_atoms"]): s for s in res["summary"]["force_calls"]}
    # bench/README.md's figures
    assert [r(by[("SW Si", n)]["ratio_median"], 2) for n in (8, 64, 512)] == [0.49, 0.35, 0.24]
    assert r(by[("Tersoff Si", 64)]["ratio_median"], 2) == 0.54
    lab = res["summary"]["labelling"]
    assert lab["identical"] and r(lab["ratio_median"], 2) == 0.38


def test_md_speed(bench):
    md = bench["md_speed"]
    assert md.main(["--replot"]) == 0
    written(bench, "md_speed.png")
    res = committed("md_speed.json")
    summary = md.summarise(res["rows"])
    assert close(summary, res["summary"])
    by_n = {s["n_atoms"]: s for s in summary}
    assert r(by_n[64]["time_ratio_compiled_over_eager"]["median"], 2) == 0.39
    assert r(by_n[64]["eager"]["median_cpu_ms_per_step"], 1) == 30.1


def test_evaluate_transfer(bench):
    et = bench["evaluate_transfer"]
    assert et.main(["--replot"]) == 0
    written(bench, "evaluate_transfer.png")
    res = committed("evaluate_transfer.json")
    assert close(json.loads(json.dumps(et.summarise(res))), res["summary"])
    f = {(x["init"], x["temperature"]): x for x in res["summary"]["forces"]}
    assert r(f[("transfer_fd0-n20", 1500.0)]["forces_mae_mean"], 3) == 0.133
    assert r(f[("scratch-n20", 300.0)]["forces_mae_mean"], 3) == 0.128


def test_transfer_vs_scratch(bench):
    tv = bench["transfer_vs_scratch"]
    assert tv.main(["--replot"]) == 0
    written(bench, "transfer_vs_scratch.png")
    res = committed("transfer_vs_scratch.json")
    s = res["settings"]
    summary = tv.summarize(res["runs"], tv._inits(s["freeze_depths"]), sorted(set(s["sizes"])))
    assert close(json.loads(json.dumps(summary)), res["summary"])
    assert [r(x["forces_mae_mean"], 4) for x in summary if x["train_size"] == 20][:2] == [0.1892, 0.0417]


def test_freeze_depth(bench):
    fd = bench["freeze_depth"]
    assert fd.main(["--replot"]) == 0
    written(bench, "freeze_depth.png")
    res = committed("freeze_depth.json")
    summary = json.loads(json.dumps(fd.summarize(res["runs"])))
    assert close(summary, res["summary"])
    assert [r(x["forces_mae_mean"], 4) for x in summary if x["train_size"] == 100][:2] == [0.1988, 0.0401]


def test_train_overhead(bench):
    to = bench["train_overhead"]
    assert to.main(["--replot", "train_overhead"]) == 0
    written(bench, "train_overhead.png")
    for name in ("train_overhead", "train_overhead_noise"):
        res = committed(f"{name}.json")
        again = to.summarise(res["runs"], res["arms"])
        assert close(again["per_tool"], res["per_tool"]) and close(again["ratio"], res["ratio"]), name
    ratio = committed("train_overhead_noise.json")["ratio"]["mlptl"]["fit_s"]["paired"]["median"]
    assert r(ratio, 3) == 1.009  # README: the fit took 1.009x nequip-train's
