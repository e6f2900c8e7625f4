"""A tiny real training run on synthetic nuclei: learns, keeps the best model, resumes."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from napari_segnet.inference.segment import segment_normalised
from napari_segnet.metrics import evaluate
from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.progress import drain
from napari_segnet.training.data import make_pair
from napari_segnet.training.loop import TrainSettings, iter_train
from napari_segnet.training.losses import distillation_loss

# float32 whatever the CPU, so that every machine trains the same numbers.
SETTINGS = TrainSettings(
    epochs=2, steps_per_epoch=40, batch_size=4, crop=64, seed=0, precision="fp32"
)


def ap50(model, pairs):
    predictions = [drain(segment_normalised(model, p.image, tile=128))[0] for p in pairs]
    return evaluate([p.labels for p in pairs], predictions)["pooled"][0.5]["ap"]


@pytest.fixture
def split(nuclei_pairs):
    pairs = [
        make_pair(image, labels, name=str(i)) for i, (image, labels) in enumerate(nuclei_pairs)
    ]
    return pairs[:4], pairs[4:]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_training_learns_and_keeps_the_best_model(split, tmp_path, precision):
    torch.manual_seed(0)
    train, validation = split
    model = create_model(ModelConfig())
    before = ap50(model.eval(), validation)
    out = tmp_path / "model.safetensors"
    settings = replace(SETTINGS, precision=precision)
    events = list_events(iter_train(model, train, validation, settings, out=out))
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
    assert provenance["settings"]["precision"] == precision
    assert all(p.dtype == torch.float32 for p in trained.parameters())  # bf16: the pass only
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


def test_an_anchor_keeps_the_weights_near_where_they_started(split, tmp_path):
    train, validation = split
    drifts = []
    for anchor in (0.0, 1.0):
        torch.manual_seed(0)
        model = create_model(ModelConfig())
        before = [p.detach().clone() for p in model.parameters()]
        settings = TrainSettings(epochs=1, steps_per_epoch=10, batch_size=2, crop=64, anchor=anchor)
        out = tmp_path / f"anchor{anchor}.safetensors"
        events = list_events(iter_train(model, train, validation, settings, out=out))
        assert all(np.isfinite(e.info["loss"]) for e in events if e.stage == "training")
        drifts.append(sum(((p - w) ** 2).sum().item() for p, w in zip(model.parameters(), before)))
    free, anchored = drifts
    assert anchored < 0.5 * free  # the same run, pulled back toward its start


def list_events(generator):
    return list(generator)


def test_without_validation_images_the_last_model_is_kept(split, tmp_path):
    train, _ = split
    out = tmp_path / "model.safetensors"
    settings = TrainSettings(epochs=2, steps_per_epoch=2, batch_size=2, crop=64)
    list_events(iter_train(create_model(ModelConfig()), train, [], settings, out=out))
    assert load_model(out)[1]["epoch"] == 2


# --- the star-convex head ----------------------------------------------------------------------

STAR = ModelConfig(heads=("classes", "star"), star_rays=16)


def test_a_star_head_model_trains_and_keeps_its_heads(split, tmp_path):
    train, validation = split
    out = tmp_path / "star.safetensors"
    settings = TrainSettings(epochs=1, steps_per_epoch=2, batch_size=2, crop=64)
    events = list_events(iter_train(create_model(STAR), train, validation, settings, out=out))
    steps = [e.info for e in events if e.stage == "training"]
    assert len(steps) == 2
    for info in steps:
        assert info["loss_star"] > 0 and np.isfinite(info["loss_star"])
        assert info["loss"] == pytest.approx(info["loss_classes"] + info["loss_star"], rel=1e-5)
    assert [e.stage for e in events].count("validated") == 1  # validation segments as before
    trained, _ = load_model(out)
    assert trained.config.heads == ("classes", "star") and trained.config.star_rays == 16
    assert set(trained(torch.zeros(1, 1, 64, 64))) >= {"instance", "star_prob", "star_dist"}


def test_a_star_head_run_resumes(split, tmp_path):
    train, validation = split
    out = tmp_path / "star.safetensors"
    settings = TrainSettings(epochs=2, steps_per_epoch=2, batch_size=2, crop=64)
    generator = iter_train(create_model(STAR), train, validation, settings, out=out)
    for event in generator:
        if event.stage == "validated":
            generator.close()
            break
    resume = out.with_name(out.name + ".resume.pt")
    model = create_model(STAR)
    events = list_events(iter_train(model, train, validation, settings, out=out, resume=resume))
    assert [e.done for e in events if e.stage == "training"] == [3, 4]
    assert "loss_star" in events[0].info


def test_the_star_head_leaves_the_three_class_training_as_it_was(split, tmp_path):
    """Same weights below the star head, same seed: the first 3-class loss is the same, so the
    sampler draws the same crops; a plain model reports only its loss, as before."""
    train, _ = split
    settings = TrainSettings(epochs=1, steps_per_epoch=2, batch_size=2, crop=64)
    torch.manual_seed(0)
    plain, star = create_model(ModelConfig()), create_model(STAR)
    missing = star.load_state_dict(plain.state_dict(), strict=False)
    assert missing.unexpected_keys == []
    assert all(key.startswith("star.") for key in missing.missing_keys)
    runs = [
        [e.info for e in iter_train(m, train, [], settings, out=tmp_path / f"{i}.safetensors")]
        for i, m in enumerate((plain, star))
    ]
    assert set(runs[0][0]) == {"loss", "epoch"}
    assert runs[1][0]["loss_classes"] == pytest.approx(runs[0][0]["loss"], rel=1e-6)
    # A plain model trains the same each time: the 3-class path draws nothing new.
    torch.manual_seed(0)
    again = [
        e.info["loss"]
        for e in iter_train(
            create_model(ModelConfig()), train, [], settings, out=tmp_path / "again.safetensors"
        )
        if e.stage == "training"
    ]
    assert again == [info["loss"] for info in runs[0][:2]]


def test_distillation_loss_is_zero_only_where_the_teacher_agrees():
    logits = torch.randn(2, 3, 8, 8)
    assert distillation_loss(logits, logits.softmax(dim=1)).abs() < 1e-6
    assert distillation_loss(logits, (-logits).softmax(dim=1)) > 0.1


def test_a_student_learns_its_teachers_probabilities(split, tmp_path):
    train, validation = split
    teacher, _ = load_model("nuclei")
    torch.manual_seed(0)
    student = create_model(ModelConfig())
    images = torch.from_numpy(np.stack([p.image[:64, :64] for p in validation])[:, None])

    def gap():
        with torch.no_grad():
            target = teacher(images)["instance"].softmax(dim=1)
            return float(distillation_loss(student.eval()(images)["instance"], target))

    before = gap()
    settings = replace(SETTINGS, epochs=1, distil_weight=1.0)  # the teacher alone
    events = list_events(
        iter_train(
            student, train, validation, settings, out=tmp_path / "s.safetensors", teacher=teacher
        )
    )
    steps = [e.info for e in events if e.stage == "training"]
    assert all({"loss_labels", "loss_teacher"} <= set(info) for info in steps)
    assert all(info["loss"] == pytest.approx(info["loss_teacher"]) for info in steps)
    after = gap()
    assert after < 0.5 * before
    with pytest.raises(ValueError, match="within 0–1"):
        next(
            iter_train(
                student,
                train,
                validation,
                replace(settings, distil_weight=2),
                out=tmp_path / "x",
                teacher=teacher,
            )
        )
