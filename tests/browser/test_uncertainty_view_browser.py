"""UncertaintyView in a real JupyterLab (chromium), on the demo model, in the user's order: the widget is shown
first (its cell returns at once), then its numbers, maps and charts arrive from the worker. One notebook page is
shared (``lab.kept``). The harness fails a test on any browser console error.
"""
from __future__ import annotations

import pytest
from harness import charts

pytestmark = pytest.mark.timeout(400)

ROOT = ".jp-Notebook .cnnw-uv"
CELL = ".jp-Notebook .jp-CodeCell:has(.cnnw-uv)"
NAMES = "['<b>circle</b>', 'square', 'triangle', 'star', 'cross', 'ring', 'heart', 'moon', 'arrow', 'diamond']"
CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(3, seed=1234)\nheld = demo.shapes(150, seed=7)\n"
    f"uv = cw.UncertaintyView(demo.load_model(), data.images, data=(held.images, held.labels), class_names={NAMES},\n"
    "                        samples=12)",
    "uv",
]


def _wait_done(page, timeout=180):
    page.wait_for_function(
        "(sel) => { const r = document.querySelector(sel); return r && r.dataset.running === 'false' && "
        "r.querySelector('.cnnw-uv-maps').dataset.done === 'true' && "
        "!r.querySelector('.cnnw-uv-calibration').hidden && "
        "r.querySelectorAll('.cnnw-uv-uncertain canvas').length > 0; }",
        arg=ROOT, timeout=timeout * 1000)


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="uncertainty_view_browser")
    lab.run_all(page, timeout=240)
    lab.wait_for(page, ROOT)
    _wait_done(page)
    with lab.kept(page):
        yield page


def test_the_widget_shown_first_fills_in_with_maps_numbers_and_charts(lab, page):
    root = page.locator(ROOT).first
    for nth in range(3):  # the image, the mean map, the std map
        px = lab.canvas_pixels(page, f"{ROOT} .cnnw-uv-maps canvas", nth=nth)
        assert px["non_transparent"] == px["width"] * px["height"] and px["distinct_colors"] > 5, (nth, px)
    mean = lab.canvas_pixels(page, f"{ROOT} .cnnw-uv-maps canvas", nth=1)
    std = lab.canvas_pixels(page, f"{ROOT} .cnnw-uv-maps canvas", nth=2)
    assert mean["hash"] != std["hash"]
    assert "mutual information" in root.locator(".cnnw-uv-numbers").first.inner_text()
    assert root.locator(".cnnw-uv-reading").inner_text().startswith("Predicts")
    want = lab.kernel_run(page, "print(f\"{uv.calibration_result.before.ece:.4f}\")").strip()
    assert f"ECE {want}" in root.locator(".cnnw-uv-ece").inner_text()
    assert root.locator(".cnnw-uv-uncertain figure").count() == 8
    # the predictive distribution: one bar per class, drawn with real height; charts read as numbers
    g = charts.geometry(page, f"{CELL} .cnnw-uv-chart")
    assert len(g["bars"]) == 10 and max(g["bars"]) > 20, g["bars"]
    problems = lab.axis_problems(page, CELL) + charts.axis_problems(page, CELL)
    assert problems == [], problems
    assert page.locator(f"{CELL} .bqplot").count() == 3
    lab.screenshot(page, "uncertainty_view", selector=CELL)


def test_class_names_are_text_not_html(lab, page):
    root = page.locator(ROOT).first
    assert page.locator(f"{CELL} b").count() == 0
    texts = " ".join(page.evaluate("(sel) => [...document.querySelectorAll(sel)].map((t) => t.textContent)",
                                   f"{CELL} .tick text"))
    assert "<b>circle</b>" in texts
    assert root.locator("b").count() == 0


def test_a_bad_sample_count_typed_in_the_widget_is_refused_and_shown(lab, page):
    root = page.locator(ROOT).first
    box = root.locator(".cnnw-uv-samples")
    box.fill("0")
    box.press("Enter")
    error = root.locator(".cnnw-error")
    error.wait_for(state="visible", timeout=30_000)
    assert "samples must be an integer >= 1; got 0" in error.inner_text()
    assert lab.kernel_run(page, "print(uv.samples)").strip() == "12"
    page.wait_for_function("(sel) => document.querySelector(sel).value === '12'", arg=f"{ROOT} .cnnw-uv-samples")
    box.fill("8")
    box.press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('8 samples')",
                           arg=f"{ROOT} .cnnw-uv-numbers", timeout=120_000)
    assert error.is_hidden()


def test_a_bad_sample_count_typed_then_compute_clicked_is_refused_and_stays_shown(lab, page):
    root = page.locator(ROOT).first
    box = root.locator(".cnnw-uv-samples")
    kept = lab.kernel_run(page, "print(uv.samples)").strip()
    box.fill("-5")
    root.locator(".cnnw-uv-compute").click()  # the box sends -5 on blur, then the click asks for Compute
    error = root.locator(".cnnw-error")
    error.wait_for(state="visible", timeout=30_000)
    _wait_done(page)
    page.wait_for_timeout(300)
    assert "samples must be an integer >= 1; got -5" in error.inner_text() and error.is_visible()
    assert lab.kernel_run(page, "print(uv.samples)").strip() == kept
    assert box.input_value() == kept


def test_the_reliability_legend_sits_under_the_chart(lab, page):
    root = page.locator(ROOT).first
    legend = root.locator(".cnnw-uv-legend")
    assert [t.strip() for t in legend.locator(":scope > span").all_inner_texts()] == [
        "perfect", "before (T = 1)", "after temperature scaling"]
    chart = root.locator(".cnnw-uv-reliability .bqplot").first
    assert chart.locator(".legend").count() == 0 or not chart.locator(".legend").first.is_visible()
    assert legend.bounding_box()["y"] >= chart.bounding_box()["y"] + chart.bounding_box()["height"] - 1
    lab.screenshot(page, "uncertainty_reliability_legend", selector=f"{ROOT} .cnnw-uv-charts")


def test_an_image_picked_in_the_widget_redraws_its_maps(lab, page):
    root = page.locator(ROOT).first
    before = lab.canvas_pixels(page, f"{ROOT} .cnnw-uv-maps canvas", nth=0)["hash"]
    root.locator(".cnnw-uv-image").select_option("2")
    page.wait_for_function("(sel) => { const m = document.querySelector(sel); return m.dataset.image === '2' && "
                           "m.dataset.done === 'true'; }", arg=f"{ROOT} .cnnw-uv-maps", timeout=120_000)
    assert lab.canvas_pixels(page, f"{ROOT} .cnnw-uv-maps canvas", nth=0)["hash"] != before
    assert lab.kernel_run(page, "print(uv.image_index, uv.summary['image_index'])").split() == ["2", "2"]
