"""Load any model: a ``.safetensors`` file, an exported ``.onnx``/``.zip`` model, or a name.

The one module that knows every kind of model: it tells them apart and hands each
to its own module (:mod:`~napari_segnet.models.model_file` for model files,
:mod:`~napari_segnet.models.onnx_model` for exported models), which import only
:mod:`~napari_segnet.models.formats` and what lies below them, never this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import model_file
from .bundled import BUNDLED, bundled_model, list_models, resolve_model
from .config import ModelConfig
from .formats import FORMAT, PICKLE_PREFIXES, ModelLoadError
from .identity import DEFAULT_CONFIG_NAME, ModelIdentity, file_identity, state_sha256
from .model_file import read_model_file, save_model
from .onnx_model import is_exported, load_onnx_model, read_exported_config

__all__ = [
    "FORMAT",
    "PICKLE_PREFIXES",
    "ModelLoadError",
    "load_model",
    "model_identity",
    "read_model_config",
    "read_model_file",
    "save_model",
]


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
    path = _model_file(path)
    if is_exported(path):
        return load_onnx_model(path, device)
    return model_file.load_model_file(path, device, fuse=fuse)


def read_model_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """Read only the config and provenance of a model file (fast: no weights are read).

    Exported models (``.onnx`` files and ``.zip`` BioImage Model Zoo packages
    written by ``napari-segnet export-model``) are read too.

    Raises
    ------
    ModelLoadError
        If the file is missing, a pickle, malformed, or of an unknown
        architecture.
    """
    if is_exported(path):
        return read_exported_config(path)
    return model_file.read_model_config(path)


def model_identity(model_or_path) -> ModelIdentity:
    """Return the :class:`ModelIdentity` of a loaded model, a model file or a model name.

    Parameters
    ----------
    model_or_path : SegNet, OnnxModel, str or os.PathLike
        A model from :func:`~napari_segnet.models.load_model` (which carries its
        identity as ``model.identity``), another network (hashed from its
        ``state_dict``, named after its config, without a version), a model
        file, or a model name (``nuclei``, ``nuclei@1``, a user model).

    Returns
    -------
    ModelIdentity
        For a bundled model, its name and version. For a ``.safetensors`` file,
        the name in its config (the file's stem when the config has none) and
        the version its provenance records as ``model_version`` (else None).
        Exported models (``.onnx``, BioImage Model Zoo ``.zip``) are named the
        same way, but their hash is that of the ONNX file (the one inside a
        ``.zip``): it covers the graph and its metadata, so it changes when
        the file is exported again.

    Raises
    ------
    ModelLoadError
        If the file cannot be read as a model.
    ValueError
        If a name is not a known model (see
        :func:`~napari_segnet.models.bundled.resolve_model`).

    """
    identity = getattr(model_or_path, "identity", None)
    if isinstance(identity, ModelIdentity):
        return identity
    if hasattr(model_or_path, "state_dict"):
        config = getattr(model_or_path, "config", None)
        name = getattr(config, "name", None) or DEFAULT_CONFIG_NAME
        return ModelIdentity(name, None, state_sha256(model_or_path.state_dict()))
    path = Path(model_or_path)
    if not path.is_file():
        path = resolve_model(model_or_path)
    if is_exported(path):
        return load_onnx_model(path, threads=1)[0].identity
    config, provenance = model_file.read_model_config(path)
    return file_identity(path, config, provenance)


def _model_file(path: str | os.PathLike) -> str | os.PathLike:
    """Return the file of a model name (``nuclei``, ``nuclei@1``, a user model), or the path.

    Raises
    ------
    ModelLoadError
        For a bundled model's unknown version, naming the versions there are.
    """
    from napari_segnet.io.model_identity import split_reference

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
