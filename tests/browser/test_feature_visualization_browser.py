"""The FeatureVisualization view in a real JupyterLab (chromium), on the demo model.

One notebook page is opened and run once (the module-scoped ``page`` fixture); the tests share it and its kernel
(``lab.kept``). Its cell renders 4 steps first, so the compiled step is traced before any test, then sets 3000
steps (~12 s on the demo model): long enough to watch frames arrive and to cancel.
"""
from __future__ import annotations

import base64
import json
import math
import time

import numpy as np
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
    fraction = float(root.locator(".cnnw-progress").get_attribute("aria-valuenow"))
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
                           " && Number(r.querySelector('.cnnw-progress').dataset.step) >= 40; }", arg=ROOT)
    assert cancel.is_enabled()
    cancel.click()
    clicked = time.monotonic()
    # the event: running=false long before the 3000 steps could end (a 120 s ceiling); the delay is printed
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'false'", arg=ROOT,
                           timeout=120_000)
    print(f"the render stopped {time.monotonic() - clicked:.2f} s after the click on Cancel")
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
    assert cancel.is_disabled() and root.locator(".cnnw-error").is_hidden()
    lab.screenshot(page, "fv_cancelled", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-fv) .jp-OutputArea")


# The bytes the view draws: ``pixels`` since the widget became its own view (``images`` is then its float property).
SENT_PIXELS = ("import base64 as _b, json as _j\n"
               "_v = fvw.view\n"
               "_px = _v.pixels if _v.has_trait('pixels') else _v.images\n"
               "print(_j.dumps([_b.b64encode(_px).decode(), _v.images_meta]))")


def test_each_canvas_holds_the_rgb_bytes_sent_shown_at_a_whole_zoom(lab, page):
    """A batch of three: canvas i is image i of the buffer, byte for byte (alpha 255), and is shown
    round(160 / 64) = 3 times its size (pixels whole, image-rendering: pixelated)."""
    root = page.locator(ROOT).first
    lab.kernel_run(page, "fvw.channels = [1, 5, 9]\nfvw.steps = 24\nfvw.render().wait(120)", timeout=180)
    page.wait_for_function("(sel) => { const r = document.querySelector(sel);"
                           " const i = r.querySelector('.cnnw-fv-images');"
                           " return r.dataset.running === 'false' && i.dataset.final === 'true'"
                           " && i.dataset.step === '24' && r.querySelectorAll('.cnnw-fv-canvas').length === 3; }",
                           arg=ROOT, timeout=60_000)
    pixels_b64, meta = json.loads(lab.kernel_run(page, SENT_PIXELS))
    n, size = meta["n"], meta["size"]
    assert (n, size, meta["step"], meta["final"]) == (3, 64, 24, True)
    sent = np.frombuffer(base64.b64decode(pixels_b64), np.uint8).reshape(n, size, size, 3)
    drawn = page.evaluate("""(sel) => [...document.querySelectorAll(sel)].map((c) => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = ''; for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
        return [c.width, c.height, c.style.width, c.style.height, btoa(s)]; })""", CANVAS)
    zoom = math.floor(160 / size + 0.5)  # zoomFor(size, BATCH_PX): Math.round
    assert len(drawn) == n
    for i, (w, h, css_w, css_h, data) in enumerate(drawn):
        assert (w, h, css_w, css_h) == (size, size, f"{size * zoom}px", f"{size * zoom}px")
        rgba = np.frombuffer(base64.b64decode(data), np.uint8).reshape(size, size, 4)
        wrong = int((rgba[..., :3] != sent[i]).any(axis=-1).sum())
        assert wrong == 0 and (rgba[..., 3] == 255).all(), f"image {i}: {wrong} pixels are not the bytes sent"
    assert sent.std() > 5  # pictures, not a flat start
    labels = root.locator(".cnnw-fv-label").all_inner_texts()
    assert labels == ["channel 1", "channel 5", "channel 9"]
    lab.kernel_run(page, "fvw.channels = [5]\nfvw.steps = 3000")
