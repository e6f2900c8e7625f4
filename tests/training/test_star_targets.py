"""Star-convex targets: ray distances and object probability of known shapes, exact under
flips and 90° rotations, and computed by the sampler on each augmented crop."""

import numpy as np
import pytest
from skimage.draw import disk

from napari_segnet.training.data import AugmentedSampler, Pair
from napari_segnet.training.star_targets import star_targets

RAYS = 32


def disks(shape=(64, 80)):
    labels = np.zeros(shape, np.int32)
    labels[disk((20, 24), 10, shape=shape)] = 1
    labels[disk((44, 56), 7, shape=shape)] = 2
    return labels


def test_targets_of_disks_have_their_radius_and_centre():
    labels = disks()
    prob, dist = star_targets(labels, RAYS)
    assert prob.shape == labels.shape and prob.dtype == np.float32
    assert dist.shape == (RAYS, *labels.shape) and dist.dtype == np.float32
    for centre, radius in (((20, 24), 10), ((44, 56), 7)):
        assert prob[centre] == pytest.approx(1.0)
        # Every ray from the centre ends at the rim: the radius, to within a pixel.
        np.testing.assert_allclose(dist[(slice(None), *centre)], radius, atol=1.0)
    assert (prob[labels == 0] == 0).all() and (dist[:, labels == 0] == 0).all()
    assert (prob[labels > 0] > 0).all() and (prob <= 1).all()


