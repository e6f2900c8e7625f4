"""How much memory this process can still use, from what the operating system tells.

Used to refuse in-memory reads that would not fit, instead of being killed for
memory half-way. No extra dependency: Linux's ``/proc`` and cgroup files, the
address-space limit (``ulimit -v``) and :func:`os.sysconf` where they exist.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

# When nothing can be learnt (e.g. Windows), assume this much.
FALLBACK_BYTES = 4 * 2**30
# Above this a cgroup "limit" means "no limit".
_UNLIMITED = 2**60


def available_memory() -> int:
    """Return how many bytes this process can still allocate, as far as can be told.

    The least of: the memory the kernel reports as available (``MemAvailable``,
    or free physical pages), the room left under the container's (cgroup)
    memory limit, and the room left under the process's address-space limit
    (``RLIMIT_AS``).

    Returns
    -------
    int
        Bytes; :data:`FALLBACK_BYTES` when the system tells nothing.

    """
    system = _meminfo_available()
    if system is None:
        system = _sysconf_available()
    known = [b for b in (system, _cgroup_room(), _address_space_room()) if b is not None]
    return max(min(known), 0) if known else FALLBACK_BYTES


def format_bytes(n: int) -> str:
    """Return ``n`` bytes in words, e.g. ``"1.6 GB"`` (decimal units)."""
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _read_text(path: str) -> str | None:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return Path(path).read_text()
    return None


def _meminfo_available() -> int | None:
    text = _read_text("/proc/meminfo")
    for line in (text or "").splitlines():
        if line.startswith("MemAvailable:"):
            with contextlib.suppress(ValueError, IndexError):
                return int(line.split()[1]) * 1024
    return None


def _sysconf_available() -> int | None:
    with contextlib.suppress(ValueError, OSError, AttributeError):
        page = os.sysconf("SC_PAGE_SIZE")
        for name in ("SC_AVPHYS_PAGES", "SC_PHYS_PAGES"):
            if name in os.sysconf_names:
                pages = os.sysconf(name)
                if pages > 0 and page > 0:
                    return pages * page
    return None


def _cgroup_room() -> int | None:
    """Room under the cgroup memory limit (v2, then v1); reclaimable file cache counts as room."""
    for limit_file, usage_file, stat_file, cache_key in (
        (
            "/sys/fs/cgroup/memory.max",
            "/sys/fs/cgroup/memory.current",
            "memory.stat",
            "inactive_file",
        ),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
            "memory.stat",
            "total_inactive_file",
        ),
    ):
        limit, usage = _read_text(limit_file), _read_text(usage_file)
        if limit is None or usage is None:
            continue
        try:
            limit_bytes, used = int(limit), int(usage)
        except ValueError:  # "max": no limit
            return None
        if limit_bytes >= _UNLIMITED:
            return None
        stat = _read_text(str(Path(limit_file).with_name(stat_file))) or ""
        cache = 0
        for line in stat.splitlines():
            key, _, value = line.partition(" ")
            if key == cache_key and value.strip().isdigit():
                cache = int(value)
        return limit_bytes - max(used - cache, 0)
    return None


def _address_space_room() -> int | None:
    """Room under ``RLIMIT_AS`` (``ulimit -v``), which counts virtual memory."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    used = 0
    statm = _read_text("/proc/self/statm")
    with contextlib.suppress(ValueError, IndexError, OSError):
        used = int((statm or "").split()[0]) * os.sysconf("SC_PAGE_SIZE")
    return soft - used
