#!/usr/bin/env bash
# Install checks: what a user gets from `pip install` and from the README's first command.
#
# scripts/test.sh runs the test suite in .venv, where the test extra (napari, Qt, pytest...) is
# installed next to the package, so it cannot see a dependency that napari happens to bring
# (tqdm was one: `napari-segnet` failed on a machine without napari). Each check below starts
# from a new virtual environment in a temporary folder that shares nothing with .venv (pip only
# reuses its download cache), on a fresh `git clone` of this repository (the committed state):
#
#   demo    scripts/demo.sh exactly as the README says; it creates the clone's own .venv.
#   plain   `pip install .` without extras: napari and Qt must be absent, and
#           `napari-segnet segment` on the bundled sample must write labels and a CSV.
#   oldest  every dependency (and the `star` extra) at its lower bound from pyproject.toml,
#           installed exactly, then the tests that need neither napari nor the build tools:
#           the lower bounds are versions that really run.
#
# scripts/test.sh runs this script after the test suite when CI=true (as .ci/run does). It takes about 15 minutes and about
# 6 GB of disk at a time (torch is in every environment; each is removed after its check).
#   scripts/check_install.sh                 all three checks
#   scripts/check_install.sh plain oldest    some of them
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python="${PYTHON:-$(command -v python3.11 || command -v python3)}"
checks=("${@:-demo plain oldest}")
read -r -a checks <<<"${checks[*]}"

work=$(mktemp -d "${TMPDIR:-/tmp}/napari-segnet-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "Note: uncommitted changes are not checked; the checks use a clone of HEAD." >&2
fi
git clone --quiet "$repo" "$work/clone"
clone="$work/clone"

step() { echo "== $* ($(date +%T))" >&2; }
new_venv() {
    rm -rf "$1"
    "$python" -m venv "$1"
}
pip_install() { "$1/bin/python" -m pip install --quiet --disable-pip-version-check "${@:2}"; }

check_demo() {
    step "demo: scripts/demo.sh in a fresh clone"
    (cd "$clone" && scripts/demo.sh)
    for file in nuclei_2ch_labels.tif nuclei_2ch_measurements.csv nuclei_2ch_scores.json; do
        [ -s "$clone/demo-output/$file" ] || { echo "demo wrote no $file" >&2; exit 1; }
    done
    rm -rf "$clone/.venv"
}

check_plain() {
    step "plain: pip install . (no extras)"
    local venv="$work/plain" out="$work/plain-output"
    new_venv "$venv"
    pip_install "$venv" "$clone"
    "$venv/bin/python" - <<'EOF'
import importlib.util

present = [m for m in ("napari", "PyQt5", "PyQt6", "PySide2", "PySide6", "qtpy", "magicgui")
           if importlib.util.find_spec(m) is not None]
assert not present, f"a plain install brings the GUI stack: {present}"
EOF
    if "$venv/bin/python" -c "import napari" 2>/dev/null; then
        echo "napari imports after a plain install" >&2
        exit 1
    fi
    "$venv/bin/napari-segnet" info
    sample=$("$venv/bin/python" -c \
        "from importlib.resources import files; print(files('napari_segnet') / 'data' / 'nuclei_2ch.ome.tif')")
    "$venv/bin/napari-segnet" segment "$sample" --out "$out"
    "$venv/bin/python" - "$out" <<'EOF'
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

out = Path(sys.argv[1])
labels = tifffile.imread(out / "nuclei_2ch_labels.tif")
table = pd.read_csv(out / "nuclei_2ch_measurements.csv")
objects = len(np.unique(labels)) - 1
assert objects > 50, f"only {objects} objects segmented"
assert len(table) == objects, (len(table), objects)
print(f"plain install: {objects} objects, labels and CSV written")
EOF
    rm -rf "$venv"
}

check_oldest() {
    step "oldest: dependencies at their lower bounds"
    local venv="$work/oldest"
    new_venv "$venv"
    "$venv/bin/python" - "$clone/pyproject.toml" >"$work/lowest.txt" <<'EOF'
import re
import sys
import tomllib

with open(sys.argv[1], "rb") as handle:
    project = tomllib.load(handle)["project"]
# The library's own dependencies and the optional engines the tests exercise (the `star` extra).
dependencies = project["dependencies"] + project.get("optional-dependencies", {}).get("star", [])
for dependency in dependencies:
    match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?>=([^,;\s]+)", dependency)
    if not match:
        sys.exit(f"{dependency!r}: every dependency needs exactly one lower bound (>=)")
    print(f"{match[1]}=={match[3]}")
EOF
    echo "lower bounds: $(tr '\n' ' ' <"$work/lowest.txt")" >&2
    pip_install "$venv" "$clone[star]" -c "$work/lowest.txt"
    pip_install "$venv" pytest -c "$work/lowest.txt"
    "$venv/bin/python" - "$work/lowest.txt" <<'EOF'
import sys
from importlib.metadata import version

for line in open(sys.argv[1]):
    name, wanted = line.strip().split("==")
    assert version(name) == wanted, f"{name} {version(name)} is installed, not {wanted}"
EOF
    (cd "$clone" && "$venv/bin/python" -m pytest -q -p no:cacheprovider tests \
        --ignore=tests/_napari --ignore=tests/test_manifest.py --ignore=tests/test_packaging.py)
    rm -rf "$venv"
}

for check in "${checks[@]}"; do
    case "$check" in
        demo | plain | oldest) start=$SECONDS; "check_$check"
            step "$check passed in $((SECONDS - start)) s" ;;
        *) echo "Unknown check $check (demo, plain, oldest)." >&2; exit 2 ;;
    esac
done
step "install checks passed: ${checks[*]}"
