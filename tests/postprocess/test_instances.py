"""Probabilities → instances: seeded watershed on hand-made probability maps."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.segmentation import watershed

from napari_segnet.postprocess.instances import (
    InstanceSettings,
    probabilities_to_instances,
    seeded_watershed,
)

BACKGROUND = (0.9, 0.05, 0.05)
INTERIOR = (0.05, 0.9, 0.05)
BOUNDARY = (0.05, 0.15, 0.8)


def probabilities_from_classes(classes: np.ndarray) -> np.ndarray:
    """(3, Y, X) probabilities from a class map (0 background, 1 interior, 2 boundary)."""
    table = np.array([BACKGROUND, INTERIOR, BOUNDARY], np.float32)
    return np.moveaxis(table[classes], -1, 0)


def classes_from_labels(labels: np.ndarray) -> np.ndarray:
    """Interior everywhere inside objects, boundary on each object's outer 2-px rim."""
    classes = (labels > 0).astype(np.int64)
    for label in np.unique(labels[labels > 0]):
        inside = labels == label
        rim = inside & ~ndimage.binary_erosion(inside, iterations=2)
        classes[rim] = 2
    return classes


def touching_disks():
    """Two disks of radius 12 whose centres are 22 px apart: they touch along a line."""
    yy, xx = np.mgrid[:60, :80]
    d1 = np.hypot(yy - 30, xx - 29)
    d2 = np.hypot(yy - 30, xx - 51)
    labels = np.zeros((60, 80), np.int32)
    labels[(d1 <= 12) | (d2 <= 12)] = 1
    labels[(labels == 1) & (d2 < d1)] = 2
    return labels


def test_two_touching_disks_give_two_objects_of_the_right_size():
    truth = touching_disks()
    assert ndimage.label(truth > 0)[1] == 1  # they do touch: one connected blob
    probabilities = probabilities_from_classes(classes_from_labels(truth))
    labels = probabilities_to_instances(probabilities)
    assert labels.shape == truth.shape
    assert labels.dtype == np.uint16
    assert sorted(np.unique(labels)) == [0, 1, 2]
    for true_label in (1, 2):
        found = np.bincount(labels[truth == true_label]).argmax()
        assert found > 0
        inter = np.sum((labels == found) & (truth == true_label))
        union = np.sum((labels == found) | (truth == true_label))
        assert inter / union > 0.9, (true_label, inter / union)
    # The foreground as a whole is exactly the true foreground.
    np.testing.assert_array_equal(labels > 0, truth > 0)


def test_smooth_probabilities_of_touching_disks():
    # Interior probability peaks in each core and dips along the contact line.
    yy, xx = np.mgrid[:60, :80]
    d1, d2 = np.hypot(yy - 30, xx - 29), np.hypot(yy - 30, xx - 51)
    core = np.clip(1.1 - np.minimum(d1, d2) / 10, 0, 1) * np.clip(np.abs(d1 - d2) / 4, 0, 1)
    foreground = np.clip(13 - np.minimum(d1, d2), 0, 1)
    interior = core * foreground
    boundary = foreground - interior
    labels = probabilities_to_instances(np.stack([1 - foreground, interior, boundary]))
    assert labels.max() == 2
    areas = np.bincount(labels.ravel())[1:]
    expected = np.pi * 12.5**2  # foreground is within 12.5 px of a centre (minus the overlap)
    assert np.all(np.abs(areas - expected) / expected < 0.1), areas


def square_probabilities(shape, squares):
    classes = np.zeros(shape, np.int64)
    for y, x, h, w in squares:
        classes[y : y + h, x : x + w] = 1
    return probabilities_from_classes(classes)


def test_objects_smaller_than_min_size_are_removed():
    # 3×3 = 9, 4×4 = 16 and 6×6 = 36 pixels.
    probabilities = square_probabilities((40, 40), [(2, 2, 3, 3), (10, 10, 4, 4), (25, 25, 6, 6)])
    for min_size, expected_areas in [
        (1, [9, 16, 36]),
        (15, [16, 36]),
        (16, [16, 36]),
        (17, [36]),
        (37, []),
    ]:
        labels = probabilities_to_instances(probabilities, InstanceSettings(min_size=min_size))
        areas = sorted(np.bincount(labels.ravel())[1:].tolist())
        assert areas == expected_areas, min_size
        assert labels.max() == len(expected_areas)


def test_a_hole_inside_an_object_is_filled():
    classes = np.zeros((40, 70), np.int64)
    classes[5:30, 5:30] = 1
    classes[15:19, 12:17] = 0  # a background hole, enclosed by the object
    classes[5:30, 40:65] = 1  # a second object with two holes
    classes[8:10, 45:47] = classes[20:25, 50:60] = 0
    labels = probabilities_to_instances(probabilities_from_classes(classes))
    assert labels.max() == 2
    left, right = labels[5:30, 5:30], labels[5:30, 40:65]
    assert (left == left[0, 0]).all() and (right == right[0, 0]).all()
    assert left[0, 0] != right[0, 0]
    assert np.count_nonzero(labels) == 2 * 25 * 25


