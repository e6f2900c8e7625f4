from dataclasses import dataclass, field

import numpy as np
import pytest
import tifffile
from napari.utils.notifications import NotificationSeverity, notification_manager
from qtpy.QtCore import Qt


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


@dataclass
class Run:
    """What a widget's run emitted: progress events, results, and whether it was cancelled."""

    progress: list = field(default_factory=list)
    results: list = field(default_factory=list)
    cancelled: bool | None = None


@pytest.fixture
def run_to_end(qtbot):
    """Click a widget's button, wait for its runner's ``finished`` signal, return the Run."""

    def run(widget, button, timeout_ms=300_000):
        record = Run()
        widget.runner.yielded.connect(record.progress.append)
        widget.runner.returned.connect(record.results.append)
        try:
            with qtbot.waitSignal(widget.runner.finished, timeout=timeout_ms) as finished:
                qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
        finally:
            widget.runner.yielded.disconnect(record.progress.append)
            widget.runner.returned.disconnect(record.results.append)
        (record.cancelled,) = finished.args
        return record

    return run


@pytest.fixture
def infos():
    """Messages of the information notifications shown during the test."""
    seen = []

    def record(notification):
        if notification.severity == NotificationSeverity.INFO:
            seen.append(notification.message)

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