def test_ray_order_follows_the_contract():
    # A wide rectangle: ray 0 (+columns) and ray R/2 (−columns) are long, R/4 (+rows) short.
    labels = np.zeros((40, 60), np.int32)
    labels[15:25, 5:55] = 1
    _, dist = star_targets(labels, RAYS)
    at = (slice(None), 20, 30)
    assert dist[at][0] == pytest.approx(25, abs=1)
    assert dist[at][RAYS // 2] == pytest.approx(25, abs=1)
    assert dist[at][RAYS // 4] == pytest.approx(5, abs=1)
    assert dist[at][3 * RAYS // 4] == pytest.approx(5, abs=1)


def test_grid_reads_every_second_pixel():
    labels = disks((63, 80))  # an odd side: ceil(63 / 2) rows
    prob, dist = star_targets(labels, RAYS)
    prob2, dist2 = star_targets(labels, RAYS, grid=2)
    assert dist2.shape == (RAYS, 32, 40)
    np.testing.assert_array_equal(dist2, dist[:, ::2, ::2])
    np.testing.assert_array_equal(prob2, prob)


def permute_rays(dist, k, flip):
    """The rays after np.rot90(·, k) and then a left-right flip (research, power-of-two R)."""
    n, j = dist.shape[0], np.arange(dist.shape[0])
    dist = np.rot90(dist, k, axes=(1, 2))[(j + k * n // 4) % n]
    return dist[(n // 2 - j) % n, :, ::-1] if flip else dist


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("flip", [False, True])
def test_targets_of_a_rotated_or_flipped_crop_are_the_permuted_targets(k, flip):
    rng = np.random.default_rng(k)
    labels = np.zeros((48, 48), np.int32)
    for i in range(1, 7):  # overlapping ellipses: objects touching each other and the edge
        centre, radii = rng.integers(0, 48, 2), rng.integers(4, 14, 2)
        rows, columns = np.ogrid[:48, :48]
        inside = ((rows - centre[0]) / radii[0]) ** 2 + ((columns - centre[1]) / radii[1]) ** 2
        labels[inside <= 1] = i
    prob, dist = star_targets(labels, RAYS)
    moved = np.rot90(labels, k)
    moved = moved[:, ::-1] if flip else moved
    moved_prob, moved_dist = star_targets(np.ascontiguousarray(moved), RAYS)
    expected_prob = np.rot90(prob, k)
    expected_prob = expected_prob[:, ::-1] if flip else expected_prob
    # Equal to float32 rounding (sin and cos of the rotated angles), far below a pixel.
    np.testing.assert_allclose(moved_dist, permute_rays(dist, k, flip), atol=1e-4)
    np.testing.assert_allclose(moved_prob, expected_prob, atol=1e-6)


def test_without_stardist_one_sentence_says_how_to_install_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "stardist", None)  # as if it were not installed
    with pytest.raises(ValueError, match=r'pip install "napari-segnet\[star\]"') as error:
        star_targets(disks(), RAYS)
    assert isinstance(error.value, ImportError)


def test_labels_beyond_uint16_are_not_merged():
    labels = disks()
    big = np.where(labels == 2, 70_000 + 2, labels).astype(np.int64)  # 70002 wraps to 4466
    big[labels == 1] = 65_536 + 2  # would wrap onto 2 as well
    np.testing.assert_array_equal(star_targets(big, RAYS)[1], star_targets(labels, RAYS)[1])


def sample_pairs():
    rng = np.random.default_rng(0)
    pairs = []
    for seed in range(2):
        labels = np.zeros((96, 96), np.int32)
        for i, (y, x) in enumerate(rng.integers(10, 86, size=(6, 2)), start=1):
            labels[disk((y, x), 8, shape=labels.shape)] = i
        pairs.append(Pair((labels > 0).astype(np.float32), labels, name=f"p{seed}"))
    return pairs


def test_sampler_star_targets_belong_to_the_augmented_crop():
    pairs = sample_pairs()
    batch = AugmentedSampler(pairs, crop=48, seed=5, star_rays=RAYS, star_grid=2).sample(6)
    _, classes, _, prob, dist = batch
    assert prob.shape == (6, 48, 48) and dist.shape == (6, RAYS, 24, 24)
    assert prob.dtype == dist.dtype == np.float32
    for crop_classes, crop_prob, crop_dist in zip(classes, prob, dist):
        # Objects of the star targets are the objects of the 3-class targets of the same crop.
        np.testing.assert_array_equal(crop_prob > 0, crop_classes > 0)
        np.testing.assert_array_equal(crop_dist.max(axis=0) > 0, crop_classes[::2, ::2] > 0)


def test_star_targets_leave_the_sampling_unchanged():
    pairs = sample_pairs()
    plain = AugmentedSampler(pairs, crop=40, seed=11).sample(4)
    with_star = AugmentedSampler(pairs, crop=40, seed=11, star_rays=16).sample(4)
    assert len(plain) == 3 and len(with_star) == 5
    for a, b in zip(plain, with_star[:3]):
        np.testing.assert_array_equal(a, b)
    # The next batch too: the star targets draw no random numbers.
    sampler, star_sampler = (
        AugmentedSampler(pairs, crop=40, seed=11, star_rays=rays) for rays in (None, 16)
    )
    for _ in range(2):
        for a, b in zip(sampler.sample(3), star_sampler.sample(3)):
            np.testing.assert_array_equal(a, b)


# --- star_loss --------------------------------------------------------------------------------


def test_star_loss_weights_distance_errors_by_the_object_probability():
    import torch
    import torch.nn.functional as F

    from napari_segnet.training.losses import star_loss

    labels = disks()
    prob, dist = (torch.from_numpy(a)[None] for a in star_targets(labels, RAYS, grid=2))
    logits = torch.zeros(1, 1, *labels.shape)
    bce = F.binary_cross_entropy_with_logits(logits[:, 0], prob)
    full = torch.from_numpy(star_targets(labels, RAYS)[1])[None]
    # Right distances (read on the grid of the targets): only the probability term is left.
    assert star_loss(logits, full, prob, dist).item() == pytest.approx(bce.item(), rel=1e-6)
    # Wrong distances on the background do not count; wrong by 5 px inside costs 0.2 × 5.
    background = torch.from_numpy(labels == 0)
    assert star_loss(logits, full + 9 * background, prob, dist).item() == pytest.approx(
        bce.item(), rel=1e-6
    )
    assert star_loss(logits, full + 5, prob, dist).item() == pytest.approx(bce.item() + 1.0)
    with pytest.raises(ValueError, match="do not fit"):
        star_loss(logits, full, prob, dist[..., :-3])
