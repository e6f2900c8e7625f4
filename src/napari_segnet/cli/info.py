"""``napari-segnet info`` and ``napari-segnet models``: what is installed and usable."""

from __future__ import annotations

import argparse
import sys

from napari_segnet import __version__

PACKAGES = ("numpy", "tifffile", "scikit-image", "pandas", "torch", "torchvision", "napari")


def add_parsers(commands, common: argparse.ArgumentParser) -> None:
    """Register ``info`` and ``models``."""
    info = commands.add_parser(
        "info", parents=[common], help="versions, and which devices torch can use (and why not)"
    )
    info.set_defaults(command="info", run=run_info)
    models = commands.add_parser("models", parents=[common], help="list bundled and user models")
    models.set_defaults(command="models", run=run_models)


def run_info(args: argparse.Namespace) -> int:
    """Print versions and whether each torch device is usable, with the reason."""
    from importlib.metadata import PackageNotFoundError, version

    from napari_segnet.inference import device_report

    print(f"napari-segnet {__version__}")
    print(f"python {sys.version.split()[0]} ({sys.platform})")
    for package in PACKAGES:
        try:
            print(f"{package} {version(package)}")
        except PackageNotFoundError:
            print(f"{package} not installed")
    print("devices:")
    for device in device_report():
        state = "usable" if device.available else "not usable"
        print(f"  {device.name:<5} {state}: {device.detail}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    """List bundled and user models with their encoder, size and validation score."""
    from napari_segnet.models import ModelLoadError, read_model_file
    from napari_segnet.models.bundled import BUNDLED, list_models, user_models_dir

    for name, path in list_models().items():
        kind = "bundled" if name in BUNDLED else "user"
        try:
            config, provenance, state = read_model_file(path)
        except ModelLoadError as error:
            print(f"{name:<12} {kind:<8} unusable: {error}")
            continue
        parameters = sum(t.numel() for t in state.values() if t.is_floating_point())
        scores = provenance.get("validation", {})
        ap = f"validation AP@0.5 {scores['ap50']:.3f}" if "ap50" in scores else ""
        print(f"{name:<12} {kind:<8} {config.encoder:<9} {parameters / 1e6:5.2f} M  {ap}  {path}")
    print(f"User models folder: {user_models_dir()}")
    return 0
