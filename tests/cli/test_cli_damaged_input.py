"""A batch of damaged, hostile and oversized files through ``napari-segnet segment``."""

import re
import resource

import numpy as np
import tifffile

import damaged_tiffs


def test_a_batch_of_damaged_files_gives_one_sentence_each_and_the_rest_is_done(run_cli, tmp_path):
    (tmp_path / "sources").mkdir()
    sources = damaged_tiffs.write_sources(tmp_path / "sources")
    inputs = [sources["ome-zlib-tiles"]]  # intact
    folder = tmp_path / "damaged"
    folder.mkdir()
    for name in ("plain-zlib-tiles", "plain-lzw-strips", "ome-zlib-tiles", "imagej-raw"):
        variants = list(damaged_tiffs.damaged_variants(sources[name]))
        for n, (_, content) in enumerate(variants[:: max(1, len(variants) // 10)]):
            path = folder / f"{name}-{n}.tif"
            path.write_bytes(content)
            inputs.append(path)
    (tmp_path / "hostile").mkdir()
    inputs += damaged_tiffs.write_hostile_metadata(tmp_path / "hostile").values()
    inputs.append(damaged_tiffs.write_bomb(tmp_path / "bomb.tif"))
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.zeros((40, 50), np.uint8))
    inputs.append(good)

    def limit_memory():  # enough for torch and small images, far too little for the bomb
        resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, resource.RLIM_INFINITY))

    out = tmp_path / "out"
    # In memory (--block 0): block by block, the bomb is a valid 40000² plane of zeros and is
    # segmented in bounded memory (measured: 0 objects in 143 s), too slow for this test.
    result = run_cli(
        "segment", *inputs, "--out", out, "--no-measure", "--block", "0", preexec_fn=limit_memory
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "retrying" not in result.stderr  # a plane too large for memory is refused at once
    errors = [line for line in result.stderr.splitlines() if line.startswith("napari-segnet: err")]
    done = [line for line in result.stderr.splitlines() if re.fullmatch(r"\S+: \d+ objects", line)]
    assert len(errors) + len(done) == len(inputs)  # one line per input: its objects or why not
    assert (
        result.stderr.splitlines()[-1]
        == f"napari-segnet: {len(errors)} of {len(inputs)} inputs failed."
    )
    assert "ome-zlib-tiles.tif: " in done[0] and done[-1] == "good.tif: 0 objects"
    assert any(
        line.startswith("napari-segnet: error: bomb.tif: Segmenting a 40000 × 40000")
        for line in errors
    )
    for line in errors:
        name = line.removeprefix("napari-segnet: error: ").split(":")[0].split()[-1]
        assert name.endswith(".tif") and len(line.splitlines()) == 1, line
    written = sorted(p.name for p in out.iterdir())
    assert len(written) == len(done)  # and no partial files beside them
    assert all(name.endswith("_labels.tif") and not name.startswith(".") for name in written)
