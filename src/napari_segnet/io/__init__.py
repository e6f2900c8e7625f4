"""Reading microscopy TIFFs and OME-Zarr images, and writing labels."""

from .atomic import atomic_path, atomic_paths
from .axes import AxesError
from .image import MicroscopyImage
from .reader import ImageReadError, is_image_path, is_tiff_path, read_image
from .writer import write_labels

__all__ = [
    "AxesError",
    "ImageReadError",
    "MicroscopyImage",
    "atomic_path",
    "atomic_paths",
    "is_image_path",
    "is_tiff_path",
    "read_image",
    "write_labels",
]
