"""What the TrainingMonitor widget adds to a small ``model.fit`` of the demo model.

    .venv/bin/python benchmarks/training_monitor.py [--model demo|notebook] [--images 1024] [--epochs 2]
                                                    [--every 50] [--budgets none 0.1] [--repeats 3]
    # notebooks/training.ipynb's healthy fit (180 steps, every=5), about 3 minutes on 2 busy cores:
    .venv/bin/python benchmarks/training_monitor.py --model notebook --images 960 --epochs 6 --every 5

A fit on ``--images`` demo images (seed 3) for ``--epochs`` epochs, with 256 validation images, each on a fresh
model: ``--model demo`` cnnwidget.demo.load_model() (64 px, batch 64), ``--model notebook`` the small CNN of
notebooks/training.ipynb (32 px, batch 32). Timed in interleaved rounds (plain, monitor, monitor, plain, ...)
after one warm-up round (TensorFlow's start-up and Keras's first trace, paid by no side):

plain           no callback
budget=<b>      cw.TrainingMonitor(probe batch = the first 64 images, every=``--every``, budget=b).callback, for
                each b of ``--budgets`` ("none": probe steps every ``every`` steps whatever they cost, as before
                the budget existed). Measuring plus the widget's redraws (outside a kernel the comm messages go to
                ipywidgets' dummy comm: the state is serialized, not sent).

Per fit: wall time (time.perf_counter) and process CPU time (time.process_time: steadier on a shared, loaded
machine); medians over ``--repeats`` rounds, and each monitor's ratio to the plain fit of the same round. For
each monitor: probe steps taken and put off, the time in its probe steps and in its redraws
(TrainingMonitor._draw). Target: TrainingMonitor at its defaults / plain <= 1.15, process CPU time.

Prints figures, then PASS/MISS lines; never fails the run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import inspect
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
    parser.add_argument("--model", choices=["demo", "notebook"], default="demo",
                        help="notebook: notebooks/training.ipynb's small CNN on 32 px shapes, batch 32")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--every", type=int, default=50, help="TrainingMonitor's every (its default: 50)")
    parser.add_argument("--budgets", nargs="+", default=["none", "default"],
                        help='TrainingMonitor budgets to time: "none", "default" (its default) or fractions')
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    default_budget = inspect.signature(cw.TrainingMonitor).parameters["budget"].default
    budgets = {f"budget={b}": (None if b == "none" else default_budget if b == "default" else float(b))
               for b in args.budgets}
    print(f"training monitor benchmark: TF {tf.__version__}, Keras {keras.__version__}; {machine_note()}")
    size, batch = (64, 64) if args.model == "demo" else (32, 32)
    data = demo.shapes(args.images + 256, seed=3, size=size)
    x, y = data.images[:args.images], data.labels[:args.images]
    val = (data.images[args.images:], data.labels[args.images:])
    probe = (x[:64], y[:64])
    steps = args.epochs * -(-args.images // batch)
    cpu = {name: [] for name in ["plain", *budgets]}
    parts = {name: [] for name in budgets}  # per fit: (probe steps, put off, probe seconds, draws, draw seconds)

    def fit(callbacks):
        model = demo.load_model() if args.model == "demo" else small_cnn()
        start = time.process_time()
        model.fit(x, y, validation_data=val, batch_size=batch, epochs=args.epochs, verbose=0, callbacks=callbacks)
        return time.process_time() - start

    def plain():
        cpu["plain"].append(fit([]))

    def monitor(name):
        mon = cw.TrainingMonitor(probe, every=args.every, budget=budgets[name])
        draws, probes = _timed(mon, "_draw"), _timed(mon.callback, "_probe")
        cpu[name].append(fit([mon.callback]))
        parts[name].append((len(mon.history["probe_step"]), mon.callback.deferred, sum(probes[1:]), len(draws),
                            sum(draws)))
        mon.close()

    print(f"fit: {args.model} model, {args.images} images x {args.epochs} epochs = {steps} steps of {batch}, 256 "
          f"validation images; monitors at every={args.every}, default budget {default_budget}; {args.repeats} "
          "interleaved rounds after one warm-up round")
    start = time.perf_counter()
    fns = {"plain": plain, **{name: (lambda name=name: monitor(name)) for name in budgets}}
    walls = interleaved_times(fns, warmup=1, repeats=args.repeats)
    cpu = {name: ts[1:] for name, ts in cpu.items()}  # the warm-up round's are not kept
    parts = {name: ps[1:] for name, ps in parts.items()}
    plain_wall, plain_cpu = statistics.median(walls["plain"]), statistics.median(cpu["plain"])
    print(f"\n   {'':14}{'wall s':>8}{'CPU s':>8}{'wall/plain':>11}{'CPU/plain':>10}{'probes':>8}{'put off':>8}"
          f"{'probe s':>8}{'draws':>6}{'draw s':>7}   (medians; per-round CPU ratios)")
    ratios = {}
    for name in fns:
        w, c = statistics.median(walls[name]), statistics.median(cpu[name])
        line = f"   {name:14}{w:8.2f}{c:8.2f}"
        if name == "plain":
            print(line)
            continue
        ratios[name] = [m / p for m, p in zip(cpu[name], cpu["plain"])], [m / p for m, p in zip(walls[name],
                                                                                                 walls["plain"])]
        med = [statistics.median(p[i] for p in parts[name]) for i in range(5)]
        print(f"{line}{statistics.median(ratios[name][1]):11.3f}{statistics.median(ratios[name][0]):10.3f}"
              f"{med[0]:8.0f}{med[1]:8.0f}{med[2]:8.2f}{med[3]:6.0f}{med[4]:7.2f}   "
              f"[{', '.join(f'{r:.3f}' for r in ratios[name][0])}]")
    print("   (probe s: wall seconds in the probe steps after the first, whose trace is a one-off; draw s: in the "
          "redraws)")
    print(f"\nTensorFlow 'triggered tf.function retracing' warnings: {RETRACING.count}")
    print(f"\nsummary ({time.perf_counter() - start:.0f} s; {machine_note()}):")
    for name, (cpu_r, wall_r) in ratios.items():
        ratio = statistics.median(cpu_r)
        default = " (the default)" if budgets[name] == default_budget else ""
        print(f"  {verdict(ratio, TARGET) if default else 'info'}  fit of {steps} steps with "
              f"TrainingMonitor(every={args.every}, {name}){default}: {ratio:.3f}x the plain fit's process CPU "
              f"time, {statistics.median(wall_r):.3f}x its wall time (medians of {args.repeats} same-round ratios; "
              f"target <= {TARGET}x)")


def _timed(obj, name: str) -> list:
    """Wrap method ``name`` of ``obj``; returns the list each call's wall seconds are appended to."""
    original, into = getattr(obj, name), []

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            into.append(time.perf_counter() - start)

    setattr(obj, name, wrapper)
    return into


if __name__ == "__main__":
    main()
