#!/usr/bin/env bash
# Install what the tests need and run them: lint, then the whole suite including one real end-to-end study.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e ".[test]"
ruff check .
pytest -q -m "not calibration"
