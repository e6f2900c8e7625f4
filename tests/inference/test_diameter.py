"""Automatic object size: the diameter measured, and labels on the input's grid at any zoom."""

import numpy as np
import pytest
from scipy import ndimage
from skimage.draw import disk

from napari_segnet.inference.diameter import AUTO, iter_estimate_diameter, zoom_for
from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.segment import (
    SegmentSettings,
    rescale_factor,
    segment,
    segment_normalised,
)
from napari_segnet.io import MicroscopyImage
from napari_segnet.models.checkpoint import load_model
from napari_segnet.progress import drain


@pytest.fixture(scope="module")
def model():
    return load_model("nuclei")[0].eval()


def nuclei(shape, diameter, *, seed=0, spacing=1.8):
    """Bright blurred disks of ``diameter`` pixels on a grid, with noise; and their labels.

    The edge blur grows with the disks, as it does when the same nuclei are imaged
    at a higher magnification.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint16)
    step = diameter * spacing
    for n, (y, x) in enumerate(
        (
            (y, x)
            for y in np.arange(step / 2, shape[0] - diameter / 2, step)
            for x in np.arange(step / 2, shape[1] - diameter / 2, step)
        ),
        1,
    ):
        y, x = (v + rng.uniform(-0.2, 0.2) * diameter for v in (y, x))
        labels[disk((y, x), diameter / 2, shape=shape)] = n
    blurred = ndimage.gaussian_filter((labels > 0) * 150.0, max(1.0, diameter / 16))
    image = (blurred + rng.normal(20, 5, shape)).clip(0, 255).astype(np.uint8)
    return MicroscopyImage(image, "YX"), labels


@pytest.mark.parametrize(("diameter", "side"), [(8, 160), (17, 256), (40, 512)])
def test_the_estimated_diameter_is_within_15_percent(model, diameter, side):
    image, _ = nuclei((side, side), diameter)
    estimate = drain(iter_estimate_diameter(model, normalise(image.data)))
    assert estimate.diameter == pytest.approx(diameter, rel=0.15)
    assert estimate.objects >= 20
    assert estimate.scale == pytest.approx(zoom_for(model, estimate.diameter), rel=0.01)
    trained = model.config.object_diameter_px
    if abs(np.log(trained / diameter)) > np.log(model.config.object_diameter_tolerance):
        assert estimate.scale == pytest.approx(trained / diameter, rel=0.15)
    else:
        assert estimate.scale == 1.0


def test_no_objects_means_no_rescaling(model):
    plane = np.zeros((96, 96), np.float32)
    estimate = drain(iter_estimate_diameter(model, plane))
    assert estimate.diameter is None and estimate.scale == 1.0
    assert "not rescaled" in estimate.describe()


@pytest.mark.parametrize("scale", [0.37, 2.3])
@pytest.mark.parametrize("shape", [(301, 257), (64, 80)])
def test_labels_and_outputs_have_the_planes_shape_at_any_zoom(model, shape, scale):
    plane = normalise(nuclei(shape, 10 / scale)[0].data)
    labels, outputs = drain(segment_normalised(model, plane, scale=scale, tile=128))
    assert labels.shape == shape
    assert outputs["instance"].shape == (3, *shape)
    assert labels.max() > 0


def test_a_small_image_needing_no_rescaling_is_segmented_once(model, monkeypatch):
    image, _ = nuclei((200, 220), 19)
    as_it_is = segment(image, model, SegmentSettings(diameter=None))

    import napari_segnet.inference.plane as plane
    import napari_segnet.inference.segment as engine

    passes = []
    original = plane.segment_normalised

    def counted(*args, **kwargs):
        passes.append(kwargs.get("scale", 1.0))
        return original(*args, **kwargs)

    # Every pass of the network over a plane: the estimate's, and the image's own.
    monkeypatch.setattr(plane, "segment_normalised", counted)
    monkeypatch.setattr(engine, "segment_normalised", counted)
    result = segment(image, model)  # "auto": the estimate's first pass is the result
    assert result.scale == 1.0 and result.diameter_estimate is not None
    assert result.diameter_estimate.first_pass is not None
    assert passes == [1.0, 0.5]  # once as it is, and the cheap check at half the zoom
    assert np.array_equal(result.labels, as_it_is.labels)


def test_a_given_diameter_gives_the_zoom_and_auto_is_not_computed_there(model):
    image, _ = nuclei((64, 64), 10)
    trained = model.config.object_diameter_px
    assert rescale_factor(model, image, SegmentSettings(diameter=10)) == trained / 10
    assert rescale_factor(model, image, SegmentSettings(diameter=None)) == 1.0
    with pytest.raises(ValueError, match="measured on the image"):
        rescale_factor(model, image, SegmentSettings(diameter=AUTO))


def test_small_nuclei_are_found_at_their_size_when_auto_rescales(model):
    image, truth = nuclei((160, 176), 8)
    result = segment(image, model)
    assert result.scale > 2 and result.labels.shape == truth.shape
    assert result.labels.max() == pytest.approx(truth.max(), rel=0.1)
    assert "zoom" in result.diameter_estimate.describe()


def test_a_model_without_a_training_size_is_never_measured_nor_rescaled():
    import dataclasses

    from napari_segnet.inference.segment import SegmentSettings, segment
    from napari_segnet.io import MicroscopyImage
    from napari_segnet.models.checkpoint import load_model

    model, _ = load_model("nuclei")
    model.config = dataclasses.replace(model.config, object_diameter_px=None)
    image = MicroscopyImage(np.random.default_rng(0).random((64, 80)).astype(np.float32), "YX")
    result = segment(image, model, SegmentSettings())
    assert result.scale == 1.0 and result.diameter_estimate is None
    assert result.labels.shape == (64, 80)


@pytest.mark.parametrize("diameter", [60, 80])
def test_nuclei_far_larger_than_the_models_are_measured_whole(model, diameter):
    """Sharp-edged nuclei 3–4 × the model's size break into pieces at zoom 1; at half the
    zoom they are whole, and the estimate comes from there."""
    rng = np.random.default_rng(1)
    rows, columns = np.mgrid[:700, :700]
    labels = np.zeros((700, 700), np.uint16)
    for _ in range(400):
        y, x = rng.uniform(diameter / 2, 700 - diameter / 2, 2)
        inside = (rows - y) ** 2 + (columns - x) ** 2 < (diameter / 2) ** 2
        if not labels[inside].any():
            labels[inside] = labels.max() + 1
    image = ((labels > 0) * 900 + rng.normal(100, 10, labels.shape)).astype(np.uint16)
    result = segment(MicroscopyImage(image, "YX"), model)
    assert result.diameter_estimate.diameter == pytest.approx(diameter, rel=0.15)
    assert result.labels.max() == pytest.approx(labels.max(), abs=2)
