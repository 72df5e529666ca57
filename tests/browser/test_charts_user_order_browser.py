"""Charts in the user's order, in a real JupyterLab (chromium): the widget is shown first, its data arrive later.

A bqplot chart that is drawn empty and then receives data is a different path from one displayed with its data
(bqplot 0.13's guessed tick format threw on the empty axes and the marks never redrew: the TrainingMonitor bug).
Each test shows a widget, then makes its chart's data arrive from the kernel, then reads what the page draws: marks
with real geometry, ticks that read as exact numbers inside the data, axis labels clear of the tick labels; the
harness fails the test on any browser console error. TrainingMonitor and LayerSimilarity have theirs in their own
files.
"""
from __future__ import annotations

import pytest
from harness import charts

pytestmark = pytest.mark.timeout(300)


def _numbers(labels) -> list[float]:
    return [float(t.replace("\u2212", "-").rstrip("%")) for t in labels]


# Every widget of this file in one notebook, each in its own cell, shown before any of its data is computed; the
# tests share the page and its kernel (the ``page`` fixture), each reading its own widget's cell. One kernel, one
# TensorFlow import and one demo model for the five (each test opened its own notebook: five kernels).
SIMILARITY = """
import keras, numpy as np
from cnnwidget.demo import shapes
keras.utils.set_random_seed(0)
d = shapes(64, seed=2, size=32)
def cnn(name):
    return keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(8, 3, activation="relu", name="block1_relu"),
                             keras.layers.GlobalAveragePooling2D(name="global_average_pool"),
                             keras.layers.Dense(4, activation="softmax", name="predictions")], name=name)
base, tuned = cnn("base"), cnn("tuned")
tuned.set_weights([w + 0.05 * np.random.default_rng(0).normal(size=w.shape) for w in base.get_weights()])
sim = cw.LayerSimilarity(base, tuned, d.images, layers=["block1_relu", "global_average_pool", "predictions"],
                         batch_size=16, autostart=False)
"""

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\nmodel = demo.load_model()\ndata = demo.shapes(4, seed=1)\n"
    "am = cw.AttributionMap(model, data.images, methods=['saliency', 'grad_cam'], curves=False, curve_steps=4)",
    "am",
    "g = cw.FilterGrid(model, 'block1_conv')\ng",
    "fvw = cw.FeatureVisualization(model, 'block3_relu', 5, steps=12)\nfvw",
    "probe_data = demo.shapes(16, seed=1)\nmon = cw.TrainingMonitor((probe_data.images, probe_data.labels))\nmon",
    SIMILARITY + "sim",
]


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="charts_user_order_browser")
    lab.run_all(page, timeout=240)
    with lab.kept(page):
        yield page


def _shown(lab, page, widget_class, drawn=".bqplot svg"):
    """Wait until the widget of ``widget_class`` (shown before any data) has drawn ``drawn``; the CSS root of its
    cell."""
    root = f".jp-Notebook .jp-CodeCell:has(.{widget_class})"
    lab.wait_for(page, f"{root} {drawn}")
    return root


def test_attribution_curves_arrive_in_charts_shown_once_curves_are_asked_for(lab, page):
    root = _shown(lab, page, "cnnw-am", drawn="canvas")
    # curves=False: the charts are not shown at all (empty charts waiting forever read as a stuck widget)
    assert page.evaluate("(sel) => [...document.querySelectorAll(sel + ' .cnnw-am-charts')]"
                         ".every((c) => c.offsetParent === null)", root)
    # curves now: the charts appear (made when their box first has a width, after display), then the curves
    # computed on the widget's worker arrive in them
    lab.kernel_run(page, "am.wait(180)\nam.curves = True\nam.compute()\nam.wait(180)", timeout=400)
    page.wait_for_function("(sel) => document.querySelectorAll(sel + ' .bqplot path.line').length >= 6",
                           arg=root, timeout=30_000)
    charts.settled(page, root)
    figures = page.locator(f"{root} .bqplot")
    assert figures.count() == 2
    for i in range(2):
        g = page.evaluate(charts.GEOMETRY_JS.replace("document.querySelector(sel)",
                                                     f"document.querySelectorAll(sel)[{i}]"), f"{root} .bqplot")
        # two methods and the random map's reference, curve_steps + 1 points each
        assert len(g["lines"]) == 3 and min(g["lines"]) == 5, g
        for label in ("fraction of pixels", "p(target)"):
            assert _numbers(g["ticks"][label]) == [0.0, 0.5, 1.0], g["ticks"]  # exact: never 0.2 for 0.25
    assert lab.axis_problems(page, root) == [] and charts.axis_problems(page, root) == []


