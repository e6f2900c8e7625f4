"""Training on colour: channels-first pairs, aligned augmented batches, a tiny run that learns."""

import numpy as np
import pytest
import tifffile
import torch
from scipy import ndimage

from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.segment import segment_normalised
from napari_segnet.metrics import evaluate
from napari_segnet.models import ModelConfig, create_model, load_model, save_model
from napari_segnet.progress import drain
from napari_segnet.training.data import (
    AugmentedSampler,
    Pair,
    load_pairs,
    make_pair,
    size_normalised,
    split_pairs,
    zoomed,
)
from napari_segnet.training.loop import TrainSettings, iter_train
from napari_segnet.training.session import model_and_pairs

SETTINGS = TrainSettings(epochs=2, steps_per_epoch=40, batch_size=4, crop=64, seed=0)


def coloured(labels, seed=0):
    """Purple nuclei on a pink background with a little stain variation, as in H&E."""
    rng = np.random.default_rng(seed)
    inside = ndimage.gaussian_filter((labels > 0).astype(float), 1.0)[..., None]
    background = np.array([235.0, 195.0, 220.0]) + rng.normal(0, 8, 3)
    nucleus = np.array([90.0, 55.0, 150.0]) + rng.normal(0, 8, 3)
    rgb = background + inside * (nucleus - background) + rng.normal(0, 8, (*labels.shape, 3))
    return rgb.clip(0, 255).astype(np.uint8)


@pytest.fixture
def colour_pairs(nuclei_pairs):
    return [(coloured(labels, seed), labels) for seed, (_, labels) in enumerate(nuclei_pairs)]


def test_pairs_for_a_colour_network_are_channels_first(colour_pairs, nuclei_pairs):
    rgb, labels = colour_pairs[0]
    pair = make_pair(rgb, labels, name="a", channels=3)
    assert pair.image.shape == (3, *labels.shape) and pair.image.dtype == np.float32
    np.testing.assert_array_equal(pair.image, normalise(rgb, channels=3))
    grey, labels = nuclei_pairs[0]
    pair = make_pair(grey, labels, channels=3)
    assert pair.image.shape == (3, *labels.shape)
    np.testing.assert_array_equal(pair.image[2], make_pair(grey, labels).image)


