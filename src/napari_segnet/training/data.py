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

COLOUR_JITTER = 0.1  # per-channel gain of colour crops: 1 ± this at most


@dataclass
class Pair:
    """One normalised training image and its instance labels.

    ``image`` is ``(Y, X)`` float32 for a network that reads one channel and
    channels-first ``(C, Y, X)`` for one that reads C (see
    :func:`~napari_segnet.inference.normalise.normalise`); ``labels`` is ``(Y, X)``.
    """

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
    channels: int = 1,
) -> Pair:
    """Normalise an in-memory image (2-D or RGB) and pair it with its labels.

    ``channels`` is what the network reads (its ``config.in_channels``): 1 gives
    a ``(Y, X)`` image (colour as luminance), 3 a ``(3, Y, X)`` one (colour as R,
    G, B, grey in every channel).
    """
    labels = np.asarray(labels)
    if labels.shape != image.shape[:2]:
        raise ValueError(f"Image {image.shape} and labels {labels.shape} of {name!r} differ.")
    plane = normalise(image, percentiles, channels=channels)
    return Pair(plane, labels.astype(np.int32), name, group)


def image_channels(image: np.ndarray) -> int:
    """Channels of a normalised image: 1 for ``(Y, X)``, C for ``(C, Y, X)``."""
    return 1 if image.ndim == 2 else int(image.shape[0])


