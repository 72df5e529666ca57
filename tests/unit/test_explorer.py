"""Explorer in process: its selection traits are linked both ways with the panels' traits, values are checked from
Python and the page alike, panels are made only when opened, and closing it closes every panel.

The quick tests share one probe (so its compiled passes are traced once) and open the cheap panels only; the
feature visualization is rendered in the slow tests."""

import threading

import ipywidgets
import keras
import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget.widgets import explorer as X

RNG = np.random.default_rng(0)
IMAGES = RNG.random((4, 24, 24, 3)).astype("float32")


@pytest.fixture(scope="module")
def probe():
    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inp)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="drop")(x)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x))
    probe = cw.ModelProbe(model, class_names=["cat", "dog", "<b>bird</b>"])
    probe.predict(IMAGES)  # traced once for the module
    return probe


QUICK = dict(panels=["activations", "attribution"],
             panel_options={"attribution": {"methods": ("saliency",), "curves": False}})


@pytest.fixture
def ex(probe):
    explorer = cw.Explorer(probe, IMAGES, **QUICK)
    assert explorer.wait(60)
    yield explorer
    explorer.close()
    explorer.wait(30)  # no worker left computing when the interpreter exits


def test_it_lists_layers_in_model_order_with_shapes_and_opens_the_cheap_panels(ex, probe):
    assert [row["path"] for row in ex.layers] == [i.path for i in probe.layers]
    conv2 = next(row for row in ex.layers if row["path"] == "conv2")
    assert conv2["shape"] == [12, 12, 8] and conv2["depth"] == 0 and conv2["cls"] == "Conv2D"
    assert ex.layer == "conv1" and ex.open_panels == ["activations", "attribution"]
    assert set(ex.panels) == {"activations", "attribution"}  # the others are made when opened
    assert [p["name"] for p in ex.available] == ["activations", "featurevis", "attribution", "uncertainty",
                                                "robustness"]
    assert ex.thumbs_meta == {"n": 4, "h": 24, "w": 24, "total": 4} and len(ex.thumbs) == 4 * 24 * 24 * 3
    assert [p["label"] for p in ex.predictions] == [probe.class_names[k] for k in probe.predict(IMAGES).argmax(-1)]


def test_python_changes_reach_every_open_panel(ex, probe):
    grid, am = ex.panels["activations"], ex.panels["attribution"]
    ex.image = 2
    assert grid.image_index == 2 and am.image_index == 2
    assert am.target == ex.predicted(2)  # target -1: each image's predicted class
    ex.target = 1
    assert am.target == 1
    ex.image = 3  # a class chosen stays chosen on another image
    assert am.wait(30) and am.image_index == 3 and am.target == 1
    ex.channel = 4
    assert grid.selected_channel == 4
    ex.layer = "conv2"
    assert grid.layer == "conv2" and grid.selected_channel == 4
    assert grid.wait(30) and grid.tile_meta["n_channels"] == 8 and grid.focus_meta["channel"] == 4


def test_a_channel_clicked_in_the_grid_selects_it_in_the_explorer(ex):
    grid = ex.panels["activations"]
    grid.set_state({"selected_channel": 3})  # as the page sends a click
    assert ex.wait(30)
    assert ex.channel == 3
    grid.set_state({"layer": "relu1", "image_index": 1})  # the grid's own layer picker and image box
    assert ex.wait(30)
    assert (ex.layer, ex.image) == ("relu1", 1)
    assert ex.panels["attribution"].image_index == 1  # and from the Explorer to every other panel


def test_a_change_from_the_page_is_answered_at_once_and_the_panels_follow_off_the_kernel_thread(ex, monkeypatch):
    # new-user trial: a layer picked in the page kept the kernel busy while the Explorer waited for each quick panel
    # (3.6 s for a layer of MobileNetV2); a cell run meanwhile waited, and an interrupt landed in that wait
    release, threads, real = threading.Event(), [], ex._sync_all

    def slow_sync(*args, **kwargs):  # the panels' update, held until released
        threads.append(threading.current_thread())
        assert release.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(ex, "_sync_all", slow_sync)
    ex.set_state({"layer": "conv2", "channel": 5})  # as the page sends it: answered while the update is held
    assert (ex.layer, ex.channel) == ("conv2", 5)
    release.set()
    assert ex.wait(30) and threading.main_thread() not in threads and threads
    grid = ex.panels["activations"]
    assert (grid.layer, grid.selected_channel) == ("conv2", 5)
    ex.channel = 6  # from Python: the panels are up to date when the assignment returns, as before
    assert grid.selected_channel == 6 and threads[-1] is threading.main_thread()


