"""``--export``: objects as outlines for QuPath (GeoJSON) and Fiji (ImageJ ROI sets)."""

from __future__ import annotations

import argparse
from pathlib import Path

# Export name → the suffix that follows the output stem.
EXPORTS = {"geojson": ".geojson", "imagej-roi": "_rois.zip"}


def parse_exports(text: str) -> tuple[str, ...]:
    """Read a comma-separated list of export names, for argparse (``geojson,imagej-roi``)."""
    names = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in EXPORTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown export {', '.join(map(repr, unknown)) or repr(text)}; "
            f"choose from {', '.join(EXPORTS)}, separated by commas"
        )
    return tuple(dict.fromkeys(names))


def add_export_option(parser: argparse.ArgumentParser, where: str) -> None:
    """Add ``--export geojson,imagej-roi``; ``where`` says where the files go."""
    parser.add_argument(
        "--export",
        type=parse_exports,
        default=(),
        metavar="geojson,imagej-roi",
        help="also write every object's outline: geojson for QuPath (<stem>.geojson, with the "
        "measurements), imagej-roi for Fiji's ROI Manager (<stem>_rois.zip); " + where,
    )


def export_paths(folder: Path, stem: str, exports) -> list[Path]:
    """Return the files ``exports`` write for ``stem`` in ``folder``, in ``exports`` order."""
    return [folder / f"{stem}{EXPORTS[name]}" for name in exports]


def write_exports(paths, exports, labels, *, axes: str, table=None, boxes=None, model=None) -> None:
    """Write each export of ``labels`` to its path (temporaries of an atomic write).

    ``boxes`` (label, box) pairs, when given, say where to read each object of lazy
    labels; they are read once per export. ``model`` (a
    :class:`~napari_segnet.io.model_identity.ModelIdentity`), the model that made the
    labels, goes with every object.
    """
    from napari_segnet.io.geojson import write_geojson
    from napari_segnet.io.imagej_rois import write_imagej_rois

    for path, name in zip(paths, exports):
        regions = None if boxes is None else boxes()
        if name == "geojson":
            write_geojson(path, labels, axes=axes, table=table, boxes=regions, model=model)
        else:
            write_imagej_rois(path, labels, axes=axes, boxes=regions, model=model, table=table)
