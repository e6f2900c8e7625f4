"""Decide what each dimension of a TIFF series means.

tifffile reports axes from the file's metadata with letters such as ``T``,
``C``, ``Z``, ``Y``, ``X``, ``S`` and, where the file does not say, ``Q``
(unknown) or ``I`` (a sequence of pages). We keep the known letters and name
the unknown ones by this conservative rule:

1. If there is no channel axis yet, the *smallest* unknown axis with at most
   :data:`MAX_INFERRED_CHANNELS` entries becomes ``C``: few planes are far more
   often channels than depth or time, and calling a channel a z-slice would
   make a segmentation silently wrong.
2. The remaining unknown axes, from the one nearest to ``YX`` outwards, become
   ``Z`` and then ``T``.
3. Anything still unnamed is an error that asks the user to give the axes.

An ``S`` axis is kept only for real RGB(A) images (photometric RGB, 3 or 4
samples) and is then moved last; other sample axes are channels.
"""

from __future__ import annotations

AXES_ALPHABET = "TCZYXS"
MAX_INFERRED_CHANNELS = 5


class AxesError(ValueError):
    """The axes of an image cannot be determined or are invalid."""


def normalise_axes(file_axes: str, shape: tuple[int, ...], *, rgb: bool) -> tuple[str, bool]:
    """Translate tifffile's axes into letters from ``"TCZYXS"``.

    Parameters
    ----------
    file_axes : str
        Axes as reported by tifffile for the (squeezed) series.
    shape : tuple of int
        The series' shape, same length as ``file_axes``.
    rgb : bool
        Whether the file declares its samples as RGB colour.

    Returns
    -------
    axes : str
        The normalised axes (the ``S`` axis, if any, not yet moved last).
    inferred : bool
        True if any axis was named by the rule in this module's docstring.

    """
    axes = list(file_axes.upper())
    if "S" in axes and not (rgb and shape[axes.index("S")] in (3, 4)):
        axes[axes.index("S")] = "C" if "C" not in axes else "Q"
    unknown = [i for i, a in enumerate(axes) if a not in AXES_ALPHABET]
    inferred = bool(unknown)
    if "C" not in axes:
        small = [i for i in unknown if shape[i] <= MAX_INFERRED_CHANNELS]
        if small:
            choice = min(small, key=lambda i: (shape[i], i))
            axes[choice] = "C"
            unknown.remove(choice)
    for i in reversed(unknown):
        free = next((a for a in "ZT" if a not in axes), None)
        if free is None:
            raise AxesError(
                f"The image has {len(shape)} dimensions {tuple(shape)} and their meaning "
                "cannot be determined; give the axes explicitly (e.g. axes='TCZYX')."
            )
        axes[i] = free
    return "".join(axes), inferred


def validate_axes(axes: str, ndim: int) -> str:
    """Check user-given axes against the data's number of dimensions.

    Raises
    ------
    AxesError
        If the axes are not unique letters from ``"TCZYXS"`` including ``Y`` and
        ``X``, or their number does not match ``ndim``.

    """
    axes = axes.upper()
    if len(axes) != ndim:
        raise AxesError(f"Axes {axes!r} name {len(axes)} dimensions but the image has {ndim}.")
    if len(set(axes)) != len(axes) or not set(axes) <= set(AXES_ALPHABET):
        raise AxesError(f"Axes {axes!r} must be distinct letters from {AXES_ALPHABET!r}.")
    if not {"Y", "X"} <= set(axes):
        raise AxesError(f"Axes {axes!r} must include both Y and X.")
    return axes
