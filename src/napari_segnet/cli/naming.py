"""Output names for a batch: one per input, never two alike."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from napari_segnet.training.data import image_stem


def output_stems(paths: Sequence[Path]) -> dict[Path, str]:
    """Give every input a distinct output stem.

    The stem is the file name without its TIFF or Zarr suffix (``a.b.tif`` → ``a.b``,
    ``cells.ome.tif`` → ``cells``, ``slide.ome.zarr`` and ``slide.zarr`` → ``slide``).
    Files with the same name in different folders are told apart by as many of
    their folders as needed, joined with ``_`` (``plate1/img.tif`` → ``plate1_img``,
    ``plate2/img.tif`` → ``plate2_img``); stems that still collide get ``_2``,
    ``_3``... in input order. Names are compared case-insensitively, as macOS and
    Windows file systems do.

    Parameters
    ----------
    paths : sequence of pathlib.Path
        Distinct input files (or OME-Zarr folders).

    Returns
    -------
    dict
        Input path → output stem, in input order.

    """
    resolved = [Path(p).resolve() for p in paths]
    stems = {path: _stem(path) for path in resolved}
    for depth in range(1, max((len(p.parts) for p in resolved), default=1)):
        clashing = _clashes(stems)
        if not clashing:
            break
        for path in clashing:
            folders = path.parent.parts[-depth:]
            stems[path] = "_".join([*(f for f in folders if f != path.anchor), _stem(path)])
    taken: set[str] = set()
    result = {}
    for original, path in zip(paths, resolved):
        stem, number = stems[path], 1
        while stem.casefold() in taken:
            number += 1
            stem = f"{stems[path]}_{number}"
        taken.add(stem.casefold())
        result[original] = stem
    return result


def _stem(path: Path) -> str:
    """Return the name without its TIFF, ``.zarr`` or ``.ome.zarr`` suffix."""
    name = path.name
    for suffix in (".ome.zarr", ".zarr"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return image_stem(path)


def _clashes(stems: dict[Path, str]) -> list[Path]:
    """Paths whose stems clash and whose folders can tell them apart."""
    groups: dict[str, list[Path]] = {}
    for path, stem in stems.items():
        groups.setdefault(stem.casefold(), []).append(path)
    return [
        path
        for group in groups.values()
        if len({p.parent for p in group}) > 1  # one folder: only numbers can tell them apart
        for path in group
    ]
