#!/usr/bin/env bash
# Set up (system packages, .venv with the test extras), then run the linter and the whole test
# suite headless (pytest-xvfb starts a virtual display). With CI=true (as in CI, .ci/run), then
# also the install checks that cannot be made from inside .venv, where napari and the test tools
# sit next to the package: scripts/check_install.sh (the README's demo in a fresh clone, a plain
# `pip install .` without napari or Qt, the dependencies at their lower bounds).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh test
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest "$@"
if [ "${CI:-}" = true ] && [ $# -eq 0 ]; then
    scripts/check_install.sh
fi
