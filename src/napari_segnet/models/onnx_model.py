"""Exported models run by onnxruntime, behind the interface the inference code uses.

:class:`OnnxModel` reads an ONNX file written by ``napari-segnet export-model``
(or the ONNX weights inside a BioImage Model Zoo package it wrote) and quacks
like a :class:`~napari_segnet.models.SegNet` in ``eval`` mode: ``config``,
``size_multiple``, ``parameters()`` (for its device) and a forward returning a
dict of tensors. Its outputs already went through their activations
(``outputs_activated``), which the tiling code then does not apply again.
An ONNX file holds a graph of operators, never code, so opening one from a
colleague is as safe as opening a ``.safetensors`` model file.
"""

from __future__ import annotations

import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import ModelConfig
from .exported import INPUT_NAME, METADATA_KEYS
from .formats import FORMAT, ModelLoadError
from .identity import exported_identity

EXPORTED_SUFFIXES = (".onnx", ".zip")

_log = logging.getLogger(__name__)


def is_exported(path: str | os.PathLike) -> bool:
    """Whether a model path names an exported model (``.onnx`` or a ``.zip`` package)."""
    return Path(path).suffix.lower() in EXPORTED_SUFFIXES


class OnnxModel(nn.Module):
    """An exported network run by onnxruntime, usable wherever inference takes a SegNet.

    Parameters
    ----------
    session : onnxruntime.InferenceSession
        The session of an exported network.
    config : ModelConfig
        The model's config, as stored in the file.
    size_multiple : int
        The network's stride: inputs whose sizes are multiples of it need no padding.
    name : str
        The file's name, for messages.

    Attributes
    ----------
    outputs_activated : bool
        Always True: the outputs are probabilities and distances, not logits.
    device_note : str or None
        Why the model runs on another device than the one asked for (CUDA
        asked, but onnxruntime has no usable CUDA provider), or None.

    """

    outputs_activated = True
    device_note: str | None = None

    def __init__(self, session, config: ModelConfig, size_multiple: int, name: str = "model"):
        super().__init__()
        self.session, self.config, self.name = session, config, name
        self.names = tuple(output.name for output in session.get_outputs())
        self._size_multiple = int(size_multiple)
        # Where the outputs go (the CPU unless moved), for code that asks the parameters for
        # the device. It looks trainable so that a training loop gets as far as train(),
        # which refuses in words.
        self._anchor = nn.Parameter(torch.empty(0))

    @property
    def size_multiple(self) -> int:
        """Input sizes that are multiples of this avoid padding inside the network."""
        return self._size_multiple

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Return the activated outputs, by name, for a (B, C, Y, X) float input."""
        array = np.ascontiguousarray(x.detach().float().cpu().numpy())
        values = self.session.run(None, {INPUT_NAME: array})
        device = self._anchor.device
        return {name: torch.from_numpy(v).to(device) for name, v in zip(self.names, values)}

    def train(self, mode: bool = True) -> OnnxModel:
        """Stay in inference mode; asking for training mode is an error."""
        if mode:
            raise ModelLoadError(self._inference_only())
        return super().train(False)

    def state_dict(self, *args, **kwargs):
        """Refuse: an exported model's weights cannot be read back for training."""
        raise ModelLoadError(self._inference_only())

    def _inference_only(self) -> str:
        return (
            f"{self.name} is an exported model, which runs only for inference; "
            "train from the .safetensors model it was exported from."
        )


def load_onnx_model(
    path: str | os.PathLike, device="cpu", *, threads: int | None = None
) -> tuple[OnnxModel, dict[str, Any]]:
    """Load an exported ``.onnx`` file or BioImage Model Zoo ``.zip`` package.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    device : str or torch.device
        ``cuda`` uses onnxruntime's CUDA provider where the installed
        onnxruntime has a usable one; everything else runs on the CPU. When
        CUDA was asked for and the model runs on the CPU, one line saying so is
        logged as a warning (logger ``napari_segnet.models.onnx_model``) and
        kept as the model's ``device_note``.
    threads : int, optional
        Threads of onnxruntime (default: as many as torch uses).

    Returns
    -------
    model : OnnxModel
        With its ``identity``: named after its config, versioned as its
        provenance says, and hashed over the ONNX file (the one inside a
        ``.zip`` package) rather than over its tensors; see
        :func:`~napari_segnet.models.model_identity`.
    provenance : dict

    Raises
    ------
    ModelLoadError
        If the file is not a model exported by napari-segnet.

    """
    path = Path(path)
    data = read_onnx_bytes(path)
    session = create_session(data, device, threads=threads, name=path.name)
    config, provenance, multiple = _metadata(session.get_modelmeta().custom_metadata_map, path)
    model = OnnxModel(session, config, multiple, path.name)
    model.identity = exported_identity(path, config, provenance, data)
    if torch.device(device).type == "cuda":
        if "CUDAExecutionProvider" in session.get_providers():
            model.to(device)
        else:
            model.device_note = cuda_unavailable_note(path.name)
            _log.warning(model.device_note)
    return model.eval(), provenance


