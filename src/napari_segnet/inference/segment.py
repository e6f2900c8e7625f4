"""Segment a normalised plane: tiled prediction, then probabilities to instances."""

from __future__ import annotations

from collections.abc import Generator

import numpy as np

from napari_segnet.postprocess import InstanceSettings, probabilities_to_instances

from .progress import Progress
from .tiling import iter_predict_tiled


def segment_normalised(
    model,
    plane: np.ndarray,
    *,
    instance_settings: InstanceSettings | None = None,
    tile: int = 512,
    overlap: int = 64,
    batch_size: int = 4,
    device=None,
) -> Generator[Progress, None, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Yield progress; return ``(labels, probabilities)`` for one normalised 2-D plane."""
    probabilities = yield from iter_predict_tiled(
        model, plane, tile=tile, overlap=overlap, batch_size=batch_size, device=device
    )
    settings = instance_settings or InstanceSettings()
    labels = probabilities_to_instances(probabilities["instance"], settings)
    return labels, probabilities
