"""Small Qt pieces shared by the dock widgets.

Form rows, spin boxes, a wrapping label, the activity-dock bar, and turning a bad
setting into one notified sentence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from qtpy.QtCore import QSize
from qtpy.QtWidgets import QApplication, QHBoxLayout, QLabel, QSizePolicy

from napari_segnet.messages import one_sentence

T = TypeVar("T")


class ActivityProgress:
    """A bar in napari's activity dock, driven by :class:`~napari_segnet.progress.Progress`.

    Parameters
    ----------
    description : str
        What the bar says it is doing; the bar is indeterminate until the first event.
    """

    def __init__(self, description: str):
        from napari.utils import progress

        self._bar = progress(total=0, desc=description)

    def show(self, event) -> None:
        """Move the bar to ``event.done`` of ``event.total``."""
        if event.total and self._bar.total != event.total:
            self._bar.total = event.total
        self._bar.update(event.done - self._bar.n)

    def close(self) -> None:
        """Remove the bar."""
        self._bar.close()


def request_or_notify(make_request: Callable[[], T]) -> T | None:
    """Call ``make_request()``; if it raises ValueError, notify its one sentence.

    Parameters
    ----------
    make_request : callable
        A widget's ``request`` method; ValueError says what the user must change.

    Returns
    -------
    object or None
        What ``make_request`` returned, or None after an error notification.
    """
    from napari.utils.notifications import show_error

    try:
        return make_request()
    except ValueError as error:
        show_error(one_sentence(error))
        return None


def process_events_until(predicate: Callable[[], bool], timeout_s: float = 300.0) -> bool:
    """Run the Qt event loop until ``predicate()`` is true (for scripts).

    Returns
    -------
    bool
        True once ``predicate()`` is true, False after ``timeout_s`` seconds.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        QApplication.processEvents()
        time.sleep(0.01)
    return True


def hbox(*widgets) -> QHBoxLayout:
    """Lay widgets out side by side, for a form row."""
    layout = QHBoxLayout()
    for widget in widgets:
        layout.addWidget(widget)
    return layout


def spin_box(box, low, high, value, suffix: str = "", step=None):
    """Set up a QSpinBox or QDoubleSpinBox in one call.

    Parameters
    ----------
    box : QSpinBox or QDoubleSpinBox
        The box to set up (returned).
    low, high, value : int or float
        Its range and initial value.
    suffix : str, optional
        A unit shown after the value (e.g. ``px``).
    step : int or float, optional
        The step of its arrows.
    """
    box.setRange(low, high)
    box.setValue(value)
    if suffix:
        box.setSuffix(f" {suffix}")
    if step is not None:
        box.setSingleStep(step)
    return box


class WrappingLabel(QLabel):
    """A word-wrapped label that never asks for more width than its longest word.

    A plain word-wrapped QLabel asks for room for about 80 characters, which can
    widen a dock beyond the screen or have the end of a long sentence cut off; this
    one takes the width the layout gives it and grows in height instead.
    """

    def __init__(self, text: str = "", parent=None):
        super().__init__(text, parent)
        self.setWordWrap(True)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def sizeHint(self) -> QSize:
        """Ask for the width of the longest word; the layout gives the height for a width."""
        return self.minimumSizeHint()
