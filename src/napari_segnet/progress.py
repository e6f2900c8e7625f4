"""Progress events for long operations written as generators."""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    """One step of a long operation.

    Attributes
    ----------
    done, total : int
        Units of work finished and in all (tiles, planes, steps...).
    stage : str
        What is being done, in words.
    info : dict
        Extra numbers (loss, metrics...).

    """

    done: int
    total: int
    stage: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def drain(
    generator: Generator[Progress, None, T], callback: Callable[[Progress], Any] | None = None
) -> T:
    """Run a progress generator to the end and return its result.

    ``callback`` sees every :class:`Progress`; if it returns ``False`` the
    generator is closed and :class:`InterruptedError` raised (cancel).
    """
    try:
        while True:
            event = next(generator)
            if callback is not None and callback(event) is False:
                generator.close()
                raise InterruptedError("Cancelled.")
    except StopIteration as stop:
        return stop.value


def relay(
    generator: Generator[Progress, None, T], convert: Callable[[Progress], Progress]
) -> Generator[Progress, None, T]:
    """Yield ``convert(event)`` for every event of ``generator``; return its result.

    For a long operation made of smaller ones: ``result = yield from relay(part, to_overall)``
    reports the part's progress in the whole's units.
    """
    try:
        while True:
            yield convert(next(generator))
    except StopIteration as stop:
        return stop.value
