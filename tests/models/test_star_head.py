"""The optional star head: its settings, its outputs, and model files with and without it."""

import json

import pytest
import torch

from napari_segnet.models import ModelConfig, create_model, load_model, save_model
from napari_segnet.models.bundled import bundled_model_path
from napari_segnet.models.network import fused_for_inference

STAR = ("classes", "star")


def forward(model, shape):
    with torch.no_grad():
        return model(torch.rand(*shape))


# --- settings --------------------------------------------------------------------------------


def test_the_default_is_the_classes_head_only():
    config = ModelConfig()
    assert config.heads == ("classes",)
    assert config.star_rays == 32
    assert config.instance_method == "watershed"
    assert not config.has_star_head
    assert ModelConfig(heads=STAR).has_star_head


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"heads": ("star",)}, "heads"),
        ({"heads": ("star", "classes")}, "heads"),
        ({"heads": ()}, "heads"),
        ({"heads": ("classes", "star", "star")}, "heads"),
        ({"heads": ("classes", "polygons")}, "heads"),
        ({"heads": "classes"}, "heads"),
        ({"heads": STAR, "star_rays": 20}, "rays"),
        ({"heads": STAR, "star_rays": 4}, "rays"),
        ({"heads": STAR, "star_rays": 256}, "rays"),
        ({"heads": STAR, "star_rays": 32.0}, "rays"),
        ({"heads": STAR, "star_rays": True}, "rays"),
        ({"heads": STAR, "instance_method": "stardist"}, "instance method"),
        ({"instance_method": "star"}, "star head"),
        ({"instance_method": "star_seeds"}, "star head"),
    ],
)
def test_bad_star_settings_are_one_sentence(values, words):
    with pytest.raises(ValueError, match=words) as info:
        ModelConfig(**values)
    message = str(info.value)
    assert message.endswith(".") and message.count(". ") == 0, message


def test_heads_given_as_a_list_become_a_tuple():
    assert ModelConfig(heads=["classes", "star"]).heads == STAR


@pytest.mark.parametrize("rays", [8, 16, 32, 64, 128])
def test_json_round_trip_keeps_the_star_settings(rays):
    config = ModelConfig(heads=STAR, star_rays=rays, instance_method="star_seeds")
    text = config.to_json()
    assert json.loads(text)["heads"] == ["classes", "star"]  # JSON has lists, not tuples
    back = ModelConfig.from_json(text)
    assert back == config
    assert back.heads == STAR


def test_json_of_a_classes_only_model_is_what_older_releases_read():
    # Older releases refuse unknown keys: the new settings are left out at their defaults.
    values = json.loads(ModelConfig().to_json())
    assert not {"heads", "star_rays", "instance_method"} & set(values)
    old = dict(values)
    assert ModelConfig.from_json(json.dumps(old)) == ModelConfig()


def test_the_bundled_model_file_loads_as_the_network_it_describes():
    model, _ = load_model(bundled_model_path("nuclei"))
    assert model.config.heads == ("classes",)
    assert model.config.instance_method == "watershed"
    assert model.star is None
    assert not any(key.startswith("star") for key in model.state_dict())
    generator = torch.Generator().manual_seed(11)
    x = torch.rand(1, 1, 48, 64, generator=generator)
    with torch.no_grad():
        out = model(x)
    assert set(out) == {"instance"}
    # Logits computed from the file's weights without SegNet's forward, on the same input.
    assert torch.isfinite(out["instance"]).all()
    expected = reference_logits(x)
    torch.testing.assert_close(out["instance"], expected, rtol=0, atol=0)


def reference_logits(x):
    """The bundled network's logits, computed from its weights without SegNet's forward."""
    import torch.nn.functional as F
    from safetensors.torch import load_file

    state = load_file(str(bundled_model_path("nuclei")))

    def block(y, prefix, stride, repeats=2):
        for i in (0, 3)[:repeats]:  # ConvBlock: conv, bn, relu, conv, bn, relu
            y = F.conv2d(
                y, state[f"{prefix}.{i}.weight"], stride=stride if i == 0 else 1, padding=1
            )
            y = F.batch_norm(
                y,
                state[f"{prefix}.{i + 1}.running_mean"],
                state[f"{prefix}.{i + 1}.running_var"],
                state[f"{prefix}.{i + 1}.weight"],
                state[f"{prefix}.{i + 1}.bias"],
                training=False,
            )
            y = F.relu(y)
        return y

    features, y = [], x
    for s in range(4):
        y = block(y, f"encoder.stages.{s}", 2)
        features.append(y)
    y = features[-1]
    for d, skip in enumerate(features[-2::-1]):
        y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        y = block(torch.cat([y, skip], dim=1), f"decoder.{d}", 1)
    if "full_resolution.0.weight" in state:  # the thin path at full resolution
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        fine = block(x, "full_resolution", 1, repeats=1)
        y = block(torch.cat([y, fine], dim=1), "refine", 1, repeats=1)
    logits = F.conv2d(y, state["classifier.weight"], state["classifier.bias"])
    if logits.shape[-2:] == x.shape[-2:]:
        return logits
    return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


# --- the network -----------------------------------------------------------------------------


