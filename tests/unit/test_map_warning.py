"""attr.map_warning: a map that cannot be trusted says why, in plain words; a real map says nothing."""

import numpy as np
import pytest

from cnnwidget.core import attribution as attr


def test_a_map_with_structure_has_no_warning():
    m = np.zeros((8, 8), np.float32)
    m[2:4, 2:4] = 0.3
    assert attr.map_warning(m, "gradient_x_input") == ""


def test_nan_values_are_named_with_their_count():
    m = np.ones((4, 4), np.float32)
    m[0, :3] = np.nan
    assert attr.map_warning(m, "saliency").startswith("3 of its 16 values are NaN or infinite")


def test_a_map_with_one_value_everywhere_ranks_nothing():
    assert "one value everywhere" in attr.map_warning(np.full((4, 4), 0.25, np.float32), "rise")
    assert "one value everywhere" in attr.map_warning(np.zeros((4, 4), np.float32), "grad_cam")


def test_an_untrained_models_tiny_map_is_negligible_whatever_its_pattern():
    rng = np.random.default_rng(0)
    m = (rng.random((64, 64)) * 1e-12).astype(np.float32)  # what an untrained MobileNetV2 gave
    assert "negligible" in attr.map_warning(m, "gradient_x_input")
    assert attr.map_warning(m * 1e7, "gradient_x_input") == ""  # the same pattern at a real size


def test_gradient_maps_are_sized_in_score_units_through_the_input_span():
    m = np.zeros((10, 10), np.float32)
    m[0, 0] = 1e-6  # total departure 1e-6 per unit of input
    assert "negligible" in attr.map_warning(m, "saliency", input_span=0.5)
    assert attr.map_warning(m, "saliency", input_span=255.0) == ""


@pytest.mark.slow  # a model traced for saliency: 1-3 s
def test_the_attribution_widget_puts_the_warning_under_a_map_of_a_model_blind_to_its_input():
    import keras

    import cnnwidget as cw

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, kernel_initializer="zeros", name="conv")(inp)  # sees nothing of the image
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(2, name="out")(x))
    w = cw.AttributionMap(model, np.random.default_rng(0).random((2, 8, 8, 3)), ["saliency"], curves=False)
    try:
        assert w.wait(120) and w.error == "", w.error
        assert "one value everywhere" in w.scores[0]["warning"]
    finally:
        w.close()
