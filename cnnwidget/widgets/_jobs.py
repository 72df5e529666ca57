"""Long work off the kernel's main thread: one cancellable job at a time per widget, the latest one wins.

A widget owns a :class:`Worker`. ``submit(fn)`` runs ``fn(cancel)`` on a daemon thread, where ``cancel`` is a
``threading.Event`` the function checks at every step (an optimization step, a batch of a data set pass) and
returns early when set. Submitting a new job cancels the running one first, so a person who changes a setting
twice never waits for the stale job. The kernel stays free to run cells meanwhile; traits set from the worker
reach the browser as comm messages (tests/test_harness.py keeps a check of that, it has regressed in ipykernel
before).
"""

from __future__ import annotations

import threading
import traceback
from typing import Any, Callable


class Job:
    """One run of a function on a worker thread; ``cancel()`` asks it to stop at its next step."""

    def __init__(self, fn: Callable[[threading.Event], Any], on_done: Callable[[Any], None] | None,
                 on_error: Callable[[BaseException, str], None] | None, name: str):
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self._fn, self._on_done, self._on_error = fn, on_done, on_error
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self):
        try:
            self.result = self._fn(self.cancel_event)
        except BaseException as exc:  # a worker must never die silently: the widget shows what happened
            self.error = exc
            if self._on_error is not None:
                self._on_error(exc, traceback.format_exc())
            return
        if self._on_done is not None:
            self._on_done(self.result)

    def cancel(self):
        """Ask the job to stop at its next step (it keeps what it made so far)."""
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (for scripts and tests; a notebook never needs to). True if it ended."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()


class Worker:
    """Runs a widget's jobs one at a time; a new job cancels the one before it."""

    def __init__(self, name: str = "cnnwidget-worker"):
        self._name = name
        self._lock = threading.Lock()
        self.job: Job | None = None

    def submit(self, fn: Callable[[threading.Event], Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException, str], None] | None = None) -> Job:
        """Run ``fn(cancel_event)`` on a new thread after cancelling the current job; returns the new Job.

        ``on_done(result)`` or ``on_error(exception, traceback_text)`` run on the worker thread when it ends.
        """
        with self._lock:
            if self.job is not None:
                self.job.cancel()
            self.job = Job(fn, on_done, on_error, self._name)
            self.job._thread.start()
            return self.job

    def cancel(self):
        """Cancel the current job, if any."""
        with self._lock:
            if self.job is not None:
                self.job.cancel()

    @property
    def busy(self) -> bool:
        return self.job is not None and self.job.running
