"""ChannelCard and DatasetExamples in process, on a small seeded model: the wire state equals core's result, the
traits are checked from Python and from the page alike, the pass is made once per layer and shared with the card a
click opens, Cancel keeps a partial top-k flagged as such, and close() frees widget, probe and model.

Quick tests make widgets without waiting for their pass (constructor and trait checks); the ones that wait for a
pass or a rendering are marked slow.
"""

import gc
import threading
import time
import weakref

import ipywidgets
import keras
import numpy as np
import pytest
import tensorflow as tf
import traitlets

import cnnwidget as cw
from cnnwidget.core import ImageError, LayerError, OptionError
from cnnwidget.core import dataset
from cnnwidget.widgets.channel_card import rgba

RNG = np.random.default_rng(3)
IMAGES = RNG.random((40, 24, 24, 3)).astype("float32")
LABELS = RNG.integers(0, 3, 40)
NAMES = ["<b>zero</b>", "one", "two"]


def small_model():
    keras.utils.set_random_seed(1)
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inp)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(small_model())


@pytest.fixture
def card(probe):
    w = cw.ChannelCard(probe, IMAGES, "relu2", 3, k=5, labels=LABELS, class_names=NAMES, batch_size=16,
                       feature_vis=False)
    yield w
    w.close()


def test_the_constructor_refuses_bad_arguments_saying_what_it_expected(probe):
    inp = keras.Input((24, 24, 3))
    conv = keras.layers.Conv2D(2, 3, padding="same", name="c")(inp)
    seq = keras.layers.Reshape((24, 48), name="rows")(conv)  # a sequence (T, D): neither a map nor a vector
    rows = cw.ModelProbe(keras.Model(inp, keras.layers.Dense(2, name="o")(keras.layers.Flatten()(seq))))
    with pytest.raises(LayerError, match=r"layer 'rows' outputs \(24, 48\) per image; these views take a spatial "
                                         r"layer \(H, W, C\) or a vector layer \(C,\)"):
        cw.ChannelCard(rows, IMAGES, "rows", 0)
    with pytest.raises(LayerError, match="nope"):
        cw.ChannelCard(probe, IMAGES, "nope", 0)
    with pytest.raises(OptionError, match=r"channel 8 is out of range of layer 'relu2': it must be a whole number in "
                                          r"\[0, 7\]"):
        cw.ChannelCard(probe, IMAGES, "relu2", 8)
    with pytest.raises(OptionError, match="k must be a whole number between 1 and 64; got 65"):
        cw.ChannelCard(probe, IMAGES, "relu2", 0, k=65)
    with pytest.raises(ImageError, match="can be read only once"):
        cw.ChannelCard(probe, (x for x in [IMAGES]), "relu2", 0)
    with pytest.raises(ImageError, match="labels= goes with images given as a numpy array"):
        cw.ChannelCard(probe, tf.data.Dataset.from_tensor_slices(IMAGES), "relu2", 0, labels=LABELS)
    with pytest.raises(OptionError, match="class_names must name the model's 3 classes; got 2 names"):
        cw.ChannelCard(probe, IMAGES, "relu2", 0, class_names=["a", "b"])
    with pytest.raises(OptionError, match="page_size must be a whole number between 1 and 256; got 0|page_size must "
                                          "be a whole number >= 1; got 0"):
        cw.DatasetExamples(probe, IMAGES, "relu2", page_size=0)


def test_traits_are_real_traitlets_checked_from_python_and_the_page(card):
    assert all(card.has_trait(n) for n in ("layer", "channel", "k"))
    assert (card.layer, card.channel, card.k) == ("relu2", 3, 5) and "channel 3" in repr(card)
    with pytest.raises(OptionError, match=r"channel 8 is out of range of layer 'relu2'"):
        card.channel = 8
    assert card.channel == 3 and "channel 8 is out of range" in card.error
    with pytest.raises(traitlets.TraitError):  # a LayerError that is also a TraitError (link() callers)
        card.layer = "nope"
    assert card.layer == "relu2" and "nope" in card.error
    card.set_state({"k": 0})  # typed in the page
    assert card.k == 5 and card.error == "k must be a whole number >= 1; got 0."
    card.set_state({"channel": 2.5})
    assert card.channel == 3 and "channel must be an int" in card.error
    card.set_state({"patches": b"x"})  # set by the widget only
    assert "patches is set by the widget, not from the page" in card.error
    card.channel = 1  # a good value still works, and clears the message
    assert card.channel == 1 and card.error == ""
    card.show("relu1", 5)  # layer and channel together, the channel checked against the new layer
    assert (card.layer, card.channel) == ("relu1", 5)


