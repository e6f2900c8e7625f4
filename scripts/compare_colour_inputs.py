"""Score model files on the tuning split's colour images with each RGB-to-plane conversion.

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python scripts/compare_colour_inputs.py \
        [MODEL ...] [--conversions luminance,inverted_luminance,haematoxylin,optical_density] \
        [--bootstrap 2000]

Without a model file the bundled `nuclei` model is scored. Each conversion turns an RGB image
into one plane, which is then prepared exactly as a grayscale image is today
(`training.data.make_pair`: the 1st–99.8th percentiles map to 0–1 and the bright-background
rule of `inference.normalise` decides whether to invert); only RGB images are converted, so
every other image gets the same input under every conversion (checked, and predicted once).
`luminance` is what the library does today. The splits are those of `scripts/train_nuclei.py`;
only the tuning split is loaded. Scores are pooled AP (StarDist's matching) at IoU 0.5, 0.75 and
0.9 and the mean over 0.5–0.9, as in `scripts/score_nuclei.py`. The difference in mean AP from
`luminance` on the colour images comes with a 95 % interval from a paired bootstrap over images
(objects of one image are not independent), and with how many images gain and lose.
"""

import argparse
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile
from score_nuclei import scores
from skimage.color import rgb2hed
from train_nuclei import load_pairs, split_rows

from napari_segnet.inference.normalise import normalisation_of, to_gray
from napari_segnet.inference.segment import segment_normalised
from napari_segnet.metrics import DEFAULT_THRESHOLDS, evaluate
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain
from napari_segnet.training.data import make_pair


def inverted_luminance(rgb: np.ndarray) -> np.ndarray:
    """Negative luminance: dark nuclei on a bright background become bright on dark.

    The percentile scaling that follows removes any constant offset, so no
    ``255 −`` is needed; the bright-background rule then sees the inverted plane.

    Parameters
    ----------
    rgb : ndarray, shape (Y, X, 3|4)
        A colour image of any numeric dtype.

    Returns
    -------
    ndarray of float32, shape (Y, X)

    """
    return -to_gray(rgb)


def haematoxylin(rgb: np.ndarray) -> np.ndarray:
    """The haematoxylin channel of colour deconvolution (``skimage.color.rgb2hed``, channel 0).

    Parameters
    ----------
    rgb : ndarray, shape (Y, X, 3|4)
        A colour image; integer images are scaled to 0–1 by their dtype's range.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        Haematoxylin optical density: high where nuclei are stained.

    """
    return rgb2hed(rgb[..., :3])[..., 0].astype(np.float32)


def optical_density(rgb: np.ndarray) -> np.ndarray:
    """Optical density summed over red, green and blue: ``−Σ log(RGB / full scale)``.

    Parameters
    ----------
    rgb : ndarray, shape (Y, X, 3|4)
        A colour image; integer images are divided by their dtype's maximum,
        float images are taken to be in 0–1.

    Returns
    -------
    ndarray of float32, shape (Y, X)
        High where the image absorbs (stained objects), 0 on white.

    """
    rgb = np.asarray(rgb)[..., :3]
    full = float(np.iinfo(rgb.dtype).max) if np.issubdtype(rgb.dtype, np.integer) else 1.0
    fraction = np.clip(rgb.astype(np.float32) / full, 1.0 / 255, 1.0)  # log of 0 is -inf
    return (-np.log(fraction)).sum(axis=-1).astype(np.float32)


CONVERSIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "luminance": to_gray,  # today
    "inverted_luminance": inverted_luminance,
    "haematoxylin": haematoxylin,
    "optical_density": optical_density,
}


def converted_pairs(root: Path, rows: list[dict], conversion: Callable):
    """Training-style pairs of ``rows`` with RGB images converted to one plane first.

    Parameters
    ----------
    root : Path
        The data folder (``images/``, ``masks/``, ``manifest.csv``).
    rows : list of dict
        Manifest rows, as :func:`train_nuclei.split_rows` gives them.
    conversion : callable
        ``(Y, X, 3|4)`` image to ``(Y, X)`` plane; not applied to 2-D images.

    Returns
    -------
    pairs : list of Pair
        Normalised as :func:`napari_segnet.training.data.make_pair` does.
    converted : list of bool
        Whether each image was RGB (and so converted).
    inverted : list of bool
        Whether the bright-background rule inverted each image's plane.

    """
    pairs, converted, inverted = [], [], []
    for row in rows:
        image = tifffile.imread(root / "images" / f"{row['id']}.tif")
        labels = tifffile.imread(root / "masks" / f"{row['id']}.tif")
        is_rgb = image.ndim == 3
        plane = conversion(image) if is_rgb else image
        pairs.append(make_pair(plane, labels, name=row["id"], group=row["class"]))
        converted.append(is_rgb)
        inverted.append(normalisation_of(plane).invert)
    return pairs, converted, inverted


