"""Fixtures shared by the unit tests (in process, no kernel, no browser)."""

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
