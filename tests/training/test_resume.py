"""Compact resume files: a run continues on a new machine from float16 weights and its state."""

import numpy as np
import torch

from napari_segnet.models import ModelConfig, create_model, load_model
from napari_segnet.training.data import make_pair
from napari_segnet.training.loop import TrainSettings, iter_train
from napari_segnet.training.resume import restore_best_model, write_compact_resume


def test_a_run_continues_on_a_new_machine_from_its_compact_resume_file(nuclei_pairs, tmp_path):
    pairs = [
        make_pair(image, labels, name=str(i)) for i, (image, labels) in enumerate(nuclei_pairs)
    ]
    train, validation = pairs[:4], pairs[4:]
    settings = TrainSettings(epochs=3, steps_per_epoch=3, batch_size=2, crop=64)
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir(), there.mkdir()
    out = here / "model.safetensors"
    generator = iter_train(create_model(ModelConfig()), train, validation, settings, out=out)
    validated = 0
    for event in generator:  # stop after two epochs
        validated += event.stage == "validated"
        if validated == 2:
            generator.close()
            break
    full = out.with_name(out.name + ".resume.pt")
    saved = torch.load(full, weights_only=True)
    # Make the best model an earlier epoch's, which only the compact file can carry over.
    saved["state"]["best_epoch"] = 1
    torch.save(saved, full)
    compact = write_compact_resume(full, out, there / "resume.pt")
    assert compact.stat().st_size < 0.7 * full.stat().st_size
    packed = torch.load(compact, weights_only=True)
    assert "optimiser" not in packed
    assert all(v.dtype != torch.float32 for v in packed["model"].values())

    moved = there / "model.safetensors"  # the new machine has the compact file only
    generator = iter_train(
        create_model(ModelConfig()), train, validation, settings, out=moved, resume=compact
    )
    first = next(generator)
    # The best model so far is back before training goes on, float16-exact.
    restored, provenance = load_model(moved)
    original, original_provenance = load_model(out)
    assert provenance == original_provenance
    for key, value in original.state_dict().items():
        assert restored.state_dict()[key].dtype == value.dtype
        np.testing.assert_allclose(restored.state_dict()[key], value, rtol=1e-3, atol=1e-4)
    events = [first, *generator]
    assert [e.done for e in events if e.stage == "training"] == [7, 8, 9]  # epoch 3 only


def test_a_best_model_of_the_last_epoch_is_restored_from_the_weights(nuclei_pairs, tmp_path):
    pairs = [
        make_pair(image, labels, name=str(i)) for i, (image, labels) in enumerate(nuclei_pairs)
    ]
    settings = TrainSettings(epochs=2, steps_per_epoch=2, batch_size=2, crop=64)
    out = tmp_path / "model.safetensors"
    generator = iter_train(create_model(ModelConfig()), pairs[:4], pairs[4:], settings, out=out)
    for event in generator:
        if event.stage == "validated":  # epoch 1: the best so far is this epoch's
            generator.close()
            break
    compact = write_compact_resume(out.with_name(out.name + ".resume.pt"), out, tmp_path / "r.pt")
    packed = torch.load(compact, weights_only=True)
    assert "best_model" not in packed and "best_metadata" in packed
    moved = tmp_path / "elsewhere.safetensors"
    assert restore_best_model(packed, moved)
    assert not restore_best_model(packed, moved)  # the best epoch's file is kept
    restored, provenance = load_model(moved)
    original, original_provenance = load_model(out)
    assert provenance == original_provenance
    for key, value in original.state_dict().items():
        np.testing.assert_allclose(restored.state_dict()[key], value, rtol=1e-3, atol=1e-4)


def test_a_stale_best_model_file_is_replaced_by_the_one_the_resume_file_carries(tmp_path):
    from napari_segnet.models import save_model

    torch.manual_seed(0)
    best, stale = create_model(ModelConfig()), create_model(ModelConfig())
    out = tmp_path / "model.safetensors"
    save_model(best, out, provenance={"epoch": 5})
    settings = {"schedule": {}, "settings": {}, "model": best.state_dict()}
    full = tmp_path / "run.resume.pt"
    torch.save({**settings, "state": {"epoch": 7, "best_epoch": 5}, "optimiser": {}}, full)
    compact = torch.load(write_compact_resume(full, out, tmp_path / "r.pt"), weights_only=True)
    save_model(stale, out, provenance={"epoch": 3})  # this machine's older best
    assert restore_best_model(compact, out)
    restored, provenance = load_model(out)
    assert provenance["epoch"] == 5
    for key, value in best.state_dict().items():
        np.testing.assert_allclose(restored.state_dict()[key], value, rtol=1e-3, atol=1e-4)