def test_a_channel_linked_with_traitlets_follows(card):
    box = ipywidgets.IntText(0)
    link = traitlets.link((box, "value"), (card, "channel"))
    try:
        box.value = 6
        assert card.channel == 6
        with pytest.raises(traitlets.TraitError):
            box.value = 99
        assert card.channel == 6
    finally:
        link.unlink()
        box.close()


@pytest.mark.slow
def test_the_card_sends_core_s_top_k_patches_histogram_statistics_and_class_support(card, probe):
    assert card.wait(120) and card.error == "" and not card.partial
    truth = dataset.channel_examples(probe, (IMAGES, LABELS), "relu2", k=5, batch_size=16)["relu2"]
    meta = card.patches_meta
    assert meta["n"] == 5 and meta["indices"] == truth.indices[3].tolist()
    np.testing.assert_allclose(meta["values"], truth.scores[3])
    assert card.patches == rgba(truth.patches[3], (0.0, 1.0)).tobytes()
    assert len(card.patches) == 5 * meta["h"] * meta["w"] * 4  # one uint8 RGBA buffer
    filled = np.flatnonzero(truth.histogram[3])  # the filled bins, first to last, over a range holding min..max
    assert card.histogram["counts"] == truth.histogram[3][filled[0]:filled[-1] + 1].tolist()
    assert card.histogram["lo"] <= card.stats["min"] and card.histogram["hi"] > card.stats["max"]
    assert card.histogram["not_finite"] == 0
    assert card.stats["mean"] == pytest.approx(truth.mean[3]) and card.stats["images"] == 40
    assert card.stats["zero_fraction"] == pytest.approx(truth.zero_fraction[3])
    assert [s["name"] for s in card.class_support] == NAMES  # text, sent as given
    np.testing.assert_allclose([s["mean"] for s in card.class_support], truth.class_mean[:, 3])
    # save_npz holds what the pass found for the channel shown, in full precision (not only the uint8 wire bytes)
    arrays = card.to_numpy()["arrays"]
    np.testing.assert_array_equal(arrays["top.indices"], truth.indices[3])
    np.testing.assert_array_equal(arrays["top.values"], truth.scores[3])
    np.testing.assert_array_equal(arrays["top.positions"], truth.positions[3])
    np.testing.assert_array_equal(arrays["top.boxes"], truth.boxes[3])
    assert arrays["top.patches"].dtype == np.float32
    np.testing.assert_array_equal(arrays["top.patches"], truth.patches[3])  # NaN outside the image, as core's
    # a channel change redraws from the kept pass at once
    start = time.monotonic()
    card.channel = 0
    assert time.monotonic() - start < 1.0 and card.patches_meta["indices"] == truth.indices[0].tolist()
    assert card.wait(60) and card.status.startswith("kept pass over 40 images")


@pytest.mark.slow
def test_the_page_gets_every_channel_of_the_layer_once_each_as_the_card_sends_it(probe, monkeypatch):
    """Once a full pass is drawn, every channel of the layer goes to the page in one custom message (its view draws
    a channel picked in the page from it at once): each channel's part equals what the card then sends for it,
    it is sent once per pass (again when a view asks), and not at all for a layer over the size budget."""
    from cnnwidget.widgets import channel_card

    sent = []
    monkeypatch.setattr(cw.ChannelCard, "send", lambda self, content, buffers=None: sent.append((content, buffers)))
    layer_msgs = lambda: [(c, b) for c, b in sent if c.get("action") == channel_card.LAYER_ACTION]  # noqa: E731
    card = cw.ChannelCard(probe, IMAGES, "relu2", 3, k=5, labels=LABELS, class_names=NAMES, batch_size=16,
                          feature_vis=False)
    try:
        assert card.wait(120) and card.error == ""
        assert len(layer_msgs()) == 1
        msg, buffers = layer_msgs()[0]
        assert (msg["layer"], msg["k"], msg["images"], len(msg["channels"])) == ("relu2", 5, 40, 8)
        blob = buffers[0]
        for c in (3, 0, 7):
            card.channel = c
            one = msg["channels"][c]
            assert blob[one["offset"]:one["offset"] + one["nbytes"]] == card.patches
            assert (one["patches_meta"], one["histogram"], one["stats"], one["class_support"]) == (
                card.patches_meta, card.histogram, card.stats, card.class_support)
        assert card.wait(60) and card.status == "kept pass over 40 images" and len(layer_msgs()) == 1
        card._on_action(card, {"action": channel_card.LAYER_ACTION}, [])  # a view made later asks
        assert len(layer_msgs()) == 2 and layer_msgs()[1][0] == msg
        monkeypatch.setattr(channel_card, "PAGE_LAYER_BYTES", 1000)  # relu1: 6 channels x 5 patches, over 1000 B
        card.layer = "relu1"
        assert card.wait(120) and card.patches_meta["layer"] == "relu1" and len(layer_msgs()) == 2
    finally:
        card.close()


