"""Training pairs (image, instance labels): loading, splitting and augmented sampling."""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from napari_segnet.inference.normalise import normalise
from napari_segnet.io import read_image

from .settings import VALIDATION_FRACTION
from .star_targets import STAR_GRID, star_targets
from .targets import instance_targets


@dataclass
class Pair:
    """One normalised 2-D training image and its instance labels."""

    image: np.ndarray
    labels: np.ndarray
    name: str = ""
    group: str = ""


def plane_for_training(data: np.ndarray, axes: str, channel: int = 0) -> np.ndarray:
    """Reduce an image to the 2-D (or RGB) plane that the network reads."""
    if "C" in axes:
        data = np.take(data, channel, axis=axes.index("C"))
        axes = axes.replace("C", "")
    if axes not in ("YX", "YXS"):
        raise ValueError(f"Training images must be 2-D (got axes {axes}).")
    return np.asarray(data)


def make_pair(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    name: str = "",
    group: str = "",
    percentiles: tuple[float, float] = (1.0, 99.8),
) -> Pair:
    """Normalise an in-memory image (2-D or RGB) and pair it with its labels."""
    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"Image {image.shape} and labels {labels.shape} of {name!r} differ.")
    return Pair(normalise(image, percentiles), labels.astype(np.int32), name, group)


def load_pairs(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    *,
    channel: int = 0,
    percentiles=(1.0, 99.8),
) -> list[Pair]:
    """Load ``images/<stem>.tif`` with ``masks/<stem>.tif`` for every stem in both folders.

    Raises
    ------
    ValueError
        If a folder is missing or no stem appears in both.

    """
    pairs = []
    for stem, image_path, mask_path in pair_paths(images_dir, masks_dir):
        image = read_image(image_path)
        plane = plane_for_training(image.data, image.axes, channel)
        pairs.append(
            make_pair(plane, read_image(mask_path).data, name=stem, percentiles=percentiles)
        )
    return pairs


