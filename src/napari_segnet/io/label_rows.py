"""Labels assembled from patches, held a band of rows at a time until they are written."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class LabelRows:
    """Paint patches of labels into bands of ``height`` rows; hand bands on once final.

    Only the bands still open are in memory (``width × height × 4`` bytes each), so a
    label image of any height is assembled in the memory of a few bands.

    Parameters
    ----------
    shape : tuple of int
        ``(Y, X)`` of the whole label image.
    height : int
        Rows per band (a row of TIFF tiles or of Zarr chunks).

    """

    def __init__(self, shape: tuple[int, int], height: int):
        self.shape, self.height = tuple(int(n) for n in shape), int(height)
        self.next_band = 0  # the first band not yet handed on
        self._open: dict[int, np.ndarray] = {}

    @property
    def bands(self) -> int:
        """Number of bands in the image."""
        return -(-self.shape[0] // self.height)

    def paint(self, patch: np.ndarray, origin: tuple[int, int], offset: int = 0) -> None:
        """Write the nonzero pixels of ``patch`` (plus ``offset``) at ``origin``."""
        top, left = origin
        if top < self.next_band * self.height:
            raise ValueError("A patch was painted on rows already written.")
        mask = patch > 0
        values = patch.astype(np.uint32) + np.uint32(offset)
        height = self.height
        for band in range(top // height, (top + patch.shape[0] - 1) // height + 1):
            canvas = self._open.get(band)
            if canvas is None:
                canvas = self._open[band] = np.zeros((height, self.shape[1]), np.uint32)
            y0, y1 = max(top, band * height), min(top + patch.shape[0], (band + 1) * height)
            target = (
                slice(y0 - band * height, y1 - band * height),
                slice(left, left + patch.shape[1]),
            )
            source = slice(y0 - top, y1 - top)
            np.copyto(canvas[target], values[source], where=mask[source])

    def final(self, y: int) -> Iterator[tuple[int, np.ndarray]]:
        """Hand on, in order, the bands that no patch will touch once rows above ``y`` are final.

        Every band is final once ``y`` reaches the image's height.
        """
        while self.next_band < self.bands and (
            (self.next_band + 1) * self.height <= y or y >= self.shape[0]
        ):
            band = self.next_band
            canvas = self._open.pop(band, None)
            if canvas is None:
                canvas = np.zeros((self.height, self.shape[1]), np.uint32)
            self.next_band += 1
            yield band, canvas

    def clear(self) -> None:
        """Drop every open band."""
        self._open.clear()


class ClosedOrAborted:
    """A labels writer as a context: :meth:`close` on success, ``abort`` on an error."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()
