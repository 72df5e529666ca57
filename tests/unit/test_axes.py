"""The shared chart-axis helper (cnnwidget/widgets/_axes.py): which ticks a chart gets and how they read."""

import math

import bqplot
import numpy as np
import pytest

from cnnwidget.widgets import _axes
from cnnwidget.widgets._axes import ticks


def _value(label: str) -> float:
    """A tick label read back as a number (SI suffixes included)."""
    si = {"k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3, "µ": 1e-6}
    return float(label[:-1]) * si[label[-1]] if label[-1] in si else float(label)


def test_fractions_are_labelled_exactly():
    assert ticks(0.0, 1.0).labels == ("0.0", "0.5", "1.0")
    assert ticks(0.0, 0.8).labels == ("0.0", "0.2", "0.4", "0.6", "0.8")
    assert ticks(0.0, 100.0).labels == ("0", "25", "50", "75", "100")
    assert ticks(2.30, 2.31).labels == ("2.300", "2.305", "2.310")  # not 2.3000, 2.3025, ...


def test_integer_axes_get_whole_ticks_inside_the_data():
    assert ticks(0.99, 4.0, integer=True).labels == ("1", "2", "3", "4")  # not 0.99, 1.7, 2.5, 3.3, 4
    assert ticks(0, 15, integer=True).values == (0, 5, 10, 15)  # not -1, 3, 8, 12, 16
    assert ticks(0, 127, integer=True).values == (0, 50, 100)  # not -5, 29, 64, 98, 132
    assert ticks(1, 3, integer=True).format == "d"


def test_an_integer_axis_without_a_whole_number_in_range_has_no_ticks():
    assert ticks(0.2, 0.8, integer=True).values == ()


@pytest.mark.parametrize("lo, hi", [(5.0, 5.0), (2.302585, 2.302585), (0.0, 0.0), (-3.0, -3.0)])
def test_a_single_point_domain_gets_one_tick_at_its_value(lo, hi):
    t = ticks(lo, hi)
    assert t.values == (lo,) and math.isclose(_value(t.labels[0]), lo, rel_tol=1e-5)


@pytest.mark.parametrize("lo, hi", [(None, None), (float("nan"), 1.0), (0.0, float("inf"))])
def test_an_empty_domain_gets_no_ticks_and_still_a_format(lo, hi):
    t = ticks(lo, hi)
    assert t.values == () and t.format  # bqplot must never guess a format (".undefinedg")


@pytest.mark.parametrize("integer", [False, True])
def test_ticks_lie_inside_the_data_evenly_spaced_at_most_count_and_read_back_exactly(integer):
    rng = np.random.default_rng(0)
    for _ in range(2000):
        centre, scale = rng.normal() * 10.0 ** rng.integers(-3, 7), 10.0 ** rng.uniform(-5, 7)
        lo, hi = sorted(centre + scale * rng.normal(size=2))
        t = ticks(lo, hi, integer=integer)
        if integer and math.floor(hi) < math.ceil(lo):
            assert t.values == ()
            continue
        assert 1 <= len(t.values) <= 5, (lo, hi, t)
        assert all(lo - 1e-9 * abs(lo) <= v <= hi + 1e-9 * abs(hi) for v in t.values), (lo, hi, t)
        if len(t.values) > 1:
            steps = np.diff(t.values)
            assert np.allclose(steps, steps[0], rtol=1e-9), (lo, hi, t)
        for label, v in zip(t.labels, t.values):
            assert math.isclose(_value(label), v, rel_tol=1e-9, abs_tol=1e-12 * max(1.0, abs(hi - lo))), \
                (lo, hi, label, v, t.format)
        if integer:
            assert all(v == int(v) for v in t.values) and t.format == "d"


def test_large_and_tiny_magnitudes_read_back_exactly():
    assert ticks(0, 2.5e6).labels == ("0", "1M", "2M")
    assert ticks(0, 3e-5).labels == ("0e+0", "1e-5", "2e-5", "3e-5")
    assert ticks(1.5e6, 1.7e6).labels == ("1.5M", "1.55M", "1.6M", "1.65M", "1.7M")


def _figure(kind, y, *, label="count", vertical=True):
    x, scale = bqplot.OrdinalScale(), bqplot.LinearScale()
    bars = bqplot.Bars(x=[str(i) for i in range(len(y))], y=y, scales={"x": x, "y": scale})
    ax = _axes.axis(scale, label, kind=kind, vertical=vertical)
    return _axes.follow(bqplot.Figure(marks=[bars], axes=[_axes.axis(x, kind="ordinal"), ax],
                                      fig_margin={"top": 10, "bottom": 10, "left": 10, "right": 10})), ax, bars


def test_a_count_axis_starts_at_zero():
    fig, ax, _ = _figure("count", np.array([163.0, 6500.0, 4000.0]))
    assert ax.scale.min == 0.0 and not ax.scale.allow_padding  # bqplot's padding made it start at -163
    assert list(ax.tick_values) == [0, 2000, 4000, 6000] and ax.tick_format == "d"


def test_every_axis_has_an_explicit_format_before_any_data():
    x, y = bqplot.LinearScale(), bqplot.LinearScale()
    line = bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y})
    fig = _axes.follow(bqplot.Figure(marks=[line], axes=[_axes.axis(x, "step", kind="integer"),
                                                         _axes.axis(y, "loss", vertical=True)]))
    assert [a.tick_format for a in fig.axes] == ["d", ".6~g"]
    assert [len(a.tick_values if a.tick_values is not None else []) for a in fig.axes] == [0, 0]


