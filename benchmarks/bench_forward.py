"""Cost of the network alone: seconds per megapixel of a forward pass, for each model file.

    python benchmarks/bench_forward.py MODEL [MODEL ...] [--size 512] [--batch 4] [--threads 2]

Each model is loaded as segmentation runs it (batch norm fused into the convolutions,
channels-last) and fed a batch of random ``size`` × ``size`` tiles, the shape tiled prediction
uses; the best of ``--repeats`` timed passes after a warm-up is reported. Star heads and
full-resolution paths are included in the cost; the instance step is not.
"""

import argparse
import platform
from functools import partial

import torch

from bench_onnx import timed
from napari_segnet.models import load_model
from napari_segnet.models.bundled import resolve_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.machine()}, torch {torch.__version__}, {args.threads} threads")
    print("\n| model | parameters | s/MP |\n|---|---:|---:|")
    inputs = torch.rand(args.batch, 1, args.size, args.size)
    inputs = inputs.contiguous(memory_format=torch.channels_last)
    megapixels = inputs.numel() / 1e6
    for name in args.models:
        model, _ = load_model(resolve_model(name), fuse=True)
        model = model.eval().to(memory_format=torch.channels_last)
        parameters = sum(p.numel() for p in model.parameters())
        with torch.inference_mode():
            best, _ = timed(partial(model, inputs), args.repeats)
        print(f"| {name} | {parameters:,} | {best / megapixels:.3f} |")


if __name__ == "__main__":
    main()
