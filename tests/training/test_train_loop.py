"""A tiny real training run on synthetic nuclei: learns, keeps the best model, resumes."""

import numpy as np
import pytest
import torch

from napari_segnet.inference.segment import segment_normalised
from napari_segnet.metrics import evaluate
from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.progress import drain
from napari_segnet.training.data import make_pair
from napari_segnet.training.loop import TrainSettings, iter_train

SETTINGS = TrainSettings(epochs=2, steps_per_epoch=40, batch_size=4, crop=64, seed=0)


def ap50(model, pairs):
    predictions = [drain(segment_normalised(model, p.image, tile=128))[0] for p in pairs]
    return evaluate([p.labels for p in pairs], predictions)["pooled"][0.5]["ap"]


@pytest.fixture
def split(nuclei_pairs):
    pairs = [
        make_pair(image, labels, name=str(i)) for i, (image, labels) in enumerate(nuclei_pairs)
    ]
    return pairs[:4], pairs[4:]


def test_training_learns_and_keeps_the_best_model(split, tmp_path):
    torch.manual_seed(0)
    train, validation = split
    model = create_model(ModelConfig())
    before = ap50(model.eval(), validation)
    out = tmp_path / "model.safetensors"
    events = list_events(iter_train(model, train, validation, SETTINGS, out=out))
    steps = [e for e in events if e.stage == "training"]
    assert [e.done for e in steps] == list(range(1, 81))
    assert all(np.isfinite(e.info["loss"]) for e in steps)
    assert np.mean([e.info["loss"] for e in steps[-10:]]) < np.mean(
        [e.info["loss"] for e in steps[:10]]
    )
    validations = [e for e in events if e.stage == "validated"]
    assert len(validations) == 2
    trained, provenance = load_model(out)
    assert provenance["epoch"] == max(validations, key=lambda e: e.info["ap_mean"]).done
    after = ap50(trained, validation)
    assert after > 0.5 and after > before


def test_training_resumes_where_it_stopped(split, tmp_path):
    train, validation = split
    out = tmp_path / "model.safetensors"
    first = TrainSettings(epochs=2, steps_per_epoch=5, batch_size=2, crop=64)
    generator = iter_train(create_model(ModelConfig()), train, validation, first, out=out)
    for event in generator:  # stop after the first validation, as a user pressing Stop
        if event.stage == "validated":
            generator.close()
            break
    resume = tmp_path / "model.safetensors.resume.pt"
    assert out.exists() and resume.exists()
    events = list_events(
        iter_train(create_model(ModelConfig()), train, validation, first, out=out, resume=resume)
    )
    steps = [e.done for e in events if e.stage == "training"]
    assert steps == list(range(6, 11))  # epoch 2 only
    assert [e.done for e in events if e.stage == "validated"] == [2]


def test_frozen_encoder_does_not_change(split, tmp_path):
    train, validation = split
    model = create_model(ModelConfig())
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    settings = TrainSettings(
        epochs=1, steps_per_epoch=3, batch_size=2, crop=64, freeze_encoder=True
    )
    list_events(iter_train(model, train, validation, settings, out=tmp_path / "m.safetensors"))
    for key, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder_before[key]), key
    assert any(not torch.equal(v, decoder_before[k]) for k, v in model.decoder.state_dict().items())


def list_events(generator):
    return list(generator)


def test_without_validation_images_the_last_model_is_kept(split, tmp_path):
    train, _ = split
    out = tmp_path / "model.safetensors"
    settings = TrainSettings(epochs=2, steps_per_epoch=2, batch_size=2, crop=64)
    list_events(iter_train(create_model(ModelConfig()), train, [], settings, out=out))
    assert load_model(out)[1]["epoch"] == 2
