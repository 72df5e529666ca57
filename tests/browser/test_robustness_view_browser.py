"""The RobustnessView view in a real JupyterLab (chromium), on the demo model, in the user's order: the widget is
shown at once and its attack, charts and curve arrive from the worker after display. The slider draws a new
adversarial image, a bad epsilon typed in the page is refused in the widget (and it keeps working), Cancel stops a
long attack. The harness fails a test on any browser console error.

One notebook page is opened and run once (the module-scoped ``page`` fixture) and shared by the tests, with its
kernel: ``rv`` on the demo model in its first cell, ``deep`` on an untrained MobileNetV3Small in its second (each
read in its own cell, tagged by ``lab.cell``; the deep model had a notebook and a kernel of its own).
"""
from __future__ import annotations

import time

import pytest
from harness import charts, png

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(3, seed=1234)\nheld = demo.shapes(16, seed=1)\n"
    "rv = cw.RobustnessView(demo.load_model(), data.images, data=(held.images, held.labels),\n"
    "                       class_names=data.class_names, steps=5, curve_epsilons=[0.0, 4 / 255, 16 / 255])\n"
    "rv",  # shown at once: nothing waited for
]
DEEP_CELLS = [
    "import numpy as np, keras\n"
    "deep_model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3), classes=10)\n"
    "rng = np.random.default_rng(0)\n"
    "deep_images = (255 * rng.random((2, 96, 96, 3))).astype('float32')  # the model rescales [0, 255] pixels\n"
    "deep_held, deep_labels = (255 * rng.random((8, 96, 96, 3))).astype('float32'), rng.integers(0, 10, 8)\n"
    "deep = cw.RobustnessView(deep_model, deep_images, data=(deep_held, deep_labels), steps=2)\n"
    "deep",
]
# A view below a tall block in its own cell's output: off screen from the start (its charts get their margins and
# data while bqplot does not lay them out).
LOW_CELLS = [
    "from IPython.display import HTML, display\n"
    "display(HTML('<div style=\"height: 2600px\">(space)</div>'))\n"
    "low = cw.RobustnessView(demo.load_model(), data.images[:1], steps=2)\n"
    "display(low)",
]
CELL = '.jp-Notebook .jp-Cell[data-cw-cell="0"]'
ROOT = f"{CELL} .cnnw-rv"
DEEP_CELL = '.jp-Notebook .jp-Cell[data-cw-cell="1"]'
DEEP_ROOT = f"{DEEP_CELL} .cnnw-rv"


def _canvas(kind: str) -> str:
    return f"{ROOT} canvas.cnnw-rv-{kind}"


def _wait_running(page, value: bool, timeout: float = 60, root: str = ROOT):
    page.wait_for_function(f"(sel) => document.querySelector(sel)?.dataset.running === '{str(value).lower()}'",
                           arg=root, timeout=timeout * 1000)


def _drawn(page) -> int:
    return int(page.evaluate("(sel) => document.querySelector(sel).dataset.drawn ?? '0'", ROOT))


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS + DEEP_CELLS + LOW_CELLS, name="robustness_view_browser")
    lab.run_all(page)
    assert (lab.cell(page, 0), lab.cell(page, 1)) == (CELL, DEEP_CELL)
    lab.wait_for(page, ROOT)
    page.wait_for_function("(sel) => Number(document.querySelector(sel).dataset.drawn ?? 0) >= 1", arg=ROOT,
                           timeout=120_000)
    _wait_running(page, False, timeout=180)  # the curve too
    with lab.kept(page):
        yield page


