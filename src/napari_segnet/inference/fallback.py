"""Segment despite a full GPU: retry with smaller tiles, then finish on the CPU.

Running out of memory inside the network usually comes from the size of a
batch of tiles, not of the image: halving the tile (and running one tile at a
time) quarters the activations. When even small tiles do not fit on an
accelerator, the image is segmented on the CPU, which is slower but has the
machine's memory.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace

from napari_segnet.io import MicroscopyImage
from napari_segnet.progress import Progress

from .segment import PlaneTooLargeError, Segmentation, SegmentSettings, iter_segment

# Below this tile edge the network's context, not memory, limits the result.
MIN_TILE = 128


def is_out_of_memory(error: BaseException) -> bool:
    """Tell whether ``error`` is torch running out of memory (on any device)."""
    import torch

    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text  # CUDA/MPS, CPU allocator
    )


def iter_segment_with_fallback(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings | None = None,
    *,
    device=None,
    keep_probabilities: bool = False,
) -> Generator[Progress, None, Segmentation]:
    """Like :func:`~napari_segnet.inference.segment.iter_segment`, surviving a full GPU.

    When the network runs out of memory, the image is segmented again with half
    the tile edge and one tile per batch, down to ``MIN_TILE`` pixels; then, on
    an accelerator, once more on the CPU. Each retry is announced by a
    :class:`Progress` whose ``info["warning"]`` says what happened. The model is
    back on its own device afterwards. When an automatic diameter rescaled the
    image, a last event's ``info["message"]`` says what was measured.

    Returns
    -------
    Segmentation

    """
    result = yield from _iter_segment_retrying(
        image, model, settings, device=device, keep_probabilities=keep_probabilities
    )
    estimate = result.diameter_estimate
    if estimate is not None and result.scale != 1.0:
        yield Progress(1, 1, "estimated the object size", {"message": estimate.describe()})
    return result


def _iter_segment_retrying(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings | None,
    *,
    device,
    keep_probabilities: bool,
) -> Generator[Progress, None, Segmentation]:
    import torch

    settings = settings or SegmentSettings()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    tile = settings.tile
    while True:
        try:
            return (
                yield from iter_segment(
                    image, model, settings, device=device, keep_probabilities=keep_probabilities
                )
            )
        except PlaneTooLargeError:
            raise  # the plane itself does not fit: smaller tiles cannot help
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            if tile // 2 < MIN_TILE and device.type == "cpu":
                raise
        _release_cache(device)
        if tile // 2 < MIN_TILE:
            break
        tile //= 2
        settings = replace(settings, tile=tile, batch_size=1)
        warning = f"Out of {device.type} memory: retrying with {tile}-pixel tiles, one at a time."
        yield Progress(0, 1, "retrying with smaller tiles", {"warning": warning})

    cpu = torch.device("cpu")
    warning = f"Out of {device.type} memory even with {tile}-pixel tiles: continuing on the CPU."
    yield Progress(0, 1, "continuing on the CPU", {"warning": warning})
    model.to(cpu)
    try:
        return (
            yield from iter_segment(
                image, model, settings, device=cpu, keep_probabilities=keep_probabilities
            )
        )
    finally:
        model.to(device)


def _release_cache(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
