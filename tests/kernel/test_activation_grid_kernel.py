"""ActivationGrid over the real Jupyter wire: what a browser receives, and how the kernel reacts to it."""

import numpy as np
import pytest

BUILD = """
import keras, numpy as np
import cnnwidget as cw
keras.utils.set_random_seed(0)
inp = keras.Input((24, 24, 3))
x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inp)
x = keras.layers.Conv2D(70, 3, strides=2, padding="same", name="conv2")(x)
out = keras.layers.Dense(2, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
grid = cw.ActivationGrid(keras.Model(inp, out), np.random.default_rng(0).random((2, 24, 24, 3)), page_size=64)
grid.wait()  # the constructor returns at once; the first page follows from the widget's worker
grid
"""


def decode_tile(state, i):
    """Tile i of the grid's page as the browser reads it from the wire: float64 (h, w) and half a step."""
    meta = state["tile_meta"]
    h, w = meta["h"], meta["w"]
    q = np.frombuffer(state["tiles"], np.uint8)[i * h * w:(i + 1) * h * w].reshape(h, w)
    lo, hi = np.frombuffer(state["tile_ranges"], "<f4")[2 * i:2 * i + 2].astype(np.float64)
    return lo + (hi - lo) * q / 255.0, (hi - lo) / 510.0


def true_map(kns, layer, channel, image=0):
    """The channel's activations computed in the kernel by core (not read from the widget)."""
    return np.array(kns.eval(f"grid.probe.activations(grid.images[{image}:{image + 1}], [{layer!r}])"
                             f"[{layer!r}][0, :, :, {channel}].tolist()"))


@pytest.fixture
def grid(kns):
    res = kns.execute(BUILD, timeout=120)
    comm_id = kns.model_id("grid.view")
    return kns, comm_id, res


def test_the_first_page_arrives_as_tile_buffers_that_decode_to_the_layers_activations(grid):
    """The first page is computed on the widget's worker after the comm_open; the browser has it once the worker
    is done (``grid.wait()`` in BUILD), as binary buffers the size of the grid."""
    kns, comm_id, res = grid
    state = kns.kernel.widget_state(comm_id)
    meta = state["tile_meta"]
    assert (meta["k"], meta["h"], meta["w"]) == (6, 24, 24)
    assert len(state["tiles"]) == 6 * 24 * 24 and len(state["tile_ranges"]) == 6 * 8
    assert len(state["image"]) == 24 * 24 * 3
    for i in (0, 4):
        values, half = decode_tile(state, i)
        assert np.abs(values - true_map(kns, "conv1", meta["channels"][i])).max() <= half * (1 + 1e-4), i


def test_a_page_sorted_by_mean_from_the_browser_carries_each_labelled_channels_values(grid):
    kns, comm_id, _ = grid
    kns.kernel.send_update(comm_id, {"layer": "conv2", "sort": "mean", "page": 0})
    kns.kernel.send_update(comm_id, {"page": 1})
    state = kns.kernel.widget_state(comm_id)
    meta = state["tile_meta"]
    assert (meta["page"], meta["k"]) == (1, 6) and meta["channels"] != sorted(meta["channels"])
    for i in (0, 5):
        values, half = decode_tile(state, i)
        truth = true_map(kns, "conv2", meta["channels"][i])
        assert np.abs(values - truth).max() <= half * (1 + 1e-4), (i, meta["channels"][i])


def test_a_layer_change_from_the_browser_sends_the_new_page_in_one_message(grid):
    kns, comm_id, _ = grid
    msgs = kns.kernel.send_update(comm_id, {"layer": "conv2"})
    with_tiles = [m for m in msgs if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id
                  and ["tiles"] in m["content"]["data"].get("buffer_paths", [])]
    state = kns.kernel.widget_state(comm_id)
    assert len(with_tiles) == 1 and ["tile_ranges"] in with_tiles[0]["content"]["data"]["buffer_paths"]
    assert state["tile_meta"]["n_channels"] == 70 and state["tile_meta"]["k"] == 64
    assert len(state["tiles"]) == 64 * 12 * 12
    assert kns.eval("grid.layer") == "conv2"


def test_a_channel_click_from_the_browser_reaches_python_and_returns_the_enlarged_map(grid):
    kns, comm_id, _ = grid
    kns.kernel.send_update(comm_id, {"selected_channel": 4})
    assert kns.eval("grid.selected_channel") == 4
    state = kns.kernel.widget_state(comm_id)
    assert state["focus_meta"]["channel"] == 4 and len(state["focus"]) == 24 * 24
    lo, hi = state["focus_meta"]["lo"], state["focus_meta"]["hi"]
    truth = kns.eval("[float(v) for v in (grid.activations('conv1')[0, :, :, 4].min(), "
                     "grid.activations('conv1')[0, :, :, 4].max())]")
    assert (lo, hi) == pytest.approx(tuple(truth), rel=1e-6)
    q = np.frombuffer(state["focus"], np.uint8).reshape(24, 24)
    values = lo + (hi - lo) * q / 255.0
    assert np.abs(values - true_map(kns, "conv1", 4)).max() <= (hi - lo) / 510 * (1 + 1e-4)


def test_a_bad_layer_from_the_browser_is_reported_in_the_widget_and_the_kernel_keeps_working(grid):
    kns, comm_id, _ = grid
    kns.kernel.send_update(comm_id, {"layer": "conv9"})
    state = kns.kernel.widget_state(comm_id)
    assert state["layer"] == "conv1" and "No layer named 'conv9'" in state["error"]
    assert kns.eval("1 + 1") == 2


def test_a_page_costs_its_raw_uint8_tiles_plus_eight_bytes_a_tile(grid):
    kns, comm_id, _ = grid
    msgs = kns.kernel.send_update(comm_id, {"layer": "conv2"})
    sent = [m for m in msgs if m["msg_type"] == "comm_msg" and m["content"]["comm_id"] == comm_id]
    total = sum(len(b) for m in sent for b in m.get("buffers", []))
    tiles = 64 * 12 * 12
    # the tiles and their [lo, hi] ranges; the strip and image did not change, so they are not sent again
    assert total == tiles + 64 * 8