def test_background_enclosed_by_several_objects_is_not_given_to_them():
    # Four squares around a 6×6 background pocket (a ring of touching nuclei): the pocket
    # is outside every single object, so it stays background.
    classes = np.zeros((50, 50), np.int64)
    classes[10:22, 10:40] = 1  # top
    classes[28:40, 10:40] = 1  # bottom
    classes[22:28, 10:22] = 1  # left
    classes[22:28, 28:40] = 1  # right
    classes[21, 10:40] = classes[28, 10:40] = 2  # boundaries between them
    classes[22:28, 21] = classes[22:28, 28] = 2
    labels = probabilities_to_instances(probabilities_from_classes(classes))
    assert labels.max() == 4
    assert (labels[22:28, 22:28] == 0).all()


def test_labels_are_consecutive_after_removing_objects():
    squares = [
        (2 + 10 * i, 2 + 10 * j, 2 if (i + j) % 2 else 5, 5) for i in range(4) for j in range(4)
    ]
    probabilities = square_probabilities((45, 45), squares)
    labels = probabilities_to_instances(probabilities, InstanceSettings(min_size=15))
    np.testing.assert_array_equal(np.unique(labels), np.arange(9))  # 8 large squares kept
    for label in range(1, 9):
        assert (labels == label).sum() == 25


def seed_grid(side: int, drop: int = 0) -> np.ndarray:
    """Isolated one-pixel objects on every other pixel of a side × side image."""
    interior = np.zeros((side, side), np.float32)
    interior[::2, ::2] = 1.0
    if drop:
        interior.ravel()[np.flatnonzero(interior.ravel())[:drop]] = 0.0
    return np.stack([1 - interior, interior, np.zeros_like(interior)])


def test_more_than_65535_objects_need_uint32():
    probabilities = seed_grid(600)  # 300 × 300 = 90,000 objects
    labels = probabilities_to_instances(probabilities, InstanceSettings(min_size=1))
    assert labels.dtype == np.uint32
    assert labels.max() == 90_000
    assert np.count_nonzero(labels) == 90_000
    assert len(np.unique(labels)) == 90_001


def test_exactly_65535_objects_fit_uint16():
    probabilities = seed_grid(512, drop=1)  # 256 × 256 - 1 = 65,535 objects
    labels = probabilities_to_instances(probabilities, InstanceSettings(min_size=1))
    assert labels.dtype == np.uint16
    assert labels.max() == 65_535
    assert np.count_nonzero(labels) == 65_535


def test_all_background_gives_all_zeros():
    probabilities = probabilities_from_classes(np.zeros((30, 20), np.int64))
    labels = probabilities_to_instances(probabilities)
    assert labels.shape == (30, 20)
    assert labels.dtype == np.uint16
    assert not labels.any()


def test_boundary_without_interior_gives_no_object():
    # Foreground but no seed: nothing to flood from.
    classes = np.zeros((30, 30), np.int64)
    classes[5:20, 5:20] = 2
    labels = probabilities_to_instances(probabilities_from_classes(classes))
    assert not labels.any()


@pytest.mark.parametrize("seed_threshold", [0.5, 0.85])
def test_thresholds_decide_seeds_and_extent(seed_threshold):
    classes = np.zeros((30, 30), np.int64)
    classes[5:20, 5:20] = 2
    classes[9:16, 9:16] = 1
    probabilities = probabilities_from_classes(classes)
    settings = InstanceSettings(seed_threshold=seed_threshold, foreground_threshold=0.5)
    labels = probabilities_to_instances(probabilities, settings)
    assert labels.max() == 1 and (labels == 1).sum() == 15 * 15
    settings = InstanceSettings(seed_threshold=0.95)  # interior 0.9 no longer seeds
    assert not probabilities_to_instances(probabilities, settings).any()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_watershed_equals_the_full_watershed(seed):
    # Smooth random relief: regions with no marker, one marker, several markers, markers
    # split by the mask or lying partly outside it.
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((300, 280)), 4)
    field = (field - field.min()) / np.ptp(field)
    mask = field > 0.5
    markers, n_markers = ndimage.label(field > 0.62)
    markers[rng.random(field.shape) < 0.002] = n_markers + 1  # one label in many places
    expected = watershed(-field, markers=markers, mask=mask)
    labels = seeded_watershed(-field, markers, mask)
    counts = markers_per_region(markers, mask)
    assert {0, 1} <= set(counts) and max(counts) > 1  # every kind of region is there
    np.testing.assert_array_equal(labels, expected)


def markers_per_region(markers, mask):
    regions, n = ndimage.label(mask)
    return [len(np.unique(markers[(regions == r) & (markers > 0)])) for r in range(1, n + 1)]


def test_the_minimum_size_is_in_the_networks_pixels_at_every_zoom():
    settings = InstanceSettings(0.4, 0.6, 40)
    assert settings.at_zoom(1) is settings
    assert settings.at_zoom(2) == InstanceSettings(0.4, 0.6, 10)  # a quarter of the area
    assert settings.at_zoom(0.5) == InstanceSettings(0.4, 0.6, 160)
