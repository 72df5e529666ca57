"""MC dropout: core.uncertainty.mc_dropout against the plain forward-pass floor and the naive recipe.

    .venv/bin/python benchmarks/uncertainty.py [--samples 50] [--images 8] [--repeats 3] [--skip-mobilenet]
                                               [--naive-passes 10]

Two models, ``--images`` images each, ``--samples`` dropout samples:

  demo        the demo model (64x64; Dropout after blocks 3 and 4 and after GAP: the sampled part is half the net)
  mobilenet   MobileNetV2(weights=None, 224x224) -> GAP -> Dropout(0.3) -> Dense(10): only the head is sampled

Timed in interleaved rounds (``_timing.interleaved_medians``), so machine load hits all alike:

  floor          ``--samples`` plain compiled forward passes (training=False) of the images: the cost of the
                 samples done the obvious way, taken as 1.0x (on MobileNetV2 ``--naive-passes`` are timed and scaled)
  ours           mc_dropout(probe, images, samples) on a warm probe (prefix once, head samples x images rows)
  naive eager    ``model(x, training=True)`` in a Python loop, ``--samples`` times (the usual recipe)
  naive compiled the same under one tf.function (both timed over ``--naive-passes`` on MobileNetV2, scaled)

Targets: ours <= 1.0x the floor on every model, <= 0.05x on the MobileNetV2 head case (one forward plus cheap
heads). Also printed: how far the naive recipe moves BatchNormalization-normalized features (relative L2
distance of the last BN layer's output, training=True against inference, at the batch size used; trained model
only), which is why it is wrong and not only slow, and the trace count of a second call with other samples
and seed (target 0).
The naive recipe runs on a clone: with training=True Keras also updates the BN moving averages.
Prints PASS/MISS; never fails the run.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _timing import interleaved_medians, machine_note, verdict  # noqa: E402

from cnnwidget import ModelProbe, demo  # noqa: E402
from cnnwidget.core import uncertainty as U  # noqa: E402


def mobilenet_head():
    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(weights=None, include_top=False, input_shape=(224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base.output)
    x = keras.layers.Dropout(0.3, name="head_dropout")(x)
    out = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
    return keras.Model(base.input, out, name="mobilenetv2_dropout_head")


def clone(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def bn_shift(model, x) -> tuple[float, str]:
    """Relative L2 distance of the last BatchNormalization layer's output, training=True against inference."""
    copy = clone(model)
    bn = [layer for layer in copy.layers if isinstance(layer, keras.layers.BatchNormalization)][-1]
    sub = keras.Model(copy.input, bn.output)
    inference = keras.ops.convert_to_numpy(sub(x, training=False))
    training = keras.ops.convert_to_numpy(sub(x, training=True))
    return float(np.linalg.norm(training - inference) / np.linalg.norm(inference)), bn.name


def run(name, model, x, samples, repeats, target, naive_passes, trained=True):
    probe = ModelProbe(model)
    naive = clone(model)
    forward = tf.function(lambda t: model(t, training=False), autograph=False)
    naive_step = tf.function(lambda t: naive(t, training=True), autograph=False)
    xt = tf.constant(x)

    # The floor and the naive loops cost the same per pass: ``naive_passes`` of them are timed and scaled to
    # ``samples`` (all of them on the demo model).
    passes = min(samples, naive_passes)

    def eager_loop():
        for _ in range(passes):
            naive(xt, training=True)

    def compiled_loop():
        for _ in range(passes):
            naive_step(xt).numpy()

    def floor_loop():
        for _ in range(passes):
            forward(xt).numpy()

    medians = interleaved_medians({
        "floor": floor_loop,
        "ours": lambda: U.mc_dropout(probe, x, samples=samples, seed=0),
        "naive eager": eager_loop,
        "naive compiled": compiled_loop,
    }, warmup=1, repeats=repeats)
    for key in ("floor", "naive eager", "naive compiled"):
        medians[key] *= samples / passes
    floor = medians["floor"]
    before = probe.trace_count
    U.mc_dropout(probe, x, samples=samples + 7, seed=5)
    retraces = probe.trace_count - before
    shift, bn_name = bn_shift(model, x) if trained else (None, "")
    result = U.mc_dropout(probe, x, samples=samples)
    print(f"\n{name}: {len(x)} images x {samples} samples; sampled layers {result.stochastic}; naive loops timed "
          f"over {passes} passes and scaled to {samples}")
    print(f"  floor ({samples} compiled forward passes)  {floor * 1e3:9.1f} ms   1.00x")  # noqa: E501
    for key in ("ours", "naive eager", "naive compiled"):
        print(f"  {key:<38s}{medians[key] * 1e3:9.1f} ms  {medians[key] / floor:5.2f}x")
    ratio = medians["ours"] / floor
    print(f"  ours: {ratio:.3f}x the floor, target <= {target}x: {verdict(ratio, target)}")
    print(f"  retraces on a call with other samples and seed: {retraces} (target 0: {verdict(retraces, 0)})")
    if shift is None:
        print("  BN shift not measured: weights=None leaves the moving statistics at their initial values (mean 0, "
              "variance 1), so the distance to batch statistics says nothing about a trained model")
    else:
        print(f"  the naive recipe moves BN-normalized features ({bn_name}) by {100 * shift:.1f}% (relative L2, "
              f"batch {len(x)})")
    return ratio


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-mobilenet", action="store_true")
    parser.add_argument("--naive-passes", type=int, default=10,
                        help="MobileNetV2: naive passes timed (scaled to --samples; each costs the same)")
    args = parser.parse_args()
    print(f"MC dropout benchmark; {machine_note()}")
    x = demo.shapes(args.images, seed=1).images
    run("demo model", demo.load_model(), x, args.samples, args.repeats, 1.0, args.samples)
    if not args.skip_mobilenet:
        big = np.asarray(tf.image.resize(x, (224, 224)), np.float32)
        run("MobileNetV2 (weights=None, 224) + GAP -> Dropout(0.3) -> Dense", mobilenet_head(), big, args.samples,
            args.repeats, 0.05, args.naive_passes, trained=False)
    print(f"\nend: {machine_note()}")


if __name__ == "__main__":
    main()