def match_counts(truth: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """TP, FP and FN of one image at each of the default IoU thresholds, shape (T, 3)."""
    pooled = evaluate([truth], [prediction])["pooled"]
    return np.array([[pooled[t][k] for k in ("tp", "fp", "fn")] for t in DEFAULT_THRESHOLDS])


def mean_ap(counts: np.ndarray, thresholds=slice(None)) -> np.ndarray:
    """Pooled AP from per-image counts summed over axis -3, averaged over ``thresholds``
    (indices into the default IoU thresholds; all of them by default)."""
    total = counts.sum(axis=-3)
    tp, fp, fn = total[..., 0], total[..., 1], total[..., 2]
    return (tp / np.maximum(tp + fp + fn, 1))[..., thresholds].mean(axis=-1)


def paired_bootstrap(
    counts: np.ndarray, reference: np.ndarray, n: int, seed: int = 0, thresholds=slice(None)
):
    """95 % interval of the difference in pooled mean AP when images are resampled.

    Parameters
    ----------
    counts, reference : ndarray, shape (images, thresholds, 3)
        Per-image TP/FP/FN of the candidate and of the reference.
    n : int
        Number of bootstrap resamples.
    seed : int
        Seeds the resampling.
    thresholds : slice or list of int
        Which IoU thresholds the AP is averaged over (all by default).

    Returns
    -------
    (low, high) : tuple of float

    """
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(counts), size=(n, len(counts)))
    difference = mean_ap(counts[draws], thresholds) - mean_ap(reference[draws], thresholds)
    low, high = np.percentile(difference, (2.5, 97.5))
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="*")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/dsb2018/train"))
    parser.add_argument("--conversions", default=",".join(CONVERSIONS))
    parser.add_argument("--bootstrap", type=int, default=2000)
    args = parser.parse_args()
    names = args.conversions.split(",")
    unknown = sorted(set(names) - set(CONVERSIONS))
    if unknown:
        parser.error(f"unknown conversions {unknown}; choose from {sorted(CONVERSIONS)}")
    if "luminance" not in names:
        names.insert(0, "luminance")  # the reference of every difference

    rows = split_rows(args.data)["tuning"]  # the report split is never loaded
    today = load_pairs(args.data, rows)  # what score_nuclei.py scores
    inputs = {name: converted_pairs(args.data, rows, CONVERSIONS[name]) for name in names}
    is_rgb = np.array(inputs["luminance"][1])
    for mine, theirs in zip(inputs["luminance"][0], today, strict=True):
        np.testing.assert_allclose(mine.image, theirs.image, rtol=0, atol=1e-5)
    inputs["luminance"] = (today, *inputs["luminance"][1:])  # score exactly today's input
    for name in names:
        for pair, reference, rgb in zip(inputs[name][0], today, is_rgb, strict=True):
            if not rgb and not np.array_equal(pair.image, reference.image):
                raise AssertionError(f"{name} changed the input of the 2-D image {pair.name}")
    truths = [p.labels for p in today]
    objects = np.array([len(np.unique(t)) - 1 for t in truths])
    print(
        f"tuning split: {len(rows)} images, {int(is_rgb.sum())} RGB (colour) with "
        f"{int(objects[is_rgb].sum())} objects, {int((~is_rgb).sum())} others with "
        f"{int(objects[~is_rgb].sum())} objects",
        flush=True,
    )
    for name in names:
        inverted = [i for i, rgb in zip(inputs[name][2], is_rgb, strict=True) if rgb]
        print(f"{name}: the bright-background rule inverts {sum(inverted)} of {len(inverted)}")

    for path in args.models or [bundled_model_path("nuclei")]:
        model, _ = load_model(path)
        model.eval()
        cache: dict[tuple[str, str], np.ndarray] = {}  # (id, input digest) -> labels
        results = {}
        for name in names:
            started = time.perf_counter()
            predictions = []
            for pair in inputs[name][0]:
                key = (pair.name, hashlib.sha256(pair.image.tobytes()).hexdigest())
                if key not in cache:
                    cache[key] = drain(segment_normalised(model, pair.image))[0]
                predictions.append(cache[key])
            counts = np.stack(
                [match_counts(t, p) for t, p in zip(truths, predictions, strict=True)]
            )
            record = {"model": str(path), "conversion": name, "split": "tuning"}
            for part, chosen in (
                ("colour", is_rgb),
                ("others", ~is_rgb),
                ("all", np.ones_like(is_rgb)),
            ):
                index = np.flatnonzero(chosen)
                record[part] = {
                    **scores([truths[i] for i in index], [predictions[i] for i in index]),
                    "images": len(index),
                    "objects": int(objects[index].sum()),
                }
            record["seconds"] = round(time.perf_counter() - started, 1)
            results[name] = (counts, record)
            print(json.dumps(record), flush=True)

        reference = results["luminance"][0][is_rgb]
        reference_per_image = mean_ap(reference[:, None])
        print(
            f"\nmodel {path}, tuning split, colour images: {int(is_rgb.sum())} images, "
            f"{int(objects[is_rgb].sum())} objects"
        )
        print(
            "| conversion | AP@0.5 | AP@0.75 | AP@0.9 | mean AP | Δ mean AP (95 % bootstrap) "
            "| images better / worse | others mean AP | all mean AP |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in names:
            counts, record = results[name]
            colour = record["colour"]
            low, high = paired_bootstrap(counts[is_rgb], reference, args.bootstrap)
            per_image = mean_ap(counts[is_rgb][:, None])
            better = int((per_image > reference_per_image + 1e-9).sum())
            worse = int((per_image < reference_per_image - 1e-9).sum())
            delta = colour["ap_mean"] - results["luminance"][1]["colour"]["ap_mean"]
            print(
                f"| {name} | {colour['ap50']:.3f} | {colour['ap75']:.3f} | {colour['ap90']:.3f} "
                f"| {colour['ap_mean']:.3f} | {delta:+.3f} ({low:+.3f} … {high:+.3f}) "
                f"| {better} / {worse} | {record['others']['ap_mean']:.3f} "
                f"| {record['all']['ap_mean']:.3f} |"
            )


if __name__ == "__main__":
    main()
