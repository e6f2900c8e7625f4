"""Normalisation: percentile scaling, automatic inversion, colour, NaNs, constant images."""

import warnings

import numpy as np
import pytest
from skimage.draw import disk

from napari_segnet.inference.normalise import normalise, to_gray


def blobs_image(background: float, objects: float, shape=(120, 160), seed=0):
    """Dim or bright squares (about 15 % of the area) on a noisy background."""
    rng = np.random.default_rng(seed)
    image = np.full(shape, background, np.float64) + rng.normal(0, 5, shape)
    mask = np.zeros(shape, bool)
    for y, x in [(10, 10), (10, 80), (60, 40), (70, 120), (30, 130)]:
        mask[y : y + 20, x : x + 20] = True
    image[mask] = objects + rng.normal(0, 5, mask.sum())
    return image, mask


@pytest.mark.parametrize("percentiles", [(1.0, 99.8), (5.0, 95.0), (0.0, 100.0)])
def test_the_percentiles_map_to_zero_and_one(percentiles):
    image = np.random.default_rng(1).gamma(2.0, 300.0, size=(200, 300)).astype(np.uint16)
    result = normalise(image, percentiles, invert=False)
    assert result.dtype == np.float32
    assert result.shape == image.shape
    low, high = np.percentile(result, percentiles)
    assert abs(low) < 1e-4 and abs(high - 1) < 1e-4
    # The scaling is affine: it keeps the order of the pixels.
    low_in, high_in = np.percentile(image.astype(np.float64), percentiles)
    np.testing.assert_allclose(result, (image - low_in) / (high_in - low_in), atol=1e-5)


def test_dark_background_is_not_inverted():
    image, mask = blobs_image(background=100, objects=1000)
    result = normalise(image)
    assert result[mask].mean() > 0.8 and abs(np.median(result[~mask])) < 0.1


def test_bright_background_is_inverted_so_objects_are_brighter():
    image, mask = blobs_image(background=1000, objects=100)  # brightfield-like
    result = normalise(image)
    assert result[mask].mean() > result[~mask].mean() + 0.5
    np.testing.assert_allclose(result, 1 - normalise(image, invert=False), atol=1e-6)


def test_an_explicit_invert_is_respected():
    bright_background, mask = blobs_image(background=1000, objects=100)
    kept = normalise(bright_background, invert=False)
    assert kept[mask].mean() < kept[~mask].mean() - 0.5
    dark_background, mask = blobs_image(background=100, objects=1000)
    flipped = normalise(dark_background, invert=True)
    assert flipped[mask].mean() < flipped[~mask].mean() - 0.5


def test_rgb_becomes_its_luminance():
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(50, 60, 3), dtype=np.uint8)
    luminance = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    np.testing.assert_allclose(to_gray(rgb), luminance, rtol=1e-5)
    assert to_gray(rgb).shape == (50, 60) and to_gray(rgb).dtype == np.float32
    np.testing.assert_allclose(
        normalise(rgb, invert=False), normalise(luminance, invert=False), atol=1e-5
    )
    # An alpha channel is ignored.
    rgba = np.concatenate([rgb, np.full((50, 60, 1), 255, np.uint8)], axis=-1)
    np.testing.assert_allclose(to_gray(rgba), to_gray(rgb))


def test_he_like_colour_image_is_inverted():
    # Pink-white background, dark purple nuclei: objects must come out bright.
    _, mask = blobs_image(background=0, objects=1)
    rgb = np.where(mask[..., None], [90, 40, 120], [240, 220, 235]).astype(np.uint8)
    result = normalise(rgb)
    assert result[mask].mean() > result[~mask].mean() + 0.5


def test_nans_do_not_propagate():
    image, mask = blobs_image(background=100, objects=1000)
    image[5, 5] = np.nan
    image[50:52, 70:90] = np.nan
    image[0, 1] = np.inf
    image[0, 2] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = normalise(image)
    assert np.isfinite(result).all()
    clean = np.isfinite(image)
    assert result[mask & clean].mean() > 0.8


@pytest.mark.parametrize("value", [0, 7, 65535, -3.5])
def test_a_constant_image_does_not_divide_by_zero(value):
    image = np.full((40, 50), value, dtype=np.float32 if value < 0 else np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = normalise(image)
    assert np.isfinite(result).all()
    assert result.min() == result.max()
    assert abs(float(result[0, 0])) <= 1.0


def test_large_images_are_subsampled_but_still_scaled_to_the_percentiles():
    image = np.random.default_rng(3).normal(500, 50, size=(1100, 1300)).astype(np.float32)
    result = normalise(image, (1.0, 99.0), invert=False)
    low, high = np.percentile(result, (1.0, 99.0))
    assert abs(low) < 0.02 and abs(high - 1) < 0.02


def test_confluent_fluorescence_is_not_inverted():
    """Nuclei covering nearly all of the image: the median is a nucleus, the background is not."""
    rng = np.random.default_rng(0)
    labels = np.zeros((256, 256), int)
    for k, centre in enumerate(rng.integers(0, 256, (400, 2)), start=1):
        labels[disk(tuple(centre), 14, shape=labels.shape)] = k
    assert (labels > 0).mean() > 0.9
    brightness = rng.uniform(300, 900, labels.max() + 1)[labels]
    image = rng.normal(100, 5, labels.shape) + (labels > 0) * (
        brightness + rng.normal(0, 40, labels.shape)
    )
    assert np.median(image) > np.mean(np.percentile(image, (1, 99.8)))  # the old rule's trap
    result = normalise(image)
    assert result[labels > 0].mean() > result[labels == 0].mean() + 0.3
