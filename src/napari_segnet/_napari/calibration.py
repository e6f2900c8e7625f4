"""A layer's physical pixel size, from its ``scale`` and pint ``units`` (no Qt)."""

from __future__ import annotations


def micrometres(scale, units) -> tuple[float, ...] | None:
    """Convert scale steps with pint units to micrometres.

    Parameters
    ----------
    scale : sequence of float
        Steps of a layer's ``scale``.
    units : sequence of pint.Unit or str
        Their units, as in a layer's ``units``.

    Returns
    -------
    tuple of float or None
        The steps in µm; None if any of them is not a length (e.g. ``pixel``).
    """
    import pint

    sizes = []
    for step, unit in zip(scale, units):
        try:
            quantity = float(step) * (unit if isinstance(unit, pint.Unit) else pint.Unit(unit))
            sizes.append(float(quantity.to("micrometer").magnitude))
        except (pint.errors.PintError, ValueError, TypeError, AttributeError):
            return None
    return tuple(sizes)


def spatial_spacing(layer, axes: str) -> tuple[float, ...] | None:
    """Return the pixel size in µm along the spatial axes (Z, Y, X) of a layer.

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer, for its ``scale`` and ``units``.
    axes : str
        Its axes (see :func:`~napari_segnet._napari.layer_axes.layer_axes`).

    Returns
    -------
    tuple of float or None
        One size per spatial axis; None if the layer is not calibrated in lengths.
    """
    keep = [i for i, axis in enumerate(axes.replace("S", "")) if axis in "ZYX"]
    units = getattr(layer, "units", None) or ("pixel",) * layer.ndim
    return micrometres([layer.scale[i] for i in keep], [units[i] for i in keep])


def describe_spacing(spacing: tuple[float, ...] | None) -> str:
    """Say a pixel size in words: 'Pixel size 0.65 µm × 0.65 µm' (voxel for 3-D).

    Parameters
    ----------
    spacing : tuple of float or None
        Sizes in µm (see :func:`spatial_spacing`); None says 'Uncalibrated: pixels'.

    Returns
    -------
    str
        The sentence shown under the Measure widget's table.
    """
    if spacing is None:
        return "Uncalibrated: pixels"
    kind = "Voxel" if len(spacing) == 3 else "Pixel"
    return f"{kind} size " + " × ".join(f"{s:.4g} µm" for s in spacing)