def test_ticks_follow_the_data_of_the_marks():
    x, y = bqplot.LinearScale(), bqplot.LinearScale()
    line = bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y})
    fig = _axes.follow(bqplot.Figure(marks=[line], axes=[_axes.axis(x, "epoch", kind="integer"),
                                                         _axes.axis(y, "loss", vertical=True)]))
    with line.hold_sync():
        line.x, line.y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.31, 2.305, 2.301, 2.30])
    assert list(fig.axes[0].tick_values) == [1, 2, 3, 4]
    assert fig.axes[1].tick_format == ".3f" and list(fig.axes[1].tick_values) == pytest.approx([2.3, 2.305, 2.31])


def test_a_scale_with_fixed_bounds_is_ticked_over_them():
    x, y = bqplot.LinearScale(min=0.0, max=1.0), bqplot.LinearScale(min=0.0, max=1.0)
    line = bqplot.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y})
    fig = _axes.follow(bqplot.Figure(marks=[line], axes=[_axes.axis(x, "fraction of pixels"),
                                                         _axes.axis(y, "p(target)", vertical=True)]))
    assert [a.tick_format for a in fig.axes] == [".1f", ".1f"]
    assert list(fig.axes[0].tick_values) == [0.0, 0.5, 1.0]


def test_a_vertical_label_clears_its_longest_tick_label_and_the_margin_makes_room():
    fig, ax, bars = _figure("count", np.array([1.0, 2.0]))
    short = int(ax.label_offset.rstrip("px"))
    bars.y = np.array([1.0, 2_000_000.0])  # tick labels "0", "500000", ...: six characters more
    long = int(ax.label_offset.rstrip("px"))
    assert long >= short + 6 * 5.8  # 5.8 px: a digit of bqplot's 12px tick font, measured in chromium
    assert fig.fig_margin["left"] >= long + 14  # the 14px label fits inside the figure


def test_rotated_names_get_room_below_the_axis():
    x, y = bqplot.OrdinalScale(), bqplot.LinearScale()
    names = ["conv1", "a_much_longer_layer_name"]
    bars = bqplot.Bars(x=names, y=[1.0, 2.0], scales={"x": x, "y": y})
    fig = _axes.follow(bqplot.Figure(marks=[bars], axes=[_axes.axis(x, "layer", kind="ordinal", rotate=-45),
                                                         _axes.axis(y, vertical=True)]))
    reach = len(names[1]) * 5.8 * math.sin(math.pi / 4)  # how far the longest name reaches down
    assert int(fig.axes[0].label_offset.rstrip("px")) > reach and fig.fig_margin["bottom"] > reach + 14


def test_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of"):
        _axes.axis(bqplot.LinearScale(), kind="log")


