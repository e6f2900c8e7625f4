"""``napari-segnet export-model``: a model as ONNX, TorchScript or a BioImage Model Zoo package."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UserError, prepare_output_folder, run_with_progress_bar

FORMATS = ("bioimageio", "onnx", "torchscript")
SUFFIXES = {"bioimageio": ".zip", "onnx": ".onnx"}  # what `segment --model` recognises


def add_parser(commands, common: argparse.ArgumentParser) -> None:
    """Register ``export-model``."""
    parser = commands.add_parser(
        "export-model",
        parents=[common],
        help="export a model as ONNX, TorchScript or a BioImage Model Zoo package",
        description="Export a model for other runtimes: ONNX (onnxruntime, and "
        "`segment --model X.onnx`), TorchScript, or a BioImage Model Zoo package "
        "(`bioimageio test` passes; `segment --model X.zip` runs it). Every export is "
        "checked against the torch network before it is written.",
    )
    parser.add_argument("model", help="bundled model name (e.g. nuclei) or .safetensors file")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    parser.add_argument(
        "--out", required=True, type=Path, help="output file (.onnx, .pt, or .zip for bioimageio)"
    )
    parser.add_argument(
        "--no-test",
        action="store_true",
        help="bioimageio: skip bioimageio.core's test of the written package",
    )
    parser.set_defaults(command="export-model", run=run)


def run(args: argparse.Namespace) -> int:
    """Export one model; return 0."""
    from napari_segnet.models import load_model
    from napari_segnet.models.bundled import resolve_model
    from napari_segnet.models.onnx_model import is_exported

    wanted = SUFFIXES.get(args.format)
    if wanted and args.out.suffix.lower() != wanted:
        raise UserError(f"--out must end in {wanted} for --format {args.format}.")
    if args.out.is_dir():
        raise UserError(f"--out {args.out} is a folder; give a file name.")
    source = resolve_model(args.model)
    if is_exported(source):
        raise UserError(
            f"{source.name} is already an exported model; export-model reads .safetensors models."
        )
    model, provenance = load_model(source)
    provenance = exported_provenance(provenance, model.identity)
    prepare_output_folder(args.out.parent)
    name = args.out.name
    if args.format == "bioimageio":
        from napari_segnet.models.bioimageio_package import iter_export_bioimageio

        events = iter_export_bioimageio(
            model, args.out, provenance=provenance, test=not args.no_test
        )
        report = run_with_progress_bar(events, name)
        for check in report.checks:
            print(f"{name}: {check.runtime} weights, {check.summary()}", file=sys.stderr)
        print(f"{name}: bioimageio test {report.test}", file=sys.stderr)
        return 0
    from napari_segnet.models.export import OPSET, export_onnx, export_torchscript

    export = export_onnx if args.format == "onnx" else export_torchscript
    what = f"ONNX (opset {OPSET})" if args.format == "onnx" else "TorchScript"
    print(f"{name}: exporting {args.model} as {what}", file=sys.stderr)
    check = export(model, args.out, provenance=provenance)
    print(f"{name}: written; {check.summary()}", file=sys.stderr)
    return 0


def exported_provenance(provenance: dict, identity) -> dict:
    """Return the provenance an export carries: the source's, and the model it was made from.

    ``source_model`` holds the source's name, version and weights hash (see
    :class:`~napari_segnet.io.model_identity.ModelIdentity`); a versioned source also
    gives its ``model_version``, so the exported file is known as the same version.
    """
    from napari_segnet.models.identity import PROVENANCE_VERSION

    provenance = {**provenance, "source_model": identity.as_metadata()}
    if identity.version is not None:
        provenance[PROVENANCE_VERSION] = identity.version
    return provenance
