"""How long reading activations takes, against the floor of one plain forward pass.

    .venv/bin/python benchmarks/activations.py [--repeats 9] [--only demo|mobilenetv2] [--explain]
                                               [--keract-python PATH]

For the demo model (64x64, 8 shapes images) and MobileNetV2 (weights=None, 224x224, 8 random images in [0, 1],
preprocess x * 2 - 1), all timed in the same run, interleaved, median of repeats after warm-up (_timing.py):

  floor        tf.function(lambda x: model(preprocess(x), training=False)) on the 8 images, output to numpy
  one layer    probe.activations(images, [middle layer])  (MobileNetV2: block_6_expand_relu; demo: block3_relu)
  grid change  ActivationGrid: grid.layer = <a layer not cached yet> (compute, quantize, serialize the messages),
               and the same change to a cached layer (quantize and serialize only)
  depth strip  depth_strip(probe, images, 32): a 32x32 thumbnail of every layer, one pass
  naive        keras.Model(model.input, [every layer's output]), compiled, every full output fetched to numpy
               (what keract-style tools do; the issue measured 2.9x the floor here), once as zero-copy views
               (np.asarray) and once copied (np.array, as model.predict or K.function results are)

Targets: one layer <= 1.0x the floor, the whole depth strip <= 1.5x. Prints PASS/MISS; never fails the run.
It also reports the one-off cost of the first pass over a new layer set (tracing), which the steady-state
figures leave out, and whether keract runs on this Keras (see --keract-python and README.md). --explain adds
"why:" rows that time the all-layer pass with other reducers, to show where the depth strip's time goes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import RetracingWarnings, interleaved_medians, machine_note, verdict  # noqa: E402

RETRACING = RetracingWarnings.install()
from cnnwidget.core import ModelProbe  # noqa: E402
from cnnwidget.core.activations import depth_strip  # noqa: E402

ONE_LAYER_TARGET, STRIP_TARGET = 1.0, 1.5
N_IMAGES = 8


def demo_case():
    """(name, model, images, preprocess, layer, other layer, note)."""
    note = "cnnwidget.demo.load_model()"
    try:
        from cnnwidget.demo import load_model

        model = load_model()
    except Exception as exc:  # noqa: BLE001 - the demo model file may not be trained yet
        try:
            from cnnwidget.demo.train import build_model

            model = build_model()
            note = f"FALLBACK demo architecture, untrained weights (load_model failed: {type(exc).__name__})"
        except Exception:  # noqa: BLE001
            model = _small_conv_model()
            note = f"FALLBACK small conv model defined here (cnnwidget.demo not ready: {type(exc).__name__})"
    try:
        from cnnwidget.demo import shapes

        images = shapes(N_IMAGES, seed=1).images
    except Exception as exc:  # noqa: BLE001
        images = np.random.default_rng(1).random((N_IMAGES, 64, 64, 3), dtype=np.float32)
        note += f"; FALLBACK random images ({type(exc).__name__})"
    names = [layer.name for layer in model.layers]
    layer = "block3_relu" if "block3_relu" in names else _middle_spatial(model)
    other = "block3_bn" if "block3_bn" in names else names[names.index(layer) - 1]
    return "demo", model, images, None, layer, other, note


def mobilenet_case():
    model = keras.applications.MobileNetV2(weights=None)
    images = np.random.default_rng(0).random((N_IMAGES, 224, 224, 3), dtype=np.float32)
    return ("mobilenetv2", model, images, lambda x: x * 2 - 1, "block_6_expand_relu", "block_6_expand_BN",
            "keras.applications.MobileNetV2(weights=None), 224x224")


def _small_conv_model():
    x = inputs = keras.Input((64, 64, 3))
    for i, filters in enumerate((16, 32, 64, 128), start=1):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
        x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x), name="small_conv")


def _middle_spatial(model):
    spatial = [layer.name for layer in model.layers[1:] if len(layer.output.shape) == 4]
    return spatial[len(spatial) // 2]


def measure(case, repeats: int, grid_class, explain: bool = False):
    name, model, images, preprocess, layer, other, note = case
    pre = preprocess or (lambda x: x)
    print(f"\n== {name}: {note}")
    print(f"   {len(model.layers)} layers, {model.count_params():,} parameters, {len(images)} images "
          f"{images.shape[1]}x{images.shape[2]}; one layer = {layer}")

    floor_fn = tf.function(lambda x: model(pre(x), training=False))
    probe = ModelProbe(model, preprocess=preprocess)

    outputs = [lyr.output for lyr in model.layers if not isinstance(lyr, keras.layers.InputLayer)]
    multi = keras.Model(model.input, outputs)
    naive_fn = tf.function(lambda x: multi(pre(x), training=False))

    # One-off costs: the first pass over a layer set traces and compiles it.
    first = {}
    start = time.perf_counter()
    floor_fn(images)
    first["floor"] = time.perf_counter() - start
    start = time.perf_counter()
    probe.activations(images, [layer])
    first["one layer"] = time.perf_counter() - start
    start = time.perf_counter()
    depth_strip(probe, images, 32)
    first["depth strip"] = time.perf_counter() - start
    start = time.perf_counter()
    naive_fn(images)
    first["naive"] = time.perf_counter() - start

    fns = {
        "floor": lambda: np.asarray(floor_fn(images)),
        "one layer": lambda: probe.activations(images, [layer]),
        "depth strip": lambda: depth_strip(probe, images, 32),
        # np.asarray on a CPU EagerTensor is a zero-copy view; np.array copies, as model.predict (which
        # concatenates batches) and keract's K.function results do.
        "naive (views)": lambda: [np.asarray(o) for o in naive_fn(images)],
        "naive (copied)": lambda: [np.array(o) for o in naive_fn(images)],
    }
    first["naive (views)"] = first["naive (copied)"] = first.pop("naive")
    if explain:
        # Where the depth strip's time goes: the same all-layer pass with other reducers (see README.md).
        everything = tuple(info.path for info in probe.layers)
        for key, reduce in (("why: touch each layer", _touch), ("why: mean x, no abs", _mean_thumb),
                            ("why: RMS (euclid. norm)", _rms_thumb)):
            start = time.perf_counter()
            probe.activations(images, everything, reduce=reduce)
            first[key] = time.perf_counter() - start
            fns[key] = lambda reduce=reduce: probe.activations(images, everything, reduce=reduce)
        fns["why: probe, all full maps"] = lambda: probe.activations(images, everything)
    grid_note = "ActivationGrid not measured"
    if grid_class is not None:
        try:
            grid = grid_class(probe, images, layer=layer)
            paths = {layer: probe.layer(layer).path, other: probe.layer(other).path}

            def change_cold():
                target = other if grid.layer == paths[layer] else layer
                grid._acts.pop(paths[target], None)  # not looked at yet (its pass is compiled already)
                grid.layer = target

            def change_cached():
                grid.layer = other if grid.layer == paths[layer] else layer

            start = time.perf_counter()
            change_cached()  # the first visit to `other`: traces its pass
            first["grid change"] = time.perf_counter() - start
            fns["grid change (new layer)"] = change_cold
            fns["grid change (cached)"] = change_cached
            grid_note = f"grid: {layer} <-> {other}, page_size {grid.page_size}"
        except Exception as exc:  # noqa: BLE001 - report, do not fail
            grid_note = f"ActivationGrid failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"

    times = interleaved_medians(fns, warmup=2, repeats=repeats)
    floor = times["floor"]
    print(f"   {'measure':<28}{'ms':>10}{'x floor':>10}{'first call ms':>16}")
    for key, seconds in times.items():
        first_key = key if key in first else ("grid change" if key.startswith("grid change (new") else None)
        first_ms = f"{first[first_key] * 1e3:.0f}" if first_key else ""
        print(f"   {key:<28}{seconds * 1e3:>10.1f}{seconds / floor:>10.2f}{first_ms:>16}")
    print(f"   ({grid_note}; 'first call' = the first pass over a new layer set, tracing included)")
    naive_mb = sum(np.asarray(o).nbytes for o in naive_fn(images)) / 1e6
    one_mb = probe.activations(images, [layer])[layer].nbytes / 1e6
    print(f"   bytes fetched to numpy: naive {naive_mb:.0f} MB (all {len(outputs)} layers), one layer {one_mb:.1f} MB")
    return {key: seconds / floor for key, seconds in times.items()}


def _touch(out):
    """One extra consumer per layer and almost no work: what fetching anything from every layer costs by itself."""
    return tf.reshape(out, [-1])[:1]


def _mean_thumb(out):
    """The thumbnail with a plain channel mean instead of mean |x| (a lower bound: one read of every output)."""
    return _thumb(tf.reduce_mean(out, -1, keepdims=True)) if out.shape.rank == 4 else _touch(out)


def _rms_thumb(out):
    """The thumbnail with the channel RMS, a fused one-pass reduction (abs + mean makes a full-size temporary)."""
    if out.shape.rank != 4:
        return _touch(out)
    return _thumb(tf.math.reduce_euclidean_norm(out, -1, keepdims=True) * (1.0 / float(out.shape[-1]) ** 0.5))


def _thumb(img, size=32):
    return tf.image.resize(img, (size, size), method="area" if img.shape[1] > size else "nearest")[..., 0]


_KERACT_SNIPPET = r"""
import os, traceback
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras, keract
from importlib.metadata import version
x = i = keras.Input((32, 32, 3))
x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
m = keras.Model(i, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
m.compile(loss="mse", optimizer="adam")
try:
    out = keract.get_activations(m, np.zeros((1, 32, 32, 3), "float32"))
    print(f"keract {version('keract')} on Keras {keras.__version__}: RUNS ({len(out)} layers)")
except Exception as e:
    where = [f"{f.name}:{f.lineno}" for f in traceback.extract_tb(e.__traceback__) if "keract" in f.filename]
    print(f"keract {version('keract')} on Keras {keras.__version__}: FAILS "
          f"({type(e).__name__}: {str(e).splitlines()[0][:120]}, in {' <- '.join(reversed(where))})")
"""

_KERACT_RECORDED = (
    "recorded 2026-05 (keract 4.5.2, the latest on PyPI, in a throwaway venv over this project's TF 2.21 / "
    "Keras 3.15): `import keract` works, but get_activations fails on any model with AttributeError: "
    "'Functional' object has no attribute '_is_compiled' (keract.py _evaluate), and with that attribute forced, "
    "'_feed_inputs' (Keras 2 internals)"
)


def keract_check(python: str | None) -> str:
    """Run keract on a tiny compiled Keras 3 model in another interpreter (never this project's venv)."""
    candidates = [python, os.environ.get("KERACT_PYTHON"), "/tmp/keract-venv/bin/python"]
    for exe in candidates:
        if exe and Path(exe).exists():
            try:
                run = subprocess.run([exe, "-c", _KERACT_SNIPPET], capture_output=True, text=True, timeout=120)
            except subprocess.TimeoutExpired:
                return f"keract check timed out with {exe}"
            lines = [line for line in run.stdout.splitlines() if line.startswith("keract")]
            if lines:
                return lines[-1] + f"  [checked now with {exe}]"
            return f"keract not importable with {exe}: {(run.stderr.strip().splitlines() or ['?'])[-1][:160]}"
    return "not checked in this run (no keract venv; see README.md). " + _KERACT_RECORDED


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--only", choices=["demo", "mobilenetv2"])
    parser.add_argument("--explain", action="store_true",
                        help="also time where the depth strip's cost goes (other reducers over every layer)")
    parser.add_argument("--keract-python", help="a Python with keract installed (a throwaway venv), for the check")
    args = parser.parse_args()

    print(f"activations benchmark: TF {tf.__version__}, Keras {keras.__version__}; {machine_note()}; "
          f"TF threads intra {tf.config.threading.get_intra_op_parallelism_threads() or 'auto'}, "
          f"inter {tf.config.threading.get_inter_op_parallelism_threads() or 'auto'}")
    try:
        from _widgets import import_activation_grid, record_comms

        record_comms()  # comm messages are serialized as a kernel would, so grid timings include that work
        grid_class, grid_note = import_activation_grid()
    except Exception as exc:  # noqa: BLE001
        grid_class, grid_note = None, f"ActivationGrid unavailable: {type(exc).__name__}: {str(exc)[:160]}"
    print(grid_note)

    cases = [demo_case, mobilenet_case]
    if args.only:
        cases = [demo_case] if args.only == "demo" else [mobilenet_case]
    start = time.perf_counter()
    results = {}
    for make in cases:
        case = make()
        results[case[0]] = measure(case, args.repeats, grid_class, args.explain)
        keras.backend.clear_session()

    print(f"\nTensorFlow 'triggered tf.function retracing' warnings during this run: {RETRACING.count} "
          "(kept off this output; a notebook shows them)")
    print("\nkeract on Keras 3:", keract_check(args.keract_python))
    print(f"\nsummary ({time.perf_counter() - start:.0f} s; {machine_note()}):")
    for name, ratios in results.items():
        one, strip = ratios["one layer"], ratios["depth strip"]
        print(f"  {verdict(one, ONE_LAYER_TARGET)}  {name}: one layer {one:.2f}x floor (target <= {ONE_LAYER_TARGET}x)")
        print(f"  {verdict(strip, STRIP_TARGET)}  {name}: depth strip {strip:.2f}x floor (target <= {STRIP_TARGET}x)"
              f"; naive every-layer fetch {ratios['naive (views)']:.2f}x as views, "
              f"{ratios['naive (copied)']:.2f}x copied")


if __name__ == "__main__":
    main()
