"""A keras.applications classifier gets ImageNet's 1000 class names from the copy shipped in the package (no
download); any other model keeps its index names, and names given win."""

import keras
import pytest

from cnnwidget import ModelProbe
from cnnwidget.core.probe import imagenet_class_names


def test_the_shipped_names_are_imagenets_in_keras_order():
    names = imagenet_class_names()
    assert len(names) == 1000 and len(set(names)) >= 998  # two "crane"s and two "maillot"s, as in Keras' index
    assert (names[0], names[1], names[817], names[999]) == ("tench", "goldfish", "sports_car", "toilet_tissue")


def _head(units, name):
    inp = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))
    return keras.Model(inp, keras.layers.Dense(units, activation="softmax", name=name)(x))


def test_a_1000_way_head_named_predictions_gets_imagenet_names_and_says_so():
    probe = ModelProbe(_head(1000, "predictions"))
    assert probe.class_source == "imagenet" and probe.class_names[:2] == ["tench", "goldfish"]
    assert "ImageNet class names" in repr(probe)


@pytest.mark.parametrize("units, name", [(1000, "logits"), (10, "predictions")])
def test_other_heads_keep_their_index_names(units, name):
    probe = ModelProbe(_head(units, name))
    assert probe.class_source == "index" and probe.class_names[:2] == ["0", "1"]


def test_names_given_win():
    probe = ModelProbe(_head(1000, "predictions"), class_names=[f"c{i}" for i in range(1000)])
    assert probe.class_source == "given" and probe.class_names[0] == "c0"


@pytest.mark.slow
def test_a_keras_application_gets_imagenet_names():
    model = keras.applications.MobileNetV2(input_shape=(96, 96, 3), weights=None)
    assert ModelProbe(model).class_names[1] == "goldfish"
