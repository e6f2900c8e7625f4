"""One background run at a time behind a dock widget's button, in napari's thread_worker.

Every widget follows one pattern:

- ``request()`` reads the widget's settings into a *request*: a frozen dataclass of
  plain data (arrays, paths, settings; no Qt or napari objects, so a worker thread
  or another process may use it). Segment, Measure and Inspect each have their own
  (:class:`~napari_segnet._napari.segment_widget.SegmentRequest`...), whose fields
  are the keyword arguments of the function their worker runs; Train's is
  :class:`~napari_segnet.training.session.TrainingRequest`, which goes to the
  training process. A bad setting raises ValueError with one sentence for the user.
- ``run()`` hands the function and the request to :class:`WidgetWorker`, which owns
  the rest: the worker thread, the Run and Cancel buttons, the status line, the bar
  in napari's activity dock, and stopping the thread when the widget is closed.

Typed requests, one per widget, rather than one generic ``(function, kwargs)`` pair:
their fields are named and documented (tests and scripts read ``request.settings``),
and Train's run is not a plain function call (its child process is started and
stopped by the widget), so a function-and-arguments pair could not describe it.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import QObject, Signal

from .outcome import Failed
from .qt_helpers import ActivityProgress


def arguments(request) -> dict[str, Any]:
    """Return a request's fields as keyword arguments (not copied, unlike ``asdict``)."""
    return {field.name: getattr(request, field.name) for field in fields(request)}


class WidgetWorker(QObject):
    """Run a widget's work in napari's ``thread_worker`` and keep the widget in step.

    While a run is in progress the Run button is disabled and the Cancel button (if
    any) enabled; the status line says what is happening; progress events move a bar
    in napari's activity dock. When the widget is destroyed, the run is asked to stop.

    Parameters
    ----------
    widget : QWidget
        The dock widget (the parent of this object).
    run_button : QPushButton
        Disabled while a run is in progress.
    status : QLabel
        Its status line: the ``status`` given to :meth:`start`, a failure's sentence.
    cancel_button : QPushButton, optional
        Enabled while a run is in progress.

    Attributes
    ----------
    yielded : Signal(object)
        A progress event of the run in progress (``None`` events, "no news yet", and
        events that arrive once it is cancelled or has ended are left out).
    returned : Signal(object)
        What the run returned, unless it was a :class:`Failed` (already shown to the
        user) or the run was cancelled.
    finished : Signal(bool)
        The run has ended and the buttons are enabled again; True if it was cancelled.
    """

    yielded = Signal(object)
    returned = Signal(object)
    finished = Signal(bool)

    def __init__(self, widget, run_button, status, cancel_button=None):
        super().__init__(widget)
        self._widget, self._status = widget, status
        self._run_button, self._cancel_button = run_button, cancel_button
        self._worker = self._activity = None
        self._cancelled = threading.Event()
        self._activity_stages: tuple[str, ...] | None = None
        self._on_destroy: list[Callable[[], Any]] = []

    @property
    def worker(self):
        """The napari worker of the run in progress, or None."""
        return self._worker

    @property
    def running(self) -> bool:
        """Whether a run is in progress."""
        return self._worker is not None

    def start(
        self,
        function: Callable,
        request=None,
        *,
        status: str,
        activity: str | None = None,
        activity_stages: Iterable[str] | None = None,
        on_destroy: Callable[[], Any] | None = None,
        ignore_errors: bool = True,
    ) -> bool:
        """Run ``function(**arguments(request))`` in a worker thread.

        Parameters
        ----------
        function : callable
            A generator function (its yielded events are progress) or a plain function.
            It returns the result or a :class:`Failed`; it never touches Qt.
        request : dataclass, optional
            Its fields are the keyword arguments of ``function``.
        status : str
            The status line while it runs.
        activity : str, optional
            Show a bar with this description in napari's activity dock.
        activity_stages : iterable of str, optional
            Only events of these stages move the bar (default: all events).
        on_destroy : callable, optional
            Also called if the widget is destroyed during the run.
        ignore_errors : bool
            Log an exception that escapes ``function`` instead of notifying it.

        Returns
        -------
        bool
            False (and nothing started) if a run is already in progress.
        """
        if self._worker is not None:
            return False
        kwargs = arguments(request) if request is not None else {}
        self._cancelled = threading.Event()
        if inspect.isgeneratorfunction(function):
            function = _closing_on_cancel(function, self._cancelled)
        worker = thread_worker(function, start_thread=False, ignore_errors=ignore_errors)(**kwargs)
        if hasattr(worker, "yielded"):  # a generator function
            worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.finished.connect(self._on_finished)
        self._on_destroy = [worker.quit] + ([on_destroy] if on_destroy is not None else [])
        for callback in self._on_destroy:
            self._widget.destroyed.connect(callback)
        self._worker = worker
        self._run_button.setEnabled(False)
        if self._cancel_button is not None:
            self._cancel_button.setEnabled(True)
        self._status.setText(status)
        self._activity = ActivityProgress(activity) if activity else None
        self._activity_stages = tuple(activity_stages) if activity_stages is not None else None
        worker.start()
        return True

    def cancel(self, status: str = "Cancelling…") -> bool:
        """Ask the run in progress to stop at its next progress event.

        Returns
        -------
        bool
            True if a run was in progress (the status line then says ``status``).
        """
        if self._worker is None:
            return False
        self._status.setText(status)
        self._cancelled.set()
        if not hasattr(self._worker, "yielded"):  # a plain function: napari's own stop
            self._worker.quit()
        return True

    def _on_yielded(self, event) -> None:
        worker = self._worker
        stale = worker is None or worker.abort_requested or self._cancelled.is_set()
        if event is None or stale:  # no news, or stale
            return
        self.yielded.emit(event)
        stages = self._activity_stages
        if self._activity is not None and (stages is None or event.stage in stages):
            self._activity.show(event)  # last: napari may process other events while drawing it

    def _on_returned(self, result) -> None:
        if self._cancelled.is_set():
            return
        if isinstance(result, Failed):
            self._status.setText(result.message)
            show_error(result.message)
        else:
            self.returned.emit(result)

    def _on_finished(self) -> None:
        worker, self._worker = self._worker, None
        if self._activity is not None:
            self._activity.close()
            self._activity = None
        for callback in self._on_destroy:
            self._widget.destroyed.disconnect(callback)
        self._on_destroy = []
        self._run_button.setEnabled(True)
        if self._cancel_button is not None:
            self._cancel_button.setEnabled(False)
        self.finished.emit(worker.abort_requested or self._cancelled.is_set())


def _closing_on_cancel(function: Callable, cancelled: threading.Event) -> Callable:
    """Wrap a generator function so that cancelling closes its generator in the worker.

    napari's worker just stops iterating a generator it is asked to quit; closing it
    here instead runs its ``finally`` clauses at once, in the worker thread (a run that
    writes files removes its partial ones).
    """

    @functools.wraps(function)
    def run(**kwargs):
        generator = function(**kwargs)
        try:
            while not cancelled.is_set():
                try:
                    event = next(generator)
                except StopIteration as stop:
                    return stop.value
                yield event
            return None
        finally:
            generator.close()

    return run
