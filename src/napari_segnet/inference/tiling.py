"""Overlapping tiles with smooth blending, so that tiled and whole-image predictions agree."""

from __future__ import annotations

from collections.abc import Generator
from contextlib import nullcontext

import numpy as np

from napari_segnet.progress import Progress

# The tiling defaults of every entry point (library, CLI, widgets), kept here only.
TILE = 512
OVERLAP = 64
BATCH_SIZE = 4


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets covering ``size`` with tiles of ``tile`` overlapping by ≥ ``overlap``."""
    if size <= tile:
        return [0]
    if not 0 <= overlap < tile:
        raise ValueError(
            f"The tile overlap ({overlap}) must be at least 0 and less than the tile ({tile})."
        )
    step = tile - overlap
    starts = list(range(0, size - tile, step))
    return [*starts, size - tile]


def blending_window(tile: tuple[int, int], overlap: int) -> np.ndarray:
    """Weights that fall smoothly to a small value over ``overlap`` pixels at each edge.

    Predictions near a tile's border see less context; the window lets the
    neighbouring tile dominate there. It never reaches zero, so image borders
    (covered by one tile only) are still weighted.
    """
    axes = []
    for length in tile:
        ramp = np.ones(length, np.float32)
        n = min(overlap, length // 2)
        if n > 0:
            edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, n + 2, dtype=np.float32)[1:-1])
            ramp[:n], ramp[-n:] = edge, edge[::-1]
        axes.append(np.maximum(ramp, 1e-3))
    return np.outer(axes[0], axes[1])


def iter_predict_tiled(
    model,
    plane: np.ndarray,
    *,
    tile: int = TILE,
    overlap: int = OVERLAP,
    batch_size: int = BATCH_SIZE,
    device=None,
    autocast: bool = True,
) -> Generator[Progress, None, dict[str, np.ndarray]]:
    """Predict class probabilities of a normalised 2-D plane tile by tile.

    Yields one :class:`Progress` per batch of tiles and returns float32 arrays
    blended over the tiles: ``"instance"``: (3, Y, X) softmax probabilities;
    with semantic classes ``"semantic"``: (K, Y, X) softmax probabilities; with
    the star head ``"star_prob"``: (Y, X) sigmoid object probability and
    ``"star_dist"``: (R, Y, X) ray distances in the network's pixels.

    Parameters
    ----------
    model : SegNet
        In ``eval`` mode, on ``device``.
    plane : ndarray of float32, shape (Y, X)
        The normalised input.
    tile : int
        Tile edge in pixels (rounded up to the network's size multiple).
    overlap : int
        Overlap between neighbouring tiles in pixels.
    batch_size : int
        Tiles per forward pass.
    device : torch.device, optional
        Where the model runs (default: the model's device).
    autocast : bool
        Use bfloat16/float16 autocast on CUDA.

    """
    import torch

    device = torch.device(device) if device is not None else next(model.parameters()).device
    multiple = model.size_multiple
    tile = int(np.ceil(tile / multiple) * multiple)
    # Tiles that start on the network's stride grid compute exactly what the whole
    # image computes away from their borders: keep the overlap a multiple too.
    overlap = min(int(np.ceil(overlap / multiple) * multiple), tile - multiple)
    padded, crop = _pad_to_tiles(plane, tile, multiple)
    height, width = padded.shape
    th, tw = min(tile, height), min(tile, width)
    corners = [
        (y, x) for y in tile_starts(height, th, overlap) for x in tile_starts(width, tw, overlap)
    ]
    window = blending_window((th, tw), overlap if len(corners) > 1 else 0)
    sums: dict[str, np.ndarray] = {}
    weight = np.zeros((height, width), np.float32)
    use_autocast = autocast and device.type == "cuda"
    dtype = torch.bfloat16 if use_autocast and torch.cuda.is_bf16_supported() else torch.float16
    for start in range(0, len(corners), batch_size):
        batch_corners = corners[start : start + batch_size]
        batch = np.stack([padded[y : y + th, x : x + tw] for y, x in batch_corners])[:, None]
        inputs = torch.from_numpy(batch).to(device).contiguous(memory_format=torch.channels_last)
        # No autocast context at all unless it is used: not every device type supports one.
        mixed = torch.autocast(device.type, dtype=dtype) if use_autocast else nullcontext()
        with torch.inference_mode(), mixed:
            outputs = model(inputs)
        for key, raw in outputs.items():
            values = _activation(key)(raw.float()).cpu().numpy()
            total = sums.setdefault(key, np.zeros((raw.shape[1], height, width), np.float32))
            for (y, x), v in zip(batch_corners, values):
                total[:, y : y + th, x : x + tw] += v * window
        for y, x in batch_corners:
            weight[y : y + th, x : x + tw] += window
        yield Progress(min(start + batch_size, len(corners)), len(corners), "predicting tiles")
    result = {}
    for key in list(sums):
        total = sums.pop(key)  # divide in place: star distances are large (R values a pixel)
        total /= weight
        result[key] = total[(0 if key in SINGLE_CHANNEL else slice(None), *crop)]
    return result


SINGLE_CHANNEL = {"star_prob"}  # returned as (Y, X)


def _activation(key: str):
    """Return the function that turns the raw output ``key`` into the values blended."""
    import torch

    activations = {
        "instance": lambda t: torch.softmax(t, dim=1),
        "semantic": lambda t: torch.softmax(t, dim=1),
        "star_prob": torch.sigmoid,
        "star_dist": lambda t: t,  # already distances: blended linearly
    }
    if key not in activations:
        raise ValueError(f"The network returned an output {key!r} that cannot be tiled.")
    return activations[key]


def _pad_to_tiles(plane: np.ndarray, tile: int, multiple: int):
    """Reflect-pad so every side is a multiple of the network's stride and ≥ its minimum."""
    height, width = plane.shape
    target = [max(int(np.ceil(n / multiple) * multiple), multiple) for n in (height, width)]
    pad = [(0, t - n) for t, n in zip(target, (height, width))]
    mode = "reflect" if min(height, width) > 1 else "edge"
    padded = np.pad(plane, pad, mode=mode) if any(p for _, p in pad) else plane
    return np.ascontiguousarray(padded, dtype=np.float32), (slice(0, height), slice(0, width))
