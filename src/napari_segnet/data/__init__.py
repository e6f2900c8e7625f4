"""Sample images shipped with the package (DSB2018, CC0; see the README for credits)."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

SAMPLES = {
    "nuclei": "nuclei_fluo.tif",
    "nuclei_labels": "nuclei_fluo_labels.tif",
    "nuclei_2ch": "nuclei_2ch.ome.tif",
}


def sample_path(name: str) -> Path:
    """Path of a bundled sample file: one of ``nuclei``, ``nuclei_labels``, ``nuclei_2ch``."""
    if name not in SAMPLES:
        raise ValueError(f"Unknown sample {name!r}; choose from {', '.join(SAMPLES)}.")
    return Path(str(files(__name__).joinpath(SAMPLES[name])))