def test_a_percent_axis_prints_fractions_as_exact_percentages():
    x, y = bqplot.LinearScale(), bqplot.LinearScale(min=0.0, max=1.0)
    dots = bqplot.Scatter(x=[0.0, 1.0], y=[0.0, 1.0], scales={"x": x, "y": y})
    fig = _axes.follow(bqplot.Figure(marks=[dots], axes=[_axes.axis(y, "<= 0", kind="percent", vertical=True)]))
    assert list(fig.axes[0].tick_values) == [0.0, 0.25, 0.5, 0.75, 1.0] and fig.axes[0].tick_format == ".0%"


def _widgets():
    import cnnwidget as cw
    from cnnwidget import demo

    model, data = demo.load_model(), demo.shapes(16, seed=1)
    return {
        "ActivationGrid": lambda: cw.ActivationGrid(model, data.images),
        "FilterGrid": lambda: cw.FilterGrid(model),
        "FeatureVisualization": lambda: cw.FeatureVisualization(model, "block3_relu", 0, steps=4),
        "AttributionMap": lambda: cw.AttributionMap(model, data.images, methods=["saliency"], curves=False),
        "LayerSimilarity": lambda: cw.LayerSimilarity(model, data=data.images, layers=["block1_conv", "block2_conv"],
                                                      autostart=False),
        "TrainingMonitor": lambda: cw.TrainingMonitor((data.images, data.labels)),
    }


@pytest.mark.parametrize("name", ["ActivationGrid", "FilterGrid", "FeatureVisualization", "AttributionMap",
                                  "LayerSimilarity", "TrainingMonitor"])
def test_every_chart_axis_of_every_widget_comes_from_the_helper(name):
    import ipywidgets

    before = set(ipywidgets.Widget.widgets)
    widget = _widgets()[name]()
    try:
        axes = [w for k, w in list(ipywidgets.Widget.widgets.items())
                if k not in before and isinstance(w, bqplot.Axis)]
        assert axes, f"{name} made no bqplot axis"
        plain = [f"{type(a).__name__}(label={a.label!r})" for a in axes if not hasattr(a, "_cnnw_kind")]
        assert plain == [], f"{name}: axes not made by widgets/_axes.py (their ticks are bqplot's guesses)"
        assert all(a.tick_format or a._cnnw_kind == "ordinal" for a in axes)
    finally:
        widget.close()


