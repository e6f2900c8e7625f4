"""Models shipped inside the package, and the folder where users keep their own."""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

BUNDLED = {"nuclei": "nuclei.safetensors"}
DEFAULT_MODEL = "nuclei"
# Model files in the user folder: our own, then exports (ONNX, BioImage Model Zoo packages);
# a name that two files share is the first kind's.
USER_MODEL_SUFFIXES = (".safetensors", ".onnx", ".zip")


def user_models_dir() -> Path:
    """Folder for user models: ``$NAPARI_SEGNET_MODELS`` or ``~/.napari-segnet/models``."""
    return Path(os.environ.get("NAPARI_SEGNET_MODELS", Path.home() / ".napari-segnet" / "models"))


def bundled_model_path(name: str) -> Path:
    """Path of a bundled model file."""
    return Path(str(files("napari_segnet.models").joinpath("weights", BUNDLED[name])))


def list_models() -> dict[str, Path]:
    """Bundled models, then the model files in :func:`user_models_dir`, by name.

    User model files are ``.safetensors`` files and exported models (``.onnx``,
    ``.zip``; see :data:`USER_MODEL_SUFFIXES`).
    """
    models = {name: bundled_model_path(name) for name in BUNDLED}
    folder = user_models_dir()
    if folder.is_dir():
        for suffix in USER_MODEL_SUFFIXES:
            for path in sorted(folder.glob(f"*{suffix}")):
                models.setdefault(path.stem, path)
    return models


def resolve_model(name_or_path: str | os.PathLike | None) -> Path:
    """Turn a model name (bundled or user) or a file path into a path.

    Raises
    ------
    ValueError
        If it is neither a known name nor an existing file.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    models = list_models()
    if str(name_or_path) in models:
        return models[str(name_or_path)]
    path = Path(name_or_path)
    if path.is_file():
        return path
    raise ValueError(
        f"There is no model {str(name_or_path)!r}: give a file path or one of {', '.join(models)}."
    )
