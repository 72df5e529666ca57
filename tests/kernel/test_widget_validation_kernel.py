"""Values sent by the page are checked by the same rules as values set from Python, over the real wire, for every
widget: a wrong type, an out-of-range value, an unknown option or a change to a Python-owned trait leaves the
kernel's state as it was, puts the page back on it, shows why in the widget, logs nothing; the next valid update
works."""

import pytest

from harness.kernel import msg_type

BUILD = """
import keras, numpy as np
import cnnwidget as cw
keras.utils.set_random_seed(0)
inp = keras.Input((24, 24, 3))
x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inp)
x = keras.layers.ReLU(name="relu1")(x)
x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
model = keras.Model(inp, out)
model.compile("adam", "sparse_categorical_crossentropy")
rng = np.random.default_rng(0)
images, labels = rng.random((12, 24, 24, 3)).astype("float32"), rng.integers(0, 3, 12)
probe = cw.ModelProbe(model)
widgets = {
    "grid": cw.ActivationGrid(probe, images[:2]),
    "filters": cw.FilterGrid(probe),
    "featurevis": cw.FeatureVisualization(probe, "relu1", 1, steps=4),
    "attribution": cw.AttributionMap(probe, images[:2], ("saliency", "grad_cam"), curve_steps=2),
    "similarity": cw.LayerSimilarity(probe, data=images, layers=["conv1", "conv2"], batch_size=4),
    "monitor": cw.TrainingMonitor((images[:4], labels[:4]), every=1, max_rate=0),
}
model.fit(images, labels, epochs=1, batch_size=6, verbose=0, callbacks=[widgets["monitor"].callback])
for w in widgets.values():
    w.wait()
"""

# widget: [(update from the page, the trait it touches, words of the message)], then a valid update
BAD = {
    "grid": [
        ({"selected_channel": "3"}, "selected_channel", "must be an int"),
        ({"selected_channel": 3.5}, "selected_channel", "must be an int"),
        ({"layer": 5}, "layer", "must be a unicode string"),
        ({"image_index": 99}, "image_index", "between 0 and 1"),
        ({"selected_channel": -5}, "selected_channel", "between 0 and 5"),
        ({"colormap": "jet"}, "colormap", "any of"),
        ({"overlay_opacity": 1e9}, "overlay_opacity", "between 0.0 and 1.0"),
        ({"overlay_opacity": "x"}, "overlay_opacity", "must be a float"),
        ({"n_images": 10**9}, "n_images", "set by the widget"),
        ({"running": True}, "running", "set by the widget"),
        ({"layer": "conv2", "image_index": 7}, "layer", "between 0 and 1"),  # nothing half-applied
    ],
    "filters": [
        ({"page": "x"}, "page", "must be an int"),
        ({"page": 99}, "page", "page must be in"),
        ({"show": "weights"}, "show", "any of"),
        ({"layer": "relu1"}, "layer", "not a 2-D convolution"),
        ({"n_pages": 5}, "n_pages", "set by the widget"),
    ],
    "featurevis": [
        ({"channels": ["a"]}, "channels", "must be a list"),
        ({"channels": [99]}, "channels", "valid channels are 0 to 5"),
        ({"steps": 0}, "steps", "steps must be"),
        ({"mode": "x"}, "mode", "any of"),
        ({"learning_rate": -1.0}, "learning_rate", "positive number"),
        ({"running": True}, "running", "set by the widget"),
        ({"gallery_pages": 9}, "gallery_pages", "set by the widget"),
    ],
    "attribution": [
        ({"target": "x"}, "target", "must be an int"),
        ({"target": 1.5}, "target", "must be an int"),
        ({"target": 99}, "target", "out of range"),
        ({"image_index": -1}, "image_index", "out of range"),
        ({"opacity": "x"}, "opacity", "must be a float"),
        ({"opacity": 1e9}, "opacity", "opacity must be a number in [0, 1]"),
        ({"colormap": "jet"}, "colormap", "colormap must be one of"),
        ({"sign": "up"}, "sign", "sign must be one of"),
        ({"running": True}, "running", "set by the widget"),
        ({"methods": ["lime"]}, "methods", "set by the widget"),
        ({"n_images": 10**9}, "n_images", "set by the widget"),
        ({"colormap": "viridis", "target": 42}, "colormap", "out of range"),  # nothing half-applied
    ],
    "similarity": [
        ({"layers": "conv1"}, "layers", "must be a list"),
        ({"layers": [5]}, "layers", "must be a list"),
        ({"layers": ["conv1", "nope"]}, "layers", "nope"),
        ({"running": True}, "running", "set by the widget"),
        ({"status": "done"}, "status", "set by the widget"),
    ],
    "monitor": [
        ({"histogram_step": "x"}, "histogram_step", "must be an int"),
        ({"histogram_step": 999}, "histogram_step", "histogram_step must be between 0 and"),
        ({"histogram_layer": "weights: nope"}, "histogram_layer", "histogram_layer must be one of"),
        ({"css_class": "x"}, "css_class", "set by the widget"),
    ],
}
GOOD = {"grid": ({"layer": "conv2", "selected_channel": 2}, "focus_meta"),
        "filters": ({"layer": "conv2", "show": "norms"}, "meta"),
        "featurevis": ({"layer": "conv2", "channels": [7]}, "channels"),
        "attribution": ({"target": 1}, "maps_meta"),
        "similarity": ({"layers": ["conv2", "gap"]}, "layers"),
        "monitor": ({"histogram_step": 0}, "histogram_step")}


@pytest.fixture(scope="module")
def built(kernel):
    kernel.ensure_alive()
    kernel.drain()
    ns = kernel.namespace()
    ns.execute(BUILD, timeout=240)
    ids = {name: ns.model_id(f"widgets[{name!r}]") for name in BAD}
    yield ns, ids
    ns.execute("for w in widgets.values():\n    w.close()")
    ns.close()


def _alarms(msgs) -> list:
    return [m for m in msgs if msg_type(m) == "error"
            or (msg_type(m) == "stream" and m["content"].get("name") == "stderr")]


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_values_from_the_page_are_refused_shown_and_put_back(built, name):
    ns, ids = built
    kernel, comm_id = ns.kernel, ids[name]
    for update, trait, words in BAD[name]:
        before = ns.eval(f"widgets[{name!r}].get_state({sorted(update)!r})")
        msgs = kernel.send_update(comm_id, update)
        after = ns.eval(f"widgets[{name!r}].get_state({sorted(update)!r})")
        page = kernel.widget_state(comm_id)
        assert after == before, (update, after)  # the kernel kept its state
        assert {k: page[k] for k in update} == before, (update, page)  # and put the page back on it
        assert words in page["error"], (update, page["error"])  # the widget says why
        assert _alarms(msgs) == [], (update, _alarms(msgs))  # nothing in the kernel log


@pytest.mark.parametrize("name", sorted(GOOD))
def test_after_refusals_a_valid_update_from_the_page_works(built, name):
    ns, ids = built
    kernel, comm_id = ns.kernel, ids[name]
    kernel.send_update(comm_id, BAD[name][0][0])
    update, shows = GOOD[name]
    msgs = kernel.send_update(comm_id, update)
    assert ns.eval(f"widgets[{name!r}].wait(60)")
    assert ns.eval(f"widgets[{name!r}].get_state({sorted(update)!r})") == update
    assert ns.eval(f"widgets[{name!r}].error") == "" and _alarms(msgs) == []
    assert kernel.widget_state(comm_id)[shows] == ns.eval(f"widgets[{name!r}].{shows}")
