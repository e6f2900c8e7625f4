"""WidgetWorker, the worker lifecycle every dock widget uses, with real threads and widgets."""

import threading
from dataclasses import dataclass

import pytest
from qtpy import QtWidgets as qw

from napari_segnet._napari.worker import Failed, WidgetWorker, arguments
from napari_segnet.progress import Progress

TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Count:
    n: int


@dataclass(frozen=True)
class Release:
    release: threading.Event


def counting(n):
    for done in range(1, n + 1):
        yield None  # no news: never relayed
        yield Progress(done, n, "counting")
    return f"counted to {n}"


def waiting(release):
    yield Progress(0, 2, "waiting")
    release.wait(TIMEOUT_MS / 1000)
    yield Progress(1, 2, "waiting")
    return "not cancelled"


def broken():
    return Failed("The file is broken.")


@pytest.fixture
def parts(qtbot):
    widget = qw.QWidget()
    qtbot.addWidget(widget)
    run, cancel, status = qw.QPushButton("Run"), qw.QPushButton("Cancel"), qw.QLabel()
    cancel.setEnabled(False)
    runner = WidgetWorker(widget, run, status, cancel)
    events, results = [], []
    runner.yielded.connect(events.append)
    runner.returned.connect(results.append)
    return widget, runner, run, cancel, status, events, results


def test_a_run_relays_progress_and_its_result(parts, qtbot):
    _, runner, run, cancel, status, events, results = parts
    with qtbot.waitSignal(runner.finished, timeout=TIMEOUT_MS) as finished:
        assert runner.start(counting, Count(3), status="Counting…")
        assert runner.running and not run.isEnabled() and cancel.isEnabled()
        assert status.text() == "Counting…"
        assert not runner.start(counting, Count(1), status="Again")  # one run at a time
    assert finished.args == [False]
    assert [(event.done, event.total) for event in events] == [(1, 3), (2, 3), (3, 3)]
    assert results == ["counted to 3"]
    assert not runner.running and run.isEnabled() and not cancel.isEnabled()


def test_a_cancelled_run_returns_nothing(parts, qtbot):
    _, runner, run, cancel, status, events, results = parts
    release = threading.Event()
    with qtbot.waitSignal(runner.yielded, timeout=TIMEOUT_MS):
        runner.start(waiting, Release(release), status="Waiting…")
    with qtbot.waitSignal(runner.finished, timeout=TIMEOUT_MS) as finished:
        assert runner.cancel()
        assert status.text() == "Cancelling…"
        release.set()
    assert finished.args == [True]
    assert results == [] and len(events) == 1  # the step finished after cancelling is not shown
    assert run.isEnabled() and not cancel.isEnabled()
    assert not runner.cancel()  # nothing left to cancel


def test_a_failure_is_one_sentence_in_the_status_and_a_notification(parts, qtbot, errors):
    _, runner, run, _, status, _, results = parts
    with qtbot.waitSignal(runner.finished, timeout=TIMEOUT_MS) as finished:
        runner.start(broken, status="Reading…")
    assert finished.args == [False]
    assert results == [] and errors == ["The file is broken."]
    assert status.text() == "The file is broken." and run.isEnabled()


def test_closing_the_widget_stops_the_run(qtbot):
    widget, run, status = qw.QWidget(), qw.QPushButton(), qw.QLabel()  # deleted by the test
    runner = WidgetWorker(widget, run, status)
    release, stopped = threading.Event(), []
    with qtbot.waitSignal(runner.yielded, timeout=TIMEOUT_MS):
        runner.start(waiting, Release(release), status="…", on_destroy=lambda: stopped.append(1))
    worker = runner.worker
    with qtbot.waitSignal(widget.destroyed, timeout=TIMEOUT_MS):
        widget.deleteLater()
    assert worker.abort_requested and stopped == [1]
    with qtbot.waitSignal(worker.finished, timeout=TIMEOUT_MS):
        release.set()


def test_arguments_are_the_fields_not_copies():
    release = threading.Event()
    assert arguments(Release(release))["release"] is release
