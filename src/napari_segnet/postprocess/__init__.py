"""From class probabilities to instance labels."""

from .instances import InstanceSettings, probabilities_to_instances

__all__ = ["InstanceSettings", "probabilities_to_instances"]
