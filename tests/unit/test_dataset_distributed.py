"""core.dataset.channel_examples under tf.distribute: a MirroredStrategy over two logical CPU devices, and two local
worker processes under MultiWorkerMirroredStrategy, give the same top-k (indices, scores, patches) and statistics as
a one-device pass. Both need fresh interpreters: logical devices and collective ops are fixed when TensorFlow starts.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["conv1", "conv2", "gap"]

pytestmark = pytest.mark.processes  # fresh interpreters of its own: run in the kernels group (tests/run_all.py)

# Shared by both scripts: the model and data come from files the test wrote; results go to an npz.
COMMON = """
import keras, numpy as np, tensorflow as tf
from cnnwidget.core import ModelProbe, dataset

def run(strategy, model_path, data_path):
    model = keras.saving.load_model(model_path, compile=False)
    d = np.load(data_path)
    ds = tf.data.Dataset.from_tensor_slices((d["images"], d["labels"])).batch(8)
    # dense_patch=8: the gap layer's whole-image patches are resized on the workers too (16 -> 8 px)
    res = dataset.channel_examples(ModelProbe(model), ds, %r, k=5, bins=16, strategy=strategy, dense_patch=8)
    out = {"images": np.array(res.images)}
    for key, got in res.layers.items():
        for name in ("indices", "scores", "patches", "mean", "std", "min", "max", "zero_fraction", "histogram",
                     "below", "above", "class_mean", "class_counts"):
            value = getattr(got, name)
            if value is not None:
                out[key + "." + name] = value
    return out
""" % (LAYERS,)

MIRRORED = COMMON + """
import sys
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
np.savez(sys.argv[3], **run(strategy, sys.argv[1], sys.argv[2]))
np.savez(sys.argv[4], **run(None, sys.argv[1], sys.argv[2]))
"""

WORKER = """
import sys
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()  # from TF_CONFIG, before any other TensorFlow work
""" + COMMON + """
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
np.savez(sys.argv[3], **run(strategy, sys.argv[1], sys.argv[2]))
"""


def _files(tmp_path, n=45):
    import keras

    keras.utils.set_random_seed(11)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    x = keras.layers.MaxPooling2D(2, name="pool1")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x))
    model_path, data_path = tmp_path / "model.keras", tmp_path / "data.npz"
    model.save(model_path)
    rng = np.random.default_rng(2)
    np.savez(data_path, images=rng.random((n, 16, 16, 3), dtype=np.float32), labels=rng.integers(0, 3, n))
    return str(model_path), str(data_path)


def _env(**extra):
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": "",
            **extra}


def _assert_same(got, want, n):
    assert int(got["images"]) == int(want["images"]) == n
    for key in want.files:
        if key.endswith(("indices", "class_counts", "histogram", "below", "above")):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)
        elif key.endswith("patches"):
            np.testing.assert_array_equal(got[key], want[key], err_msg=key)  # NaN where outside: equal as NaN
        else:
            np.testing.assert_allclose(got[key], want[key], rtol=1e-5, atol=1e-6, err_msg=key)


@pytest.mark.slow
def test_a_mirrored_strategy_over_two_devices_equals_a_one_device_pass(tmp_path):
    model_path, data_path = _files(tmp_path)
    two, one = tmp_path / "two.npz", tmp_path / "one.npz"
    run = subprocess.run([sys.executable, "-c", MIRRORED, model_path, data_path, str(two), str(one)],
                         capture_output=True, text=True, env=_env(), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    _assert_same(np.load(two), np.load(one), 45)


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_under_multi_worker_mirrored_strategy_merge_to_a_one_process_pass(tmp_path):
    model_path, data_path = _files(tmp_path)
    workers = [f"localhost:{p}" for p in _free_ports(2)]
    procs = []
    for i in range(2):
        config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, model_path, data_path, str(tmp_path / f"w{i}.npz")],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=_env(TF_CONFIG=config)))
    try:
        outs = [p.communicate(timeout=240) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    # The one-process pass, here (no strategy), on the same saved model and data.
    import keras
    import tensorflow as tf

    from cnnwidget.core import ModelProbe, dataset

    d = np.load(data_path)
    model = keras.saving.load_model(model_path, compile=False)
    ref = dataset.channel_examples(ModelProbe(model), tf.data.Dataset.from_tensor_slices(
        (d["images"], d["labels"])).batch(8), LAYERS, k=5, bins=16, dense_patch=8)
    want = {"images": np.array(ref.images)}
    for key, got in ref.layers.items():
        for name in ("indices", "scores", "patches", "mean", "std", "min", "max", "zero_fraction", "histogram",
                     "below", "above", "class_mean", "class_counts"):
            if getattr(got, name) is not None:
                want[f"{key}.{name}"] = getattr(got, name)
    np.savez(tmp_path / "ref.npz", **want)
    for i in range(2):  # every worker holds the whole merged result
        _assert_same(np.load(tmp_path / f"w{i}.npz"), np.load(tmp_path / "ref.npz"), 45)
