"""The public state of each widget is real traitlets on the widget itself: has_trait, traitlets.link/dlink,
widgets.link and observe(names=...) work as on any ipywidget, both ways, a bad value through a link is refused
with the message shown, and the repr is one short line."""

import ipywidgets
import numpy as np
import pytest
import traitlets as t

import cnnwidget as cw
from cnnwidget import demo

PUBLIC = {
    "ActivationGrid": ["layer", "image_index", "selected_channel", "page", "page_size", "sort", "colormap",
                       "normalization", "overlay", "overlay_opacity", "n_images", "layers"],
    "FilterGrid": ["layer", "show", "page", "layers", "n_pages"],
    "FeatureVisualization": ["mode", "objective", "layer", "channels", "classes", "x", "y", "param", "decorrelate",
                             "transforms", "steps", "size", "learning_rate", "seed", "page", "page_size",
                             "gallery_pages", "gallery_done"],
    "AttributionMap": ["image_index", "target", "opacity", "colormap", "normalization", "sign", "n_images",
                       "methods"],
    "LayerSimilarity": ["layers"],
    "TrainingMonitor": ["histogram_layer", "histogram_step"],
}
COMMON = ["error", "status", "running", "progress"]
# The monitor needs a fit and the similarity a CKA pass before they show anything: their tests are in the slow set.
SLOW = {"LayerSimilarity", "TrainingMonitor"}


def _each(names):
    return [pytest.param(n, marks=[pytest.mark.slow] if n in SLOW else []) for n in sorted(names)]


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(demo.load_model())


@pytest.fixture(scope="module")
def made(probe):
    """Widgets made on first use, shared by the module, closed at its end."""
    data = demo.shapes(16, seed=0)

    def monitor():
        mon = cw.TrainingMonitor((data.images[:8], data.labels[:8]), every=1, max_rate=0)
        model = probe.model
        model.compile("adam", "sparse_categorical_crossentropy")
        model.fit(data.images, data.labels, epochs=1, batch_size=8, verbose=0, callbacks=[mon.callback])
        return mon

    makers = {
        "ActivationGrid": lambda: cw.ActivationGrid(probe, demo.shapes(3, seed=0).images),
        "FilterGrid": lambda: cw.FilterGrid(probe),
        "FeatureVisualization": lambda: cw.FeatureVisualization(probe, "block2_relu", 0, steps=4),
        "AttributionMap": lambda: cw.AttributionMap(probe, data.images[:3], ("saliency", "grad_cam"), curve_steps=2),
        "LayerSimilarity": lambda: cw.LayerSimilarity(probe, data=data.images, layers=["block1_conv", "block2_conv"],
                                                      batch_size=8),
        "TrainingMonitor": monitor,
    }
    widgets = {}

    def get(name):
        if name not in widgets:
            widgets[name] = makers[name]()
            assert widgets[name].wait(180)
        return widgets[name]

    yield get
    for w in widgets.values():
        w.close()


@pytest.mark.parametrize("name", _each(PUBLIC))
def test_every_public_name_is_a_trait_of_the_widget_itself(made, name):
    widget = made(name)
    missing = [n for n in PUBLIC[name] + COMMON if not widget.has_trait(n)]
    assert missing == [] and widget.view is widget


@pytest.mark.parametrize("name", _each(PUBLIC))
def test_the_repr_is_one_short_line(made, name):
    text = repr(made(name))
    assert text.startswith(f"<{name} ") and "\n" not in text and len(text) < 160, text
    assert name == "TrainingMonitor" or " model " in text  # the monitor follows a fit, not a model


def test_a_grid_channel_links_both_ways_with_an_int_slider(made):
    grid = made("ActivationGrid")
    slider = ipywidgets.IntSlider(min=-1, max=15)
    link = t.link((grid, "selected_channel"), (slider, "value"))
    slider.value = 4
    assert grid.selected_channel == 4 and grid.focus_meta["channel"] == 4
    grid.selected_channel = 9
    assert slider.value == 9
    link.unlink()


def test_a_grid_layer_links_both_ways_with_a_dropdown_through_widgets_link(made):
    grid = made("ActivationGrid")
    names = [layer["name"] for layer in grid.layers]
    dropdown = ipywidgets.Dropdown(options=names, value=grid.layer)
    link = ipywidgets.link((dropdown, "value"), (grid, "layer"))
    dropdown.value = "block2_conv"
    assert grid.layer == "block2_conv" and grid.tile_meta["n_channels"] == 32
    grid.layer = "block1_conv"
    assert dropdown.value == "block1_conv"
    link.unlink()


def test_a_bad_value_through_a_link_is_refused_and_shown(made):
    grid = made("ActivationGrid")
    slider = ipywidgets.IntSlider(min=-1, max=500)
    link = t.link((slider, "value"), (grid, "selected_channel"))
    with pytest.raises(cw.OptionError, match="selected_channel must be between 0 and 15"):
        slider.value = 300
    assert grid.selected_channel != 300 and "between 0 and 15" in grid.error
    link.unlink()


