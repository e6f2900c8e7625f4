"""From class probabilities (and star-convex polygons) to instance labels."""

from .instances import InstanceSettings, probabilities_to_instances
from .star import StarSettings, star_seeded_watershed, star_to_instances

__all__ = [
    "InstanceSettings",
    "StarSettings",
    "probabilities_to_instances",
    "star_seeded_watershed",
    "star_to_instances",
]