@pytest.mark.slow
def test_a_dead_channel_is_flagged(probe):
    zeros = np.zeros((8, 24, 24, 3), np.float32)  # conv without input: relu of the bias, one value everywhere
    w = cw.ChannelCard(probe, zeros, "relu1", 0, k=3, feature_vis=False)
    try:
        assert w.wait(120)
        assert all(w.examples.dead) and w.stats["dead"] is True and w.stats["images"] == 8
    finally:
        w.close()


def slow_batches(pause: float):
    """IMAGES in batches of 4, ``pause`` seconds before each after the first: a function returning a new generator
    (the card may read the data once per layer), and an Event set once the first batch is read."""
    started = threading.Event()

    def batches():
        for i in range(0, 40, 4):
            if i:
                started.set()
                time.sleep(pause)
            yield IMAGES[i:i + 4]

    return batches, started


@pytest.mark.slow
def test_cancel_keeps_the_partial_top_k_and_says_so(probe):
    batches, started = slow_batches(0.3)
    w = cw.ChannelCard(probe, batches, "relu2", 2, k=4, feature_vis=False)
    try:
        assert started.wait(120)
        time.sleep(0.1)
        w.cancel()
        assert w.wait(60)
        assert w.partial and 0 < w.images < 40 and w.status.startswith("cancelled: partial top-4")
        assert w.patches_meta["n"] >= 1 and max(w.patches_meta["indices"]) < w.images
        w.channel = 3  # another channel of the cancelled layer: still the partial pass, still said
        assert w.wait(60) and w.partial and w.status.startswith("cancelled: partial top-4")
        w.compute().wait(120)  # Compute finishes the pass
        assert not w.partial and w.images == 40
    finally:
        w.close()


@pytest.mark.slow
def test_a_pass_cut_short_by_a_newer_request_is_made_again_in_full(probe):
    # a pass that a newer request cancelled (here: another layer, then back) is not a person's Cancel: showing its
    # partial result would show the top examples of the first few images as the answer
    batches, started = slow_batches(0.2)
    w = cw.ChannelCard(probe, batches, "relu2", 2, k=4, feature_vis=False)
    try:
        assert started.wait(120)
        w.layer = "relu1"
        w.layer = "relu2"
        assert w.wait(120)
        assert not w.partial and w.images == 40 and w.patches_meta["n"] == 4, (w.status, w.images)
    finally:
        w.close()


@pytest.mark.slow
def test_a_new_layer_shows_nothing_of_the_previous_one_before_its_own_pass(probe):
    # new-user trial: after a layer change, the list's tiles and the card's patches and statistics stayed the old
    # layer's, under the new layer's name, until the new pass's first batch, and for good after an early Cancel
    gate = threading.Event()

    def batches():  # the first pass reads at once; a later one waits at the gate before its first batch
        if reads:
            gate.wait(60)
        reads.append(1)
        for i in range(0, 40, 4):
            yield IMAGES[i:i + 4]

    reads = []
    de = cw.DatasetExamples(probe, batches, "relu2", page_size=4, channel=1, k=3,
                            card_options={"feature_vis": False})
    try:
        assert de.wait(120) and de.card.wait(60) and de.tiles and de.card.stats
        de.layer = "relu1"
        card = de.card
        assert card.layer == "relu1" and "starting" in de.status, de.status
        for w, shown in ((de, ("tiles", "tiles_meta")), (card, ("patches", "patches_meta", "stats", "histogram"))):
            assert w.images == 0 and not w.partial
            for name in shown:
                value = getattr(w, name)
                assert not value or value.get("layer", "relu1") == "relu1", (type(w).__name__, name)
        de._cancel_with_card()
        gate.set()
        assert de.wait(60) and card.wait(60)
        # what the list shows after the Cancel is the new layer's or nothing, never the old layer's
        assert not de.tiles or de.tiles_meta["layer"] == "relu1", (de.status, de.tiles_meta)
        assert not card.patches_meta or card.patches_meta["layer"] == "relu1", card.status
    finally:
        de.close()


@pytest.mark.slow
def test_the_feature_visualization_is_rendered_on_the_worker(probe):
    w = cw.ChannelCard(probe, IMAGES, "relu2", 1, k=2, fv_steps=8)
    try:
        assert w.wait(120) and w.error == ""
        assert w.fv_meta["final"] and w.fv_meta["channel"] == 1 and len(w.fv_pixels) == 24 * 24 * 3
        assert w.fv_image.shape == (24, 24, 3)
    finally:
        w.close()