def test_the_attack_is_drawn_side_by_side_with_predictions_cams_and_charts(lab, page):
    root = page.locator(ROOT).first
    hashes = {}
    for kind in ("clean", "adversarial", "perturbation", "cam-clean", "cam-adversarial"):
        px = lab.canvas_pixels(page, _canvas(kind))
        assert px["width"] >= 160 and px["non_transparent"] == px["width"] * px["height"], kind
        assert px["distinct_colors"] > 20, f"{kind} looks blank: {px}"
        hashes[kind] = px["hash"]
    assert len(set(hashes.values())) == 5
    clean_preds = root.locator(".cnnw-rv-picture[data-kind=clean] .cnnw-rv-preds li").all_inner_texts()
    adv_preds = root.locator(".cnnw-rv-picture[data-kind=adversarial] .cnnw-rv-preds li").all_inner_texts()
    assert len(clean_preds) == 5 and len(adv_preds) >= 5
    names = lab.kernel_run(page, "print('|'.join(data.class_names))").split("|")
    assert clean_preds[0].split(" — ")[0] in names
    assert root.locator(".cnnw-rv-caption").nth(1).inner_text().startswith("adversarial: PGD-5, L∞ ε 8/255")
    assert root.locator(".cnnw-rv-verdict").inner_text() != ""
    # the divergence bars (one per layer of the demo model) and the curve (3 epsilons) beside the view
    n_layers = int(lab.kernel_run(page, "print(len(rv.probe.layers))"))
    figures = page.locator(f"{CELL} .bqplot")
    assert figures.count() == 2
    bars = page.evaluate(charts.GEOMETRY_JS.replace("document.querySelector(sel)", "document.querySelectorAll(sel)[0]"),
                         f"{CELL} .bqplot")
    assert len(bars["bars"]) == n_layers and max(bars["bars"]) > 5, bars
    curve = page.evaluate(charts.GEOMETRY_JS.replace("document.querySelector(sel)",
                                                     "document.querySelectorAll(sel)[1]"), f"{CELL} .bqplot")
    assert 3 in curve["lines"], curve
    assert lab.axis_problems(page, CELL) == [] and charts.axis_problems(page, CELL) == []
    lab.screenshot(page, "rv_drawn", selector=CELL)


def test_the_slider_draws_a_new_adversarial_image(lab, page):
    root = page.locator(ROOT).first
    before = lab.canvas_pixels(page, _canvas("adversarial"))["hash"]
    drawn = _drawn(page)
    root.locator(".cnnw-rv-slider").fill(str(2 / 255))
    page.wait_for_function("([sel, n]) => Number(document.querySelector(sel).dataset.drawn) > n", arg=[ROOT, drawn],
                           timeout=60_000)
    _wait_running(page, False)
    assert abs(float(root.get_attribute("data-epsilon")) - 2 / 255) < 1e-6
    assert lab.canvas_pixels(page, _canvas("adversarial"))["hash"] != before
    assert abs(float(lab.kernel_run(page, "print(rv.epsilon)")) - 2 / 255) < 1e-6
    assert root.locator(".cnnw-rv-epsilon-value").inner_text() == "= 2/255 (0.00784)"
    assert root.locator(".cnnw-error").is_hidden()


