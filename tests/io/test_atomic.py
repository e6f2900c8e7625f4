"""Tests for atomic writes of one file and of several files all-or-nothing."""

import os
import threading

import pytest

from napari_segnet.io import atomic_path, atomic_paths


def _files(folder):
    return sorted(p.name for p in folder.iterdir())


# --------------------------------------------------------------------------- atomic_path


def test_atomic_path_success(tmp_path):
    final = tmp_path / "result.csv"

    with atomic_path(final) as temporary:
        assert temporary.parent == tmp_path
        assert temporary.suffix == ".csv"
        assert temporary != final
        temporary.write_text("a,b\n1,2\n")
        assert not final.exists()

    assert final.read_text() == "a,b\n1,2\n"
    assert _files(tmp_path) == ["result.csv"]


def test_atomic_path_failure_leaves_nothing(tmp_path):
    final = tmp_path / "result.csv"

    with pytest.raises(RuntimeError, match="disk full"), atomic_path(final) as temporary:
        temporary.write_text("half of it")
        raise RuntimeError("disk full")

    assert not final.exists()
    assert _files(tmp_path) == []


def test_atomic_path_failure_keeps_the_old_file(tmp_path):
    final = tmp_path / "result.csv"
    final.write_text("old")

    with pytest.raises(KeyboardInterrupt), atomic_path(final) as temporary:
        temporary.write_text("new but incomplete")
        raise KeyboardInterrupt

    assert final.read_text() == "old"
    assert _files(tmp_path) == ["result.csv"]


def test_atomic_path_replaces_existing_file(tmp_path):
    final = tmp_path / "result.csv"
    final.write_text("old")
    with atomic_path(os.fspath(final)) as temporary:
        temporary.write_text("new")
    assert final.read_text() == "new"
    assert _files(tmp_path) == ["result.csv"]


def test_temporary_name_of_a_very_long_file_name_fits(tmp_path):
    name = "é" * 120 + ".labels.tif"  # 251 bytes in UTF-8: just under the usual limit
    final = tmp_path / name
    with atomic_path(final) as temporary:
        assert len(os.fsencode(temporary.name)) <= 255
        assert temporary.suffix == ".tif"
        temporary.write_bytes(b"data")
    assert final.read_bytes() == b"data"
    assert _files(tmp_path) == [name]


def test_concurrent_writers_of_one_file_use_different_temporaries(tmp_path):
    final = tmp_path / "result.csv"
    with atomic_path(final) as first, atomic_path(final) as second:
        assert first != second
        first.write_text("first")
        second.write_text("second")
    # The inner writer finished first; the outer one, finishing last, wins.
    assert final.read_text() == "first"
    assert _files(tmp_path) == ["result.csv"]


def test_concurrent_threads_never_show_a_partial_file(tmp_path):
    final = tmp_path / "result.txt"
    contents = [str(i) * 10_000 for i in range(8)]

    def write(text):
        with atomic_path(final) as temporary:
            temporary.write_text(text)

    threads = [threading.Thread(target=write, args=(text,)) for text in contents]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert final.read_text() in contents
    assert _files(tmp_path) == ["result.txt"]


# --------------------------------------------------------------------------- atomic_paths


def test_atomic_paths_writes_all(tmp_path):
    labels, table = tmp_path / "cells_labels.tif", tmp_path / "cells.csv"

    with atomic_paths(labels, os.fspath(table)) as temporaries:
        assert len(temporaries) == 2
        assert [t.suffix for t in temporaries] == [".tif", ".csv"]
        assert all(t.parent == tmp_path for t in temporaries)
        temporaries[0].write_text("labels")
        temporaries[1].write_text("table")
        assert not labels.exists() and not table.exists()

    assert labels.read_text() == "labels"
    assert table.read_text() == "table"
    assert _files(tmp_path) == ["cells.csv", "cells_labels.tif"]


def test_atomic_paths_failure_on_the_second_file_leaves_neither(tmp_path):
    labels, table = tmp_path / "cells_labels.tif", tmp_path / "cells.csv"

    with pytest.raises(OSError, match="disk full"), atomic_paths(labels, table) as (first, second):
        first.write_text("labels")
        second.write_text("half a ta")
        raise OSError("disk full")

    assert _files(tmp_path) == []


def test_atomic_paths_failure_keeps_the_old_pair(tmp_path):
    labels, table = tmp_path / "cells_labels.tif", tmp_path / "cells.csv"
    labels.write_text("old labels")
    table.write_text("old table")

    with pytest.raises(ValueError, match="no objects"), atomic_paths(labels, table) as temps:
        temps[0].write_text("new labels")
        raise ValueError("no objects")

    assert labels.read_text() == "old labels"
    assert table.read_text() == "old table"
    assert _files(tmp_path) == ["cells.csv", "cells_labels.tif"]


def test_atomic_paths_replaces_an_old_pair(tmp_path):
    labels, table = tmp_path / "cells_labels.tif", tmp_path / "cells.csv"
    labels.write_text("old labels")
    table.write_text("old table")

    with atomic_paths(labels, table) as (first, second):
        first.write_text("new labels")
        second.write_text("new table")

    assert labels.read_text() == "new labels"
    assert table.read_text() == "new table"
    assert _files(tmp_path) == ["cells.csv", "cells_labels.tif"]


def test_a_failed_rename_puts_the_old_pair_back(tmp_path):
    labels, table = tmp_path / "cells_labels.tif", tmp_path / "cells.csv"
    labels.write_text("old labels")
    table.mkdir()  # the table's destination is a folder that is not empty: its rename fails
    (table / "keep.txt").write_text("x")

    with pytest.raises(OSError), atomic_paths(labels, table) as (first, second):
        first.write_text("new labels")
        second.write_text("new table")

    assert labels.read_text() == "old labels"
    assert _files(tmp_path) == ["cells.csv", "cells_labels.tif"]
    assert _files(table) == ["keep.txt"]


def test_a_failed_rename_removes_a_file_that_was_new(tmp_path):
    labels, table = tmp_path / "cells_labels.tif", tmp_path / "cells.csv"
    table.mkdir()
    (table / "keep.txt").write_text("x")

    with pytest.raises(OSError), atomic_paths(labels, table) as (first, second):
        first.write_text("new labels")
        second.write_text("new table")

    assert _files(tmp_path) == ["cells.csv"]


def test_atomic_paths_in_different_folders(tmp_path):
    (tmp_path / "labels").mkdir()
    (tmp_path / "tables").mkdir()
    labels, table = tmp_path / "labels" / "a.tif", tmp_path / "tables" / "a.csv"
    with atomic_paths(labels, table) as (first, second):
        assert first.parent == labels.parent and second.parent == table.parent
        first.write_text("l")
        second.write_text("t")
    assert labels.read_text() == "l" and table.read_text() == "t"


def test_atomic_paths_refuses_the_same_file_twice(tmp_path):
    final = tmp_path / "a.csv"
    with pytest.raises(ValueError, match="twice"):
        with atomic_paths(final, tmp_path / "." / "a.csv"):
            pass
    assert _files(tmp_path) == []
