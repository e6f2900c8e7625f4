"""Training data: folder pairing, the validation split and the augmented sampler."""

import math
import random

import numpy as np
import pytest
import tifffile

from napari_segnet.training.data import (
    AugmentedSampler,
    Pair,
    load_pairs,
    make_pair,
    median_diameter,
    size_normalised,
    split_pairs,
    split_validation,
)

# --- split_validation ------------------------------------------------------------------------


def names_and_groups():
    names = [f"a_{i:02d}" for i in range(20)] + [f"b_{i}" for i in range(7)] + ["c_only"]
    groups = ["a"] * 20 + ["b"] * 7 + ["c"]
    return names, groups


def test_split_is_stratified_with_at_least_one_per_group():
    names, groups = names_and_groups()
    held = split_validation(names, 0.2, groups=groups)
    assert held <= set(names)
    by_group = {g: sum(1 for n, gg in zip(names, groups) if gg == g and n in held) for g in "abc"}
    assert by_group == {"a": math.ceil(0.2 * 20), "b": math.ceil(0.2 * 7), "c": 1}
    # A tiny fraction still holds out one image of every group.
    held = split_validation(names, 0.001, groups=groups)
    assert len(held) == 3
    assert {groups[names.index(n)] for n in held} == {"a", "b", "c"}


def test_split_does_not_depend_on_the_order_of_the_files():
    names, groups = names_and_groups()
    reference = split_validation(names, 0.25, groups=groups)
    pairs = list(zip(names, groups))
    for seed in range(3):
        random.Random(seed).shuffle(pairs)
        shuffled_names, shuffled_groups = (list(x) for x in zip(*pairs))
        assert split_validation(shuffled_names, 0.25, groups=shuffled_groups) == reference


def test_split_without_groups_and_with_always():
    names = [f"img{i}" for i in range(10)]
    held = split_validation(names, 0.3)
    assert len(held) == 3
    held_always = split_validation(names, 0.3, always=("img7", "img8", "not_a_name"))
    assert held_always == held | {"img7", "img8"}
    assert "not_a_name" not in held_always
    # Adding names to one group does not reshuffle the choice in another.
    grouped = split_validation([*names, "x1", "x2"], 0.3, groups=["g"] * 10 + ["h"] * 2)
    assert {n for n in grouped if n.startswith("img")} == held


def test_split_rejects_groups_of_the_wrong_length():
    with pytest.raises(ValueError):
        split_validation(["a", "b"], 0.5, groups=["g"])


# --- AugmentedSampler ------------------------------------------------------------------------


def square_objects(shape=(64, 80), seed=0):
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.int32)
    for i, (y, x) in enumerate(rng.integers(0, np.array(shape) - 12, size=(6, 2)), start=1):
        labels[y : y + 12, x : x + 12] = i
    image = (labels > 0).astype(np.float32)  # bright objects: lets us check alignment
    return Pair(image, labels, name=f"p{seed}")


def test_sampler_shapes_types_and_classes():
    sampler = AugmentedSampler([square_objects(), square_objects(seed=1)], crop=32, seed=0)
    images, classes, weights = sampler.sample(5)
    assert images.shape == (5, 1, 32, 32) and images.dtype == np.float32
    assert classes.shape == (5, 32, 32) and classes.dtype == np.int64
    assert weights.shape == (5, 32, 32) and weights.dtype == np.float32
    assert set(np.unique(classes)) <= {0, 1, 2}
    assert (weights >= 1).all() and np.isfinite(images).all()


def test_sampler_keeps_images_and_targets_aligned():
    pairs = [square_objects((96, 96), seed=s) for s in range(3)]
    sampler = AugmentedSampler(pairs, crop=48, seed=3)
    images, classes, _ = sampler.sample(8)
    for image, target in zip(images[:, 0], classes):
        if 0 < (target > 0).sum() < target.size:
            assert image[target > 0].mean() > image[target == 0].mean() + 0.2


def test_sampler_is_deterministic_for_a_seed():
    pairs = [square_objects(seed=s) for s in range(3)]
    first = AugmentedSampler(pairs, crop=40, seed=11).sample(4)
    second = AugmentedSampler(pairs, crop=40, seed=11).sample(4)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = AugmentedSampler(pairs, crop=40, seed=12).sample(4)
    assert not np.array_equal(first[0], other[0])


def test_sampler_pads_images_smaller_than_the_crop():
    pair = square_objects((20, 15))
    images, classes, weights = AugmentedSampler([pair], crop=48, seed=0).sample(3)
    assert images.shape == (3, 1, 48, 48)
    assert classes.shape == weights.shape == (3, 48, 48)


def test_sampler_needs_pairs_and_respects_weights():
    with pytest.raises(ValueError):
        AugmentedSampler([])
    empty = Pair(np.zeros((32, 32), np.float32), np.zeros((32, 32), np.int32), "empty")
    sampler = AugmentedSampler([empty, square_objects((32, 32))], crop=32, weights=[1, 0], seed=0)
    _, classes, _ = sampler.sample(4)
    assert not classes.any()  # only the empty image can be drawn


def sparse_pair(size=400, seed=0):
    """One small bright object in a big empty image: random crops mostly miss it."""
    labels = np.zeros((size, size), np.int32)
    labels[300:312, 40:52] = 1
    return Pair((labels > 0).astype(np.float32), labels, name=f"sparse{seed}")


