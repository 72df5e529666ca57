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


def test_a_request_waiting_behind_a_running_job_is_superseded_by_a_newer_one_and_never_runs():
    worker, ran, release, started = Worker(), [], threading.Event(), threading.Event()
    # busy (say, tracing) and deaf to cancel for a while; the others are asked for once it runs (asked before, it
    # would itself be superseded, not cancelled: a race the full suite's load lost once)
    first = worker.submit(lambda cancel: (started.set(), release.wait(5)))
    assert started.wait(30)
    waiting = [worker.submit(lambda cancel, i=i: ran.append(i)) for i in range(20)]
    release.set()
    assert worker.wait(5) and first.cancelled
    assert ran == [19] and all(job.superseded for job in waiting[:-1]) and not waiting[-1].superseded


def test_at_most_one_job_computes_at_a_time_on_one_thread():
    worker, lock, active, most = Worker(), threading.Lock(), [0], [0]

    def work(cancel):
        with lock:
            active[0] += 1
            most[0] = max(most[0], active[0])
        time.sleep(0.005)
        with lock:
            active[0] -= 1

    for _ in range(30):
        worker.submit(work)
    assert worker.wait(5) and most[0] == 1


def test_an_idle_worker_holds_no_thread():
    worker = Worker("cnnwidget-idle-test")
    worker.submit(lambda cancel: None).wait(5)
    assert worker.wait(5)
    deadline = time.monotonic() + 5
    while any(t.name == "cnnwidget-idle-test" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(t.name == "cnnwidget-idle-test" for t in threading.enumerate())


def test_only_the_newest_job_is_current():
    worker = Worker()
    first = worker.submit(lambda cancel: None)
    second = worker.submit(lambda cancel: None)
    assert worker.wait(5) and not worker.is_current(first) and worker.is_current(second)
