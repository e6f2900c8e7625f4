"""Damaged and hostile TIFFs: each read gives an image or ImageReadError, fast, in bounded memory.

The reads run in a child process (see ``damaged_tiffs._main``) whose address
space is limited, so that an attempt to allocate gigabytes fails there instead
of exhausting the machine, and a watchdog here fails the test naming the file
whose read does not finish.
"""

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import tifffile

import damaged_tiffs
from napari_segnet.io import ImageReadError, read_image

# A read that takes this long hangs (they take milliseconds).
HANG_SECONDS = 60
GiB = 2**30


def run_reads(*args: str) -> list[dict]:
    """Run the worker with ``args``; return its records, failing on a hang or a crash."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}  # fewer reserved arenas under RLIMIT_AS
    child = subprocess.Popen(
        [sys.executable, damaged_tiffs.__file__, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(x) for x in child.stdout] + [lines.put(None)]
    ).start()
    records, current = [], None
    while True:
        try:
            line = lines.get(timeout=HANG_SECONDS)
        except queue.Empty:
            child.kill()
            child.wait()
            pytest.fail(f"reading {current} did not finish within {HANG_SECONDS} s")
        if line is None:
            break
        record = json.loads(line)
        if "start" in record:
            current = record["start"]
        else:
            records.append(record)
    stderr = child.stderr.read()
    assert child.wait() == 0, f"the reader process died while reading {current}: {stderr[-3000:]}"
    return records


def _failures(records: list[dict]) -> list[str]:
    failures = []
    for record in records:
        name, result = record["file"], record["result"]
        if result == "ok":
            if record["read_shape"] != record["shape"]:
                failures.append(
                    f"{name}: data of shape {record['shape']} read as {record['read_shape']}"
                )
        elif result == "ImageReadError":
            message = record["message"]
            failures += [
                f"{name}: message {problem}: {message}"
                for problem in damaged_tiffs.sentence_problems(message, name)
            ]
            if "not enough memory" in message:  # limits must refuse before allocating
                failures.append(f"{name}: ran out of memory: {message}")
        else:
            failures.append(f"{name}: {result}: {record['message']}\n{record['traceback']}")
    return failures


@pytest.mark.parametrize("lazy", ["none", "true"])
def test_damaged_corpus_reads_or_fails_with_one_sentence(tmp_path, lazy):
    records = run_reads("corpus", str(tmp_path), lazy, str(3 * GiB))

    failures = _failures(records)
    assert not failures, f"{len(failures)} of {len(records)} reads went wrong:\n" + "\n".join(
        failures[:20]
    )
    results = {r["result"] for r in records}
    assert results == {"ok", "ImageReadError"}  # the corpus has both readable and broken files
    assert len(records) > 3000
    # Every intact source reads; OME metadata declaring absurd sizes is refused.
    intact = [r for r in records if r["file"].endswith("--intact.tif")]
    assert len(intact) == 22
    assert [r for r in intact if r["result"] != "ok" and "hostile" not in r["file"]] == []
    hostile_ome = [r for r in intact if r["file"].startswith("hostile-ome")]
    assert len(hostile_ome) == 6
    assert all("too large to be real" in r["message"] for r in hostile_ome), hostile_ome
    if lazy == "true":
        assert all(r["lazy"] for r in records if r["result"] == "ok")


def _messages(records):
    return {r["file"]: r.get("message", r["result"]) for r in records}


def _patched(tmp_path, source, name, *edits) -> Path:
    where = damaged_tiffs.layout(source)
    raw = bytearray(source.read_bytes())
    for code, value in edits:
        assert damaged_tiffs.set_tag(raw, where, code, value)
    path = tmp_path / name
    path.write_bytes(bytes(raw))
    return path


def test_deflate_strips_claiming_2_to_the_31_pixels_squared_are_refused_at_once(tmp_path, rng):
    # A ~28 kB deflate file whose tags claim 2^31 x 2^31 pixels once kept a reader busy for minutes.
    source = tmp_path / "source.tif"
    tifffile.imwrite(source, rng.integers(0, 200, (128, 128), np.uint16), compression="zlib")
    width, length = damaged_tiffs.IMAGE_WIDTH, damaged_tiffs.IMAGE_LENGTH
    files = [
        _patched(tmp_path, source, f"claims-{v}.tif", (width, v), (length, v))
        for v in (2**31, 2**31 - 1, 2**24 + 1)
    ]

    for lazy in ("none", "true", "false"):
        messages = _messages(run_reads("files", lazy, str(3 * GiB), *map(str, files)))
        for path in files:
            assert "too large to be real" in messages[path.name], messages


def test_a_zillion_declared_tiles_are_refused_at_once(tmp_path, rng):
    source = tmp_path / "source.tif"
    data = rng.integers(0, 200, (64, 64), np.uint8)
    tifffile.imwrite(source, data, tile=(16, 16), compression="zlib")
    width, length = damaged_tiffs.IMAGE_WIDTH, damaged_tiffs.IMAGE_LENGTH
    # 2^24 x 2^24 pixels in 16 x 16 tiles: 2^40 tiles, of which the file lists 16.
    big = _patched(tmp_path, source, "zillion.tif", (width, 2**24), (length, 2**24))
    many = _patched(tmp_path, source, "million.tif", (width, 2**14), (length, 2**14))

    messages = _messages(run_reads("files", "none", str(3 * GiB), str(big), str(many)))

    assert (
        "the file is damaged (an image needs 1048576 tiles but the file lists 16)"
        in (messages["million.tif"])
    )
    assert messages["zillion.tif"].startswith("Cannot read zillion.tif")


def test_many_real_tiles_read_in_few_blocks(tmp_path):
    path, data = damaged_tiffs.write_many_tiles(tmp_path / "many_tiles.tif", side=1024)
    with tifffile.TiffFile(path) as tif:
        assert len(tif.pages.first.dataoffsets) == 4096

    lazy = read_image(path, lazy=True).data
    assert lazy.npartitions <= 4  # not one task per tile
    np.testing.assert_array_equal(lazy.compute(), data)
    np.testing.assert_array_equal(read_image(path).data, data)


def test_image_directories_that_loop_after_many_pages_are_refused(tmp_path):
    # tifffile notices a loop only when it has read exactly 100 directories; this one loops later.
    path = tmp_path / "loop.tif"
    tifffile.imwrite(path, np.zeros((150, 8, 8), np.uint8), photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        last, target = tif.pages[149], tif.pages[120].offset
        pointer = last.offset + tif.tiff.tagnosize + len(last.tags) * tif.tiff.tagsize
    raw = bytearray(path.read_bytes())
    raw[pointer : pointer + 4] = target.to_bytes(4, "little")
    path.write_bytes(bytes(raw))

    for lazy in ("none", "true"):
        (record,) = run_reads("files", lazy, str(3 * GiB), str(path))
        assert "loops back on itself" in record["message"], record


# --------------------------------------------------------------------------- decompression bomb


BOMB_CHILD = """
import json, sys
import dask, numpy as np
from pathlib import Path
sys.path.insert(0, {tests!r})
import damaged_tiffs
from napari_segnet.io import ImageReadError, read_image
from napari_segnet.io.memory import available_memory

