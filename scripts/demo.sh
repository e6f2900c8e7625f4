#!/usr/bin/env bash
# Set up, then measure every nucleus of the bundled calibrated 2-channel sample.
# Outputs go to demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
data=src/napari_segnet/data
out=demo-output
mkdir -p "$out"
.venv/bin/napari-segnet info
.venv/bin/napari-segnet measure --image "$data/nuclei_2ch.ome.tif" \
    --labels "$data/nuclei_fluo_labels.tif" --out "$out/nuclei_2ch_measurements.csv"
echo "Done. Outputs are in $(pwd)/$out/:"
ls -l "$out"
