"""Export a network to ONNX or TorchScript, checked against torch before anything is written.

Both formats hold the network with its output activations (see
:mod:`napari_segnet.models.exported`) and any batch size, height and width.
ONNX files are made by torch's ``torch.export``-based exporter (the default
of ``torch.onnx.export`` since torch 2.9; the older TorchScript-based one is
deprecated) and carry the model's config and provenance in their
``metadata_props``; TorchScript files are traced and carry them as extra
files. Each export is run on a random batch and on the bundled sample image
(onnxruntime for ONNX, torch for TorchScript) and refused when its outputs
differ from the torch network's by more than a tolerance.
"""

from __future__ import annotations

import copy
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from napari_segnet import __version__
from napari_segnet.io.atomic import atomic_path

from .exported import (
    FORMAT,
    INPUT_NAME,
    METADATA_KEYS,
    ExportedNetwork,
    ModelExportError,
    missing_extra,
    output_names,
)

OPSET = 18  # ONNX opset of exported files: onnxruntime ≥ 1.14 and most other runtimes run it
ABSOLUTE_TOLERANCE = 1e-4  # probabilities; distances (in pixels) also get a relative one
RELATIVE_TOLERANCE = 1e-4
DYNAMIC_AXES = {0: "batch", 2: "height", 3: "width"}
TRACE_SHAPE = (1, 1, 256, 256)


@dataclass(frozen=True)
class ExportCheck:
    """How closely an exported network reproduces the torch network.

    Attributes
    ----------
    runtime : str
        What ran the exported file (``"onnxruntime"`` or ``"torchscript"``).
    differences : dict
        Largest absolute difference of any output, by input (e.g.
        ``"random 2×1×256×320"``).

    """

    runtime: str
    differences: dict[str, float]

    @property
    def max_difference(self) -> float:
        """The largest difference over all inputs."""
        return max(self.differences.values())

    def summary(self) -> str:
        """One line: the largest differences, per input."""
        parts = ", ".join(f"{value:.1e} on the {name}" for name, value in self.differences.items())
        return f"max |{self.runtime} − torch| {parts}"


def file_metadata(model, provenance: dict[str, Any] | None) -> dict[str, str]:
    """Return the strings an exported file carries about its model (see ``METADATA_KEYS``)."""
    return {
        METADATA_KEYS["format"]: FORMAT,
        METADATA_KEYS["config"]: model.config.to_json(),
        METADATA_KEYS["provenance"]: json.dumps(provenance or {}, default=str),
        METADATA_KEYS["version"]: __version__,
        METADATA_KEYS["outputs"]: json.dumps(output_names(model.config)),
        METADATA_KEYS["size_multiple"]: str(model.size_multiple),
    }


def export_onnx(
    model, path: str | os.PathLike, *, provenance: dict[str, Any] | None = None
) -> ExportCheck:
    """Write a network as a checked, self-describing ONNX file.

    Parameters
    ----------
    model : SegNet
        The network.
    path : str or os.PathLike
        Destination; written atomically, and only if the check passes.
    provenance : dict, optional
        How the model was made (stored in the file's metadata).

    Returns
    -------
    ExportCheck

    Raises
    ------
    ModelExportError
        If the export fails, the onnx packages are missing, or onnxruntime's
        outputs differ from torch's by more than the tolerance.

    """
    data = onnx_bytes(model, provenance=provenance)
    check = check_onnx(model, data)
    _write(path, data)
    return check


def export_torchscript(
    model, path: str | os.PathLike, *, provenance: dict[str, Any] | None = None
) -> ExportCheck:
    """Write a network as a checked TorchScript file (traced; config in its extra files).

    Parameters and errors are those of :func:`export_onnx`.
    """
    data = torchscript_bytes(model, provenance=provenance)
    check = check_torchscript(model, data)
    _write(path, data)
    return check


