#!/usr/bin/env bash
# Set up, then segment and measure the bundled calibrated 2-channel sample with the bundled
# nuclei model (cells grown on its second channel), and score the nuclei against the
# sample's expert annotations.
# Outputs go to demo-output/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
data=src/napari_segnet/data
out=demo-output
mkdir -p "$out"
.venv/bin/napari-segnet info
.venv/bin/napari-segnet segment "$data/nuclei_2ch.ome.tif" --out "$out" --cells 1
mkdir -p "$out/truth/images" "$out/truth/masks"
cp "$data/nuclei_2ch.ome.tif" "$out/truth/images/nuclei.ome.tif"
cp "$data/nuclei_fluo_labels.tif" "$out/truth/masks/nuclei.tif"
.venv/bin/napari-segnet evaluate --images "$out/truth/images" --masks "$out/truth/masks" \
    --json "$out/nuclei_2ch_scores.json"
echo "Done. Outputs are in $(pwd)/$out/:"
ls -l "$out"
