"""The report of ``gpu_check.py``: one JSON object of checks, each passed, failed or skipped.

A check is a function that returns a dict of figures, and says that it did not
apply by raising :class:`Skip` (with the reason) or that a result is wrong by
raising :class:`CheckFailed`; :func:`run_check` turns either into the check's
``status`` and ``reason``, and any other error into ``status: "error"``.
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

STATUSES = ("passed", "failed", "skipped", "error")


class Skip(Exception):
    """The check does not apply here; the message says why.

    ``figures`` are what its parts that did apply measured, kept in the report.
    """

    def __init__(self, reason: str, figures: dict | None = None):
        super().__init__(reason)
        self.figures = figures or {}


class CheckFailed(AssertionError):
    """A result was wrong; the message says which."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`CheckFailed` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def run_check(function, *args, **kwargs) -> dict:
    """Run one check; return its figures with ``status``, ``reason`` and ``seconds``."""
    started = time.perf_counter()
    try:
        result = {"status": "passed", **(function(*args, **kwargs) or {})}
    except Skip as skip:
        result = {"status": "skipped", "reason": str(skip), **skip.figures}
    except CheckFailed as failure:
        result = {"status": "failed", "reason": str(failure)}
    except Exception as error:  # reported, so that the other checks still run
        result = {
            "status": "error",
            "reason": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(limit=6).splitlines()[-6:],
        }
    result["seconds"] = round(time.perf_counter() - started, 2)
    return result


def write_report(path: Path, report: dict) -> None:
    """Write the report as indented JSON, through a temporary name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_text(json.dumps(report, indent=2, default=_plain) + "\n")
    temporary.replace(path)


def summary(report: dict) -> str:
    """One line per check: its name, status and reason."""
    lines = []
    for name, check in report["checks"].items():
        reason = f" ({check['reason']})" if check.get("reason") else ""
        lines.append(f"{name:22s} {check['status']:8s}{check['seconds']:7.1f} s{reason}")
    return "\n".join(lines)


def _plain(value):
    """JSON for numpy numbers and paths."""
    if hasattr(value, "item"):
        return value.item()
    return str(value)
