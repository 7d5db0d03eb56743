"""Running a study from a file, as ``mlptl run studies/x.py`` or ``python studies/x.py``: the study's
phases, then its report, then one summary; both entry points share this code.

The report is built here rather than in the runner because it reads back what the runner wrote to
MLflow (import direction: study -> report -> cli).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import time

from mlptl import tracking as T
from mlptl.errors import Interrupted
from mlptl.study.runner import StudyResult, run_study
from mlptl.study.spec import StoreLayout, Study

log = logging.getLogger(__name__)

__all__ = ["run", "main", "summary"]


def _resume_command() -> str:
    argv = list(sys.argv)
    if argv and argv[0].endswith(("mlptl", "__main__.py")):
        argv[0] = "mlptl"
    elif argv:
        argv = [sys.executable.rsplit("/", 1)[-1], *argv]
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(argv)


def run(study: Study, *, resume: bool = False) -> StudyResult:
    """The whole study: its phases, then the report and its headline metrics on the parent run."""
    t0 = time.time()
    command = _resume_command()
    try:
        result = run_study(study, resume=resume, resume_command=command)
        return _finish(study, result, command, t0)
    except T.TrackingUnavailable as e:  # past the tracking layer's bound (T.outage_limit_s), after the phases
        raise Interrupted(signal.SIGTERM, f"{e}; the study is saved, finish it with:\n  {command}") from None
    except Interrupted as e:
        raise Interrupted(e.signum, f"{e}; the study is saved, finish it with:\n  {command}") from None


def _finish(study: Study, result: StudyResult, command: str, t0: float) -> StudyResult:
    """After the phases: the report, its headline metrics and the parent run finished."""
    from mlptl.report import build_report
    from mlptl.study.signals import stop_on_signals

    c = T.client(result.tracking_uri)
    try:
        with stop_on_signals():
            out = StoreLayout(result.storage).report_dir(study.name)
            try:
                result.report_dir = build_report(result.tracking_uri, study.name, out)
                c.log_artifacts(result.parent_run_id, str(result.report_dir), "report")
                result.headline = _headline(result)
                T.log_metrics(c, result.parent_run_id, result.headline)
            except (KeyboardInterrupt, T.TrackingUnavailable):
                raise
            except Exception:
                log.exception("building the report failed; the runs are intact: rebuild with `mlptl report`")
    except KeyboardInterrupt as e:
        from mlptl.study.signals import interrupted

        e = e if isinstance(e, Interrupted) else Interrupted(interrupted() or signal.SIGINT)
        c.set_tag(result.parent_run_id, T.TAG_STATUS, "interrupted")
        c.set_tag(result.parent_run_id, T.TAG_RESUME, command)
        c.set_terminated(result.parent_run_id, "KILLED")
        raise e from None
    result.wall_time_s = time.time() - t0
    T.log_metrics(c, result.parent_run_id, {"wall_time_s": result.wall_time_s})
    c.set_tag(result.parent_run_id, T.TAG_STATUS, "finished")
    c.set_terminated(result.parent_run_id, "FINISHED")
    return result


def _headline(result: StudyResult) -> dict[str, float]:
    import json

    path = result.report_dir / "headline.json" if result.report_dir else None
    if path is None or not path.is_file():
        return {}
    return {k: float(v) for k, v in json.loads(path.read_text()).items() if isinstance(v, int | float)}


def summary(result: StudyResult) -> None:
    print(f"study {result.name}: {result.counts} in {result.wall_time_s:.0f} s")
    print(f"tracking store: {result.tracking_uri} (browse: mlptl ui --storage {result.storage})")
    for cell, model in result.registered.items():
        print(f"  registered {cell}: models:/{model}")
    if result.report_dir:
        print(f"report: {result.report_dir / 'report.md'}")


def main(study: Study, argv: list[str] | None = None) -> int:
    """Entry point of a study file: ``python studies/x.py [overrides]``."""
    from mlptl.cli._common import run_with_errors
    from mlptl.study.load import add_override_arguments, apply_overrides

    p = argparse.ArgumentParser(description=f"Run the study {study.name!r}.")
    add_override_arguments(p)
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)

    def go(args: argparse.Namespace) -> int:
        summary(run(apply_overrides(study, args), resume=args.resume))
        return 0

    return run_with_errors(go, args)