def onnx_bytes(model, *, provenance: dict[str, Any] | None = None, opset: int = OPSET) -> bytes:
    """Export a network to a serialised ONNX model with dynamic batch, height and width."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter translates with it)
    except ImportError as error:
        raise missing_extra("Exporting to ONNX", error) from None

    network = _cpu_copy(model)
    example = torch.rand(TRACE_SHAPE[0], model.config.in_channels, *TRACE_SHAPE[2:])
    dynamic = {axis: torch.export.Dim.DYNAMIC for axis in DYNAMIC_AXES}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                ExportedNetwork(network),
                (example,),
                dynamo=True,
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=list(output_names(model.config)),
                dynamic_shapes=(dynamic,),
                verbose=False,
            )
        proto = program.model_proto
    except Exception as error:
        reason = " ".join(str(error).split())[:300].rstrip(".")
        raise ModelExportError(f"Exporting the network to ONNX failed ({reason}).") from None
    _name_dynamic_axes(proto)
    proto.producer_name, proto.producer_version = "napari-segnet", __version__
    proto.doc_string = (
        f"napari-segnet model {model.config.name!r}: outputs {output_names(model.config)}"
    )
    onnx.helper.set_model_props(proto, file_metadata(model, provenance))
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def torchscript_bytes(model, *, provenance: dict[str, Any] | None = None) -> bytes:
    """Trace a network to a serialised TorchScript module with the metadata as extra files."""
    network = ExportedNetwork(_cpu_copy(model))
    example = torch.rand(TRACE_SHAPE[0], model.config.in_channels, *TRACE_SHAPE[2:])
    with warnings.catch_warnings():
        # torch.jit is deprecated but still what TorchScript consumers (e.g. the BioImage
        # Model Zoo's torchscript weights) load; trace-time warnings are about the shape
        # tests in forward, which hold for every input of a given network.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            traced = torch.jit.trace(network, example, check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files=file_metadata(model, provenance))
    return buffer.getvalue()


def check_inputs(model) -> dict[str, np.ndarray]:
    """Return the inputs every export is checked on: a random batch and the sample image.

    The sample is normalised as for inference and reflect-padded to the network's
    size multiple, as the tiles of a whole-image prediction are.
    """
    from napari_segnet.data import sample_path
    from napari_segnet.inference.normalise import normalise
    from napari_segnet.io import read_image

    channels = model.config.in_channels
    random = np.random.default_rng(0).random((2, channels, 256, 320), dtype=np.float32)
    plane = normalise(
        np.asarray(read_image(sample_path("nuclei")).data), model.config.normalise_percentiles
    )
    multiple = model.size_multiple
    padded = np.pad(plane, [(0, -n % multiple) for n in plane.shape], mode="reflect")
    sample = np.repeat(padded[None, None], channels, axis=1)
    return {_described("random", random): random, _described("sample", sample): sample}


def torch_outputs(model, batch: np.ndarray) -> list[np.ndarray]:
    """Return the activated outputs of the torch network, in export order."""
    network = ExportedNetwork(_cpu_copy(model))
    with torch.inference_mode():
        return [t.numpy() for t in network(torch.from_numpy(batch))]


def check_onnx(model, data: bytes) -> ExportCheck:
    """Run a serialised ONNX export with onnxruntime and compare it with the torch network.

    Raises
    ------
    ModelExportError
        If the outputs differ by more than the tolerance.
    """
    from .onnx_model import create_session

    session = create_session(data, threads=torch.get_num_threads())
    return _compare(
        model, "onnxruntime", lambda batch: session.run(None, {INPUT_NAME: batch}), "ONNX"
    )


def check_torchscript(model, data: bytes) -> ExportCheck:
    """Run a serialised TorchScript export and compare it with the torch network.

    Raises
    ------
    ModelExportError
        If the outputs differ by more than the tolerance.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation
        traced = torch.jit.load(io.BytesIO(data), map_location="cpu")

    def run(batch):
        with torch.inference_mode():
            return [t.numpy() for t in traced(torch.from_numpy(batch))]

    return _compare(model, "torchscript", run, "TorchScript")


def _compare(model, runtime: str, run, label: str) -> ExportCheck:
    differences = {}
    for name, batch in check_inputs(model).items():
        expected, got = torch_outputs(model, batch), run(batch)
        worst = 0.0
        for key, want, have in zip(output_names(model.config), expected, got):
            if have.shape != want.shape:
                raise ModelExportError(
                    f"The {label} export's {key!r} output has shape {have.shape} on the {name}, "
                    f"not {want.shape}; it was not written."
                )
            error = np.abs(have.astype(np.float64) - want)
            worst = max(worst, float(error.max()))
            if not np.all(error <= ABSOLUTE_TOLERANCE + RELATIVE_TOLERANCE * np.abs(want)):
                raise ModelExportError(
                    f"The {label} export differs from the torch network by up to {error.max():.1e} "
                    f"in its {key!r} output on the {name} (more than the tolerance "
                    f"{ABSOLUTE_TOLERANCE:.0e}); it was not written."
                )
        differences[name] = worst
    return ExportCheck(runtime, differences)


def _described(kind: str, batch: np.ndarray) -> str:
    return f"{kind} input {'×'.join(map(str, batch.shape))}"


def _cpu_copy(model):
    """Return an ``eval``-mode copy of the network on the CPU, in contiguous memory."""
    network = copy.deepcopy(model).cpu().eval()
    return network.to(memory_format=torch.contiguous_format)


def _name_dynamic_axes(proto) -> None:
    """Call the exporter's symbolic sizes batch, height and width everywhere in the graph."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    names = {
        dims[axis].dim_param: name for axis, name in DYNAMIC_AXES.items() if dims[axis].dim_param
    }
    for value in [*proto.graph.input, *proto.graph.output, *proto.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in names:
                dim.dim_param = names[dim.dim_param]


def _write(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
