"""Model files: safetensors round trip, and every way a bad file is refused safely."""

import json
import pickle
import re

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from napari_segnet.models import (
    ModelConfig,
    ModelLoadError,
    create_model,
    load_model,
    read_model_file,
    save_model,
)
from napari_segnet.models.checkpoint import FORMAT


def assert_refused(path, *words) -> str:
    """Loading ``path`` fails with one user-facing sentence naming the file."""
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert message.startswith("Cannot load model"), message
    assert path.name in message, message
    assert "\n" not in message and "\r" not in message, message
    assert message.endswith("."), message
    assert re.search(r"[.!?]\s+[A-Z]", message) is None, message  # one sentence
    for word in words:
        assert word in message.lower(), message
    return message


@pytest.fixture
def model():
    torch.manual_seed(0)
    net = create_model(ModelConfig(encoder="compact", semantic_classes=("normal", "tumour")))
    # Move the batch-norm running statistics away from their defaults so that the
    # round trip must carry buffers as well as parameters.
    net.train()
    with torch.no_grad():
        net(torch.rand(2, 1, 32, 32) * 3 + 1)
    return net.eval()


def state_of(net):
    return {k: v.detach().contiguous() for k, v in net.state_dict().items()}


def test_round_trip_gives_identical_outputs(model, tmp_path):
    provenance = {"epochs": 3, "data": ["dsb2018"], "metrics": {"ap50": 0.81}}
    path = save_model(model, tmp_path / "nuclei.safetensors", provenance=provenance)
    assert path == tmp_path / "nuclei.safetensors" and path.is_file()
    assert not list(tmp_path.glob(".*partial*"))  # the atomic write left nothing behind
    loaded, loaded_provenance = load_model(path)
    assert not loaded.training
    assert loaded.config == model.config
    assert loaded_provenance == provenance
    x = torch.from_numpy(np.random.default_rng(0).random((1, 1, 48, 40), dtype=np.float32))
    with torch.no_grad():
        expected, actual = model(x), loaded(x)
    assert set(actual) == {"instance", "semantic"}
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=0, atol=0)
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)


def test_read_model_file_returns_config_provenance_and_weights(model, tmp_path):
    path = save_model(model, tmp_path / "m.safetensors")
    config, provenance, state = read_model_file(path)
    assert config == model.config
    assert config.semantic_classes == ("normal", "tumour")
    assert provenance == {}
    assert set(state) == set(model.state_dict())


def test_a_torch_pickle_is_refused(model, tmp_path):
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)  # zip-based pickle
    assert_refused(path, "pickle")
    legacy = tmp_path / "legacy.pt"
    torch.save(model.state_dict(), legacy, _use_new_zipfile_serialization=False)
    assert_refused(legacy, "pickle")


class Payload:
    """Unpickling this calls open(marker, "w"), creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, 5])
def test_a_malicious_pickle_is_never_executed(tmp_path, protocol):
    # The payload works: unpickling it elsewhere does create its marker.
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(Payload(probe), protocol=protocol)).close()
    assert probe.exists()

    marker = tmp_path / "pwned"
    for name, write in [
        ("evil.safetensors", lambda p: p.write_bytes(pickle.dumps(Payload(marker), protocol))),
        ("evil.pth", lambda p: torch.save({"weights": Payload(marker)}, p)),
    ]:
        path = tmp_path / name
        write(path)
        with pytest.raises(ModelLoadError):
            load_model(path)
        with pytest.raises(ModelLoadError):
            read_model_file(path)
        assert not marker.exists()


def test_random_bytes_and_an_empty_file_are_refused(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.safetensors"
    data = bytearray(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    data[0] = 0x41  # not a pickle opcode: the safetensors parser must reject it
    path.write_bytes(bytes(data))
    assert_refused(path, "not a valid")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    assert_refused(empty)
    header_only = tmp_path / "huge.safetensors"
    header_only.write_bytes((10**12).to_bytes(8, "little") + b"{}")  # claims a 1 TB header
    assert_refused(header_only)


def test_a_safetensors_file_without_our_metadata_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"weight": torch.zeros(3, 3)}, str(path))
    assert_refused(path, "not a napari-segnet model")
    path = tmp_path / "other_format.safetensors"
    config = ModelConfig().to_json()
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "x/1", "config": config})
    assert_refused(path, "not a napari-segnet model")
    path = tmp_path / "no_config.safetensors"
    save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": FORMAT})
    assert_refused(path, "not a napari-segnet model")


def write_model_file(path, state, config: str, provenance: str = "{}"):
    save_file(
        state, str(path), metadata={"format": FORMAT, "config": config, "provenance": provenance}
    )
    return path


def test_an_unknown_encoder_is_refused(model, tmp_path):
    config = json.dumps({"encoder": "resnet9000", "in_channels": 1})
    path = write_model_file(tmp_path / "future.safetensors", state_of(model), config)
    message = assert_refused(path, "unknown", "resnet9000")
    assert "compact" in message  # it lists the known architectures
    with pytest.raises(ModelLoadError):
        read_model_file(path)


@pytest.mark.parametrize(
    "config",
    [
        "{not json",
        json.dumps({"encoder": "compact", "colour": "blue"}),  # unknown key
        json.dumps({"encoder": ["compact"]}),
        json.dumps({"encoder": "compact", "in_channels": -1}),
        json.dumps({"encoder": "compact", "decoder_channels": [8]}),
        json.dumps({"encoder": "compact", "semantic_classes": 5}),
        "null",
    ],
)
def test_invalid_settings_are_refused(model, tmp_path, config):
    path = write_model_file(tmp_path / "bad.safetensors", state_of(model), config)
    assert_refused(path)


def test_invalid_provenance_is_refused(model, tmp_path):
    path = write_model_file(
        tmp_path / "p.safetensors", state_of(model), model.config.to_json(), provenance="{oops"
    )
    assert_refused(path, "settings are invalid")


def test_weights_that_do_not_fit_the_architecture_are_refused(model, tmp_path):
    other = ModelConfig(encoder="compact", in_channels=3).to_json()
    path = write_model_file(tmp_path / "mismatch.safetensors", state_of(model), other)
    assert_refused(path, "do not fit")
    missing = state_of(model)
    missing.pop("classifier.weight")
    path = write_model_file(tmp_path / "missing.safetensors", missing, model.config.to_json())
    assert_refused(path, "do not fit")


def test_a_missing_file_or_a_folder_is_refused(tmp_path):
    assert_refused(tmp_path / "nowhere.safetensors", "does not exist")
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    assert_refused(folder)


def test_reading_only_the_config_matches_and_refuses_pickles(tmp_path):
    import torch

    from napari_segnet.models import (
        ModelConfig,
        ModelLoadError,
        create_model,
        read_model_config,
        read_model_file,
        save_model,
    )

    path = save_model(
        create_model(ModelConfig(name="x")), tmp_path / "m.safetensors", provenance={"epoch": 3}
    )
    config, provenance = read_model_config(path)
    assert (config, provenance) == read_model_file(path)[:2]
    pickled = tmp_path / "p.safetensors"
    torch.save({"a": torch.zeros(1)}, pickled)
    with pytest.raises(ModelLoadError, match="pickle"):
        read_model_config(pickled)
