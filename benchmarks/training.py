"""Cost of the training-health monitor and of CKA over a large data set, on the demo model.

    .venv/bin/python benchmarks/training.py [--images 4096] [--epochs 2] [--pairs 5] [--cka-images 2500 10000]
                                            [--only fit|cka]

overhead  ``model.fit`` of the demo model (cnnwidget.demo.load_model(), Adam, batch 64) on ``--images`` demo images
          (seed 3) for ``--epochs`` epochs: 128 steps by default, a short fit, where the monitor's one-off cost
          weighs most. First one untimed plain fit (TensorFlow's start-up, paid by neither side). Then
          ``--pairs`` pairs (default 5) of a plain fit and a fit with DiagnosticsCallback at its defaults
          (every=50, bins=32, probe batch = the first 64 training images), each on a fresh copy of the model, in
          the same process, the order alternating from pair to pair (plain first, then monitored first), so a
          swing in the machine's load hits both sides alike. Each monitored fit pays its model's one-off (set-up,
          trace and first run of the probe pass), as a person does for each model they train. Per pair: both
          wall times and their ratio, the ratio of process CPU time (less sensitive to other jobs on the same
          cores), and the time spent inside the monitor's hooks, which is its direct cost. Target: the median
          wall-time ratio <= 1.10. Then the parts of the hooks' time (set-up, first probe step, later probe
          steps, the per-batch bookkeeping) and, from them, the overhead projected for longer fits.
cka       layer_similarity(ModelProbe(demo model), None, data) for every pair of its layers, data a tf.data
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


def _timed(obj, name: str, into: list):
    """Wrap method ``name`` of ``obj`` so each call's (wall, process CPU) seconds are appended to ``into``."""
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return original(*args, **kwargs)
        finally:
            into.append((time.perf_counter() - wall, time.process_time() - cpu))

    setattr(obj, name, wrapper)


_HOOKS = ("set_model", "on_train_begin", "on_epoch_begin", "on_train_batch_begin", "on_train_batch_end",
          "on_epoch_end", "on_train_end")
PROJECTED_STEPS = (313, 3750)  # one epoch of the demo's 20,000 training images at batch 64; its 12-epoch training


