"""Per-object measurements of label images and their export to CSV."""

from napari_segnet.measure.export import write_csv
from napari_segnet.measure.properties import measure, sanitise_channel_names

__all__ = ["measure", "sanitise_channel_names", "write_csv"]
