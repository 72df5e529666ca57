"""How long feature visualization takes per step, against the floor of a hand-written compiled step, and peers.

    .venv/bin/python benchmarks/featurevis.py [--steps 64 256] [--repeats 3] [--peers] [--only ours|peers]

Workload (issue 3), the same for everyone: keras.applications.MobileNetV2(weights=None) built for 128x128 inputs
(display range [0, 1], preprocess x * 2 - 1), layer block_6_expand_relu, channel 0, 128 px images, 64 and 256 steps.
Everything is timed in this run, interleaved, median of repeats after one warm-up (_timing.py); per-step figures
are a whole call divided by its steps, so set-up and the final read-out count.

  floor    a hand-written tf.function step: sigmoid(pixels) -> preprocess -> sub-model to the layer -> -mean of the
           channel -> gradient -> keras Adam(0.05); the least any method can do per step
  ours     fv.render(probe, fv.channel(layer, 0), size=128, param=fv.fft_image(), transforms=fv.standard_transforms())
  batch16  fv.render(probe, fv.channels(layer, range(16)), ...) per channel (its time / 16)
  peers    (--peers) Xplique `optimize` (custom_shape 128, values_range (-1, 1), its standard transforms and FFT) and
           tf-keras-vis `ActivationMaximization` (its defaults, input_range (-1, 1)), each from PyPI in its own venv
           under benchmarks/_peers/ (made on first use; Xplique pins its own TensorFlow), run by a subprocess that
           also times the same floor in that venv; ratios are printed against both floors.

Targets: ours <= 1.3x floor per step; batch16 <= 0.7x floor per channel. Prints PASS/MISS; never fails the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

LAYER, CHANNEL, SIZE, BATCH = "block_6_expand_relu", 0, 128, 16
OURS_TARGET, BATCH_TARGET = 1.3, 0.7
PEERS = {  # name -> (packages to pip install into its venv, what is timed)
    "xplique": (["xplique"], "xplique.features_visualizations.optimize"),
    "tf-keras-vis": (["tf-keras-vis", "tensorflow"], "tf_keras_vis ActivationMaximization"),
}

# Runs inside a peer's venv: builds the same model, times the same floor and the peer's method, prints one JSON line.
PEER_SCRIPT = textwrap.dedent('''
    import json, os, statistics, sys, time
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    peer, layer, channel, size, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    steps_list = [int(s) for s in sys.argv[6].split(",")]
    model = tf.keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3))
    sub = tf.keras.Model(model.input, model.get_layer(layer).output)

    var = tf.Variable(tf.random.normal((1, size, size, 3)) * 0.01)
    opt = tf.keras.optimizers.Adam(0.05)

    @tf.function
    def floor_step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(sub(tf.sigmoid(var) * 2 - 1, training=False)[..., channel])
        opt.apply_gradients([(tape.gradient(loss, var), var)])
        return loss

    def floor_run(steps):  # the same compiled step every time, traced once in the warm-up
        for _ in range(steps):
            floor_step()
        return var.numpy()

    if peer == "xplique":
        import xplique
        from xplique.features_visualizations import Objective, optimize
        version = xplique.__version__
        objective = Objective.channel(model, layer, channel)

        def peer_run(steps):
            optimize(objective, nb_steps=steps, custom_shape=(size, size), values_range=(-1, 1))
    else:
        from importlib.metadata import version as _version
        from tf_keras_vis.activation_maximization import ActivationMaximization
        from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer
        version = _version("tf-keras-vis")
        am = ActivationMaximization(model, model_modifier=ExtractIntermediateLayer(layer), clone=True)

        def peer_run(steps):
            am(lambda out: tf.reduce_mean(out[..., channel], axis=(1, 2)), steps=steps, input_range=(-1, 1))

    def median(fn, steps):
        fn(steps)  # warm-up: traces and builds
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn(steps)
            times.append(time.perf_counter() - start)
        return statistics.median(times) / steps

    out = {"peer": peer, "version": version, "tensorflow": tf.__version__, "floor": {}, "peer_per_step": {}}
    for steps in steps_list:
        out["floor"][steps] = median(floor_run, steps)
        out["peer_per_step"][steps] = median(peer_run, steps)
    print("RESULT " + json.dumps(out))
''')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peers", action="store_true", help="also time Xplique and tf-keras-vis (venvs made on demand)")
    parser.add_argument("--only", choices=["ours", "peers"], default=None)
    args = parser.parse_args()

    from _timing import machine_note

    print(f"featurevis benchmark: MobileNetV2(weights=None, input 128x128), {LAYER} channel {CHANNEL}, {SIZE} px; "
          f"{machine_note()}")
    floors = {}
    if args.only != "peers":
        floors = run_ours(args.steps, args.repeats)
    if args.peers or args.only == "peers":
        for name in PEERS:
            run_peer(name, args.steps, args.repeats, floors)


def run_ours(steps_list, repeats) -> dict:
    import keras
    import tensorflow as tf

    from _timing import interleaved_medians, verdict
    from cnnwidget.core import ModelProbe
    from cnnwidget.core import featurevis as fv

    model = keras.applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
    probe = ModelProbe(model, preprocess=lambda x: x * 2.0 - 1.0)
    sub = keras.Model(model.input, model.get_layer(LAYER).output)
    var = tf.Variable(tf.random.normal((1, SIZE, SIZE, 3)) * 0.01)
    opt = keras.optimizers.Adam(0.05)

    @tf.function
    def floor_step():
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(sub(tf.sigmoid(var) * 2.0 - 1.0, training=False)[..., CHANNEL])
        opt.apply_gradients([(tape.gradient(loss, var), var)])
        return loss

    one, batch = fv.channel(LAYER, CHANNEL), fv.channels(LAYER, list(range(BATCH)))
    common = dict(size=SIZE, param=fv.fft_image(decorrelate=True), transforms=fv.standard_transforms())
    floors = {}
    for steps in steps_list:
        def floor_run():
            for _ in range(steps):
                floor_step()
            return var.numpy()  # the images leave the step, as render's do

        fns = {"floor": floor_run,
               "ours": lambda: fv.render(probe, one, steps=steps, **common),
               "batch16": lambda: fv.render(probe, batch, steps=steps, **common)}
        start = time.perf_counter()
        fv.render(probe, one, steps=1, **common), fv.render(probe, batch, steps=1, **common)
        first = time.perf_counter() - start
        traces = fv.trace_count()
        t = interleaved_medians(fns, warmup=1, repeats=repeats)
        floor, ours, per_channel = t["floor"] / steps, t["ours"] / steps, t["batch16"] / steps / BATCH
        floors[steps] = floor
        print(f"\n{steps} steps (first render of each, tracing included: {first:.1f} s; traces while timing: "
              f"{fv.trace_count() - traces})")
        print(f"  floor            {floor * 1e3:7.2f} ms/step")
        print(f"  ours             {ours * 1e3:7.2f} ms/step     {ours / floor:5.2f}x floor  "
              f"(target <= {OURS_TARGET}x: {verdict(ours / floor, OURS_TARGET)})")
        print(f"  batch of {BATCH}      {per_channel * 1e3:7.2f} ms/channel-step {per_channel / floor:5.2f}x floor  "
              f"(target <= {BATCH_TARGET}x: {verdict(per_channel / floor, BATCH_TARGET)})")
    return floors


def run_peer(name: str, steps_list, repeats, floors: dict):
    packages, what = PEERS[name]
    python = ensure_venv(name, packages)
    if python is None:
        return
    cmd = [str(python), "-c", PEER_SCRIPT, name, LAYER, str(CHANNEL), str(SIZE), str(repeats),
           ",".join(str(s) for s in steps_list)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        print(f"\n{name}: the peer run failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        return
    result = json.loads(lines[-1][len("RESULT "):])
    print(f"\n{name} {result['version']} ({what}), TensorFlow {result['tensorflow']}")
    for steps in steps_list:
        peer, own_floor = result["peer_per_step"][str(steps)], result["floor"][str(steps)]
        ours = f"{peer / floors[steps]:5.2f}x our floor, " if steps in floors else ""
        print(f"  {steps:4d} steps  {peer * 1e3:7.2f} ms/step  {ours}{peer / own_floor:5.2f}x the floor in its venv "
              f"({own_floor * 1e3:.2f} ms/step)")


def ensure_venv(name: str, packages: list[str]):
    """The python of benchmarks/_peers/<name>, made with the packages from PyPI if it is not there yet."""
    root = HERE / "_peers" / name
    python = root / "bin" / "python"
    marker = root / ".installed"
    if marker.exists():
        return python
    print(f"\n{name}: making {root} and installing {' '.join(packages)} from PyPI (once) ...", flush=True)
    for cmd in ([sys.executable, "-m", "venv", str(root)],
                [str(python), "-m", "pip", "install", "--quiet", *packages]):
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: could not install ({' '.join(cmd[:4])} ...): {proc.stderr[-1500:]}")
            return None
    marker.write_text(" ".join(packages) + "\n")
    return python


if __name__ == "__main__":
    main()
