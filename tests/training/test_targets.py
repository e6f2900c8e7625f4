"""Training targets: background / interior / boundary classes and gap weights."""

import numpy as np
from scipy import ndimage

from napari_segnet.training.targets import BACKGROUND, BOUNDARY, INTERIOR, instance_targets

CROSS = ndimage.generate_binary_structure(2, 1)


def disk(shape, centre, radius):
    yy, xx = np.indices(shape)
    return np.hypot(yy - centre[0], xx - centre[1]) <= radius


def test_class_codes():
    assert (BACKGROUND, INTERIOR, BOUNDARY) == (0, 1, 2)


def test_a_disk_has_a_two_pixel_rim_around_its_interior():
    mask = disk((64, 64), (32, 32), 10)
    labels = mask.astype(np.int32) * 3
    classes, weights = instance_targets(labels)
    assert classes.dtype == np.int64 and weights.dtype == np.float32
    assert classes.shape == weights.shape == (64, 64)
    # Independent construction: the rim is every object pixel with a 4-neighbour outside;
    # a large object's boundary is the rim and the object pixels 4-adjacent to it.
    rim = mask & ndimage.binary_dilation(~mask, CROSS)
    boundary = mask & ndimage.binary_dilation(rim, CROSS)
    expected = np.where(boundary, 2, np.where(mask, 1, 0))
    np.testing.assert_array_equal(classes, expected)
    assert classes[32, 32] == INTERIOR
    assert (classes[~mask] == BACKGROUND).all()
    # Along the middle row: background, 2 boundary pixels, interior, 2 boundary, background.
    row = classes[32, 20:45]
    np.testing.assert_array_equal(row, [0, 0, 2, 2, *[1] * 17, 2, 2, 0, 0])


def test_squares_large_and_small():
    labels = np.zeros((40, 40), np.int32)
    labels[2:14, 2:14] = 1  # 144 px: thick boundary, 8 × 8 interior
    labels[20:26, 20:26] = 2  # 36 px: 1-px boundary, 4 × 4 interior
    labels[30:33, 5:8] = 3  # 9 px: 1-px boundary, 1 interior pixel
    labels[2:12, 25:35] = 4  # 100 px: exactly the threshold, thick: 6 × 6 interior
    classes, _ = instance_targets(labels)
    for label, size, inner in [(1, 12, 8), (2, 6, 4), (3, 3, 1), (4, 10, 6)]:
        region = classes[labels == label].reshape(size, size)
        expected = np.full((size, size), BOUNDARY)
        margin = (size - inner) // 2
        expected[margin : margin + inner, margin : margin + inner] = INTERIOR
        np.testing.assert_array_equal(region, expected, err_msg=f"object {label}")


def test_touching_disks_are_separated_by_boundary_and_both_keep_interior():
    yy, xx = np.indices((50, 70))
    d1, d2 = np.hypot(yy - 25, xx - 24), np.hypot(yy - 25, xx - 45)
    labels = np.zeros((50, 70), np.int32)
    labels[(d1 <= 12) | (d2 <= 12)] = 1
    labels[(labels > 0) & (d2 < d1)] = 2
    classes, _ = instance_targets(labels)
    one, two = labels == 1, labels == 2
    contact_one = one & ndimage.binary_dilation(two, CROSS)
    contact_two = two & ndimage.binary_dilation(one, CROSS)
    assert contact_one.sum() > 5 and contact_two.sum() > 5
    assert (classes[contact_one | contact_two] == BOUNDARY).all()
    # The boundary between them is 2 px deep on each side.
    band = ndimage.binary_dilation(contact_one | contact_two, CROSS) & (labels > 0)
    assert (classes[band] == BOUNDARY).all()
    assert (classes[one] == INTERIOR).sum() > 100
    assert (classes[two] == INTERIOR).sum() > 100
    # Interior pixels of the two objects never touch: the seeds stay apart.
    interior_one = one & (classes == INTERIOR)
    interior_two = two & (classes == INTERIOR)
    assert not (ndimage.binary_dilation(interior_one, iterations=2) & interior_two).any()


def test_small_objects_keep_interior():
    labels = np.zeros((30, 30), np.int32)
    labels[disk((30, 30), (8, 8), 4)] = 1  # 49 px
    labels[disk((30, 30), (20, 20), 5)] = 2  # 81 px
    classes, _ = instance_targets(labels)
    for label in (1, 2):
        mask = labels == label
        assert mask.sum() < 100
        rim = mask & ndimage.binary_dilation(~mask, CROSS)
        np.testing.assert_array_equal(classes[mask] == BOUNDARY, rim[mask])
        assert (classes[mask] == INTERIOR).sum() > 0


def test_weights_are_high_in_a_narrow_gap_and_one_far_away():
    labels = np.zeros((40, 60), np.int32)
    labels[10:30, 10:20] = 1
    labels[10:30, 22:32] = 2  # columns 20 and 21 form a 2-px gap
    classes, weights = instance_targets(labels, gap_weight=5.0, gap_width=3.0)
    gap = weights[12:28, 20:22]
    np.testing.assert_allclose(gap, 6.0)  # 1 + gap_weight
    assert weights[0, 59] == 1.0 and weights[39, 45] == 1.0
    # Next to one object only (outside the gap) the weight stays 1.
    assert weights[20, 8] == 1.0 and weights[20, 34] == 1.0
    # Boundary pixels get half the gap weight, interior pixels none.
    np.testing.assert_allclose(weights[classes == BOUNDARY], 3.5)
    np.testing.assert_allclose(weights[classes == INTERIOR], 1.0)


def test_a_wider_gap_than_gap_width_is_not_weighted():
    labels = np.zeros((30, 60), np.int32)
    labels[5:25, 5:15] = 1
    labels[5:25, 25:35] = 2  # a 10-px gap, far more than twice gap_width
    _, weights = instance_targets(labels, gap_width=3.0)
    np.testing.assert_allclose(weights[5:25, 15:25], 1.0)


def test_empty_and_full_label_images():
    classes, weights = instance_targets(np.zeros((16, 16), np.int32))
    assert not classes.any()
    np.testing.assert_array_equal(weights, 1.0)
    classes, weights = instance_targets(np.ones((16, 16), np.int32))
    assert set(np.unique(classes)) <= {INTERIOR, BOUNDARY}
    assert np.isfinite(weights).all()
