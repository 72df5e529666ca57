"""AttributionMap's state, in process, on the demo model: what it sends, how it takes bad input, and Cancel.

Sample counts are small (LIME 64 samples, curves of 4 steps) and one probe is shared, so compiled passes are traced
once for the module. The widget computes on its worker; tests wait for the events they need (``wait``, a state
reached) with generous ceilings, never for a time.
"""

import threading
import time

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import OptionError
from cnnwidget.core import attribution as attr
from cnnwidget.widgets import _transport

METHODS = ("saliency", "grad_cam", "occlusion", "lime")


@pytest.fixture(scope="module")
def data():
    return demo.shapes(3, seed=1234)


@pytest.fixture(scope="module")
def probe(data):
    return cw.ModelProbe(demo.load_model(), class_names=data.class_names)


@pytest.fixture
def widget(probe, data):
    w = cw.AttributionMap(probe, data.images, METHODS, curve_steps=4, lime={"samples": 64},
                          occlusion={"patch": 16, "stride": 16})
    yield w
    w.close()


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.slow
def test_the_widget_shows_at_once_then_fast_maps_then_slow_ones(widget, probe, data):
    meta = widget.maps_meta
    assert (meta["k"], meta["h"], meta["w"]) == (4, 64, 64)  # the layout is there before any map
    assert meta["labels"][:2] == ["Saliency", "Grad-CAM"]
    wait_for(lambda: widget.maps_meta["done"][:2] == [True, True])  # the fast ones first, on the worker
    assert widget.wait(120) and not widget.running and widget.error == ""
    assert widget.maps_meta["done"] == [True] * 4
    assert widget.status.startswith("4 of 4 maps, 4 curves in")
    # one uint8 buffer of (k, H, W) and float32 (k, 2) ranges: the signed maps as computed by core
    assert len(widget.map_bytes) == 4 * 64 * 64 and len(widget.map_ranges) == 4 * 2 * 4
    maps = widget.maps
    x = data.images[:1]
    np.testing.assert_allclose(maps["saliency"], attr.saliency(probe, x)[0], rtol=1e-5, atol=1e-6)
    stack = np.stack([maps[m] for m in METHODS])
    assert (widget.map_bytes, widget.map_ranges) == _transport.quantize(stack)
    assert maps["lime"].min() < 0 < maps["lime"].max()  # signed: the sign choice is the browser's


def test_image_and_top5_classes_are_sent(widget, probe, data):
    assert widget.wait(120)
    assert widget.view.image == _transport.image_bytes(data.images[0], (0.0, 1.0))
    preds = widget.view.predictions
    probs = probe.predict(data.images[:1])[0]
    assert [p["index"] for p in preds] == list(np.argsort(-probs, kind="stable")[:5])
    assert preds[0]["label"] == data.class_names[preds[0]["index"]] and widget.target == preds[0]["index"]


def test_curves_with_aucs_go_to_the_charts_and_scores(widget):
    assert widget.wait(120)
    curves = widget.faithfulness
    assert set(curves) == set(METHODS)
    assert curves["grad_cam"]["deletion"].shape == (5,)
    line = widget.deletion_chart.marks[0]
    assert np.asarray(line.y).shape == (4, 5) and list(line.colors) == list(widget.view.maps_meta["colors"])
    np.testing.assert_allclose(np.asarray(line.y)[1], curves["grad_cam"]["deletion"])
    assert widget.view.scores[1]["insertion"] == pytest.approx(curves["grad_cam"]["insertion_auc"])


def test_another_class_recomputes_and_coming_back_is_cached(widget):
    assert widget.wait(120)
    first = widget.maps["grad_cam"].copy()
    other = widget.view.predictions[1]["index"]
    widget.target = other
    assert widget.view.maps_meta["target"] == other and widget.view.maps_meta["done"][:2] == [True, True]
    assert not np.allclose(widget.maps["grad_cam"], first)
    assert widget.wait(120)
    widget.target = widget.view.predictions[0]["index"]
    assert not widget.running  # everything was kept: nothing more to run
    np.testing.assert_array_equal(widget.maps["grad_cam"], first)


