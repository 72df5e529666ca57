"""The one way benchmark scripts in this project time things: warm-up runs, then the median of repeats.

    from _timing import median_seconds, interleaved_medians, verdict, machine_note

``median_seconds(fn)`` times one callable; ``interleaved_medians({name: fn})`` times several in round-robin
rounds, so that a burst of load from another process hits all of them alike and their ratios stay fair.
Both return seconds (time.perf_counter, median over ``repeats``). Nothing here asserts: benchmarks print.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from typing import Callable


def median_seconds(fn: Callable[[], object], warmup: int = 2, repeats: int = 7) -> float:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; the median time in seconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(fns: dict[str, Callable[[], object]], warmup: int = 2, repeats: int = 7) -> dict[str, float]:
    """Like ``median_seconds`` for several callables, timed in rounds (a, b, c, a, b, c, ...): {name: seconds}."""
    return {name: statistics.median(ts) for name, ts in interleaved_times(fns, warmup, repeats).items()}


def interleaved_times(fns: dict[str, Callable[[], object]], warmup: int = 2, repeats: int = 7) -> dict[str, list]:
    """Every round's seconds per callable, timed in rounds (a, b, c, a, b, c, ...): {name: [seconds, ...]}."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def verdict(value: float, target: float) -> str:
    """"PASS" when ``value`` is at most ``target``, else "MISS" (a benchmark reports, it never fails the run)."""
    return "PASS" if value <= target else "MISS"


def machine_note() -> str:
    """Cores and load average, printed with every result so a busy machine is visible in the figures."""
    try:
        load = "load average %.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = "load average unknown"
    return f"{os.cpu_count()} cores, {load}"


class RetracingWarnings(logging.Filter):
    """Counts (and keeps off the output) TensorFlow's "triggered tf.function retracing" warnings.

    ``RetracingWarnings.install()`` returns the filter; its ``count`` is how many a person would have seen.
    """

    def __init__(self):
        super().__init__()
        self.count = 0

    def filter(self, record):
        if "triggered tf.function retracing" in record.getMessage():
            self.count += 1
            return False
        return True

    @classmethod
    def install(cls):
        counter = cls()
        logging.getLogger("tensorflow").addFilter(counter)
        return counter
