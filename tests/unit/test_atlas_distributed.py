"""core.atlas.collect under a MirroredStrategy over two logical CPU devices gives the same sample (images, positions,
vectors, labels, predictions) as a one-device pass: positions and keys are hashed from the global image index, so
the replicas' split of a batch changes nothing. A fresh interpreter: logical devices are fixed when TensorFlow
starts."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.processes  # fresh interpreters of its own: run in the kernels group (tests/run_all.py)

SCRIPT = """
import sys
import numpy as np, tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from cnnwidget.core import ModelProbe, atlas
keras.utils.set_random_seed(4)
inp = keras.Input((12, 12, 3))
x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="conv")(inp)
x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
probe = ModelProbe(keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x)))
rng = np.random.default_rng(1)
images, labels = rng.random((45, 12, 12, 3), dtype=np.float32), rng.integers(0, 3, 45)
ds = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
out = {}
for name, s in (("two", strategy), ("one", None)):
    a = atlas.collect(probe, ds, "conv", samples=20, per_image=2, thumbnail=4, seed=3, strategy=s)
    for field in ("vectors", "image_index", "position", "label", "predicted", "thumbnails"):
        out[name + "." + field] = getattr(a, field)
    out[name + ".images"] = np.array(a.images)
np.savez(sys.argv[1], **out)
"""


@pytest.mark.slow
def test_a_mirrored_strategy_over_two_devices_gives_the_one_device_sample(tmp_path):
    path = tmp_path / "out.npz"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True, text=True, env=env,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = np.load(path)
    assert int(got["two.images"]) == int(got["one.images"]) == 45
    for field in ("image_index", "position", "label", "predicted", "thumbnails"):
        np.testing.assert_array_equal(got["two." + field], got["one." + field], err_msg=field)
    np.testing.assert_allclose(got["two.vectors"], got["one.vectors"], rtol=1e-5, atol=1e-6)
    assert got["one.vectors"].shape == (20, 5)
