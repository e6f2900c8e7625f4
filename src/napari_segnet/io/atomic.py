"""Write files so that a reader never sees a half-written one."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    The temporary file lives in the destination folder so that the final
    :func:`os.replace` is an atomic rename on the same file system. If the body
    raises, the temporary file is removed and ``path`` is left untouched.

    Parameters
    ----------
    path : str or os.PathLike
        The final destination.

    Yields
    ------
    pathlib.Path
        Where the caller writes the content. It keeps the destination's suffix
        so that writers that look at the extension behave the same.

    """
    final = Path(path)
    temporary = final.with_name(f".{final.stem}.{os.getpid()}.partial{final.suffix}")
    try:
        yield temporary
        os.replace(temporary, final)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
