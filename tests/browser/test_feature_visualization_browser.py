"""The FeatureVisualization view in a real JupyterLab (chromium), on the demo model.

One notebook page is opened and run once (the module-scoped ``page`` fixture); the tests share it and its kernel
(``lab.kept``). Its cell renders 4 steps first, so the compiled step is traced before any test, then sets 3000
steps (~12 s on the demo model): long enough to watch frames arrive and to cancel.
"""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "fvw = cw.FeatureVisualization(demo.load_model(), 'block3_relu', 5, steps=4)\n"
    "fvw.render().wait(120)\nfvw.steps = 3000\nfvw",
]
ROOT = ".jp-Notebook .cnnw-fv"
CANVAS = ".jp-Notebook .cnnw-fv-canvas"


def _py_eval(lab, page, expr: str):
    out = lab.kernel_exec(page, f"import json as _json; print(_json.dumps({expr}))")
    assert out["status"] == "ok", f"{expr!r} failed: {out['ename']}: {out['evalue']}\n{out['traceback']}"
    return json.loads(out["stdout"])


def _running(page) -> bool:
    return page.locator(ROOT).first.get_attribute("data-running") == "true"


def _step(page) -> int:
    return int(page.locator(CANVAS).first.get_attribute("data-step") or 0)


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="feature_visualization_browser")
    lab.run_all(page)
    lab.wait_for(page, CANVAS)
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'false'", arg=ROOT)
    with lab.kept(page):
        yield page


def test_the_image_canvas_changes_while_the_render_runs(lab, page):
    root = page.locator(ROOT).first
    root.locator(".cnnw-fv-render").click()
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'true'", arg=ROOT)
    hashes, steps = [], []
    deadline = time.monotonic() + 30
    while len(set(hashes)) < 3:
        assert time.monotonic() < deadline, f"the canvas showed only {len(set(hashes))} pictures: steps {steps}"
        assert _running(page), "the render ended before the canvas changed three times"
        px = lab.canvas_pixels(page, CANVAS)
        hashes.append(px["hash"])
        steps.append(_step(page))
        page.wait_for_timeout(150)
    assert steps == sorted(steps) and steps[-1] > 0
    assert (px["width"], px["height"]) == (64, 64) and px["non_transparent"] == 64 * 64
    fraction = float(root.locator(".cnnw-fv-progress").get_attribute("aria-valuenow"))
    assert 0 < fraction < 100
    assert "rendering channel('block3_relu', 5): step" in root.locator(".cnnw-fv-status").inner_text()
    # the loss curve (bqplot, beside or below the view) is drawn as it grows
    curve = page.locator(".jp-Notebook .jp-CodeCell:has(.cnnw-fv) .bqplot path.line").first
    assert len(curve.get_attribute("d") or "") > 20
    lab.screenshot(page, "fv_rendering", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-fv) .jp-OutputArea")
    root.locator(".cnnw-fv-cancel").click()
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'false'", arg=ROOT)


def test_cancel_on_the_page_stops_the_render_and_the_image_stays(lab, page):
    root = page.locator(ROOT).first
    cancel = root.locator(".cnnw-fv-cancel")
    root.locator(".cnnw-fv-render").click()
    # The progress of this render (reset to step 0 with running=True in one message), not the last frame's step.
    page.wait_for_function("(sel) => { const r = document.querySelector(sel);"
                           " return r.dataset.running === 'true'"
                           " && Number(r.querySelector('.cnnw-fv-progress').dataset.step) >= 40; }", arg=ROOT)
    assert cancel.is_enabled()
    cancel.click()
    clicked = time.monotonic()
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'false'", arg=ROOT)
    assert time.monotonic() - clicked < 3, "the render did not stop soon after Cancel"
    status = root.locator(".cnnw-fv-status").inner_text()
    assert status.startswith("cancelled after step"), status
    state = _py_eval(lab, page, "[fvw.job.running, fvw.job.cancelled, fvw.view.images_meta['step'], "
                                "fvw.view.images_meta['final'], list(fvw.images.shape)]")
    assert state[:2] == [False, True] and 40 <= state[2] < 3000 and state[3] and state[4] == [1, 64, 64, 3]
    # The last image stays: drawn, and the same a second later.
    kept = lab.canvas_pixels(page, CANVAS)
    assert kept["non_transparent"] == 64 * 64 and kept["distinct_colors"] > 50
    page.wait_for_timeout(1000)
    assert lab.canvas_pixels(page, CANVAS)["hash"] == kept["hash"]
    assert cancel.is_disabled() and root.locator(".cnnw-fv-error").is_hidden()
    lab.screenshot(page, "fv_cancelled", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-fv) .jp-OutputArea")
