"""Long work off the kernel's main thread: one job computing per widget, the newest request wins.

A widget owns a :class:`Worker`. ``submit(fn)`` queues ``fn(cancel)``, where ``cancel`` is a ``threading.Event``
the function checks at every step (an optimization step, a batch of a data set pass) and returns early when set.
There is ONE thread per worker and at most one job computing on it: a new request cancels the running job and
takes the single waiting place, so a request still waiting is *superseded* (it never runs, its ``wait()`` returns
at once) instead of starting a parallel thread. Twenty clicks while a step is being traced therefore cost one
trace and one run, not twenty threads tracing at once. The thread ends when nothing is queued, so an idle widget
holds no thread. Traits set from the worker reach the browser as comm messages (tests/test_harness.py keeps a
check of that, it has regressed in ipykernel before).

Every job carries the worker's ``generation`` at submission: a widget drops reports of a job that is no longer
the newest (``worker.is_current(job)``), so a superseded or cancelled job never draws over a newer one.
"""

from __future__ import annotations

import threading
import time
import traceback
from typing import Any, Callable


class Job:
    """One request to run a function on a worker; ``cancel()`` asks it to stop at its next step."""

    def __init__(self, fn: Callable[[threading.Event], Any], on_done: Callable[[Any], None] | None,
                 on_error: Callable[[BaseException, str], None] | None, generation: int, name: str = "job",
                 pass_job: bool = False):
        self.cancel_event = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None
        self.generation = generation
        self.name = name
        self.started = False  # it began computing (a superseded job never does)
        self._fn, self._on_done, self._on_error, self._pass_job = fn, on_done, on_error, pass_job
        self._ended = threading.Event()
        self._last_report = -float("inf")

    def _run(self):
        self.started = True
        try:
            try:
                self.result = self._fn(self if self._pass_job else self.cancel_event)
            except BaseException as exc:  # a worker must never die silently: the widget shows what happened
                self.error = exc
                if self._on_error is not None:
                    self._on_error(exc, traceback.format_exc())
                return
            if self._on_done is not None:
                self._on_done(self.result)
        finally:
            self._ended.set()

    def _drop(self):
        """Superseded before it started: it ends without running."""
        self.cancel_event.set()
        self._ended.set()

    def cancel(self):
        """Ask the job to stop at its next step (it keeps what it made so far); a job still waiting starts and
        ends at once."""
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job ends (for scripts and tests; a notebook never needs to). True if it ended."""
        return self._ended.wait(timeout)

    def due(self, every: float) -> bool:
        """Throttle for progress reports: True at most once per ``every`` seconds (the first call is due)."""
        now = time.monotonic()
        if now - self._last_report >= every:
            self._last_report = now
            return True
        return False

    @property
    def running(self) -> bool:
        """Queued or computing, not ended yet."""
        return not self._ended.is_set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    @property
    def superseded(self) -> bool:
        """Replaced by a newer request before it started: it never ran."""
        return self._ended.is_set() and not self.started

    def __repr__(self):
        state = "superseded" if self.superseded else "running" if self.running else (
            "failed" if self.error is not None else "cancelled" if self.cancelled else "done")
        return f"<Job {self.name} #{self.generation} {state}>"


class Worker:
    """Runs a widget's jobs one at a time on one thread; a new request cancels the running one and supersedes a
    waiting one (see the module docstring)."""

    def __init__(self, name: str = "cnnwidget-worker"):
        self._name = name
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None
        self._running: Job | None = None
        self._queued: Job | None = None
        self.generation = 0
        self.job: Job | None = None  # the newest request

    def submit(self, fn: Callable[[threading.Event], Any], on_done: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException, str], None] | None = None, pass_job: bool = False) -> Job:
        """Queue ``fn(cancel_event)`` (``fn(job)`` with ``pass_job``) after cancelling the current job; returns the
        new Job.

        ``on_done(result)`` or ``on_error(exception, traceback_text)`` run on the worker thread when it ends; a
        superseded job calls neither.
        """
        with self._cv:
            self.generation += 1
            job = Job(fn, on_done, on_error, self.generation, self._name, pass_job)
            if self._queued is not None:
                self._queued._drop()
            if self._running is not None:
                self._running.cancel()
            self._queued = self.job = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
            return job

    def _loop(self):
        while True:
            with self._cv:
                job = self._queued
                if job is None:
                    self._thread = None  # idle: the thread ends; the next submit starts another
                    self._cv.notify_all()
                    return
                self._queued, self._running = None, job
            try:
                job._run()
            finally:
                with self._cv:
                    self._running = None
                    self._cv.notify_all()

    def is_current(self, job: Job | None) -> bool:
        """Whether ``job`` is the newest request (its reports may be shown)."""
        return job is not None and job.generation == self.generation

    def cancel(self):
        """Cancel the running job and a waiting one (which still runs, finds its cancel set and ends at once, so
        its widget hears how it ended)."""
        with self._cv:
            for job in (self._queued, self._running):
                if job is not None:
                    job.cancel()

    def stop(self):
        """Cancel everything and make every job so far stale (nothing it still reports is shown): for close()."""
        with self._cv:
            self.generation += 1
        self.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until nothing is running or queued. True if idle."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while self._running is not None or self._queued is not None:
                if threading.current_thread() is self._thread:
                    return False  # a job waiting for its own worker would wait forever
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cv.wait(left)
            return True

    @property
    def busy(self) -> bool:
        with self._cv:
            return self._running is not None or self._queued is not None

    def on_worker_thread(self) -> bool:
        return threading.current_thread() is self._thread
