"""Models shipped inside the package, by name and version, and the folder of the user's own.

A bundled model has a name and integer versions: ``nuclei@1``, ``nuclei@2``. The plain
name (``nuclei``) means its newest version; every version stays loadable by ``name@N``,
so that a lab's results can be repeated after a newer version ships. Each version is
its own file in ``weights/`` whose weights never change: a retrained model is a new
version. (Its metadata may still be updated, e.g. with new scores; the weights hash
that outputs record ignores metadata.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

from napari_segnet.io.model_identity import split_reference

# Name -> {version: file in weights/}. Adding a model or a version is one entry here (and
# its file); a shipped version's weights never change.
BUNDLED: dict[str, dict[int, str]] = {
    "nuclei": {1: "nuclei@1.safetensors", 2: "nuclei@2.safetensors"},
}
DEFAULT_MODEL = "nuclei"
# Model files in the user folder: our own, then exports (ONNX, BioImage Model Zoo packages);
# a name that two files share is the first kind's.
USER_MODEL_SUFFIXES = (".safetensors", ".onnx", ".zip")


@dataclass(frozen=True)
class BundledModel:
    """One version of a bundled model.

    Attributes
    ----------
    name : str
        ``nuclei``.
    version : int
        ``2``.
    path : pathlib.Path
        Its file inside the package.
    newest : bool
        Whether it is the version that the plain name loads.

    """

    name: str
    version: int
    path: Path
    newest: bool

    @property
    def reference(self) -> str:
        """``nuclei@2``: the name that loads exactly this version."""
        return f"{self.name}@{self.version}"


def user_models_dir() -> Path:
    """Folder for user models: ``$NAPARI_SEGNET_MODELS`` or ``~/.napari-segnet/models``."""
    return Path(os.environ.get("NAPARI_SEGNET_MODELS", Path.home() / ".napari-segnet" / "models"))


def bundled_versions(name: str) -> tuple[int, ...]:
    """Return the versions of a bundled model, oldest first (none for other names)."""
    return tuple(sorted(BUNDLED.get(name, {})))


def bundled_model(reference: str) -> BundledModel:
    """Return the bundled model that ``nuclei`` (its newest version) or ``nuclei@1`` names.

    Raises
    ------
    ValueError
        If no bundled model has that name, or it has no such version (the
        message names the versions there are).
    """
    name, version = split_reference(reference)
    versions = bundled_versions(name)
    if not versions:
        raise ValueError(
            f"There is no bundled model {name!r}: the bundled models are {', '.join(BUNDLED)}."
        )
    if version is None:
        version = versions[-1]
    if version not in versions:
        raise ValueError(
            f"There is no version {version} of the bundled model {name}: its versions are "
            f"{_listing([f'{name}@{v}' for v in versions])} "
            f"({name} alone is {name}@{versions[-1]})."
        )
    path = Path(str(files("napari_segnet.models").joinpath("weights", BUNDLED[name][version])))
    return BundledModel(name, version, path, newest=version == versions[-1])


def bundled_model_path(reference: str) -> Path:
    """Path of a bundled model file: ``nuclei`` (the newest version) or ``nuclei@1``.

    Raises
    ------
    ValueError
        As :func:`bundled_model`.
    """
    return bundled_model(reference).path


def bundled_models() -> list[BundledModel]:
    """Every version of every bundled model: by name, newest version first."""
    return [
        bundled_model(f"{name}@{version}")
        for name in BUNDLED
        for version in reversed(bundled_versions(name))
    ]


@cache
def _bundled_by_file() -> dict[Path, tuple[str, int]]:
    return {model.path.resolve(): (model.name, model.version) for model in bundled_models()}


def bundled_file_version(path: str | os.PathLike) -> tuple[str, int] | None:
    """``(name, version)`` if ``path`` is one of the bundled model files, else None."""
    try:
        return _bundled_by_file().get(Path(path).resolve())
    except OSError:
        return None


def user_models() -> dict[str, Path]:
    """Return the model files in :func:`user_models_dir`, by name (their file stem).

    User model files are ``.safetensors`` files and exported models (``.onnx``,
    ``.zip``; see :data:`USER_MODEL_SUFFIXES`).
    """
    models: dict[str, Path] = {}
    folder = user_models_dir()
    if folder.is_dir():
        for suffix in USER_MODEL_SUFFIXES:
            for path in sorted(folder.glob(f"*{suffix}")):
                models.setdefault(path.stem, path)
    return models


def list_models() -> dict[str, Path]:
    """Every model name that loads, with its file: bundled models, then user models.

    Each bundled model is listed by its plain name (its newest version) and by
    every ``name@N``; then come the files of :func:`user_models` (a user file
    cannot take a bundled model's name).
    """
    models = {}
    for model in bundled_models():
        if model.newest:
            models[model.name] = model.path
    models |= {model.reference: model.path for model in bundled_models()}
    for name, path in user_models().items():
        models.setdefault(name, path)
    return models


def resolve_model(name_or_path: str | os.PathLike | None) -> Path:
    """Turn a model name (bundled, ``name@N``, or user) or a file path into a path.

    Raises
    ------
    ValueError
        If it is neither a known name nor an existing file; for a bundled
        model's unknown version, the message names the versions there are.
    """
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    models = list_models()
    text = str(name_or_path)
    if text in models:
        return models[text]
    path = Path(name_or_path)
    if path.is_file():
        return path
    name, version = split_reference(text)
    if version is not None and name in BUNDLED:
        bundled_model(text)  # raises, naming the versions there are
    raise ValueError(f"There is no model {text!r}: give a file path or one of {', '.join(models)}.")


def _listing(items: list[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"
