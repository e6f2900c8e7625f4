"""Train from in-memory pairs and folders in a separate process (used by the Train widget).

A separate process keeps a GUI responsive (no contention for Python's GIL), can be
stopped at any moment without leaving a half-written model (models are written
atomically once per epoch), and keeps torch's compiler stack out of the GUI
process: creating an optimiser loads triton, whose bundled LLVM crashes a process
in which Mesa's software OpenGL (also LLVM) has already drawn.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from napari_segnet.progress import Progress, drain

from .data import load_pairs, make_pair, median_diameter, size_normalised, split_pairs
from .loop import TrainSettings, iter_train


@dataclass(frozen=True)
class ArraySource:
    """One image plane (2-D or RGB) and its instance labels."""

    name: str
    image: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class FolderSource:
    """Image/mask pairs of the same stems from two folders.

    Attributes
    ----------
    images : pathlib.Path
        The images folder or, with ``masks`` None, a folder holding ``images/``
        and ``masks/``.
    masks : pathlib.Path or None
        The masks folder.

    """

    images: Path
    masks: Path | None = None

    @property
    def folders(self) -> tuple[Path, Path]:
        """Return the images and masks folders."""
        if self.masks is None:
            return Path(self.images) / "images", Path(self.images) / "masks"
        return Path(self.images), Path(self.masks)

    @property
    def name(self) -> str:
        """How the folders are listed."""
        if self.masks is None:
            return f"folder {self.images}"
        return f"folders {self.images} and {self.masks}"


@dataclass(frozen=True)
class TrainingRequest:
    """Everything a training run needs; plain data, so it can go to another process.

    Attributes
    ----------
    sources : list of ArraySource or FolderSource
        The training data.
    start : pathlib.Path or None
        Model file to fine-tune; None trains a new network with ``encoder``.
    encoder : str
        Encoder of a new network.
    name : str or None
        Name stored in the model's config; None keeps a fine-tuned model's name
        (a new network is named after ``out``).
    settings : TrainSettings
        How to train; its ``crop`` is reduced for images smaller than it.
    validation_fraction : float
        See :func:`~napari_segnet.training.data.split_pairs` (default
        ``training.data.VALIDATION_FRACTION``).
    out : pathlib.Path
        Where the best model is written.
    device : str
        ``auto``, ``cpu``, ``cuda`` or ``mps``.
    encoder_weights : pathlib.Path or None
        Local ImageNet weights for a new network's torchvision encoder.
    resume : pathlib.Path or None
        A ``.resume.pt`` file of an interrupted run of the same request.
    star_rays : int or None
        Give the model a star-convex head with this many rays (a new network, or
        one fine-tuned from a model without it; see
        :func:`napari_segnet.models.with_star_head`); None keeps the model's heads.
    teacher : pathlib.Path or None
        A model whose class probabilities the network also learns (see
        :func:`~napari_segnet.training.loop.iter_train`); it must read the same
        channels. Fine-tuning with ``start`` as its own teacher keeps the model's
        answers where the new labels say nothing.

    """

    sources: list
    start: Path | None
    encoder: str
    name: str | None
    settings: TrainSettings
    validation_fraction: float
    out: Path
    device: str = "auto"
    encoder_weights: Path | None = None
    resume: Path | None = None
    star_rays: int | None = None
    teacher: Path | None = None


def crop_size(pairs, largest: int = TrainSettings.crop) -> int:
    """Return the training crop edge: ``largest``, or less for small images (a multiple of 32).

    Crops larger than most images would be mostly padding; the crop follows
    the median image side, rounded down to a multiple of 32 and at least 64 px.
    """
    sides = [min(p.labels.shape) for p in pairs]
    return int(min(largest, max(64, 32 * (int(np.median(sides)) // 32))))


def model_and_pairs(
    start,
    load,
    *,
    encoder: str = "compact",
    name: str | None = None,
    encoder_weights: Path | None = None,
    star_rays: int | None = None,
    colour_input: bool = False,
):
    """Build or load the network to train, and load its pairs normalised as it expects.

    Parameters
    ----------
    start : path or None
        A model file to fine-tune, or None for a new network whose object size is
        the labels' median diameter.
    load : callable
        ``load(percentiles, channels)`` returns the training pairs normalised with
        those percentiles for a network that reads ``channels`` channels (the
        model's ``config.in_channels``: a fine-tuned colour model gets colour pairs).
    encoder : str
        Encoder of a new network.
    name : str, optional
        The model's name; by default a fine-tuned model keeps its own.
    encoder_weights : pathlib.Path, optional
        Local ImageNet weights for a new network's torchvision encoder.
    star_rays : int, optional
        Add a star-convex head with this many rays, if the model has none.
    colour_input : bool
        Give a fine-tuned one-channel model three input channels when some of the
        training images are colour (see ``TrainSettings.colour_input``).

    Returns
    -------
    (model, pairs)

    """
    from napari_segnet.models import ModelConfig, create_model, load_model, with_star_head
    from napari_segnet.models.network import with_rgb_input

    if start is None:
        config = ModelConfig(encoder=encoder, in_channels=1, name=name or ModelConfig.name)
    else:
        model, _ = load_model(start)
        config = replace(model.config, name=name or model.config.name)
    if start is not None and colour_input and config.in_channels == 1:
        # Loaded once, as three channels; without colour, grey images' first channel is
        # exactly what the one-channel model reads.
        pairs = load(config.normalise_percentiles, 3)
        if any(not _grey(pair.image) for pair in pairs):
            model, config = with_rgb_input(model), replace(config, in_channels=3)
        else:
            pairs = [replace(pair, image=pair.image[0]) for pair in pairs]
    else:
        pairs = load(config.normalise_percentiles, config.in_channels)
    if start is None:
        config = replace(config, object_diameter_px=median_diameter(pairs))
        model = create_model(config, encoder_weights=encoder_weights)
    model.config = config
    if star_rays is not None:
        model = with_star_head(model, star_rays)
    return model, pairs


def _grey(image: np.ndarray) -> bool:
    """Whether a channels-first image holds one plane three times (how grey images are given)."""
    return bool(np.array_equal(image[0], image[1]) and np.array_equal(image[0], image[2]))


def iter_training(request: TrainingRequest) -> Generator[Progress, None, dict]:
    """Build the pairs and the model, then train; yields Progress, returns the summary.

    The one training set-up of the CLI and the Train widget. Its first events
    carry ``info["message"]``: how the data was split, in words.

    Raises
    ------
    ValueError
        If the data cannot be used (e.g. no objects at all).
    """
    from napari_segnet.inference.devices import select_device

    yield Progress(0, 1, "preparing the data")
    device = select_device(request.device)

    def load(percentiles, channels):
        pairs = []
        for source in request.sources:
            options = dict(percentiles=percentiles, channels=channels)
            if isinstance(source, FolderSource):
                pairs += load_pairs(*source.folders, **options)
            else:
                pairs.append(make_pair(source.image, source.labels, name=source.name, **options))
        return pairs

    model, pairs = model_and_pairs(
        request.start,
        load,
        encoder=request.encoder,
        name=request.name,
        encoder_weights=request.encoder_weights,
        star_rays=request.star_rays,
        colour_input=request.settings.colour_input,
    )
    resized = ""
    if request.settings.size_normalise and model.config.object_diameter_px:
        pairs = size_normalised(pairs, model.config.object_diameter_px)
        resized = f", rescaled to the model's object size ({model.config.object_diameter_px:g} px)"
    if not any(p.labels.any() for p in pairs):
        raise ValueError("The training labels are empty: paint or segment some objects first.")
    train, validation = split_pairs(pairs, request.validation_fraction)
    settings = replace(request.settings, crop=crop_size(train, request.settings.crop))
    yield Progress(
        0,
        1,
        "preparing the data",
        {
            "message": describe_split(train, validation, pairs, request.validation_fraction)
            + f"{resized}, on {device}."
        },
    )
    teacher = None
    if request.teacher is not None:
        from napari_segnet.models import load_model

        teacher, _ = load_model(request.teacher)
    provenance = {
        "from": str(request.start) if request.start else None,
        "teacher": str(request.teacher) if request.teacher else None,
        "trained_on": [source.name for source in request.sources],
        "validation_images": sorted({p.name for p in validation}),
    }
    summary = yield from iter_train(
        model,
        train,
        validation,
        settings,
        out=request.out,
        device=device,
        resume=request.resume,
        provenance=provenance,
        teacher=teacher,
    )
    if settings.tune_thresholds and validation and model.config.instance_method == "watershed":
        summary["threshold_tuning"] = yield from iter_retune(request.out, validation, device)
    return summary


def iter_retune(path: Path, validation, device) -> Generator[Progress, None, dict]:
    """Choose the thresholds of the model in ``path`` on ``validation``; write them into it."""
    from napari_segnet.models import load_model, save_model

    from .thresholds import iter_tune_thresholds

    model, provenance = load_model(path, device)
    best, tuning = yield from iter_tune_thresholds(model, validation, device=device)
    model.config = replace(model.config, instance_settings=asdict(best))
    save_model(model.cpu(), path, provenance={**provenance, "threshold_tuning": tuning})
    return tuning


def describe_split(train, validation, pairs, fraction: float) -> str:
    """Say in words what :func:`~napari_segnet.training.data.split_pairs` held out."""
    if not validation:
        return f"Training on {len(train)} images without validation (the last epoch is kept)"
    if {p.name for p in validation}.isdisjoint(p.name for p in train):
        return f"Training on {len(train)} images, validating on {len(validation)}"
    return (
        f"Training on the first {1 - fraction:.0%} of each of {len(pairs)} images, "
        "validating on the rest"
    )


class TrainingProcess:
    """Run :func:`iter_training` in a child process; read its progress with :meth:`events`.

    Examples
    --------
    >>> process = TrainingProcess(request)            # doctest: +SKIP
    >>> for event in process.events(): ...            # doctest: +SKIP
    >>> process.stop()                                # any time; the best model stays

    """

    def __init__(self, request: TrainingRequest):
        context = multiprocessing.get_context("spawn")  # never fork a process holding Qt
        self.request = request
        self._messages = context.Queue()
        self._process = context.Process(target=_train, args=(request, self._messages), daemon=True)
        self._process.start()
        self.result: dict | None = None
        self.error: str | None = None

    def events(self, poll_s: float = 0.2) -> Iterator[Progress | None]:
        """Progress from the child; ``None`` every ``poll_s`` without news (a chance to stop).

        When it ends, :attr:`result` holds the summary or :attr:`error` one sentence.
        """
        while True:
            try:
                kind, payload = self._messages.get(timeout=poll_s)
            except queue.Empty:
                if not self._process.is_alive():
                    self.error = self.error or (
                        f"Training stopped unexpectedly (exit code {self._process.exitcode})."
                    )
                    return
                yield None
                continue
            if kind == "progress":
                yield payload
            elif kind == "done":
                self.result = payload
                return
            else:
                self.error = payload
                return

    def stop(self) -> None:
        """End the child now; the best model written so far is kept."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=10)
        with contextlib.suppress(OSError):
            Path(f"{self.request.out}.resume.pt").unlink()  # runs started here do not resume


def _train(request: TrainingRequest, messages) -> None:
    from napari_segnet.messages import one_sentence

    try:
        result = drain(iter_training(request), lambda event: messages.put(("progress", event)))
    except Exception as error:  # reported to the user in one sentence
        messages.put(("error", one_sentence(error)))
    else:
        messages.put(("done", result))
