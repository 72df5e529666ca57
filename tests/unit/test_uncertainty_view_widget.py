"""UncertaintyView in process, on a small model with dropout: its traits, checks from Python and the page, the
calibration part, Cancel, and close() freeing widget, probe and model (weak references, as test_widget_leaks)."""

import gc
import time
import weakref

import ipywidgets
import keras
import numpy as np
import pytest
import traitlets

import cnnwidget as cw
from cnnwidget.core import CnnWidgetError
from cnnwidget.core import uncertainty as U

H = 16
NAMES = ["<b>cat</b>", "dog", "bird"]


def small_model(dropout=0.5, seed=0):
    keras.utils.set_random_seed(seed)
    inp = keras.Input((H, H, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="drop")(x)
    return keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="out")(x), name="small")


IMAGES = np.random.default_rng(0).random((4, H, H, 3)).astype("float32")
DATA = (np.random.default_rng(1).random((120, H, H, 3)).astype("float32"), np.random.default_rng(2).integers(0, 3, 120))


@pytest.fixture(scope="module")
def model():
    return small_model()


@pytest.fixture(scope="module")
def probe(model):
    return cw.ModelProbe(model)  # shared: its compiled passes are traced once for the module


@pytest.fixture
def widget(probe):
    w = cw.UncertaintyView(probe, IMAGES, class_names=NAMES, samples=8)
    assert w.wait(60)
    yield w
    w.close()


def test_shows_the_numbers_of_mc_dropout_and_the_spread_map(widget, model):
    assert widget.error == "" and widget.status.startswith("done")
    want = U.mc_dropout(model, IMAGES, samples=8, seed=0)
    np.testing.assert_array_equal(widget.result.probabilities, want.probabilities)
    s = widget.summary
    assert s["image_index"] == 0 and s["samples"] == 8 and s["label"] in NAMES
    assert s["mutual_information"] == pytest.approx(float(want.mutual_information[0]))
    assert "mutual information" in s["reading"]
    assert widget.maps_meta["done"] and len(widget.maps) == 2 * H * H and len(widget.map_ranges) == 16
    assert list(widget.distribution_chart.marks[0].x) == NAMES  # class names as data, drawn as text by bqplot
    assert widget.class_names == NAMES


def test_public_state_is_real_traitlets(widget, probe):
    other = cw.UncertaintyView(probe, IMAGES, samples=8)
    try:
        link = traitlets.link((widget, "image_index"), (other, "image_index"))
        seen = []
        other.observe(lambda c: seen.append(c["new"]), names="image_index")
        widget.image_index = 2
        assert other.image_index == 2 and seen == [2]
        assert widget.summary["image_index"] == 2  # drawn from the kept samples before the change returns
        link.unlink()
        assert widget.wait(60) and widget.maps_meta["image_index"] == 2
    finally:
        other.close()


@pytest.mark.parametrize("name, value", [("image_index", 4), ("image_index", -1), ("samples", 0),
                                         ("samples", 5000), ("seed", -3), ("spread_method", "lime")])
def test_bad_values_are_refused_from_python_and_from_the_page(widget, name, value):
    before = getattr(widget, name)
    with pytest.raises(CnnWidgetError, match=name):
        setattr(widget, name, value)
    assert getattr(widget, name) == before and name in widget.error
    widget.set_state({name: value})
    assert getattr(widget, name) == before and name in widget.error


@pytest.mark.parametrize("value", [0, -5])
def test_a_bad_sample_count_then_compute_on_the_page_keeps_the_refusal_shown(widget, value):
    # the page sends a typed box's value on blur, so a click on Compute follows the refusal at once
    widget.set_state({"samples": value})
    assert widget.samples == 8 and "samples must be" in widget.error and f"got {value}" in widget.error
    widget._on_action(widget, {"action": "compute"}, [])
    assert widget.wait(60) and "samples must be" in widget.error and widget.samples == 8
    widget.set_state({"samples": 6})  # an accepted value clears it, as does compute() from Python
    assert widget.wait(60) and widget.error == "" and widget.result.samples == 6
    widget.set_state({"samples": value})
    widget.compute()
    assert widget.wait(60) and widget.error == ""


def test_the_page_cannot_set_python_owned_state(widget):
    widget.set_state({"summary": {"reading": "<img src=x onerror=alert(1)>"}})
    assert "set by the widget" in widget.error and "<img" not in widget.summary["reading"]


def test_a_model_without_dropout_says_zero_epistemic_uncertainty():
    w = cw.UncertaintyView(small_model(dropout=None), IMAGES, samples=5)
    try:
        assert w.wait(60) and w.error == ""
        assert w.summary["mutual_information"] == 0 and w.summary["note"].startswith("no stochastic layer")
        assert "no stochastic layer" in w.status
    finally:
        w.close()


def test_calibration_part_with_data(probe):
    w = cw.UncertaintyView(probe, IMAGES, data=DATA, samples=4)
    try:
        assert w.wait(120) and w.error == "", w.error
        c = w.calibration
        assert c["before"]["n"] + w.calibration_result.split.sum() == 120 and c["temperature"] > 0
        assert len(w.uncertain_meta) == 8 and len(w.uncertain) == 8 * H * H * 3
        assert len(w.reliability_chart.marks[1].x) > 0 and w.confidence_chart.marks[0].y.sum() == 120
    finally:
        w.close()


def test_too_little_data_is_refused_at_once(model):
    with pytest.raises(U.ResultError, match="at least 100"):
        cw.UncertaintyView(model, IMAGES, data=(DATA[0][:20], DATA[1][:20]))
    with pytest.raises(cw.OptionError, match="labels"):
        cw.UncertaintyView(model, IMAGES, data=(DATA[0], DATA[1][:5]))


def test_cancel_stops_the_work_and_compute_resumes(probe):
    w = cw.UncertaintyView(probe, IMAGES, samples=8)
    try:
        w.wait(60)
        w.samples = 1000
        w.cancel()
        assert w.wait(60)
        assert w.status.startswith("cancelled") or w.result.samples == 1000
        w.samples = 6
        assert w.wait(60) and w.result.samples == 6 and w.status.startswith("done")
    finally:
        w.close()


@pytest.mark.slow
def test_close_frees_widget_probe_and_model():
    comms = len(ipywidgets.Widget.widgets)
    model = small_model()
    w = cw.UncertaintyView(model, IMAGES, data=DATA, samples=4)
    w.wait(120)
    w.image_index = 1
    refs = [weakref.ref(w), weakref.ref(w.probe), weakref.ref(model)]
    w.close()
    with pytest.raises(CnnWidgetError, match="closed"):
        w.samples = 3
    del w, model
    for _ in range(3):
        gc.collect()
        time.sleep(0.05)
    assert [type(r()).__name__ for r in refs if r() is not None] == []
    assert len(ipywidgets.Widget.widgets) == comms


def test_the_reliability_legend_is_drawn_under_the_chart_not_over_its_points():
    from pathlib import Path

    from cnnwidget.widgets import uncertainty_view as uv

    fig, lines = uv._reliability_figure()
    try:
        assert not any(line.display_legend for line in lines)  # no legend box in the plot area
        js = (Path(uv.__file__).parents[2] / "js" / "uncertainty_view.js").read_text()
        legend = js[js.index("const LEGEND"):js.index("];", js.index("const LEGEND"))]
        for line in lines:
            assert line.labels[0] in legend and line.colors[0] in legend  # same words and colours as the marks
    finally:
        fig.close()
