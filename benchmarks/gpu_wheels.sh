#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.py needs on a lent GPU machine into .whl/
# (CPython 3.12, manylinux x86-64): the dependencies its python3 lacks, at the versions this
# project is tested with. Run from the repository's root, after `echo /.whl/ >> .git/info/exclude`.
set -euo pipefail
platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 \
    manylinux2014_x86_64 manylinux1_x86_64; do
    platforms+=(--platform "$tag")
done
python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl \
    imagecodecs==2026.3.6 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 \
    google-crc32c==1.9.0 dask==2026.8.0 distributed==2026.8.0 tornado==6.6.1 tblib==3.2.2 \
    zict==3.0.0 locket==1.0.0 partd==1.4.2 tqdm==4.70.1 stardist==0.9.2 csbdeep==0.8.2
