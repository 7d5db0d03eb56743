"""`mlptl run | report | studies | ui`: studies and their stores."""

from __future__ import annotations

import argparse
import json
import logging

from mlptl.cli._common import add_store_arguments, print_json, tracking_uri
from mlptl.fsutil import expand_path

log = logging.getLogger("mlptl")


def _cmd_run(args: argparse.Namespace) -> int:
    from mlptl.cli.run import run, summary
    from mlptl.study.load import apply_overrides, load_study

    study = apply_overrides(load_study(args.study_file), args)
    summary(run(study, resume=args.resume))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlptl.report import build_report
    from mlptl.study.spec import StoreLayout

    out = Path(args.out) if args.out else StoreLayout(expand_path(args.storage)).report_dir(args.study)
    path = build_report(tracking_uri(args), args.study, out)
    print(path / "report.md")
    return 0


#: The outcomes every row counts (the ``mlptl.status`` tag of trial runs), in the order they are shown.
TRIAL_OUTCOMES = ("finished", "pruned", "failed", "interrupted")


def study_rows(uri: str) -> list[dict]:
    """One row per study in a store: its state, its trials by status (``trials``: finished, pruned, failed
    and interrupted always, 0 included, then any other status seen, e.g. running), and what a resume
    would do."""
    from mlptl import tracking as T

    c = T.client(uri)
    rows = []
    for exp in c.search_experiments():
        parents = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'study'", max_results=1)
        if not parents:
            continue
        parent = parents[0]
        trials = c.search_runs([exp.experiment_id], filter_string=f"tags.`{T.TAG_ROLE}` = 'trial'", max_results=50000)
        states = dict.fromkeys(TRIAL_OUTCOMES, 0)  # every outcome, 0 included: scripts need not guess
        for r in trials:
            st = r.data.tags.get(T.TAG_STATUS, "?")
            states[st] = states.get(st, 0) + 1
        row = {"study": exp.name, "state": parent.data.tags.get(T.TAG_STATUS, "?"), "trials": states}
        if row["state"] in ("interrupted", "running"):
            row["remaining"] = _remaining(parent, trials)
            row["resume"] = parent.data.tags.get(T.TAG_RESUME)
        rows.append(row)
    return rows


def _remaining(parent, trials) -> dict[str, int]:
    """Search trials and final replicates a resume still has to run, from the study's own definition."""
    from mlptl import tracking as T

    try:
        spec = json.loads(parent.data.params.get("trials_per_cell", "0"))
        cells = len(json.loads(parent.data.params["inits"])) * len(json.loads(parent.data.params["train_sizes"]))
        replicates = len(json.loads(parent.data.params["seeds"]))
    except (KeyError, ValueError, TypeError):
        return {}
    done = {"search": 0, "final": 0}
    for r in trials:
        if r.data.tags.get(T.TAG_STATUS) in ("finished", "pruned", "failed"):
            phase = r.data.tags.get(T.TAG_PHASE, "search")
            done[phase] = done.get(phase, 0) + 1
    return {
        "search_trials": max(0, int(spec) * cells - done["search"]),
        "final_replicates": max(0, replicates * cells - done["final"]),
    }


def _cmd_studies(args: argparse.Namespace) -> int:
    rows = study_rows(tracking_uri(args))
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        line = f"{r['study']:<30} {r['state']:<12} trials: " + ", ".join(f"{v} {k}" for k, v in r["trials"].items())
        if r.get("remaining"):
            line += " | to do: " + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in r["remaining"].items())
        print(line)
        if r.get("resume"):
            print(f"{'':<30} resume: {r['resume']}")
    if not rows:
        print("no studies in this store")
    return 0


def _cmd_ui(args: argparse.Namespace) -> int:
    from mlptl.cli.ui import run_ui

    # The server and its workers live in their own process group: Ctrl-C, SIGTERM or this process dying
    # takes the whole group down (run_ui), so no orphaned MLflow server keeps the port.
    return run_ui(tracking_uri(args), args.host, args.port)


def add_commands(sub: argparse._SubParsersAction) -> None:
    from mlptl.study.load import add_override_arguments

    p = sub.add_parser("run", help="run a study defined in a Python file (studies/*.py)")
    p.add_argument("study_file")
    add_override_arguments(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("report", help="rebuild a study's report from the tracking store")
    p.add_argument("study", help="the study name")
    p.add_argument("--out", help="output directory (default: STORAGE/reports/STUDY)")
    add_store_arguments(p)
    p.set_defaults(func=_cmd_report)

    p = sub.add_parser("studies", help="the studies in a store, their state and what a resume would do")
    p.add_argument("--json", action="store_true", help="print JSON (for scripts)")
    add_store_arguments(p)
    p.set_defaults(func=_cmd_studies)

    p = sub.add_parser("ui", help="the MLflow UI over a study store (binds 127.0.0.1 unless told otherwise)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5000)
    add_store_arguments(p)
    p.set_defaults(func=_cmd_ui)
