#!/usr/bin/env bash
# nuclei-large: start the run, or continue it where it stopped, on one core.
#   training-runs/nuclei-large/run.sh          train (appends to log.jsonl)
#   training-runs/nuclei-large/run.sh compact  write resume.pt, the small file to commit
# It continues from this machine's last full resume file when there is one and it is newer
# than resume.pt, otherwise from resume.pt (float16 weights, schedule, best model so far).
set -euo pipefail
cd "$(dirname "$0")"
full=nuclei-large.safetensors.resume.pt
python=(env OMP_NUM_THREADS=1 PYTHONPATH=../../src ../../.venv/bin/python)
if [ "${1:-}" = compact ]; then
    exec "${python[@]}" -c "from napari_segnet.training.resume import write_compact_resume as w
w('$full', 'nuclei-large.safetensors', 'resume.pt')"
fi
resume=()
if [ -f "$full" ] && { [ ! -f resume.pt ] || [ "$full" -nt resume.pt ]; }; then
    resume=(--resume "$full")
elif [ -f resume.pt ]; then
    resume=(--resume resume.pt)
fi
exec "${python[@]}" ../../scripts/train_nuclei.py --data ../../../shared/data/dsb2018/train \
    --out nuclei-large.safetensors --epochs 150 --steps 200 --learning-rate 2e-3 --seed 0 \
    --encoder-widths 32,64,128,256 --full-resolution 16 \
    --size-normalise 17 --scale-range 0.625,1.6 \
    "${resume[@]}" >> log.jsonl 2>> stderr.txt