def cuda_unavailable_note(name: str) -> str:
    """Say in one line that an exported model runs on the CPU although CUDA was asked for."""
    import onnxruntime as ort

    return (
        f"{name} runs on the CPU, not on CUDA: onnxruntime {ort.__version__} has no usable "
        "CUDA provider here (onnxruntime-gpu, matching this CUDA, has one)."
    )


def read_exported_config(path: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """Read the config and provenance of an exported ``.onnx`` file or ``.zip`` package.

    Raises
    ------
    ModelLoadError
        As :func:`load_onnx_model`.
    """
    model, provenance = load_onnx_model(path, threads=1)
    return model.config, provenance


def create_session(data: bytes, device="cpu", *, threads: int | None = None, name: str = "model"):
    """Return an onnxruntime session of a serialised ONNX model.

    Raises
    ------
    ModelLoadError
        If onnxruntime cannot read it.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings about unused initialisers
    providers = ["CPUExecutionProvider"]
    cuda = "CUDAExecutionProvider"
    if torch.device(device).type == "cuda" and cuda in ort.get_available_providers():
        providers.insert(0, cuda)
    try:
        return ort.InferenceSession(data, options, providers=providers)
    except Exception:
        raise ModelLoadError(f"Cannot load model {name}: it is not a valid ONNX file.") from None


def read_onnx_bytes(path: Path) -> bytes:
    """Return the ONNX model of a ``.onnx`` file or of a BioImage Model Zoo ``.zip`` package."""
    if not path.is_file():
        raise ModelLoadError(f"Cannot load model {path}: the file does not exist.")
    if path.suffix.lower() != ".zip":
        return path.read_bytes()
    try:
        with zipfile.ZipFile(path) as package:
            member = _onnx_member(package, path.name)
            return package.read(member)
    except zipfile.BadZipFile:
        raise ModelLoadError(
            f"Cannot load model {path.name}: it is not a valid zip file."
        ) from None


def _onnx_member(package: zipfile.ZipFile, name: str) -> str:
    """Return the name of the ONNX weights inside a package (its one ``.onnx`` file)."""
    names = package.namelist()
    if "rdf.yaml" not in names:
        raise ModelLoadError(
            f"Cannot load model {name}: it is a zip file, not a BioImage Model Zoo package."
        )
    weights = [member for member in names if member.lower().endswith(".onnx")]
    if len(weights) != 1:
        raise ModelLoadError(
            f"Cannot load model {name}: the package has no ONNX weights, which napari-segnet "
            "runs (export it again with napari-segnet export-model)."
        )
    return weights[0]


def _metadata(metadata: dict[str, str], path: Path) -> tuple[ModelConfig, dict, int]:
    if metadata.get(METADATA_KEYS["format"]) != FORMAT or METADATA_KEYS["config"] not in metadata:
        raise ModelLoadError(
            f"Cannot load model {path.name}: it is an ONNX model, but not one exported by "
            "napari-segnet (its metadata has no napari-segnet settings)."
        )
    try:
        config = ModelConfig.from_json(metadata[METADATA_KEYS["config"]])
        provenance = json.loads(metadata.get(METADATA_KEYS["provenance"], "{}"))
        multiple = int(metadata[METADATA_KEYS["size_multiple"]])
    except (ValueError, TypeError, KeyError) as error:
        reason = str(error).rstrip(".")
        raise ModelLoadError(
            f"Cannot load model {path.name}: its settings are invalid ({reason})."
        ) from None
    return config, provenance, multiple