@pytest.mark.parametrize("full_resolution", [0, 8])
@pytest.mark.parametrize("encoder", ["compact", "resnet18"])
def test_the_star_head_returns_probability_logits_and_distances(encoder, full_resolution):
    torch.manual_seed(0)
    config = ModelConfig(
        encoder=encoder, heads=STAR, star_rays=16, full_resolution_channels=full_resolution
    )
    model = create_model(config).eval()
    out = forward(model, (2, 1, 53, 61))  # odd, not multiples of the stride
    assert set(out) == {"instance", "star_prob", "star_dist"}
    assert out["instance"].shape == (2, 3, 53, 61)
    assert out["star_prob"].shape == (2, 1, 53, 61)
    assert out["star_dist"].shape == (2, 16, 53, 61)
    assert (out["star_dist"] >= 0).all()
    assert torch.isfinite(out["star_prob"]).all() and torch.isfinite(out["star_dist"]).all()


def test_the_star_head_is_small_and_leaves_the_rest_of_the_network_alone():
    torch.manual_seed(0)
    plain = create_model(ModelConfig())
    torch.manual_seed(0)
    star = create_model(ModelConfig(heads=STAR))
    extra = {k: v for k, v in star.state_dict().items() if k not in plain.state_dict()}
    assert all(k.startswith("star.") for k in extra)
    assert set(plain.state_dict()) <= set(star.state_dict())
    n_extra = sum(v.numel() for v in extra.values())
    n_plain = sum(p.numel() for p in plain.parameters())
    assert 0 < n_extra < 0.02 * n_plain, (n_extra, n_plain)
    # Same seed: the shared layers start identical, so the classes head is unchanged.
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(star.eval()(x)["instance"], plain.eval()(x)["instance"])


def test_semantic_classes_and_the_star_head_together():
    config = ModelConfig(semantic_classes=("a", "b"), heads=STAR, star_rays=8)
    out = forward(create_model(config).eval(), (1, 1, 40, 48))
    assert set(out) == {"instance", "semantic", "star_prob", "star_dist"}
    assert out["star_dist"].shape == (1, 8, 40, 48)


def test_every_star_head_parameter_is_trained():
    model = create_model(ModelConfig(heads=STAR, star_rays=8)).train()
    out = model(torch.rand(2, 1, 40, 48))
    (out["instance"].sum() + out["star_prob"].sum() + out["star_dist"].sum()).backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert unused == []
    # The distances start positive, so no ray starts without a gradient.
    assert (model.star.dist.weight.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


def test_a_star_model_file_round_trips_and_fuses(tmp_path):
    torch.manual_seed(0)
    model = create_model(ModelConfig(heads=STAR, star_rays=16, instance_method="star"))
    model.train()
    model(torch.rand(4, 1, 64, 64))  # non-trivial batch-norm statistics
    with torch.no_grad():
        model.star.dist.bias.add_(3.0)  # and a head that differs from its initialisation
    model.eval()
    path = save_model(model, tmp_path / "star.safetensors")
    loaded, _ = load_model(path)
    assert loaded.config == model.config
    assert loaded.config.heads == STAR and loaded.config.star_rays == 16
    x = torch.rand(1, 1, 70, 90)
    with torch.no_grad():
        expected = model(x)
        for key, value in loaded(x).items():
            torch.testing.assert_close(value, expected[key], rtol=0, atol=0)
        fused = fused_for_inference(loaded)(x)
    for key in expected:
        torch.testing.assert_close(fused[key], expected[key], rtol=1e-4, atol=1e-4)


def test_a_classes_only_file_does_not_load_into_a_star_network(tmp_path):
    # The head's weights are part of the file: a star config without them is refused.
    from safetensors.torch import save_file

    from napari_segnet.models import ModelLoadError
    from napari_segnet.models.checkpoint import FORMAT

    state = {k: v.contiguous() for k, v in create_model(ModelConfig()).state_dict().items()}
    path = tmp_path / "m.safetensors"
    metadata = {"format": FORMAT, "config": ModelConfig(heads=STAR).to_json()}
    save_file(state, str(path), metadata=metadata)
    with pytest.raises(ModelLoadError, match="weights do not fit"):
        load_model(path)


@pytest.mark.parametrize(
    "values",
    [{"heads": ["star"]}, {"heads": ["classes", "star"], "star_rays": 20}, {"heads": 5}],
)
def test_a_file_with_bad_star_settings_is_refused_in_one_sentence(tmp_path, values):
    from safetensors.torch import save_file

    from napari_segnet.models import ModelLoadError
    from napari_segnet.models.checkpoint import FORMAT

    state = {k: v.contiguous() for k, v in create_model(ModelConfig()).state_dict().items()}
    path = tmp_path / "bad.safetensors"
    config = json.dumps({**json.loads(ModelConfig().to_json()), **values})
    save_file(state, str(path), metadata={"format": FORMAT, "config": config})
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith("Cannot load model bad.safetensors: its settings are invalid")
    assert message.endswith(").") and ".)" not in message, message


def test_a_star_head_added_to_a_trained_model_keeps_its_other_weights():
    import torch

    from napari_segnet.models import load_model, with_star_head
    from napari_segnet.models.bundled import bundled_model_path

    model, _ = load_model(bundled_model_path("nuclei"))
    extended = with_star_head(model, rays=16).eval()
    assert extended.config.heads == ("classes", "star") and extended.config.star_rays == 16
    assert extended.config.instance_method == "star_seeds"
    x = torch.rand(1, 1, 64, 64)
    with torch.no_grad():
        before, after = model(x), extended(x)
    torch.testing.assert_close(after["instance"], before["instance"], rtol=0, atol=0)
    assert after["star_dist"].shape == (1, 16, 64, 64)
    assert with_star_head(extended) is extended