def fit_overhead(n_images: int, epochs: int, pairs: int) -> dict:
    """The overhead pairs (see the module docstring); returns the medians: wall, cpu and hooks ratios."""
    data = demo.shapes(n_images, seed=3)
    x, y = data.images, data.labels
    steps = epochs * -(-n_images // 64)
    warm = demo.load_model()
    warm.fit(x[:256], y[:256], batch_size=64, epochs=1, verbose=0)  # TensorFlow start-up, paid by neither side

    def timed_fit(callbacks):
        model = demo.load_model()
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(x, y, batch_size=64, epochs=epochs, verbose=0, callbacks=callbacks)
        return time.perf_counter() - wall, time.process_time() - cpu

    print(f"\n== overhead: demo model, {n_images} images x {epochs} epochs = {steps} steps of 64; {pairs} pairs of "
          "fits, each on a fresh model, the order alternating")
    rows = []
    for pair in range(pairs):
        monitor = DiagnosticsCallback((x[:64], y[:64]), verbose=0)
        hooks = {name: [] for name in _HOOKS + ("_probe",)}
        for name, into in hooks.items():
            _timed(monitor, name, into)
        if pair % 2 == 0:
            plain, monitored = timed_fit([]), timed_fit([monitor])
        else:
            monitored, plain = timed_fit([monitor]), timed_fit([])
        inside = sum(wall for h in _HOOKS for wall, _ in hooks[h])  # _probe runs inside on_train_batch_end
        inside_cpu = sum(cpu for h in _HOOKS for _, cpu in hooks[h])
        row = {"wall": monitored[0] / plain[0], "cpu": monitored[1] / plain[1], "hooks": 1 + inside / plain[0],
               "plain": plain[0], "inside": inside, "probes": hooks["_probe"],
               "begin": sum(wall for h in ("set_model", "on_train_begin") for wall, _ in hooks[h])}
        rows.append(row)
        print(f"   pair {pair + 1} ({'plain first' if pair % 2 == 0 else 'monitored first'}): without "
              f"{plain[0]:6.1f} s, with {monitored[0]:6.1f} s: ratio {row['wall']:.3f} (CPU time "
              f"{row['cpu']:.3f}); inside the monitor's hooks {inside:.2f} s = {inside / plain[0] * 100:.1f}% of "
              f"the plain fit (CPU {inside_cpu:.2f} s = {inside_cpu / plain[1] * 100:.1f}%)")
    medians = {k: statistics.median(r[k] for r in rows) for k in ("wall", "cpu", "hooks")}
    walls = sorted(r["wall"] for r in rows)
    print(f"   medians over {pairs} pairs, for a fit of {steps} steps: wall-time ratio {medians['wall']:.3f} "
          f"(pairs from {walls[0]:.3f} to {walls[-1]:.3f}), CPU-time ratio {medians['cpu']:.3f}, 1 + hooks / plain "
          f"{medians['hooks']:.3f}")
    if walls[-1] / walls[0] > 1.1:
        print("   the wall-time ratios spread wider than the overhead: the machine's load swung during the run; the "
              "CPU-time ratio and the hooks' share are the steadier figures")

    step_ms = statistics.median(r["plain"] for r in rows) / steps * 1e3
    first = [statistics.median(r["probes"][0][i] for r in rows) for i in (0, 1)]
    later_all = [t for r in rows for t in r["probes"][1:]]
    later = [statistics.median(t[i] for t in later_all) if later_all else 0.0 for i in (0, 1)]
    begin = statistics.median(r["begin"] for r in rows)
    # per step, outside probe steps: the loss read, the smoothing, the lock
    bookkeeping = statistics.median((r["inside"] - r["begin"] - sum(w for w, _ in r["probes"])) / steps for r in rows)
    n_probes = len(rows[0]["probes"])
    print(f"   inside the hooks, medians over the pairs, wall (CPU) ({n_probes} probe steps of every {monitor.every}; "
          f"a plain training step {step_ms:.0f} ms = plain fit / steps; {monitor.trace_count} trace per model):")
    print(f"     set-up at fit start   {begin * 1e3:7.1f} ms (layers by path, shadow weights)")
    print(f"     first probe step      {first[0] * 1e3:7.1f} ms ({first[1] * 1e3:.0f}) traces and first runs the pass: "
          "the one-off")
    print(f"     later probe steps     {later[0] * 1e3:7.1f} ms ({later[1] * 1e3:.0f}) each = "
          f"{later[0] / step_ms * 1e3:.2f} training steps: {later[0] / step_ms * 1e3 / monitor.every * 100:.1f}% of "
          f"training at every={monitor.every}")
    print(f"     per-batch bookkeeping {bookkeeping * 1e3:7.2f} ms a step = {bookkeeping / step_ms * 1e5:.2f}%")
    one_off = begin + first[0] - later[0]
    steady = later[0] / monitor.every + bookkeeping
    projected = ", ".join(f"{n} steps {1 + (one_off + steady * n) / (step_ms / 1e3 * n):.3f}"
                          for n in (steps,) + PROJECTED_STEPS)
    print(f"   projected from these parts (1 + hooks / plain fit; not measured): {projected}")
    return medians


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
    parser.add_argument("--pairs", type=int, default=5, help="fits with and without, interleaved; the median ratio")
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
        steps = args.epochs * -(-args.images // 64)
        print(f"  {verdict(ratio['wall'], OVERHEAD_TARGET)}  fit of {steps} steps with DiagnosticsCallback at "
              f"defaults: {ratio['wall']:.3f}x the fit without, wall time (median of {args.pairs} pairs; target <= "
              f"{OVERHEAD_TARGET}x); CPU time {ratio['cpu']:.3f}x, 1 + time in its hooks / plain fit "
              f"{ratio['hooks']:.3f}x")
    if growth is not None:
        counts = args.cka_images
        print(f"  {verdict(growth, MEMORY_GROWTH_TARGET)}  CKA peak RSS, {counts[-1]} vs {counts[0]} images: "
              f"{growth:.3f}x (target: no growth, <= {MEMORY_GROWTH_TARGET}x)")


if __name__ == "__main__":
    main()
