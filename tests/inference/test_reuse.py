"""Kept network outputs make exactly the labels of a full run with new thresholds."""

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.draw import disk

from napari_segnet.inference.reuse import NetworkOutputs, network_settings
from napari_segnet.inference.segment import SegmentSettings, iter_segment
from napari_segnet.io import MicroscopyImage
from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.postprocess import InstanceSettings, StarSettings
from napari_segnet.progress import drain

LOOSE = InstanceSettings(seed_threshold=0.4, foreground_threshold=0.35, min_size=5)
STRICT = InstanceSettings(seed_threshold=0.8, foreground_threshold=0.6, min_size=60)


@pytest.fixture(scope="module")
def model():
    return load_model(bundled_model_path("nuclei"))[0]


class NetworkCalls:
    """Count the network's forward passes (a forward hook on the real model)."""

    def __init__(self, model):
        self.count = 0
        self._handle = model.register_forward_pre_hook(self._seen)

    def _seen(self, module, inputs):
        self.count += 1

    def remove(self):
        self._handle.remove()


def small_nuclei(shape, diameter, seed=3):
    """Blurred disks of ``diameter`` pixels on a grid, with noise: a zoom other than 1."""
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, bool)
    step = int(diameter * 1.8)
    for y in range(step // 2, shape[0] - diameter, step):
        for x in range(step // 2, shape[1] - diameter, step):
            mask[disk((y + rng.integers(-1, 2), x), diameter / 2, shape=shape)] = True
    blurred = ndimage.gaussian_filter(mask * 150.0, 1.0)
    return (blurred + rng.normal(20, 5, shape)).clip(0, 255).astype(np.uint8)


def run(image, model, settings, **kwargs):
    return drain(iter_segment(image, model, settings, keep_probabilities=True, **kwargs))


def assert_reuse_is_a_full_run(image, model, settings, new_thresholds):
    """Segment, change the thresholds, reuse: the labels of a full run, without the network."""
    first = run(image, model, settings)
    changed = replace(settings, **new_thresholds)
    calls = NetworkCalls(model)
    try:
        again = run(image, model, changed, reuse=first.outputs)
    finally:
        calls.remove()
    assert calls.count == 0
    full = run(image, model, changed)
    assert full.scale == again.scale == first.scale
    np.testing.assert_array_equal(again.labels, full.labels)
    np.testing.assert_array_equal(again.probabilities, full.probabilities)
    assert not np.array_equal(again.labels, first.labels)  # the thresholds did change them
    return first, again


def test_new_thresholds_on_kept_outputs_equal_a_full_run(model, nuclei_pairs):
    image = MicroscopyImage(nuclei_pairs[0][0], "YX")
    settings = SegmentSettings(diameter=None, instances=LOOSE)
    first, _ = assert_reuse_is_a_full_run(image, model, settings, {"instances": STRICT})
    assert first.outputs.stack_shape == () and len(first.outputs.planes) == 1
    assert first.outputs.model == model.identity
    # The class maps are kept once: the outputs hold views of the returned probabilities.
    assert first.outputs.nbytes == first.probabilities.nbytes
    assert np.shares_memory(first.outputs.planes[0]["instance"], first.probabilities)


@pytest.mark.parametrize("diameter", [8.0, "auto"])
def test_a_rescaled_image_keeps_its_zoom_and_measured_size(model, diameter):
    image = MicroscopyImage(small_nuclei((192, 192), 8), "YX")
    settings = SegmentSettings(diameter=diameter, instances=LOOSE)
    first, again = assert_reuse_is_a_full_run(image, model, settings, {"instances": STRICT})
    assert first.scale != 1.0
    if diameter == "auto":
        assert again.diameter_estimate == first.diameter_estimate is not None
        assert first.outputs.diameter_estimate.first_pass is None  # its labels are not kept


def test_a_z_stack_reuses_every_plane_and_links_them_again(model, nuclei_pairs):
    planes = [nuclei_pairs[0][0], nuclei_pairs[0][0], nuclei_pairs[1][0]]
    image = MicroscopyImage(np.stack(planes), "ZYX")
    settings = SegmentSettings(diameter=None, instances=LOOSE)
    first, _ = assert_reuse_is_a_full_run(image, model, settings, {"instances": STRICT})
    assert first.outputs.stack_shape == (3,) and len(first.outputs.planes) == 3
    unlinked = run(image, model, replace(settings, link_z=False), reuse=first.outputs)
    assert unlinked.labels.max() > first.labels.max()


@pytest.mark.parametrize("method", ["star", "star_seeds"])
def test_star_thresholds_on_kept_outputs_equal_a_full_run(method, nuclei_pairs):
    torch.manual_seed(0)
    config = ModelConfig(heads=("classes", "star"), star_rays=16, instance_method=method)
    model = create_model(config).eval()
    with torch.no_grad():  # a random network whose polygons are about 4 px, everywhere
        model.star.dist.weight.mul_(0.1)
        model.star.dist.bias.fill_(4.0)
    image = MicroscopyImage(nuclei_pairs[0][0], "YX")
    settings = SegmentSettings(diameter=None, star=StarSettings(0.3, 0.4))
    first, _ = assert_reuse_is_a_full_run(image, model, settings, {"star": StarSettings(0.6, 0.1)})
    assert {"star_prob", "star_dist"} <= first.outputs.planes[0].keys()


def test_semantic_classes_are_found_again_from_kept_outputs(nuclei_pairs):
    torch.manual_seed(0)
    model = create_model(ModelConfig(encoder="compact", semantic_classes=("a", "b"))).eval()
    image = MicroscopyImage(nuclei_pairs[0][0], "YX")
    settings = SegmentSettings(diameter=None, instances=InstanceSettings(0.3, 0.3, 0))
    first = run(image, model, settings)
    assert "semantic" in first.outputs.planes[0]
    strict = replace(settings, instances=InstanceSettings(0.34, 0.3, 0))
    again, full = run(image, model, strict, reuse=first.outputs), run(image, model, strict)
    np.testing.assert_array_equal(again.labels, full.labels)
    assert again.classes.keys() == full.classes.keys()
    for key in full.classes:
        np.testing.assert_array_equal(again.classes[key], full.classes[key])


def test_outputs_of_another_model_or_image_are_refused(model, nuclei_pairs):
    image = MicroscopyImage(nuclei_pairs[0][0], "YX")
    first = run(image, model, SegmentSettings(diameter=None))
    older = load_model(bundled_model_path("nuclei@1"))[0]
    with pytest.raises(ValueError, match="another model"):
        run(image, older, SegmentSettings(diameter=None), reuse=first.outputs)
    stack = MicroscopyImage(np.stack([nuclei_pairs[0][0]] * 2), "ZYX")
    with pytest.raises(ValueError, match="planes"):
        run(stack, model, SegmentSettings(diameter=None), reuse=first.outputs)


def test_without_keep_probabilities_nothing_is_kept(model, nuclei_pairs):
    image = MicroscopyImage(nuclei_pairs[0][0], "YX")
    result = drain(iter_segment(image, model, SegmentSettings(diameter=None)))
    assert result.outputs is None and result.probabilities is None


def test_network_settings_ignore_only_the_steps_after_the_network():
    base = SegmentSettings(instances=LOOSE, star=StarSettings(0.3, 0.3))
    assert network_settings(base) == network_settings(
        replace(base, instances=STRICT, star=StarSettings(0.7, 0.1), link_z=False)
    )
    for change in (
        {"channel": 1},
        {"diameter": 12.0},
        {"diameter_unit": "um"},
        {"tile": 128},
        {"overlap": 16},
        {"invert": True},
        {"tta": True},
        {"precision": "fp32"},
    ):
        assert network_settings(replace(base, **change)) != network_settings(base)


def test_outputs_count_shared_memory_once():
    maps = np.zeros((3, 2, 8, 8), np.float32)
    planes = tuple({"instance": maps[:, z]} for z in range(2))
    assert NetworkOutputs(planes, (2,)).nbytes == maps.nbytes
    same = {"instance": maps[:, 0]}
    assert NetworkOutputs((same, same), (2,)).nbytes == maps.nbytes // 2


def test_the_object_size_is_measured_with_the_models_own_thresholds(model, nuclei_pairs):
    image = MicroscopyImage(nuclei_pairs[0][0], "YX")  # nuclei of the model's size: zoom 1
    auto = {
        thresholds: run(image, model, SegmentSettings(instances=thresholds))
        for thresholds in (LOOSE, STRICT)
    }
    assert auto[LOOSE].diameter_estimate == auto[STRICT].diameter_estimate
    assert auto[LOOSE].scale == 1.0
    for thresholds, result in auto.items():  # the estimate's pass, with these thresholds
        as_is = run(image, model, SegmentSettings(diameter=None, instances=thresholds))
        np.testing.assert_array_equal(result.labels, as_is.labels)