def test_object_centred_crops_hold_objects():
    pair = sparse_pair()
    fractions = {}
    for share in (0.0, 1.0):
        sampler = AugmentedSampler(
            [pair], crop=64, scale_range=(1, 1), seed=0, object_centred=share
        )
        _, classes, _ = sampler.sample(40)
        fractions[share] = np.mean([target.any() for target in classes])
    assert fractions[1.0] == 1.0  # the object lies in the middle half of every crop
    assert fractions[0.0] < 0.2
    # Without centring the draws are those of a sampler that has never heard of it.
    plain = AugmentedSampler([pair], crop=64, seed=5).sample(3)
    zero = AugmentedSampler([pair], crop=64, seed=5, object_centred=0.0).sample(3)
    for a, b in zip(plain, zero):
        np.testing.assert_array_equal(a, b)


def test_size_normalisation_gives_every_image_one_median_diameter():
    small, large = square_objects((64, 80), seed=0), square_objects((64, 80), seed=1)
    grow = np.ones((3, 3), np.int32)
    large = Pair(np.kron(large.image, grow).astype(np.float32), np.kron(large.labels, grow))
    assert median_diameter([small]) == pytest.approx(13.5, abs=0.1)  # 12 × 12 squares
    assert median_diameter([large]) == pytest.approx(40.6, abs=0.1)
    normalised = size_normalised([small, large], 20.0)
    for pair in normalised:
        assert median_diameter([pair]) == pytest.approx(20.0, rel=0.1)
        assert pair.image.shape == pair.labels.shape and pair.image.dtype == np.float32
        assert pair.image[pair.labels > 0].mean() > pair.image[pair.labels == 0].mean() + 0.5
    assert normalised[0].labels.shape == (95, 119)  # 64 × 80 zoomed by 20 / 13.5
    empty = Pair(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.int32))
    assert size_normalised([empty], 20.0)[0] is empty


# --- load_pairs ------------------------------------------------------------------------------


def write_folders(tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    rng = np.random.default_rng(0)
    written = {}
    for stem, image_name, mask_name in [
        ("a", "a.tif", "a.tif"),
        ("b", "b.tif", "b.tiff"),
        ("c", "c.ome.tif", "c.tif"),
    ]:
        labels = np.zeros((24, 32), np.uint16)
        labels[4:10, 5:12] = 1
        labels[12:20, 15:30] = 2
        # Fluorescence-like: dim noisy background, bright objects.
        image = (rng.integers(100, 200, size=(24, 32)) + 3000 * (labels > 0)).astype(np.uint16)
        tifffile.imwrite(images / image_name, image)
        tifffile.imwrite(masks / mask_name, labels)
        written[stem] = (image, labels)
    tifffile.imwrite(images / "only_image.tif", np.zeros((8, 8), np.uint8))
    tifffile.imwrite(masks / "only_mask.tif", np.zeros((8, 8), np.uint8))
    (images / "notes.txt").write_text("not an image")
    return images, masks, written


def test_load_pairs_matches_stems(tmp_path):
    images, masks, written = write_folders(tmp_path)
    pairs = load_pairs(images, masks)
    assert [p.name for p in pairs] == ["a", "b", "c"]
    for pair in pairs:
        image, labels = written[pair.name]
        np.testing.assert_array_equal(pair.labels, labels)
        assert pair.labels.dtype == np.int32
        assert pair.image.dtype == np.float32 and pair.image.shape == image.shape
        # Normalised (not inverted): an affine map of the raw pixels, percentiles at 0 and 1.
        assert np.corrcoef(pair.image.ravel(), image.ravel())[0, 1] > 0.9999
        low, high = np.percentile(pair.image, (1.0, 99.8))
        assert abs(low) < 1e-3 and abs(high - 1) < 1e-3


def test_load_pairs_errors(tmp_path):
    images, masks, _ = write_folders(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_pairs(tmp_path / "missing", masks)
    with pytest.raises(ValueError, match="does not exist"):
        load_pairs(images, tmp_path / "missing")
    elsewhere = tmp_path / "other"
    elsewhere.mkdir()
    tifffile.imwrite(elsewhere / "zzz.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="No image"):
        load_pairs(images, elsewhere)


def test_split_pairs_holds_out_whole_images_when_there_are_enough(nuclei_pairs):
    pairs = [make_pair(i, m, name=f"p{n}") for n, (i, m) in enumerate(nuclei_pairs)]  # six
    train, validation = split_pairs(pairs, 0.2)
    assert len(train) == 4 and len(validation) == 2  # ceil(0.2 × 6) whole images
    assert {p.name for p in train}.isdisjoint(p.name for p in validation)
    assert all(p.labels.shape == (96, 96) for p in train + validation)
    assert split_pairs(pairs, 0.0) == (pairs, [])


def test_split_pairs_holds_out_the_end_of_each_image_when_there_are_few():
    wide = make_pair(np.arange(100 * 200).reshape(100, 200), np.ones((100, 200), int), name="w")
    tall = make_pair(np.zeros((300, 50)), np.ones((300, 50), int), name="t")
    train, validation = split_pairs([wide, tall], 0.2)
    assert [p.labels.shape for p in train] == [(100, 160), (240, 50)]
    assert [p.labels.shape for p in validation] == [(100, 40), (60, 50)]
    assert np.array_equal(validation[0].image, wide.image[:, 160:])  # the last columns


def test_median_diameter_is_that_of_the_median_object(nuclei_pairs):
    labels = np.zeros((50, 50), int)
    labels[:10, :10], labels[20:30, 20:40], labels[40:, :40] = 1, 2, 3  # 100, 200, 400 px
    assert median_diameter([make_pair(np.zeros((50, 50)), labels)]) == pytest.approx(16.0, abs=0.1)
    assert median_diameter([make_pair(np.zeros((5, 5)), np.zeros((5, 5), int))]) is None
