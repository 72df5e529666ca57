"""A plain Keras model given to a core function, against the same call on a ModelProbe.

    .venv/bin/python benchmarks/probe_cache.py [--calls 40] [--images 1]

On the demo model (64x64) and ``--images`` shapes images, in one process:

  plain   attr.saliency(model, x), ``--calls`` times: the model's remembered probe (core.probe_for) is made and
          traced at the first call and reused after (before it, every call made a new probe and traced again:
          155 ms against 3 ms, +4 MB per call, never freed)
  probe   attr.saliency(ModelProbe(model), x) on one probe made and warmed up beforehand

The calls are interleaved (plain, probe, plain, ...), so both see the same machine load. Printed: the first
plain call, the median of the other plain calls and of the probe calls, their ratio (target <= 1.2x), and the
process RSS after the first plain call and after the last (target: flat, within a few MB), plus the trace
counts. Prints PASS/MISS; never fails the run.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _timing import interleaved_medians, machine_note, verdict  # noqa: E402

from cnnwidget import ModelProbe, demo  # noqa: E402
from cnnwidget.core import attribution as attr  # noqa: E402
from cnnwidget.core import probe_for  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--images", type=int, default=1)
    args = parser.parse_args()

    model = demo.load_model()
    x = demo.shapes(args.images, seed=1).images
    probe = ModelProbe(model)
    for _ in range(3):  # the explicit probe: made, traced and warmed up before anything is timed
        attr.saliency(probe, x)

    start = time.perf_counter()
    attr.saliency(model, x)
    first = time.perf_counter() - start
    gc.collect()
    rss_first = rss_mb()
    medians = interleaved_medians({"plain": lambda: attr.saliency(model, x), "probe": lambda: attr.saliency(probe, x)},
                                  warmup=0, repeats=args.calls - 1)
    gc.collect()
    rss_last = rss_mb()

    med_plain, med_probe = medians["plain"], medians["probe"]
    ratio = med_plain / med_probe
    grown = rss_last - rss_first
    print(f"attr.saliency on the demo model, {args.images} image(s) of 64x64, {args.calls} calls with a plain Keras "
          f"model, interleaved with {args.calls - 1} calls on a ModelProbe ({machine_note()})")
    rows = [("plain model, first call (makes and traces its remembered probe)", first),
            (f"plain model, median of calls 2-{args.calls}", med_plain),
            (f"ModelProbe, median of {args.calls - 1} calls", med_probe)]
    for label, seconds in rows:
        print(f"  {label:<64} {seconds * 1e3:8.2f} ms")
    print(f"  ratio plain / probe: {ratio:.2f}x (target <= 1.2x): {verdict(ratio, 1.2)}")
    print(f"  RSS after the first plain call {rss_first:.1f} MB, after call {args.calls} {rss_last:.1f} MB: "
          f"{grown:+.1f} MB (target flat, < 5 MB): {verdict(abs(grown), 5)}")
    print(f"  traces: remembered probe {probe_for(model).trace_count}, ModelProbe {probe.trace_count}")


if __name__ == "__main__":
    main()
