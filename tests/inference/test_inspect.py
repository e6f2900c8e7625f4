"""Looking inside the network: feature maps per stage and probabilities that match inference."""

import numpy as np
import pytest
import torch

from napari_segnet.inference.inspect import inspect_network
from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.models.bundled import bundled_model_path


@pytest.mark.parametrize("shape", [(96, 128), (75, 101)])  # odd sizes are padded, then cropped
def test_every_stage_of_the_bundled_model_is_shown_at_its_resolution(shape):
    model, _ = load_model(bundled_model_path("nuclei"))
    plane = np.random.default_rng(0).random(shape).astype(np.float32)
    result = inspect_network(model, plane, channels=3)
    assert [(f.part, f.stage, f.stride) for f in result.features] == [
        ("encoder", 1, 2),
        ("encoder", 2, 4),
        ("encoder", 3, 8),
        ("encoder", 4, 16),
        ("decoder", 1, 8),
        ("decoder", 2, 4),
        ("decoder", 3, 2),
        ("decoder", 4, 1),  # the full-resolution path
    ]
    for feature in result.features:
        size = tuple(-(-n // feature.stride) for n in shape)  # rounded up
        assert feature.data.shape == (3, *size)
        assert feature.data.min() == 0 and feature.data.max() == pytest.approx(1)
        assert len(set(feature.channels)) == 3 and max(feature.channels) < feature.total_channels
    assert result.features[1].title == "encoder 2 · 1/4 resolution · 32 channels"
    assert result.probabilities.shape == (3, *shape)
    np.testing.assert_allclose(result.probabilities.sum(axis=0), 1, atol=1e-5)
    assert np.array_equal(result.image, plane)


def test_probabilities_are_the_networks_own_output():
    model, _ = load_model(bundled_model_path("nuclei"))
    plane = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    with torch.inference_mode():
        expected = torch.softmax(model.eval()(torch.from_numpy(plane)[None, None])["instance"], 1)
    np.testing.assert_allclose(
        inspect_network(model, plane).probabilities, expected[0].numpy(), atol=1e-5
    )


def test_the_most_variable_channels_are_kept():
    model = create_model(ModelConfig(encoder="compact", in_channels=1)).eval()
    plane = np.random.default_rng(2).random((64, 64)).astype(np.float32)
    with torch.inference_mode():
        raw = model.encoder(torch.from_numpy(plane)[None, None])
    kept = inspect_network(model, plane, channels=2).features[:4]
    for stage, feature in zip(raw, kept):
        spread = stage[0].flatten(1).std(dim=1).numpy()
        assert set(feature.channels) == set(np.argsort(spread)[-2:].tolist())


def test_full_resolution_branch_and_resnet_encoder_are_shown():
    config = ModelConfig(encoder="compact", in_channels=1, full_resolution_channels=8)
    strides = [f.stride for f in inspect_network(create_model(config), np.zeros((64, 64))).features]
    assert strides[-1] == 1  # the refinement at full resolution closes the decoder
    resnet = create_model(ModelConfig(encoder="resnet18", in_channels=1))
    parts = [f.part for f in inspect_network(resnet, np.zeros((64, 64), np.float32)).features]
    assert parts.count("encoder") == len(resnet.encoder.channels)
