"""Segment despite a full GPU: retry with smaller tiles, then finish on the CPU.

Running out of memory inside the network usually comes from the size of a
batch of tiles, not of the image: halving the tile (and running one tile at a
time) quarters the activations. When even small tiles do not fit on an
accelerator, the image is segmented on the CPU, which is slower but has the
machine's memory. The CPU runs a copy of the network made straight from its
weights, so the model itself never leaves its device.

Whole planes retry here (:func:`iter_segment_with_fallback`); block-by-block
segmentation retries the block that ran out of memory with the same steps
(:func:`fall_back`), and the blocks after it keep the smaller setting.
"""

from __future__ import annotations

import copy
from collections.abc import Generator
from dataclasses import dataclass, replace

from napari_segnet.io import MicroscopyImage
from napari_segnet.progress import Progress

from .segment import PlaneTooLargeError, Segmentation, SegmentSettings, iter_segment

# Below this tile edge the network's context, not memory, limits the result.
MIN_TILE = 128


def is_out_of_memory(error: BaseException) -> bool:
    """Tell whether ``error`` is torch running out of memory (on any device)."""
    import torch

    if isinstance(error, PlaneTooLargeError):
        return False  # the plane itself does not fit: smaller tiles cannot help
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and (
        "out of memory" in text or "can't allocate memory" in text  # CUDA/MPS, CPU allocator
    )


@dataclass(frozen=True)
class Attempt:
    """How the network is run: its tiles, where, and which copy of the model.

    Attributes
    ----------
    tile, batch_size : int
        Tiling of the network's input.
    device : torch.device
        Where the network runs.
    model : torch.nn.Module
        The model, or its CPU copy once segmentation continues on the CPU.

    """

    tile: int
    batch_size: int
    device: object
    model: object


def next_attempt(attempt: Attempt, error: BaseException) -> tuple[Attempt, str]:
    """Return the attempt that needs less memory after ``error``, and the sentence saying so.

    Half the tile, one tile at a time, down to :data:`MIN_TILE`; then, on an
    accelerator, the same tiles on the CPU with a copy of the model.

    Raises
    ------
    BaseException
        ``error`` itself, when it is not running out of memory or nothing smaller is left.
    """
    if not is_out_of_memory(error):
        raise error
    release_cache(attempt.device)
    if attempt.tile // 2 >= MIN_TILE:
        tile = attempt.tile // 2
        kind = attempt.device.type
        warning = f"Out of {kind} memory: retrying with {tile}-pixel tiles, one at a time."
        return replace(attempt, tile=tile, batch_size=1), warning
    if attempt.device.type == "cpu":
        raise error
    try:
        model = cpu_copy(attempt.model)
    except Exception:
        raise error from None  # a model that cannot be copied (an onnxruntime session)
    import torch

    warning = (
        f"Out of {attempt.device.type} memory even with {attempt.tile}-pixel tiles: "
        "continuing on the CPU."
    )
    return replace(attempt, device=torch.device("cpu"), model=model), warning


def cpu_copy(model):
    """Return a copy of ``model`` on the CPU, made without moving ``model`` or using its device.

    Parameters and buffers are copied straight to the CPU (nothing new is
    allocated on a full GPU); everything else is deep-copied.
    """
    import torch

    memo = {}
    for parameter in model.parameters():
        memo[id(parameter)] = torch.nn.Parameter(
            parameter.detach().cpu(), requires_grad=parameter.requires_grad
        )
    for buffer in model.buffers():
        memo[id(buffer)] = buffer.detach().cpu()
    return copy.deepcopy(model, memo)


def fall_back(predictors: list, error: BaseException) -> str:
    """Replace ``predictors`` (in place) by ones that need less memory after ``error``.

    ``predictors`` are :class:`~napari_segnet.inference.tiling.TiledPredictor`, one per
    plane, all alike; the replacements take the next :func:`next_attempt`.

    Returns
    -------
    str
        The sentence saying what was done.

    Raises
    ------
    BaseException
        ``error`` itself, as :func:`next_attempt` raises it.
    """
    first = predictors[0]
    current = Attempt(first.options["tile"], first.options["batch_size"], first.device, first.model)
    attempt, warning = next_attempt(current, error)
    changes = dict(tile=attempt.tile, batch_size=attempt.batch_size, device=attempt.device)
    predictors[:] = [p.replaced(model=attempt.model, **changes) for p in predictors]
    return warning


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
    :class:`Progress` whose ``info["warning"]`` says what happened. The model
    stays on its own device. When an automatic diameter rescaled the image, a
    last event's ``info["message"]`` says what was measured.

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
    attempt = Attempt(settings.tile, settings.batch_size, device, model)
    while True:
        tiles = replace(settings, tile=attempt.tile, batch_size=attempt.batch_size)
        try:
            return (
                yield from iter_segment(
                    image,
                    attempt.model,
                    tiles,
                    device=attempt.device,
                    keep_probabilities=keep_probabilities,
                )
            )
        except Exception as error:
            attempt, warning = next_attempt(attempt, error)
        stage = "continuing on the CPU" if "CPU" in warning else "retrying with smaller tiles"
        yield Progress(0, 1, stage, {"warning": warning})


def release_cache(device) -> None:
    """Give the memory that torch keeps cached on ``device`` back to it."""
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()
