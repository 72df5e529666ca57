"""A caller that only wants options checked (a widget, before it queues the work) passes a cancel event already
set: every method that takes ``cancel`` then checks its options and stops before its first pass, with no trace.
(AttributionMap's constructor did this and still ran a first forward pass: 37 s on MobileNetV3Small under load.)"""

import inspect
import threading

import keras
import numpy as np
import pytest

from cnnwidget.core import ModelProbe, OptionError
from cnnwidget.core import attribution as attr

CANCELLABLE = sorted(name for name, fn in attr.METHODS.items() if "cancel" in inspect.signature(fn).parameters)
BAD = {"smoothgrad": {"samples": 0}, "integrated_gradients": {"steps": 0}, "score_cam": {"channels": 0},
       "occlusion": {"stride": 0}, "rise": {"keep": 2.0}, "lime": {"samples": 0}, "kernel_shap": {"samples": 1}}


def _model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax")(x))


@pytest.fixture(scope="module")
def model():
    return _model()


def _stopped():
    event = threading.Event()
    event.set()
    return event


def test_the_slow_methods_all_take_cancel():
    assert set(BAD) <= set(CANCELLABLE)


@pytest.mark.parametrize("method", CANCELLABLE)
def test_a_set_cancel_stops_before_any_trace(model, method):
    probe = ModelProbe(model)
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    with pytest.raises(attr.Cancelled):
        attr.METHODS[method](probe, x, cancel=_stopped())
    assert probe.trace_count == 0


@pytest.mark.parametrize("method", sorted(BAD))
def test_a_bad_option_is_refused_before_the_cancel_takes_effect(model, method):
    probe = ModelProbe(model)
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    with pytest.raises(OptionError):
        attr.METHODS[method](probe, x, cancel=_stopped(), **BAD[method])
    assert probe.trace_count == 0


@pytest.mark.parametrize("curve", [attr.deletion, attr.insertion])
def test_the_curves_check_their_options_without_a_pass(model, curve):
    probe = ModelProbe(model)
    x = np.random.default_rng(0).random((1, 16, 16, 3), dtype=np.float32)
    with pytest.raises(attr.Cancelled):
        curve(probe, x, np.zeros((1, 16, 16), np.float32), cancel=_stopped())
    with pytest.raises(OptionError):
        curve(probe, x, np.zeros((1, 16, 16), np.float32), steps=0, cancel=_stopped())
    assert probe.trace_count == 0