def test_the_filter_histogram_follows_a_layer_chosen_after_display(lab, page):
    root = _shown(lab, page, "cnnw-filters")
    before = charts.geometry(page, root)
    lab.kernel_run(page, "g.layer = 'block3_conv'")
    page.wait_for_function("([sel, t]) => document.querySelector(sel + ' .bqplot .mainheading').textContent !== t",
                           arg=[root, before["title"]], timeout=30_000)
    charts.settled(page, root)
    g = charts.geometry(page, root)
    assert len(g["bars"]) > 10 and max(g["bars"]) > 20, g["bars"]
    counts = _numbers(g["ticks"]["count"])
    assert counts[0] == 0 and all(c == int(c) for c in counts) and counts == sorted(counts), counts  # not -163
    weights = _numbers(g["ticks"]["weight"])
    assert len(weights) >= 2 and weights == sorted(weights), weights
    assert lab.axis_problems(page, root) == [] and charts.axis_problems(page, root) == []


def test_the_loss_chart_draws_a_render_started_after_display(lab, page):
    root = _shown(lab, page, "cnnw-fv")
    charts.settled(page, root)
    assert charts.geometry(page, root)["ticks"] == {}, "ticks on a chart with no data"  # not "0 0 0 0 0 1 1 1 1 1"
    assert charts.axis_problems(page, root) == []
    lab.kernel_run(page, "fvw.render().wait(180)", timeout=200)
    page.wait_for_function("(sel) => [...document.querySelectorAll(sel + ' .bqplot path.line')]"
                           ".some((p) => ((p.getAttribute('d') || '').match(/[ML]/g) || []).length > 1)", arg=root,
                           timeout=30_000)
    charts.settled(page, root)
    g = charts.geometry(page, root)
    assert g["lines"] and max(g["lines"]) > 1, g  # a curve, not a point
    steps = _numbers(g["ticks"]["step"])
    assert steps and all(s == int(s) and 0 <= s <= 12 for s in steps), steps  # whole steps inside the render
    assert len(g["ticks"]["loss (\u2212objective)"]) >= 1, g["ticks"]
    assert lab.axis_problems(page, root) == [] and charts.axis_problems(page, root) == []


VISIBLE_CELLS = """(sel) => [...document.querySelectorAll(sel + ' .heatmapcell')].filter((c) =>
  c.getBoundingClientRect().width && c.checkVisibility({opacityProperty: true, visibilityProperty: true})).length"""


def test_a_training_monitor_shown_before_fit_draws_empty_charts(lab, page):
    """Before any fit: the line charts have no ticks (not bqplot's ten over [0, 1] printed as integers), and the
    gradient heatmap draws no cells (it was one black rectangle)."""
    root = _shown(lab, page, "cnnw-monitor", drawn=".cnnw-monitor-grad-norms svg")
    charts.settled(page, root)
    for name in ("batch-loss", "epoch-loss", "epoch-metrics"):
        g = charts.geometry(page, f"{root} .cnnw-monitor-{name}")
        if g is not None:  # epoch-metrics only with metrics
            assert g["ticks"] == {}, (name, g["ticks"])
    assert page.evaluate(VISIBLE_CELLS, f"{root} .cnnw-monitor-grad-norms") == 0
    assert charts.axis_problems(page, root) == []



def test_layer_similarity_names_and_labels_are_whole(lab, page):
    """The CKA heatmap's rotated layer names hang whole below the plot (they were cut by the figure: "block1_re",
    "predictior"; a long one is now elided on purpose), and no tick or axis label of the heatmap or the drift chart
    is cut by the figure's edge."""
    root = _shown(lab, page, "cnnw-similarity", drawn=".cnnw-similarity-cka svg")
    lab.kernel_run(page, "sim.run().wait(120)", timeout=150)
    page.wait_for_function("(sel) => document.querySelectorAll(sel + ' .heatmapcell').length >= 9",
                           arg=f"{root} .cnnw-similarity-cka", timeout=30_000)
    charts.settled(page, root)
    heat = charts.geometry(page, f"{root} .cnnw-similarity-cka")
    # a name longer than the axes' 80 px is elided in the middle (the hover gives it whole: narrow-legends test)
    assert heat["ticks"]["fine-tuned layer"] == ["block1_relu", "globa…_pool", "predictions"], heat["ticks"]
    for chart in ("cka", "drift"):  # bqplot lays a figure out again (new margins) only while it is on screen
        page.locator(f"{root} .cnnw-similarity-{chart}").first.scroll_into_view_if_needed()
        charts.settled(page, root, quiet=60, timeout=20)  # the relayout comes some frames after the scroll
    assert lab.axis_problems(page, root) == [] and charts.axis_problems(page, root) == []
    # a rotated name lies wholly below the plot area, not half under the cells
    inside = page.evaluate("""(sel) => {
      const r = document.querySelector(sel), fig = r.classList.contains('bqplot') ? r : r.querySelector('.bqplot');
      const cells = [...fig.querySelectorAll('.heatmapcell')].map((c) => c.getBoundingClientRect());
      const bottom = Math.max(...cells.map((b) => b.bottom));
      const axis = [...fig.querySelectorAll('g.axis')].find((a) =>
        a.querySelector('text.axislabel')?.textContent === 'fine-tuned layer');
      return [...axis.querySelectorAll('.tick text')].filter((t) => t.getBoundingClientRect().top < bottom - 1)
        .map((t) => t.textContent);
    }""", f"{root} .cnnw-similarity-cka")
    assert inside == [], f"names reaching into the heatmap: {inside}"
