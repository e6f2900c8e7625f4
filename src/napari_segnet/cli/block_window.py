"""How many blocks of big files a cluster's client keeps in flight, and which to send next.

Block results come back in any order, but a big file's labels and table are written in
block order; a result that arrives before an earlier block waits in the client's memory.
So the client bounds what it holds, in flight or waiting (``submitted - added``), by a
window that grows with the workers (dask-jobqueue workers join after the client starts),
and opens the next big file only when the open ones have sent all their blocks and the
window has room: a wide cluster works on several big files at once, and a block retried
after a lost worker stalls at most a window's worth of results behind it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# Blocks held per worker: enough to keep every worker busy while results wait their turn.
BLOCKS_PER_WORKER = 4
MIN_WINDOW = 8


def window_size(workers: int) -> int:
    """Return how many block results may be held with ``workers`` workers."""
    return max(MIN_WINDOW, BLOCKS_PER_WORKER * max(workers, 0))


@dataclass
class BlockCounts:
    """A big file's blocks: how many there are, have been sent, and have been written."""

    total: int
    submitted: int = 0
    added: int = 0

    @property
    def held(self) -> int:
        """Blocks sent and not yet written: in flight, or waiting for an earlier block."""
        return self.submitted - self.added


def held(files: Sequence[BlockCounts]) -> int:
    """Return the block results held for all open big files."""
    return sum(counts.held for counts in files)


def next_submissions(files: Sequence[BlockCounts], window: int) -> list[int]:
    """Return the open files (by index) to send one more block of each, in order.

    The oldest file's blocks go first; together they fill the window, never beyond.
    The counts are not changed.
    """
    room = window - held(files)
    order = []
    for index, counts in enumerate(files):
        take = min(max(room, 0), counts.total - counts.submitted)
        order.extend([index] * take)
        room -= take
    return order


def may_open_another(files: Sequence[BlockCounts], window: int) -> bool:
    """Whether to open the next big file: the open ones have sent every block, and there is room."""
    return all(c.submitted == c.total for c in files) and held(files) < window
