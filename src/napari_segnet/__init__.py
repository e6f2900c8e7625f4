"""Nucleus and cell segmentation with an encoder-decoder network, measurements and export.

Importing the package loads neither torch nor Qt: the compute modules (``io``,
``measure``, ...) and the napari plugin (``_napari``) are imported on demand.
"""

__version__ = "0.1.0"
