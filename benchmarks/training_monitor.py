"""What the TrainingMonitor widget adds to a small ``model.fit`` of the demo model.

    .venv/bin/python benchmarks/training_monitor.py [--images 1536] [--epochs 3] [--repeats 3] [--every 50]

A fit of cnnwidget.demo.load_model() (Adam, batch 64) on ``--images`` demo images (seed 3) for ``--epochs`` epochs,
with 256 validation images, each on a fresh model, three ways, interleaved (plain, callback, monitor, plain, ...)
after one warm-up round (TensorFlow's start-up and Keras's trace of its train step, paid by no side):

plain     no callback
callback  cnnwidget.core.diagnostics.DiagnosticsCallback alone (probe batch = the first 64 images, ``--every``):
          what the monitor measures, without any display
monitor   cw.TrainingMonitor(same probe batch, every=``--every``).callback: the measuring plus the widget's
          redraws (comm messages go to ipywidgets' dummy comm outside a kernel: the state is serialized, not sent)

Per run: wall time (time.perf_counter) and process CPU time (time.process_time: steadier on a shared, loaded
machine); the median of ``--repeats``; the ratio of each to the plain fit in the same run. For the monitor, also
the time spent in its redraws (TrainingMonitor._draw) and how many there were. Target: monitor / plain <= 1.15.

Prints figures, then PASS/MISS lines; never fails the run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cnnwidget as cw  # noqa: E402  (first: it imports TensorFlow quietly)
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import RetracingWarnings, interleaved_times, machine_note, verdict  # noqa: E402

RETRACING = RetracingWarnings.install()
from cnnwidget import demo  # noqa: E402
from cnnwidget.core.diagnostics import DiagnosticsCallback  # noqa: E402

TARGET = 1.15


def small_cnn():
    """notebooks/training.ipynb's healthy model: three conv blocks on 32 x 32 shapes (here 10 classes)."""
    layers = [keras.Input((32, 32, 3))]
    for i, filters in enumerate([16, 32, 32], start=1):
        layers += [keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv{i}"),
                   keras.layers.MaxPooling2D(2)]
    layers.append(keras.layers.GlobalMaxPooling2D())
    model = keras.Sequential(layers + [keras.layers.Dense(10, activation="softmax", name="out")])
    model.compile(keras.optimizers.Adam(3e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1536)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--every", type=int, default=50, help="probe step interval, for callback and monitor")
    parser.add_argument("--model", choices=["demo", "notebook"], default="demo",
                        help="notebook: notebooks/training.ipynb's small CNN on 32 px shapes, batch 32")
    args = parser.parse_args()

    print(f"training monitor benchmark: TF {tf.__version__}, Keras {keras.__version__}; {machine_note()}")
    size, batch = (64, 64) if args.model == "demo" else (32, 32)
    data = demo.shapes(args.images + 256, seed=3, size=size)
    x, y = data.images[:args.images], data.labels[:args.images]
    val = (data.images[args.images:], data.labels[args.images:])
    probe = (x[:64], y[:64])
    steps = args.epochs * -(-args.images // batch)
    cpu = {"plain": [], "callback": [], "monitor": []}
    draws = {"seconds": [], "cpu": [], "count": []}

    def fit(callbacks):
        model = demo.load_model() if args.model == "demo" else small_cnn()
        start = time.process_time()
        model.fit(x, y, validation_data=val, batch_size=batch, epochs=args.epochs, verbose=0, callbacks=callbacks)
        return time.process_time() - start

    def plain():
        cpu["plain"].append(fit([]))

    def callback():
        cpu["callback"].append(fit([DiagnosticsCallback(probe, every=args.every, verbose=0)]))

    def monitor():
        mon = cw.TrainingMonitor(probe, every=args.every)
        spent = []
        original = mon._draw

        def timed_draw(h):
            wall, c = time.perf_counter(), time.process_time()
            try:
                return original(h)
            finally:
                spent.append((time.perf_counter() - wall, time.process_time() - c))

        mon._draw = timed_draw
        cpu["monitor"].append(fit([mon.callback]))
        draws["seconds"].append(sum(w for w, _ in spent))
        draws["cpu"].append(sum(c for _, c in spent))
        draws["count"].append(len(spent))
        mon.close()

    print(f"fit: {args.model} model, {args.images} images x {args.epochs} epochs = {steps} steps of {batch}, 256 validation "
          f"images; every={args.every}; {args.repeats} interleaved rounds after one warm-up round")
    start = time.perf_counter()
    walls = interleaved_times({"plain": plain, "callback": callback, "monitor": monitor}, warmup=1,
                              repeats=args.repeats)
    for name in cpu:  # the warm-up round's CPU figures are not kept
        cpu[name] = cpu[name][1:]
    for name in draws:
        draws[name] = draws[name][1:]
    med = {n: (statistics.median(walls[n]), statistics.median(cpu[n])) for n in walls}
    print(f"\n   {'':10}{'wall s':>9}{'CPU s':>9}{'wall/plain':>12}{'CPU/plain':>11}   (medians; rounds: wall, CPU)")
    for name, (w, c) in med.items():
        rounds = ", ".join(f"{a:.1f}/{b:.1f}" for a, b in zip(walls[name], cpu[name]))
        print(f"   {name:10}{w:9.2f}{c:9.2f}{w / med['plain'][0]:12.3f}{c / med['plain'][1]:11.3f}   [{rounds}]")
    # per-round ratios (same round: the load is most alike)
    wall_r = [m / p for m, p in zip(walls["monitor"], walls["plain"])]
    cpu_r = [m / p for m, p in zip(cpu["monitor"], cpu["plain"])]
    print(f"   monitor/plain per round: wall {', '.join(f'{r:.3f}' for r in wall_r)}; "
          f"CPU {', '.join(f'{r:.3f}' for r in cpu_r)}")
    print(f"   monitor redraws: {statistics.median(draws['count']):.0f} a fit, "
          f"{statistics.median(draws['seconds']):.2f} s wall ({statistics.median(draws['cpu']):.2f} s CPU) in them "
          f"= {statistics.median(draws['cpu']) / med['plain'][1] * 100:.1f}% of the plain fit's CPU")
    print(f"\nTensorFlow 'triggered tf.function retracing' warnings: {RETRACING.count}")
    print(f"\nsummary ({time.perf_counter() - start:.0f} s; {machine_note()}):")
    ratio_cpu, ratio_wall = statistics.median(cpu_r), statistics.median(wall_r)
    print(f"  {verdict(ratio_cpu, TARGET)}  fit of {steps} steps with TrainingMonitor(every={args.every}): "
          f"{ratio_cpu:.3f}x the plain fit's process CPU time, {ratio_wall:.3f}x its wall time (median of "
          f"{args.repeats} same-round ratios; target <= {TARGET}x); DiagnosticsCallback alone "
          f"{med['callback'][1] / med['plain'][1]:.3f}x CPU")


if __name__ == "__main__":
    main()
