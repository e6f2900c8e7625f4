"""The cluster's client holds a bounded number of block results and grows with its workers."""

from napari_segnet.cli.block_window import (
    MIN_WINDOW,
    BlockCounts,
    held,
    may_open_another,
    next_submissions,
    window_size,
)


def submit(files, window):
    for index in next_submissions(files, window):
        files[index].submitted += 1


def test_the_window_grows_with_the_workers():
    assert window_size(0) == window_size(1) == MIN_WINDOW
    assert window_size(80) == 320


def test_a_stalled_block_holds_at_most_a_window_of_results():
    mosaic = BlockCounts(total=100)
    files = [mosaic]
    submit(files, window_size(2))
    assert mosaic.submitted == 8
    # Block 0 is retried after a lost worker; blocks 1..7 come back and wait for it.
    for _ in range(50):  # as many results arriving as the cluster likes: nothing more is sent
        submit(files, window_size(2))
    assert held(files) == mosaic.submitted == 8
    # Workers join: the window grows and more blocks go out, still bounded.
    submit(files, window_size(10))
    assert held(files) == 40
    # Block 0 arrives: the waiting results are written, and the window fills again.
    mosaic.added = 8
    submit(files, window_size(10))
    assert held(files) == 40 and mosaic.submitted == 48


def test_a_wide_cluster_works_on_several_big_files_at_once():
    window = window_size(20)  # 80 blocks
    files = [BlockCounts(total=30)]
    submit(files, window)
    assert files[0].submitted == 30 and may_open_another(files, window)
    files.append(BlockCounts(total=30))
    files.append(BlockCounts(total=30))
    submit(files, window)
    assert [f.submitted for f in files] == [30, 30, 20]  # the oldest first, the window full
    assert held(files) == window and not may_open_another(files, window)
    files[0].added = 30  # the first file is written
    submit(files[1:], window)
    assert [f.submitted for f in files[1:]] == [30, 30]


def test_a_narrow_cluster_opens_one_big_file_at_a_time():
    files = [BlockCounts(total=30)]
    submit(files, window_size(1))
    assert not may_open_another(files, window_size(1))
