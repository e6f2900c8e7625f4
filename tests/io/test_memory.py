"""Tests for telling how much memory is left, and for the limits built on it."""

from pathlib import Path

import pytest

from napari_segnet.io.limits import MEMORY_SHARE, fits_in_memory, memory_budget
from napari_segnet.io.memory import available_memory, format_bytes


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux reports MemTotal there")
def test_available_memory_is_positive_and_below_physical_memory():
    available = available_memory()
    assert available > 0
    with open("/proc/meminfo") as meminfo:
        total = int(next(line for line in meminfo if line.startswith("MemTotal:")).split()[1])
    assert available <= total * 1024


def test_budget_is_a_share_of_the_available_memory():
    budget = memory_budget()
    assert 0 < budget <= available_memory()
    assert budget == pytest.approx(available_memory() * MEMORY_SHARE, rel=0.05)
    assert fits_in_memory(1)
    assert not fits_in_memory(2**60)


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "0 bytes"),
        (999, "999 bytes"),
        (1600, "1.6 kB"),
        (1_600_000_000, "1.6 GB"),
        (3e12, "3.0 TB"),
    ],
)
def test_format_bytes(n, words):
    assert format_bytes(int(n)) == words
