"""Bundled models by name and version, and the identity (name, version, weights hash) of a model."""

import hashlib
import json
import os
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from napari_segnet.models import (
    ModelConfig,
    ModelIdentity,
    ModelLoadError,
    create_model,
    load_model,
    model_identity,
    save_model,
)
from napari_segnet.models.bundled import (
    BUNDLED,
    bundled_model_path,
    bundled_models,
    list_models,
    resolve_model,
)
from napari_segnet.models.identity import safetensors_sha256, state_sha256


def rewrite_metadata(source, destination, **changes) -> None:
    """Write ``source``'s tensors again with changed metadata, as a provenance update does."""
    with safe_open(str(source), framework="pt") as handle:
        metadata = dict(handle.metadata())
    provenance = json.loads(metadata["provenance"]) | changes
    metadata["provenance"] = json.dumps(provenance)
    tensors = load_file(str(source))
    reordered = dict(reversed(list(tensors.items())))  # another order of tensors in the file
    save_file(reordered, str(destination), metadata=metadata)


def test_every_version_loads_by_name_and_knows_which_it_is():
    first, _ = load_model("nuclei@1")
    second, _ = load_model("nuclei@2")
    newest, _ = load_model("nuclei")
    assert (first.identity.name, first.identity.version) == ("nuclei", 1)
    assert (second.identity.name, second.identity.version) == ("nuclei", 2)
    assert newest.identity == second.identity  # the plain name is the newest version
    assert first.identity.reference == "nuclei@1" and newest.identity.reference == "nuclei@2"
    for key, value in second.state_dict().items():
        assert torch.equal(value, newest.state_dict()[key])
    # The previous model has no full-resolution path; the newest has (491 k parameters).
    assert first.config.full_resolution_channels == 0 < second.config.full_resolution_channels
    parameters = sum(p.numel() for p in second.parameters())
    assert 480_000 < parameters < 500_000
    # The same identities through the file paths, fused or not, and through model_identity.
    fused, _ = load_model(resolve_model("nuclei@1"), fuse=True)
    assert fused.identity == first.identity == model_identity("nuclei@1")
    assert model_identity(bundled_model_path("nuclei")) == second.identity


def test_the_versions_differ_and_the_hash_is_over_the_tensors(tmp_path):
    one, two = (model_identity(f"nuclei@{v}") for v in (1, 2))
    assert one.sha256 != two.sha256 and len(one.sha256) == len(two.sha256) == 64
    assert re.fullmatch(r"[0-9a-f]{64}", one.sha256)
    # Not the hash of the file: a metadata-only rewrite (tensors in another order, too)
    # gives other bytes and the same hash.
    copy = tmp_path / "rewritten.safetensors"
    rewrite_metadata(bundled_model_path("nuclei@2"), copy, note="provenance updated")
    assert copy.read_bytes() != bundled_model_path("nuclei@2").read_bytes()
    assert hashlib.sha256(copy.read_bytes()).hexdigest() != two.sha256
    assert safetensors_sha256(copy) == two.sha256
    assert load_model(copy)[0].identity.sha256 == two.sha256
    # A model in memory hashes as its file; any changed weight changes the hash.
    model, _ = load_model("nuclei@2")
    assert state_sha256(model.state_dict()) == two.sha256
    state = load_file(str(bundled_model_path("nuclei@2")))
    name = sorted(state)[0]
    state[name] = state[name].clone()
    state[name].view(-1)[0] += 1e-3
    save_file(state, str(tmp_path / "changed.safetensors"))
    assert safetensors_sha256(tmp_path / "changed.safetensors") != two.sha256


def test_the_hash_is_computed_once_per_file_version(tmp_path):
    from napari_segnet.models import identity

    path = tmp_path / "mine.safetensors"
    save_model(create_model(ModelConfig()), path)
    first = safetensors_sha256(path)
    cached = [key for key in identity._CACHE if key[0] == str(path.resolve())]
    assert len(cached) == 1 and identity._CACHE[cached[0]] == first
    assert safetensors_sha256(path) == first  # served from the cache
    torch.manual_seed(1)
    save_model(create_model(ModelConfig()), path)  # other weights in the same file
    os.utime(path, ns=(1, 1))  # and another modification time: hashed again
    assert safetensors_sha256(path) != first


