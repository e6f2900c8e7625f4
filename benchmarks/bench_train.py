"""How long fine-tuning takes, run as the Train widget runs it: time per step and per validation.

    .venv/bin/python benchmarks/bench_train.py [--steps 30] [--threads 2]

Fine-tunes the bundled model on the bundled sample (its left 80 % trained, the rest
validated, as the Train widget does with one image) with the widget's defaults: batch 8,
256 × 256 crops, learning rate 1e-3. Prints the time per optimiser step and per validation,
and what the widget's default run (10 epochs × 50 steps) therefore takes.
"""

import argparse
import platform
import time

import torch

from napari_segnet.data import sample_path
from napari_segnet.io import read_image
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain
from napari_segnet.training.data import make_pair, split_pairs
from napari_segnet.training.loop import iter_train
from napari_segnet.training.settings import default_settings

WIDGET = default_settings(fine_tune=True)  # what the Train widget starts from
DEFAULT_EPOCHS, DEFAULT_STEPS = WIDGET.epochs, WIDGET.steps_per_epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="/tmp/bench_train.safetensors")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    image = read_image(sample_path("nuclei")).data
    labels = read_image(sample_path("nuclei_labels")).data
    train, validation = split_pairs([make_pair(image, labels, name="sample")])
    model, _ = load_model(bundled_model_path("nuclei"))
    settings = default_settings(fine_tune=True, epochs=1, steps_per_epoch=args.steps)
    marks = {}
    started = time.perf_counter()

    def mark(event):
        marks[event.stage, event.done] = time.perf_counter() - started

    drain(iter_train(model, train, validation, settings, out=args.out), mark)
    first, last = marks["training", 1], marks["training", args.steps]
    per_step = (last - first) / (args.steps - 1)  # the first step also warms up
    per_validation = marks["validated", 1] - last
    default = DEFAULT_EPOCHS * (DEFAULT_STEPS * per_step + per_validation)
    print(f"machine: {platform.platform()}, torch {torch.__version__}, {args.threads} threads")
    print(
        f"training step (8 × 256²): {per_step:.2f} s; validation ({validation[0].labels.shape}"
        f" px): {per_validation:.2f} s"
    )
    print(
        f"widget default ({DEFAULT_EPOCHS} epochs × {DEFAULT_STEPS} steps): {default / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