def test_dlink_and_observe_by_name_follow_the_grid(made):
    grid = made("ActivationGrid")
    seen, label = [], ipywidgets.Label()
    grid.observe(lambda change: seen.append(change["new"]), names=["colormap"])
    dlink = t.dlink((grid, "colormap"), (label, "value"))
    grid.colormap = "magma"
    assert seen[-1] == "magma" and label.value == "magma"
    dlink.unlink()


def test_filter_grid_page_and_layer_link_both_ways(made):
    filters = made("FilterGrid")
    dropdown = ipywidgets.Dropdown(options=filters.layers, value=filters.layer)
    link = ipywidgets.link((dropdown, "value"), (filters, "layer"))
    dropdown.value = filters.layers[1]
    assert filters.layer == filters.layers[1] and filters.meta["per_input"]
    filters.layer = filters.layers[0]
    assert dropdown.value == filters.layers[0]
    link.unlink()


def test_feature_visualization_steps_and_objective_link_both_ways(made):
    fvw = made("FeatureVisualization")
    slider = ipywidgets.IntSlider(min=1, max=512, value=fvw.steps)
    dropdown = ipywidgets.Dropdown(options=["channel", "neuron", "class"], value=fvw.objective)
    links = [t.link((slider, "value"), (fvw, "steps")), ipywidgets.link((dropdown, "value"), (fvw, "objective"))]
    slider.value = 32
    dropdown.value = "neuron"
    assert (fvw.steps, fvw.objective) == (32, "neuron")
    fvw.configure(steps=16, objective="channel")
    assert (slider.value, dropdown.value) == (16, "channel")
    for link in links:
        link.unlink()


def test_interactive_output_runs_on_a_widget_trait(made):
    grid = made("ActivationGrid")
    seen = []
    slider = ipywidgets.IntSlider(min=-1, max=15)
    t.link((grid, "selected_channel"), (slider, "value"))
    ipywidgets.interactive_output(lambda channel: seen.append(channel), {"channel": slider})
    grid.selected_channel = 3
    assert seen[-1] == 3


def test_an_attribution_target_links_both_ways_with_an_int_slider(made):
    am = made("AttributionMap")
    other = am.predictions[1]["index"]
    slider = ipywidgets.IntSlider(min=0, max=9, value=am.target)
    link = t.link((slider, "value"), (am, "target"))
    slider.value = other  # returns once the fast maps of that class are there
    assert am.target == other and am.maps_meta["target"] == other
    am.target = am.predictions[0]["index"]
    assert slider.value == am.target
    link.unlink()
    assert am.wait(180)


def test_an_attribution_colormap_links_both_ways_with_a_dropdown_through_widgets_link(made):
    am = made("AttributionMap")
    dropdown = ipywidgets.Dropdown(options=["magma", "viridis", "gray", "coolwarm"], value=am.colormap)
    link = ipywidgets.link((dropdown, "value"), (am, "colormap"))
    dropdown.value = "viridis"
    assert am.colormap == "viridis"
    am.colormap = "gray"
    assert dropdown.value == "gray"
    link.unlink()


def test_a_bad_target_through_a_link_is_refused_and_shown(made):
    am = made("AttributionMap")
    slider = ipywidgets.IntSlider(min=0, max=500, value=am.target)
    link = t.link((slider, "value"), (am, "target"))
    with pytest.raises(cw.OptionError, match="target 300 is out of range"):
        slider.value = 300
    assert am.target != 300 and "out of range" in am.error
    link.unlink()


@pytest.mark.slow
def test_similarity_layers_link_with_a_select_multiple_and_a_bad_layer_is_refused(made):
    sim = made("LayerSimilarity")
    pick = ipywidgets.SelectMultiple(options=["block1_conv", "block2_conv", "block3_conv", "nope"],
                                     value=("block1_conv", "block2_conv"))
    link = t.dlink((pick, "value"), (sim, "layers"), list)
    pick.value = ("block2_conv", "block3_conv")
    assert sim.layers == ["block2_conv", "block3_conv"] and sim.wait(180) and sim.cka.shape == (2, 2)
    with pytest.raises(cw.LayerError, match="nope"):
        pick.value = ("block1_conv", "nope")
    assert sim.layers == ["block2_conv", "block3_conv"] and "nope" in sim.error
    link.unlink()


@pytest.mark.slow
def test_the_monitor_histogram_step_links_with_an_int_slider(made):
    mon = made("TrainingMonitor")
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


@pytest.mark.slow
def test_the_monitor_histogram_layer_is_one_of_the_pickers_options(made):
    mon = made("TrainingMonitor")
    choice = mon.hist_layer.options[-1]
    mon.histogram_layer = choice
    assert mon.hist_layer.value == choice and mon.hist_fig.title.startswith(choice.split(": ", 1)[1])
    with pytest.raises(cw.OptionError, match="histogram_layer must be one of"):
        mon.histogram_layer = "weights: nope"
    assert mon.histogram_layer == choice and np.asarray(mon._hist.y).sum() > 0
