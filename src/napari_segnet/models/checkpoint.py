"""Model files: one ``.safetensors`` file with the config and provenance as JSON metadata.

safetensors holds only tensors and strings, so opening a model file from a
colleague cannot run code (unlike a pickled ``.pt``/``.pth`` checkpoint).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from napari_segnet import __version__
from napari_segnet.io.atomic import atomic_path

from .config import ModelConfig
from .encoders import ENCODERS

FORMAT = "napari-segnet/1"
PICKLE_PREFIXES = (b"\x80", b"PK\x03\x04")  # pickle protocol 2+ and torch's zip checkpoints


class ModelLoadError(ValueError):
    """A model file cannot be loaded; the message is one sentence for the user."""


def save_model(model, path: str | os.PathLike, *, provenance: dict[str, Any] | None = None) -> Path:
    """Save a network's weights, config and provenance to one ``.safetensors`` file.

    The file's metadata also records the napari-segnet version that wrote it
    (``napari_segnet_version``).

    Parameters
    ----------
    model : SegNet
        The network (its ``config`` attribute is stored).
    path : str or os.PathLike
        Destination; written atomically.
    provenance : dict, optional
        JSON-serialisable facts about how the model was made (data, command,
        epochs, metrics...).

    """
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "config": model.config.to_json(),
        "provenance": json.dumps(provenance or {}, default=str),
        "napari_segnet_version": __version__,  # the release that wrote the file
    }
    path = Path(path)
    with atomic_path(path) as temporary:
        save_file(state, str(temporary), metadata=metadata)
    return path


def read_model_file(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any], dict]:
    """Read config, provenance and weights (as CPU tensors) from a model file.

    Raises
    ------
    ModelLoadError
        If the file is missing, a pickle, malformed, or of an unknown
        architecture.

    """
    return _read(path, weights=True)


def read_model_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """Read only the config and provenance of a model file (fast: no weights are read).

    Raises
    ------
    ModelLoadError
        As :func:`read_model_file`.

    Exported models (``.onnx`` files and ``.zip`` BioImage Model Zoo packages
    written by ``napari-segnet export-model``) are read too.
    """
    from .onnx_model import is_exported, read_exported_config

    if is_exported(path):
        return read_exported_config(path)
    config, provenance, _ = _read(path, weights=False)
    return config, provenance


def _read(path: str | os.PathLike, *, weights: bool):
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"Cannot load model {path}: the file does not exist.")
    with open(path, "rb") as handle:
        head = handle.read(9)
    # A safetensors file starts with its header's size, which can begin with byte 0x80 too;
    # the header itself then starts with "{".
    if head.startswith(PICKLE_PREFIXES) and head[8:9] != b"{":
        raise ModelLoadError(
            f"Cannot load model {path.name}: it is a pickled torch checkpoint, which could run "
            "code when opened; napari-segnet loads only .safetensors model files."
        )
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata() or {}
            state = {key: handle.get_tensor(key) for key in handle.keys()} if weights else {}
    except Exception:
        raise ModelLoadError(
            f"Cannot load model {path.name}: it is not a valid .safetensors model file."
        ) from None
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise ModelLoadError(
            f"Cannot load model {path.name}: it is a safetensors file, not a napari-segnet model."
        )
    try:
        config = ModelConfig.from_json(metadata["config"])
        provenance = json.loads(metadata.get("provenance", "{}"))
    except (ValueError, TypeError) as error:
        reason = str(error).rstrip(".")  # the settings' own sentence, inside this one
        raise ModelLoadError(
            f"Cannot load model {path.name}: its settings are invalid ({reason})."
        ) from None
    if not isinstance(config.encoder, str) or config.encoder not in ENCODERS:
        raise ModelLoadError(
            f"Cannot load model {path.name}: its architecture {config.encoder!r} is unknown to "
            f"this version of napari-segnet (known: {', '.join(ENCODERS)})."
        )
    return config, provenance, state


def load_model(path: str | os.PathLike, device: str = "cpu", *, fuse: bool = False):
    """Load a network from a model file or name, ready for inference (``eval`` mode).

    The network knows which model it is: ``model.identity`` is its
    :class:`~napari_segnet.models.ModelIdentity` (name, version, weights hash;
    see :func:`~napari_segnet.models.model_identity`), which outputs record.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.safetensors`` model file, or a model exported by ``napari-segnet
        export-model`` as ``.onnx`` or as a BioImage Model Zoo ``.zip``
        package, which is run by onnxruntime
        (:class:`~napari_segnet.models.onnx_model.OnnxModel`); or the name of a
        bundled model (``nuclei``: its newest version, ``nuclei@1``: that
        version) or of a user model.
    device : str or torch.device
        Where the network runs.
    fuse : bool
        Fold batch norm into the convolutions and use channels-last memory:
        about 15 % faster on CPU, same outputs, but the model cannot be trained
        (exported models are always inference-only).

    Returns
    -------
    model : SegNet or OnnxModel
    provenance : dict

    """
    from .identity import file_identity
    from .network import create_model
    from .onnx_model import is_exported, load_onnx_model

    path = _model_file(path)
    if is_exported(path):
        return load_onnx_model(path, device)

    config, provenance, state = read_model_file(path)
    identity = file_identity(path, config, provenance)
    try:
        model = create_model(config)
    except (TypeError, ValueError, RuntimeError) as error:
        reason = " ".join(str(error).split()).rstrip(".")  # one line for the message
        raise ModelLoadError(
            f"Cannot load model {Path(path).name}: its settings are invalid ({reason})."
        ) from None
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise ModelLoadError(
            f"Cannot load model {Path(path).name}: its weights do not fit its architecture."
        ) from None
    model = model.to(device).eval()
    if fuse:
        from .network import fused_for_inference

        model = fused_for_inference(model)
    model.identity = identity
    return model, provenance


def _model_file(path: str | os.PathLike) -> str | os.PathLike:
    """Return the file of a model name (``nuclei``, ``nuclei@1``, a user model), or the path.

    Raises
    ------
    ModelLoadError
        For a bundled model's unknown version, naming the versions there are.
    """
    from napari_segnet.io.model_identity import split_reference

    from .bundled import BUNDLED, bundled_model, list_models

    if not isinstance(path, str) or Path(path).is_file():
        return path
    models = list_models()
    if path in models:
        return models[path]
    name, version = split_reference(path)
    if version is not None and name in BUNDLED:
        try:
            bundled_model(path)  # raises, naming the versions there are
        except ValueError as error:
            raise ModelLoadError(str(error)) from None
    return path
