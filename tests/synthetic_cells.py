"""Synthetic tissue with known truth: irregular cells, their nuclei, stains and markers.

Cells are a multiplicatively weighted Voronoi diagram of jittered seeds, on
warped coordinates (curved, uneven outlines), inside a tissue mask with holes
of background; each holds one elliptical nucleus placed off-centre. Channels:
``DAPI`` (nuclei), ``membrane`` (bright rims), ``cytoplasm`` (a fill, dim in the
nucleus), ``CD8`` (cytoplasmic marker) and ``Ki67`` (nuclear marker), each with
noise; the positive cells of both markers are known. 2-D or 3-D, any pixel size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

CHANNELS = ("DAPI", "membrane", "cytoplasm", "CD8", "Ki67")


@dataclass
class SyntheticCells:
    nuclei: np.ndarray
    cells: np.ndarray
    image: np.ndarray  # (C, *spatial) float32, channels in CHANNELS order
    spacing: tuple[float, ...]
    positive: dict[str, dict[int, bool]]  # marker -> {label: positive}

    def channel(self, name: str) -> np.ndarray:
        return self.image[CHANNELS.index(name)]


def synthetic_cells(
    shape=(256, 256),
    *,
    spacing=(0.5, 0.5),
    cell_size=14.0,
    nucleus_radius=(2.5, 4.0),
    tissue_fraction=0.8,
    rim_gaps=0.0,
    positive_fraction=(0.3, 0.4),
    noise=6.0,
    seed=0,
) -> SyntheticCells:
    """Irregular cells with nuclei, stains and markers; sizes in micrometres.

    ``rim_gaps`` is the fraction of membrane rim pixels left unstained, in short
    runs; ``positive_fraction`` the share of CD8+ and of Ki67+ cells.
    """
    rng = np.random.default_rng(seed)
    shape, spacing = tuple(shape), np.asarray(spacing, dtype=np.float64)
    tissue = _tissue(rng, shape, spacing, tissue_fraction)
    seeds = _seeds(rng, shape, spacing, cell_size, tissue)
    cells = _weighted_voronoi(rng, shape, spacing, seeds, cell_size, tissue)
    nuclei = _nuclei(rng, cells, spacing, nucleus_radius)
    cells[~np.isin(cells, np.unique(nuclei))] = 0
    cells, nuclei = _relabel(cells, nuclei)
    n = int(cells.max())
    cd8 = rng.random(n + 1) < positive_fraction[0]
    ki67 = rng.random(n + 1) < positive_fraction[1]
    image = _channels(rng, cells, nuclei, spacing, cd8, ki67, rim_gaps, noise)
    labels = range(1, n + 1)
    positive = {
        "CD8": {k: bool(cd8[k]) for k in labels},
        "Ki67": {k: bool(ki67[k]) for k in labels},
    }
    return SyntheticCells(nuclei, cells, image, tuple(spacing), positive)


def _smooth_noise(rng, shape, sigma_px):
    field = ndi.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return field / field.std()


def _tissue(rng, shape, spacing, fraction):
    if fraction >= 1:
        return np.ones(shape, dtype=bool)
    field = _smooth_noise(rng, shape, 25.0 / spacing)
    return field > np.quantile(field, 1 - fraction)


def _seeds(rng, shape, spacing, size, tissue):
    extent = np.asarray(shape) * spacing
    grids = np.meshgrid(*[np.arange(size / 2, e, size) for e in extent], indexing="ij")
    points = np.stack([g.reshape(-1) for g in grids], axis=1)
    points += rng.uniform(-0.3 * size, 0.3 * size, points.shape)
    index = np.clip(np.round(points / spacing).astype(int), 0, np.asarray(shape) - 1)
    return points[tissue[tuple(index.T)]]


def _weighted_voronoi(rng, shape, spacing, seeds, size, tissue):
    coords = np.indices(shape, dtype=np.float64) * spacing.reshape((-1,) + (1,) * len(shape))
    warp = [0.25 * size * _smooth_noise(rng, shape, 0.3 * size / spacing) for _ in shape]
    coords = coords + np.stack(warp)
    weights = rng.uniform(0.7, 1.35, len(seeds))
    best = np.full(shape, np.inf)
    cells = np.zeros(shape, dtype=np.int32)
    for k, (point, weight) in enumerate(zip(seeds, weights), start=1):
        offset = coords - point.reshape((-1,) + (1,) * len(shape))
        distance = np.sqrt(np.sum(offset**2, axis=0)) / weight
        closer = (distance < best) & (distance * weight <= 0.9 * size * weight)
        best[closer] = distance[closer]
        cells[closer] = k
    cells[~tissue] = 0
    # Keep each cell's largest piece: the warp and weights can cut a region in two.
    out = np.zeros_like(cells)
    for k, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        pieces, count = ndi.label(cells[box] == k)
        if count:
            largest = 1 + int(np.argmax(np.bincount(pieces.reshape(-1))[1:]))
            out[box][pieces == largest] = k
    return out


def _nuclei(rng, cells, spacing, radius):
    nuclei = np.zeros_like(cells)
    ndim = cells.ndim
    for k, box in enumerate(ndi.find_objects(cells), start=1):
        if box is None:
            continue
        inside = cells[box] == k
        depth = ndi.distance_transform_edt(np.pad(inside, 1), sampling=spacing)[
            (slice(1, -1),) * ndim
        ]
        semi = rng.uniform(*radius, ndim)
        if ndim == 3:
            semi[0] = max(semi[0], 2 * spacing[0])  # at least a few planes thick
        margin = 2 * spacing.max()
        room = depth.max() - margin
        if room < radius[0] * 0.7:
            continue
        semi = np.minimum(semi, room)
        candidates = np.argwhere(depth >= semi.max() + margin)
        if candidates.size == 0:
            candidates = np.argwhere(depth >= depth.max() - 1e-9)
        centre = candidates[rng.integers(len(candidates))] * spacing
        grid = np.indices(inside.shape, dtype=np.float64) * spacing.reshape((-1,) + (1,) * ndim)
        offset = grid - centre.reshape((-1,) + (1,) * ndim)
        if ndim == 2:
            angle = rng.uniform(0, np.pi)
            cos, sin = np.cos(angle), np.sin(angle)
            offset = np.stack(
                [cos * offset[0] + sin * offset[1], -sin * offset[0] + cos * offset[1]]
            )
        ellipse = np.sum((offset / semi.reshape((-1,) + (1,) * ndim)) ** 2, axis=0) <= 1
        nucleus = ellipse & (depth > spacing.max())
        if nucleus.sum() >= 8:
            nuclei[box][nucleus] = k
    return nuclei


def _relabel(cells, nuclei):
    ids = np.unique(cells[cells > 0])
    lut = np.zeros(int(cells.max()) + 1, dtype=np.int32)
    lut[ids] = np.arange(1, ids.size + 1)
    return lut[cells], lut[nuclei]


def _channels(rng, cells, nuclei, spacing, cd8, ki67, rim_gaps, noise):
    shape, n = cells.shape, int(cells.max())
    blur = 0.5 / spacing  # an optical blur of 0.5 µm
    in_cell, in_nucleus = cells > 0, nuclei > 0
    brightness = rng.uniform(0.6, 1.3, n + 1)
    rims = find_boundaries(cells, mode="inner") & in_cell
    if rim_gaps > 0:
        gaps = _smooth_noise(rng, shape, 1.5 / spacing)
        rims &= gaps > np.quantile(gaps, rim_gaps)
    dapi = 8 + 100 * brightness[nuclei] * in_nucleus
    membrane = 6 + 12 * in_cell + 110 * brightness[cells] * rims
    edge = find_boundaries(cells, mode="inner") & in_cell
    cytoplasm = 6 + 90 * brightness[cells] * in_cell * (1 - 0.5 * edge) * (1 - 0.75 * in_nucleus)
    # Markers: positives vary fivefold in brightness; a few are dim, as in real stainings.
    cd8_level = np.where(cd8, rng.uniform(35, 140, n + 1), rng.uniform(0, 10, n + 1))
    ki67_level = np.where(ki67, rng.uniform(40, 160, n + 1), rng.uniform(0, 12, n + 1))
    cytoplasmic = in_cell & ~in_nucleus
    cd8_image = 10 + cd8_level[cells] * cytoplasmic
    ki67_image = 10 + ki67_level[nuclei] * in_nucleus
    out = []
    for channel in (dapi, membrane, cytoplasm, cd8_image, ki67_image):
        blurred = ndi.gaussian_filter(channel.astype(np.float64), blur)
        out.append(blurred + rng.normal(0, noise, shape))
    return np.stack(out).astype(np.float32)


def write_ome_tiff(path, tissue: SyntheticCells):
    """Write a tissue's channels as a calibrated 2-D OME-TIFF (uint16, named channels)."""
    import tifffile

    tifffile.imwrite(
        path,
        np.clip(tissue.image, 0, 65535).astype(np.uint16),
        ome=True,
        metadata={
            "axes": "CYX",
            "PhysicalSizeX": tissue.spacing[-1],
            "PhysicalSizeY": tissue.spacing[-2],
            "Channel": {"Name": list(CHANNELS)},
        },
    )
    return path
