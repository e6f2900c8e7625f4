#!/usr/bin/env bash
# Set up (system packages, .venv with the test extras), then run the whole test suite
# headless (pytest-xvfb starts a virtual display) and the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
