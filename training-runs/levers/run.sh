#!/usr/bin/env bash
# Lever ranking: short runs of equal steps (so of near-equal CPU time: the log's cpu_seconds)
# on a mid-size network (compact encoder 24-48-96-192, 12-channel full-resolution path,
# 1.10 M parameters), one core each, seed 0, 15 epochs x 40 steps of 8 crops of 256².
#   training-runs/levers/run.sh ARM
# ARM: baseline | centred | sizenorm | sizenorm-centred | sizenorm-centred-rgb | sizenorm-bf16
#      | sizenorm-bf16-average | student | student-distil
# Arms train in float32; sizenorm-bf16 is sizenorm with a bfloat16 forward pass, and
# sizenorm-bf16-average the same run validating and keeping a moving average of its weights
# (and validating the weights as they are too, for the comparison).
# student and student-distil train the network of `nuclei` (16-32-64-128, 8-channel
# full-resolution path, 0.49 M parameters) size-normalised in bfloat16, the second with
# $TEACHER (default: nuclei-large's best model so far) as teacher, half of the loss.
set -euo pipefail
cd "$(dirname "$0")"
arm=$1
common=(--data ../../../shared/data/dsb2018/train --epochs 15 --steps 40 --learning-rate 2e-3
        --seed 0 --encoder-widths 24,48,96,192 --full-resolution 12 --precision fp32)
# The later of a repeated option counts: these replace the mid-size network's.
student=(--encoder-widths 16,32,64,128 --full-resolution 8 --size-normalise 17
         --scale-range 0.625,1.6 --precision bf16)
teacher=${TEACHER:-../nuclei-large/nuclei-large.safetensors}
case $arm in
    baseline) extra=() ;;
    centred) extra=(--object-centred 0.9) ;;
    sizenorm) extra=(--size-normalise 17 --scale-range 0.625,1.6) ;;
    sizenorm-bf16) extra=(--size-normalise 17 --scale-range 0.625,1.6 --precision bf16) ;;
    sizenorm-bf16-average) extra=(--size-normalise 17 --scale-range 0.625,1.6 --precision bf16
        --average-decay 0.99 --validate-raw) ;;
    student) extra=("${student[@]}") ;;
    student-distil) extra=("${student[@]}" --teacher "$teacher" --distil-weight 0.5) ;;
    sizenorm-centred) extra=(--size-normalise 17 --scale-range 0.625,1.6 --object-centred 0.9) ;;
    sizenorm-centred-rgb)
        extra=(--size-normalise 17 --scale-range 0.625,1.6 --object-centred 0.9 --rgb) ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
esac
mkdir -p "$arm"
exec env OMP_NUM_THREADS=1 PYTHONPATH=../../src ../../.venv/bin/python ../../scripts/train_nuclei.py \
    "${common[@]}" "${extra[@]}" --out "$arm/$arm.safetensors" > "$arm/log.jsonl" 2> "$arm/stderr.txt"
