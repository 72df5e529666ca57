"""The public state of each widget is real traitlets on the widget itself: has_trait, traitlets.link/dlink,
widgets.link and observe(names=...) work as on any ipywidget, both ways, and a bad value through a link is refused
with the message shown."""

import ipywidgets
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
}
COMMON = ["error", "status", "running", "progress"]


@pytest.fixture(scope="module")
def probe():
    return cw.ModelProbe(demo.load_model())


@pytest.fixture(scope="module")
def widgets(probe):
    made = {
        "ActivationGrid": cw.ActivationGrid(probe, demo.shapes(3, seed=0).images),
        "FilterGrid": cw.FilterGrid(probe),
        "FeatureVisualization": cw.FeatureVisualization(probe, "block2_relu", 0, steps=4),
    }
    for w in made.values():
        w.wait()
    yield made
    for w in made.values():
        w.close()


@pytest.mark.parametrize("name", sorted(PUBLIC))
def test_every_public_name_is_a_trait_of_the_widget_itself(widgets, name):
    widget = widgets[name]
    missing = [n for n in PUBLIC[name] + COMMON if not widget.has_trait(n)]
    assert missing == [] and widget.view is widget


def test_a_grid_channel_links_both_ways_with_an_int_slider(widgets):
    grid = widgets["ActivationGrid"]
    slider = ipywidgets.IntSlider(min=-1, max=15)
    link = t.link((grid, "selected_channel"), (slider, "value"))
    slider.value = 4
    assert grid.selected_channel == 4 and grid.focus_meta["channel"] == 4
    grid.selected_channel = 9
    assert slider.value == 9
    link.unlink()


def test_a_grid_layer_links_both_ways_with_a_dropdown_through_widgets_link(widgets):
    grid = widgets["ActivationGrid"]
    names = [layer["name"] for layer in grid.layers]
    dropdown = ipywidgets.Dropdown(options=names, value=grid.layer)
    link = ipywidgets.link((dropdown, "value"), (grid, "layer"))
    dropdown.value = "block2_conv"
    assert grid.layer == "block2_conv" and grid.tile_meta["n_channels"] == 32
    grid.layer = "block1_conv"
    assert dropdown.value == "block1_conv"
    link.unlink()


def test_a_bad_value_through_a_link_is_refused_and_shown(widgets):
    grid = widgets["ActivationGrid"]
    slider = ipywidgets.IntSlider(min=-1, max=500)
    link = t.link((slider, "value"), (grid, "selected_channel"))
    with pytest.raises(cw.OptionError, match="selected_channel must be between 0 and 15"):
        slider.value = 300
    assert grid.selected_channel != 300 and "between 0 and 15" in grid.error
    link.unlink()


def test_dlink_and_observe_by_name_follow_the_grid(widgets):
    grid = widgets["ActivationGrid"]
    seen, label = [], ipywidgets.Label()
    grid.observe(lambda change: seen.append(change["new"]), names=["colormap"])
    dlink = t.dlink((grid, "colormap"), (label, "value"))
    grid.colormap = "magma"
    assert seen[-1] == "magma" and label.value == "magma"
    dlink.unlink()


def test_filter_grid_page_and_layer_link_both_ways(widgets):
    filters = widgets["FilterGrid"]
    dropdown = ipywidgets.Dropdown(options=filters.layers, value=filters.layer)
    link = ipywidgets.link((dropdown, "value"), (filters, "layer"))
    dropdown.value = filters.layers[1]
    assert filters.layer == filters.layers[1] and filters.meta["per_input"]
    filters.layer = filters.layers[0]
    assert dropdown.value == filters.layers[0]
    link.unlink()


def test_feature_visualization_steps_and_objective_link_both_ways(widgets):
    fvw = widgets["FeatureVisualization"]
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


def test_interactive_output_runs_on_a_widget_trait(widgets):
    grid = widgets["ActivationGrid"]
    seen = []
    slider = ipywidgets.IntSlider(min=-1, max=15)
    t.link((grid, "selected_channel"), (slider, "value"))
    ipywidgets.interactive_output(lambda channel: seen.append(channel), {"channel": slider})
    grid.selected_channel = 3
    assert seen[-1] == 3
