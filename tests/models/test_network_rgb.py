"""Colour networks: a grey network given R, G, B inputs, and its exports."""

import numpy as np
import pytest
import torch

from napari_segnet.inference.normalise import normalise
from napari_segnet.inference.tiling import iter_predict_tiled
from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.models.network import with_rgb_input, with_star_head
from napari_segnet.progress import drain

CONFIGS = {
    "compact-full-resolution": ModelConfig(full_resolution_channels=8),
    "compact-star": ModelConfig(heads=("classes", "star"), star_rays=16),
    "resnet18": ModelConfig(encoder="resnet18"),
}
FIRST_CONVOLUTIONS = {
    "compact-full-resolution": {
        "encoder.stages.0.0.weight",
        "full_resolution.0.weight",
    },
    "compact-star": {"encoder.stages.0.0.weight"},
    "resnet18": {"encoder.stem.0.weight"},
}


def trained_like(config: ModelConfig):
    """A grey network whose batch norms have statistics of their own, as a trained one has."""
    torch.manual_seed(0)
    model = create_model(config)
    with torch.no_grad():
        model.train()
        for _ in range(3):
            model(torch.rand(2, 1, 64, 64))
    return model.eval()


@pytest.mark.parametrize("name", list(CONFIGS))
def test_a_colour_copy_computes_the_grey_networks_outputs_on_grey_images(name):
    grey = trained_like(CONFIGS[name])
    rgb = with_rgb_input(grey)
    assert rgb.config.in_channels == 3 and grey.config.in_channels == 1
    assert rgb is not grey and not rgb.training
    plane = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        expected = grey(plane)
        got = rgb(plane.repeat(1, 3, 1, 1))
    assert set(got) == set(expected)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], atol=1e-5, rtol=1e-4)
    # Every weight is kept, except the first convolutions: those are split over R, G, B.
    before, after = grey.state_dict(), rgb.state_dict()
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key].shape != after[key].shape}
    assert changed == FIRST_CONVOLUTIONS[name]
    for key in before:
        if key in changed:
            torch.testing.assert_close(after[key], before[key].repeat(1, 3, 1, 1) / 3)
        else:
            assert torch.equal(after[key], before[key]), key


def test_a_colour_copy_starts_from_the_channels_mean_and_learns_colour():
    rgb = with_rgb_input(trained_like(CONFIGS["compact-full-resolution"]))
    assert with_rgb_input(rgb) is rgb  # already colour
    colour = torch.rand(2, 3, 64, 64)
    grey = colour.mean(1, keepdim=True).repeat(1, 3, 1, 1)
    with torch.no_grad():  # equal weights per channel: it sees their mean at first
        torch.testing.assert_close(rgb(colour)["instance"], rgb(grey)["instance"])
    rgb.train()
    optimiser = torch.optim.SGD(rgb.parameters(), lr=0.1)
    rgb(colour)["instance"][:, 1].mean().backward()
    optimiser.step()
    first = rgb.encoder.stages[0][0].weight
    assert first.shape[1] == 3
    assert not torch.allclose(first[:, 0], first[:, 1])  # R and G now weigh differently
    with torch.no_grad():
        rgb.eval()
        assert not torch.allclose(rgb(colour)["instance"], rgb(grey)["instance"], atol=1e-4)
    star = with_star_head(rgb, 16)
    assert star.config.in_channels == 3
    with torch.no_grad():
        assert star.eval()(torch.rand(1, 3, 64, 64))["instance"].shape == (1, 3, 64, 64)


def test_only_one_channel_models_get_colour_input():
    two = create_model(ModelConfig(in_channels=2))
    with pytest.raises(ValueError, match="one-channel model"):
        with_rgb_input(two)


def test_the_onnx_export_of_a_colour_network_matches_torch(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    import onnx

    from napari_segnet.models.export import export_onnx, torch_outputs
    from napari_segnet.models.onnx_model import OnnxModel

    model = with_rgb_input(trained_like(CONFIGS["compact-full-resolution"]))
    path = tmp_path / "colour.onnx"
    check = export_onnx(model, path)
    assert 0 <= check.max_difference < 1e-4
    proto = onnx.load(path)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    exported, _ = load_model(path)
    assert isinstance(exported, OnnxModel) and exported.config == model.config
    batch = np.random.default_rng(1).random((2, 3, 64, 96), dtype=np.float32)
    with torch.inference_mode():
        got = exported(torch.from_numpy(batch))
    (expected,) = torch_outputs(model, batch)
    np.testing.assert_allclose(got["instance"].numpy(), expected, atol=1e-4)
    # Tiled prediction of a normalised colour plane, as segmentation runs it.
    rgb = np.random.default_rng(2).integers(0, 255, (96, 160, 3), dtype=np.uint8)
    planes = normalise(rgb, channels=3)
    expected = drain(iter_predict_tiled(model, planes, tile=64, overlap=16))
    got = drain(iter_predict_tiled(exported, planes, tile=64, overlap=16))
    np.testing.assert_allclose(got["instance"], expected["instance"], atol=1e-4)


def test_the_bioimageio_package_of_a_colour_network_scales_r_g_b_together(tmp_path):
    pytest.importorskip("bioimageio.core")
    pytest.importorskip("onnxscript")
    import zipfile

    import yaml

    from napari_segnet.models.bioimageio_package import export_bioimageio

    model = with_rgb_input(trained_like(ModelConfig(encoder_widths=(8, 16, 32, 64))))
    path = tmp_path / "colour.zip"
    report = export_bioimageio(model, path)  # runs bioimageio's test on a colour test input
    assert report.test == "passed"
    with zipfile.ZipFile(path) as package:
        description = yaml.safe_load(package.read("rdf.yaml"))
        test_input = np.load(package.open("test_input.npy"))
    assert test_input.shape[:2] == (1, 3)
    assert not np.allclose(test_input[0, 0], test_input[0, 2])  # a colour image, not grey
    (step,) = [s for s in description["inputs"][0]["preprocessing"] if s["id"] == "scale_range"]
    assert step["kwargs"]["axes"] == ["channel", "y", "x"]
    assert "R, G, B" in description["inputs"][0]["description"]
