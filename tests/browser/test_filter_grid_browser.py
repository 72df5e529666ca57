"""FilterGrid's view (js/filter_grid.js) in a real JupyterLab (chromium), on the demo model.

The tests share one notebook (the module-scoped ``notebook`` fixture keeps its page and kernel open, as
test_activation_grid_browser.py does); each first puts ``g`` in the state it needs from Python (``_show``).

Geometry mirrors js/filter_grid.js: a page's tiles of h x w kernel pixels are drawn at the smallest integer zoom
making them >= 36 px (>= 256 px for the norm matrix), GAP = 3 px apart both ways, ``meta["cols"]`` a row, no padding.
"""
from __future__ import annotations

import json
import math
import re

import pytest

pytestmark = pytest.mark.timeout(300)

GAP = 3
CANVAS = ".cnnw-filter-canvas"
HOVER = ".cnnw-filter-hover"
NUMBER = r"-?\d+(?:\.\d+)?"

BUILD = """
import json
import cnnwidget as cw
from cnnwidget import demo
from cnnwidget.core import filters
g = cw.FilterGrid(demo.load_model())
"""


@pytest.fixture(scope="module")
def notebook(lab):
    page = lab.open_notebook([BUILD, "g"])
    lab.run_all(page, timeout=240)
    lab.wait_for(page, CANVAS)
    with lab.kept(page):  # every test here shares this page and its kernel
        yield page


def _py(lab, page, expr: str):
    return json.loads(lab.kernel_run(page, f"print(json.dumps({expr}))"))


def _show(lab, page, layer: str, show: str = "kernels", page_no: int = 0) -> dict:
    """Set the grid from Python, wait until the canvas draws that page; its meta."""
    lab.kernel_run(page, f"g.layer = {layer!r}\ng.show = {show!r}\ng.page = {page_no}")
    meta = _py(lab, page, "g.view.meta")
    page.wait_for_function(
        "([sel, layer, view, filters]) => { const c = document.querySelector(sel);"
        " return c.dataset.layer === layer && c.dataset.view === view && c.dataset.filters === filters; }",
        arg=[CANVAS, layer, show, ",".join(map(str, meta["filters"]))], polling=50, timeout=30_000)
    page.locator(CANVAS).scroll_into_view_if_needed()
    return meta


def _zoom(meta: dict) -> int:
    return math.ceil((256 if meta["view"] == "norms" else 36) / max(meta["h"], meta["w"]))


