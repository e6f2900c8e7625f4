"""Running networks on images: device choice (and, with the engine, tiled prediction)."""

from .devices import DeviceStatus, device_report

__all__ = ["DeviceStatus", "device_report"]
