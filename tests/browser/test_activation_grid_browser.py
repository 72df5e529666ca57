"""The ActivationGrid view in a real JupyterLab (chromium), on notebooks/quickstart.ipynb and the demo model.

One page runs the quickstart once (the module-scoped ``quickstart`` fixture) and the tests below share it: opening
and running the notebook costs ~15 s, a test on the open page ~1 s. Each test first puts ``grid`` (the quickstart's
notebook grid) back into a known state from Python (``_reset``), so the tests do not depend on their order. Only
the test of model text opens a notebook of its own.

The shared page survives between tests because the ``quickstart`` fixture replaces ``lab.cleanup`` for the module's
duration with one that only screenshots the open pages of a failed test (tests/_artifacts/FAIL-*.png); at the end of
the module the harness's own cleanup runs again (pages closed, sessions and kernels stopped).

Geometry below mirrors js/activation_grid.js and js/tiles.js: tiles of ``h x w`` map pixels are drawn at the
smallest integer zoom making them >= 48 px (MIN_TILE_PX), GAP = 4 px apart, PAD = 2 px around the grid, in as many
columns as fit the width; tile ``i`` is at column ``i % cols``, row ``i // cols``. Gaps and padding stay transparent.
"""
from __future__ import annotations

import base64
import json
import math
import re
import time

import numpy as np
import pytest

from harness import pixels

pytestmark = pytest.mark.timeout(300)

GAP, PAD, MIN_TILE_PX = 4, 2, 48
OUTLINE = (0xFF, 0x57, 0x22, 255)  # the selected tile's outline, #ff5722

NOTEBOOK = "notebooks/quickstart.ipynb"
# The quickstart shows `grid` (cell "grid = cw.ActivationGrid(...)") in the notebook first; the second
# ActivationGrid (`deep`) goes to the right sidebar. The first .cnnw-grid in the notebook is `grid`'s view.
NB_GRID = ".jp-Notebook .cnnw-grid"
NB_CANVAS = ".jp-Notebook .cnnw-grid-canvas"
SIDEBAR_TITLE = "Activations: block3"


# ------------------------------------------------------------------------------------------------ helpers
def _py_eval(lab, page, expr: str):
    import json

    return json.loads(lab.kernel_run(page, f"import json as _json; print(_json.dumps({expr}))"))


def _channels(page, root: str = NB_GRID) -> list[int]:
    text = page.locator(root).first.locator(".cnnw-grid-canvas").get_attribute("data-channels") or ""
    return [int(c) for c in text.split(",") if c]


def _wait_channels(page, n: int, root_nth: int = 0, timeout: float = 30):
    page.wait_for_function(
        "([n, i]) => { const c = document.querySelectorAll('.jp-Notebook .cnnw-grid-canvas')[i];"
        " return !!c && (c.dataset.channels || '').split(',').filter(Boolean).length === n; }",
        arg=[n, root_nth], timeout=timeout * 1000, polling=50)


