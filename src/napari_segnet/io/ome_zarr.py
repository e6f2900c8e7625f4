"""Read OME-Zarr images (NGFF 0.1 to 0.5) lazily into a :class:`MicroscopyImage`.

NGFF 0.4 and older are Zarr format 2 groups whose ``.zattrs`` hold ``multiscales``
(and optionally ``omero``); NGFF 0.5 is Zarr format 3, whose ``zarr.json``
attributes nest the same keys under ``"ome"``. The metadata is parsed here with
:mod:`json` and the arrays are opened with :mod:`zarr`, so no pixel is read until
the dask array is computed. A ``bioformats2raw`` layout (one image per numbered
subgroup) is read too: its images are the series.

Axes come from the ``axes`` of the multiscales (names ``t``, ``c``, ``z``, ``y``,
``x``; axes of type ``time`` or ``channel`` with other names count as ``T`` and
``C``); NGFF 0.1 and 0.2, which have no ``axes``, are always 5-D ``TCZYX``. The
pixel size is the dataset's ``scale`` times the multiscales' own ``scale``, in
the unit of each axis: lengths are converted to micrometres and times to
seconds, and an axis without a known unit is uncalibrated.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from .axes import AxesError, validate_axes
from .errors import ImageReadError, one_line
from .image import MicroscopyImage
from .lazy import GuardedArray, block_shape
from .limits import MAX_BYTES, MAX_DIMENSION, fits_in_memory
from .memory import available_memory, format_bytes
from .model_identity import METADATA_KEY, ZARR_KEY, ModelIdentity

FORMAT = "ome-zarr"
ZARR_METADATA_FILES = ("zarr.json", ".zattrs", ".zgroup", ".zarray")
AXIS_LETTERS = {"t": "T", "c": "C", "z": "Z", "y": "Y", "x": "X"}
AXIS_TYPES = {"time": "T", "channel": "C"}
# NGFF 0.1 and 0.2 have no "axes": their images are always 5-D in this order.
IMPLICIT_AXES = "tczyx"

_SI_PREFIXES = {
    "yotta": 1e24,
    "zetta": 1e21,
    "exa": 1e18,
    "peta": 1e15,
    "tera": 1e12,
    "giga": 1e9,
    "mega": 1e6,
    "kilo": 1e3,
    "hecto": 1e2,
    "deca": 1e1,
    "deci": 1e-1,
    "centi": 1e-2,
    "milli": 1e-3,
    "micro": 1e-6,
    "nano": 1e-9,
    "pico": 1e-12,
    "femto": 1e-15,
    "atto": 1e-18,
    "zepto": 1e-21,
    "yocto": 1e-24,
}
# Micrometres per unit: the NGFF (UDUNITS-2) names, their British spellings and symbols.
LENGTH_TO_UM: dict[str, float] = {
    **{f"{p}meter": f * 1e6 for p, f in _SI_PREFIXES.items()},
    **{f"{p}metre": f * 1e6 for p, f in _SI_PREFIXES.items()},
    "meter": 1e6,
    "metre": 1e6,
    "m": 1e6,
    "cm": 1e4,
    "mm": 1e3,
    "µm": 1.0,
    "μm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "nm": 1e-3,
    "pm": 1e-6,
    "angstrom": 1e-4,
    "ångström": 1e-4,
    "å": 1e-4,
    "inch": 25_400.0,
    "foot": 304_800.0,
    "yard": 914_400.0,
    "mile": 1_609_344e3,
    "parsec": 3.085_677_581e22,
}
# Seconds per unit.
TIME_TO_S: dict[str, float] = {
    **{f"{p}second": f for p, f in _SI_PREFIXES.items()},
    "second": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "ms": 1e-3,
    "µs": 1e-6,
    "us": 1e-6,
    "ns": 1e-9,
    "minute": 60.0,
    "min": 60.0,
    "hour": 3600.0,
    "h": 3600.0,
    "day": 86_400.0,
}


def is_zarr_folder(path: str | os.PathLike) -> bool:
    """Tell whether the path is a folder holding Zarr metadata (OME-Zarr or not).

    Parameters
    ----------
    path : str or os.PathLike
        Any path.

    Returns
    -------
    bool
        True for a folder with a ``zarr.json``, ``.zattrs``, ``.zgroup`` or ``.zarray``.

    """
    path = Path(path)
    return path.is_dir() and any((path / name).is_file() for name in ZARR_METADATA_FILES)


def is_ome_zarr(path: str | os.PathLike) -> bool:
    """Tell whether the path is an OME-Zarr image folder.

    Parameters
    ----------
    path : str or os.PathLike
        Any path.

    Returns
    -------
    bool
        True for a folder whose group attributes have ``multiscales``, directly
        (NGFF 0.4 and older) or under ``"ome"`` (NGFF 0.5), and for a
        ``bioformats2raw`` layout whose first image has them.

    """
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        attrs, _ = _group_attributes(path)
        if "multiscales" in attrs:
            return True
        if "bioformats2raw.layout" in attrs:
            return "multiscales" in _group_attributes(path / "0")[0]
        return False
    except (OSError, ValueError, TypeError, AttributeError):
        return False


def read_ome_zarr(
    path: str | os.PathLike,
    *,
    series: int = 0,
    level: int = 0,
    axes: str | None = None,
) -> MicroscopyImage:
    """Open an OME-Zarr image lazily with its axes, channel names and pixel size.

    Parameters
    ----------
    path : str or os.PathLike
        The OME-Zarr folder (the group holding ``multiscales``, or a
        ``bioformats2raw`` layout).
    series : int, optional
        Which image of a ``bioformats2raw`` layout (default: the first); other
        OME-Zarr folders hold one image.
    level : int, optional
        Resolution level, in the order of the multiscales' datasets; 0 is full resolution.
    axes : str, optional
        Override the axes (letters from ``"TCZYXS"``, one per non-singleton
        dimension). By default they come from the multiscales' ``axes``.

    Returns
    -------
    MicroscopyImage
        Its ``data`` is a dask array that reads the Zarr chunks when computed,
        with size-1 axes dropped.

    Raises
    ------
    ImageReadError
        If the folder is not OME-Zarr, its metadata is missing or damaged, the
        level or series does not exist, or its axes cannot be understood; the
        message is a single sentence naming the folder. Chunks found damaged
        when the data is computed raise it too.

    """
    path = Path(path)
    try:
        return _read(path, series, level, axes)
    except ImageReadError:
        raise
    except AxesError as error:
        raise ImageReadError(f"Cannot read {path.name}: {error}") from error
    except MemoryError:
        raise ImageReadError(
            f"Cannot read {path.name}: there is not enough memory to open it."
        ) from None
    except Exception as error:
        raise ImageReadError(
            f"Cannot read {path.name}: its OME-Zarr metadata is damaged{one_line(error)}."
        ) from error


def _read(path: Path, series: int, level: int, axes: str | None) -> MicroscopyImage:
    name = path.name
    if not path.exists():
        raise ImageReadError(f"Cannot read {path}: the folder does not exist.")
    if not path.is_dir():
        raise ImageReadError(f"Cannot read {name}: it is a file, not an OME-Zarr folder.")
    image_path, n_series = _image_group(path, series)
    attrs, zarr_format = _group_attributes(image_path)
    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise ImageReadError(f"Cannot read {name}: its multiscales metadata is empty or damaged.")
    multiscale = multiscales[0]
    if not isinstance(multiscale, dict):
        raise ImageReadError(f"Cannot read {name}: its multiscales metadata is damaged.")
    version = str(attrs.get("version") or multiscale.get("version") or "")
    datasets = multiscale.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise ImageReadError(f"Cannot read {name}: its multiscales metadata lists no datasets.")
    if not 0 <= level < len(datasets):
        raise ImageReadError(
            f"Cannot read level {level} of {name}: it has {len(datasets)} level(s)."
        )
    dataset = datasets[level]
    if not isinstance(dataset, dict) or not isinstance(dataset.get("path"), str):
        raise ImageReadError(f"Cannot read {name}: level {level} of its metadata has no path.")
    array = _open_array(image_path, dataset["path"], zarr_format, name, level)
    shape = tuple(int(n) for n in array.shape)

    file_axes, kinds, units, inferred = _file_axes(multiscale, len(shape), name, axes)
    letters = _letters(file_axes, kinds) if axes is None else None
    if letters is None and axes is None:
        unknown = next(a for a, k in zip(file_axes, kinds) if _letter(a, k) is None)
        raise ImageReadError(
            f"Cannot read {name}: its axis {unknown!r} is not one of t, c, z, y, x "
            f"(give the axes explicitly, e.g. axes={_example_axes(shape)!r})."
        )
    # Size-1 axes are dropped, but never the rows or columns of the image.
    keep = [i for i, n in enumerate(shape) if n > 1 or (letters is not None and letters[i] in "YX")]
    if letters is None and len(keep) < 2:
        keep = sorted({*keep, len(shape) - 2, len(shape) - 1})
    if axes is None:
        final_axes = "".join(letters[i] for i in keep)
        try:
            validate_axes(final_axes, len(keep))
        except AxesError as error:
            raise ImageReadError(
                f"Cannot read {name}: its axes {tuple(file_axes)} cannot be used "
                f"({str(error).rstrip('.')})."
            ) from None
    else:
        final_axes, inferred = validate_axes(axes, len(keep)), False

    scale = _scale(multiscale, dataset, len(shape))
    pixel_size = {}
    for letter, i in zip(final_axes, keep):
        size = _physical_size(letter, scale[i] if scale else None, units[i])
        if size is not None:
            pixel_size[letter] = size

    data = _dask_array(array, name)
    data = data[tuple(slice(None) if i in keep else 0 for i in range(len(shape)))]
    omero = attrs.get("omero") if isinstance(attrs.get("omero"), dict) else {}
    labels = _channel_labels(omero.get("channels"))
    if "C" in final_axes:
        n = data.shape[final_axes.index("C")]
        names = tuple(
            labels[i] if i < len(labels) and labels[i] else f"Channel {i}" for i in range(n)
        )
    else:
        names = (labels[0],) if len(labels) == 1 and labels[0] else ()

    metadata: dict[str, Any] = {
        "format": FORMAT,
        "ngff_version": version,
        "zarr_format": zarr_format,
        "name": multiscale.get("name") if isinstance(multiscale.get("name"), str) else None,
        "series": series,
        "n_series": n_series,
        "level": level,
        "n_levels": len(datasets),
        "image_label": "image-label" in attrs,  # a label image (e.g. our own labels output)
        "file_axes": tuple(file_axes),
        "axes_inferred": inferred,
        "dtype": str(array.dtype),
        "lazy": True,
        # MicroscopyImage.spacing takes a missing Z step as 1 µm: say so.
        "z_step_assumed": "Z" in final_axes
        and {"Y", "X"} <= pixel_size.keys()
        and "Z" not in pixel_size,
    }
    ours = attrs.get(ZARR_KEY)  # labels we wrote record the model that made them
    model = ModelIdentity.from_metadata(ours.get(METADATA_KEY) if isinstance(ours, dict) else None)
    if model is not None:
        metadata[METADATA_KEY] = model.as_metadata()
    return MicroscopyImage(
        data=data,
        axes=final_axes,
        channel_names=names,
        pixel_size=pixel_size,
        emission_wavelengths=(None,) * len(names),
        path=path,
        metadata=metadata,
    )


def _read_json(path: Path) -> dict:
    with open(path, encoding="utf-8") as file:
        document = json.load(file)
    if not isinstance(document, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    return document


def _group_attributes(path: Path) -> tuple[dict, int]:
    """Return the group's attributes, with NGFF 0.5's ``"ome"`` ones merged in, and its format.

    Raises ``FileNotFoundError`` when the folder has no group metadata.
    """
    if (path / "zarr.json").is_file():
        document = _read_json(path / "zarr.json")
        if document.get("node_type") != "group":
            raise ValueError(f"zarr.json describes a {document.get('node_type')}, not a group")
        attrs, zarr_format = document.get("attributes") or {}, 3
    elif (path / ".zattrs").is_file():
        attrs, zarr_format = _read_json(path / ".zattrs"), 2
    elif (path / ".zgroup").is_file():
        attrs, zarr_format = {}, 2
    else:
        raise FileNotFoundError(f"{path} has no Zarr group metadata")
    if not isinstance(attrs, dict):
        raise ValueError("the group attributes are not a JSON object")
    ome = attrs.get("ome")
    if isinstance(ome, dict):
        attrs = {**attrs, **ome}
    return attrs, zarr_format


def _image_group(path: Path, series: int) -> tuple[Path, int]:
    """Return the folder of the image to read, and the number of images in ``path``."""
    name = path.name
    try:
        attrs, _ = _group_attributes(path)
    except FileNotFoundError:
        raise ImageReadError(
            f"Cannot read {name}: it is a folder without OME-Zarr metadata."
        ) from None
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise ImageReadError(
            f"Cannot read {name}: its Zarr group metadata is damaged{one_line(error)}."
        ) from None
    if "multiscales" in attrs:
        n_series, image = 1, path
    elif "bioformats2raw.layout" in attrs:
        paths = _bioformats2raw_series(path)
        n_series = len(paths)
        image = path / paths[series] if 0 <= series < n_series else path
    elif "plate" in attrs or "well" in attrs:
        raise ImageReadError(
            f"Cannot read {name}: it is an OME-Zarr {'plate' if 'plate' in attrs else 'well'}, "
            "not an image (give the folder of one of its images)."
        )
    else:
        raise ImageReadError(
            f"Cannot read {name}: it is a Zarr folder but not an OME-Zarr image "
            "(its attributes have no multiscales)."
        )
    if not 0 <= series < n_series:
        raise ImageReadError(f"Cannot read series {series} of {name}: it has {n_series} series.")
    return image, n_series


def _bioformats2raw_series(path: Path) -> list[str]:
    """Return the image paths of a ``bioformats2raw`` layout: ``OME``'s list, or 0, 1, ..."""
    try:
        listed = _group_attributes(path / "OME")[0].get("series")
    except (OSError, ValueError):
        listed = None
    if isinstance(listed, list) and listed and all(isinstance(p, str) for p in listed):
        return listed
    paths = []
    while (path / str(len(paths))).is_dir():
        paths.append(str(len(paths)))
    return paths