def _drawn(a) -> list[str]:
    """The tick labels bqplot 0.13 draws for axis ``a`` (Axis.set_tick_values): ``tick_values`` if any (thinned to
    ``num_ticks``); else none if ``num_ticks`` < 2; else d3's ten ticks over the scale's domain, [0, 1] when empty."""
    values = list(a.tick_values if a.tick_values is not None else [])
    if not values:
        if a.num_ticks is not None:
            return []
        values = list(np.linspace(0.0, 1.0, 11))
    elif a.num_ticks is not None and len(values) > a.num_ticks:
        values = values[::len(values) // max(a.num_ticks - 1, 1)]
    return [_axes._print(v, a.tick_format) if not a.tick_format.endswith("%") else f"{v:{a.tick_format}}"
            for v in values]


def _line_figure(kind, x=(), y=()):
    xs, ys = bqplot.LinearScale(), bqplot.LinearScale()
    line = bqplot.Lines(x=np.asarray(x, float), y=np.asarray(y, float), scales={"x": xs, "y": ys})
    return _axes.follow(bqplot.Figure(marks=[line], axes=[_axes.axis(xs, "step", kind=kind),
                                                          _axes.axis(ys, "loss", vertical=True)])), line


@pytest.mark.parametrize("kind", ["integer", "real", "count", "percent"])
def test_an_axis_shown_before_its_data_draws_no_ticks(kind):
    fig, _ = _line_figure(kind)
    assert [_drawn(a) for a in fig.axes] == [[], []]  # was "0 0 0 0 0 1 1 1 1 1" (bqplot's ten over [0, 1])


def test_a_colour_bar_shown_before_its_data_draws_no_ticks():
    color = bqplot.ColorScale(scheme="viridis")
    grid = bqplot.GridHeatMap(color=np.full((2, 2), np.nan), row=["", " "], column=[0, 1],
                              scales={"row": bqplot.OrdinalScale(), "column": bqplot.OrdinalScale(), "color": color})
    fig = _axes.follow(bqplot.Figure(marks=[grid], axes=[_axes.color_axis(color, "log10 |grad|")]))
    assert _drawn(fig.axes[0]) == []


def test_an_axis_whose_data_arrive_later_draws_exactly_their_ticks():
    fig, line = _line_figure("integer")
    with line.hold_sync():
        line.x, line.y = np.arange(13.0), np.linspace(2.0, 1.0, 13)
    assert _drawn(fig.axes[0]) == ["0", "5", "10"]
    with line.hold_sync():
        line.x, line.y = np.zeros(0), np.zeros(0)  # cleared again (a new fit): no ticks again, not bqplot's ten
    assert _drawn(fig.axes[0]) == []


@pytest.mark.parametrize("x", [[0.0], [0.0, 0.4], [0.0, 1.0], [0.0, 2.0], [3.0, 3.5], [0.5, 0.7]])
def test_an_integer_axis_over_a_tiny_domain_never_repeats_a_label(x):
    fig, line = _line_figure("integer")
    with line.hold_sync():
        line.x, line.y = np.asarray(x), np.zeros(len(x))
    labels = _drawn(fig.axes[0])
    assert len(labels) == len(set(labels)) and len(labels) <= 5, labels
    assert all(x[0] <= float(v) <= x[-1] for v in labels), labels


@pytest.mark.parametrize("integer", [False, True])
def test_tick_labels_are_distinct_over_any_domain(integer):
    rng = np.random.default_rng(1)
    for _ in range(2000):
        lo = rng.normal() * 10.0 ** rng.integers(-3, 7)
        hi = lo + 10.0 ** rng.uniform(-6, 3) * abs(lo or 1.0)
        labels = ticks(lo, hi, integer=integer).labels
        assert len(labels) == len(set(labels)), (lo, hi, labels)


def test_the_end_labels_of_a_horizontal_axis_fit_inside_the_figure():
    xs, ys = bqplot.LinearScale(min=0.0, max=2_000_000.0), bqplot.LinearScale()
    line = bqplot.Lines(x=[0.0, 1.0], y=[0.0, 1.0], scales={"x": xs, "y": ys})
    fig = _axes.follow(bqplot.Figure(marks=[line], axes=[_axes.axis(xs, "pixels")],
                                     fig_margin={"top": 10, "bottom": 10, "left": 4, "right": 4}))
    last = _drawn(fig.axes[0])[-1]
    assert fig.fig_margin["right"] >= len(last) * 5.8 / 2  # the last label is centred on the plot's right edge


def test_rotated_names_hang_below_the_axis_and_the_first_one_fits_on_the_left():
    x, y = bqplot.OrdinalScale(), bqplot.LinearScale()
    names = ["predictions", "block1_relu_with_a_long_name"]
    bars = bqplot.Bars(x=names, y=[1.0, 2.0], scales={"x": x, "y": y})
    fig = _axes.follow(bqplot.Figure(marks=[bars], axes=[_axes.axis(x, kind="ordinal", rotate=-45)],
                                     fig_margin={"top": 10, "bottom": 10, "left": 10, "right": 10}))
    # bqplot rotates each name about its middle: half of it would lie inside the plot, under the bars
    assert fig.axes[0].tick_style.get("text-anchor") == "end"
    assert fig.fig_margin["left"] >= max(len(n) for n in names) * 5.8 * math.cos(math.pi / 4)


def test_the_gradient_heatmap_draws_nothing_before_fit():
    widget = _widgets()["TrainingMonitor"]()
    try:
        assert widget._grad.visible is False  # an all-NaN grid on an open colour scale drew a black rectangle
    finally:
        widget.close()


def test_the_curve_charts_keep_the_y_origin_label_off_the_x_origin_label():
    from cnnwidget.widgets.attribution_map import _curve_chart

    fig = _curve_chart("deletion")
    x, y = fig.axes  # both bounded from the start: the same ticks before and after the curves
    assert _drawn(x) == ["0.0", "0.5", "1.0"] and _drawn(y) == ["0.0", "0.5", "1.0"]
    assert y.scale.min < 0.0  # "0.0" of y sits above the axis line, not on x's "0.0"
