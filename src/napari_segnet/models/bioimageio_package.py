"""BioImage Model Zoo packages (model spec 0.5) of a network, tested as the zoo tests them.

The package holds the network twice, as ONNX and as TorchScript weights (both
with their output activations, see :mod:`napari_segnet.models.exported`),
a test input (the bundled sample image) with the outputs the torch network
gives for it, a cover image, the model card as documentation, and the
model's config and training provenance under ``config.napari_segnet``. The
input's preprocessing is a ``scale_range`` between the same percentiles as
napari-segnet's normalisation. Nothing here downloads: the package refers to
no URL, and the test reads only the package.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Generator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from napari_segnet import __version__
from napari_segnet.io.atomic import atomic_path
from napari_segnet.progress import Progress

from .export import ExportCheck, export_onnx, export_torchscript, torch_outputs
from .exported import ModelExportError, missing_extra, output_names
from .model_card import CITATIONS, OUTPUT_DESCRIPTIONS, cover_image, model_card

MIN_SIZE_STEPS = 8  # the smallest input edge, in the network's size multiples
HALO = 32  # pixels a consumer that tiles should crop from each output tile's border
TEST_TINT = (0.35, 0.55, 1.0)  # R, G, B of the colour test input: a blue (DAPI-like) stain
LICENSE = "BSD-3-Clause"
AUTHORS = ("napari-segnet contributors",)


@dataclass(frozen=True)
class PackageReport:
    """What writing a package checked.

    Attributes
    ----------
    checks : tuple of ExportCheck
        The ONNX and TorchScript weights against the torch network.
    test : str
        The status of bioimageio.core's test of the written package
        (``"passed"``), or ``"not run"``.

    """

    checks: tuple[ExportCheck, ...]
    test: str


def export_bioimageio(
    model, path: str | os.PathLike, *, provenance: dict[str, Any] | None = None, test: bool = True
) -> PackageReport:
    """Write a BioImage Model Zoo package (see :func:`iter_export_bioimageio`)."""
    from napari_segnet.progress import drain

    return drain(iter_export_bioimageio(model, path, provenance=provenance, test=test))


def iter_export_bioimageio(
    model, path: str | os.PathLike, *, provenance: dict[str, Any] | None = None, test: bool = True
) -> Generator[Progress, None, PackageReport]:
    """Write a BioImage Model Zoo ``.zip`` package of a network; yield progress.

    Parameters
    ----------
    model : SegNet
        The network.
    path : str or os.PathLike
        The package; written atomically, and only if every check passes.
    provenance : dict, optional
        How the model was made (from its model file).
    test : bool
        Run bioimageio.core's test of the package (as ``bioimageio test``)
        before moving it into place.

    Returns
    -------
    PackageReport

    Raises
    ------
    ModelExportError
        If an export check or the package test fails, or the export extra is
        missing.

    """
    _spec()  # before any work: say at once when the export extra is missing
    if test:
        _test_model()
    provenance = provenance or {}
    steps = 5 if test else 4
    with tempfile.TemporaryDirectory(prefix="napari-segnet-package-") as folder:
        folder = Path(folder)
        yield Progress(0, steps, "exporting ONNX weights")
        onnx_check = export_onnx(model, folder / "weights.onnx", provenance=provenance)
        yield Progress(1, steps, "tracing TorchScript weights")
        script_check = export_torchscript(model, folder / "weights.pt", provenance=provenance)
        yield Progress(2, steps, "writing test tensors, cover and model card")
        files = _write_files(model, provenance, folder)
        description = package_description(model, provenance, files)
        yield Progress(3, steps, "writing the package")
        status = "not run"
        with atomic_path(path) as temporary:
            _save(description, temporary)
            if test:
                yield Progress(4, steps, "testing the package")
                status = test_package(temporary)
    yield Progress(steps, steps, "done")
    return PackageReport((onnx_check, script_check), status)


def test_package(path: str | os.PathLike) -> str:
    """Run bioimageio.core's test of a package (every weights format); return ``"passed"``.

    Raises
    ------
    ModelExportError
        If the test fails; the message names its first failing check.
    """
    summary = _test_model()(Path(path))
    if summary.status == "passed":
        return summary.status
    failed = next((d for d in summary.details if d.status == "failed"), None)
    reason = failed.name if failed is not None else summary.status
    if failed is not None and failed.errors:
        reason = f"{reason}: {' '.join(failed.errors[0].msg.split())[:300]}"
    raise ModelExportError(f"The package failed bioimageio's test ({reason.rstrip('.')}).")


def test_input(model) -> np.ndarray:
    """Return the test input: the bundled sample image cropped to the size multiple.

    A network that reads three channels gets the sample as a colour image (a
    blue stain as a colour camera records it), so the test shows that R, G and
    B are scaled together, as declared.

    Returns
    -------
    ndarray of float32, shape (1, C, Y, X)
        The raw intensities (before the package's preprocessing).
    """
    from napari_segnet.data import sample_path
    from napari_segnet.inference.normalise import to_gray
    from napari_segnet.io import read_image

    plane = to_gray(np.asarray(read_image(sample_path("nuclei")).data))
    multiple = model.size_multiple
    height, width = (n - n % multiple for n in plane.shape)
    crop = plane[:height, :width].astype(np.float32)
    if model.config.in_channels == 3:
        return (crop[None, None] * np.array(TEST_TINT, np.float32)[None, :, None, None]).copy()
    return np.repeat(crop[None, None], model.config.in_channels, axis=1)


def scale_range(batch: np.ndarray, percentiles: tuple[float, float]) -> np.ndarray:
    """Apply the package's preprocessing: percentiles of each image to 0 and 1.

    This is bioimageio's ``scale_range`` with ``eps = 1e-6``, which for
    images up to 1024 pixels a side gives napari-segnet's normalisation (of
    images it need not invert) up to rounding. The channels of an image are
    scaled together: R, G and B get the same low and high, so hue is kept, as
    in napari-segnet (which takes them from the luminance, not from all three).
    """
    low, high = np.percentile(batch, percentiles, axis=(1, 2, 3), keepdims=True)
    return ((batch - low) / (high - low + 1e-6)).astype(np.float32)


def channel_names(model) -> dict[str, list[str]]:
    """Channel names of each output of an exported network."""
    config = model.config
    names = {
        "instance": list(config.instance_classes),
        "semantic": list(config.semantic_classes),
        "star_prob": ["object"],
        "star_dist": [f"ray{k}" for k in range(config.star_rays)],
    }
    return {name: names[name] for name in output_names(config)}


def _write_files(model, provenance: dict[str, Any], folder: Path) -> dict[str, Path]:
    from skimage.io import imsave

    raw = test_input(model)
    outputs = torch_outputs(model, scale_range(raw, model.config.normalise_percentiles))
    files = {"input": folder / "test_input.npy"}
    np.save(files["input"], raw)
    for name, values in zip(output_names(model.config), outputs):
        files[name] = folder / f"test_output_{name}.npy"
        np.save(files[name], values)
    normalised = scale_range(raw, model.config.normalise_percentiles)[0].mean(axis=0)
    files["cover"] = folder / "cover.png"
    cover = cover_image(normalised, outputs[0][0], width=min(512, raw.shape[-1]))
    imsave(files["cover"], cover, check_contrast=False)
    parameters = sum(p.numel() for p in model.parameters())
    card = model_card(model.config, provenance, channel_names(model), parameters, _sizes(model))
    files["documentation"] = folder / "README.md"
    files["documentation"].write_text(card, encoding="utf-8")
    files["onnx"], files["torchscript"] = folder / "weights.onnx", folder / "weights.pt"
    return files


def package_description(model, provenance: dict[str, Any], files: dict[str, Path]):
    """Return the ``ModelDescr`` (spec 0.5) of a package made of ``files``.

    Raises
    ------
    ModelExportError
        If bioimageio.spec finds the description invalid.
    """
    spec = _spec()
    try:
        return _model_description(spec, model, provenance, files)
    except ValueError as error:  # pydantic's ValidationError is one
        reason = " ".join(str(error).split())[:300].rstrip(".")
        raise ModelExportError(f"The package's description is invalid ({reason}).") from None


def _model_description(spec, model, provenance: dict[str, Any], files: dict[str, Path]):
    config = model.config
    # The zoo's names: at most 64 letters, digits, spaces, _ - ( ).
    name = re.sub(r"[^\w\-() ]", "-", f"napari-segnet {config.name}")[:64]
    return spec.ModelDescr(
        name=name,
        description="Nucleus instance segmentation (2-D): per-pixel probabilities of "
        "background, interior and boundary from an encoder-decoder network; "
        "napari-segnet turns them into one label per object.",
        authors=[spec.Author(name=author) for author in AUTHORS],
        cite=[spec.CiteEntry(text=text, doi=spec.Doi(doi)) for text, doi in CITATIONS],
        license=spec.LicenseId(LICENSE),
        documentation=spec.FileDescr(source=files["documentation"]),
        covers=[spec.FileDescr(source=files["cover"])],
        tags=["nuclei", "instance-segmentation", "fluorescence-light-microscopy", "2d", "napari"],
        version=spec.Version(__version__),
        timestamp=spec.Datetime(datetime.now(UTC)),
        inputs=_inputs(spec, model, files),
        outputs=_outputs(spec, model, files),
        weights=_weights(spec, files),
        config=spec.Config(
            bioimageio=spec.BioimageioConfig(
                architecture_type="encoder-decoder",
                task="instance segmentation",
                target_structure=["nucleus"],
                model_parameter_count=sum(p.numel() for p in model.parameters()),
            ),
            napari_segnet={
                "version": __version__,
                "model": asdict(config),
                "outputs": list(output_names(config)),
                "size_multiple": model.size_multiple,
                "provenance": provenance,
            },
        ),
    )


def _inputs(spec, model, files: dict[str, Path]) -> list:
    config = model.config
    smallest, step = _sizes(model)
    size = spec.ParameterizedSize(min=smallest, step=step)
    low, high = config.normalise_percentiles
    scaled = [spec.AxisId("y"), spec.AxisId("x")]
    description = (
        "one image: fluorescence as it is, colour as luminance, brightfield "
        "and H&E inverted (objects brighter than the background)"
    )
    if config.in_channels > 1:  # R, G, B scaled together, so hue is kept
        scaled = [spec.AxisId("channel"), *scaled]
        description = (  # at most 128 characters
            "one image as R, G, B scaled together (grey: one plane in all three), brightfield "
            "and H&E inverted (objects brighter)"
        )
    return [
        spec.InputTensorDescr(
            id=spec.TensorId("input"),
            description=description,
            axes=[
                spec.BatchAxis(),
                spec.ChannelAxis(channel_names=[f"channel{i}" for i in range(config.in_channels)]),
                spec.SpaceInputAxis(id=spec.AxisId("y"), size=size),
                spec.SpaceInputAxis(id=spec.AxisId("x"), size=size),
            ],
            test_tensor=spec.FileDescr(source=files["input"]),
            data=spec.IntervalOrRatioDataDescr(type="float32"),
            preprocessing=[
                spec.ScaleRangeDescr(
                    kwargs=spec.ScaleRangeKwargs(
                        axes=scaled,
                        min_percentile=low,
                        max_percentile=high,
                        eps=1e-6,
                    )
                )
            ],
        )
    ]


def _outputs(spec, model, files: dict[str, Path]) -> list:
    return [
        spec.OutputTensorDescr(
            id=spec.TensorId(name),
            description=OUTPUT_DESCRIPTIONS[name],
            axes=[
                spec.BatchAxis(),
                spec.ChannelAxis(channel_names=channels),
                *(
                    spec.SpaceOutputAxisWithHalo(
                        id=spec.AxisId(axis),
                        size=spec.SizeReference(
                            tensor_id=spec.TensorId("input"), axis_id=spec.AxisId(axis)
                        ),
                        halo=HALO,
                    )
                    for axis in ("y", "x")
                ),
            ],
            test_tensor=spec.FileDescr(source=files[name]),
            data=spec.IntervalOrRatioDataDescr(
                type="float32", range=(0.0, None if name == "star_dist" else 1.0)
            ),
        )
        for name, channels in channel_names(model).items()
    ]


def _sizes(model) -> tuple[int, int]:
    """Return the smallest input edge and the step between edges the package declares."""
    return MIN_SIZE_STEPS * model.size_multiple, model.size_multiple


def _weights(spec, files: dict[str, Path]):
    import torch

    from .export import OPSET

    torch_version = torch.__version__.split("+")[0]
    return spec.WeightsDescr(
        torchscript=spec.TorchscriptWeightsDescr(
            source=files["torchscript"],
            pytorch_version=spec.Version(torch_version),
            comment="traced from the trained torch network, output activations included",
        ),
        onnx=spec.OnnxWeightsDescr(
            source=files["onnx"],
            opset_version=OPSET,
            parent="torchscript",
            comment="exported from the same torch network as the TorchScript weights "
            "(torch.onnx, torch.export-based), checked against it with onnxruntime",
        ),
    )


def _spec():
    """Return bioimageio.spec's model spec 0.5 module."""
    try:
        from bioimageio.spec.model import v0_5
    except ImportError as error:
        raise missing_extra("Writing a BioImage Model Zoo package", error) from None
    return v0_5


def _test_model():
    """Return bioimageio.core's ``test_model``."""
    try:
        from bioimageio.core import test_model
    except ImportError as error:
        raise missing_extra("Testing a BioImage Model Zoo package", error) from None
    return test_model


def _save(description, path: Path) -> None:
    try:
        from bioimageio.spec import save_bioimageio_package
    except ImportError as error:
        raise missing_extra("Writing a BioImage Model Zoo package", error) from None
    try:
        save_bioimageio_package(description, output_path=path)
    except Exception as error:
        reason = " ".join(str(error).split())[:300].rstrip(".")
        raise ModelExportError(f"Writing the package failed ({reason}).") from None
