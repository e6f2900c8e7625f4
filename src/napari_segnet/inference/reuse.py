"""Keep a run's network outputs, so that new thresholds need not run the network again.

The network is the slow part of segmenting; turning its outputs into objects (the
watershed, or the star polygons) takes a fraction of the time. A user who tries
another seed or foreground threshold changes only that last step, so
:func:`~napari_segnet.inference.segment.iter_segment` can return what the network
produced (:class:`NetworkOutputs`, with ``keep_probabilities``) and take it back
(``reuse=``), which then makes the objects from those outputs alone: the labels are
exactly those of a full run with the new thresholds at the same zoom.

An :class:`OutputsCache` holds the outputs of recent runs within a memory budget.
Its keys must name everything that changes the network's outputs: the image and its
pixels (see :func:`data_fingerprint`), the model (its identity), the device, and
the settings that :func:`network_settings` keeps.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, replace

import numpy as np

from .diameter import DiameterEstimate

# At most this much memory holds outputs for reuse (less on a machine with little memory).
CACHE_BYTES = 1 << 30
# Share of the memory budget of one read (see io.limits.memory_budget) the cache may use.
CACHE_SHARE = 0.25


@dataclass(frozen=True, eq=False)
class NetworkOutputs:
    """What the network produced for every plane of one run.

    Attributes
    ----------
    planes : tuple of dict
        Per plane, in the order of ``numpy.ndindex(*stack_shape)``, the outputs of
        :func:`~napari_segnet.inference.tiling.iter_predict_tiled` at the plane's
        pixels (``"instance"``, and ``"semantic"``, ``"star_prob"``, ``"star_dist"``
        where the model has them).
    stack_shape : tuple of int
        The image's shape beyond its planes (``()`` for one plane, ``(Z,)``...).
    scale : float
        The zoom the network saw the planes at.
    diameter_estimate : DiameterEstimate or None
        What automatic sizing measured; reused with the outputs, so the object
        size is not measured again.
    model : object
        The identity of the model that made them (``model.identity``, or None).

    """

    planes: tuple[dict[str, np.ndarray], ...]
    stack_shape: tuple[int, ...]
    scale: float = 1.0
    diameter_estimate: DiameterEstimate | None = None
    model: object = None

    def __post_init__(self):
        if self.diameter_estimate is not None and self.diameter_estimate.first_pass is not None:
            # The first pass's labels are not needed again; its outputs are in `planes`.
            object.__setattr__(
                self, "diameter_estimate", replace(self.diameter_estimate, first_pass=None)
            )

    @property
    def nbytes(self) -> int:
        """Memory the outputs take (arrays that share memory counted once)."""
        seen, total = set(), 0
        for plane in self.planes:
            for array in plane.values():
                base = array.base if isinstance(array.base, np.ndarray) else array
                key = (id(base), array.__array_interface__["data"][0])
                if key not in seen:
                    seen.add(key)
                    total += array.nbytes
        return total

    def check_fits(self, model, stack_shape: tuple[int, ...]) -> None:
        """Refuse outputs that another model, or an image of other planes, produced.

        Raises
        ------
        ValueError
            If ``model``'s identity or the stack's shape differ from those of the outputs.
        """
        if tuple(stack_shape) != tuple(self.stack_shape):
            raise ValueError(
                f"The kept network outputs are of {len(self.planes)} planes {self.stack_shape}, "
                f"not of this image's {tuple(stack_shape)}: segment it again in full."
            )
        identity = getattr(model, "identity", None)
        if self.model is not None and identity is not None and identity != self.model:
            raise ValueError(
                "The kept network outputs were made by another model: segment the image again "
                "in full."
            )


def network_settings(settings):
    """Return the settings that the network sees: :class:`SegmentSettings` less thresholds.

    Thresholds (``instances``, ``star``) and the linking of planes change only the
    step after the network; they are reset, so that settings that differ only in
    them compare equal.
    """
    return replace(settings, instances=None, star=None, link_z=True)


def data_fingerprint(data) -> Hashable:
    """Something that changes when an image's pixels change, to key kept outputs by.

    In-memory arrays are hashed (BLAKE2, about a gigabyte a second); a dask array
    is named by its graph's token; other lazy arrays (memory maps, zarr) by their
    identity, shape and type, as their pixels are a file's.
    """
    if type(data) is np.ndarray:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{data.shape}{data.dtype}".encode())
        digest.update(np.ascontiguousarray(data).data)
        return digest.hexdigest()
    name = getattr(data, "name", None)
    if type(data).__module__.startswith("dask") and isinstance(name, str):
        return ("dask", name)
    return (type(data).__name__, id(data), tuple(data.shape), str(data.dtype))


def output_bytes(config, pixels: int) -> int:
    """Memory that a model's outputs for ``pixels`` pixels take, to decide whether to keep them.

    Three float32 class maps, plus the star head's probability and distances and
    float16 semantic classes where the model has them.
    """
    per_pixel = 3 * 4
    if getattr(config, "has_star_head", False):
        per_pixel += 4 * (1 + int(getattr(config, "star_rays", 0)))
    per_pixel += 2 * len(getattr(config, "semantic_classes", None) or ())
    return int(pixels) * per_pixel


def cache_budget() -> int:
    """Bytes an :class:`OutputsCache` may hold by default.

    :data:`CACHE_BYTES`, or :data:`CACHE_SHARE` of
    :func:`~napari_segnet.io.limits.memory_budget` when that is less.
    """
    from napari_segnet.io.limits import memory_budget

    return int(min(CACHE_BYTES, CACHE_SHARE * memory_budget()))


class OutputsCache:
    """The network outputs of recent runs, the least recently used dropped beyond a budget.

    Keys are tuples whose first item names the image (e.g. a napari layer's
    ``unique_id``), so that :meth:`forget` drops everything of an image that is
    closed. Safe to use from a worker thread and the GUI thread.

    Parameters
    ----------
    budget : int, optional
        Most bytes held (default: :func:`cache_budget`); outputs larger than
        this are not kept.
    """

    def __init__(self, budget: int | None = None):
        self.budget = cache_budget() if budget is None else int(budget)
        self._entries: OrderedDict[tuple, NetworkOutputs] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def nbytes(self) -> int:
        """Memory held now."""
        with self._lock:
            return sum(outputs.nbytes for outputs in self._entries.values())

    def fits(self, nbytes: int) -> bool:
        """Whether outputs of ``nbytes`` bytes would be kept."""
        return nbytes <= self.budget

    def get(self, key: tuple) -> NetworkOutputs | None:
        """Return the outputs kept under ``key`` (and mark them recently used), or None."""
        with self._lock:
            outputs = self._entries.get(key)
            if outputs is not None:
                self._entries.move_to_end(key)
            return outputs

    def put(self, key: tuple, outputs: NetworkOutputs) -> bool:
        """Keep ``outputs`` under ``key``, dropping the least recently used beyond the budget.

        Returns
        -------
        bool
            False (and nothing kept) when the outputs alone exceed the budget.
        """
        size = outputs.nbytes
        with self._lock:
            self._entries.pop(key, None)
            if size > self.budget:
                return False
            self._entries[key] = outputs
            total = sum(kept.nbytes for kept in self._entries.values())
            while total > self.budget:
                _, dropped = self._entries.popitem(last=False)
                total -= dropped.nbytes
            return True

    def forget(self, source: Hashable) -> None:
        """Drop all outputs of one image (the keys whose first item is ``source``)."""
        with self._lock:
            for key in [key for key in self._entries if key[0] == source]:
                del self._entries[key]

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._entries.clear()