dask.config.set(num_workers=2)
damaged_tiffs._limit_address_space({limit})
report = {{"available": available_memory()}}
image = read_image({path!r})
data = image.data
report["type"] = type(data).__module__ + "." + type(data).__name__
report["shape"] = list(data.shape)
report["lazy"] = image.metadata["lazy"]
report["corner"] = int(np.asarray(data[:300, :300]).max())
report["max"] = int(data.max().compute())  # every block decoded, a few at a time
try:
    read_image({path!r}, lazy=False)
    report["eager"] = "read"
except ImageReadError as error:
    report["eager"] = str(error)
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 2.3 MB tiled deflate TIFF of 40000 x 40000 zeros (1.6 GB once decoded)."""
    return damaged_tiffs.write_bomb(tmp_path_factory.mktemp("bomb") / "bomb.tif")


def test_decompression_bomb_is_lazy_and_bounded(bomb):
    assert bomb.stat().st_size < 3_000_000
    code = BOMB_CHILD.format(
        tests=str(Path(damaged_tiffs.__file__).parent), limit=int(1.25 * GiB), path=str(bomb)
    )
    child = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "MALLOC_ARENA_MAX": "2"},
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout)

    assert report["available"] < 1.6e9  # the child really had too little memory for the pixels
    assert report["type"] == "dask.array.core.Array"
    assert report["shape"] == [40000, 40000]
    assert report["lazy"] is True
    assert report["corner"] == 0 and report["max"] == 0
    message = report["eager"]
    assert message.startswith("Cannot read bomb.tif into memory: its pixels would need 1.6 GB")
    assert "read it lazily instead" in message and "decompression bomb" in message
    assert not damaged_tiffs.sentence_problems(message, "bomb.tif"), message


# --------------------------------------------------------------------------- legitimate edge cases


def test_sparse_labels_of_normal_size_read_in_memory(tmp_path):
    labels = np.zeros((2048, 2048), np.uint16)
    labels[100:140, 200:260] = 1
    labels[1500:1530, 900:950] = 2
    path = tmp_path / "labels.tif"
    tifffile.imwrite(path, labels, compression="zlib")
    assert path.stat().st_size < 20_000  # compressed more than 400:1

    image = read_image(path)

    assert type(image.data) is np.ndarray
    np.testing.assert_array_equal(image.data, labels)
    np.testing.assert_array_equal(read_image(path, lazy=False).data, labels)


def test_damaged_tile_read_later_raises_image_read_error(tmp_path, rng, compressed_stack):
    source, data = compressed_stack
    with tifffile.TiffFile(source) as tif:
        offset, count = tif.pages[2].dataoffsets[1], tif.pages[2].databytecounts[1]
    raw = bytearray(source.read_bytes())
    raw[offset : offset + count] = rng.bytes(count)
    path = tmp_path / "late_damage.tif"
    path.write_bytes(bytes(raw))

    image = read_image(path, lazy=True)  # opening decodes nothing
    np.testing.assert_array_equal(np.asarray(image.data[0]), data[0])
    with pytest.raises(ImageReadError) as info:
        np.asarray(image.data[2])
    message = str(info.value)
    assert "part of its image data is damaged" in message
    assert not damaged_tiffs.sentence_problems(message, "late_damage.tif"), message