def _open_array(group: Path, relative: str, zarr_format: int, name: str, level: int):
    import zarr

    where = group / relative
    if not any((where / f).is_file() for f in ("zarr.json", ".zarray")):
        raise ImageReadError(
            f"Cannot read {name}: the array of its level {level} ({relative!r}) is missing."
        )
    try:
        array = zarr.open_array(where, mode="r", zarr_format=zarr_format)
        shape, dtype, chunks = tuple(array.shape), np.dtype(array.dtype), tuple(array.chunks)
    except Exception as error:
        detail = f" (no {error.args[0]!r} field)" if isinstance(error, KeyError) else ""
        raise ImageReadError(
            f"Cannot read {name}: the chunk metadata of its level {level} ({relative!r}) "
            f"is damaged{detail or one_line(error)}."
        ) from None
    if len(shape) < 2:
        raise ImageReadError(
            f"Cannot read {name}: its data has shape {shape}, not an image of at least 2-D."
        )
    if min(shape) == 0:
        raise ImageReadError(
            f"Cannot read {name}: it declares an image of shape {shape}, which holds no pixels."
        )
    if max(shape) > MAX_DIMENSION or math.prod(shape) * dtype.itemsize > MAX_BYTES:
        raise ImageReadError(
            f"Cannot read {name}: it declares an image of shape {shape}, "
            "too large to be real (its metadata is probably damaged)."
        )
    if dtype.kind not in "biuf":
        raise ImageReadError(f"Cannot read {name}: its pixels are of type {dtype}, not numbers.")
    if len(chunks) != len(shape) or min(chunks) < 1:
        raise ImageReadError(
            f"Cannot read {name}: its chunks {chunks} do not fit its shape {shape} "
            "(its metadata is damaged)."
        )
    chunk_bytes = math.prod(chunks) * dtype.itemsize  # a chunk is decoded whole
    if not fits_in_memory(chunk_bytes):
        raise ImageReadError(
            f"Cannot read {name}: one chunk of it would need {format_bytes(chunk_bytes)} of "
            f"memory when decoded, too much for the {format_bytes(available_memory())} available."
        )
    return array


