"""Segmentation that runs out of memory: smaller tiles first, then the CPU."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_segnet.inference.fallback import MIN_TILE, cpu_copy, iter_segment_with_fallback
from napari_segnet.inference.segment import SegmentSettings, segment
from napari_segnet.inference.stream import iter_segment_streamed, plan_stream
from napari_segnet.inference.stream_block import iter_segment_block
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
    assert model.moves == []  # a CPU copy ran: the model itself never left its device
    assert model.batches == []
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


def run_blocks(model, image, settings, device):
    """Segment block by block; return every block's objects and the warnings."""
    blocks, warnings = [], []
    events = iter_segment_streamed(
        image,
        model,
        settings,
        lambda objects, _: blocks.append(objects),
        device=device,
        block=160,
        halo=48,
    )
    summary = drain(events, lambda event: warnings.append(event.info.get("warning")))
    assert summary.blocks == 2 * 4
    return blocks, [w for w in warnings if w]


def assert_same_blocks(got, expected):
    assert [b.origin for b in got] == [b.origin for b in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.patch, b.patch)
        assert a.table.equals(b.table)


# No automatic object size: the network runs only in the blocks.
PLAIN = SegmentSettings(diameter=None)


def test_blocks_retry_with_smaller_tiles_and_keep_them(image):
    model = LimitedMemory(max_pixels=160 * 160)
    settings = replace(PLAIN, tile=512, batch_size=4)
    got, warnings = run_blocks(model, image, settings, torch.device("cpu"))
    assert warnings == [  # the first block's retries; the blocks after keep the small tiles
        "Out of cpu memory: retrying with 256-pixel tiles, one at a time.",
        "Out of cpu memory: retrying with 128-pixel tiles, one at a time.",
    ]
    assert {shape[0] for shape in model.batches} == {1}
    small = replace(PLAIN, tile=128, batch_size=1)
    expected, _ = run_blocks(model.network, image, small, torch.device("cpu"))
    assert_same_blocks(got, expected)


def test_blocks_on_a_full_accelerator_continue_on_the_cpu(image):
    model = LimitedMemory(max_pixels=10**9)
    got, warnings = run_blocks(model, image, replace(PLAIN, tile=256), torch.device("meta"))
    assert warnings == [
        "Out of meta memory: retrying with 128-pixel tiles, one at a time.",
        f"Out of meta memory even with {MIN_TILE}-pixel tiles: continuing on the CPU.",
    ]
    assert model.moves == [] and model.batches == []  # a CPU copy ran the blocks
    small = replace(PLAIN, tile=128, batch_size=1)
    expected, _ = run_blocks(model.network, image, small, torch.device("cpu"))
    assert_same_blocks(got, expected)


def test_the_object_size_measured_before_the_blocks_retries_too(image):
    model = LimitedMemory(max_pixels=160 * 160)
    got, warnings = run_blocks(model, image, SegmentSettings(tile=512), torch.device("cpu"))
    assert warnings[:2] == [
        "Out of cpu memory: retrying with 256-pixel tiles, one at a time.",
        "Out of cpu memory: retrying with 128-pixel tiles, one at a time.",
    ]
    assert len(warnings) == 2  # the blocks start with the tiles that fitted
    assert sum(b.count for b in got) > 0


def test_a_block_replaces_the_predictors_it_was_given(image):
    """As the cluster's workers use it: the predictors are theirs, and stay replaced."""
    model = LimitedMemory(max_pixels=160 * 160)
    settings = replace(PLAIN, tile=256, batch_size=4)
    plan = plan_stream(image, model, settings, block=160, halo=48)
    predictors = plan.predictors(model, settings, torch.device("cpu"))
    warnings = []
    drain(
        iter_segment_block(predictors, plan.source, plan.blocks[0], plan.block_settings),
        lambda event: warnings.append(event.info.get("warning")),
    )
    assert [w for w in warnings if w] == [
        "Out of cpu memory: retrying with 128-pixel tiles, one at a time."
    ]
    assert predictors[0].options["tile"] == 128 and predictors[0].batch_size == 1


def test_other_errors_in_blocks_are_not_retried(image):
    model = LimitedMemory(max_pixels=10**9)
    with pytest.raises(ValueError, match="no channels"):
        run_blocks(model, image, replace(PLAIN, channel="DAPI"), torch.device("cpu"))
    assert model.batches == []


def test_the_cpu_copy_computes_what_the_model_does_without_moving_it():
    model = load_model(bundled_model_path("nuclei"), fuse=True)[0]
    copy = cpu_copy(model)
    assert copy is not model and copy.identity == model.identity
    assert all(a is not b for a, b in zip(copy.parameters(), model.parameters()))
    x = torch.from_numpy(np.random.default_rng(0).random((1, 1, 64, 64), dtype=np.float32))
    with torch.inference_mode():
        torch.testing.assert_close(copy(x)["instance"], model(x)["instance"], rtol=0, atol=0)
