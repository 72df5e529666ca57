"""LayerSimilarity's layers after construction (from Python and from its Layers box), bad ones refused with a
message while the widget keeps its result and keeps working, and passes that overlap. The first pass, the verdicts,
Cancel and bad constructor input are tested in tests/unit/test_training_widgets.py."""

import numpy as np
import pytest

import cnnwidget as cw
from cnnwidget.demo import shapes


@pytest.fixture(scope="module")
def images():
    return shapes(96, seed=4, size=32).images


def tiny_cnn(name="tiny"):
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
                             keras.layers.Conv2D(6, 3, activation="relu", name="conv2"),
                             keras.layers.GlobalAveragePooling2D(name="gap"),
                             keras.layers.Dense(3, name="out")], name=name)


@pytest.fixture(scope="module")
def pair():
    """A base model and a copy of it with conv2 changed (no fit needed for the layer names to pair)."""
    base = tiny_cnn("base")
    tuned = tiny_cnn("tuned")
    tuned.set_weights(base.get_weights())
    kernel = tuned.get_layer("conv2").kernel
    kernel.assign(kernel.numpy()[..., ::-1] * 2)
    return base, tuned


def test_setting_layers_from_python_runs_a_pass_over_them(images):
    sim = cw.LayerSimilarity(tiny_cnn(), data=images, layers=["conv1", "conv2"], batch_size=32)
    assert sim.job.wait(120) and sim.cka.shape == (2, 2)
    sim.layers = ["conv1", "conv2", "gap"]
    assert sim.job.wait(120) and sim.error == ""
    assert sim.cka.shape == (3, 3) and list(sim._grid.row) == ["conv1", "conv2", "gap"]
    assert sim.layers == ["conv1", "conv2", "gap"] and sim.layers_box.value == "conv1, conv2, gap"
    # idle, the progress bar is empty and hidden (it stayed full after a pass, as if one were running)
    assert sim.wait(120) and sim.progress["fraction"] == 1.0
    assert (sim._bar.value, sim._bar.layout.visibility) == (0.0, "hidden")


@pytest.mark.slow
def test_bad_layers_from_python_raise_show_a_message_and_keep_the_result(pair, images):
    base, tuned = pair
    sim = cw.LayerSimilarity(base, tuned, images, layers=["conv1", "conv2"], batch_size=32)
    assert sim.job.wait(120)
    shown, job = sim.cka.copy(), sim.job
    with pytest.raises(cw.OptionError, match="a list of names"):
        sim.layers = 3
    with pytest.raises(cw.LayerError, match="nope"):
        sim.layers = ["conv1", "nope"]
    assert "nope" in sim.error and sim.job is job  # no pass started
    assert sim.layers == ["conv1", "conv2"] and np.array_equal(sim.cka, shown)
    assert np.array_equal(sim._grid.color, shown) and sim.layers_box.value == "conv1, conv2"
    sim.layers = ["conv2", "out"]  # still working
    assert sim.job.wait(120) and sim.error == "" and sim.comparison.layers == ["conv2", "out"]


@pytest.mark.slow
def test_bad_layers_typed_in_the_box_show_a_message_and_the_box_shows_the_layers_in_use(pair, images):
    import keras

    base, _ = pair
    other = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="conv1"),
                              keras.layers.GlobalAveragePooling2D(name="gap")], name="other")
    sim = cw.LayerSimilarity(base, other, images, layers=["conv1", "gap"], batch_size=32)
    assert sim.job.wait(120)
    job = sim.job
    sim.layers_box.value = ""  # every layer: the two models' layers do not match
    assert "do not match" in sim.error and "only in the first: ['conv2', 'out']" in sim.error
    assert sim.layers_box.value == "conv1, gap" and sim.job is job and not sim.running
    sim.layers_box.value = "conv1"
    assert sim.job.wait(120) and sim.error == "" and sim.comparison.layers == ["conv1"]


def test_one_layer_is_given_in_the_heatmap_title(images):
    sim = cw.LayerSimilarity(tiny_cnn(), data=images, layers=["conv1", "conv2"], batch_size=32)
    assert sim.job.wait(120) and sim.heatmap.title == "linear CKA"
    sim.layers = "conv2"
    assert sim.job.wait(120) and sim.heatmap.title == "linear CKA of conv2: 1.000"
    assert np.isnan(sim._grid.color).all()  # not the two layers of the pass before


def test_a_replaced_pass_leaves_progress_and_result_to_the_new_one(images):
    sim = cw.LayerSimilarity(tiny_cnn(), data=np.repeat(images, 40, axis=0), layers=["conv1", "conv2"],
                             batch_size=8, autostart=False)
    first = sim.run()
    second = sim.run()  # cancels the first
    assert first.wait(120) and first.cancelled
    assert sim.running and not sim.status.startswith("cancelled"), sim.status  # the second's, not the first's
    sim.cancel()
    assert second.wait(120) and not sim.running and sim.status.startswith("cancelled")


# -- a narrow view (JupyterLab's sidebar: ~250 px, 246 px for a chart) -------------------------------------------

DEEP = [f"block{i // 5 + 1}_{kind}" for i, kind in enumerate(["conv", "bn", "relu", "pool", "dropout"] * 4)] + [
    "features_block2_separable_conv_long", "predictions"]


def test_the_heatmap_fits_a_sidebar_view_and_names_every_layer_whole_on_hover():
    """The heatmap's margins follow the names shown: long names elided on the axes (bqplot tick_labels; the marks
    keep the full names, which the tooltip shows), the column names thinned to fit 246 px, and the plot area keeps
    most of the chart's width. Before: margins 140 + 100 px at a 320 px minimum width, every name whole."""
    from cnnwidget.widgets import _axes
    from cnnwidget.widgets.layer_similarity import _heatmap

    fig, grid = _heatmap(False)
    with grid.hold_sync():
        grid.color = np.eye(len(DEEP))
        grid.row, grid.column = DEEP, DEEP
    cols, rows, _bar = fig.axes
    assert fig.layout.min_width == "220px"
    assert grid.tooltip.fields == ["row", "column", "color"] and list(grid.row) == DEEP  # hover: the full names
    long = "features_block2_separable_conv_long"
    short = rows.tick_labels[long]
    assert short != long and "\u2026" in short and _axes.text_width(short) <= 80
    assert rows.tick_labels == cols.tick_labels and len(set(rows.tick_labels.values())) == len(rows.tick_labels)
    assert rows.tick_labels.get("block3_dropout", "block3_dropout").startswith("block3")  # the block number stays
    margin = fig.fig_margin
    plot = 246 - margin["left"] - margin["right"]
    assert margin["left"] <= 120 and margin["right"] <= 70 and plot >= 60, margin
    shown = _axes._shown(DEEP, cols.num_ticks)
    assert 2 <= len(shown) < len(DEEP)
    pitch = plot / len(DEEP) * (len(DEEP) // (cols.num_ticks - 1))  # px between two names shown, at 246 px
    assert pitch * 0.7071 >= 14, (pitch, cols.num_ticks)  # rotated 45 degrees: 14 px apart at least
    assert rows.num_ticks is None  # 22 names fit the 520 px height
    fig.close()
