"""The worker that keeps long jobs off the kernel's main thread."""

import threading
import time

from cnnwidget.widgets._jobs import Worker


def steps_until_cancelled(log):
    def fn(cancel):
        n = 0
        while not cancel.is_set():
            n += 1
            log.append(n)
            time.sleep(0.001)
        return n

    return fn


def test_a_job_runs_off_the_calling_thread_and_returns_its_result():
    seen = {}
    job = Worker().submit(lambda cancel: threading.current_thread().name, on_done=lambda r: seen.update(result=r))
    assert job.wait(5) and seen["result"] != threading.current_thread().name


def test_cancel_stops_a_job_at_its_next_step():
    log = []
    job = Worker().submit(steps_until_cancelled(log))
    time.sleep(0.02)
    job.cancel()
    assert job.wait(1) and job.cancelled and job.result == log[-1]


def test_a_new_job_cancels_the_one_before_it():
    worker = Worker()
    first = worker.submit(steps_until_cancelled([]))
    second = worker.submit(lambda cancel: "second")
    assert first.wait(1) and first.cancelled and second.wait(1) and second.result == "second"


def test_an_error_in_a_job_reaches_on_error_with_its_traceback():
    errors = []
    job = Worker().submit(lambda cancel: 1 / 0, on_error=lambda exc, tb: errors.append((exc, tb)))
    assert job.wait(1)
    exc, tb = errors[0]
    assert isinstance(exc, ZeroDivisionError) and "1 / 0" in tb and isinstance(job.error, ZeroDivisionError)
