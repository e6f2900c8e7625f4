"""The network: every encoder builds offline and returns logits at the input's size."""

import pickle

import pytest
import torch

from napari_segnet.models import ENCODERS, ModelConfig, create_model
from napari_segnet.models.encoders import create_encoder

LARGE = {"resnet50", "vgg16_bn"}  # keep their inputs tiny: they are slow on two CPU cores


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def forward(model, shape):
    with torch.no_grad():
        return model(torch.rand(*shape))


def test_the_expected_encoders_are_registered():
    assert set(ENCODERS) >= {"compact", "resnet18", "resnet34", "resnet50", "vgg16_bn"}


@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("encoder", list(ENCODERS))
def test_every_encoder_returns_logits_of_the_input_size(encoder, in_channels):
    model = create_model(ModelConfig(encoder=encoder, in_channels=in_channels)).eval()
    assert model.size_multiple == model.encoder.strides[-1]
    assert len(model.encoder.channels) == len(model.encoder.strides)
    size = (37, 45) if encoder in LARGE else (70, 90)  # odd, not multiples of the stride
    out = forward(model, (1, in_channels, *size))
    assert set(out) == {"instance"}
    assert out["instance"].shape == (1, 3, *size)
    assert torch.isfinite(out["instance"]).all()


def test_encoder_features_run_from_fine_to_coarse():
    for name in ("compact", "resnet18"):
        encoder = create_encoder(name, 1).eval()
        with torch.no_grad():
            features = encoder(torch.rand(1, 1, 64, 96))
        assert [f.shape[1] for f in features] == list(encoder.channels)
        assert [64 // f.shape[2] for f in features] == list(encoder.strides)
        assert [96 // f.shape[3] for f in features] == list(encoder.strides)


@pytest.mark.parametrize("encoder", ["compact", "resnet18"])
def test_semantic_classes_add_a_semantic_output(encoder):
    config = ModelConfig(encoder=encoder, semantic_classes=("normal", "tumour", "stroma"))
    out = forward(create_model(config).eval(), (2, 1, 53, 61))
    assert set(out) == {"instance", "semantic"}
    assert out["instance"].shape == (2, 3, 53, 61)
    assert out["semantic"].shape == (2, 3, 53, 61)


@pytest.mark.parametrize("encoder", ["compact", "resnet18"])
def test_full_resolution_path(encoder):
    model = create_model(ModelConfig(encoder=encoder, full_resolution_channels=8)).eval()
    assert model.full_resolution is not None
    assert forward(model, (1, 1, 41, 50))["instance"].shape == (1, 3, 41, 50)


def test_full_resolution_path_is_skipped_for_full_resolution_encoders():
    model = create_model(ModelConfig(encoder="vgg16_bn", full_resolution_channels=8))
    assert model.encoder.strides[0] == 1
    assert model.full_resolution is None


def test_every_parameter_is_trained():
    config = ModelConfig(encoder="compact", semantic_classes=("a", "b"), full_resolution_channels=4)
    model = create_model(config).train()
    out = model(torch.rand(2, 1, 40, 48))
    (out["instance"].sum() + out["semantic"].sum()).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_decoder_channels():
    model = create_model(ModelConfig(encoder="compact", decoder_channels=(8, 8, 4))).eval()
    assert forward(model, (1, 1, 33, 17))["instance"].shape == (1, 3, 33, 17)
    with pytest.raises(ValueError, match="decoder_channels"):
        create_model(ModelConfig(encoder="compact", decoder_channels=(8, 8)))


def test_a_wider_compact_network_mirrors_its_encoder_in_the_decoder():
    config = ModelConfig(encoder_widths=(8, 16, 32, 64, 128), full_resolution_channels=4)
    model = create_model(config).eval()
    assert model.encoder.channels == (8, 16, 32, 64, 128)
    assert [stage[0].out_channels for stage in model.decoder] == [64, 32, 16, 8]
    assert model.size_multiple == 32
    assert forward(model, (1, 1, 70, 45))["instance"].shape == (1, 3, 70, 45)
    # The widths are part of the saved config, and only of the compact encoder.
    assert ModelConfig.from_json(config.to_json()) == config
    assert "encoder_widths" not in ModelConfig().to_json()  # older files stay readable
    with pytest.raises(ValueError, match="encoder_widths"):
        ModelConfig(encoder="resnet18", encoder_widths=(8, 16))
    with pytest.raises(ValueError, match="fixed widths"):
        create_encoder("resnet18", 1, widths=(8, 16))


def test_create_encoder_errors(tmp_path):
    with pytest.raises(ValueError, match="Unknown encoder"):
        create_encoder("resnet9000", 1)
    with pytest.raises(ValueError, match="no ImageNet weights"):
        create_encoder("compact", 1, tmp_path / "weights.pth")


def imagenet_like_weights(tmp_path):
    import torchvision

    torch.manual_seed(42)
    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("in_channels", [1, 2, 3])
def test_local_imagenet_weights_are_loaded(tmp_path, in_channels):
    path, state = imagenet_like_weights(tmp_path)
    torch.manual_seed(0)  # a different random initialisation than the file's
    model = create_model(ModelConfig(encoder="resnet18", in_channels=in_channels), path)
    conv = model.encoder.stem[0]
    assert conv.in_channels == in_channels
    rgb = state["conv1.weight"]
    if in_channels == 3:
        expected = rgb
    else:
        expected = (rgb.sum(dim=1, keepdim=True) / in_channels).repeat(1, in_channels, 1, 1)
    torch.testing.assert_close(conv.weight.detach(), expected, rtol=0, atol=1e-7)
    torch.testing.assert_close(model.encoder.stem[1].running_var, state["bn1.running_var"])
    block = model.encoder.layers[3][1].conv2.weight.detach()
    torch.testing.assert_close(block, state["layer4.1.conv2.weight"], rtol=0, atol=0)
    # Without the file the encoder is random: the check above can fail.
    torch.manual_seed(0)
    random = create_model(ModelConfig(encoder="resnet18", in_channels=in_channels))
    assert not torch.equal(random.encoder.layers[3][1].conv2.weight, block)


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_malicious_weights_file_is_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": Payload(marker)}, path)
    with pytest.raises(pickle.UnpicklingError):
        create_model(ModelConfig(encoder="resnet18"), path)
    assert not marker.exists()


def test_grey_input_gives_the_pretrained_rgb_activations(tmp_path):
    path, _ = imagenet_like_weights(tmp_path)
    rgb_model = create_model(ModelConfig(encoder="resnet18", in_channels=3), path).eval()
    grey_model = create_model(ModelConfig(encoder="resnet18", in_channels=1), path).eval()
    grey = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        expected = rgb_model.encoder.stem[0](grey.repeat(1, 3, 1, 1))
        torch.testing.assert_close(grey_model.encoder.stem[0](grey), expected)


def test_fused_inference_copy_computes_the_same(tmp_path):
    from napari_segnet.models import load_model, save_model

    torch.manual_seed(0)
    model = create_model(ModelConfig())
    model.train()
    model(torch.rand(4, 1, 64, 64))  # give batch norm non-trivial running statistics
    path = save_model(model, tmp_path / "m.safetensors")
    plain, _ = load_model(path)
    fused, _ = load_model(path, fuse=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.rand(1, 1, 70, 90)
    with torch.no_grad():
        torch.testing.assert_close(fused(x)["instance"], plain(x)["instance"], rtol=1e-4, atol=1e-4)


def test_a_full_resolution_path_added_to_a_trained_model_keeps_its_other_weights(tmp_path):
    from napari_segnet.models import load_model, save_model, with_full_resolution_path

    torch.manual_seed(0)
    save_model(create_model(ModelConfig(encoder="compact")), tmp_path / "trained.safetensors")
    model, _ = load_model(tmp_path / "trained.safetensors")
    extended = with_full_resolution_path(model, channels=4)
    assert extended.config.full_resolution_channels == 4
    kept = {k: v for k, v in extended.state_dict().items() if k in model.state_dict()}
    assert kept.keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in kept.items())
    assert with_full_resolution_path(extended) is extended
    save_model(extended, tmp_path / "m.safetensors")
    reloaded, _ = load_model(tmp_path / "m.safetensors")
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(x)["instance"], extended.eval()(x)["instance"])
    with pytest.raises(ValueError, match="already has features at full resolution"):
        with_full_resolution_path(create_model(ModelConfig(encoder="vgg16_bn")))