def test_a_new_image_is_explained_for_its_own_prediction(widget, probe, data):
    widget.image_index = 2  # returns once the image's class and fast maps are there
    assert widget.target == int(probe.predict(data.images[2:3])[0].argmax())
    assert widget.view.image == _transport.image_bytes(data.images[2], (0.0, 1.0))
    assert widget.maps_meta["image_index"] == 2 and widget.maps_meta["done"][:2] == [True, True]
    assert widget.wait(120)


def test_bad_input_from_python_raises_shows_the_message_and_keeps_the_state(widget):
    assert widget.wait(120)
    before = widget.map_bytes
    with pytest.raises(OptionError, match="out of range"):
        widget.target = 10
    assert "target 10 is out of range" in widget.error and widget.target != 10
    with pytest.raises(OptionError, match="stride must be"):
        widget.set_options("occlusion", stride=0)
    assert widget.error.startswith("Occlusion: stride must be")
    assert widget.map_bytes == before and "occlusion" in widget.maps  # nothing lost
    for name, value in (("sign", "up"), ("normalization", "layer"), ("colormap", "jet"), ("opacity", 2.0)):
        old = getattr(widget, name)
        with pytest.raises(OptionError):
            setattr(widget, name, value)
        assert getattr(widget, name) == old
    widget.sign = "both"  # a good one clears the message
    assert widget.error == ""


def test_a_bad_option_from_the_browser_is_shown_not_raised(widget):
    assert widget.wait(120)
    widget.set_state({"target": 99})  # what an update from the browser does
    assert "out of range" in widget.error and widget.target != 99


@pytest.mark.parametrize("options, match", [
    ({"methods": ("saliency", "nope")}, "unknown methods"),
    ({"methods": ("saliency",), "lime": {"samples": 10}}, "not among the methods"),
    ({"methods": ("lime",), "lime": {"steps": 10}}, "takes no option"),
    ({"methods": ("integrated_gradients",), "integrated_gradients": {"steps": 0}}, "steps must be"),
    ({"methods": ("kernel_shap",), "kernel_shap": {"samples": 0}}, "samples must be"),
    ({"methods": ("saliency",), "curve_steps": 0}, "steps must be"),
    ({"methods": ("saliency",), "target": 10}, "out of range"),
])
def test_bad_constructor_options_raise_a_clear_message(probe, data, options, match):
    with pytest.raises(cw.CnnWidgetError, match=match):
        cw.AttributionMap(probe, data.images, **options)


def test_a_cam_on_a_dense_layer_says_it_needs_a_spatial_layer(probe, data):
    dense = next(i.path for i in probe.layers if not i.is_spatial)
    with pytest.raises(cw.LayerError, match="needs a spatial layer"):
        cw.AttributionMap(probe, data.images, ("grad_cam",), layer=dense)


def test_cancel_stops_lime_and_keeps_the_maps_made(probe, data):
    w = cw.AttributionMap(probe, data.images, ("saliency", "lime"), curves=False, lime={"samples": 20000})
    try:
        wait_for(lambda: w.progress.get("step", 0) > 0)
        w.cancel()
        assert w.wait(60)  # the event (20000 samples would run for minutes); a generous ceiling
        assert w.status.startswith("cancelled: 1 of 2 maps") and not w.running and w.error == ""
        assert w.view.maps_meta["done"] == [True, False] and "saliency" in w.maps
        job = w.compute()  # resumes what is missing
        assert job is not None and w.running
        job.cancel()
        assert w.wait(60)
    finally:
        w.close()
    assert not any(t.name == "cnnwidget-attribution" and t.is_alive() for t in threading.enumerate())


def test_cancel_from_the_view_message(probe, data):
    w = cw.AttributionMap(probe, data.images, ("lime",), curves=False, lime={"samples": 20000})
    try:
        wait_for(lambda: w.running)
        wait_for(lambda: w.progress.get("step", 0) > 0)
        w._on_action(w, {"action": "cancel"}, [])
        assert w.wait(60) and w.status.startswith("cancelled")
    finally:
        w.close()


