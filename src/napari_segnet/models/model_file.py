"""Model files: one ``.safetensors`` file with the config and provenance as JSON metadata.

safetensors holds only tensors and strings, so opening a model file from a
colleague cannot run code (unlike a pickled ``.pt``/``.pth`` checkpoint). This
module reads and writes those files only; :mod:`napari_segnet.models.checkpoint`
loads any model (a file, an exported model or a name) through it.
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
from .formats import FORMAT, PICKLE_PREFIXES, ModelLoadError
from .identity import file_identity


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


def update_provenance(path: str | os.PathLike, **entries) -> Path:
    """Add or replace entries of a model file's provenance; its weights stay byte for byte.

    For facts measured after a model is made (held-out scores, speed). The
    weights hash that outputs record ignores metadata, so the model stays the
    same model.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = dict(handle.metadata() or {})
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    provenance = {**json.loads(metadata.get("provenance", "{}")), **entries}
    metadata["provenance"] = json.dumps(provenance, default=str)
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
    """
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


def load_model_file(path: str | os.PathLike, device="cpu", *, fuse: bool = False):
    """Load the network of a ``.safetensors`` model file, in ``eval`` mode, with its identity.

    See :func:`napari_segnet.models.load_model`, which also loads exported models
    and model names.

    Returns
    -------
    model : SegNet
    provenance : dict

    Raises
    ------
    ModelLoadError
        As :func:`read_model_file`, and for weights that do not fit the settings.
    """
    from .network import create_model

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
