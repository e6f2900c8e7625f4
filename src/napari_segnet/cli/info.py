"""``napari-segnet info`` and ``napari-segnet models``: what is installed and usable."""

from __future__ import annotations

import argparse
import re
import sys

from napari_segnet import __version__

# Not required by the library and the command line; the `gui` extra brings them.
GUI_PACKAGES = ("napari", "PyQt6")


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
    for package in (*required_packages(), *GUI_PACKAGES):
        try:
            print(f"{package} {version(package)}")
        except PackageNotFoundError:
            hint = ' (pip install "napari-segnet[gui]")' if package in GUI_PACKAGES else ""
            print(f"{package} not installed{hint}")
    print("devices:")
    for device in device_report():
        state = "usable" if device.available else "not usable"
        print(f"  {device.name:<5} {state}: {device.detail}")
    return 0


def required_packages() -> list[str]:
    """Return the names of the packages napari-segnet requires (without extras), as installed."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        requirements = requires("napari-segnet") or []
    except PackageNotFoundError:  # run from a source tree that is not installed
        return []
    names = [re.match(r"[A-Za-z0-9._-]+", r).group() for r in requirements if "extra ==" not in r]
    return sorted(set(names), key=str.casefold)


def published_ap50(provenance: dict) -> str:
    """Return the AP@0.5 a model file records: on its report split if scored, else validation.

    Models of ``scripts/train_nuclei.py`` keep a report split that nothing was chosen
    on; its score (``provenance["report"]``, from ``scripts/score_nuclei.py --store``)
    is the one to quote. Otherwise the training's validation score at its best epoch
    is shown, which is optimistic: that epoch was chosen on those images.
    """
    report = provenance.get("report", {}).get("all", {})
    if "ap50" in report:
        images = provenance["report"].get("images", "?")
        return f"report AP@0.5 {report['ap50']:.3f} ({images} held-out images)"
    scores = provenance.get("validation", {})
    return f"validation AP@0.5 {scores['ap50']:.3f}" if "ap50" in scores else ""


def published_speed(provenance: dict) -> str:
    """Return the end-to-end speed a model file records (``benchmarks/bench_segment.py --store``).

    E.g. ``2.15 MP/s on cpu × 2 threads``; empty when it was never measured.
    """
    speed = provenance.get("speed", {})
    if "megapixels_per_second" not in speed:
        return ""
    where = speed.get("device", "?")
    if where == "cpu" and speed.get("threads"):
        where = f"cpu × {speed['threads']} threads"
    return f"{speed['megapixels_per_second']:.2f} MP/s on {where}"


def run_models(args: argparse.Namespace) -> int:
    """List the bundled models, each version, and the user models.

    One line per loadable name: a bundled model's plain name says which version it
    loads (the newest), then each ``name@N`` and each user model with its encoder,
    size, weights hash (the first 16 hex digits that outputs record), held-out score,
    measured speed and file.
    """
    from napari_segnet.models.bundled import (
        bundled_models,
        list_models,
        user_models,
        user_models_dir,
    )

    for model in bundled_models():
        if model.newest:
            versions = ", ".join(
                other.reference for other in reversed(bundled_models()) if other.name == model.name
            )
            print(f"{model.name:<12} {'bundled':<8} = {model.reference} (the newest of {versions})")
        _print_model(model.reference, "bundled", model.path)
    loadable = list_models()
    for name, path in user_models().items():
        if loadable[name] == path:  # not a file that a bundled model's name hides
            _print_model(name, "user", path)
    print(f"User models folder: {user_models_dir()}")
    return 0


def _print_model(name: str, kind: str, path) -> None:
    """Print one model's line: encoder, size, weights hash, held-out score, speed and file."""
    from napari_segnet.models import ModelLoadError, read_model_file
    from napari_segnet.models.identity import file_identity
    from napari_segnet.models.onnx_model import is_exported, load_onnx_model

    try:
        if is_exported(path):  # weights in another runtime's format: not counted here
            model, provenance = load_onnx_model(path, threads=1)
            config, identity = model.config, model.identity
            size = f"{'exported':>7}  "
        else:
            config, provenance, state = read_model_file(path)
            identity = file_identity(path, config, provenance)
            parameters = sum(t.numel() for t in state.values() if t.is_floating_point())
            size = f"{parameters / 1e6:5.2f} M"
    except ModelLoadError as error:
        print(f"{name:<12} {kind:<8} unusable: {error}")
        return
    facts = "  ".join(
        fact
        for fact in (
            f"sha256 {identity.short_sha256}",
            published_ap50(provenance),
            published_speed(provenance),
        )
        if fact
    )
    print(f"{name:<12} {kind:<8} {config.encoder:<9} {size}  {facts}  {path}")