def pair_paths(images_dir: str | os.PathLike, masks_dir: str | os.PathLike):
    """``(stem, image path, mask path)`` for every TIFF stem found in both folders, sorted.

    Raises
    ------
    ValueError
        If a folder is missing or no stem appears in both.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise ValueError(f"The folder {folder} does not exist.")
    images = {
        image_stem(p): p for p in images_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff")
    }
    masks = {image_stem(p): p for p in masks_dir.iterdir() if p.suffix.lower() in (".tif", ".tiff")}
    stems = sorted(images.keys() & masks.keys())
    if not stems:
        raise ValueError(f"No image in {images_dir} has a mask of the same name in {masks_dir}.")
    return [(stem, images[stem], masks[stem]) for stem in stems]


def image_stem(path: Path) -> str:
    """Return a file name without its TIFF suffix: ``a.b.ome.tif`` gives ``a.b``."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def split_validation(
    names: list[str],
    fraction: float,
    *,
    groups: list[str] | None = None,
    always: tuple[str, ...] = (),
) -> set[str]:
    """Names held out for validation, stratified by group, chosen by a stable hash.

    Within each group the ``ceil(fraction × n)`` names with the smallest SHA-256
    hash are held out (at least one per group), plus every name in ``always``.
    The choice depends on the names only, never on the order of the files.
    """
    groups = groups or [""] * len(names)
    by_group: dict[str, list[str]] = {}
    for name, group in zip(names, groups, strict=True):
        by_group.setdefault(group, []).append(name)
    held_out = {name for name in always if name in names}
    for members in by_group.values():
        members = sorted(members, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
        held_out.update(members[: max(1, math.ceil(fraction * len(members)))])
    return held_out


def split_pairs(
    pairs: list[Pair], fraction: float = VALIDATION_FRACTION
) -> tuple[list[Pair], list[Pair]]:
    """Hold out a ``fraction`` of the data for validation: whole images, or parts of each.

    With enough images for at least one to be held out (``fraction × n ≥ 1``),
    whole images are chosen by :func:`split_validation`. With fewer (say, two
    corrected images from the viewer), the last ``fraction`` of every image
    along its longer side is held out and the rest is trained on, so that
    validation always scores pixels the network never trained on.

    Returns
    -------
    (train, validation) : tuple of lists of Pair

    """
    if fraction <= 0 or not pairs:
        return list(pairs), []
    if fraction * len(pairs) >= 1:
        held_out = split_validation([p.name for p in pairs], fraction)
        return (
            [p for p in pairs if p.name not in held_out],
            [p for p in pairs if p.name in held_out],
        )
    train, validation = [], []
    for pair in pairs:
        axis = int(pair.labels.shape[1] > pair.labels.shape[0])  # the longer side
        cut = round(pair.labels.shape[axis] * (1 - fraction))
        for part, store in ((slice(0, cut), train), (slice(cut, None), validation)):
            index = (slice(None), part) if axis else (part,)
            labels = pair.labels[index]
            if labels.size:
                store.append(Pair(pair.image[index], labels, pair.name, pair.group))
    return train, validation


def median_diameter(pairs: list[Pair]) -> float | None:
    """Diameter in pixels of a disk with the median object area over all pairs (None if empty)."""
    areas = np.concatenate([np.bincount(p.labels.ravel())[1:] for p in pairs] or [np.zeros(0)])
    areas = areas[areas > 0]
    return round(float(2 * np.sqrt(np.median(areas) / np.pi)), 1) if areas.size else None


class AugmentedSampler:
    """Random crops with scale jitter, flips, 90° rotations, intensity jitter and noise.

    With ``star_rays``, each crop also gets star-convex targets
    (:func:`~napari_segnet.training.star_targets.star_targets`), computed on the
    crop after it was zoomed, rotated and flipped, so they are exact. The random
    draws are the same with and without them: for one seed both give the same
    images and 3-class targets.
    """

    def __init__(
        self,
        pairs: list[Pair],
        *,
        crop: int = 256,
        scale_range=(0.6, 1.6),
        weights: np.ndarray | None = None,
        seed: int = 0,
        star_rays: int | None = None,
        star_grid: int = STAR_GRID,
    ):
        if not pairs:
            raise ValueError("There are no training images.")
        self.pairs, self.crop, self.scale_range = pairs, crop, scale_range
        self.star_rays, self.star_grid = star_rays, star_grid
        p = np.ones(len(pairs)) if weights is None else np.asarray(weights, float)
        self.probabilities = p / p.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int):
        """Return a batch of crops and their targets as numpy arrays.

        Returns
        -------
        tuple
            ``(images (N,1,Y,X), classes (N,Y,X), weights (N,Y,X))``; with
            ``star_rays`` also ``star_prob (N,Y,X)`` and ``star_dist (N,R,Y/g,X/g)``
            (g = ``star_grid``).

        """
        images, classes, weights, star_prob, star_dist = [], [], [], [], []
        for index in self.rng.choice(len(self.pairs), size=batch_size, p=self.probabilities):
            image, labels = self._crop(self.pairs[index])
            image = self._intensity(image)
            target, weight = instance_targets(labels)
            images.append(image)
            classes.append(target)
            weights.append(weight)
            if self.star_rays:
                prob, dist = star_targets(labels, self.star_rays, self.star_grid)
                star_prob.append(prob)
                star_dist.append(dist)
        batch = np.stack(images)[:, None], np.stack(classes), np.stack(weights)
        if self.star_rays:
            batch += np.stack(star_prob), np.stack(star_dist)
        return batch

    def _crop(self, pair: Pair):
        rng, crop = self.rng, self.crop
        scale = float(np.exp(rng.uniform(*np.log(self.scale_range))))
        source = max(8, round(crop / scale))  # crop this much, then resize to `crop`
        image, labels = _pad_to(pair.image, source), _pad_to(pair.labels, source)
        y = rng.integers(0, image.shape[0] - source + 1)
        x = rng.integers(0, image.shape[1] - source + 1)
        image, labels = (
            image[y : y + source, x : x + source],
            labels[y : y + source, x : x + source],
        )
        if source != crop:
            zoom = crop / source
            image = ndimage.zoom(image, zoom, order=1, grid_mode=True, mode="nearest")
            labels = ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest")
            image, labels = image[:crop, :crop], labels[:crop, :crop]
        k = rng.integers(4)
        image, labels = np.rot90(image, k), np.rot90(labels, k)
        if rng.random() < 0.5:
            image, labels = image[:, ::-1], labels[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)

    def _intensity(self, image: np.ndarray) -> np.ndarray:
        rng = self.rng
        image = image * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
        gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        image = np.sign(image) * np.abs(image) ** gamma
        if rng.random() < 0.5:
            image = image + rng.normal(0, rng.uniform(0, 0.08), image.shape)
        return image.astype(np.float32)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    pad = [(0, max(0, size - n)) for n in array.shape[:2]]
    return np.pad(array, pad, mode="constant") if any(p for _, p in pad) else array