def test_a_bad_epsilon_typed_in_the_page_is_refused_in_the_widget_and_it_keeps_working(lab, page):
    root = page.locator(ROOT).first
    box = root.locator(".cnnw-rv-epsilon-input")
    kept = lab.kernel_run(page, "print(rv.epsilon)")
    box.fill("-0.1")
    box.press("Enter")
    error = root.locator(".cnnw-error")
    error.wait_for(state="visible", timeout=30_000)
    assert "epsilon must be a number >= 0, or a fraction such as 8/255; got -0.1" in error.inner_text()
    assert lab.kernel_run(page, "print(rv.epsilon)") == kept
    for text, said in (("abc", "epsilon must be a number >= 0, or a fraction such as 8/255; got 'abc'"),
                       ("5", "epsilon 5 is too large for the L-inf norm: it must be <= 1")):
        box.fill(text)
        box.press("Enter")
        page.wait_for_function("([sel, s]) => document.querySelector(sel)?.textContent.includes(s)",
                               arg=[f"{ROOT} .cnnw-error", said], timeout=30_000)
        assert lab.kernel_run(page, "print(rv.epsilon)") == kept
    drawn = _drawn(page)
    box.fill("3/255")  # a fraction, as the box shows the value: parsed in the page, sent as a number
    box.press("Enter")
    page.wait_for_function("([sel, n]) => Number(document.querySelector(sel).dataset.drawn) > n", arg=[ROOT, drawn],
                           timeout=60_000)
    _wait_running(page, False)
    assert abs(float(lab.kernel_run(page, "print(rv.epsilon)")) - 3 / 255) < 1e-9 and error.is_hidden()
    assert root.locator(".cnnw-rv-epsilon-value").inner_text() == "= 3/255 (0.0118)"
    drawn = _drawn(page)
    box.fill("0.02")
    box.press("Enter")
    page.wait_for_function("([sel, n]) => Number(document.querySelector(sel).dataset.drawn) > n", arg=[ROOT, drawn],
                           timeout=60_000)
    _wait_running(page, False)
    assert error.is_hidden() and root.get_attribute("data-epsilon") == "0.02"
    lab.screenshot(page, "rv_after_bad_epsilon", selector=CELL)


def test_cancel_on_the_page_stops_a_long_attack_and_the_last_drawing_stays(lab, page):
    root = page.locator(ROOT).first
    before = lab.canvas_pixels(page, _canvas("adversarial"))["hash"]
    lab.kernel_run(page, "rv.steps = 100000")
    _wait_running(page, True)
    page.wait_for_function("(sel) => /step \\d+ of 100000/.test(document.querySelector(sel).textContent)",
                           arg=f"{ROOT} .cnnw-rv-status", timeout=60_000)
    cancel = root.locator(".cnnw-rv-cancel")
    assert cancel.is_enabled()
    cancel.click()
    clicked = time.monotonic()
    _wait_running(page, False, timeout=60)
    print(f"the attack stopped {time.monotonic() - clicked:.2f} s after the click on Cancel")
    assert root.locator(".cnnw-rv-status").inner_text().startswith("cancelled")
    assert lab.canvas_pixels(page, _canvas("adversarial"))["hash"] == before and cancel.is_disabled()
    assert root.locator(".cnnw-error").is_hidden()




