"""What a click on Segment runs in the worker thread: the request, the run, its result.

No Qt and no napari objects here: the request is plain data, and the run only
reads it, so it is safe in a worker thread.
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Hashable
from dataclasses import dataclass
from pathlib import Path

from napari_segnet.inference.devices import select_device
from napari_segnet.inference.fallback import iter_segment_with_fallback
from napari_segnet.inference.reuse import OutputsCache, data_fingerprint, network_settings
from napari_segnet.inference.segment import Segmentation, SegmentSettings, iter_segment
from napari_segnet.inference.stream import should_stream
from napari_segnet.inference.stream_outputs import iter_segment_to_files
from napari_segnet.io import MicroscopyImage
from napari_segnet.messages import one_sentence
from napari_segnet.models.checkpoint import load_model
from napari_segnet.progress import Progress, relay

from .outcome import Failed

_log = logging.getLogger(__name__)
_TEMPORARY_PREFIX = "labels-"


@dataclass(frozen=True, eq=False)
class SegmentRequest:
    """What one click on Segment runs: the arguments of :func:`run_segmentation`.

    Attributes
    ----------
    image : MicroscopyImage
        The picked layer's data with its axes (all channels; ``settings`` picks
        one), or the one plane shown when only that plane is segmented.
    model_path : pathlib.Path
        The model file.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    settings : SegmentSettings
        Channel, object size, tiling and thresholds.
    probabilities : bool
        Whether to keep the class probability maps (for extra layers).
    results : pathlib.Path or None
        Where the labels of a plane segmented block by block are written; None:
        a temporary folder, removed when its layer is closed (see
        :func:`temporary_folder`).
    name : str
        The layer's name, for the name of those labels.
    plane : tuple of int or None
        The index of the plane segmented alone (its T and Z), or None for all.
    source : hashable
        The layer's identity, the first part of the key of kept network outputs.
    cache : OutputsCache or None
        Network outputs of earlier runs, to reuse when only thresholds changed.
    keep_outputs : bool
        Whether this run's network outputs are small enough to keep in ``cache``.
    """

    image: MicroscopyImage
    model_path: Path | None
    device: str
    settings: SegmentSettings
    probabilities: bool = False
    results: Path | None = None
    name: str = "image"
    plane: tuple[int, ...] | None = None
    source: Hashable = None
    cache: OutputsCache | None = None
    keep_outputs: bool = False


@dataclass(frozen=True)
class BlockResult:
    """Labels of a big plane segmented block by block, in an OME-Zarr folder.

    Attributes
    ----------
    path : pathlib.Path
        The ``.zarr`` folder (a pyramid: level 0 is full resolution).
    summary : napari_segnet.inference.stream.StreamSummary
        Objects found, and how many may be cut at block borders.
    temporary : bool
        Whether ``path`` is alone in a temporary folder (its parent), to remove with
        its layer.
    """

    path: Path
    summary: object
    temporary: bool = False


@dataclass(frozen=True, eq=False)
class SegmentResult:
    """What :func:`run_segmentation` returns when it succeeds.

    Attributes
    ----------
    segmentation : Segmentation or BlockResult
        The labels (and what else the engine returned).
    device : str
        Where the network ran, with the reason of a fallback.
    model : ModelIdentity
        The model's identity, recorded in the labels layer.
    key : tuple or None
        The key of this run's network outputs in the request's cache (None: not
        to be kept, e.g. made with smaller tiles after a full GPU).
    reused : bool
        Whether the network outputs of an earlier run were reused (the network did not run).
    """

    segmentation: Segmentation | BlockResult
    device: str
    model: object
    key: tuple | None = None
    reused: bool = False


def results_dir() -> Path | None:
    """Return the folder for big planes' labels set in ``$NAPARI_SEGNET_RESULTS``, or None."""
    chosen = os.environ.get("NAPARI_SEGNET_RESULTS")
    return Path(chosen) if chosen else None


def temporary_root() -> Path:
    """Return the folder of temporary labels: ``~/.napari-segnet/temporary``.

    Not the system's temporary folder, which may be in memory: a slide's labels
    can take gigabytes.
    """
    return Path.home() / ".napari-segnet" / "temporary"


