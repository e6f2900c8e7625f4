import pytest

from synthetic_cells import synthetic_cells


@pytest.fixture(scope="session")
def tissue():
    """A 2-D field of irregular cells, rims with gaps, markers with known positives."""
    return synthetic_cells((256, 256), spacing=(0.5, 0.5), rim_gaps=0.1, seed=0)


@pytest.fixture(scope="session")
def batch():
    """Three images at 0.5 µm/px; the last one has no positive cell for either marker."""
    fractions = [(0.3, 0.4), (0.3, 0.4), (0.0, 0.0)]
    return [
        synthetic_cells((256, 256), rim_gaps=0.1, positive_fraction=f, seed=10 + i)
        for i, f in enumerate(fractions)
    ]


@pytest.fixture(scope="session")
def tissue_3d():
    """A small anisotropic stack of tissue: 1 µm between planes, 0.5 µm pixels."""
    return synthetic_cells(
        (24, 96, 96),
        spacing=(1.0, 0.5, 0.5),
        cell_size=12.0,
        nucleus_radius=(2.5, 3.5),
        tissue_fraction=1.0,
        seed=3,
    )
