"""The model forms a user brings, beyond test_probe's: each works, or is refused with what to do.

Free-size inputs through every attribution method (at two sizes, on one probe) and AttributionMap; a two-output
model; a channels_first layer; a dense-only model and a subclassed one under the training monitor; an unbuilt
Sequential given a second size; activations keyed by the name asked for inside a nested model; a preprocess
that cannot be traced. Small random models: these are about forms, not values.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget.core import ImageError, ModelError, OptionError
from cnnwidget.core import attribution as attr
from cnnwidget.core import diagnostics
from cnnwidget.core.errors import CnnWidgetWarning

L = keras.layers
RNG = np.random.default_rng(0)

# Cheap settings for the sampling methods: the test is about shapes, not quality.
CHEAP = {"smoothgrad": {"samples": 4}, "integrated_gradients": {"steps": 4}, "rise": {"masks": 16},
         "lime": {"samples": 16}, "kernel_shap": {"samples": 16}, "occlusion": {"patch": 16, "stride": 16}}


def images(n, h, w, c=3):
    return RNG.random((n, h, w, c), dtype=np.float32)


@pytest.fixture(scope="module")
def free_size():
    """A model that takes images of any size (keras.Input((None, None, 3)))."""
    inp = keras.Input((None, None, 3))
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = L.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(x)
    out = L.Dense(3, activation="softmax", name="out")(L.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out, name="free")


@pytest.fixture(scope="module")
def free_probe(free_size):
    return cw.ModelProbe(free_size)


@pytest.fixture(scope="module")
def two_outputs():
    inp = keras.Input((32, 32, 3))
    x = L.GlobalAveragePooling2D(name="gap")(L.Conv2D(4, 3, name="conv")(inp))
    return keras.Model(inp, [L.Dense(10, name="classes")(x), L.Dense(1, name="aux")(x)], name="two")


# -- free-size inputs ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", list(attr.METHODS))
def test_every_attribution_method_maps_free_size_images_at_their_own_size(free_probe, method):
    fn = attr.METHODS[method]
    first = fn(free_probe, images(2, 48, 48), **CHEAP.get(method, {}))
    second = fn(free_probe, images(1, 40, 56), **CHEAP.get(method, {}))  # same probe, another size
    assert first.shape == (2, 48, 48) and second.shape == (1, 40, 56)
    assert np.isfinite(first).all() and np.isfinite(second).all()


@pytest.mark.slow
def test_attribution_map_with_its_default_methods_works_on_a_free_size_model(free_size):
    am = cw.AttributionMap(free_size, images(2, 48, 48), class_names=["a", "b", "c"])
    try:
        job = am.compute()
        if job is not None:
            job.wait()
        assert am.maps and all(m.shape == (48, 48) for m in am.maps.values())
        assert am.probe.class_names == ["a", "b", "c"]
    finally:
        am.close()


# -- several outputs -------------------------------------------------------------------------------------------

def test_a_two_output_model_explains_the_first_output_and_says_so(two_outputs):
    with pytest.warns(CnnWidgetWarning, match="has 2 outputs .*uses the first, 'classes'.*output="):
        probe = cw.ModelProbe(two_outputs)
    assert probe.num_classes == 10
    assert probe.predict(images(2, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("output", [1, "aux"])
def test_output_picks_one_output_of_a_multi_output_model_by_index_or_name(two_outputs, output):
    probe = cw.ModelProbe(two_outputs, output=output)
    assert probe.num_classes == 1
    assert attr.saliency(probe, images(2, 32, 32)).shape == (2, 32, 32)
    assert attr.grad_cam(probe, images(2, 32, 32)).shape == (2, 32, 32)


def test_an_output_that_does_not_exist_is_refused_with_the_outputs_and_a_suggestion(two_outputs):
    with pytest.raises(OptionError, match=r"output='auxx' is not an output of 'two'.*'aux' \(1,\).*Did you mean"):
        cw.ModelProbe(two_outputs, output="auxx")


def test_widgets_take_a_multi_output_model(two_outputs):
    with pytest.warns(CnnWidgetWarning, match="has 2 outputs"):
        grid = cw.ActivationGrid(two_outputs, images(2, 32, 32))
    grid.close()


# -- refused forms ---------------------------------------------------------------------------------------------

def test_a_channels_first_layer_is_refused_with_what_to_do():
    inp = keras.Input((3, 32, 32))
    x = L.Conv2D(8, 3, data_format="channels_first", name="cf_conv")(inp)
    model = keras.Model(inp, L.Dense(3)(L.Flatten()(x)), name="cf")
    with pytest.raises(ModelError, match=r"data_format='channels_first': cf_conv \(Conv2D\).*channels-last"):
        cw.ModelProbe(model)


def test_a_preprocess_that_cannot_be_traced_is_refused_at_construction(free_size):
    with pytest.raises(OptionError, match=r"preprocess could not run inside a compiled pass: AttributeError.*numpy"):
        cw.ModelProbe(free_size, preprocess=lambda x: x.numpy() * 2)


def test_an_unbuilt_sequential_says_its_size_was_fixed_by_the_first_images():
    model = keras.Sequential([L.Conv2D(4, 3, name="conv"), L.GlobalAveragePooling2D(), L.Dense(3)])
    probe = cw.ModelProbe(model)
    assert probe.predict(images(1, 20, 20)).shape == (1, 3)
    with pytest.raises(ImageError, match=r"first images given to this probe fixed its input size to 20x20.*"
                                         r"keras\.Input\(\(None, None, 3\)\)"):
        probe.predict(images(1, 30, 30))


# -- nested models ---------------------------------------------------------------------------------------------

def test_activations_are_keyed_by_the_name_or_path_asked_for_inside_a_nested_model():
    inner_in = keras.Input((16, 16, 3))
    inner = keras.Model(inner_in, L.Conv2D(4, 3, name="Conv1")(inner_in), name="base")
    inp = keras.Input((16, 16, 3))
    model = keras.Model(inp, L.Dense(2)(L.GlobalAveragePooling2D()(inner(inp))), name="outer")
    acts = cw.ModelProbe(model).activations(images(1, 16, 16), ["Conv1", "base/Conv1"])
    assert list(acts) == ["Conv1", "base/Conv1"]
    np.testing.assert_array_equal(acts["Conv1"], acts["base/Conv1"])


# -- the training monitor on any model -------------------------------------------------------------------------

def _fit(model, x, y, callback):
    model.fit(x, y, epochs=1, batch_size=16, callbacks=[callback], verbose=0)


@pytest.mark.slow
def test_the_monitor_measures_a_dense_only_model_and_finds_its_vanishing_gradients():
    layers = [keras.Input((20,))] + [L.Dense(16, activation="sigmoid") for _ in range(19)]
    model = keras.Sequential(layers + [L.Dense(3, activation="softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy")
    x, y = RNG.random((64, 20), dtype=np.float32), RNG.integers(0, 3, 64)
    monitor = cw.TrainingMonitor((x[:32], y[:32]), every=2)
    try:
        _fit(model, x, y, monitor.callback)  # raised ModelError: no spatial layer, inside fit, before
        kinds = {w.kind for w in monitor.warnings}
        assert "vanishing_gradients" in kinds and "monitor_error" not in kinds
        assert monitor.history["grad_norm"].shape[1] == 20  # one column per Dense layer
    finally:
        monitor.close()


@pytest.mark.slow
def test_the_monitor_never_breaks_fit_its_own_failure_becomes_a_warning():
    class Subclassed(keras.Model):  # its layers cannot be reached: the probe pass cannot be built
        def __init__(self):
            super().__init__(name="sub")
            self.dense = L.Dense(3)

        def call(self, x):
            return self.dense(x)

    model = Subclassed()
    model.compile("sgd", "mse")
    callback = diagnostics.DiagnosticsCallback(every=1, verbose=0)
    _fit(model, RNG.random((32, 4), dtype=np.float32), RNG.random((32, 3), dtype=np.float32), callback)
    (warning,) = callback.warnings
    assert warning.kind == "monitor_error" and "subclassed model" in warning.message
    assert len(callback.history["batch_loss"]) == 2  # losses are still recorded


# -- the display range a model declares ------------------------------------------------------------------------

def _rescaled(scale, offset=0.0):
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Rescaling(scale, offset, name="rescale")(inp)
    x = keras.layers.Conv2D(4, 3, name="conv")(x)
    return keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("scale, offset", [(1 / 255, 0.0), (1 / 127.5, -1.0)])
def test_a_leading_rescaling_of_0_255_pixels_sets_the_input_range(scale, offset):
    probe = cw.ModelProbe(_rescaled(scale, offset))
    assert probe.input_range == (0.0, 255.0) and "'rescale'" in probe.range_source and "255" in repr(probe)


def test_a_given_range_a_preprocess_or_another_scale_keep_0_1():
    assert cw.ModelProbe(_rescaled(1 / 255), input_range=(0, 1)).input_range == (0.0, 1.0)
    assert cw.ModelProbe(_rescaled(1 / 255), preprocess=lambda x: x * 255).input_range == (0.0, 1.0)
    assert cw.ModelProbe(_rescaled(2.0)).input_range == (0.0, 1.0)