def temporary_folder() -> Path:
    """Make a new temporary folder for big-plane labels, removed when this process ends.

    Its name holds this process's id, so :func:`remove_stale_temporary` can
    remove what a process that ended without cleaning up left behind.
    """
    root = temporary_root()
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f"{_TEMPORARY_PREFIX}{os.getpid()}-", dir=root))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def remove_stale_temporary() -> int:
    """Remove temporary labels left by napari sessions that are no longer running.

    Returns
    -------
    int
        How many folders were removed.
    """
    import psutil

    removed = 0
    root = temporary_root()
    for folder in root.glob(f"{_TEMPORARY_PREFIX}*") if root.is_dir() else ():
        pid = folder.name[len(_TEMPORARY_PREFIX) :].split("-")[0]
        if pid.isdigit() and int(pid) != os.getpid() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def run_segmentation(
    image,
    model_path,
    device,
    settings,
    probabilities=False,
    results=None,
    name="image",
    plane=None,
    source=None,
    cache=None,
    keep_outputs=False,
):
    """Load the model and segment the image, yielding Progress.

    Runs in a worker thread: its arguments hold no Qt or napari objects. An image
    that :func:`~napari_segnet.inference.stream.should_stream` calls big (a plane or
    a Z-stack) is segmented block by block, in bounded memory, into an OME-Zarr
    folder in ``results`` (a temporary folder when None), and comes back as a
    :class:`BlockResult`. When ``cache`` holds the network outputs of a run with
    the same image, model, device and network settings (all but the thresholds),
    only the objects are made again from them.

    Returns
    -------
    SegmentResult or Failed
        The result, or :class:`Failed` with one sentence (it never raises). Out of
        GPU memory, it retries with smaller tiles and then on the CPU
        (:mod:`napari_segnet.inference.fallback`); the device says so.
    """
    warnings = []

    def note(event):
        if "warning" in event.info:
            warnings.append(event.info["warning"])
        return event

    try:
        yield Progress(0, 1, "loading the model")
        device = select_device(device)
        model, _ = load_model(model_path, device, fuse=True)
        if should_stream(image):
            events = _segment_in_blocks(image, model, settings, device, results, name)
            return SegmentResult((yield from events), str(device), model.identity)
        key = reused = None
        if cache is not None:
            fingerprint = data_fingerprint(image.data)
            # The pixel size too: a diameter in µm gives another zoom on another calibration.
            calibration = tuple(sorted(image.pixel_size.items()))
            key = (source, fingerprint, plane, calibration, model.identity, str(device))
            key += (network_settings(settings),)
            reused = cache.get(key)
        if reused is not None:
            events = iter_segment(
                image, model, settings, device=device, keep_probabilities=True, reuse=reused
            )
        else:
            events = iter_segment_with_fallback(
                image,
                model,
                settings,
                device=device,
                keep_probabilities=probabilities or keep_outputs,
            )
        result = yield from relay(events, note)
    except Exception as error:
        _log.debug("Segmentation failed", exc_info=True)
        return Failed(one_sentence(error))
    if warnings:  # smaller tiles or another device than asked for: not what the key says
        key = None
    where = str(device) + (f" ({warnings[-1]})" if warnings else "")
    return SegmentResult(result, where, model.identity, key, reused is not None)


def _segment_in_blocks(image, model, settings, device, results: Path | None, name: str):
    """Segment a big plane or Z-stack block by block into an OME-Zarr pyramid in ``results``."""
    folder = results or results_dir()
    temporary = folder is None
    if temporary:
        folder = temporary_folder()
    folder.mkdir(parents=True, exist_ok=True)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "image"
    # Unique: two runs within a second must not replace a folder a layer reads from.
    path = folder / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}_labels.zarr"
    try:
        events = iter_segment_to_files(
            image, model, settings, path, labels_format="zarr", device=device
        )
        summary = yield from events
    finally:
        if temporary and not path.exists():  # failed or cancelled: nothing to keep
            shutil.rmtree(folder, ignore_errors=True)
    return BlockResult(path, summary, temporary)
