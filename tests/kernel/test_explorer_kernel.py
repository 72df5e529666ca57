"""The Explorer over the real Jupyter wire: its comm_open references the open panels' own widgets, a click sent to
the embedded grid as the browser sends it moves the Explorer's channel and starts the feature visualization's
render, an image chosen in the Explorer's strip sends new tiles and maps to the panels, and a bad value from the
page is refused with what was expected."""

import time

import pytest

BUILD = """
import keras, numpy as np
import cnnwidget as cw
keras.utils.set_random_seed(0)
inp = keras.Input((24, 24, 3))  # ReLUs: a linear model's saliency is the same for every image
x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv1")(inp)
x = keras.layers.Conv2D(10, 3, strides=2, padding="same", activation="relu", name="conv2")(x)
x = keras.layers.Dropout(0.2, name="drop")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x))
ex = cw.Explorer(model, np.random.default_rng(0).random((3, 24, 24, 3)),
                 panel_options={"featurevis": {"steps": 4, "size": 24},
                                "attribution": {"methods": ("saliency",), "curves": False}})
ex.wait(120)
ex
"""


@pytest.fixture
def ex(kns):
    kns.execute(BUILD, timeout=240)
    return kns, kns.model_id("ex")


def _until(kns, expr, want, timeout=60):
    deadline = time.monotonic() + timeout
    while (got := kns.eval(expr)) != want:
        assert time.monotonic() < deadline, f"{expr} is {got!r}, not {want!r}"
        time.sleep(0.1)


def test_the_explorer_opens_with_its_panels_as_widget_references(ex):
    kns, comm_id = ex
    state = kns.kernel.widget_state(comm_id)
    assert state["open_panels"] == ["activations", "featurevis", "attribution"]
    assert [p["name"] for p in state["available"]] == ["activations", "featurevis", "attribution", "uncertainty",
                                                       "robustness"]
    assert [row["path"] for row in state["layers"]] == ["conv1", "conv2", "gap", "drop", "out"]
    for name in state["open_panels"]:
        ref = state[f"{name}_panel"]
        assert ref == "IPY_MODEL_" + kns.model_id(f"ex.{name}_panel"), name
    assert state["uncertainty_panel"] is None  # made when opened
    assert len(state["thumbs"]) == 3 * 24 * 24 * 3


def test_a_click_on_the_grid_moves_the_explorer_and_renders_that_channel(ex):
    kns, comm_id = ex
    grid, fvw = kns.model_id("ex.activations_panel"), kns.model_id("ex.featurevis_panel")
    kns.kernel.send_update(grid, {"selected_channel": 4})  # as the browser sends a click
    _until(kns, "ex.channel", 4)
    kns.execute("ex.wait(120)", timeout=150)
    assert kns.kernel.widget_state(comm_id)["channel"] == 4  # the page's Explorer view hears of it
    meta = kns.kernel.widget_state(fvw)["images_meta"]
    assert meta["title"] == "channel('conv1', 4)" and meta["final"]
    assert len(kns.kernel.widget_state(fvw)["pixels"]) == 24 * 24 * 3


def test_an_image_picked_in_the_strip_sends_the_panels_new_tiles_and_maps(ex):
    kns, comm_id = ex
    grid, am = kns.model_id("ex.activations_panel"), kns.model_id("ex.attribution_panel")
    before = kns.kernel.widget_state(grid)["tiles"], kns.kernel.widget_state(am)["map_bytes"]
    kns.kernel.send_update(comm_id, {"image": 2})  # a thumbnail clicked
    kns.execute("ex.wait(120)", timeout=150)
    assert kns.eval("[ex.image, ex.activations_panel.image_index, ex.attribution_panel.image_index]") == [2, 2, 2]
    after = kns.kernel.widget_state(grid)["tiles"], kns.kernel.widget_state(am)["map_bytes"]
    assert after[0] != before[0] and after[1] != before[1]
    assert kns.kernel.widget_state(am)["maps_meta"]["image_index"] == 2


def test_a_bad_value_from_the_page_is_refused_with_what_was_expected(ex):
    kns, comm_id = ex
    kns.kernel.send_update(comm_id, {"channel": 99})
    state = kns.kernel.widget_state(comm_id)
    assert state["channel"] == 0
    assert state["error"] == "channel must be between 0 and 5 for 'conv1' (or -1 for none); got 99."
    kns.kernel.send_update(comm_id, {"open_panels": ["attention"]})
    assert "'attention' is not a panel of this Explorer" in kns.kernel.widget_state(comm_id)["error"]
    assert kns.eval("ex.open_panels") == ["activations", "featurevis", "attribution"]