def test_curves_off_is_told_to_the_view_and_can_be_turned_on_from_python(probe, data):
    w = cw.AttributionMap(probe, data.images[:2], ("saliency",), curves=False)
    try:
        assert w.curves is False and w.get_state()["curves"] is False  # the view hides the empty charts
        w.curves = True
        assert w.get_state()["curves"] is True
    finally:
        w.close()


def test_curves_rank_pixels_the_way_the_map_is_shown_beside_a_random_map(widget, probe, data):
    """The curves of each map are core's deletion/insertion with the widget's sign; a random map's (the reference)
    are the grey dashed curves and the reference row."""
    from cnnwidget.widgets import attribution_map as am

    assert widget.sign == am.DEFAULT_SIGN == "absolute"
    assert widget.wait(120)
    x, target = data.images[:1], widget.target
    lime = widget.maps["lime"]
    want = attr.deletion(probe, x, lime[None], target=target, steps=4, sign=widget.sign)
    assert widget.faithfulness["lime"]["deletion_auc"] == pytest.approx(float(want[0]), abs=1e-6)
    ref = attr.random_reference(probe, x, target=target, steps=4, return_curves=True)
    assert widget.reference["deletion"] == pytest.approx(float(ref["deletion"][0]), abs=1e-6)
    assert widget.reference["insertion"] == pytest.approx(float(ref["insertion"][0]), abs=1e-6)
    for chart, kind in ((widget.deletion_chart, "deletion"), (widget.insertion_chart, "insertion")):
        dashed = chart.marks[1]
        assert dashed.line_style == "dashed" and list(dashed.colors) == [am.REFERENCE_COLOR]
        np.testing.assert_allclose(np.asarray(dashed.y), ref[f"{kind}_curves"][0], atol=1e-6)
        np.testing.assert_allclose(widget.reference[f"{kind}_curve"], ref[f"{kind}_curves"][0], atol=1e-6)


def test_a_sign_change_recomputes_only_the_curves_whose_ranking_it_changes(widget, probe, data):
    assert widget.wait(120)
    before = widget.faithfulness
    assert widget.maps["grad_cam"].min() >= 0 and widget.maps["saliency"].min() >= 0  # rank alike under both
    widget.sign = "positive"  # returns at once; the signed maps' curves follow on the worker
    assert widget.wait(120) and widget.error == "" and widget.status.startswith("4 of 4 maps, 4 curves")
    after = widget.faithfulness
    for method in ("saliency", "grad_cam"):
        assert after[method] is before[method]  # kept: the same ranking
    x = data.images[:1]
    for method in ("lime", "occlusion"):  # signed: ranked by max(m, 0) now
        want = attr.insertion(probe, x, widget.maps[method][None], target=widget.target, steps=4, sign="positive")
        assert after[method]["insertion_auc"] == pytest.approx(float(want[0]), abs=1e-6)
        assert after[method]["insertion_auc"] != before[method]["insertion_auc"]
    assert widget.scores[3]["insertion"] == pytest.approx(after["lime"]["insertion_auc"])
    np.testing.assert_allclose(np.asarray(widget.insertion_chart.marks[0].y)[3], after["lime"]["insertion"])
    widget.sign = "absolute"  # back: everything kept, nothing to run
    assert not widget.running
    assert widget.faithfulness["lime"] is before["lime"]
    assert widget.scores[3]["insertion"] == pytest.approx(before["lime"]["insertion_auc"])


def test_explain_sets_image_and_class_in_one_step_or_follows_the_prediction(widget, probe, data):
    assert widget.wait(120)
    widget.explain(1, target=2).wait(120)
    assert (widget.image_index, widget.target) == (1, 2) and widget.maps_meta["target"] == 2
    widget.explain(2).wait(120)  # no class: the image's predicted class, as a click on an image does
    assert (widget.image_index, widget.target) == (2, int(probe.predict(data.images[2:3])[0].argmax()))
    with pytest.raises(OptionError, match="target"):
        widget.explain(0, target=99)
    assert widget.image_index == 2