@pytest.mark.slow
def test_a_click_in_the_list_opens_the_card_which_shares_the_pass(probe, tmp_path):
    de = cw.DatasetExamples(probe, IMAGES, "relu2", page_size=3, labels=LABELS, k=4,
                            card_options={"feature_vis": False})
    try:
        assert de.wait(120) and de.card is None and de.pages == 3
        meta = de.tiles_meta
        assert meta["channels"] == [0, 1, 2] and len(de.tiles) == 3 * meta["h"] * meta["w"] * 4
        np.testing.assert_allclose(meta["values"], de.examples.scores[:3, 0])
        de.set_state({"channel": 7})  # a click in the page
        assert de.page == 2 and de.tiles_meta["channels"] == [6, 7]
        card = de.card
        assert isinstance(card, cw.ChannelCard) and (card.layer, card.channel) == ("relu2", 7)
        assert card.examples is de.examples  # the same pass: made once for the layer
        assert card.wait(60) and card.status.startswith("kept pass")
        card.channel = 4  # the card's own channel box moves the selection in the list
        assert de.channel == 4 and de.page == 1
        held = cw.load_npz(de.save_npz(tmp_path / "de.npz"))["arrays"]  # every channel's top-k, full precision
        for name, value in (("indices", de.examples.indices), ("values", de.examples.scores),
                            ("positions", de.examples.positions), ("patches", de.examples.patches),
                            ("mean", de.examples.mean), ("histogram", de.examples.histogram)):
            np.testing.assert_array_equal(held[f"examples.{name}"], value, err_msg=name)
        de.set_state({"page": 3})
        assert de.page == 1 and "page 3 is out of range" in de.error
        de.layer = "relu1"
        assert de.pages == 2 and card.layer == "relu1" and card.channel == 4
    finally:
        de.close()
    assert card.comm is None  # closing the list closes its card


@pytest.mark.slow
def test_on_the_demo_model_s_output_layer_the_card_shows_whole_images_and_class_names():
    from cnnwidget import demo

    data = demo.shapes(48, seed=4)
    model = demo.load_model()
    card = cw.ChannelCard(model, data.images, "predictions", 2, k=5, labels=data.labels,
                          class_names=data.class_names, batch_size=16, feature_vis=False)
    de = None
    try:
        assert card.wait(120) and card.error == ""
        meta = card.patches_meta
        truth = dataset.channel_examples(model, data.images, "predictions", k=5)["predictions"]
        assert meta["indices"] == truth.indices[2].tolist()
        np.testing.assert_allclose(meta["values"], truth.scores[2])
        assert meta["n"] == 5 and meta["whole_image"] and (meta["h"], meta["w"]) == (64, 64)
        assert meta["input"] == [64, 64] and meta["unit_name"] == "triangle" and "whole 64x64 image" in meta["note"]
        assert card.patches == rgba(data.images[meta["indices"]], (0.0, 1.0)).tobytes()  # the images themselves
        assert [s["name"] for s in card.class_support] == list(data.class_names)
        assert [row["name"] for row in card.layers][-3:] == ["gap", "gap_dropout", "predictions"]
        de = cw.DatasetExamples(model, data.images, "predictions", page_size=4, class_names=data.class_names,
                                card_options={"feature_vis": False})
        assert de.wait(120) and de.error == ""
        assert de.tiles_meta["names"] == list(data.class_names[:4]) and de.tiles_meta["whole_image"]
        assert len(de.tiles) == 4 * 64 * 64 * 4
        de.layer = "gap"  # a global pooling layer: whole images too, not named (its units are not classes)
        assert de.wait(120) and de.tiles_meta["names"] is None and de.tiles_meta["whole_image"]
        assert (de.tiles_meta["h"], de.tiles_meta["w"]) == (32, 32)  # 128 units x 16: resized (memory bound)
    finally:
        card.close()
        if de is not None:
            de.close()


def _use_card(model):
    w = cw.ChannelCard(model, IMAGES[:8], "relu1", 1, k=2, fv_steps=4, labels=LABELS[:8])
    assert w.wait(120)
    w.set_state({"channel": 2})
    assert w.wait(120)
    return w, w.probe


def _use_list(model):
    w = cw.DatasetExamples(model, IMAGES[:8], "relu1", page_size=4, card_options={"fv_steps": 4})
    assert w.wait(120)
    w.set_state({"channel": 5})
    assert w.card.wait(120)
    return w, w.probe


@pytest.mark.slow
@pytest.mark.parametrize("use", [_use_card, _use_list], ids=["card", "list"])
def test_close_frees_widget_probe_and_model(use):
    gc.collect()
    comms = len(ipywidgets.Widget.widgets)
    for _ in range(2):
        model = small_model()
        widget, probe = use(model)
        refs = [weakref.ref(x) for x in (widget, probe, model)]
        widget.close()
        del widget, probe, model
        gc.collect()
        assert [r() for r in refs] == [None, None, None]
    assert len(ipywidgets.Widget.widgets) == comms
