"""Segmentation that runs out of memory: smaller tiles first, then the CPU."""

import numpy as np
import pytest
import torch

from napari_segnet.inference.fallback import MIN_TILE, iter_segment_with_fallback
from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.io import MicroscopyImage
from napari_segnet.models import load_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.progress import drain


class LimitedMemory(torch.nn.Module):
    """The bundled network on a device that holds batches of at most ``max_pixels``.

    Inputs on the ``meta`` device stand for an accelerator that is always full;
    the network itself stays on, and computes on, the CPU.
    """

    def __init__(self, max_pixels):
        super().__init__()
        self.network = load_model(bundled_model_path("nuclei"))[0].eval()
        self.config, self.size_multiple = self.network.config, self.network.size_multiple
        self.max_pixels, self.batches, self.moves = max_pixels, [], []

    def forward(self, x):
        if x.device.type == "meta" or x.numel() > self.max_pixels:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.batches.append(tuple(x.shape))
        return self.network(x)

    def to(self, device):
        self.moves.append(torch.device(device).type)
        return self  # the network never leaves the CPU


@pytest.fixture
def image(nuclei_pairs):
    tiles = np.block([[nuclei_pairs[0][0], nuclei_pairs[1][0]] * 3] * 3)  # 288 × 576
    return MicroscopyImage(data=tiles, axes="YX")


def run(model, image, settings, device):
    warnings = []
    events = iter_segment_with_fallback(image, model, settings, device=device)
    result = drain(events, lambda event: warnings.append(event.info.get("warning")))
    return result, [w for w in warnings if w]


def test_smaller_tiles_are_tried_until_they_fit(image):
    model = LimitedMemory(max_pixels=160 * 160)
    settings = SegmentSettings(tile=512, batch_size=4)
    result, warnings = run(model, image, settings, torch.device("cpu"))
    assert warnings == [
        "Out of cpu memory: retrying with 256-pixel tiles, one at a time.",
        "Out of cpu memory: retrying with 128-pixel tiles, one at a time.",
    ]
    assert {shape[0] for shape in model.batches} == {1}
    assert max(shape[-1] for shape in model.batches) == 128
    expected = segment(image, model.network, SegmentSettings(tile=128, batch_size=1)).labels
    np.testing.assert_array_equal(result.labels, expected)


def test_a_full_accelerator_falls_back_to_the_cpu_and_back(image):
    model = LimitedMemory(max_pixels=10**9)
    result, warnings = run(model, image, SegmentSettings(tile=256), torch.device("meta"))
    assert warnings[-1] == (
        f"Out of meta memory even with {MIN_TILE}-pixel tiles: continuing on the CPU."
    )
    assert len(warnings) == 2  # 256 → 128, then the CPU
    assert model.moves == ["cpu", "meta"]  # the model goes back to its device afterwards
    expected = segment(image, model.network, SegmentSettings(tile=128, batch_size=1)).labels
    np.testing.assert_array_equal(result.labels, expected)


def test_out_of_memory_with_the_smallest_tile_on_the_cpu_is_raised(image):
    model = LimitedMemory(max_pixels=10)
    with pytest.raises(torch.OutOfMemoryError):
        run(model, image, SegmentSettings(tile=256), torch.device("cpu"))


def test_other_errors_are_not_retried(image):
    model = LimitedMemory(max_pixels=10**9)
    settings = SegmentSettings(channel="DAPI")  # a one-channel image has no channel to choose
    with pytest.raises(ValueError, match="no channels"):
        run(model, image, settings, torch.device("cpu"))
    assert model.batches == []
