"""Build the bundled sample images from the DSB2018 training data (CC0).

    python scripts/make_sample_data.py ../shared/data/dsb2018/train

Writes into src/napari_segnet/data/:
- nuclei_fluo.tif            the original fluorescence image (uint8, no calibration)
- nuclei_fluo_labels.tif     its expert nucleus annotations (instance labels)
- nuclei_2ch.ome.tif         a calibrated 2-channel OME-TIFF: the real DNA stain, plus a
                             synthetic cytoplasm channel derived from the annotations so
                             that per-channel measurements have something to measure.
The pixel size written into the OME-TIFF (0.65 µm) is nominal: the source files carry none.
"""

import sys
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage
from skimage.segmentation import expand_labels

IMAGE_ID = "6fe2df6de1d962b90146c822bcefc84d0d3d6926fdfbacd3acdc9de830ee5622"
PIXEL_SIZE_UM = 0.65
OUT = Path(__file__).resolve().parents[1] / "src" / "napari_segnet" / "data"


def synthetic_cytoplasm(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cell-body stain: a ring around each nucleus with a per-cell brightness."""
    cells = expand_labels(labels, distance=7)
    brightness = rng.uniform(400, 2500, size=labels.max() + 1)
    brightness[0] = 0
    signal = brightness[cells] * (labels == 0) + 0.25 * brightness[labels]
    signal = ndimage.gaussian_filter(signal, 1.5)
    signal = rng.poisson(signal + 100.0)  # offset and shot noise as on a real camera
    return np.clip(signal, 0, 65535).astype(np.uint16)


def main(train: Path) -> None:
    image = tifffile.imread(train / "images" / f"{IMAGE_ID}.tif")
    labels = tifffile.imread(train / "masks" / f"{IMAGE_ID}.tif")
    OUT.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(OUT / "nuclei_fluo.tif", image, compression="zlib")
    tifffile.imwrite(
        OUT / "nuclei_fluo_labels.tif",
        labels.astype(np.uint16),
        compression="zlib",
        imagej=True,
        resolution=(1 / PIXEL_SIZE_UM, 1 / PIXEL_SIZE_UM),
        metadata={"axes": "YX", "unit": "micron"},
    )
    cytoplasm = synthetic_cytoplasm(labels, np.random.default_rng(2018))
    stack = np.stack([image.astype(np.uint16) * 16, cytoplasm])
    tifffile.imwrite(
        OUT / "nuclei_2ch.ome.tif",
        stack,
        compression="zlib",
        ome=True,
        metadata={
            "axes": "CYX",
            "Name": "DSB2018 nuclei with synthetic cytoplasm",
            "PhysicalSizeX": PIXEL_SIZE_UM,
            "PhysicalSizeXUnit": "µm",
            "PhysicalSizeY": PIXEL_SIZE_UM,
            "PhysicalSizeYUnit": "µm",
            "Channel": {
                "Name": ["DAPI", "CellMask (synthetic)"],
                "EmissionWavelength": [461.0, 520.0],
                "EmissionWavelengthUnit": ["nm", "nm"],
            },
        },
    )
    for path in sorted(OUT.glob("*.tif")):
        print(f"{path.name}: {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/data/dsb2018/train"))
