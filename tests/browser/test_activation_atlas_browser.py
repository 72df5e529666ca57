"""ActivationAtlas's view (js/activation_atlas.js) in a real JupyterLab (chromium), on the demo model: the atlas
draws its cells (icons, so the canvas is far from blank), hovering a cell shows its count, class and a strip of the
images behind it, and the + button zooms (the zoom reaches Python). Console errors fail the test (harness cleanup).

Geometry mirrors js/activation_atlas.js: a cell is CELL_PX = 36 px a side at zoom 1, cell (row, col) at
(col * 36, row * 36)."""
from __future__ import annotations

import json
import re

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(400)]

CANVAS = ".cnnw-atlas-canvas"
HOVER = ".cnnw-atlas-hover"
CELL_PX = 36

BUILD = """
import json
import cnnwidget as cw
from cnnwidget import demo
data = demo.shapes(120, seed=3)
atlas = cw.ActivationAtlas(demo.load_model(), (data.images, data.labels), "block4_relu", grid=4, samples=80,
                           steps=8, render_batch=16, thumbnail=16, class_names=data.class_names)
"""


def _py(lab, page, expr: str):
    return json.loads(lab.kernel_run(page, f"print(json.dumps({expr}))"))


def test_the_atlas_draws_its_cells_and_hover_shows_count_class_and_images(lab):
    page = lab.open_notebook([BUILD, "atlas"])
    lab.run_all(page, timeout=240)
    lab.wait_for(page, CANVAS)
    page.wait_for_function(
        "(sel) => { const c = document.querySelector(sel); return c && Number(c.dataset.cells) > 0"
        " && Number(c.dataset.rendered) + Number(c.dataset.blank) === Number(c.dataset.cells); }", arg=CANVAS, polling=100, timeout=240_000)
    meta = _py(lab, page, "atlas.cells")
    assert sum(meta["count"]) == 80
    page.locator(CANVAS).scroll_into_view_if_needed()
    px = lab.canvas_pixels(page, CANVAS)
    assert px["width"] == px["height"] == 4 * CELL_PX
    assert px["non_background"] > 0.2 * px["width"] * px["height"] and px["distinct_colors"] > 50, px
    lab.screenshot(page, "activation_atlas", selector=".cnnw-atlas")

    # the biggest cell: its icon fills the cell, so its centre is on it
    i = max(range(meta["m"]), key=lambda k: meta["count"][k])
    box = page.locator(CANVAS).bounding_box()
    page.mouse.move(box["x"] + (meta["col"][i] + 0.5) * CELL_PX * box["width"] / px["width"],
                    box["y"] + (meta["row"][i] + 0.5) * CELL_PX * box["height"] / px["height"])
    hover = page.locator(HOVER)
    hover.wait_for(state="visible", timeout=10_000)
    text = page.locator(".cnnw-atlas-hover-text").inner_text()
    name = _py(lab, page, "atlas.class_names")[meta["label"][i]]
    m = re.fullmatch(r"count (\d+) · (.+) \((\d+)% of its labels\)", text)
    assert m and int(m.group(1)) == meta["count"][i] and m.group(2) == name, text
    assert int(m.group(3)) == round(100 * meta["support"][i])
    strip = page.evaluate("() => { const s = document.querySelector('.cnnw-atlas-strip');"
                          " return [Number(s.dataset.images), s.width, s.height]; }")
    assert strip[0] == len(meta["strip"][i]) >= 1 and strip[1] > 0 and strip[2] == 48
    assert lab.canvas_pixels(page, ".cnnw-atlas-strip")["distinct_colors"] > 4

    # + zooms: the canvas grows and Python sees the zoom
    page.locator(".cnnw-atlas-zoom-in").click()
    page.wait_for_function("(sel) => document.querySelector(sel).width === Math.round(4 * 36 * 1.25)", arg=CANVAS,
                           polling=50, timeout=10_000)
    assert _py(lab, page, "atlas.zoom") == 1.25
