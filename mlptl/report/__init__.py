"""The study report: tables, statistics and plots rebuilt from the MLflow store (never from memory)."""

from mlptl.report.build import build_report, load_runs

__all__ = ["build_report", "load_runs"]
