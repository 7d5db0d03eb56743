"""The study report: tables, statistics and plots rebuilt from the MLflow store (never from memory)."""

from mlptl.report.build import HEADLINE_FILE, answer_text, build_report
from mlptl.report.runs import final_frame, load_runs
from mlptl.report.tables import headline_metrics

__all__ = ["build_report", "answer_text", "load_runs", "final_frame", "headline_metrics", "HEADLINE_FILE"]
