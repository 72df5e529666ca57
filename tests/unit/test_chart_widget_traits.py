"""TrainingMonitor, LayerSimilarity and AttributionMap (the widgets built of charts) have their public state as real
traitlets on the widget itself, as tests/unit/test_widget_traits.py checks for the others: has_trait,
traitlets.link and widgets.link both ways, a bad value through a link refused with the message shown, a one-line
repr."""

import ipywidgets
import numpy as np
import pytest
import traitlets as t

import cnnwidget as cw
from cnnwidget import demo

PUBLIC = {
    "AttributionMap": ["image_index", "target", "opacity", "colormap", "normalization", "sign", "n_images",
                       "methods"],
    "LayerSimilarity": ["layers"],
    "TrainingMonitor": ["histogram_layer", "histogram_step"],
}
COMMON = ["error", "status", "running", "progress"]


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(demo.load_model())


@pytest.fixture(scope="module")
def widgets(probe):
    data = demo.shapes(16, seed=0)
    made = {
        "AttributionMap": cw.AttributionMap(probe, data.images[:3], ("saliency", "grad_cam"), curve_steps=2),
        "LayerSimilarity": cw.LayerSimilarity(probe, data=data.images, layers=["block1_conv", "block2_conv"],
                                              batch_size=8),
        "TrainingMonitor": cw.TrainingMonitor((data.images[:8], data.labels[:8]), every=1, max_rate=0),
    }
    model = probe.model
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(data.images, data.labels, epochs=1, batch_size=8, verbose=0, callbacks=[made["TrainingMonitor"].callback])
    for w in made.values():
        assert w.wait(180)
    yield made
    for w in made.values():
        w.close()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_is_a_trait_of_the_widget_itself(widgets, name):
    widget = widgets[name]
    missing = [n for n in PUBLIC[name] + COMMON if not widget.has_trait(n)]
    assert missing == [] and widget.view is widget


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_the_repr_is_one_short_line(widgets, name):
    text = repr(widgets[name])
    assert text.startswith(f"<{name} ") and "\n" not in text and len(text) < 160, text
    assert name == "TrainingMonitor" or " model " in text  # the monitor follows a fit, not a model


def test_an_attribution_target_links_both_ways_with_an_int_slider(widgets):
    am = widgets["AttributionMap"]
    other = am.predictions[1]["index"]
    slider = ipywidgets.IntSlider(min=0, max=9, value=am.target)
    link = t.link((slider, "value"), (am, "target"))
    slider.value = other  # returns once the fast maps of that class are there
    assert am.target == other and am.maps_meta["target"] == other
    am.target = am.predictions[0]["index"]
    assert slider.value == am.target
    link.unlink()
    assert am.wait(180)


def test_an_attribution_colormap_links_both_ways_with_a_dropdown_through_widgets_link(widgets):
    am = widgets["AttributionMap"]
    dropdown = ipywidgets.Dropdown(options=["magma", "viridis", "gray", "coolwarm"], value=am.colormap)
    link = ipywidgets.link((dropdown, "value"), (am, "colormap"))
    dropdown.value = "viridis"
    assert am.colormap == "viridis"
    am.colormap = "gray"
    assert dropdown.value == "gray"
    link.unlink()


def test_a_bad_target_through_a_link_is_refused_and_shown(widgets):
    am = widgets["AttributionMap"]
    slider = ipywidgets.IntSlider(min=0, max=500, value=am.target)
    link = t.link((slider, "value"), (am, "target"))
    with pytest.raises(cw.OptionError, match="target 300 is out of range"):
        slider.value = 300
    assert am.target != 300 and "out of range" in am.error
    link.unlink()


def test_similarity_layers_link_with_a_select_multiple_and_a_bad_layer_is_refused(widgets):
    sim = widgets["LayerSimilarity"]
    pick = ipywidgets.SelectMultiple(options=["block1_conv", "block2_conv", "block3_conv", "nope"],
                                     value=("block1_conv", "block2_conv"))
    link = t.dlink((pick, "value"), (sim, "layers"), list)
    pick.value = ("block2_conv", "block3_conv")
    assert sim.layers == ["block2_conv", "block3_conv"] and sim.wait(180) and sim.cka.shape == (2, 2)
    with pytest.raises(cw.LayerError, match="nope"):
        pick.value = ("block1_conv", "nope")
    assert sim.layers == ["block2_conv", "block3_conv"] and "nope" in sim.error
    link.unlink()


def test_the_monitor_histogram_step_links_with_an_int_slider(widgets):
    mon = widgets["TrainingMonitor"]
    last = len(mon.history["probe_step"]) - 1
    slider = ipywidgets.IntSlider(min=0, max=last, value=mon.histogram_step)
    link = t.link((slider, "value"), (mon, "histogram_step"))
    slider.value = 0
    assert mon.histogram_step == 0 and mon.hist_step.value == 0
    assert mon.hist_fig.title.endswith(f"at step {int(mon.history['probe_step'][0])}")
    mon.histogram_step = last
    assert slider.value == last
    link.unlink()
    with pytest.raises(cw.OptionError, match="histogram_step must be between 0 and"):
        mon.histogram_step = last + 5
    assert mon.histogram_step == last


def test_the_monitor_histogram_layer_is_one_of_the_pickers_options(widgets):
    mon = widgets["TrainingMonitor"]
    choice = mon.hist_layer.options[-1]
    mon.histogram_layer = choice
    assert mon.hist_layer.value == choice and mon.hist_fig.title.startswith(choice.split(": ", 1)[1])
    with pytest.raises(cw.OptionError, match="histogram_layer must be one of"):
        mon.histogram_layer = "weights: nope"
    assert mon.histogram_layer == choice and np.asarray(mon._hist.y).sum() > 0
