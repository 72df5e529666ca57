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


def test_attribution_curves_arrive_in_charts_shown_empty(lab):
    page = lab.open_notebook([
        "import cnnwidget as cw\nfrom cnnwidget import demo\ndata = demo.shapes(4, seed=1)\n"
        "am = cw.AttributionMap(demo.load_model(), data.images, methods=['saliency', 'grad_cam'], curves=False,\n"
        "                       curve_steps=4)",
        "am",
    ])
    lab.run_all(page, timeout=240)
    root = ".jp-Notebook .jp-CodeCell:has(.cnnw-am)"
    lab.wait_for(page, f"{root} .bqplot svg")
    assert charts.geometry(page, root)["lines"] in ([], [0], [1]), "curves before any were computed"
    # curves now: computed on the widget's worker after display, then sent to the charts already on the page
    lab.kernel_run(page, "am.wait(180)\nam.curves = True\nam.compute()\nam.wait(180)", timeout=400)
    page.wait_for_function("(sel) => document.querySelectorAll(sel + ' .bqplot path.line').length >= 4",
                           arg=root, timeout=30_000)
    page.wait_for_timeout(500)
    figures = page.locator(f"{root} .bqplot")
    assert figures.count() == 2
    for i in range(2):
        g = page.evaluate(charts.GEOMETRY_JS.replace("document.querySelector(sel)",
                                                     f"document.querySelectorAll(sel)[{i}]"), f"{root} .bqplot")
        assert len(g["lines"]) == 2 and min(g["lines"]) == 5, g  # two methods, curve_steps + 1 points each
        for label in ("fraction of pixels", "p(target)"):
            assert _numbers(g["ticks"][label]) == [0.0, 0.5, 1.0], g["ticks"]  # exact: never 0.2 for 0.25
    assert lab.axis_problems(page, root) == []


def test_the_filter_histogram_follows_a_layer_chosen_after_display(lab):
    page = lab.open_notebook(["import cnnwidget as cw\nfrom cnnwidget import demo\n"
                              "g = cw.FilterGrid(demo.load_model(), 'block1_conv')", "g"])
    lab.run_all(page, timeout=240)
    root = ".jp-Notebook .jp-CodeCell:has(.cnnw-filters)"
    lab.wait_for(page, f"{root} .bqplot svg")
    before = charts.geometry(page, root)
    lab.kernel_run(page, "g.layer = 'block3_conv'")
    page.wait_for_function("([sel, t]) => document.querySelector(sel + ' .bqplot .mainheading').textContent !== t",
                           arg=[root, before["title"]], timeout=30_000)
    page.wait_for_timeout(500)
    g = charts.geometry(page, root)
    assert len(g["bars"]) > 10 and max(g["bars"]) > 20, g["bars"]
    counts = _numbers(g["ticks"]["count"])
    assert counts[0] == 0 and all(c == int(c) for c in counts) and counts == sorted(counts), counts  # not -163
    weights = _numbers(g["ticks"]["weight"])
    assert len(weights) >= 2 and weights == sorted(weights), weights
    assert lab.axis_problems(page, root) == []


def test_the_loss_chart_draws_a_render_started_after_display(lab):
    page = lab.open_notebook(["import cnnwidget as cw\nfrom cnnwidget import demo\n"
                              "fvw = cw.FeatureVisualization(demo.load_model(), 'block3_relu', 5, steps=12)", "fvw"])
    lab.run_all(page, timeout=240)
    root = ".jp-Notebook .jp-CodeCell:has(.cnnw-fv)"
    lab.wait_for(page, f"{root} .bqplot svg")
    lab.kernel_run(page, "fvw.render().wait(180)", timeout=200)
    page.wait_for_timeout(1000)
    g = charts.geometry(page, root)
    assert g["lines"] and max(g["lines"]) > 1, g  # a curve, not a point
    steps = _numbers(g["ticks"]["step"])
    assert steps and all(s == int(s) and 0 <= s <= 12 for s in steps), steps  # whole steps inside the render
    assert len(g["ticks"]["loss (\u2212objective)"]) >= 1, g["ticks"]
    assert lab.axis_problems(page, root) == []