def _wait_pixels_change(lab, page, old_hash: str, selector: str = NB_CANVAS, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        px = lab.canvas_pixels(page, selector)
        if px["hash"] != old_hash:
            return px
        assert time.monotonic() < deadline, f"{selector} still shows hash {old_hash} after {timeout}s"
        page.wait_for_timeout(30)


def _stable_canvas_width(lab, page, selector: str = NB_CANVAS) -> int:
    """The canvas width once it stays the same for 300 ms (a resize is laid out again on the next frame)."""
    width, since = lab.canvas_pixels(page, selector)["width"], time.monotonic()
    while time.monotonic() - since < 0.3:
        page.wait_for_timeout(50)
        now = lab.canvas_pixels(page, selector)["width"]
        if now != width:
            width, since = now, time.monotonic()
    return width


def _geometry(meta: dict, canvas_width: int) -> dict:
    """Tile size, columns and rows of a page drawn on a canvas ``canvas_width`` pixels wide (see module doc)."""
    scale = max(1, math.ceil(MIN_TILE_PX / max(meta["h"], meta["w"], 1)))
    tw, th = meta["w"] * scale, meta["h"] * scale
    cols, rest = divmod(canvas_width - 2 * PAD + GAP, tw + GAP)
    assert rest == 0 and cols >= 1, f"a canvas {canvas_width} px wide does not hold whole {tw}-px tiles"
    rows = -(-meta["k"] // cols)
    return {"tw": tw, "th": th, "cols": cols, "rows": rows,
            "width": cols * tw + (cols - 1) * GAP + 2 * PAD, "height": rows * th + (rows - 1) * GAP + 2 * PAD}


def _origin(geo: dict, i: int) -> tuple[int, int]:
    """Canvas pixel of tile i's top-left corner."""
    return PAD + (i % geo["cols"]) * (geo["tw"] + GAP), PAD + (i // geo["cols"]) * (geo["th"] + GAP)


def _reset(lab, page):
    """Put `grid` in the state the tests start from: first conv layer, per channel, viridis, nothing selected."""
    lab.kernel_run(page, "grid.selected_channel = -1\ngrid.layer = 'block1_conv'\ngrid.normalization = 'channel'\n"
                   "grid.colormap = 'viridis'\ngrid.error = ''")
    _wait_channels(page, 16)
    page.wait_for_function(
        "(sel) => { const g = document.querySelector(sel);"
        " return g.querySelector('.cnnw-norm-select').value === 'channel'"
        " && g.querySelector('.cnnw-cmap-select').value === 'viridis'"
        " && g.querySelector('.cnnw-layer-select').value === 'block1_conv'"
        " && g.querySelector('.cnnw-focus-title').textContent.startsWith('click'); }", arg=NB_GRID, polling=50)
    page.locator(NB_GRID).first.scroll_into_view_if_needed()


def _index_lut(lo: float, hi: float, low: float, high: float) -> np.ndarray:
    """docs/wire-format.md's byte -> colour-map index rule, in the same float64 operations as the browser: byte q is
    the value lo + (hi - lo) q / 255, drawn at index round(255 (value - L) / (H - L)) of the range [L, H]."""
    if not high > low:
        return np.zeros(256, np.int64)
    return np.array([min(255, max(0, pixels.js_round(255 * ((lo + ((hi - lo) * q) / 255 - low) / (high - low)))))
                     for q in range(256)])


def _sent_page(lab, page, name: str = "grid") -> tuple[np.ndarray, np.ndarray, dict]:
    """The page of ``name`` as the kernel sent it: uint8 tiles (k, h, w), float32 ranges (k, 2), tile_meta."""
    out = json.loads(lab.kernel_run(page, "import base64 as _b, json as _j; print(_j.dumps("
                                          f"[_b.b64encode({name}.view.tiles).decode(), "
                                          f"_b.b64encode({name}.view.tile_ranges).decode(), {name}.view.tile_meta]))"))
    meta = out[2]
    tiles = np.frombuffer(base64.b64decode(out[0]), np.uint8).reshape(meta["k"], meta["h"], meta["w"])
    return tiles, np.frombuffer(base64.b64decode(out[1]), "<f4").reshape(meta["k"], 2), meta


def _canvas_rgba(page, selector: str = NB_CANVAS) -> np.ndarray:
    """The whole canvas as uint8 (height, width, 4), read with getImageData."""
    out = page.evaluate("""(sel) => { const c = document.querySelector(sel);
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let s = ''; for (let i = 0; i < d.length; i += 0x8000) s += String.fromCharCode(...d.subarray(i, i + 0x8000));
        return [c.width, c.height, btoa(s)]; }""", selector)
    return np.frombuffer(base64.b64decode(out[2]), np.uint8).reshape(out[1], out[0], 4)


def _expected_tile(tiles, ranges, i, table, per_layer: bool) -> np.ndarray:
    """Tile i as the view must draw it (RGB, map pixels): colour table at the index its byte stands for."""
    lo, hi = (float(v) for v in ranges[i])
    low, high = (float(ranges[:, 0].min()), float(ranges[:, 1].max())) if per_layer else (lo, hi)
    return table[_index_lut(lo, hi, low, high)[tiles[i]]]


# ------------------------------------------------------------------------------------------------ fixture
@pytest.fixture(scope="module")
def quickstart(lab):
    page = lab.open_notebook("quickstart")
    lab.run_all(page)
    lab.wait_for(page, NB_CANVAS)
    _wait_channels(page, 16)
    # The first grid of the notebook is `grid`'s view (see NB_GRID), not `deep`'s hidden copy further down.
    assert "grid = cw.ActivationGrid" in page.locator(".jp-Notebook .jp-CodeCell").filter(
        has=page.locator(".cnnw-grid")).first.locator(".jp-InputArea").inner_text()

    with lab.kept(page):  # every test here shares this page and its kernel
        yield page


# ------------------------------------------------------------------------------------------------ tests
def test_the_grid_canvas_draws_every_tile_of_the_first_conv_layer(lab, quickstart):
    page = quickstart
    _reset(lab, page)
    meta = _py_eval(lab, page, "grid.view.tile_meta")
    assert (meta["k"], meta["h"], meta["w"]) == (16, 64, 64)
    px = lab.canvas_pixels(page, NB_CANVAS)
    geo = _geometry(meta, px["width"])
    assert px["height"] == geo["height"]
    # Every tile pixel is opaque (gaps and padding are transparent), and the tiles hold real pictures.
    assert px["non_transparent"] == meta["k"] * geo["tw"] * geo["th"]
    assert px["distinct_colors"] >= 100, px
    assert sum(px["mean_rgba"][:3]) > 60, px
    assert _channels(page) == list(range(16))
    assert "16 channels" in page.locator(NB_GRID).first.locator(".cnnw-page-info").inner_text()
    lab.screenshot(page, "grid_notebook", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-grid) .jp-OutputArea")


def test_tiles_are_drawn_as_the_colour_map_at_the_index_their_bytes_give_under_both_normalizations(lab, quickstart):
    """Per channel a byte is its own colour-map index; per layer it is placed on the page's range (a tile whose max
    is below the layer's never reaches the top colour). Checked pixel for pixel on two tiles, the one with the
    smallest and the one with the largest top value, in viridis and then magma (tables from js/colormaps.js)."""
    page = quickstart
    _reset(lab, page)
    tiles, ranges, meta = _sent_page(lab, page)
    scale = max(1, math.ceil(MIN_TILE_PX / max(meta["h"], meta["w"])))
    chosen = [int(ranges[:, 1].argmin()), int(ranges[:, 1].argmax())]
    root = page.locator(NB_GRID).first
    tables = {name: pixels.colormap(name) for name in ("viridis", "magma")}
    seen = {}
    for cmap, norm in (("viridis", "channel"), ("viridis", "layer"), ("magma", "layer"), ("magma", "channel")):
        if root.locator(".cnnw-cmap-select").input_value() != cmap:
            root.locator(".cnnw-cmap-select").select_option(cmap)
        if root.locator(".cnnw-norm-select").input_value() != norm:
            root.locator(".cnnw-norm-select").select_option(norm)
        expected = {i: np.repeat(np.repeat(_expected_tile(tiles, ranges, i, tables[cmap], norm == "layer"),
                                           scale, 0), scale, 1) for i in chosen}
        # The redraw follows the select on the next animation frame: wait for the drawing (10 s ceiling), then
        # compare, reporting how far off it is if it never matches.
        deadline = time.monotonic() + 10
        while True:
            rgba = _canvas_rgba(page)
            geo = _geometry(meta, rgba.shape[1])
            drawn = {i: rgba[_origin(geo, i)[1]:_origin(geo, i)[1] + geo["th"],
                             _origin(geo, i)[0]:_origin(geo, i)[0] + geo["tw"]] for i in chosen}
            wrong = {i: int((drawn[i][..., :3] != expected[i]).any(axis=-1).sum()) for i in chosen}
            if not any(wrong.values()) or time.monotonic() > deadline:
                break
            page.wait_for_timeout(50)
        assert not any(wrong.values()), f"{cmap}/{norm}: pixels of tiles {chosen} off their colour: {wrong}"
        assert all((drawn[i][..., 3] == 255).all() for i in chosen)
        seen[cmap, norm] = {i: drawn[i][..., :3].copy() for i in chosen}
    low = chosen[0]  # its top value is the page's lowest: per layer its brightest pixel is well below the top colour
    assert ranges[low, 1] < ranges[:, 1].max()
    assert not (seen["viridis", "layer"][low] == tables["viridis"][255]).all(axis=-1).any()
    assert (seen["viridis", "channel"][low] == tables["viridis"][255]).all(axis=-1).any()
    assert (seen["magma", "channel"][low] == tables["magma"][255]).all(axis=-1).any()
    root.locator(".cnnw-cmap-select").select_option("viridis")


def test_the_view_fits_the_width_it_is_given(lab, quickstart):
    """In the notebook's output area and in the narrow sidebar, with a channel enlarged (the widest state)."""
    page = quickstart
    _reset(lab, page)
    lab.kernel_run(page, "grid.selected_channel = 3\ndeep.selected_channel = 3")
    page.wait_for_function("() => [...document.querySelectorAll('.cnnw-focus-title')]"
                           ".every((t) => t.textContent.startsWith('channel 3:'))", polling=50)
    page.wait_for_timeout(300)  # a ResizeObserver relayout, if any
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('.cnnw-grid')].filter((g) => g.offsetWidth > 0).map((g) => {
             const area = g.closest('.jp-OutputArea-output, .jupyterlab-sidecar');
             return {where: g.closest('#jp-right-stack') ? 'sidebar' : 'notebook', grid: g.scrollWidth,
                     area: area.clientWidth, canvas: g.querySelector('.cnnw-grid-canvas').getBoundingClientRect().width,
                     focus: g.querySelector('.cnnw-focus-canvas').getBoundingClientRect().width};
           })""")
    assert sorted(s["where"] for s in sizes) == ["notebook", "sidebar"], sizes
    for s in sizes:
        assert s["grid"] <= s["area"], f"the view is wider than its {s['where']} ({s})"
        assert 0 < s["canvas"] <= s["area"] and 0 < s["focus"] <= s["area"], s
    lab.screenshot(page, "grid_fits_notebook_and_sidebar")


def test_a_click_on_a_tile_selects_that_channel_in_python_and_enlarges_it(lab, quickstart):
    page = quickstart
    _reset(lab, page)
    meta = _py_eval(lab, page, "grid.view.tile_meta")
    canvas = page.locator(NB_CANVAS).first
    px = lab.canvas_pixels(page, NB_CANVAS)
    geo = _geometry(meta, px["width"])
    i = min(meta["k"] - 1, geo["cols"] + 1)  # second row, second column: both coordinates matter
    channel = meta["channels"][i]
    x0, y0 = _origin(geo, i)
    box = canvas.bounding_box()
    sx, sy = box["width"] / px["width"], box["height"] / px["height"]  # CSS may shrink the canvas
    cx, cy = box["x"] + (x0 + geo["tw"] / 2) * sx, box["y"] + (y0 + geo["th"] / 2) * sy

    page.mouse.move(cx, cy)  # hovering names the tile under the pointer
    hover = page.locator(NB_GRID).first.locator(".cnnw-hover")
    hover.wait_for(state="visible")
    assert hover.inner_text().startswith(f"channel {channel} ·"), hover.inner_text()

    page.mouse.click(cx, cy)
    deadline = time.monotonic() + 30
    while _py_eval(lab, page, "grid.selected_channel") != channel:
        assert time.monotonic() < deadline, "grid.selected_channel did not follow the click"
        page.wait_for_timeout(100)
    focus_meta = _py_eval(lab, page, "grid.view.focus_meta")
    assert focus_meta["channel"] == channel
    title = page.locator(NB_GRID).first.locator(".cnnw-focus-title")
    page.wait_for_function("([sel, c]) => document.querySelector(sel).querySelector('.cnnw-focus-title')"
                           ".textContent.startsWith(`channel ${c}:`)", arg=[NB_GRID, channel], polling=50)
    assert re.match(rf"channel {channel}: \S+ to \S+$", title.inner_text())

    # The enlarged picture (right half of the focus canvas; the input image is on the left) is the clicked tile:
    # sampled at the tile's resolution it matches tile i pixel for pixel, and matches no other tile as well.
    page.wait_for_function("(sel) => document.querySelector(sel).querySelector('.cnnw-focus-canvas').width > 0",
                           arg=NB_GRID, polling=50)
    # The enlarged panel is wider with a channel than without (input | channel), so the grid may be laid out again
    # for the width left to it, in other columns: take the geometry of the page as it is now.
    geo = _geometry(meta, _stable_canvas_width(lab, page))
    x0, y0 = _origin(geo, i)
    origins = [_origin(geo, j) for j in range(meta["k"])]
    match = page.evaluate(
        """([sel, origins, tw, th, gap]) => {
             const root = document.querySelector(sel);
             const g = root.querySelector('.cnnw-grid-canvas'), f = root.querySelector('.cnnw-focus-canvas');
             const gd = g.getContext('2d').getImageData(0, 0, g.width, g.height).data;
             const fd = f.getContext('2d').getImageData(0, 0, f.width, f.height).data;
             const w = (f.width - 2 * gap) / 2, fx0 = w + 2 * gap;   // side by side: image | gap | channel
             return origins.map(([ox, oy]) => {
               let same = 0;
               for (let y = 0; y < th; y++) for (let x = 0; x < tw; x++) {
                 const a = 4 * ((oy + y) * g.width + ox + x);
                 const fx = fx0 + Math.floor((x + 0.5) * w / tw), fy = Math.floor((y + 0.5) * f.height / th);
                 const b = 4 * (fy * f.width + fx);
                 const d = Math.abs(gd[a] - fd[b]) + Math.abs(gd[a + 1] - fd[b + 1]) + Math.abs(gd[a + 2] - fd[b + 2]);
                 if (d <= 6) same++;
               }
               return same / (tw * th);
             });
           }""", [NB_GRID, origins, geo["tw"], geo["th"], GAP])
    best = max(range(len(match)), key=match.__getitem__)
    assert best == i and match[i] > 0.95, [round(m, 3) for m in match]

    # The selection outline goes around tile i on the grid canvas.
    outline = page.evaluate(
        "([sel, x, y]) => [...document.querySelector(sel).querySelector('.cnnw-grid-canvas')"
        ".getContext('2d').getImageData(x, y, 1, 1).data]", [NB_GRID, x0 - 1, y0 + geo["th"] // 2])
    assert tuple(outline) == OUTLINE
    lab.screenshot(page, "grid_channel_clicked", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-grid) .jp-OutputArea")


def test_the_hover_text_follows_a_layer_that_arrives_under_a_resting_pointer(lab, quickstart):
    """The user's report: hover a tile of block1_conv (64x64), pick a 16x16 layer: the text still read
    'channel 0 · -2.059 · x 48, y 48', a position outside the new layer."""
    page = quickstart
    _reset(lab, page)
    meta = _py_eval(lab, page, "grid.view.tile_meta")
    px = lab.canvas_pixels(page, NB_CANVAS)
    geo = _geometry(meta, px["width"])
    x0, y0 = _origin(geo, 0)
    box = page.locator(NB_CANVAS).first.bounding_box()
    sx, sy = box["width"] / px["width"], box["height"] / px["height"]
    page.mouse.move(box["x"] + (x0 + geo["tw"] * 0.8) * sx, box["y"] + (y0 + geo["th"] * 0.8) * sy)
    hover = page.locator(NB_GRID).first.locator(".cnnw-hover")
    hover.wait_for(state="visible")
    lab.kernel_run(page, "grid.layer = 'block3_conv'")
    _wait_channels(page, 64)
    page.wait_for_timeout(300)
    meta = _py_eval(lab, page, "grid.view.tile_meta")
    if hover.is_visible():  # the pointer may now rest in a gap between the smaller tiles
        found = re.search(r"x (\d+), y (\d+)", hover.inner_text())
        assert found and int(found[1]) < meta["w"] and int(found[2]) < meta["h"], (hover.inner_text(), meta["w"])
        assert int(hover.inner_text().split()[1]) in meta["channels"]
    page.mouse.move(0, 0)


def test_choosing_another_layer_in_the_picker_or_the_strip_redraws_the_grid(lab, quickstart):
    page = quickstart
    _reset(lab, page)
    shapes = {layer["name"]: layer["shape"] for layer in _py_eval(lab, page, "grid.view.layers")}
    root = page.locator(NB_GRID).first
    before = lab.canvas_pixels(page, NB_CANVAS)

    # 1. the layer picker: block2_conv, 32 maps of 32x32 (drawn at zoom 2)
    assert shapes["block2_conv"] == [32, 32, 32]
    root.locator(".cnnw-layer-select").select_option("block2_conv")
    _wait_channels(page, 32)
    after = lab.canvas_pixels(page, NB_CANVAS)
    geo = _geometry({"k": 32, "h": 32, "w": 32}, after["width"])
    assert after["hash"] != before["hash"]
    assert (after["width"], after["height"]) == (geo["width"], geo["height"])
    assert after["non_transparent"] == 32 * geo["tw"] * geo["th"]
    assert _channels(page) == list(range(32))
    assert _py_eval(lab, page, "grid.layer") == "block2_conv"
    assert "32 channels" in root.locator(".cnnw-page-info").inner_text()

    # 2. the depth strip: block3_relu, 64 maps of 16x16 (drawn at zoom 3)
    assert shapes["block3_relu"] == [16, 16, 64]
    item = root.locator('.cnnw-strip-item[data-layer="block3_relu"]')
    item.scroll_into_view_if_needed()
    item.click()
    _wait_channels(page, 64)
    third = lab.canvas_pixels(page, NB_CANVAS)
    geo = _geometry({"k": 64, "h": 16, "w": 16}, third["width"])
    assert third["hash"] not in (before["hash"], after["hash"])
    assert (third["width"], third["height"]) == (geo["width"], geo["height"])
    assert third["non_transparent"] == 64 * geo["tw"] * geo["th"]
    assert _py_eval(lab, page, "grid.layer") == "block3_relu"
    assert root.locator(".cnnw-layer-select").input_value() == "block3_relu"
    assert root.locator(".cnnw-strip-item.cnnw-current").get_attribute("data-layer") == "block3_relu"
    lab.screenshot(page, "grid_layer_block3_relu", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-grid) .jp-OutputArea")


def test_normalization_and_colour_map_redraw_in_the_browser_while_the_kernel_is_frozen(lab, quickstart):
    """The kernel process is stopped (SIGSTOP) during the switches, so nothing from it can take part in the redraw.

    (Sleeping in a cell would not do: JupyterLab 4.6 sends widget comm messages to an ipykernel 7 subshell, which
    answers them while the main thread sleeps.) After SIGCONT the kernel gets the browser's updates (the traits
    follow in Python) and answers with ipywidgets' `echo_update`s only: no `update` comm message comes from it.
    """
    page = quickstart
    _reset(lab, page)
    root = page.locator(NB_GRID).first
    per_channel = lab.canvas_pixels(page, NB_CANVAS)
    with lab.ws_traffic(page, settle=0.5) as t:
        with lab.frozen_kernel(page):
            frozen_at = page.evaluate("() => performance.now()")

            root.locator(".cnnw-norm-select").select_option("layer")
            per_layer = _wait_pixels_change(lab, page, per_channel["hash"], timeout=10)
            root.locator(".cnnw-cmap-select").select_option("magma")
            magma = _wait_pixels_change(lab, page, per_layer["hash"], timeout=10)
            root.locator(".cnnw-norm-select").select_option("channel")
            magma_per_channel = _wait_pixels_change(lab, page, magma["hash"], timeout=10)
            root.locator(".cnnw-cmap-select").select_option("viridis")
            back = _wait_pixels_change(lab, page, magma_per_channel["hash"], timeout=10)
            resumed_at = page.evaluate("() => performance.now()")
        deadline = time.monotonic() + 30
        while lab.kernel_run(page, "print(grid.normalization, grid.colormap)").split() != ["channel", "viridis"]:
            assert time.monotonic() < deadline, "the kernel never saw the browser's changes"
            page.wait_for_timeout(100)
    # While frozen, not one frame came from the kernel, yet the canvas changed four times.
    assert [r for r in t.received if frozen_at <= r["t"] <= resumed_at] == []
    for a, b in ((per_channel, per_layer), (per_layer, magma), (magma, magma_per_channel)):
        assert (a["width"], a["height"], a["non_transparent"]) == (b["width"], b["height"], b["non_transparent"])
    assert back["hash"] == per_channel["hash"]  # the drawing is a function of the traits alone
    # ipywidgets holds back a model's next update until the kernel answered the last (then sends the changes merged),
    # so the four switches reach the kernel in fewer messages; each one is echoed, none is followed by an `update`.
    sent = t.comm_msgs("out", method="update")
    assert 1 <= len(sent) <= 4, t
    assert t.comm_msgs("in", method="update") == [], t
    assert len(t.comm_msgs("in", method="echo_update")) == len(sent), t


def test_show_in_sidebar_puts_the_grid_in_jupyterlabs_right_sidebar(lab, quickstart):
    page = quickstart
    _reset(lab, page)
    # JupyterLab 4's right area: tabs in `.jp-SideBar.jp-mod-right`, panels in the StackedPanel `#jp-right-stack`.
    right = page.evaluate("() => [...window.jupyterapp.shell.widgets('right')]"
                          ".map((w) => ({id: w.id, label: w.title.label, visible: w.isVisible}))")
    panel = [w for w in right if w["label"] == SIDEBAR_TITLE]
    assert len(panel) == 1 and panel[0]["visible"], right
    tab = page.locator(".jp-SideBar.jp-mod-right .lm-TabBar-tab.lm-mod-current")
    assert tab.inner_text().strip() == SIDEBAR_TITLE
    side = page.locator(f'#jp-right-stack > [id="{panel[0]["id"]}"]')
    assert side.is_visible()
    side_grid = side.locator(".cnnw-grid")
    assert side_grid.count() == 1 and side_grid.is_visible()
    assert side_grid.locator(".cnnw-layer-select").input_value() == "block3_relu"
    side_px = lab.canvas_pixels(page, "#jp-right-stack .cnnw-grid-canvas")
    assert side_px["non_transparent"] > 0 and side_px["distinct_colors"] > 20
    # The notebook shows only `grid` (a view of `deep` in the cell that echoed the Sidecar has no size).
    visible_in_nb = page.evaluate("() => [...document.querySelectorAll('.jp-Notebook .cnnw-grid')]"
                                  ".filter((g) => g.offsetWidth > 0 && g.offsetHeight > 0).length")
    assert visible_in_nb == 1
    # The sidebar's grid is `deep`: a change to it from Python shows there, and not in the notebook.
    lab.kernel_run(page, "deep.layer = 'block2_conv'")
    page.wait_for_function("() => document.querySelector('#jp-right-stack .cnnw-grid-canvas').dataset.channels"
                           ".split(',').length === 32", polling=50)
    assert _channels(page) == list(range(16))
    lab.screenshot(page, "grid_sidebar")
    lab.kernel_run(page, "deep.layer = 'block3_relu'")


def test_a_bad_layer_from_python_raises_shows_a_readable_error_and_the_view_keeps_working(lab, quickstart):
    page = quickstart
    _reset(lab, page)
    root = page.locator(NB_GRID).first
    error = root.locator(".cnnw-error")
    assert error.is_hidden()
    before = lab.canvas_pixels(page, NB_CANVAS)

    out = lab.kernel_exec(page, 'grid.layer = "nope"')
    assert out["status"] == "error" and out["ename"] == "LayerError", out
    error.wait_for(state="visible")
    text = error.inner_text()
    assert text.startswith("No layer named 'nope'") and "block1_conv" in text and "Traceback" not in text, text
    assert _py_eval(lab, page, "[grid.layer, grid.error]") == ["block1_conv", text]
    assert root.locator(".cnnw-layer-select").input_value() == "block1_conv"
    assert lab.canvas_pixels(page, NB_CANVAS)["hash"] == before["hash"]  # the page shown is kept
    lab.screenshot(page, "grid_error", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-grid) .jp-OutputArea")

    root.locator(".cnnw-layer-select").select_option("block2_conv")
    _wait_channels(page, 32)
    assert lab.canvas_pixels(page, NB_CANVAS)["hash"] != before["hash"]
    error.wait_for(state="hidden")
    assert _py_eval(lab, page, "[grid.layer, grid.error]") == ["block2_conv", ""]

    # An image index typed out of range is refused with the range, not clamped in silence to the last image.
    shown = _py_eval(lab, page, "grid.image_index")
    image_box = root.locator(".cnnw-image-input")
    image_box.fill("99")
    image_box.press("Enter")
    error.wait_for(state="visible")
    assert "image_index must be between 0 and" in error.inner_text() and "got 99" in error.inner_text()
    assert _py_eval(lab, page, "grid.image_index") == shown and image_box.input_value() == str(shown)


EVIL = '<img src=x onerror="window.__pwned=1">'
EVIL_CELLS = [
    "import keras, numpy as np\nimport cnnwidget as cw\nkeras.utils.set_random_seed(0)",
    "model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, padding='same', name='conv'),\n"
    "                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation='softmax')])\n"
    f"EVIL = {EVIL!r}\n"
    "evil = cw.ActivationGrid(model, np.random.default_rng(0).random((2, 16, 16, 3)), class_names=[EVIL, 'plain'])\n"
    "evil",
]


def test_class_names_from_the_model_are_shown_as_text_never_as_html(lab):
    page = lab.open_notebook(EVIL_CELLS, name="model_text_is_data")  # closed after the test by the harness
    lab.run_all(page)
    lab.wait_for(page, ".cnnw-predictions li")
    labels = page.locator(".cnnw-predictions li span:first-child").all_inner_texts()
    assert EVIL in labels and "plain" in labels, labels
    # Also the error box: a layer "name" with markup is echoed in the message, as text.
    bad = lab.kernel_exec(page, "evil.layer = EVIL.replace('__pwned=1', '__pwned=2')")
    assert bad["ename"] == "LayerError", bad
    error = page.locator(".cnnw-error")
    error.wait_for(state="visible")
    assert "<img src=x onerror=\"window.__pwned=2\">" in error.inner_text()
    page.wait_for_timeout(500)  # a broken <img> would have fired onerror by now
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    # the only images are the view's own pictures (the depth strip's thumbnails, PNG data URLs: js/dom.js pictureImg)
    assert page.locator('.cnnw-grid img:not([src^="data:image/png;base64,"]), img[src="x"]').count() == 0
    lab.screenshot(page, "grid_model_text", selector=".cnnw-grid")
