import numpy as np
import pytest
import tifffile
from napari.utils.notifications import NotificationSeverity, notification_manager


@pytest.fixture
def ome_two_channel(tmp_path):
    """A CZYX OME-TIFF with named channels, emission wavelengths and anisotropic voxels."""
    rng = np.random.default_rng(1)
    data = rng.integers(100, 4000, size=(2, 3, 48, 64), dtype=np.uint16)
    path = tmp_path / "embryo.ome.tif"
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "CZYX",
            "PhysicalSizeX": 0.325,
            "PhysicalSizeY": 0.325,
            "PhysicalSizeZ": 1.5,
            "Channel": {"Name": ["DAPI", "Alexa 647"], "EmissionWavelength": [461.0, 668.0]},
        },
    )
    return path, data


@pytest.fixture(autouse=True)
def _discover_plugins():
    """Make sure npe2 has found this package's manifest (through its entry point)."""
    import npe2

    npe2.PluginManager.instance().discover()


@pytest.fixture
def errors():
    """Messages of the error notifications shown during the test."""
    seen = []

    def record(notification):
        if notification.severity >= NotificationSeverity.ERROR:
            seen.append(notification.message)

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
