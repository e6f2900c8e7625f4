"""Write files so that a reader never sees a half-written one.

:func:`atomic_path` writes one file; :func:`atomic_paths` writes several files
all-or-nothing (for example an image's labels and its measurement table).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path

# Most file systems limit one name to 255 bytes; the temporary name must fit too.
_NAME_MAX = 255
# ".<stem>.<pid>-<8 hex>.partial<suffix>": the one name of an output's temporary.
_TEMPORARY = re.compile(r"^\.(?P<stem>.*)\.\d+-[0-9a-f]{8}\.partial(?P<suffix>\.[^.]*)?$")


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
        so that writers that look at the extension behave the same. Its name is
        unique to this call, so concurrent writers of the same destination do not
        write into each other's temporary file (the last one to finish wins).

    """
    with atomic_paths(path) as (temporary,):
        yield temporary


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[tuple[Path, ...]]:
    """Yield temporary paths beside ``paths``; move them all into place on success.

    Nothing is moved until the body has written every temporary file: if the
    body raises, all temporaries are removed and none of the destinations is
    touched (existing files keep their old content).

    Parameters
    ----------
    *paths : str or os.PathLike
        The final destinations, all different.

    Yields
    ------
    tuple of pathlib.Path
        One temporary path per destination, in the same order, each beside its
        destination and with the destination's suffix.

    Raises
    ------
    ValueError
        If the same destination is given twice.

    Notes
    -----
    Several renames cannot be one atomic step. After the body succeeds, each
    temporary file is renamed onto its destination in the given order, each
    rename atomic on its own. Before that, every existing destination gets a
    hard link as a backup. If a rename fails, the destinations already replaced
    are put back from their backups (or removed, if they did not exist before),
    so the old set of files remains. That rollback is best effort: on a file
    system without hard links, a destination already replaced keeps its new
    content; and a crash of the process during the renames can leave some
    destinations new and some old, plus hidden ``.*.backup*`` files beside them.

    """
    finals = [Path(p) for p in paths]
    if len({os.path.abspath(f) for f in finals}) != len(finals):
        raise ValueError("The same file is given twice: " + ", ".join(map(str, finals)) + ".")
    if all(is_temporary(final) for final in finals):
        # Writing into an outer atomic write's temporaries: they are hidden already and
        # move into place with it, so one temporary name per output is enough.
        yield tuple(finals)
        return
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    temporaries = [_sibling(final, token, "partial") for final in finals]
    try:
        yield tuple(temporaries)
        _move_all(temporaries, finals, token)
    finally:
        for temporary in temporaries:
            _remove(temporary)


def _move_all(temporaries: list[Path], finals: list[Path], token: str) -> None:
    """Rename ``temporaries`` onto ``finals`` in order, undoing the done ones on failure."""
    if len(finals) == 1 and not (temporaries[0].is_dir() and finals[0].is_dir()):
        os.replace(temporaries[0], finals[0])
        return
    backups: list[tuple[bool, Path | None]] = []
    done = 0
    try:
        backups.extend(
            _backup(final, token, folder=temporary.is_dir())
            for temporary, final in zip(temporaries, finals)
        )
        for temporary, final in zip(temporaries, finals):
            os.replace(temporary, final)
            done += 1
    except BaseException:
        for final, (existed, backup) in zip(finals[:done], backups[:done]):
            with contextlib.suppress(OSError):
                if backup is not None:
                    if backup.is_dir():
                        _remove(final)  # a folder cannot be replaced by a rename
                    os.replace(backup, final)
                elif not existed:
                    _remove(final)
        raise
    finally:
        for _, backup in backups:
            if backup is not None:
                _remove(backup)


def _backup(final: Path, token: str, folder: bool = False) -> tuple[bool, Path | None]:
    """Return whether ``final`` exists, and a hard link to it under a hidden name (or None).

    An existing folder that a new folder replaces (an OME-Zarr output, ``folder``) is
    moved aside instead: it cannot be linked, and a rename cannot replace a folder that
    has content. A file never replaces a folder: that rename fails.
    """
    backup = _sibling(final, token, "backup")
    if folder and final.is_dir() and not final.is_symlink():
        os.replace(final, backup)
        return True, backup
    try:
        os.link(final, backup, follow_symlinks=False)
    except FileNotFoundError:
        return False, None
    except (OSError, NotImplementedError):  # no hard links here: no rollback for this file
        return True, None
    return True, backup


def _remove(path: Path) -> None:
    """Remove a file or a folder (a temporary or a backup), if it is there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _sibling(final: Path, token: str, kind: str) -> Path:
    """Return a hidden name beside ``final``, unique to ``token``, that fits in one name."""
    tail = f".{token}.{kind}{final.suffix}"
    if len(os.fsencode(tail)) > _NAME_MAX // 2:  # an absurdly long suffix is not kept
        tail = f".{token}.{kind}"
    room = _NAME_MAX - 1 - len(os.fsencode(tail))
    stem = final.stem
    while len(os.fsencode(stem)) > room and stem:
        stem = stem[:-1]
    return final.with_name(f".{stem}{tail}")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as :func:`atomic_paths` names a temporary."""
    return _TEMPORARY.match(Path(path).name) is not None


def remove_stale_temporaries(folder: str | os.PathLike, finals: Iterable[str]) -> list[Path]:
    """Remove the temporaries that writes of ``finals`` (file names in ``folder``) left.

    A process killed while writing leaves its temporary behind (``.<stem>.<token>.partial
    <suffix>``, a file or a folder); this removes those of the given outputs only, also the
    temporaries of temporaries that earlier versions made. Call it when no writer of those
    outputs runs any more.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    wanted = set(finals)
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in Path(folder).iterdir():
            final = _final_name(entry.name)
            if final is not None and final in wanted:
                _remove(entry)
                removed.append(entry)
    return removed


def _final_name(name: str) -> str | None:
    """Return the output a temporary's name stands for (through nested ones), or None.

    A name cut short to fit the file system's limit stands for nothing.
    """
    found = None
    while (match := _TEMPORARY.match(name)) is not None:
        name = found = match["stem"] + (match["suffix"] or "")
    return found


def writable_destination(path: str | os.PathLike) -> Path:
    """Return ``path`` as a Path after checking, in one clear sentence, that its folder is writable.

    Raises
    ------
    FileNotFoundError
        If the folder does not exist (an :class:`OSError`).
    PermissionError
        If the folder is not writable (an :class:`OSError`).

    """
    destination = Path(path)
    folder = destination.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"Cannot write {destination}: the folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"Cannot write {destination}: the folder {folder} is not writable.")
    return destination