def _hover(page, meta: dict, tile: int, x: int, y: int) -> str:
    """Move the pointer to the middle of pixel (x, y) of tile ``tile``; the hover text shown."""
    zoom = _zoom(meta)
    tw, th = meta["w"] * zoom, meta["h"] * zoom
    ox, oy = (tile % meta["cols"]) * (tw + GAP), (tile // meta["cols"]) * (th + GAP)
    box = page.locator(CANVAS).bounding_box()
    width, height = page.evaluate("(sel) => [document.querySelector(sel).width, document.querySelector(sel).height]",
                                  CANVAS)
    page.mouse.move(box["x"] + (ox + (x + 0.5) * zoom) * box["width"] / width,
                    box["y"] + (oy + (y + 0.5) * zoom) * box["height"] / height)
    hover = page.locator(HOVER)
    hover.wait_for(state="visible", timeout=10_000)
    return hover.inner_text()


def _close(shown: str, true: float, step: float) -> bool:
    """A value read back from a byte (within step/2 of the truth) and rounded to decimals finer than the step."""
    return abs(float(shown) - true) <= step


def test_first_layer_kernels_are_drawn_as_the_rgb_bytes_sent(lab, notebook):
    page = notebook
    meta = _show(lab, page, "block1_conv")
    assert (meta["k"], meta["h"], meta["w"], meta["c"], meta["inputs"]) == (16, 3, 3, 3, 3)
    sent = _py(lab, page, "list(g.view.tiles)")
    zoom = _zoom(meta)
    points = [[(i % meta["cols"]) * (3 * zoom + GAP) + x * zoom + zoom // 2,
               (i // meta["cols"]) * (3 * zoom + GAP) + y * zoom + zoom // 2]
              for i in range(16) for y in range(3) for x in range(3)]
    drawn = page.evaluate("""([sel, points]) => { const c = document.querySelector(sel);
        const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return points.map(([x, y]) => Array.from(data.subarray(4 * (y * c.width + x), 4 * (y * c.width + x) + 4))); }""",
                          [CANVAS, points])
    assert drawn == [sent[3 * j:3 * j + 3] + [255] for j in range(16 * 9)]
    px = lab.canvas_pixels(page, CANVAS)
    assert px["non_transparent"] == 16 * (3 * zoom) ** 2 and px["distinct_colors"] > 16
    lab.screenshot(page, "filter_grid_first_layer", selector=".cnnw-filters")


def test_hovering_an_rgb_kernel_shows_its_filter_and_three_weights(lab, notebook):
    page = notebook
    meta = _show(lab, page, "block1_conv")
    tile, x, y = 5, 2, 1
    text = _hover(page, meta, tile, x, y)
    m = re.fullmatch(rf"filter 5 · x 2, y 1 · weights R ({NUMBER}), G ({NUMBER}), B ({NUMBER})", text)
    assert m, text
    true = _py(lab, page, f"filters.kernel(g.probe, 'block1_conv')[1][5, :, {y}, {x}].tolist()")
    step = 2 * meta["scale"][tile] / 254
    assert all(_close(shown, w, step) for shown, w in zip(m.groups(), true)), (text, true, step)


def test_hovering_a_per_input_tile_shows_filter_input_channel_and_weight(lab, notebook):
    page = notebook
    meta = _show(lab, page, "block2_conv", page_no=1)  # 16 filters a page: this page starts at filter 16
    n_in = meta["cols"]
    tile, x, y = n_in + 3, 0, 2  # second row (filter 17), input channel 3
    text = _hover(page, meta, tile, x, y)
    m = re.fullmatch(rf"filter 17 · input channel 3 · x 0, y 2 · weight ({NUMBER})", text)
    assert m, text
    true = _py(lab, page, "float(filters.kernel(g.probe, 'block2_conv')[1][17, 3, 2, 0])")
    assert _close(m.group(1), true, 2 * meta["scale"][1] / 254), (text, true)


def test_hovering_the_norm_matrix_shows_the_kernel_norm(lab, notebook):
    page = notebook
    meta = _show(lab, page, "block2_conv", "norms")
    f, c = 9, 4
    text = _hover(page, meta, 0, c, f)  # the matrix is (output filter, input channel): x = input, y = filter
    m = re.fullmatch(rf"filter 9 · input channel 4 · norm ({NUMBER})", text)
    assert m, text
    true = _py(lab, page, f"float(filters.kernel_norms(g.probe, 'block2_conv')[1][{f}, {c}])")
    assert _close(m.group(1), true, meta["scale"][0] / 255), (text, true)


def test_hover_values_come_from_the_page_alone(lab, notebook):
    """With the kernel stopped, hovering another tile still names it and its weight, and sends nothing."""
    page = notebook
    meta = _show(lab, page, "block1_conv")
    with lab.ws_traffic(page, settle=0.3) as traffic:
        with lab.frozen_kernel(page):
            first = _hover(page, meta, 0, 0, 0)
            second = _hover(page, meta, 15, 1, 1)
    assert first.startswith("filter 0 · x 0, y 0 · weights R ") and second.startswith("filter 15 · x 1, y 1 · ")
    assert traffic.comm_msgs("out") == [], traffic


def test_the_weight_histogram_follows_the_layer_with_bars_of_height(lab, notebook):
    # Bars whose data arrives after display were drawn with zero height when the count axis set num_ticks (bqplot
    # 0.13, seen on LayerSimilarity's drift bars); a layer change sends exactly such data.
    _show(lab, notebook, "block3_conv")
    counts = _py(lab, notebook, "[int(c) for c in g._bars.y]")
    heights = notebook.wait_for_function(
        """(n) => { const t = [...document.querySelectorAll('.jp-OutputArea-output .bqplot text.mainheading')]
                      .find((e) => e.textContent.includes('block3_conv'));
                    const bars = t && [...t.closest('.bqplot').querySelectorAll('rect.bar')];
                    return bars && bars.length === n ? bars.map((r) => Number(r.getAttribute('height'))) : null; }""",
        arg=len(counts), polling=100, timeout=30_000).json_value()
    tallest = max(range(len(counts)), key=counts.__getitem__)
    assert heights[tallest] == max(heights) > 20
    assert all((h > 0) == (c > 0) for h, c in zip(heights, counts))


def test_the_pager_asks_python_for_the_next_page_and_the_canvas_draws_it(lab, notebook):
    page = notebook
    meta = _show(lab, page, "block2_conv")
    k, cols = meta["k"], meta["cols"]
    assert _py(lab, page, "g.view.n_pages") == 2 and k == 16 * cols  # 16 output filters a page, a tile per input
    first = lab.canvas_pixels(page, CANVAS)
    assert first["non_transparent"] == k * 36 * 36 and first["distinct_colors"] > 20  # 3x3 kernels at 12x zoom
    page.locator(".cnnw-filters .cnnw-next").click()
    page.wait_for_function("() => document.querySelector('.cnnw-page-info').textContent === 'page 2 of 2'")
    assert _py(lab, page, "[g.page, g.view.meta['filters'][0]]") == [1, 16]
    filters = ",".join(map(str, _py(lab, page, "g.view.meta['filters']")))
    page.wait_for_function("([sel, f]) => document.querySelector(sel).dataset.filters === f", arg=[CANVAS, filters],
                           polling=50, timeout=30_000)
    assert lab.canvas_pixels(page, CANVAS)["hash"] != first["hash"], "the canvas still shows the first page"
