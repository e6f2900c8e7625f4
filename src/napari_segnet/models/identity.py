"""The identity of a model: its name, version and a hash of its weights.

The hash of a ``.safetensors`` model is a SHA-256 over its tensors — each tensor's
name, dtype, shape and bytes, in the order of the names — and not over the file: a
rewrite of the file's metadata (its provenance updated, say) keeps the hash, while any
change to any weight changes it. It is read straight from the file (no torch tensors
are made) and computed once per file and modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

from napari_segnet.io.model_identity import ModelIdentity

from .formats import ModelLoadError

__all__ = ["ModelIdentity", "file_identity", "safetensors_sha256", "state_sha256"]

DEFAULT_CONFIG_NAME = "custom"  # ModelConfig's name when nobody named the model
# The version a model file records of itself, in its provenance.
PROVENANCE_VERSION = "model_version"
# Names of torch dtypes in safetensors files, so a model in memory hashes as its file.
_SAFETENSORS_DTYPES = {
    "float64": "F64",
    "float32": "F32",
    "float16": "F16",
    "bfloat16": "BF16",
    "int64": "I64",
    "int32": "I32",
    "int16": "I16",
    "int8": "I8",
    "uint8": "U8",
    "bool": "BOOL",
}
_CACHE: dict[tuple[str, int, int], str] = {}


def file_identity(path: str | os.PathLike, config, provenance: dict[str, Any]) -> ModelIdentity:
    """Identity of a ``.safetensors`` model file whose config and provenance are read.

    Raises
    ------
    ModelLoadError
        If the file is not a readable safetensors file.
    """
    from .bundled import bundled_file_version

    digest = safetensors_sha256(path)
    bundled = bundled_file_version(path)
    if bundled is not None:
        return ModelIdentity(bundled[0], bundled[1], digest)
    # Any other file is named by its file name, the name that loads it again (from the user
    # models folder): never by its config's name, which a fine-tuned copy of a bundled model
    # shares with it, and never with a version, which only bundled models have.
    return ModelIdentity(Path(path).stem, None, digest)


def exported_identity(path: str | os.PathLike, config, provenance: dict, data: bytes):
    """Identity of an exported model: named as a model file, hashed over its ONNX ``data``."""
    digest = hashlib.sha256(data).hexdigest()
    return ModelIdentity(_name(config, path), _version(provenance.get(PROVENANCE_VERSION)), digest)


def safetensors_sha256(path: str | os.PathLike) -> str:
    """SHA-256 over the tensors of a ``.safetensors`` file, not over the file itself.

    Each tensor, in the order of the names, adds a line of JSON
    (``{"dtype", "name", "nbytes", "shape"}``) and then its bytes, so neither the
    file's metadata nor the order of its tensors matter. Cached by path,
    modification time and size.

    Raises
    ------
    ModelLoadError
        If the file is not a readable safetensors file.
    """
    path = Path(path)
    try:
        status = path.stat()
    except OSError:
        raise ModelLoadError(f"Cannot load model {path}: the file does not exist.") from None
    key = (str(path.resolve()), status.st_mtime_ns, status.st_size)
    if key not in _CACHE:
        _CACHE[key] = _hash_file(path, status.st_size)
    return _CACHE[key]


def state_sha256(state: dict) -> str:
    """SHA-256 of a ``state_dict``: the same as :func:`safetensors_sha256` of its saved file."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        dtype = _SAFETENSORS_DTYPES[str(tensor.dtype).removeprefix("torch.")]
        data = tensor.reshape(-1).view(torch.uint8).numpy().tobytes()
        _add(digest, name, dtype, list(tensor.shape), data)
    return digest.hexdigest()


def _hash_file(path: Path, size: int) -> str:
    broken = ModelLoadError(f"Cannot load model {path.name}: it is not a valid .safetensors file.")
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > size - 8:
                raise broken
            header = json.loads(handle.read(length))
            start = 8 + length
            digest = hashlib.sha256()
            for name in sorted(k for k in header if k != "__metadata__"):
                entry = header[name]
                begin, end = entry["data_offsets"]
                handle.seek(start + begin)
                data = handle.read(end - begin)
                if len(data) != end - begin:
                    raise broken
                _add(digest, name, entry["dtype"], list(entry["shape"]), data)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        raise broken from None
    return digest.hexdigest()


def _add(digest, name: str, dtype: str, shape: list[int], data: bytes) -> None:
    record = {"dtype": dtype, "name": name, "nbytes": len(data), "shape": shape}
    digest.update(json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n")
    digest.update(data)


def _name(config, path: str | os.PathLike) -> str:
    name = getattr(config, "name", None)
    return name if name and name != DEFAULT_CONFIG_NAME else Path(path).stem


def _version(value) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value) if value is not None and int(value) == float(value) else None
    except (TypeError, ValueError):
        return None