def test_a_class_picked_in_the_attribution_panel_becomes_the_explorers_target(ex):
    am = ex.panels["attribution"]
    other = (am.target + 1) % 3  # not the predicted class it shows now
    am.set_state({"target": other})
    assert ex.wait(30) and ex.target == other


def test_a_new_layer_without_the_channel_selects_channel_0(ex):
    ex.select(layer="conv2", channel=7)
    assert (ex.layer, ex.channel) == ("conv2", 7)
    ex.layer = "conv1"  # 6 channels
    assert ex.channel == 0 and ex.panels["activations"].selected_channel == 0


@pytest.mark.parametrize("name, value, message", [
    ("channel", 6, "channel must be between 0 and 5 for 'conv1' (or -1 for none); got 6."),
    ("image", 4, "image must be between 0 and 3 for these 4 images; got 4."),
    ("target", 3, "target must be a class between 0 and 2 (or -1 for the predicted class); got 3."),
    ("layer", "nope", "nope"),
    ("open_panels", ["activations", "attention"], "'attention' is not a panel of this Explorer"),
])
def test_bad_values_are_refused_from_python_and_from_the_page(ex, name, value, message):
    before = getattr(ex, name)
    with pytest.raises(cw.CnnWidgetError, match=message.replace("(", r"\(").replace(")", r"\)")):
        setattr(ex, name, value)
    assert getattr(ex, name) == before and message in ex.error
    ex.set_state({name: value})  # as the page would send it
    assert getattr(ex, name) == before and message in ex.error


def test_a_wrong_type_from_the_page_says_what_was_expected(ex):
    ex.set_state({"image": "two"})
    assert ex.image == 0 and "image must be an int" in ex.error


def test_panels_are_made_when_opened_and_stop_when_closed(ex):
    assert ex.uncertainty_panel is None
    ex.set_state({"open_panels": ["activations", "attribution", "uncertainty"]})  # a header clicked
    view = ex.uncertainty_panel
    assert isinstance(view, cw.UncertaintyView) and view.image_index == ex.image
    ex.set_state({"open_panels": ["activations", "attribution"]})
    assert ex.uncertainty_panel is view and view.job.cancelled  # kept, its work cancelled
    assert view.wait(30) and not view.running
    ex.image = 1
    assert view.image_index == 0  # a closed panel does not follow (it would compute)
    ex.open_panels = ["activations", "attribution", "uncertainty"]
    assert view.image_index == 1
    assert ex.panel("robustness") is ex.robustness_panel and "robustness" in ex.open_panels


@pytest.mark.slow  # a new model traced: ~1.5 s
def test_what_the_model_lacks_is_left_out_and_said(probe):
    inp = keras.Input((24, 24, 3))
    plain = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inp))))
    explorer = cw.Explorer(plain, IMAGES, panels=[])
    try:
        names = [p["name"] for p in explorer.available]
        assert "uncertainty" not in names and "attention" not in names
        assert any("no dropout layer" in n for n in explorer.notes)
        assert any("give data=" in n for n in explorer.notes)
        with pytest.raises(cw.OptionError, match="it needs dropout layers"):
            explorer.open_panels = ["uncertainty"]
    finally:
        explorer.close()
        explorer.wait(60)


def test_bad_arguments_say_what_was_expected(probe):
    with pytest.raises(cw.OptionError, match="class_names belongs to the probe"):
        cw.Explorer(probe, IMAGES, class_names=["a", "b", "c"])
    with pytest.raises(cw.OptionError, match="panel_options must be a dict keyed by panel"):
        cw.Explorer(probe, IMAGES, panel_options={"grid": {}})
    with pytest.raises(cw.OptionError, match="takes no option"):
        cw.Explorer(probe, IMAGES, colour="red")
    with pytest.raises(cw.ImageError):
        cw.Explorer(probe, IMAGES[..., :2])


def test_close_closes_every_panel_and_its_charts(probe):
    before = set(ipywidgets.Widget.widgets)
    explorer = cw.Explorer(probe, IMAGES, **QUICK)
    explorer.wait(30)
    panels = list(explorer.panels.values())
    explorer.close()
    assert all(p.comm is None for p in panels)
    assert set(ipywidgets.Widget.widgets) - before == set()
    with pytest.raises(cw.CnnWidgetError, match="closed"):
        explorer.image = 1


def test_the_repr_is_one_line(ex):
    assert repr(ex) == (f"<Explorer model {ex.probe.model.name!r}, layer 'conv1', channel 0, image 0 of 4, "
                        "panels activations, attribution>")


