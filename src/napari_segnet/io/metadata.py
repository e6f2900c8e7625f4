"""Channel names, pixel sizes and other metadata from OME, ImageJ and plain TIFF files.

Lengths are converted to micrometres and time intervals to seconds. Plain TIFF
resolution tags count as calibration only when their unit is metric: the
inch-based 72/96/300 dpi written by most non-scientific software says nothing
about the specimen.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from typing import Any

import tifffile

from .model_identity import METADATA_KEY, OME_NAMESPACE, ModelIdentity, parse_text

LENGTH_TO_UM = {
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,
    "μm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "nm": 1e-3,
    "nanometer": 1e-3,
    "pm": 1e-6,
    "å": 1e-4,
    "angstrom": 1e-4,
}
TIME_TO_S = {"s": 1.0, "sec": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "min": 60.0, "h": 3600.0}
# TIFF ResolutionUnit values that are metric (4 and 5 are tifffile's extensions).
METRIC_RESOLUTION_UNITS_UM = {3: 1e4, 4: 1e3, 5: 1.0}


@dataclass
class FileMetadata:
    """What a file says about one series, before axes are finalised."""

    channel_names: list[str] = field(default_factory=list)
    emission_wavelengths: list[float | None] = field(default_factory=list)
    pixel_size: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def length_in_um(value: Any, unit: str | None) -> float | None:
    """Convert a length to micrometres; None if it is missing, invalid or of unknown unit."""
    factor = LENGTH_TO_UM.get(_clean_unit(unit) if unit else "µm")
    return _positive(value, factor)


def time_in_s(value: Any, unit: str | None) -> float | None:
    """Convert a time interval to seconds; None if missing, invalid or of unknown unit."""
    factor = TIME_TO_S.get(_clean_unit(unit) if unit else "s")
    return _positive(value, factor)


def _clean_unit(unit: str) -> str:
    return unit.replace("\\u00B5", "µ").replace("\\u00b5", "µ").strip().casefold()


def _positive(value: Any, factor: float | None) -> float | None:
    try:
        number = float(value) * factor if factor is not None else None
    except (TypeError, ValueError):
        return None
    if number is None or not 0 < number < float("inf"):
        return None
    return float(f"{number:.9g}")  # drop rational-tag noise such as 0.6499999999999999


def read_metadata(tif: tifffile.TiffFile, series_index: int) -> FileMetadata:
    """Collect the metadata of one series of an open TIFF file."""
    if tif.is_ome and tif.ome_metadata:
        meta = _ome_metadata(tif.ome_metadata, series_index)
        meta.extra["format"] = "OME-TIFF"
    elif tif.is_imagej and tif.imagej_metadata is not None:
        meta = _imagej_metadata(tif)
        meta.extra["format"] = "ImageJ hyperstack"
    else:
        meta = FileMetadata(pixel_size=_resolution_tags(tif.series[series_index].pages[0]))
        meta.extra["format"] = "TIFF"
    description = tif.pages.first.description
    if description and not (tif.is_ome or tif.is_imagej or tif.is_shaped):
        meta.extra["description"] = description[:2000]
    model = _model_identity(tif)
    if model is not None:
        meta.extra[METADATA_KEY] = model.as_metadata()
    return meta


def _model_identity(tif: tifffile.TiffFile) -> ModelIdentity | None:
    """Return the model that made a labels TIFF of ours (ImageJ description or OME XML)."""
    if tif.is_ome and tif.ome_metadata:
        if OME_NAMESPACE not in tif.ome_metadata:  # not ours: no need to parse it again
            return None
        try:
            root = ElementTree.fromstring(tif.ome_metadata)
        except ElementTree.ParseError:
            return None
        for element in root.iter():
            if _local(element.tag) == "MapAnnotation" and element.get("Namespace") == OME_NAMESPACE:
                values = {m.get("K"): m.text for m in element.iter() if _local(m.tag) == "M"}
                return ModelIdentity.from_metadata(values)
        return None
    if tif.is_imagej:
        # Parsed here, not from tifffile's imagej_metadata, which turns a hash made only of
        # digits into a number.
        return ModelIdentity.from_metadata(parse_text(tif.pages.first.description or ""))
    return None


def _local(tag: str) -> str:
    """Return an XML tag without its namespace: ``{http://...}M`` → ``M``."""
    return tag.rsplit("}", 1)[-1]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _ome_metadata(xml: str, series_index: int) -> FileMetadata:
    try:
        ome = tifffile.xml2dict(xml)["OME"]
    except Exception:  # malformed XML: keep the pixels, drop the metadata
        return FileMetadata(extra={"metadata_warning": "OME-XML could not be parsed"})
    images = _as_list(ome.get("Image"))
    if not images:
        return FileMetadata()
    image = images[min(series_index, len(images) - 1)]
    pixels = image.get("Pixels", {})
    meta = FileMetadata()
    for axis in "XYZ":
        size = length_in_um(
            pixels.get(f"PhysicalSize{axis}"), pixels.get(f"PhysicalSize{axis}Unit")
        )
        if size is not None:
            meta.pixel_size[axis] = size
    interval = time_in_s(pixels.get("TimeIncrement"), pixels.get("TimeIncrementUnit"))
    if interval is not None:
        meta.pixel_size["T"] = interval
    for channel in _as_list(pixels.get("Channel")):
        meta.channel_names.append(str(channel.get("Name") or channel.get("Fluor") or ""))
        emission = length_in_um(
            channel.get("EmissionWavelength"), channel.get("EmissionWavelengthUnit") or "nm"
        )
        meta.emission_wavelengths.append(None if emission is None else emission * 1e3)
    for key, name in (("Name", "name"), ("AcquisitionDate", "acquisition_date")):
        if image.get(key):
            meta.extra[name] = str(image[key])
    if image.get("Description"):
        meta.extra["description"] = str(image["Description"])[:2000]
    return meta


def _imagej_metadata(tif: tifffile.TiffFile) -> FileMetadata:
    ij = tif.imagej_metadata
    meta = FileMetadata()
    unit = ij.get("unit")
    page = tif.pages.first
    if unit and _clean_unit(unit) in LENGTH_TO_UM:
        x_res, y_res = page.get_resolution()
        for axis, resolution in (("X", x_res), ("Y", y_res)):
            size = length_in_um(1.0 / resolution if resolution else None, unit)
            if size is not None:
                meta.pixel_size[axis] = size
        z_step = length_in_um(ij.get("spacing"), unit)
        if z_step is not None:
            meta.pixel_size["Z"] = z_step
    interval = time_in_s(ij.get("finterval"), ij.get("tunit"))
    if interval is not None:
        meta.pixel_size["T"] = interval
    labels = [str(label) for label in _as_list(ij.get("Labels"))]
    n_channels = int(ij.get("channels", 1))
    if n_channels > 1 and len(labels) >= n_channels:
        # ImageJ stores planes channel-fastest: the first C labels name the channels.
        first = labels[:n_channels]
        if len(set(first)) == n_channels:
            meta.channel_names = first
    if ij.get("Info"):
        meta.extra["description"] = str(ij["Info"])[:2000]
    return meta


def _resolution_tags(page: tifffile.TiffPage) -> dict[str, float]:
    to_um = METRIC_RESOLUTION_UNITS_UM.get(int(page.resolutionunit))
    if to_um is None:
        return {}
    x_res, y_res = page.get_resolution()
    sizes = {}
    for axis, resolution in (("X", x_res), ("Y", y_res)):
        size = _positive(1.0 / resolution if resolution else None, to_um)
        if size is not None:
            sizes[axis] = size
    return sizes
