import numpy as np
import pytest

# torchvision pulls in triton, whose bundled LLVM crashes the process when it is loaded after
# Mesa's software OpenGL (which brings its own LLVM) has drawn a napari canvas under Xvfb.
# Loading it before any viewer exists keeps the whole suite in one process.
import torchvision  # noqa: F401
from scipy import ndimage
from skimage.draw import disk


def place_disks(rng, shape, n, radius, gap, attempts):
    """Labels of up to ``n`` disks with radii in ``radius``, at least ``gap`` px apart."""
    labels = np.zeros(shape, np.uint16)
    label = 0
    for _ in range(attempts):
        if label == n:
            break
        r = int(rng.integers(*radius))
        centre = tuple(rng.integers(r + 1, np.array(shape) - r - 1))
        if labels[disk(centre, r + gap, shape=shape)].any():  # every disk is its own object
            continue
        label += 1
        labels[disk(centre, r, shape=shape)] = label
    return labels


def synthetic_nuclei(shape=(96, 96), n=8, radius=(6, 10), seed=0):
    """Bright noisy disks on a dark background, with their instance labels."""
    rng = np.random.default_rng(seed)
    labels = place_disks(rng, shape, n, radius, gap=2, attempts=n * 20)
    image = rng.normal(20, 4, shape) + (labels > 0) * rng.normal(120, 10, shape)
    return image.clip(0, 255).astype(np.uint8), labels


def synthetic_envelopes(shape=(256, 384), n=40, seed=0):
    """Nuclei stained only at their envelope: bright rings with dark insides, and their labels.

    The bundled model, trained on filled nuclei, does poorly on these; a short
    fine-tuning on a couple of them fixes it.
    """
    rng = np.random.default_rng(seed)
    labels = place_disks(rng, shape, n, (9, 15), gap=1, attempts=n * 30)
    rim = (labels > 0) & (ndimage.grey_erosion(labels, 5) != labels)
    image = ndimage.gaussian_filter(rng.normal(30, 6, shape) + rim * 110.0, 1)
    return image.clip(0, 255).astype(np.uint8), labels


@pytest.fixture
def nuclei_pairs():
    return [synthetic_nuclei(seed=seed) for seed in range(6)]


@pytest.fixture
def large_nuclei_pairs():
    """Two 256² images of nuclei about 32 px wide (the bundled model's are about 20 px)."""
    return [synthetic_nuclei((256, 256), n=10, radius=(14, 18), seed=seed) for seed in range(2)]


@pytest.fixture
def envelope_pairs():
    return [synthetic_envelopes(seed=seed) for seed in range(2)]
