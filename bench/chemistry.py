"""Transfer across chemistries: savings, forgetting and the new element's start, from the studies of
bench/studies/chemistry.py (extend Cu -> CuNi, map CuPt -> CuAu, subset AuCuNi -> CuAu; 5 replicates each).

Runs each study the way ``mlptl run`` does (rerunning resumes: finished trials are not redone), then takes every
figure from the report's own statistics: the savings factor and the transfer/scratch error ratio at the smallest
size with their CIs (headline.json), the forgetting ratio (extend only: the extended models' force MAE on the
source's own test frames over the source model's), and, where the final evaluation measured it, the mixing-energy
error against the reference. The ``init_*`` studies compare how the new element starts (transfer cells only).

Writes bench/results/chemistry.{json,csv,png} and chemistry_inits.csv. ``--only KEY`` runs one study;
``--analyse-only`` re-reads the stores; ``--replot`` rewrites the CSVs and the figure from the results JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")
import _studies as S  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from _common import RESULTS_DIR, setup_logging, write_json  # noqa: E402

from mlptl import metrics as M  # noqa: E402
from mlptl.report.tables import forgetting_table  # noqa: E402

log = logging.getLogger("bench.chemistry")
STUDY_FILE = "chemistry"


def _get(h: dict[str, Any], key: str) -> float:
    v = h.get(key)
    return float(v) if v is not None else math.nan


def _mixing_error(final: pd.DataFrame, n0: int | None, init: str = "transfer") -> float:
    """Mean over ``init``'s replicates at the headline size of the mixing-energy error against the reference
    (meV/atom, mean absolute over the compositions evaluated), if the final evaluation measured it."""
    if M.ALLOY_E_MIX_MAE not in final or n0 is None:
        return math.nan
    t = final[(final["init"] == init) & (final["train_size"] == n0)]
    return float(pd.to_numeric(t[M.ALLOY_E_MIX_MAE], errors="coerce").mean())


def _case_row(key: str, mode: str, study, runs: pd.DataFrame, info: dict[str, Any]) -> dict[str, Any]:
    from mlptl.report.runs import final_frame

    tables = S.report_tables(runs)
    h = tables["headline"]
    final = final_frame(runs)
    forgetting = forgetting_table(final)
    n0 = int(h["headline_train_size"]) if "headline_train_size" in h else None
    f0 = forgetting[forgetting["train_size"] == n0] if n0 is not None and len(forgetting) else forgetting.iloc[:0]
    init = study.search_for("transfer").new_element_init if study.new_elements(study.sources[0]) else ("(none new)",)
    return {
        "case": key, "mode": mode, "source": study.sources[0], "target": study.target_element,
        "element_map": study.element_map or {}, "new_element_init": "/".join(init), "smallest_size": n0,
        "savings": _get(h, "savings_factor"), "savings_ci_low": _get(h, "savings_factor.ci_low"),
        "savings_ci_high": _get(h, "savings_factor.ci_high"), "mae_ratio": _get(h, "mae_ratio"),
        "mae_ratio_ci_low": _get(h, "mae_ratio.ci_low"), "mae_ratio_ci_high": _get(h, "mae_ratio.ci_high"),
        "p_value": _get(h, "p_value"), "replicates": _get(h, "replicates"),
        "forgetting_ratio": float(f0["ratio"].iloc[0]) if len(f0) else math.nan,
        "forgetting_ci_low": float(f0["ratio_ci_low"].iloc[0]) if len(f0) else math.nan,
        "forgetting_ci_high": float(f0["ratio_ci_high"].iloc[0]) if len(f0) else math.nan,
        "mixing_energy_error": _mixing_error(final, n0),
        "mixing_energy_error_scratch": _mixing_error(final, n0, "scratch"),
        "wall_s": info.get("run", {}).get("wall_s"), "answer": tables["answer"],
        "cells": S.records(tables["cells"]),
    }


def _init_rows(key: str, runs: pd.DataFrame) -> list[dict[str, Any]]:
    from mlptl.report.runs import final_frame

    final = final_frame(runs)
    table = S.replicate_table(final, [M.TEST_FORCES_MAE])
    forgetting = forgetting_table(final)
    rows = []
    for r in table.itertuples():
        f = forgetting[forgetting["train_size"] == r.train_size]
        rows.append({"case": key, "train_size": int(r.train_size), "replicates": int(r.replicates),
                     "test_forces_mae": getattr(r, M.TEST_FORCES_MAE),
                     "ci_low": getattr(r, f"{M.TEST_FORCES_MAE}_ci_low"), "ci_high": getattr(r, f"{M.TEST_FORCES_MAE}_ci_high"),
                     "forgetting_ratio": float(f["ratio"].iloc[0]) if len(f) else math.nan})
    return rows


def plot(rows: list[dict[str, Any]], inits: pd.DataFrame, path) -> None:
    fig, axes = plt.subplots(1, len(rows) + 1, figsize=(4 * (len(rows) + 1), 3.6))
    for ax, row in zip(axes, rows):
        cells = pd.DataFrame(row["cells"])
        for init, g in cells.groupby("init"):
            g = g.sort_values("train_size")
            ax.errorbar(g.train_size, g["mean"], yerr=[g["mean"] - g.ci_low, g.ci_high - g["mean"]], marker="o",
                        capsize=3, label=init)
        S.plain_log_axes(ax, sorted(cells.train_size.unique()))
        ax.set_title(f"{row['mode']}: {row['source']} -> {row['target']}", fontsize=9)
        ax.set_xlabel("target training frames")
        ax.set_ylabel("test force MAE (eV/Å)")
        ax.legend(fontsize=8)
    ax = axes[-1]
    for case, g in inits.groupby("case"):
        g = g.sort_values("train_size")
        ax.errorbar(g.train_size, g.test_forces_mae, yerr=[g.test_forces_mae - g.ci_low, g.ci_high - g.test_forces_mae],
                    marker="s", capsize=3, label=case.replace("init_", "Ni start: "))
    if len(inits):
        S.plain_log_axes(ax, sorted(inits.train_size.unique()))
    ax.set_title("extend: how the new element starts", fontsize=9)
    ax.set_xlabel("target training frames")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(rows: list[dict[str, Any]], inits: pd.DataFrame, infos: dict[str, Any]) -> None:
    """bench/results/chemistry.{json,csv,png} and chemistry_inits.csv from the case rows and init table."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    if len(table):
        table.drop(columns=["cells", "answer"]).to_csv(RESULTS_DIR / "chemistry.csv", index=False)
    if len(inits):
        inits.to_csv(RESULTS_DIR / "chemistry_inits.csv", index=False)
    write_json(RESULTS_DIR / "chemistry.json", {"cases": rows, "inits": S.records(inits), "runs": infos})
    if rows:
        plot(rows, inits, RESULTS_DIR / "chemistry.png")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    S.add_study_arguments(p)
    p.add_argument("--only", default=None, help="run just this study of bench/studies/chemistry.py")
    args = p.parse_args(argv)
    setup_logging(args.verbose)
    old_path = RESULTS_DIR / "chemistry.json"
    old = json.loads(old_path.read_text()) if old_path.is_file() else {}
    if args.replot:
        write_results(old["cases"], pd.DataFrame(old["inits"]), old["runs"])
        return 0
    from mlptl.study.load import apply_overrides

    ns = S.load_namespace(STUDY_FILE)
    studies, cases = ns["STUDIES"], ns["CASES"]
    rows, init_rows, infos = [], [], {}
    for key, study in studies.items():
        if args.only and key != args.only:
            continue
        study = apply_overrides(study, args)  # mlptl run's overrides (--smoke, --seeds, ...), as for any study
        info, runs, _ = S.run_and_read(study, args, f"chemistry-{key}")
        if args.analyse_only and key in old.get("runs", {}):  # keep the measured run's record (wall time, machine)
            info = {**info, **old["runs"][key]}
        infos[key] = {k: v for k, v in info.items() if k != "settings"}
        if key in cases:
            rows.append(_case_row(key, cases[key][1], study, runs, info))
        init_rows += _init_rows(key, runs) if key.startswith("init_") else []
    write_results(rows, pd.DataFrame(init_rows), infos)
    for r in rows:
        log.info("%s: savings %.3g [%.3g, %.3g], forgetting %.3g", r["case"], r["savings"], r["savings_ci_low"],
                 r["savings_ci_high"], r["forgetting_ratio"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
