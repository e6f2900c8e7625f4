"""Segmenting with a star-head model: its outputs, rescaled distances, and the instance methods."""

import numpy as np
import pytest
import torch
from torch import nn

from napari_segnet.inference.segment import (
    BYTES_PER_PIXEL,
    PlaneTooLargeError,
    SegmentSettings,
    bytes_per_pixel,
    check_plane_fits,
    make_instances,
    segment,
    segment_normalised,
)
from napari_segnet.io import MicroscopyImage
from napari_segnet.models import ModelConfig, create_model
from napari_segnet.postprocess import InstanceSettings, probabilities_to_instances
from napari_segnet.progress import drain

STAR = ("classes", "star")


class ConstantStarModel(nn.Module):
    """Every ray is 6 px long everywhere; the classes and probability follow the image."""

    size_multiple = 16

    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        rays = torch.full((x.shape[0], 8, *x.shape[-2:]), 6.0) * self.gain
        classes = torch.cat([-8 * x, 8 * x, 0 * x], dim=1)
        return {"instance": classes, "star_prob": 8 * x - 4, "star_dist": rays}


@pytest.mark.parametrize("scale", [1.0, 2.0, 0.5])
def test_distances_are_in_the_planes_pixels_when_it_is_zoomed(scale):
    plane = np.random.default_rng(0).random((60, 76), dtype=np.float32)
    labels, outputs = drain(segment_normalised(ConstantStarModel().eval(), plane, scale=scale))
    assert labels.shape == plane.shape
    assert outputs["instance"].shape == (3, *plane.shape)
    assert outputs["star_prob"].shape == plane.shape
    assert outputs["star_dist"].shape == (8, *plane.shape)
    # 6 px in the network's zoomed plane are 6 / scale px in the plane itself.
    np.testing.assert_allclose(outputs["star_dist"], 6.0 / scale, rtol=1e-5)


def star_model(method: str):
    """A random compact star network whose every pixel proposes a polygon of about 4 px."""
    torch.manual_seed(0)
    config = ModelConfig(heads=STAR, star_rays=16, instance_method=method)
    model = create_model(config)
    with torch.no_grad():
        model.star.prob.bias.fill_(3.0)
        model.star.dist.weight.mul_(0.1)
        model.star.dist.bias.fill_(4.0)
    return model.eval()


@pytest.mark.parametrize("method", ["star", "star_seeds"])
def test_a_star_method_makes_labels_of_the_planes_shape(method, nuclei_pairs):
    image, _ = nuclei_pairs[0]
    model = star_model(method)
    result = segment(MicroscopyImage(data=image, axes="YX"), model)
    assert result.labels.shape == image.shape
    assert result.labels.dtype in (np.uint16, np.uint32)
    if method == "star":  # every pixel proposes a polygon: some survive the suppression
        assert result.labels.max() > 1
    # A Z-stack and a rescaled plane go the same way.
    stack = np.stack([image, image[::-1]])
    zoomed = segment(MicroscopyImage(data=stack, axes="ZYX"), model, SegmentSettings(diameter=10.0))
    assert zoomed.labels.shape == stack.shape


def test_star_polygons_are_what_the_postprocess_draws(nuclei_pairs):
    from napari_segnet.inference.normalise import normalise
    from napari_segnet.postprocess.star import StarSettings, star_to_instances

    image, _ = nuclei_pairs[1]
    model = star_model("star")
    plane = normalise(image, model.config.normalise_percentiles)
    settings = StarSettings(prob_threshold=0.6, nms_threshold=0.3)
    labels, outputs = drain(segment_normalised(model, plane, star_settings=settings))
    expected = star_to_instances(outputs["star_prob"], outputs["star_dist"], settings)
    np.testing.assert_array_equal(labels, expected)


def test_a_star_model_with_the_watershed_method_labels_as_before(nuclei_pairs):
    from napari_segnet.inference.normalise import normalise

    image, _ = nuclei_pairs[2]
    model = star_model("watershed")
    plane = normalise(image, model.config.normalise_percentiles)
    settings = InstanceSettings(foreground_threshold=0.3)
    labels, outputs = drain(segment_normalised(model, plane, instance_settings=settings))
    assert set(outputs) == {"instance", "star_prob", "star_dist"}
    np.testing.assert_array_equal(labels, probabilities_to_instances(outputs["instance"], settings))


def test_a_star_method_without_star_outputs_is_refused():
    outputs = {"instance": np.full((3, 8, 8), 1 / 3, np.float32)}
    with pytest.raises(ValueError, match="star head"):
        make_instances(outputs, "star")
    with pytest.raises(ValueError, match="instance method"):
        make_instances(outputs, "polygons")


def test_the_memory_check_counts_the_star_maps():
    assert bytes_per_pixel(ModelConfig()) == BYTES_PER_PIXEL
    star = bytes_per_pixel(ModelConfig(heads=STAR, star_rays=32))
    assert star > bytes_per_pixel(ModelConfig(heads=STAR, star_rays=8)) > BYTES_PER_PIXEL
    from napari_segnet.io.limits import memory_budget

    # A plane that fits without the star head but not with it.
    pixels = int(memory_budget() / (BYTES_PER_PIXEL + star) * 2)
    side = int(np.sqrt(pixels))
    check_plane_fits((side, side), 1.0, BYTES_PER_PIXEL)
    with pytest.raises(PlaneTooLargeError, match="memory"):
        check_plane_fits((side, side), 1.0, star)
