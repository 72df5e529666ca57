"""RobustnessView's state, in process, on a small model: what it draws, how it takes bad values from Python and the
page, Cancel, the curve with data=, and close() freeing everything. The widget computes on its worker; tests wait
for the events they need (``wait``, a state reached) with generous ceilings, never for a time."""

import gc
import threading
import time
import weakref

import ipywidgets
import keras
import numpy as np
import pytest
import traitlets

import cnnwidget as cw
from cnnwidget.core import adversarial as adv
from cnnwidget.core import attribution as attr
from cnnwidget.widgets import _transport

NAMES = ["<b>cat</b>", "dog & co", "bird"]  # model text: sent as text, drawn with textContent


def small_model():
    keras.utils.set_random_seed(0)  # the same weights every run: which class a 2-step attack reaches depends on them
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv1")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="conv2")(x)
    x = keras.layers.ReLU(name="relu2")(x)
    out = keras.layers.Dense(3, activation="softmax", name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model(inp, out)


IMAGES = np.random.default_rng(0).random((3, 16, 16, 3)).astype("float32")


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(small_model(), class_names=NAMES)


@pytest.fixture
def widget(probe):
    w = cw.RobustnessView(probe, IMAGES, epsilon=0.05, steps=3)
    assert w.wait(120)
    yield w
    w.close()


def wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_the_attack_is_drawn_as_core_computes_it(widget, probe):
    assert widget.error == "" and not widget.running
    s = widget.shown
    assert (s["epsilon"], s["attack"], s["norm"], s["steps"], s["target"], s["image_index"]) == (
        0.05, "pgd", "inf", 3, None, 0)
    direct = adv.pgd(probe, IMAGES[:1], 0.05, steps=3)  # same seed: the same adversarial image
    np.testing.assert_array_equal(widget.result.adversarial, direct.adversarial)
    assert widget.adv_image == _transport.image_bytes(direct.adversarial[0], (0.0, 1.0))
    assert widget.clean_image == _transport.image_bytes(IMAGES[0], (0.0, 1.0))
    assert s["linf"] == pytest.approx(float(np.abs(direct.perturbation).max()))
    assert 0 < s["linf"] <= 0.05 + 1e-6 and s["amplification"] == pytest.approx(1 / (2 * s["linf"]))
    # the perturbation amplified around mid grey: its largest change is black or white
    grey = np.frombuffer(widget.perturbation_image, np.uint8)
    assert len(grey) == 16 * 16 * 3 and (grey.min() == 0 or grey.max() == 255)
    # Grad-CAM of each image for its own predicted class
    cams = np.frombuffer(widget.cam_bytes, np.uint8).reshape(2, 16, 16)
    expected = attr.grad_cam(probe, direct.adversarial, target=int(direct.adv_pred[0]))[0]
    lo, hi = np.frombuffer(widget.cam_ranges, "<f4").reshape(2, 2)[1]
    assert np.abs(lo + (hi - lo) * cams[1] / 255.0 - expected).max() <= (hi - lo) / 510 + 1e-6
    # predictions before and after, highest first, names as given
    clean = widget.predictions["clean"]
    assert [p["index"] for p in clean][:1] == [int(direct.clean_pred[0])] and clean[0]["label"] in NAMES
    assert sorted(p["label"] for p in clean) == sorted(NAMES)
    assert widget.predictions["adversarial"][0]["p"] == pytest.approx(float(direct.adv_probs[0].max()), abs=1e-5)
    # the divergence chart: one bar per layer, core's mean relative distances
    bars = widget.divergence_chart.marks[0]
    assert list(bars.x) == [i.path for i in probe.layers]
    np.testing.assert_allclose(np.asarray(bars.y), np.nan_to_num(widget.divergence.mean), rtol=1e-6)
    assert widget.curve_chart is None and widget.curve == {}


def test_the_divergence_chart_names_layers_on_horizontal_bars_at_a_bounded_height(widget, probe):
    from cnnwidget.widgets import robustness_view as rv

    fig = widget.divergence_chart
    bars, (names_axis, value_axis) = fig.marks[0], fig.axes
    assert bars.orientation == "horizontal" and names_axis.orientation == "vertical"
    assert names_axis.num_ticks is None and names_axis.tick_rotate == 0  # a few layers: every name, unrotated
    assert list(bars.tooltip.fields) == ["x", "y"]  # hovering a bar names its layer and value
    assert fig.fig_margin["left"] >= 7 * max(len(i.path) for i in probe.layers)  # the longest name fits
    # ~140 layers (MobileNetV3Small): the figure stays within bounds, names every k-th bar at least NAME_PX apart
    names = [f"expanded_conv_{i}_squeeze_excite_conv" for i in range(140)]
    deep = rv._divergence_chart(names)
    height = int(deep.layout.height.rstrip("px"))
    num = deep.axes[0].num_ticks  # bqplot names every floor(n / (num - 1))-th category of an ordinal axis
    shown = names[::len(names) // (num - 1)]
    plot = height - deep.fig_margin["top"] - deep.fig_margin["bottom"]
    assert height == rv.DIVERGENCE_PX[1] and 10 <= len(shown) <= plot / rv.NAME_PX
    deep.close()


@pytest.mark.slow
def test_the_default_epsilon_is_8_grey_levels_of_the_input_range():
    model = small_model()
    w = cw.RobustnessView(model, IMAGES * 255, input_range=(0, 255), steps=1)
    try:
        assert w.epsilon == pytest.approx(8.0) and w.epsilon_max == pytest.approx(16.0)
        assert w.wait(60)
    finally:
        w.close()


def test_a_new_epsilon_draws_a_new_adversarial_image(widget):
    before = widget.adv_image
    widget.epsilon = 0.0
    assert widget.wait(60)
    assert widget.shown["epsilon"] == 0.0 and widget.adv_image == widget.clean_image != before
    assert widget.shown["amplification"] == 0.0 and widget.shown["success"] is False
    assert "did not change the prediction" in widget.status


def test_each_public_trait_recomputes(widget, probe):
    for name, value in (("attack", "fgsm"), ("norm", "2"), ("steps", 2), ("target", 2), ("image_index", 2)):
        setattr(widget, name, value)
        assert widget.wait(60) and widget.error == ""
        assert widget.shown[name] == value, name
    assert widget.epsilon_max == pytest.approx(16 / 255 * np.sqrt(16 * 16 * 3 / 4))  # L2 reaches further than L-inf
    assert widget.clean_image == _transport.image_bytes(IMAGES[2], (0.0, 1.0))
    # the target is listed (the model's top classes, and the target after them when it is not among them) and named
    # in the status, reached or not (with random weights the 2-step attack reached it in some runs only: the
    # test asserted it was first or last, and failed 3 runs of 4 once the model was built later in the session)
    assert 2 in [p["index"] for p in widget.predictions["adversarial"]], widget.predictions
    assert "reach bird" in widget.status, widget.status


def test_a_norm_that_cannot_take_the_current_epsilon_is_refused(widget):
    widget.norm = "2"
    widget.epsilon = 3.0  # fine for L2 on 16x16x3 images (<= sqrt(768)), not for L-inf (<= 1)
    assert widget.wait(60) and widget.error == ""
    with pytest.raises(cw.CnnWidgetError, match=r"norm L∞ cannot take the current epsilon 3: .* <= 1"):
        widget.norm = "inf"
    assert widget.norm == "2"


def test_the_verdict_follows_the_shown_classes_and_names_a_tie():
    """All classes tied (logits 0, 1e-9, 0: their probabilities are equal): the verdict agrees with the classes
    shown (never "changed 1 into 1") and says the top classes are tied."""
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(2, 3, padding="same", name="conv")(inp)
    out = keras.layers.Dense(3, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant(
        [0.0, 1e-9, 0.0]), name="out")(keras.layers.GlobalAveragePooling2D(name="gap")(x))
    w = cw.RobustnessView(keras.Model(inp, out), IMAGES, steps=2)
    try:
        assert w.wait(120) and w.error == ""
        s = w.shown
        assert s["success"] is (s["clean_class"] != s["adv_class"]) and s["success"] is False
        assert s["clean_tied"][0] == s["clean_class"] and sorted(s["clean_tied"]) == [0, 1, 2]
        # the prediction lists put the shown class first, though its probability ties with the others
        assert w.predictions["clean"][0]["index"] == s["clean_class"] == 1
        assert w.predictions["adversarial"][0]["index"] == s["adv_class"]
        assert w.status.startswith("PGD did not change the prediction: still 1 (the clean image's top 3 classes "
                                   "are tied within 0.1%")
        w.target = 2  # targeted: reached iff the shown adversarial class is the target
        assert w.wait(60) and w.shown["success"] is (w.shown["adv_class"] == 2)
    finally:
        w.close()


def test_traits_are_real_traitlets(widget):
    slider = ipywidgets.FloatSlider(min=0, max=0.1)
    link = traitlets.link((slider, "value"), (widget, "epsilon"))
    seen = []
    widget.observe(lambda c: seen.append(c["new"]), names="epsilon")
    slider.value = 0.02
    assert widget.epsilon == 0.02 and seen == [0.02]
    link.unlink()
    slider.close()
    assert widget.wait(60)
    assert repr(widget).startswith("<RobustnessView model") and "\n" not in repr(widget)


@pytest.mark.parametrize("name, value, match", [
    ("epsilon", -0.1, r"epsilon must be a number >= 0, or a fraction such as 8/255; got -0.1"),
    ("epsilon", float("nan"), r"epsilon must be a number >= 0, or a fraction such as 8/255; got nan"),
    ("epsilon", 5, r"epsilon 5 is too large for the L-inf norm: it must be <= 1, the span hi - lo"),
    ("epsilon", "2/255", r"epsilon must be a number >= 0, or a fraction such as 8/255; got '2/255'"),
    ("attack", "cw", r"attack must be one of 'pgd', 'fgsm'; got 'cw'"),
    ("norm", "l1", r"norm must be one of 'inf', '2'; got 'l1'"),
    ("steps", 0, r"steps must be a whole number >= 1; got 0"),
    ("steps", 2.5, r"steps must be a whole number >= 1; got 2.5"),
    ("target", 3, r"target 3 is out of range"),
    ("image_index", 3, r"image_index 3 is out of range"),
])
def test_a_bad_value_from_python_raises_is_shown_and_the_widget_keeps_working(widget, name, value, match):
    old, before = getattr(widget, name), widget.adv_image
    with pytest.raises(cw.CnnWidgetError, match=match):
        setattr(widget, name, value)
    assert getattr(widget, name) == old and re_search(match, widget.error)
    assert widget.adv_image == before and not widget.running
    widget.epsilon = 0.03  # a good value clears the message and recomputes
    assert widget.wait(60) and widget.error == "" and widget.shown["epsilon"] == 0.03


def re_search(pattern, text):
    import re

    return re.search(pattern, text) is not None


@pytest.mark.parametrize("state, match", [
    ({"epsilon": -0.5}, "epsilon must be a number >= 0, or a fraction such as 8/255; got -0.5"),
    ({"epsilon": "abc"}, "epsilon must be a number >= 0, or a fraction such as 8/255; got 'abc'"),
    ({"epsilon": "nan"}, "epsilon must be a number >= 0, or a fraction such as 8/255; got 'nan'"),
    ({"epsilon": 5}, "epsilon 5 is too large for the L-inf norm: it must be <= 1"),
    ({"steps": 2.5}, "steps must be a whole number >= 1; got 2.5"),
    ({"steps": 0}, "steps must be a whole number >= 1; got 0"),
    ({"target": 7}, "target 7 is out of range"),
    ({"adv_image": b"x"}, "adv_image is set by the widget"),
])
def test_a_bad_value_from_the_page_is_shown_not_raised_and_the_widget_keeps_working(widget, state, match):
    name = next(iter(state))
    old = getattr(widget, name)
    widget.set_state(state)  # what an update from the browser does
    assert match in widget.error and getattr(widget, name) == old
    widget.set_state({"epsilon": 0.01})
    assert widget.wait(60) and widget.error == "" and widget.shown["epsilon"] == 0.01


def test_cancel_stops_a_long_attack_within_a_step_and_keeps_the_last_drawing(widget):
    before = dict(widget.shown)
    widget.steps = 100000
    wait_for(lambda: widget.progress.get("done", 0) >= 2)
    assert widget.running and widget.progress["total"] == 100000
    widget.send = lambda *a, **k: None
    widget._on_action(widget, {"action": "cancel"}, [])  # what the Cancel button sends
    assert widget.wait(30)
    assert widget.status.startswith("cancelled") and widget.shown == before and widget.error == ""
    widget.steps = 2
    assert widget.wait(60) and widget.shown["steps"] == 2


def test_compute_attacks_again_with_the_current_settings(widget):
    before = dict(widget.shown)
    widget.compute().wait(60)
    assert widget.shown == before and widget.error == "" and not widget.status.startswith("cancelled")


def test_with_data_the_accuracy_against_epsilon_curve_is_drawn(probe):
    labels = probe.predict(IMAGES).argmax(-1)
    w = cw.RobustnessView(probe, IMAGES, data=(IMAGES, labels), steps=2, curve_epsilons=[0.0, 0.02, 0.3])
    try:
        assert w.wait(120) and w.error == ""
        assert w.curve["epsilons"] == [0.0, 0.02, 0.3] and w.curve["accuracy"][0] == 1.0
        direct = adv.robustness_curve(probe, (IMAGES, labels), [0.0, 0.02, 0.3], steps=2)
        assert w.curve["accuracy"] == list(direct.accuracy)
        line, marker = w.curve_chart.marks
        np.testing.assert_allclose(np.asarray(line.y), direct.accuracy)
        assert list(marker.x) == pytest.approx([w.epsilon, w.epsilon])
        # the accuracy named in the status is the one at the slider's epsilon (8/255), or the nearest point, named so
        assert "accuracy at the nearest curve point, L∞ epsilon 0.02 (not 0.03137): " in w.status
        w.epsilon = 0.1  # the curve is kept: only the marker moves
        assert w.wait(60) and list(w.curve_chart.marks[1].x) == pytest.approx([0.1, 0.1])
        assert f"accuracy at the nearest curve point, L∞ epsilon 0.02 (not 0.1): {direct.accuracy[1]:.0%}" in w.status
        w.epsilon = 0.3
        assert w.wait(60) and f"accuracy at this L∞ epsilon 0.3: {direct.accuracy[2]:.0%} of 3 images" in w.status
        w.attack = "fgsm"  # another attack: its own curve
        assert w.wait(120) and w.curve["attack"] == "fgsm"
    finally:
        w.close()


@pytest.mark.parametrize("kwargs, match", [
    ({"epsilon": -1}, "epsilon must be a number >= 0, or a fraction such as 8/255"),
    ({"epsilon": 1.5}, "epsilon 1.5 is too large for the L-inf norm"),
    ({"epsilon": 56.0, "norm": "2"}, r"epsilon 56 is too large for the L2 norm: it must be <= 27.7128"),
    ({"norm": "l3"}, "norm must be one of"),
    ({"steps": 0}, "steps must be a whole number >= 1"),
    ({"steps": 2.5}, "steps must be a whole number >= 1; got 2.5"),
    ({"target": 9}, "target 9 is out of range"),
    ({"image_index": 5}, "image_index 5 is out of range"),
    ({"epsilon_max": 0}, "epsilon_max must be > 0"),
    ({"layers": ["nope"]}, "No layer named 'nope'"),
    ({"data": (IMAGES, [0, 1])}, "3 images but 2 labels"),
    ({"data": IMAGES}, r"data must be \(images, labels\)"),
    ({"colour": "red"}, "takes no option"),
])
def test_bad_constructor_options_raise_a_clear_message(probe, kwargs, match):
    with pytest.raises(cw.CnnWidgetError, match=match):
        cw.RobustnessView(probe, IMAGES, **kwargs)


def test_close_frees_the_widget_its_charts_probe_and_model():
    gc.collect()
    comms = len(ipywidgets.Widget.widgets)
    model = small_model()
    labels = np.zeros(3, int)
    w = cw.RobustnessView(model, IMAGES, data=(IMAGES, labels), steps=2, curve_epsilons=[0.0, 0.1])
    assert w.wait(120)
    w.epsilon = 0.02
    assert w.wait(60)
    refs = [weakref.ref(x) for x in (w, w.probe, model, w.divergence_chart, w.curve_chart)]
    w.close()
    assert w.comm is None
    with pytest.raises(cw.CnnWidgetError, match="closed"):
        w.epsilon = 0.1
    del w, model
    gc.collect()
    assert [r() for r in refs] == [None] * 5
    assert len(ipywidgets.Widget.widgets) == comms


def test_close_during_an_attack_stops_it():
    w = cw.RobustnessView(small_model(), IMAGES, steps=100000)
    wait_for(lambda: w.progress.get("done", 0) >= 1)
    job = w.job
    w.close()
    assert job.wait(30) and job.cancelled
    assert not any(t.name == "cnnwidget-robustness" for t in threading.enumerate() if t.is_alive()) or job.wait(1)