def _dask_array(array, name: str):
    import dask.array as da

    return da.from_array(
        GuardedArray(array, name),
        chunks=block_shape(array.shape, array.dtype, array.chunks),
        name=f"ome-zarr-{uuid.uuid4().hex}",
        asarray=True,
        fancy=False,
        meta=np.empty((0,) * array.ndim, array.dtype),
    )


def _file_axes(multiscale: dict, ndim: int, name: str, override: str | None):
    """Return the axes' names, types and units, and whether they were implied by the version."""
    declared = multiscale.get("axes")
    if declared is None:
        if ndim != len(IMPLICIT_AXES) and override is not None:
            return [f"dim_{i}" for i in range(ndim)], [None] * ndim, [None] * ndim, False
        if ndim != len(IMPLICIT_AXES):
            raise ImageReadError(
                f"Cannot read {name}: its metadata names no axes and its data is {ndim}-D, "
                "not the 5-D TCZYX of early OME-Zarr (give the axes explicitly)."
            )
        return list(IMPLICIT_AXES), [None] * ndim, [None] * ndim, True
    if not isinstance(declared, list):
        raise ImageReadError(f"Cannot read {name}: the axes in its metadata are damaged.")
    names, kinds, units = [], [], []
    for axis in declared:
        if isinstance(axis, str):  # NGFF 0.3: plain names
            axis = {"name": axis}
        if not isinstance(axis, dict) or not isinstance(axis.get("name"), str):
            raise ImageReadError(f"Cannot read {name}: the axes in its metadata are damaged.")
        names.append(axis["name"])
        kinds.append(axis.get("type") if isinstance(axis.get("type"), str) else None)
        units.append(axis.get("unit") if isinstance(axis.get("unit"), str) else None)
    if len(names) != ndim:
        raise ImageReadError(
            f"Cannot read {name}: its metadata names {len(names)} axes but its data has {ndim}."
        )
    return names, kinds, units, False


