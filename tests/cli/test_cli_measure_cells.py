"""``measure --cell-labels``: cells made elsewhere must be numbered after their nuclei."""

import numpy as np
import tifffile
from skimage.segmentation import expand_labels


def test_cells_numbered_otherwise_are_refused_in_one_sentence(
    run_cli, error_lines, tmp_path, nuclei_pairs
):
    image, nuclei = nuclei_pairs[0]
    cells = expand_labels(nuclei, 4)
    shuffled = np.random.default_rng(0).permutation(int(cells.max()) + 1)
    shuffled[0] = 0
    tifffile.imwrite(tmp_path / "image.tif", image)
    tifffile.imwrite(tmp_path / "nuclei.tif", nuclei.astype(np.uint16))
    tifffile.imwrite(tmp_path / "own.tif", cells.astype(np.uint16))
    tifffile.imwrite(tmp_path / "other.tif", shuffled[cells].astype(np.uint16))
    common = ["measure", "--image", tmp_path / "image.tif", "--labels", tmp_path / "nuclei.tif"]

    ok = run_cli(*common, "--out", tmp_path / "own.csv", "--cell-labels", tmp_path / "own.tif")
    assert ok.returncode == 0, ok.stderr
    refused = run_cli(
        *common, "--out", tmp_path / "other.csv", "--cell-labels", tmp_path / "other.tif"
    )
    lines = error_lines(refused)
    assert len(lines) == 1 and "not numbered after the nuclei" in lines[0]
    assert not (tmp_path / "other.csv").exists()
