"""The in-memory description of a microscopy image: pixels, axes, channels, calibration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPATIAL_AXES = "ZYX"


@dataclass(frozen=True)
class MicroscopyImage:
    """Pixels of one image with the metadata needed to analyse them.

    Attributes
    ----------
    data : array-like
        A numpy array, a read-only numpy memmap, or a dask array for large files.
        Its axes are described by ``axes``; size-1 axes are already dropped.
    axes : str
        One letter per dimension of ``data``, drawn from ``"TCZYXS"``: time,
        channel, depth, rows, columns and RGB(A) samples (always last).
    channel_names : tuple of str
        One name per channel (``C``) or sample (``S``); empty when there is neither.
    pixel_size : dict
        Physical size of one pixel along each calibrated axis: micrometres for
        ``Z``, ``Y``, ``X`` and seconds for ``T``. Uncalibrated axes are absent.
    emission_wavelengths : tuple
        Emission wavelength in nanometres for each channel, or ``None`` where the
        file does not say.
    path : pathlib.Path or None
        The file the image was read from.
    metadata : dict
        Other facts worth keeping (file format, series, pyramid levels,
        description, acquisition date, ...).

    """

    data: Any
    axes: str
    channel_names: tuple[str, ...] = ()
    pixel_size: dict[str, float] = field(default_factory=dict)
    emission_wavelengths: tuple[float | None, ...] = ()
    path: Path | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def channel_axis(self) -> int | None:
        """Index of the channel (``C``) or RGB sample (``S``) axis, if any."""
        for letter in "CS":
            if letter in self.axes:
                return self.axes.index(letter)
        return None

    @property
    def n_channels(self) -> int:
        """Number of channels (1 when there is no channel axis)."""
        axis = self.channel_axis
        return 1 if axis is None else int(self.data.shape[axis])

    @property
    def is_rgb(self) -> bool:
        """True for RGB(A) colour images (an ``S`` axis)."""
        return "S" in self.axes

    @property
    def spatial_axes(self) -> str:
        """The spatial axes present, in order (``"YX"`` or ``"ZYX"``)."""
        return "".join(a for a in self.axes if a in SPATIAL_AXES)

    @property
    def spacing(self) -> tuple[float, ...] | None:
        """Pixel size in micrometres along :attr:`spatial_axes`, or None if uncalibrated.

        The image counts as calibrated when its ``Y`` and ``X`` pixel sizes are
        known. A missing ``Z`` step is then taken as 1 µm only if ``Z`` exists,
        and is reported through ``metadata["z_step_assumed"]`` by the reader.
        """
        if not {"Y", "X"} <= self.pixel_size.keys():
            return None
        return tuple(self.pixel_size.get(a, 1.0) for a in self.spatial_axes)

    def channel_index(self, key: int | str) -> int:
        """Return the index of a channel given by position or by name.

        Parameters
        ----------
        key : int or str
            A channel index (negative counts from the end) or a channel name,
            matched case-insensitively.

        Raises
        ------
        ValueError
            If there is no such channel; the message lists the channels.

        """
        n = self.n_channels
        if isinstance(key, str) and key.lstrip("-").isdigit():
            key = int(key)
        if isinstance(key, int):
            if -n <= key < n:
                return key % n
            raise ValueError(f"Channel {key} does not exist: the image has {n} channel(s).")
        names = [name.casefold() for name in self.channel_names]
        if key.casefold() in names:
            return names.index(key.casefold())
        known = ", ".join(self.channel_names) or "none are named"
        raise ValueError(f"There is no channel named {key!r} (channels: {known}).")