def _letter(axis: str, kind: str | None) -> str | None:
    letter = AXIS_LETTERS.get(axis.strip().lower())
    if letter is None and kind is not None:
        letter = AXIS_TYPES.get(kind.lower())
    return letter


def _letters(names: list[str], kinds: list[str | None]) -> str | None:
    """Return the letters of the file's axes, or None if one of them is unknown."""
    letters = [_letter(a, k) for a, k in zip(names, kinds)]
    return None if None in letters else "".join(letters)


def _example_axes(shape: tuple[int, ...]) -> str:
    n = sum(1 for i, s in enumerate(shape) if s > 1 or i >= len(shape) - 2)
    return "TCZYX"[-n:] if n <= 5 else "TCZYX"


def _scale(multiscale: dict, dataset: dict, ndim: int) -> list[float] | None:
    """Return the dataset's scale times the multiscales' scale; None if either is unusable."""
    total = [1.0] * ndim
    found = False
    for owner in (dataset, multiscale):
        transforms = owner.get("coordinateTransformations")
        for transform in transforms if isinstance(transforms, list) else ():
            if not isinstance(transform, dict) or transform.get("type") != "scale":
                continue
            scale = transform.get("scale")
            if (
                not isinstance(scale, list)
                or len(scale) != ndim
                or not all(isinstance(s, int | float) and not isinstance(s, bool) for s in scale)
            ):
                return None  # given as a path to a binary file, or damaged
            total = [t * float(s) for t, s in zip(total, scale)]
            found = True
    return total if found else None


def _physical_size(letter: str, scale: float | None, unit: str | None) -> float | None:
    """Return a pixel's size along ``letter`` in µm (Z, Y, X) or s (T); None if unknown."""
    if scale is None or unit is None or letter not in "TZYX":
        return None
    table = TIME_TO_S if letter == "T" else LENGTH_TO_UM
    factor = table.get(unit.strip().casefold())
    if factor is None or not math.isfinite(scale) or scale <= 0:
        return None
    return scale * factor


def _channel_labels(channels) -> list[str]:
    if not isinstance(channels, list):
        return []
    return [
        str(c["label"]).strip() if isinstance(c, dict) and c.get("label") is not None else ""
        for c in channels
    ]
