"""Colour input: networks that read R, G, B get colour as colour, grey as three equal channels."""

import numpy as np
import pytest
from scipy import ndimage
from test_diameter import nuclei
from test_stream import relabelling, streamed

from napari_segnet.inference.inspect import inspect_network
from napari_segnet.inference.normalise import (
    RGB_LUMINANCE,
    Normalisation,
    NormalisedView,
    normalisation_of,
    normalise,
)
from napari_segnet.inference.segment import SegmentSettings, segment, segment_normalised
from napari_segnet.inference.stream import plan_stream
from napari_segnet.inference.tiling import TiledPredictor, iter_predict_tiled
from napari_segnet.io import MicroscopyImage
from napari_segnet.models import ModelConfig, create_model
from napari_segnet.models.checkpoint import load_model
from napari_segnet.models.network import with_rgb_input
from napari_segnet.progress import drain


@pytest.fixture(scope="module")
def grey_model():
    return load_model("nuclei")[0].eval()


@pytest.fixture(scope="module")
def rgb_model(grey_model):
    return with_rgb_input(grey_model).eval()


def stained(labels, *, seed=0):
    """An H&E-like colour image of ``labels``: purple nuclei on a bright pink background."""
    rng = np.random.default_rng(seed)
    inside = ndimage.gaussian_filter((labels > 0).astype(float), 1.0)[..., None]
    background, nucleus = np.array([235.0, 200.0, 225.0]), np.array([80.0, 50.0, 140.0])
    rgb = background + inside * (nucleus - background) + rng.normal(0, 6, (*labels.shape, 3))
    return rgb.clip(0, 255).astype(np.uint8)


def luminance(planes):
    return np.tensordot(RGB_LUMINANCE.astype(np.float32), planes, axes=1)


# --- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize("invert", [None, False])
def test_colour_is_scaled_with_the_luminances_low_and_high_and_keeps_its_hue(invert):
    _, labels = nuclei((96, 112), 12)
    rgb = stained(labels)
    normalisation = normalisation_of(rgb, invert=invert, channels=3)
    planes = normalise(rgb, invert=invert, channels=3)
    assert planes.shape == (3, 96, 112) and planes.dtype == np.float32
    assert planes.flags.c_contiguous
    # One affine map for all three channels: the same low and high, the same inversion.
    low, high = normalisation.low, normalisation.high
    scaled = (np.moveaxis(rgb, -1, 0).astype(np.float64) - low) / (high - low)
    expected = 1 - scaled if normalisation.invert else scaled
    np.testing.assert_allclose(planes, expected, atol=1e-5)
    # The bright background makes it decide as the grey path does: inverted.
    grey = normalisation_of(rgb, invert=invert)
    assert (grey.low, grey.high, grey.invert) == (low, high, normalisation.invert)
    assert normalisation.invert is (invert is None)
    # Hue is kept: the luminance of the three planes is the one-channel plane.
    np.testing.assert_allclose(luminance(planes), normalise(rgb, invert=invert), atol=1e-5)
    # Channels keep their order relative to each other (pink background: red above green).
    background = labels == 0
    sign = -1 if normalisation.invert else 1
    assert (sign * (planes[0] - planes[1]))[background].mean() > 0.1


def test_a_grey_plane_is_the_same_normalised_plane_in_all_three_channels():
    image, _ = nuclei((80, 90), 10)
    one = normalise(image.data)
    three = normalise(image.data, channels=3)
    assert three.shape == (3, 80, 90) and three.dtype == np.float32
    for plane in three:
        np.testing.assert_array_equal(plane, one)


def test_rgba_drops_alpha_and_nans_become_zero():
    rng = np.random.default_rng(0)
    rgba = rng.uniform(0, 255, (20, 24, 4)).astype(np.float32)
    rgba[3, 4, 1] = np.nan
    normalisation = Normalisation(10.0, 210.0, False, 3)
    planes = normalisation.apply(rgba)
    assert planes.shape == (3, 20, 24) and np.isfinite(planes).all()
    expected = (np.moveaxis(np.nan_to_num(rgba[..., :3]), -1, 0) - 10.0) / 200.0
    np.testing.assert_allclose(planes, expected, atol=1e-6)


def test_only_one_or_three_channels_are_read():
    with pytest.raises(ValueError, match="one channel or three"):
        Normalisation(0.0, 1.0, False, 2)
    with pytest.raises(ValueError, match="one channel or three"):
        normalise(np.zeros((8, 8)), channels=4)


def test_a_normalised_view_reads_channels_first_regions():
    _, labels = nuclei((64, 72), 10)
    rgb = stained(labels)
    view = NormalisedView(rgb, normalisation_of(rgb, channels=3))
    assert view.shape == (3, 64, 72) and view.ndim == 3
    whole = normalise(rgb, channels=3)
    rows, columns = slice(5, 40), slice(10, 70)
    np.testing.assert_array_equal(view[..., rows, columns], whole[..., rows, columns])
    np.testing.assert_array_equal(view[rows, columns], whole[..., rows, columns])
    grey_view = NormalisedView(rgb, normalisation_of(rgb))
    assert grey_view.shape == (64, 72) and grey_view.ndim == 2
    np.testing.assert_allclose(
        grey_view[..., rows, columns], normalise(rgb)[rows, columns], atol=1e-6
    )


