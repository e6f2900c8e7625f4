"""Write a large label image as OME-Zarr (NGFF 0.4) with a pyramid, row of chunks by row.

NGFF 0.4 (Zarr format 2, ``/``-separated chunk keys) is the version that Fiji (Bio-Formats,
MoBIE), QuPath and napari-ome-zarr all read. The metadata is written here with ``zarr`` itself:
the reference library, ome-zarr-py, would bring S3 and HTTP clients (s3fs, aiobotocore,
aiohttp) that a local writer has no use for.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .label_rows import ClosedOrAborted, LabelRows
from .model_identity import METADATA_KEY, ZARR_KEY, ModelIdentity

CHUNK = 256
SMALLEST_LEVEL = 256  # the pyramid stops once a level's longer side is at most this


def pyramid_factors(shape: tuple[int, int], smallest: int = SMALLEST_LEVEL) -> list[int]:
    """Downsampling factors of the levels: 1, 2, 4, ... until a level fits ``smallest``."""
    factors = [1]
    while max(-(-n // factors[-1]) for n in shape) > smallest:
        factors.append(factors[-1] * 2)
    return factors


class ZarrLabelsWriter(ClosedOrAborted):
    """Assemble labels from patches and stream them into an OME-Zarr multiscale group.

    The same interface as :class:`~napari_segnet.io.tiled_labels.TiledLabelsWriter`: paint
    patches, say which rows are final, close. Level ``k`` holds every ``2**k``-th pixel of
    level 0 (labels are never averaged), and each level's rows of chunks are written as
    soon as the rows they sample are final, so memory holds a few rows of chunks per level.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.zarr`` folder to create.
    shape : tuple of int
        ``(Y, X)`` of level 0.
    spacing : tuple of float, optional
        ``(y, x)`` pixel size in micrometres.
    name : str
        Name in the metadata.
    model : ModelIdentity, optional
        The model that made the labels, recorded in the group's attributes
        (see :func:`model_attributes`).

    """

    def __init__(
        self,
        path: str | os.PathLike,
        shape: tuple[int, int],
        *,
        spacing: tuple[float, float] | None = None,
        name: str = "labels",
        model: ModelIdentity | None = None,
    ):
        import zarr

        self.path, self.shape = Path(path), tuple(int(n) for n in shape)
        self.factors = pyramid_factors(self.shape)
        group = zarr.open_group(self.path, mode="w", zarr_format=2)
        self.levels = [
            group.create_array(
                str(k),
                shape=tuple(-(-n // f) for n in self.shape),
                chunks=(CHUNK, CHUNK),
                dtype=np.uint32,
                compressors={"id": "zlib", "level": 4},
                chunk_key_encoding={"name": "v2", "separator": "/"},
                fill_value=0,
            )
            for k, f in enumerate(self.factors)
        ]
        self._metadata = multiscales_metadata(name, self.factors, spacing) | model_attributes(model)
        self._group = group
        self._rows = LabelRows(self.shape, CHUNK)  # a band is a row of level-0 chunks
        self._pending = [dict() for _ in self.factors]  # level -> {chunk row: rows so far}

    def paint(self, patch: np.ndarray, origin: tuple[int, int], offset: int = 0) -> None:
        """Write the nonzero pixels of ``patch`` (plus ``offset``) at ``origin``."""
        self._rows.paint(patch, origin, offset)

    def rows_final(self, y: int) -> None:
        """Say that no patch will touch rows above ``y``: write their chunks."""
        for band, canvas in self._rows.final(y):
            self._write_row(band, canvas)

    def close(self) -> None:
        """Write every remaining row and the OME metadata."""
        self.rows_final(self.shape[0])
        self._group.attrs.update(self._metadata)

    def abort(self) -> None:
        """Stop (the folder is incomplete)."""
        self._rows.clear()

    def _write_row(self, row: int, canvas: np.ndarray) -> None:
        """Write level 0's chunk row ``row`` and what it gives every coarser level."""
        top = row * CHUNK
        height = min(CHUNK, self.shape[0] - top)
        self.levels[0][top : top + height] = canvas[:height]
        for k, factor in enumerate(self.factors[1:], start=1):
            first = -(-top // factor) * factor  # level-0 rows sampled by level k
            sampled = canvas[first - top : height : factor, ::factor]
            if sampled.shape[0] == 0:
                continue
            level_row = first // factor
            chunk = level_row // CHUNK
            rows = self._pending[k].setdefault(chunk, [])
            rows.append(sampled)
            level = self.levels[k]
            written = sum(r.shape[0] for r in rows)
            chunk_top = chunk * CHUNK
            if chunk_top + written >= min(chunk_top + CHUNK, level.shape[0]):
                level[chunk_top : chunk_top + written] = np.concatenate(rows)
                del self._pending[k][chunk]


def model_attributes(model: ModelIdentity | None) -> dict:
    """Group attributes that record the model: ``{"napari-segnet": {"model": {...}}}``.

    The inner mapping has the keys of :meth:`ModelIdentity.as_metadata`; NGFF readers
    ignore attributes they do not know. Empty without a model.
    """
    return {} if model is None else {ZARR_KEY: {METADATA_KEY: model.as_metadata()}}


def multiscales_metadata(name: str, factors: list[int], spacing, ndim: int = 2) -> dict:
    """NGFF 0.4 ``multiscales`` (and ``image-label``) metadata of a label pyramid.

    ``ndim`` 2: axes ``yx``; 3: ``zyx``, with Z never downsampled. ``spacing``
    (micrometres, one per axis) or None (unit steps, no unit).
    """
    size = [float(s) for s in spacing] if spacing is not None else [1.0] * ndim
    unit = {"unit": "micrometer"} if spacing is not None else {}
    axes = "zyx"[-ndim:]
    datasets = [
        {
            "path": str(k),
            # Pixel i of level k is pixel i·f of level 0 (sampled, not averaged): no shift.
            "coordinateTransformations": [
                {
                    "type": "scale",
                    "scale": [s * (1 if a == "z" else f) for a, s in zip(axes, size)],
                }
            ],
        }
        for k, f in enumerate(factors)
    ]
    return {
        "multiscales": [
            {
                "version": "0.4",
                "name": name,
                "axes": [{"name": a, "type": "space", **unit} for a in axes],
                "datasets": datasets,
                "type": "nearest (every n-th pixel)",
            }
        ],
        "image-label": {"version": "0.4"},
    }