def test_a_deep_untrained_model_names_every_layer_readably_and_its_verdict_matches_its_predictions(lab, page):
    """~140 layers (an untrained MobileNetV3Small): every layer's bar named on readable axes in a scrolling box;
    its top classes tie (random images, random weights), and the verdict says what the shown classes say; the
    status gives the accuracy at the slider's epsilon, also after a change from Python."""
    lab.wait_for(page, DEEP_ROOT, timeout=120)
    page.wait_for_function("(sel) => Number(document.querySelector(sel).dataset.drawn ?? 0) >= 1",
                           arg=DEEP_ROOT, timeout=240_000)
    _wait_running(page, False, timeout=300, root=DEEP_ROOT)
    root = page.locator(DEEP_ROOT).first
    # below rv's cell: brought on screen, where bqplot lays a figure out (as the first cell of a page is)
    page.locator(f"{DEEP_CELL} .bqplot").first.scroll_into_view_if_needed()
    charts.settled(page, DEEP_CELL, quiet=60, timeout=20)  # its relayout comes some frames after the scroll
    n_layers = int(lab.kernel_run(page, "print(len(deep.probe.layers))"))
    assert n_layers >= 100
    bars = page.evaluate(charts.GEOMETRY_JS.replace("document.querySelector(sel)",
                                                    "document.querySelectorAll(sel)[0]"), f"{DEEP_CELL} .bqplot")
    assert len(bars["bars"]) == n_layers, len(bars["bars"])  # one bar per layer
    names = next(ticks for label, ticks in bars["ticks"].items() if not label)
    assert 10 <= len(names) <= 24, names  # every k-th layer named
    size = page.evaluate("(sel) => { const r = document.querySelectorAll(sel)[0].getBoundingClientRect(); "
                         "return [r.width, r.height]; }", f"{DEEP_CELL} .bqplot")
    assert size[0] >= 360 and 240 <= size[1] <= 480, size  # bounded, not a thin strip
    assert lab.axis_problems(page, DEEP_CELL) == [] and charts.axis_problems(page, DEEP_CELL) == []
    # hovering a bar names its layer (the names axis shows only every k-th)
    page.locator(f"{DEEP_CELL} .cnnw-rv-divergence rect.bar").nth(1).hover(force=True)
    second = lab.kernel_run(page, "print(deep.probe.layers[1].path)")
    page.wait_for_function("(s) => [...document.querySelectorAll('.bqplot_tooltip, .bqplot-tooltip, "
                           "[class*=tooltip]')].some((t) => t.textContent.includes(s))", arg=second,
                           timeout=10_000)
    # the verdict agrees with the classes shown
    shown = lab.kernel_run(page, "s = deep.shown; print(s['clean_class'], s['adv_class'], s['success'], "
                                 "len(s['clean_tied']))").split()
    clean, adversarial, success, tied = int(shown[0]), int(shown[1]), shown[2] == "True", int(shown[3])
    assert success == (clean != adversarial)
    verdict = root.locator(".cnnw-rv-verdict").inner_text()
    assert ("changed" in verdict) == success and ("tied" in verdict) == (tied > 0), verdict
    status = root.locator(".cnnw-rv-status").inner_text()
    assert "accuracy at this L∞ epsilon 8: " in status, status  # 8/255 of the [0, 255] range
    lab.screenshot(page, "rv_deep", selector=DEEP_CELL)
    assert root.locator(".cnnw-rv-epsilon-value").inner_text() == "= 8.00"  # not "8/255": that is 0.0314
    lab.kernel_run(page, "deep.epsilon = 4.0")
    page.wait_for_function("(sel) => document.querySelector(sel)?.textContent.includes('epsilon 4: ')",
                           arg=f"{DEEP_ROOT} .cnnw-rv-status", timeout=120_000)
    _wait_running(page, False, timeout=120, root=DEEP_ROOT)
    status = root.locator(".cnnw-rv-status").inner_text()
    assert "accuracy at this L∞ epsilon 4: " in status, status  # a curve point: the curve is kept
    assert root.locator(".cnnw-error").is_hidden()


def test_the_png_of_a_view_off_screen_shows_its_charts_laid_out_as_on_screen(lab, page, tmp_path):
    """bqplot lays a figure out again only while it is on screen: the divergence chart of a view that was never
    scrolled to kept the 60 px left margin it was made with, not the one Python gave it for the layer names, and
    its PNG showed the names cut at the edge. The PNG export lays such charts out first."""
    low = lab.cell(page, len(CELLS) + len(DEEP_CELLS))
    lab.kernel_run(page, "assert low.wait(180)", timeout=200)
    page.wait_for_function("(sel) => Number(document.querySelector(sel)?.dataset.drawn ?? 0) >= 1",
                           arg=f"{low} .cnnw-rv", timeout=60_000)
    page.evaluate("(sel) => document.querySelector(sel).scrollIntoView()", CELL)
    page.wait_for_timeout(300)
    off = page.evaluate("(sel) => { const r = document.querySelector(sel).getBoundingClientRect();"
                        " return r.bottom < 0 || r.top > innerHeight; }", f"{low} .cnnw-rv-charts")
    assert off, "the view's charts are on screen"
    away = png.save(lab, page, "low", tmp_path / "away.png")
    page.evaluate("(sel) => document.querySelector(sel).scrollIntoView()", f"{low} .cnnw-rv-charts")
    page.wait_for_timeout(1000)  # bqplot's observer lays the figures out
    shown = png.save(lab, page, "low", tmp_path / "shown.png")
    diff = png.differ(page, away, shown)
    assert len(diff["sizes"]) == 1 and diff["differ"] <= diff["of"] // 500, diff