@pytest.mark.slow
def test_the_feature_visualization_follows_the_selected_channel(probe):
    explorer = cw.Explorer(probe, IMAGES, panels=["activations", "featurevis"],
                           panel_options={"featurevis": {"steps": 4, "size": 24}})
    try:
        assert explorer.wait(120)
        fvw = explorer.panels["featurevis"]
        assert (fvw.layer, fvw.channels) == ("conv1", [0]) and fvw.images is not None
        explorer.panels["activations"].set_state({"selected_channel": 5})  # a click in the grid
        assert explorer.wait(120)
        assert explorer.channel == 5 and fvw.channels == [5] and fvw.images_meta["title"] == "channel('conv1', 5)"
        explorer.select(layer="relu2", channel=2)
        assert explorer.wait(120)
        assert fvw.images_meta["title"] == "channel('relu2', 2)" and fvw.images_meta["final"]
        fvw.set_state({"channels": [6]})  # typed in the panel's own box
        assert explorer.wait(120) and explorer.channel == 6
    finally:
        explorer.close()
        explorer.wait(60)


@pytest.mark.slow
def test_the_examples_panel_follows_a_dense_layers_unit(probe):
    # the card shows vector layers too (a unit's top images are whole images): the Explorer's selection of the
    # output layer's unit 2 reaches it (it stayed on the last spatial layer before)
    data = RNG.random((12, 24, 24, 3)).astype("float32")
    explorer = cw.Explorer(probe, IMAGES, data=data, panels=["examples"], panel_options={"examples": {"k": 3}})
    try:
        assert explorer.wait(120)
        card = explorer.panels["examples"]
        explorer.select(layer="out", channel=2)
        assert explorer.wait(120)
        assert (card.layer, card.channel) == ("out", 2) and card.error == "", card.error
        assert card.patches_meta["whole_image"] and card.patches_meta["n"] == 3, card.patches_meta
    finally:
        explorer.close()
        explorer.wait(60)


@pytest.mark.slow
def test_every_panel_of_the_demo_model_opens_and_follows_the_image():
    from cnnwidget import demo

    data = demo.shapes(4, seed=3)
    explorer = cw.Explorer(demo.load_model(), data.images, class_names=demo.CLASS_NAMES,
                           panels=[], panel_options={"featurevis": {"steps": 4}, "uncertainty": {"samples": 4},
                                          "robustness": {"steps": 2}})
    try:
        names = [p["name"] for p in explorer.available]
        assert names == ["activations", "featurevis", "attribution", "uncertainty", "robustness"]
        explorer.open_panels = names  # made and started cheapest first
        explorer.image = 2
        assert explorer.wait(240)
        for name, panel in explorer.panels.items():
            if hasattr(panel, "image_index"):
                assert panel.image_index == 2, name
            assert panel.error == "", (name, panel.error)
    finally:
        explorer.close()
        explorer.wait(60)


def test_save_npz_holds_every_panels_arrays_under_its_name(ex, tmp_path):
    assert ex.wait(60)
    path = ex.save_npz(tmp_path / "explorer.npz")
    arrays = cw.load_npz(path)["arrays"]
    assert "images" in arrays
    assert any(k.startswith("activations/") for k in arrays)  # the grid's tiles and activations
    for name, panel in ex.panels.items():
        for key, value in panel.to_numpy()["arrays"].items():
            assert np.array_equal(arrays[f"{name}/{key}"], value)


def test_the_page_knows_which_of_its_changes_need_the_kernel(ex):
    # the names the page's kernel guard puts back when the kernel is gone: export_html's rule, synced
    from cnnwidget.widgets import _export

    assert ex._kernel_traits == _export.kernel_traits(ex) == ["channel", "image", "layer", "open_panels", "target"]
    assert ex.get_state(["_kernel_traits"]) == {"_kernel_traits": ex._kernel_traits}
    ex.set_state({"_kernel_traits": []})  # set by Python only: refused from the page
    assert ex._kernel_traits and "set by the widget" in ex.error


def test_a_selection_reaches_each_panel_in_one_message(ex):
    # the panel's new selection and its job's start (running, progress, status) travel together: fewer messages for
    # the page to apply after a click (benchmarks/explorer.py counts them)
    am = ex.panels["attribution"]
    sent = []
    send = am._send
    am._send = lambda msg, buffers=None: (sent.append(set(msg.get("state") or ())), send(msg, buffers=buffers))
    try:
        ex.image = 1
        first = sent[0]
        assert {"image_index", "running"} <= first, sent  # one message; before: image_index, then its job's start
        assert not [s for s in sent[1:] if "image_index" in s], sent
    finally:
        del am._send
        assert am.wait(30)
