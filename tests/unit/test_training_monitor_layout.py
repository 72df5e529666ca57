"""TrainingMonitor's charts in a narrow view (JupyterLab's 300 px sidebar leaves a view ~250 px, 246 px for a chart):
each shrinks to 220 px, its margins follow the text it shows, long layer names are elided on the axes and whole on
hover, and a legend too wide for the plot area starts inside it. The browser check is
tests/browser/test_narrow_legends_browser.py."""

import numpy as np

from cnnwidget.widgets import _axes
from cnnwidget.widgets.training_monitor import _bars_figure, _grid_figure, _lines_figure

LONG = "features_block2_separable_conv_long"
LAYERS = ["conv1", LONG, "predictions"]


def test_the_gradient_heatmap_fits_a_sidebar_view():
    """Before: 140 + 100 px margins at a 300 px minimum width (a 254 px left margin for this name)."""
    fig, grid = _grid_figure()
    steps = np.arange(0, 480, 4)
    with grid.hold_sync():
        grid.color = np.random.default_rng(0).normal(size=(3, len(steps)))
        grid.row, grid.column = LAYERS, steps
    cols, rows, bar = fig.axes
    assert fig.layout.min_width == "220px" and grid.tooltip.fields == ["row", "column", "color"]
    assert rows.tick_labels[LONG] != LONG and _axes.text_width(rows.tick_labels[LONG]) <= 80
    margin = fig.fig_margin
    plot = 246 - margin["left"] - margin["right"]
    assert margin["left"] <= 100 and margin["right"] <= 80 and plot >= 80, margin
    shown = _axes._shown([str(s) for s in steps], cols.num_ticks)
    widest = max(_axes.text_width(s) for s in shown)
    assert 2 <= len(shown) and plot / (len(shown) - 1) >= widest + 4, (shown, plot)  # the step numbers apart
    fig.close()


def test_bars_elide_names_and_show_them_whole_on_hover_and_margins_shrink_back():
    fig, bars = _bars_figure("dead unit fraction", (0.0, 1.0), labels=("layer, latest probe", ""),
                             tooltip=("layer", "dead fraction"))
    with bars.hold_sync():
        bars.x, bars.y = LAYERS, np.array([0.1, 0.5, 0.0])
    names = fig.axes[0]
    assert list(bars.x) == LAYERS and bars.tooltip.fields == ["x", "y"]
    assert set(names.tick_labels) == {LONG}
    wide = dict(fig.fig_margin)
    with bars.hold_sync():
        bars.x, bars.y = ["a", "b"], np.array([0.1, 0.2])
    assert names.tick_labels == {} and fig.fig_margin["bottom"] < wide["bottom"], (wide, fig.fig_margin)
    fig.close()


def test_a_legend_wider_than_the_sidebar_plot_area_starts_inside_it():
    fig, (line,) = _lines_figure("epoch metrics", "epoch", 1)
    from cnnwidget.widgets.training_monitor import _place_legend

    _place_legend(fig, ["accuracy", "val_accuracy"])  # bqplot's box: 14 em = 224 px, the plot area 174 px
    assert fig.legend_location == "top-left" and fig.legend_style["stroke"] == "none"
    _place_legend(fig, ["loss", "val_loss"])  # 10 em = 160 px: fits at the right
    assert fig.legend_location == "top-right" and fig.legend_style == {}
    fig.close()
