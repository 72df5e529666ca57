"""The AttributionMap view in a real JupyterLab (chromium), on the demo model.

One notebook page is opened and run once (the module-scoped ``page`` fixture) and shared by the tests
(``lab.kept``). Its cell waits for every map and curve, so the tests start from a finished view.
"""
from __future__ import annotations

import re
import time

import pytest

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(3, seed=1234)\n"
    "amap = cw.AttributionMap(cw.ModelProbe(demo.load_model(), class_names=data.class_names), data.images,\n"
    "                         ('saliency', 'integrated_gradients', 'grad_cam', 'occlusion', 'lime'),\n"
    "                         curve_steps=4, lime={'samples': 64})\n"
    "amap.job.wait(120)\namap",
]
ROOT = ".jp-Notebook .cnnw-am"
CANVAS = ".jp-Notebook .cnnw-am-canvas"
CELL = ".jp-Notebook .jp-CodeCell:has(.cnnw-am) .jp-OutputArea"


def _wait_running(page, value: bool, timeout: float = 30):
    page.wait_for_function(f"(sel) => document.querySelector(sel).dataset.running === '{str(value).lower()}'",
                           arg=ROOT, timeout=timeout * 1000)


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="attribution_map_browser")
    lab.run_all(page)
    lab.wait_for(page, CANVAS)
    _wait_running(page, False, timeout=120)
    page.wait_for_function("(sel) => [...document.querySelectorAll(sel)].every((f) => f.dataset.done === 'true')",
                           arg=".jp-Notebook .cnnw-am-map")
    with lab.kept(page):
        yield page


def test_every_map_is_drawn_over_the_image_with_its_scores(lab, page):
    root = page.locator(ROOT).first
    assert root.locator(".cnnw-am-map").count() == 5
    hashes = set()
    for i in range(5):
        px = lab.canvas_pixels(page, CANVAS, nth=i)
        assert (px["width"], px["height"]) == (192, 192) and px["non_transparent"] == 192 * 192
        assert px["distinct_colors"] > 20, f"map {i} looks blank: {px}"
        hashes.add(px["hash"])
    assert len(hashes) == 5
    labels = root.locator(".cnnw-am-label").all_inner_texts()
    assert labels[0] == "Saliency" and labels[2].startswith("Grad-CAM")
    assert all(re.fullmatch(r"deletion \d\.\d{3} · insertion \d\.\d{3}", s)
               for s in root.locator(".cnnw-am-score").all_inner_texts())
    options = root.locator(".cnnw-am-class option").all_inner_texts()
    assert len(options) == 5 and re.fullmatch(r"\w+ — \d+\.\d%", options[0])
    # the curves beside the view: one line per method in each chart
    curves = page.locator(".jp-Notebook .jp-CodeCell:has(.cnnw-am) .bqplot path.line")
    assert curves.count() >= 10
    lab.screenshot(page, "am_maps", selector=CELL)


def test_opacity_and_sign_redraw_in_the_browser_while_the_kernel_is_frozen(lab, page):
    """SIGSTOP the kernel, move the opacity slider and switch the sign: the canvases change with no message from
    the kernel; after SIGCONT it only echoes the browser's updates (see the ActivationGrid test for why)."""
    root = page.locator(ROOT).first
    before = lab.canvas_pixels(page, CANVAS, nth=3)
    with lab.ws_traffic(page, settle=0.5) as t:
        with lab.frozen_kernel(page):
            frozen_at = page.evaluate("() => performance.now()")
            root.locator(".cnnw-am-opacity").fill("0.2")
            deadline = time.monotonic() + 10
            while (faint := lab.canvas_pixels(page, CANVAS, nth=3))["hash"] == before["hash"]:
                assert time.monotonic() < deadline, "the opacity slider did not change the canvas"
                page.wait_for_timeout(50)
            root.locator(".cnnw-am-sign").select_option("both")
            deadline = time.monotonic() + 10
            while lab.canvas_pixels(page, CANVAS, nth=3)["hash"] == faint["hash"]:
                assert time.monotonic() < deadline, "the sign choice did not change the canvas"
                page.wait_for_timeout(50)
            assert root.locator(".cnnw-am-opacity-value").inner_text() == "20%"
            resumed_at = page.evaluate("() => performance.now()")
        deadline = time.monotonic() + 30
        while lab.kernel_run(page, "print(amap.opacity, amap.sign)").split() != ["0.2", "both"]:
            assert time.monotonic() < deadline, "the kernel never saw the browser's changes"
            page.wait_for_timeout(100)
    assert [r for r in t.received if frozen_at <= r["t"] <= resumed_at] == []
    assert t.comm_msgs("in", method="update") == [], t
    lab.screenshot(page, "am_faint_both", selector=CELL)
    lab.kernel_run(page, "amap.opacity, amap.sign = 0.6, 'positive'")


def test_cancel_on_the_page_stops_lime_and_the_other_maps_stay(lab, page):
    root = page.locator(ROOT).first
    lab.kernel_run(page, "amap.set_options('lime', samples=40000)")
    _wait_running(page, True)
    page.wait_for_function("(sel) => /LIME/.test(document.querySelector(sel).textContent)",
                           arg=".jp-Notebook .cnnw-am-status")
    cancel = root.locator(".cnnw-am-cancel")
    assert cancel.is_enabled()
    cancel.click()
    clicked = time.monotonic()
    _wait_running(page, False, timeout=10)
    assert time.monotonic() - clicked < 3, "LIME did not stop soon after Cancel"
    assert root.locator(".cnnw-am-status").inner_text().startswith("cancelled")
    done = [root.locator(".cnnw-am-map").nth(i).get_attribute("data-done") for i in range(5)]
    assert done == ["true", "true", "true", "true", "false"]
    assert root.locator(".cnnw-am-score").nth(4).inner_text() == "not computed: Compute"
    assert lab.kernel_run(page, "print(amap.job.cancelled, amap.job.running, sorted(amap.maps))") == (
        "True False ['grad_cam', 'integrated_gradients', 'occlusion', 'saliency']")
    assert root.locator(".cnnw-am-error").is_hidden() and cancel.is_disabled()
    assert lab.canvas_pixels(page, CANVAS, nth=0)["distinct_colors"] > 20
    lab.screenshot(page, "am_cancelled", selector=CELL)
