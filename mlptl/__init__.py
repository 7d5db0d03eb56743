"""mlptl: studies of transfer learning for machine-learning interatomic potentials across elements.

The package's layers run one way (README, "Architecture"); this top-level module is the public facade a
study file uses: ``from mlptl import main`` runs a study the way ``mlptl run`` does (its phases, then its
report), so a study file never imports the command-line layer itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlptl.study.runner import StudyResult
    from mlptl.study.spec import Study

__version__ = "0.1.0"
__all__ = ["main", "run"]


def main(study: Study, argv: list[str] | None = None) -> int:
    """Entry point of a study file: ``raise SystemExit(main(STUDY))`` parses the command line's overrides
    (``--smoke``, ``--resume``, ...), runs the study and its report, and returns the exit code."""
    from mlptl.cli.run import main as _main

    return _main(study, argv)


def run(study: Study, *, resume: bool = False) -> StudyResult:
    """Run (or with ``resume`` finish) ``study`` and build its report; returns the study's result."""
    from mlptl.cli.run import run as _run

    return _run(study, resume=resume)
