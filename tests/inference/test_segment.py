"""The segmentation pipeline on images with channels, Z and T axes, and cancelling it."""

import numpy as np
import pytest

from napari_segnet.inference.segment import SegmentSettings, iter_segment, segment
from napari_segnet.io import MicroscopyImage
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain


@pytest.fixture(scope="module")
def model():
    return load_model(bundled_model_path("nuclei"))[0]


def image_of(data, axes, names=(), pixel_size=None):
    return MicroscopyImage(
        data=data, axes=axes, channel_names=tuple(names), pixel_size=pixel_size or {}
    )


def test_dna_channel_is_chosen_by_name(model, nuclei_pairs):
    image, labels = nuclei_pairs[0]
    noise = np.random.default_rng(0).integers(0, 255, image.shape, dtype=np.uint8)
    stack = image_of(np.stack([noise, image]), "CYX", ["Actin", "Hoechst"])
    result = segment(stack, model)
    assert result.channel == 1 and result.axes == "YX"
    assert result.labels.shape == image.shape
    assert result.labels.max() >= labels.max() - 2


def test_time_series_labels_are_unique_across_frames(model, nuclei_pairs):
    frames = np.stack([nuclei_pairs[0][0], nuclei_pairs[1][0]])
    result = segment(image_of(frames, "TYX"), model)
    assert result.axes == "TYX"
    first, second = set(np.unique(result.labels[0])) - {0}, set(np.unique(result.labels[1])) - {0}
    assert first and second and not first & second


def test_z_stack_objects_are_linked_through_planes(model, nuclei_pairs):
    plane = nuclei_pairs[0][0]
    result = segment(image_of(np.stack([plane] * 3), "ZYX"), model)
    per_plane = [len(np.unique(result.labels[z])) - 1 for z in range(3)]
    assert per_plane[0] > 0
    assert len(np.unique(result.labels)) - 1 == per_plane[0]  # one 3-D object per nucleus
    np.testing.assert_array_equal(result.labels[0], result.labels[2])
    unlinked = segment(image_of(np.stack([plane] * 3), "ZYX"), model, SegmentSettings(link_z=False))
    assert len(np.unique(unlinked.labels)) - 1 == 3 * per_plane[0]


def test_all_zero_and_nan_images_are_valid(model):
    assert segment(image_of(np.zeros((64, 80), np.uint16), "YX"), model).labels.max() == 0
    data = np.full((64, 80), np.nan, np.float32)
    assert segment(image_of(data, "YX"), model).labels.max() == 0


def test_rescaling_to_the_training_size_keeps_the_image_shape(model, nuclei_pairs):
    image, _ = nuclei_pairs[0]
    calibrated = image_of(image, "YX", pixel_size={"Y": 0.5, "X": 0.5})
    result = segment(calibrated, model, SegmentSettings(diameter=8.0, diameter_unit="um"))
    assert result.labels.shape == image.shape
    with pytest.raises(ValueError, match="calibrated"):
        segment(image_of(image, "YX"), model, SegmentSettings(diameter=8.0, diameter_unit="um"))


def test_cancel_stops_the_generator(model, nuclei_pairs):
    frames = np.stack([nuclei_pairs[i][0] for i in range(4)])
    seen = []

    def cancel_after_first(event):
        seen.append(event)
        return False

    with pytest.raises(InterruptedError):
        drain(iter_segment(image_of(frames, "TYX"), model), cancel_after_first)
    assert len(seen) == 1 and seen[0].total == 4000


def test_bundled_model_on_the_held_out_sample(model):
    """The shipped model on the bundled sample, held out from its training (docs/models.md)."""
    from napari_segnet.data import sample_path
    from napari_segnet.io import read_image
    from napari_segnet.metrics import evaluate

    result = segment(read_image(sample_path("nuclei_2ch")), model)
    truth = read_image(sample_path("nuclei_labels")).data
    assert result.channel == 0  # the DAPI channel
    assert evaluate([truth], [result.labels])["pooled"][0.5]["ap"] >= 0.85  # measured: 0.898