# --- prediction and segmentation ------------------------------------------------------------


def test_tiles_of_a_colour_plane_add_up_to_the_whole_plane(rgb_model):
    _, labels = nuclei((150, 170), 8)
    planes = normalise(stained(labels), channels=3)
    whole = drain(iter_predict_tiled(rgb_model, planes, tile=64, overlap=16, scale=2.3))
    predictor = TiledPredictor(
        rgb_model, lambda r, c: planes[..., r, c], planes.shape[-2:], tile=64, overlap=16, scale=2.3
    )
    rows, columns = slice(37, 101), slice(50, 170)
    window = drain(predictor.iter_window(rows, columns))
    assert whole["instance"].shape == (3, 150, 170)
    np.testing.assert_array_equal(window["instance"], whole["instance"][:, rows, columns])


def test_a_network_refuses_another_number_of_channels_in_one_sentence(grey_model, rgb_model):
    plane = np.zeros((64, 64), np.float32)
    with pytest.raises(ValueError, match=r"reads 3 channel.*given 1"):
        drain(segment_normalised(rgb_model, plane))
    with pytest.raises(ValueError, match=r"reads 1 channel.*given 3"):
        drain(segment_normalised(grey_model, np.stack([plane] * 3)))


@pytest.mark.parametrize(
    "settings",
    [SegmentSettings(diameter=8.0), SegmentSettings()],
    ids=["zoom-given", "auto"],
)
def test_a_colour_network_segments_colour_and_grey_images_at_a_zoom(
    grey_model, rgb_model, settings
):
    grey, truth = nuclei((150, 170), 8)
    colour = MicroscopyImage(stained(truth), "YXS")
    result = segment(colour, rgb_model, settings)
    assert result.scale > 2 and result.labels.shape == truth.shape
    assert result.labels.max() == pytest.approx(truth.max(), rel=0.1)
    # A grey image goes in as three equal channels: what the grey network saw.
    from_grey = segment(grey, rgb_model, settings)
    assert from_grey.labels.shape == truth.shape
    expected = segment(grey, grey_model, settings)
    assert from_grey.scale == pytest.approx(expected.scale)
    assert len(relabelling(expected.labels, from_grey.labels)) == expected.labels.max()


@pytest.mark.parametrize(
    "settings",
    [SegmentSettings(diameter=8.0), SegmentSettings()],
    ids=["zoom-given", "auto"],
)
def test_colour_blocks_give_the_whole_images_objects(rgb_model, tmp_path, settings):
    _, truth = nuclei((150, 170), 8)
    image = MicroscopyImage(stained(truth), "YXS")
    whole = segment(image, rgb_model, settings)
    labels, table, summary = streamed(
        image, rgb_model, tmp_path, block=64, halo=None, settings=settings
    )
    assert labels.shape == truth.shape
    assert summary.blocks > 4 and summary.oversized == 0
    assert summary.scale == pytest.approx(whole.scale)
    mapping = relabelling(whole.labels, labels)
    assert len(mapping) == whole.labels.max() == len(table)


def test_the_stream_reads_a_colour_plane_as_the_network_does(rgb_model):
    _, truth = nuclei((96, 100), 8)
    rgb = stained(truth)
    plan = plan_stream(MicroscopyImage(rgb, "YXS"), rgb_model, SegmentSettings(diameter=None))
    view = plan.source.normalised_plane()
    assert view.shape == (3, 96, 100) and view.ndim == 3
    np.testing.assert_array_equal(
        view[..., 10:50, 20:90], normalise(rgb, channels=3)[..., 10:50, 20:90]
    )


def test_test_time_augmentation_turns_colour_planes(rgb_model):
    _, truth = nuclei((64, 80), 16)
    planes = normalise(stained(truth), channels=3)
    outputs = drain(iter_predict_tiled(rgb_model, planes, views=8, tile=64))
    assert outputs["instance"].shape == (3, 64, 80)
    np.testing.assert_allclose(outputs["instance"].sum(0), 1.0, atol=1e-5)


def test_inspecting_a_colour_network_shows_the_luminance_of_its_input():
    model = create_model(ModelConfig(in_channels=3, full_resolution_channels=8)).eval()
    _, truth = nuclei((64, 72), 12)
    rgb = stained(truth)
    planes = normalise(rgb, channels=3)
    inspection = inspect_network(model, planes, channels=2)
    assert inspection.probabilities.shape == (3, 64, 72)
    np.testing.assert_allclose(inspection.image, normalise(rgb), atol=1e-5)
    # A grey plane is given in all three channels.
    grey = normalise(rgb)
    from_grey = inspect_network(model, grey, channels=2)
    np.testing.assert_array_equal(from_grey.image, grey)
    assert from_grey.probabilities.shape == (3, 64, 72)
