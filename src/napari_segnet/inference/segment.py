"""Segment images: channel choice, normalisation, optional rescaling, tiles, instances.

Z-stacks and time series are segmented plane by plane with labels unique
across the whole stack; in Z-stacks, objects in neighbouring planes that
overlap are linked into one 3-D object.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np

from napari_segnet.io import MicroscopyImage
from napari_segnet.io.writer import labels_dtype
from napari_segnet.postprocess import InstanceSettings, StarSettings
from napari_segnet.postprocess.classes import classify_instances
from napari_segnet.postprocess.stack import link_planes
from napari_segnet.progress import Progress, drain, relay

from .augment import VIEWS
from .diameter import AUTO, DiameterEstimate, iter_estimate_diameter
from .normalise import NormalisedView, normalisation_of, normalise
from .plane import instance_method_of, instance_settings_of, make_instances, segment_normalised
from .reuse import NetworkOutputs
from .tiling import BATCH_SIZE, OVERLAP, TILE

DNA_NAMES = ("dapi", "hoechst", "dna", "nuc", "h2b", "draq5", "sir-dna", "spy", "405")


@dataclass(frozen=True)
class SegmentSettings:
    """Options of :func:`iter_segment`.

    Attributes
    ----------
    channel : int, str or None
        Channel index or name for multichannel images. None picks the first
        channel named like a DNA stain (DAPI, Hoechst, ...), else channel 0.
    diameter : float, "auto" or None
        Typical object diameter in the image; the image is rescaled so that
        objects have the size the model was trained at. ``"auto"`` (the
        default) measures it first (see :mod:`napari_segnet.inference.diameter`);
        None segments the image as it is.
    diameter_unit : {"px", "um"}
        Unit of a numeric ``diameter``; micrometres need a calibrated image.
    tile, overlap, batch_size : int
        Tiling of the network's input.
    instances : InstanceSettings or None
        Thresholds; None uses the model's own (chosen on its validation data).
    link_z : bool
        Link overlapping objects of neighbouring Z planes into 3-D objects.
    invert : bool or None
        Whether objects are darker than the background (brightfield, H&E).
        None decides per plane from its intensity histogram
        (see :func:`napari_segnet.inference.normalise.normalise`).
    tta : bool
        Test-time augmentation: average every tile over its eight flips and 90°
        rotations (eight times the network's cost; see
        :mod:`napari_segnet.inference.augment`). The object size is measured
        without it.
    star : StarSettings or None
        Probability and overlap thresholds of star-head models' polygons; None
        uses :class:`~napari_segnet.postprocess.star.StarSettings`' defaults.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Number format of the network (see
        :func:`~napari_segnet.inference.precision.autocast_dtype`): ``auto`` is
        bfloat16 (float16 on older GPUs) on CUDA and float32 elsewhere.
    """

    channel: int | str | None = None
    diameter: float | str | None = AUTO
    diameter_unit: str = "px"
    tile: int = TILE
    overlap: int = OVERLAP
    batch_size: int = BATCH_SIZE
    instances: InstanceSettings | None = None
    link_z: bool = True
    invert: bool | None = None
    tta: bool = False
    star: StarSettings | None = None
    precision: str = "auto"


@dataclass
class Segmentation:
    """Result of segmenting an image.

    Attributes
    ----------
    labels : ndarray
        Instance labels with the image's axes minus channels (e.g. ``"ZYX"``).
    axes : str
        The axes of ``labels``.
    channel : int or None
        The channel that was segmented.
    probabilities : ndarray or None
        ``(3, *labels.shape)`` class probabilities when asked for.
    classes : dict
        Per-instance semantic class (``label``, ``class``, ``class_probability``
        arrays) for models with semantic classes; empty otherwise.
    scale : float
        The zoom the network saw the image at (1: as it is).
    diameter_estimate : DiameterEstimate or None
        What automatic sizing measured (None when a diameter was given).
    outputs : NetworkOutputs or None
        Everything the network produced, with ``keep_probabilities``: give it
        back to :func:`iter_segment` (``reuse=``) to make objects with other
        thresholds without running the network again.
    """

    labels: np.ndarray
    axes: str
    channel: int | None = None
    probabilities: np.ndarray | None = None
    classes: dict = field(default_factory=dict)
    scale: float = 1.0
    diameter_estimate: DiameterEstimate | None = None
    outputs: NetworkOutputs | None = None


def choose_channel(image: MicroscopyImage, key: int | str | None) -> int | None:
    """Index of the channel to segment (None for single-channel and RGB images)."""
    if image.is_rgb or "C" not in image.axes:
        if key not in (None, 0, "0"):
            raise ValueError(f"The image has no channels to choose from (axes {image.axes}).")
        return None
    if key is not None:
        return image.channel_index(key)
    for index, name in enumerate(image.channel_names):
        if any(dna in name.casefold() for dna in DNA_NAMES):
            return index
    return 0


def rescale_factor(model, image: MicroscopyImage, settings: SegmentSettings) -> float:
    """How much to zoom the image so its objects match the model's training size.

    For a given diameter only: ``"auto"`` is measured on the pixels
    (:func:`~napari_segnet.inference.diameter.iter_estimate_diameter`). A model
    without a training size is never rescaled.
    """
    trained = model.config.object_diameter_px
    if settings.diameter is None or not trained:
        return 1.0
    if settings.diameter == AUTO:
        raise ValueError("An automatic diameter is measured on the image, not computed here.")
    if settings.diameter <= 0:
        raise ValueError("The object diameter must be positive.")
    diameter = settings.diameter
    if settings.diameter_unit == "um":
        if image.spacing is None:
            raise ValueError("A diameter in µm needs a calibrated image; give it in pixels.")
        diameter = diameter / image.spacing[-1]
    return float(trained / diameter)


class PlaneTooLargeError(MemoryError):
    """A plane needs more memory to segment than is available; the message says how much."""


# Peak memory of segmenting one plane, per pixel: the plane, its float32 normalised copy, the
# tiles' blended class probabilities and their weights, labels and the watershed's work arrays.
# Measured with `napari-segnet segment` (default settings, measurements on): 26 MP -> 1.8 GiB,
# 105 MP -> 4.9 GiB peak RSS, i.e. about 40 bytes per pixel beyond a fixed ~0.8 GiB.
BYTES_PER_PIXEL = 40
# A star head adds 1 + R float32 maps a pixel: the blended sums, their copy resized back to the
# plane, and a working copy in the polygon step (an estimate: 3 × 4 bytes a map).
BYTES_PER_STAR_MAP = 12


def bytes_per_pixel(config) -> int:
    """Estimated peak memory of segmenting one pixel with a model of this config.

    A network that reads several channels adds a float32 input plane for each
    channel beyond the first.
    """
    per_pixel = BYTES_PER_PIXEL + 4 * (getattr(config, "in_channels", 1) - 1)
    if not config.has_star_head:
        return per_pixel
    return per_pixel + BYTES_PER_STAR_MAP * (1 + config.star_rays)


def check_plane_fits(
    shape: tuple[int, int], scale: float = 1.0, per_pixel: int = BYTES_PER_PIXEL
) -> None:
    """Refuse, before reading it, a plane that this process cannot segment in memory.

    Raises
    ------
    PlaneTooLargeError
        If ``per_pixel`` bytes times the plane's pixels (at the network's scale)
        exceed what :func:`napari_segnet.io.limits.memory_budget` allows
        (see :func:`bytes_per_pixel` for a model's).
    """
    from napari_segnet.io.limits import memory_budget
    from napari_segnet.io.memory import format_bytes

    pixels = int(np.prod(shape, dtype=np.int64)) * max(1.0, scale) ** 2
    needed, budget = int(pixels * per_pixel), memory_budget()
    if needed > budget:
        zoomed = (
            f" enlarged {scale:.2f} times to the model's object size (see --diameter)"
            if scale > 1
            else ""
        )
        raise PlaneTooLargeError(
            f"Segmenting a {' × '.join(map(str, shape))} plane{zoomed} needs about "
            f"{format_bytes(needed)} of memory, more than the {format_bytes(budget)} available; "
            "segment a cropped region, or a lower-resolution level of the file."
        )


def iter_segment(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings = SegmentSettings(),
    *,
    device=None,
    keep_probabilities: bool = False,
    reuse: NetworkOutputs | None = None,
) -> Generator[Progress, None, Segmentation]:
    """Segment every plane of an image; yield progress, return a :class:`Segmentation`.

    Each plane is normalised for the channels the model reads
    (``model.config.in_channels``): one plane, or R, G, B for a colour network
    (see :func:`~napari_segnet.inference.normalise.normalise`).

    With ``keep_probabilities``, the result holds the class probabilities
    (``probabilities``) and everything else the network produced (``outputs``).
    Given back as ``reuse`` (for the same image, model and network settings:
    see :mod:`napari_segnet.inference.reuse`), those outputs replace the network
    and the measurement of the object size: only the step from outputs to
    objects runs, with ``settings``' thresholds, and the labels are those a full
    run with these thresholds makes at the same zoom.

    Raises
    ------
    ValueError
        If ``reuse`` holds outputs of another model or of another number of planes.
    """
    channel = choose_channel(image, settings.channel)
    data, axes = image.data, image.axes
    if channel is not None:
        # Indexing keeps memory maps and dask arrays lazy (np.take would read everything).
        data = data[tuple(channel if a == "C" else slice(None) for a in axes)]
        axes = axes.replace("C", "")
    plane_ndim = 3 if axes.endswith("S") else 2
    stack_shape = tuple(data.shape[: data.ndim - plane_ndim])
    label_axes = axes.replace("S", "")
    instance_settings = settings.instances or instance_settings_of(model)
    options = dict(
        instance_settings=instance_settings,
        tile=settings.tile,
        overlap=settings.overlap,
        batch_size=settings.batch_size,
        device=device,
        precision=settings.precision,
        star_settings=settings.star,
    )
    n_planes = int(np.prod(stack_shape, dtype=int))
    # A network that reads R, G, B gets colour as colour (a grey plane in every channel).
    channels = model.config.in_channels

    def normalised_plane(index) -> np.ndarray:
        plane = np.asarray(data[index])
        return normalise(
            plane, model.config.normalise_percentiles, invert=settings.invert, channels=channels
        )

    plane_shape, per_pixel = data.shape[data.ndim - plane_ndim :][:2], bytes_per_pixel(model.config)
    estimate = None
    if reuse is not None:
        reuse.check_fits(model, stack_shape)
        scale, estimate = reuse.scale, reuse.diameter_estimate
    elif settings.diameter == AUTO and model.config.object_diameter_px:  # else: no size
        check_plane_fits(plane_shape, 1.0, per_pixel)
        middle = data[tuple(int(i) for i in np.unravel_index(n_planes // 2, stack_shape))]
        percentiles = model.config.normalise_percentiles
        normalisation = normalisation_of(
            middle, percentiles, invert=settings.invert, channels=channels
        )
        view = NormalisedView(middle, normalisation)
        events = iter_estimate_diameter(model, view, **options)
        estimate = yield from relay(
            events, lambda event: Progress(0, n_planes * 1000, "estimating the object size")
        )
        scale = estimate.scale
    else:
        check_plane_fits(plane_shape, 1.0, per_pixel)
        scale = rescale_factor(model, image, settings)
    labels = probabilities = semantic = None
    offset, kept = 0, []
    if reuse is None:
        check_plane_fits(plane_shape, scale, per_pixel)
    views = VIEWS if settings.tta else 1
    for number, index in enumerate(np.ndindex(*stack_shape)):
        if reuse is not None:
            events = _instances_again(
                model, reuse.planes[number], instance_settings, scale, options
            )
        elif n_planes == 1 and views == 1 and estimate and estimate.first_pass is not None:
            # The estimate's pass was this plane's, with the model's own thresholds.
            first_labels, first_outputs = estimate.first_pass
            if instance_settings == instance_settings_of(model) and settings.star is None:
                events = _finished((first_labels, first_outputs))
            else:
                events = _instances_again(model, first_outputs, instance_settings, scale, options)
        else:
            plane = normalised_plane(index)
            events = segment_normalised(model, plane, scale=scale, views=views, **options)
        plane_labels, plane_probabilities = yield from relay(
            events,
            lambda event, number=number: Progress(
                number * 1000 + int(1000 * event.done / max(event.total, 1)),
                n_planes * 1000,
                f"segmenting plane {number + 1} of {n_planes}",
            ),
        )
        if labels is None:
            labels = np.zeros(stack_shape + plane_labels.shape, np.uint32)
            if keep_probabilities:
                probabilities = np.zeros((3, *labels.shape), np.float32)
            if "semantic" in plane_probabilities:
                k = plane_probabilities["semantic"].shape[0]
                semantic = np.zeros((k, *labels.shape), np.float16)
        plane_labels = plane_labels.astype(np.uint32)
        plane_labels[plane_labels > 0] += offset
        offset = max(offset, int(plane_labels.max()))
        labels[index] = plane_labels
        if keep_probabilities:
            instance = plane_probabilities["instance"]
            probabilities[(slice(None), *index)] = instance
            if instance.dtype == probabilities.dtype:  # kept once: a view of `probabilities`
                view = probabilities[(slice(None), *index)]
                plane_probabilities = {**plane_probabilities, "instance": view}
            kept.append(plane_probabilities)
        if semantic is not None:
            semantic[(slice(None), *index)] = plane_probabilities["semantic"]
    if settings.link_z and "Z" in label_axes:
        labels = link_planes(labels, label_axes.index("Z"))
    labels = labels.astype(labels_dtype(int(labels.max(initial=0))), copy=False)
    classes = {}
    if semantic is not None:
        classes = classify_instances(labels, semantic, model.config.semantic_classes)
    outputs = None
    if keep_probabilities:
        identity = getattr(model, "identity", None)
        outputs = NetworkOutputs(tuple(kept), stack_shape, scale, estimate, identity)
    return Segmentation(
        labels, label_axes, channel, probabilities, classes, scale, estimate, outputs
    )


def _instances_again(model, outputs, instance_settings, scale, options):
    """Yield once; return ``(labels, outputs)`` of a plane from its kept network outputs."""
    yield Progress(0, 1, "making objects")
    labels = make_instances(
        outputs,
        instance_method_of(model),
        instance_settings.at_zoom(scale),
        options["star_settings"],
    )
    return labels, outputs


def _finished(result):
    """Return ``result`` from a generator that yields nothing (a pass already made)."""
    return result
    yield


def segment(
    image: MicroscopyImage,
    model,
    settings: SegmentSettings = SegmentSettings(),
    *,
    device=None,
    progress: Callable[[Progress], object] | None = None,
) -> Segmentation:
    """Segment an image (see :func:`iter_segment`); ``progress`` sees every event."""
    return drain(iter_segment(image, model, settings, device=device), progress)
