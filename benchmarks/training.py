"""Cost of the training-health monitor and of CKA over a large data set, on the demo model.

    .venv/bin/python benchmarks/training.py [--images 4096] [--epochs 2] [--cka-images 2500 10000] [--only fit|cka]

overhead  ``model.fit`` of the demo model (cnnwidget.demo.load_model(), Adam, batch 64) on ``--images`` demo images
          (seed 3) for ``--epochs`` epochs, once without a callback and once with DiagnosticsCallback at its
          defaults (every=50, bins=32, probe batch = the first 64 training images), each on a fresh copy of the
          model, in the same process, after one untimed warm-up fit (TensorFlow's one-off start-up). Both runs
          trace Keras's train step; the monitored run also traces its probe pass, which is counted. Target: the
          ratio with/without <= 1.10. One pair by default; ``--pairs 3`` interleaves more and takes the median,
          for a machine whose load swings more than the overhead (other jobs on the same cores). Also printed:
          the time spent inside the monitor's hooks (its direct cost, much less sensitive to that load), the
          first probe step (tracing included) and the median of the later ones against the median training step.
cka       layer_similarity(ModelProbe(demo model), None, data) for all 22 x 22 layer pairs, data a tf.data
          pipeline that draws demo images in chunks of 500 (seeds 100, 101, ...) and batches them by 128, so
          nothing holds the whole set. One untimed pass over one batch first traces the compiled step. Each image
          count runs in a fresh subprocess: seconds (data drawing included, and alone), peak RSS (ru_maxrss) and
          its growth over the RSS before the pass, and the tracemalloc peak during the pass (Python-side
          allocations; TensorFlow's own buffers are in RSS only). Target: the peak does not
          grow with the number of images (10,000 vs 2,500: within 10%).

Prints figures, then PASS/MISS lines; never fails the run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import RetracingWarnings, machine_note, verdict  # noqa: E402

RETRACING = RetracingWarnings.install()
from cnnwidget import demo  # noqa: E402
from cnnwidget.core import ModelProbe, similarity  # noqa: E402
from cnnwidget.core.diagnostics import DiagnosticsCallback  # noqa: E402

OVERHEAD_TARGET, MEMORY_GROWTH_TARGET = 1.10, 1.10
CHUNK, BATCH = 500, 128


class _StepTimes(keras.callbacks.Callback):
    """Wall time of each training step (batch begin to batch end), to set probe costs against."""

    def __init__(self):
        super().__init__()
        self.times, self._start = [], 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def _timed(obj, name: str, into: list):
    """Wrap method ``name`` of ``obj`` so each call's wall time is appended to ``into``."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    setattr(obj, name, wrapper)


def fit_overhead(n_images: int, epochs: int, pairs: int) -> float:
    data = demo.shapes(n_images, seed=3)
    x, y = data.images, data.labels
    warm = demo.load_model()
    warm.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # TensorFlow start-up, paid by neither run

    def timed_fit(callbacks):
        model = demo.load_model()
        start = time.perf_counter()
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=callbacks)
        return time.perf_counter() - start

    print(f"\n== overhead: demo model, {n_images} images x {epochs} epochs = {epochs * -(-n_images // 64)} steps "
          f"of 64; {pairs} pair(s) of fits, each on a fresh model, plain then monitored")
    ratios = []
    for pair in range(pairs):
        plain = timed_fit([])
        monitor, steps = DiagnosticsCallback((x[:64], y[:64]), verbose=0), _StepTimes()
        hooks = {name: [] for name in ("on_train_begin", "on_train_batch_begin", "on_train_batch_end",
                                       "on_epoch_end", "_probe")}
        for name, into in hooks.items():
            _timed(monitor, name, into)
        monitored = timed_fit([steps, monitor])
        ratios.append(monitored / plain)
        inside = sum(sum(hooks[h]) for h in hooks if h != "_probe")  # _probe runs inside on_train_batch_end
        print(f"   pair {pair + 1}: without {plain:6.1f} s, with {monitored:6.1f} s: ratio {monitored / plain:.3f}; "
              f"time inside the monitor's hooks {inside:.2f} s = {inside / plain * 100:.1f}% of the plain fit")
    probes = hooks["_probe"]
    step_ms = statistics.median(steps.times) * 1e3
    print(f"   last pair, monitored: {len(probes)} probe steps (every {monitor.every}), {monitor.trace_count} trace; "
          f"median training step {step_ms:.1f} ms")
    print(f"     setup at fit start {hooks['on_train_begin'][0] * 1e3:7.1f} ms (flat graph, variables for the pass)")
    print(f"     first probe step   {probes[0] * 1e3:7.1f} ms (traces the pass)")
    if len(probes) > 1:
        later = statistics.median(probes[1:]) * 1e3
        print(f"     later probe steps  {later:7.1f} ms median = {later / step_ms:.2f} training steps: "
              f"steady-state cost {later / step_ms / monitor.every * 100:.1f}% of training at every={monitor.every}")
    return statistics.median(ratios)