def test_a_model_file_is_named_by_its_file_name_never_as_a_bundled_model(tmp_path):
    torch.manual_seed(0)
    named = create_model(ModelConfig(name="nuclei-tuned"))
    save_model(named, tmp_path / "a.safetensors", provenance={"model_version": 3})
    identity = load_model(tmp_path / "a.safetensors")[0].identity
    assert (identity.name, identity.version, identity.reference) == ("a", None, "a")
    # A fine-tuned copy of the bundled model keeps its config's name, not its identity.
    bundled, _ = load_model("nuclei")
    save_model(bundled, tmp_path / "mine.safetensors")
    mine = model_identity(tmp_path / "mine.safetensors")
    assert (mine.name, mine.version) == ("mine", None)
    assert mine.sha256 == bundled.identity.sha256  # the same weights, so far
    save_model(create_model(ModelConfig()), tmp_path / "lab-model.safetensors")
    identity = model_identity(tmp_path / "lab-model.safetensors")
    assert (identity.name, identity.version, identity.reference) == ("lab-model", None, "lab-model")
    # A network that was never saved: named after its config, hashed from its weights.
    assert model_identity(named) == ModelIdentity(
        "nuclei-tuned", None, state_sha256(named.state_dict())
    )


def test_an_unknown_version_names_the_versions_there_are():
    for call in (resolve_model, load_model, model_identity):
        with pytest.raises(ValueError) as info:
            call("nuclei@9")
        message = str(info.value)
        assert "version 9" in message and "nuclei@1 and nuclei@2" in message, message
        assert "\n" not in message and message.endswith(".") and message.count(". ") == 0
    with pytest.raises(ModelLoadError):  # the loader's own error type, a ValueError
        load_model("nuclei@9")
    with pytest.raises(ValueError, match="There is no model 'nucleus'"):
        resolve_model("nucleus")


def test_the_registry_lists_every_version_and_the_user_models(tmp_path, monkeypatch):
    for name, versions in BUNDLED.items():
        assert sorted(versions) == list(versions)
        for version, file in versions.items():
            assert bundled_model_path(f"{name}@{version}").name == file
            assert bundled_model_path(f"{name}@{version}").is_file()
    references = [model.reference for model in bundled_models()]
    assert references[:2] == ["nuclei@2", "nuclei@1"]  # newest first
    assert [m.newest for m in bundled_models()][:2] == [True, False]
    monkeypatch.setenv("NAPARI_SEGNET_MODELS", str(tmp_path))
    save_model(create_model(ModelConfig()), tmp_path / "mine.safetensors")
    models = list_models()
    assert list(models)[:3] == ["nuclei", "nuclei@2", "nuclei@1"]
    assert models["nuclei"] == models["nuclei@2"] != models["nuclei@1"]
    assert resolve_model("mine") == tmp_path / "mine.safetensors"
    assert load_model("mine")[0].identity.name == "mine"


def test_an_exported_model_is_identified_by_its_onnx_file(tmp_path):
    pytest.importorskip("onnxscript")
    from napari_segnet.cli.export_model import exported_provenance
    from napari_segnet.models.export import export_onnx

    model, provenance = load_model("nuclei@1")
    path = tmp_path / "nuclei-v1.onnx"
    export_onnx(model, path, provenance=exported_provenance(provenance, model.identity))
    exported, stored = load_model(path)
    assert stored["source_model"] == model.identity.as_metadata()
    assert stored["model_version"] == 1
    assert exported.identity == ModelIdentity(
        "nuclei", 1, hashlib.sha256(path.read_bytes()).hexdigest()
    )
    assert model_identity(path) == exported.identity