def test_colour_pairs_load_from_folders(colour_pairs, tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    for n, (rgb, labels) in enumerate(colour_pairs[:2]):
        tifffile.imwrite(tmp_path / "images" / f"p{n}.tif", rgb, photometric="rgb")
        tifffile.imwrite(tmp_path / "masks" / f"p{n}.tif", labels)
    pairs = load_pairs(tmp_path / "images", tmp_path / "masks", channels=3)
    assert [p.image.shape for p in pairs] == [(3, 96, 96)] * 2
    np.testing.assert_array_equal(pairs[0].image, normalise(colour_pairs[0][0], channels=3))
    grey = load_pairs(tmp_path / "images", tmp_path / "masks")
    assert grey[0].image.shape == (96, 96)


def test_splitting_and_zooming_cut_the_last_two_axes(colour_pairs):
    pairs = [
        make_pair(rgb, labels, name=f"p{n}", channels=3)
        for n, (rgb, labels) in enumerate(colour_pairs)
    ]
    wide = [make_pair(rgb[:60], labels[:60], channels=3) for rgb, labels in colour_pairs[:2]]
    train, validation = split_pairs(wide, 0.25)  # too few images: a part of each
    for part in train + validation:
        assert part.image.shape == (3, *part.labels.shape)
    assert train[0].labels.shape == (60, 72) and validation[0].labels.shape == (60, 24)
    np.testing.assert_array_equal(train[0].image, wide[0].image[:, :, :72])
    np.testing.assert_array_equal(validation[1].image, wide[1].image[:, :, 72:])
    train, validation = split_pairs(pairs, 0.25)  # whole images
    assert all(p.image.shape == (3, 96, 96) for p in train + validation)
    bigger = zoomed(pairs[0], 1.5)
    assert bigger.image.shape == (3, 144, 144) and bigger.labels.shape == (144, 144)
    one = zoomed(Pair(pairs[0].image[1], pairs[0].labels), 1.5)
    np.testing.assert_array_equal(bigger.image[1], one.image)  # each channel as a plane
    (sized,) = size_normalised(pairs[:1], 30.0)
    assert sized.image.shape[0] == 3 and sized.image.shape[1:] == sized.labels.shape


def test_augmented_colour_crops_stay_aligned_with_their_targets():
    labels = np.zeros((80, 90), np.int32)
    labels[10:30, 15:40], labels[50:75, 55:85] = 1, 2
    inside = (labels > 0).astype(np.float32)
    # R marks the objects, G the background, B the column: every turn and flip shows.
    columns = np.broadcast_to(np.linspace(0, 1, 90, dtype=np.float32), labels.shape)
    image = np.stack([inside, 1 - inside, columns])
    sampler = AugmentedSampler([Pair(image, labels)], crop=64, scale_range=(1, 1), seed=3)
    for _ in range(8):
        crop, crop_labels = sampler._crop(0)
        assert crop.shape == (3, 64, 64) and crop_labels.shape == (64, 64)
        np.testing.assert_array_equal(crop[0], (crop_labels > 0).astype(np.float32))
        np.testing.assert_array_equal(crop[1], 1 - crop[0])
    zooming = AugmentedSampler([Pair(image, labels)], crop=64, seed=5, star_rays=8)
    images, classes, weights, star_prob, _ = zooming.sample(6)
    assert images.shape == (6, 3, 64, 64) and images.dtype == np.float32
    assert classes.shape == weights.shape == star_prob.shape == (6, 64, 64)
    # Brightness and contrast are jittered together: objects stay bright in R, dark in G.
    foreground = classes > 0
    assert images[:, 0][foreground].mean() > images[:, 0][~foreground].mean() + 0.3
    assert images[:, 1][foreground].mean() < images[:, 1][~foreground].mean() - 0.3


def test_one_channel_batches_keep_their_shape(nuclei_pairs):
    pairs = [make_pair(image, labels) for image, labels in nuclei_pairs[:2]]
    images, classes, _ = AugmentedSampler(pairs, crop=64, seed=0).sample(3)
    assert images.shape == (3, 1, 64, 64) and classes.shape == (3, 64, 64)


def ap50(model, pairs):
    predictions = [drain(segment_normalised(model, p.image, tile=128))[0] for p in pairs]
    return evaluate([p.labels for p in pairs], predictions)["pooled"][0.5]["ap"]


def test_a_colour_network_learns_coloured_nuclei(colour_pairs, tmp_path):
    torch.manual_seed(0)
    pairs = [
        make_pair(rgb, labels, name=str(n), channels=3)
        for n, (rgb, labels) in enumerate(colour_pairs)
    ]
    train, validation = pairs[:4], pairs[4:]
    model = create_model(ModelConfig(in_channels=3))
    before = ap50(model.eval(), validation)
    out = tmp_path / "colour.safetensors"
    events = list(iter_train(model, train, validation, SETTINGS, out=out))
    losses = [e.info["loss"] for e in events if e.stage == "training"]
    assert len(losses) == 80 and np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.8 * np.mean(losses[:10])
    trained, _ = load_model(out)
    assert trained.config.in_channels == 3
    after = ap50(trained, validation)
    assert after > 0.5 and after > before


def test_training_refuses_pairs_made_for_another_number_of_channels(colour_pairs, tmp_path):
    grey_pairs = [make_pair(rgb, labels) for rgb, labels in colour_pairs[:2]]
    with pytest.raises(
        ValueError, match=r"reads 3 channel.* have 1: make the pairs with channels=3"
    ):
        next(
            iter_train(
                create_model(ModelConfig(in_channels=3)),
                grey_pairs,
                [],
                SETTINGS,
                out=tmp_path / "m.safetensors",
            )
        )


def test_fine_tuning_a_colour_model_loads_colour_pairs(colour_pairs, tmp_path):
    start = tmp_path / "colour.safetensors"
    save_model(create_model(ModelConfig(in_channels=3, object_diameter_px=15.0)), start)
    asked = []

    def load(percentiles, channels):
        asked.append(channels)
        return [make_pair(rgb, labels, channels=channels) for rgb, labels in colour_pairs[:2]]

    model, pairs = model_and_pairs(start, load)
    assert asked == [3] and model.config.in_channels == 3
    assert pairs[0].image.shape == (3, 96, 96)
    model_and_pairs(None, load)  # a new network reads one channel
    assert asked == [3, 1]