def _chunks(n_images: int):
    def gen():
        for i, start in enumerate(range(0, n_images, CHUNK)):
            yield demo.shapes(min(CHUNK, n_images - start), seed=100 + i).images

    spec = tf.TensorSpec((None, 64, 64, 3), tf.float32)
    return tf.data.Dataset.from_generator(gen, output_signature=spec).unbatch().batch(BATCH)


def cka_worker(n_images: int) -> dict:
    """Runs in its own process: one CKA pass over n_images, its time and memory, as a dict."""
    probe = ModelProbe(demo.load_model())
    similarity.layer_similarity(probe, None, _chunks(BATCH))  # trace and warm up on one batch
    start = time.perf_counter()
    for _ in _chunks(n_images):
        pass
    data_seconds = time.perf_counter() - start
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tracemalloc.start()
    start = time.perf_counter()
    cka = similarity.layer_similarity(probe, None, _chunks(n_images))
    seconds = time.perf_counter() - start
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images": n_images, "seconds": seconds, "data_seconds": data_seconds, "rss_before_mb": rss_before,
            "rss_peak_mb": rss_peak, "py_peak_mb": py_peak / 2**20, "shape": list(cka.shape),
            "diagonal_min": float(np.nanmin(np.diag(cka))), "finite": bool(np.isfinite(cka).all())}


def cka_memory(counts: list[int]) -> float:
    results = []
    for n in counts:
        out = subprocess.run([sys.executable, __file__, "--cka-worker", str(n)], capture_output=True, text=True)
        lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if out.returncode or not lines:
            print(f"   CKA worker for {n} images failed:\n{out.stderr[-2000:]}")
            return float("nan")
        results.append(json.loads(lines[-1]))
    print(f"\n== CKA: demo model with itself, {results[0]['shape'][0]} x {results[0]['shape'][1]} layer pairs, "
          f"batches of {BATCH}, one fresh process per row")
    print(f"   {'images':>8}{'seconds':>9}{'(data)':>8}{'img/s':>8}{'RSS before':>12}{'RSS peak':>10}{'growth':>8}"
          f"{'py peak':>9}")
    for r in results:
        print(f"   {r['images']:>8}{r['seconds']:>9.1f}{r['data_seconds']:>8.1f}{r['images'] / r['seconds']:>8.0f}"
              f"{r['rss_before_mb']:>10.0f}MB{r['rss_peak_mb']:>8.0f}MB{r['rss_peak_mb'] - r['rss_before_mb']:>6.0f}MB"
              f"{r['py_peak_mb']:>7.1f}MB")
        if not r["finite"] or abs(r["diagonal_min"] - 1) > 1e-9:
            print(f"   note: {r['images']} images gave a non-finite matrix or a diagonal off 1 ({r['diagonal_min']})")
    return results[-1]["rss_peak_mb"] / results[0]["rss_peak_mb"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4096, help="training images for the overhead fit")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--pairs", type=int, default=1, help="fits with and without, interleaved; the median ratio")
    parser.add_argument("--cka-images", type=int, nargs="+", default=[2500, 10000])
    parser.add_argument("--only", choices=["fit", "cka"])
    parser.add_argument("--cka-worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cka_worker:
        print(json.dumps(cka_worker(args.cka_worker)))
        return

    print(f"training benchmark: TF {tf.__version__}, Keras {keras.__version__}; {machine_note()}")
    start = time.perf_counter()
    ratio = growth = None
    if args.only in (None, "fit"):
        ratio = fit_overhead(args.images, args.epochs, args.pairs)
    if args.only in (None, "cka"):
        growth = cka_memory(args.cka_images)
    print(f"\nTensorFlow 'triggered tf.function retracing' warnings: {RETRACING.count}")
    print(f"\nsummary ({time.perf_counter() - start:.0f} s; {machine_note()}):")
    if ratio is not None:
        print(f"  {verdict(ratio, OVERHEAD_TARGET)}  fit with DiagnosticsCallback at defaults: {ratio:.3f}x the fit "
              f"without ({'median of ' + str(args.pairs) + ' pairs; ' if args.pairs > 1 else ''}"
              f"target <= {OVERHEAD_TARGET}x)")
    if growth is not None:
        counts = args.cka_images
        print(f"  {verdict(growth, MEMORY_GROWTH_TARGET)}  CKA peak RSS, {counts[-1]} vs {counts[0]} images: "
              f"{growth:.3f}x (target: no growth, <= {MEMORY_GROWTH_TARGET}x)")


if __name__ == "__main__":
    main()
