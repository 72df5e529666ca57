"""Fixtures shared by the unit tests (in process, no kernel, no browser)."""

import gc

import keras
import pytest


@pytest.fixture(scope="session")
def grid_model():
    """40x40x3 -> conv1 (8) -> relu1 -> conv2 (100, stride 2) -> gap -> out (3, softmax), seeded: a layer with more
    channels than a page of tiles, shared by the activation-grid and wire tests."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((40, 40, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(inp)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(100, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x))


@pytest.fixture(scope="session")
def demo_probe():
    """A ModelProbe of the shipped demo model, shared read-only by the quality tests of several files, so its
    compiled passes and feature-visualization steps are traced once per session. A test that counts traces,
    changes the model or needs a cold probe makes its own."""
    from cnnwidget import demo
    from cnnwidget.core import ModelProbe

    return ModelProbe(demo.load_model())


@pytest.fixture(scope="session")
def default_render_sets():
    """{layer: channels} of the demo model rendered by ``default_render`` for the quality checks: every channel of
    block1 and block2, every 4th of block3, every 8th of block4, one render of up to 32 images each. Judged by
    test_featurevis_beats_data.py (each at least as strong as the best data image) and test_featurevis_quality.py
    (how many reach 10x their data-set mean), so the four renders are made once."""
    return {"block1_relu": range(0, 16), "block2_relu": range(0, 32), "block3_relu": range(0, 64, 4),
            "block4_relu": range(0, 128, 8)}


@pytest.fixture(scope="session")
def default_render(demo_probe):
    """``default_render(layer, channels)``: ``fv.render(demo_probe, fv.channels(layer, channels))`` with every other
    option at its default (256 steps, seed 0), made the first time it is asked for and kept for the session (each
    took 20-60 s on 2 cores, and two files judge the same renders). Read-only: do not write into the images."""
    from cnnwidget.core import featurevis as fv

    made = {}

    def get(layer, channels):
        key = (layer, tuple(int(c) for c in channels))
        if key not in made:
            images = fv.render(demo_probe, fv.channels(layer, list(key[1])))
            images.setflags(write=False)
            made[key] = images
        return made[key]

    return get


@pytest.fixture(scope="module")
def older_objects_set_aside():
    """For modules whose tests call gc.collect() often (leak checks): gc.collect() walks every object the process
    holds, ~300,000 once TensorFlow and Keras are imported, 0.3 CPU-s a call. What is alive before the module's first
    test is set aside (gc.freeze) for the module, so each collection walks only what the tests made (~5 ms). A leak
    still shows: an older object that refers to a new one (a module-level list keeping a probe) keeps it alive, as
    before; gc.unfreeze() at the end, then what is still alive is set aside again, as tests/conftest.py sets aside
    what is alive after collection for the whole run (the module's own objects are garbage by then: this fixture
    is set up first and torn down last of the module's). Use with
    ``pytestmark = pytest.mark.usefixtures("older_objects_set_aside")``."""
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()
    gc.collect()
    gc.freeze()
