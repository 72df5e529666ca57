"""cw.AttentionMap without a browser: what it shows for MHA, gate and attention-free models, its checks (Python and
page), and that close() frees widget, probe and model."""

import gc
import sys
import time
import weakref
from pathlib import Path

import ipywidgets
import keras
import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget.core import CnnWidgetError, OptionError
from cnnwidget.core import attention as att

sys.path.insert(0, str(Path(__file__).parent))
from test_attention import _gated, _images, _stack  # noqa: E402


pytestmark = pytest.mark.usefixtures("older_objects_set_aside")  # conftest: cheap gc.collect() here


@pytest.fixture(scope="module")
def stack():
    return _stack(layers=2, heads=2, class_token=True)


@pytest.mark.slow
def test_mha_site_shows_the_clicked_querys_heads_and_the_rollout(stack):
    images = _images()
    w = cw.AttentionMap(stack, images)
    try:
        assert w.wait(60) and w.error == ""
        assert [s["path"] for s in w.sites] == ["mha0", "mha1"] and w.layer == "mha0"
        assert w.sites[0]["queries"] == [1, 8, 8] and w.message == ""
        assert w.query == 1 + 4 * 8 + 4  # the centre patch
        meta = w.heads_meta
        assert (meta["k"], meta["h"], meta["w"], meta["query"]) == (2, 8, 8, w.query)
        scores = att.attention_maps(stack, images[:1])["mha0"][0]
        np.testing.assert_allclose(w.maps["mha0"], scores, atol=1e-6)
        before = w.head_bytes
        w.query = 10  # a click on another patch
        assert w.heads_meta["query"] == 10 and w.head_bytes != before
        q = np.frombuffer(w.head_bytes, np.uint8).reshape(2, 8, 8)
        lo, hi = np.frombuffer(w.head_ranges, "<f4").reshape(2, 2)[0]
        np.testing.assert_allclose(lo + (hi - lo) * q[0] / 255, scores[0, 10, 1:].reshape(8, 8), atol=(hi - lo) / 255)
        w.head = 1
        assert w.heads_meta["k"] == 1 and w.heads_meta["labels"] == ["head 1"]
        want = att.attention_rollout(stack, images[:1], head_fusion="max")[0]
        w.head_fusion = "max"
        assert w.rollout_meta["head_fusion"] == "max"
        np.testing.assert_allclose(w.rollout, want, atol=1e-6)
        w.set_state({"discard_ratio": 0.5})
        assert w.wait(60) and w.rollout_meta["discard_ratio"] == 0.5
    finally:
        w.close()


def test_bad_values_are_refused_from_python_and_the_page(stack):
    w = cw.AttentionMap(stack, _images())
    try:
        w.wait(60)
        for name, value, words in (("head", 2, "head must be -1"), ("query", 65, "out of range"),
                                   ("head_fusion", "median", "head_fusion must be one of"),
                                   ("discard_ratio", 1.0, r"discard_ratio must be a number in \[0, 0.99\]"),
                                   ("layer", "nope", "not an attention site"), ("colormap", "jet", "colormap must"),
                                   ("image_index", 3, "out of range")):
            old = getattr(w, name)
            with pytest.raises(CnnWidgetError, match=words):
                setattr(w, name, value)
            assert getattr(w, name) == old
            w.set_state({name: value})  # from the page: refused, shown, not taken
            assert getattr(w, name) == old and w.error
        w.set_state({"head_bytes": b"x"})
        assert "set by the widget" in w.error
        with pytest.raises(OptionError, match="takes no option"):
            cw.AttentionMap(stack, _images(), heads=3)
    finally:
        w.close()


def test_gates_against_their_mean_and_spatial_gate_over_the_image():
    model, images = _gated(), _images(4)
    w = cw.AttentionMap(model, images, image_index=1)
    try:
        assert w.wait(60) and w.error == ""
        assert [(s["path"], s["kind"]) for s in w.sites] == [("channel_gate", "channel_gate"),
                                                             ("spatial_gate", "spatial_gate")]
        gates = att.attention_maps(model, images)["channel_gate"]
        np.testing.assert_allclose(np.frombuffer(w.gate_values, "<f4"), gates[1], atol=1e-6)
        np.testing.assert_allclose(np.frombuffer(w.gate_mean, "<f4"), gates.mean(0), atol=1e-6)
        w.layer = "spatial_gate"
        assert w.gate_meta["kind"] == "spatial_gate" and len(w.gate_bytes) == 64
        assert w.rollout_meta["k"] == 0 and "no rollout" in w.rollout_meta["note"]
    finally:
        w.close()


def test_a_model_without_attention_gets_a_message():
    x = keras.Input((8, 8, 3))
    model = keras.Model(x, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(
        keras.layers.Conv2D(3, 3, name="conv")(x))))
    w = cw.AttentionMap(model, _images())
    try:
        assert "no attention site" in w.message and w.sites == [] and not w.running
        with pytest.raises(CnnWidgetError, match="not an attention site"):
            w.layer = "conv"
    finally:
        w.close()


@pytest.mark.slow
def test_close_frees_widget_probe_and_model():
    comms = len(ipywidgets.Widget.widgets)
    model = _stack()
    w = cw.AttentionMap(model, _images())
    w.wait(60)
    w.query = 3
    refs = [weakref.ref(w), weakref.ref(w.probe), weakref.ref(model)]
    w.close()
    with pytest.raises(CnnWidgetError, match="closed"):
        w.query = 4
    del w, model
    for _ in range(20):  # up to 20 collections a while apart (the worker lets go); stop once all is freed
        gc.collect()
        if all(r() is None for r in refs) and len(ipywidgets.Widget.widgets) == comms:
            break
        time.sleep(0.05)
    assert [type(r()).__name__ for r in refs if r() is not None] == []
    assert len(ipywidgets.Widget.widgets) == comms
