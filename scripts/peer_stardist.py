"""Train StarDist (its own recipe, TensorFlow on CPU) on our training split for a fixed CPU time.

    python scripts/peer_stardist.py prepare --out DIR          # this project's environment
    TF_USE_LEGACY_KERAS=1 OMP_NUM_THREADS=1 STARDIST_PYTHON scripts/peer_stardist.py train \
        --out DIR --cpu-seconds 1265                            # an environment with stardist
    python scripts/peer_stardist.py score --out DIR             # this project's environment

The peer is scored with our metrics on our report split, so that "ahead of StarDist" is measured
on the same images. `prepare` writes the training, tuning and report images of
`scripts/train_nuclei.py`'s split as our one-channel networks see them (percentile-normalised,
colour as luminance, bright backgrounds inverted; `training.data.make_pair`) to
`DIR/planes.npz`. `train` needs only numpy, tifffile-free stardist and TensorFlow (install
`stardist tensorflow-cpu tf_keras` in a separate environment; this package is not imported):
it trains `StarDist2D` with the configuration of StarDist's 2-D training notebook (32 rays,
grid 2 × 2, 256² patches, batch 4, Adam at 3e-4, flips, 90° rotations and its intensity
change), validating on the tuning split, and stops at the end of the first epoch (100 steps, as
the notebook's) after which the process has used `--cpu-seconds` of CPU time. Then it chooses
its thresholds on the tuning split (`optimize_thresholds`, as the notebook does) and writes its
labels of the report split to `DIR/report_labels.npz` and its log to `DIR/log.json`. `score`
prints pooled AP per modality (the scores of `scripts/score_nuclei.py`) as one JSON line.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def prepare(root: Path, out: Path) -> None:
    from train_nuclei import load_pairs, split_rows

    arrays = {}
    for split, rows in split_rows(root).items():
        for n, pair in enumerate(load_pairs(root, rows)):
            arrays[f"{split}/{n}/image"] = pair.image
            arrays[f"{split}/{n}/labels"] = pair.labels
        arrays[f"{split}/ids"] = np.array([r["id"] for r in rows])
        arrays[f"{split}/groups"] = np.array([r["class"] for r in rows])
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "planes.npz", **arrays)


def split_of(arrays, split: str):
    count = len(arrays[f"{split}/ids"])
    images = [arrays[f"{split}/{n}/image"] for n in range(count)]
    labels = [arrays[f"{split}/{n}/labels"] for n in range(count)]
    return images, labels


def augmenter_with(rng):
    """StarDist's notebook augmentation: flips and 90° rotations, then an intensity change."""

    def augmenter(x, y):
        turns = int(rng.integers(4))
        x, y = np.rot90(x, turns), np.rot90(y, turns)
        for axis in (0, 1):
            if rng.random() > 0.5:
                x, y = np.flip(x, axis), np.flip(y, axis)
        x = x * rng.uniform(0.6, 2) + rng.uniform(-0.2, 0.2)
        return np.ascontiguousarray(x), np.ascontiguousarray(y)

    return augmenter


def train(out: Path, cpu_seconds: float, steps: int = 100) -> None:
    import tensorflow as tf
    from stardist import fill_label_holes
    from stardist.models import Config2D, StarDist2D

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    np.random.seed(0)  # noqa: NPY002 (StarDist draws its patches from NumPy's global state)
    tf.random.set_seed(0)
    arrays = np.load(out / "planes.npz")
    x_train, y_train = split_of(arrays, "train")
    x_tuning, y_tuning = split_of(arrays, "tuning")
    y_train = [fill_label_holes(y) for y in y_train]
    y_tuning = [fill_label_holes(y) for y in y_tuning]
    config = Config2D(
        n_rays=32, grid=(2, 2), n_channel_in=1, use_gpu=False, train_tensorboard=False
    )
    model = StarDist2D(config, name="stardist", basedir=str(out))
    model.prepare_for_training()
    started = time.process_time()
    epochs = []

    class Budget(tf.keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            epochs.append(
                {
                    "epoch": epoch + 1,
                    "cpu_seconds": round(time.process_time() - started),
                    **{k: float(v) for k, v in (logs or {}).items()},
                }
            )
            print(json.dumps(epochs[-1]), flush=True)
            if time.process_time() - started >= cpu_seconds:
                self.model.stop_training = True

    model.callbacks.append(Budget())
    model.train(
        x_train,
        y_train,
        validation_data=(x_tuning, y_tuning),
        augmenter=augmenter_with(np.random.default_rng(0)),
        epochs=400,
        steps_per_epoch=steps,
    )
    trained = time.process_time() - started
    model.optimize_thresholds(x_tuning, y_tuning)
    x_report, _ = split_of(arrays, "report")
    labels = {f"{n}": model.predict_instances(x)[0] for n, x in enumerate(x_report)}
    np.savez_compressed(out / "report_labels.npz", **labels)
    (out / "log.json").write_text(
        json.dumps(
            {
                "training_cpu_seconds": round(trained),
                "steps": steps * len(epochs),
                "crops": 4 * steps * len(epochs),
                "thresholds": model.thresholds._asdict(),
                "parameters": int(model.keras_model.count_params()),
                "epochs": epochs,
            },
            indent=1,
        )
    )


def score(out: Path) -> None:
    from score_nuclei import scores
    from train_nuclei import CLASS_SHARES

    arrays = np.load(out / "planes.npz")
    found = np.load(out / "report_labels.npz")
    _, truths = split_of(arrays, "report")
    predictions = [found[f"{n}"] for n in range(len(truths))]
    groups = list(arrays["report/groups"])
    record = {"model": "StarDist2D", "split": "report", "all": scores(truths, predictions)}
    for group in CLASS_SHARES:
        chosen = [i for i, kind in enumerate(groups) if kind == group]
        record[group] = {
            **scores([truths[i] for i in chosen], [predictions[i] for i in chosen]),
            "images": len(chosen),
        }
    print(json.dumps(record))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("prepare", "train", "score"))
    parser.add_argument("--out", type=Path, default=Path("training-runs/stardist-peer"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--cpu-seconds", type=float, default=1265)
    parser.add_argument(
        "--steps", type=int, default=100, help="steps an epoch (the notebook's 100)"
    )
    args = parser.parse_args()
    if args.step == "prepare":
        prepare(args.data, args.out)
    elif args.step == "train":
        train(args.out, args.cpu_seconds, args.steps)
    else:
        score(args.out)


if __name__ == "__main__":
    main()
