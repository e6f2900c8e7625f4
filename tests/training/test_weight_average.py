"""A moving average of the weights: validated and kept instead of the weights, and resumed."""

import numpy as np
import pytest
import torch

from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.training.data import make_pair
from napari_segnet.training.loop import TrainSettings, iter_train
from napari_segnet.training.resume import restore_best_model, write_compact_resume

SETTINGS = TrainSettings(
    epochs=1, steps_per_epoch=4, batch_size=2, crop=64, precision="fp32", average_decay=0.5
)


@pytest.fixture
def pairs(nuclei_pairs):
    return [make_pair(image, labels, name=str(i)) for i, (image, labels) in enumerate(nuclei_pairs)]


def averaged_run(model, generator, average=None):
    """Run ``generator`` to its end; return the moving average (decay 0.5) of ``model``'s states.

    ``average`` continues an average (a resumed run); None starts from the first step's state.
    """
    for event in generator:
        if event.stage == "training":
            state = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
            if average is None:
                average = state
            else:
                average = {k: 0.5 * average[k] + 0.5 * state[k] for k in state}
    return average


def assert_weights(model, expected, **tolerance):
    for key, value in model.named_parameters():
        np.testing.assert_allclose(value.detach(), expected[key], err_msg=key, **tolerance)


def test_the_kept_model_is_the_moving_average_of_the_weights(pairs, tmp_path):
    torch.manual_seed(0)
    model, out = create_model(ModelConfig()), tmp_path / "model.safetensors"
    expected = averaged_run(model, iter_train(model, pairs[:4], [], SETTINGS, out=out))
    kept, provenance = load_model(out)
    assert provenance["settings"]["average_decay"] == 0.5
    assert_weights(kept, expected, rtol=1e-5, atol=1e-6)
    # The weights are not the trained ones, nor are the batch-norm statistics: they are the
    # average's own, measured on training crops, not the average of the trained ones'.
    name = next(k for k, _ in model.named_parameters())
    assert not torch.allclose(model.state_dict()[name], kept.state_dict()[name])
    for key, value in kept.state_dict().items():
        if "running_mean" in key:
            assert torch.isfinite(value).all()
            assert not torch.allclose(value, expected[key], rtol=1e-3, atol=1e-4), key


def test_batch_norm_statistics_fit_the_averaged_weights(pairs, tmp_path):
    """The kept model's statistics are those of its own activations on training crops."""
    from napari_segnet.training.data import AugmentedSampler

    torch.manual_seed(0)
    model, out = create_model(ModelConfig()), tmp_path / "model.safetensors"
    list(iter_train(model, pairs[:4], [], SETTINGS, out=out))
    kept = load_model(out)[0].eval()  # eval: the forward pass leaves the statistics be
    sampler = AugmentedSampler(pairs[:4], crop=64, scale_range=SETTINGS.scale_range, seed=7)
    images = torch.from_numpy(sampler.sample(32)[0])
    seen = {}  # each norm's input: its mean and spread per channel

    def record(norm, inputs, _):
        seen[norm] = inputs[0].mean(dim=(0, 2, 3)), inputs[0].std(dim=(0, 2, 3))

    norms = [m for m in kept.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    hooks = [norm.register_forward_hook(record) for norm in norms]
    with torch.no_grad():
        kept(images)
    for hook in hooks:
        hook.remove()
    for norm in norms:  # the mean over these crops is near the stored one
        mean, spread = seen[norm]
        assert (abs(mean - norm.running_mean) < 0.5 * spread + 1e-3).float().mean() > 0.9


def test_a_resumed_run_goes_on_with_the_average_it_had(pairs, tmp_path):
    settings = TrainSettings(**{**vars(SETTINGS), "epochs": 2})
    out = tmp_path / "model.safetensors"
    generator = iter_train(create_model(ModelConfig()), pairs[:4], [], settings, out=out)
    for event in generator:
        if event.stage == "validated":  # stop after the first epoch
            generator.close()
            break
    resume = out.with_name(out.name + ".resume.pt")
    saved = torch.load(resume, weights_only=True)
    assert saved["averaged_steps"] == 4
    model = create_model(ModelConfig())
    generator = iter_train(model, pairs[:4], [], settings, out=out, resume=resume)
    expected = averaged_run(model, generator, average=dict(saved["averaged"]))
    assert_weights(load_model(out)[0], expected, rtol=1e-5, atol=1e-6)


def test_a_compact_resume_file_carries_the_average_and_its_best_model(pairs, tmp_path):
    out = tmp_path / "model.safetensors"
    generator = iter_train(create_model(ModelConfig()), pairs[:4], pairs[4:], SETTINGS, out=out)
    list(generator)  # one epoch: the best model is the last epoch's average
    full = out.with_name(out.name + ".resume.pt")
    packed = torch.load(write_compact_resume(full, out, tmp_path / "r.pt"), weights_only=True)
    assert "best_model" not in packed and packed["averaged_steps"] == 4
    assert all(v.dtype != torch.float32 for v in packed["averaged"].values())
    moved = tmp_path / "elsewhere.safetensors"
    assert restore_best_model(packed, moved)
    kept = load_model(out)[0].state_dict()
    assert_weights(load_model(moved)[0], kept, rtol=1e-3, atol=1e-4)


def test_a_decay_outside_zero_to_one_is_refused(pairs, tmp_path):
    settings = TrainSettings(**{**vars(SETTINGS), "average_decay": 1.5})
    generator = iter_train(create_model(ModelConfig()), pairs[:4], [], settings, out=tmp_path / "m")
    with pytest.raises(ValueError, match="decay must be within 0–1"):
        next(generator)