def load_pairs(
    images_dir: str | os.PathLike,
    masks_dir: str | os.PathLike,
    *,
    channel: int = 0,
    percentiles=(1.0, 99.8),
    channels: int = 1,
) -> list[Pair]:
    """Load ``images/<stem>.tif`` with ``masks/<stem>.tif`` for every stem in both folders.

    Images are normalised for a network that reads ``channels`` channels (see
    :func:`make_pair`).

    Raises
    ------
    ValueError
        If a folder is missing or no stem appears in both.

    """
    pairs = []
    for stem, image_path, mask_path in pair_paths(images_dir, masks_dir):
        image = read_image(image_path)
        plane = plane_for_training(image.data, image.axes, channel)
        labels = read_image(mask_path).data
        pairs.append(
            make_pair(plane, labels, name=stem, percentiles=percentiles, channels=channels)
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
            index = (slice(None), part) if axis else (part, slice(None))
            labels = pair.labels[index]
            if labels.size:  # images may be channels-first: cut their last two axes
                store.append(Pair(pair.image[(..., *index)], labels, pair.name, pair.group))
    return train, validation


def median_diameter(pairs: list[Pair]) -> float | None:
    """Diameter in pixels of a disk with the median object area over all pairs (None if empty)."""
    areas = np.concatenate([np.bincount(p.labels.ravel())[1:] for p in pairs] or [np.zeros(0)])
    areas = areas[areas > 0]
    return round(float(2 * np.sqrt(np.median(areas) / np.pi)), 1) if areas.size else None


def size_normalised(pairs: list[Pair], diameter: float) -> list[Pair]:
    """Rescale every pair so that its median object has ``diameter`` pixels.

    Each pair is :func:`zoomed`; a pair without objects is kept as it is.
    """
    normalised = []
    for pair in pairs:
        own = median_diameter([pair])
        normalised.append(zoomed(pair, diameter / own) if own else pair)
    return normalised


def zoomed(pair: Pair, scale: float) -> Pair:
    """Return a pair as if imaged at ``scale`` times the magnification.

    The image is resized with linear interpolation (smoothed first when it
    shrinks, so that fine texture does not alias; each channel of a
    channels-first image on its own), the labels with the nearest label.
    """
    from skimage.transform import resize

    shape = tuple(max(1, round(n * scale)) for n in pair.labels.shape)
    if pair.image.ndim == 3:
        image = np.stack(
            [resize(plane, shape, order=1, anti_aliasing=scale < 1) for plane in pair.image]
        )
    else:
        image = resize(pair.image, shape, order=1, anti_aliasing=scale < 1)
    labels = resize(pair.labels, shape, order=0, preserve_range=True, anti_aliasing=False)
    return Pair(image.astype(np.float32), labels.astype(np.int32), pair.name, pair.group)


class AugmentedSampler:
    """Random crops with scale jitter, flips, 90° rotations, intensity jitter and noise.

    Images may be ``(Y, X)`` or channels-first ``(C, Y, X)`` (all pairs alike):
    every channel of a crop is zoomed, turned and flipped with its labels, and
    gets the same brightness, contrast and gamma; colour images (C = 3) also get
    a small gain of their own per channel (stain and white-balance variation).

    A share ``object_centred`` of the crops is placed on a randomly chosen
    object (anywhere in the crop's middle half), so that sparse images still
    give crops with objects in them; the rest are placed anywhere.

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
        object_centred: float = 0.0,
    ):
        if not pairs:
            raise ValueError("There are no training images.")
        self.pairs, self.crop, self.scale_range = pairs, crop, scale_range
        self.object_centred = object_centred
        self._centres: dict[int, np.ndarray] = {}
        self.star_rays, self.star_grid = star_rays, star_grid
        p = np.ones(len(pairs)) if weights is None else np.asarray(weights, float)
        self.probabilities = p / p.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int):
        """Return a batch of crops and their targets as numpy arrays.

        Returns
        -------
        tuple
            ``(images (N,C,Y,X), classes (N,Y,X), weights (N,Y,X))`` (C = 1 for
            ``(Y, X)`` images); with
            ``star_rays`` also ``star_prob (N,Y,X)`` and ``star_dist (N,R,Y/g,X/g)``
            (g = ``star_grid``).

        """
        images, classes, weights, star_prob, star_dist = [], [], [], [], []
        for index in self.rng.choice(len(self.pairs), size=batch_size, p=self.probabilities):
            image, labels = self._crop(index)
            image = self._intensity(image)
            target, weight = instance_targets(labels)
            images.append(image)
            classes.append(target)
            weights.append(weight)
            if self.star_rays:
                prob, dist = star_targets(labels, self.star_rays, self.star_grid)
                star_prob.append(prob)
                star_dist.append(dist)
        images = np.stack(images)
        if images.ndim == 3:  # (N, Y, X): one channel
            images = images[:, None]
        batch = images, np.stack(classes), np.stack(weights)
        if self.star_rays:
            batch += np.stack(star_prob), np.stack(star_dist)
        return batch

    def _crop(self, index: int):
        rng, crop, pair = self.rng, self.crop, self.pairs[index]
        scale = float(np.exp(rng.uniform(*np.log(self.scale_range))))
        source = max(8, round(crop / scale))  # crop this much, then resize to `crop`
        image, labels = _pad_to(pair.image, source), _pad_to(pair.labels, source)
        y, x = self._corner(index, image.shape[-2:], source)
        image, labels = (
            image[..., y : y + source, x : x + source],
            labels[y : y + source, x : x + source],
        )
        if source != crop:
            zoom = crop / source
            options = dict(order=1, grid_mode=True, mode="nearest")
            if image.ndim == 3:  # each channel as a plane
                image = np.stack([ndimage.zoom(plane, zoom, **options) for plane in image])
            else:
                image = ndimage.zoom(image, zoom, **options)
            labels = ndimage.zoom(labels, zoom, order=0, grid_mode=True, mode="nearest")
            image, labels = image[..., :crop, :crop], labels[:crop, :crop]
        k = rng.integers(4)
        image, labels = np.rot90(image, k, axes=(-2, -1)), np.rot90(labels, k)
        if rng.random() < 0.5:
            image, labels = image[..., ::-1], labels[:, ::-1]
        return np.ascontiguousarray(image), np.ascontiguousarray(labels)

    def _corner(self, index: int, shape: tuple[int, int], source: int) -> tuple[int, int]:
        """Top-left corner of a crop of ``source`` pixels: on an object or anywhere."""
        rng = self.rng
        highest = (shape[0] - source, shape[1] - source)
        if self.object_centred and rng.random() < self.object_centred:
            centres = self._object_centres(index)
            if len(centres):
                centre = centres[rng.integers(len(centres))]
                offset = rng.uniform(0.25, 0.75, 2) * source
                return tuple(
                    int(np.clip(round(c - o), 0, h))
                    for c, o, h in zip(centre, offset, highest, strict=True)
                )
        return int(rng.integers(0, highest[0] + 1)), int(rng.integers(0, highest[1] + 1))

    def _object_centres(self, index: int) -> np.ndarray:
        if index not in self._centres:
            boxes = ndimage.find_objects(self.pairs[index].labels)
            self._centres[index] = np.array(
                [[(b.start + b.stop) / 2 for b in box] for box in boxes if box is not None]
            )
        return self._centres[index]

    def _intensity(self, image: np.ndarray) -> np.ndarray:
        rng = self.rng
        image = image * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1)
        gamma = float(np.exp(rng.uniform(np.log(0.7), np.log(1.4))))
        image = np.sign(image) * np.abs(image) ** gamma
        if image.ndim == 3 and image.shape[0] == 3:  # colour: a little per-channel gain
            image = image * rng.uniform(1 - COLOUR_JITTER, 1 + COLOUR_JITTER, (3, 1, 1))
        if rng.random() < 0.5:
            image = image + rng.normal(0, rng.uniform(0, 0.08), image.shape)
        return image.astype(np.float32)


def _pad_to(array: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad the last two axes (rows, columns) to at least ``size``."""
    pad = [(0, max(0, size - n)) for n in array.shape[-2:]]
    if not any(p for _, p in pad):
        return array
    return np.pad(array, [(0, 0)] * (array.ndim - 2) + pad, mode="constant")
