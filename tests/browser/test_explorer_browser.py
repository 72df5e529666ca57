"""The Explorer in a real JupyterLab (chromium), on the demo model: a click on a channel of the embedded activation
grid selects it in Python and redraws the feature visualization panel; an image chosen from Python redraws the
panels; in the right sidebar (300 px) the panels stack and nothing is wider than the sidebar. Console errors fail
every test (the harness checks them after each).

One page is opened and run once (module-scoped ``page``); the tests share it and its kernel."""
from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\ndata = demo.shapes(6, seed=1)\n"
    "pool = demo.shapes(32, seed=3)\n"
    "ex = cw.Explorer(demo.load_model(), data.images, data=(pool.images, pool.labels), class_names=data.class_names,\n"
    "                 panel_options={'featurevis': {'steps': 48}})\nex",
    "side = cw.show_in_sidebar(ex, title='Explorer')",  # a second view of the same widget, 300 px wide
]
ROOT = ".jp-Notebook .cnnw-explorer"
GRID = f"{ROOT} .cnnw-grid-canvas"
FV = f"{ROOT} .cnnw-fv-canvas"
AM = f"{ROOT} .cnnw-am-canvas"
PAD, GAP = 2, 4  # js/activation_grid.js: px around the grid and between tiles


def _py(lab, page, expr: str):
    return json.loads(lab.kernel_run(page, f"import json as _json; print(_json.dumps({expr}))"))


def _until(lab, page, expr: str, want, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while (got := _py(lab, page, expr)) != want:
        assert time.monotonic() < deadline, f"{expr} is {got!r}, not {want!r}, after {timeout}s"
        page.wait_for_timeout(100)


def _changed(lab, page, selector: str, old: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while (px := lab.canvas_pixels(page, selector))["hash"] == old:
        assert time.monotonic() < deadline, f"{selector} still shows the same picture after {timeout}s"
        page.wait_for_timeout(50)
    return px


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="explorer_browser")
    lab.run_all(page, timeout=240)
    for selector in (GRID, FV, AM):
        lab.wait_for(page, selector, timeout=120)
    lab.kernel_run(page, "ex.wait(120)", timeout=150)
    with lab.kept(page):
        yield page


def test_a_click_on_a_grid_channel_selects_it_everywhere_and_redraws_the_feature_visualization(lab, page):
    assert _py(lab, page, "[ex.layer, ex.channel]") == ["block1_conv", 0]
    before = lab.canvas_pixels(page, FV)["hash"]
    meta = _py(lab, page, "ex.activations_panel.tile_meta")
    canvas = page.locator(GRID).first
    px = lab.canvas_pixels(page, GRID)
    box = canvas.bounding_box()
    tile = meta["w"] * max(1, -(-48 // meta["w"]))  # js/tiles.js tileScale: at least 48 px a tile
    x, y = PAD + tile + GAP + tile / 2, PAD + tile / 2  # the second tile of the first row
    page.mouse.click(box["x"] + x * box["width"] / px["width"], box["y"] + y * box["height"] / px["height"])
    channel = meta["channels"][1]
    _until(lab, page, "ex.channel", channel)
    page.wait_for_function("([s, c]) => document.querySelector(s).dataset.channel === String(c)",
                           arg=[ROOT, channel])
    assert _py(lab, page, "ex.featurevis_panel.channels") == [channel]
    _changed(lab, page, FV, before)  # the first frame of the new render
    page.wait_for_function("(s) => document.querySelector(s).dataset.final === 'true'", arg=f"{ROOT} .cnnw-fv-images",
                           timeout=120_000)
    assert _py(lab, page, "ex.featurevis_panel.images_meta['title']") == f"channel('block1_conv', {channel})"
    lab.screenshot(page, "explorer_channel_clicked", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-explorer)")


def _click_channel(page, channel: int, side: int):
    """A real click on the tile of ``channel`` in the Explorer's grid (in the notebook); ``side``: the tiles' maps'
    width (tile_meta's w). Reads only the page: the kernel may be stopped."""
    meta = page.evaluate("(s) => { const c = document.querySelector(s); return {channels: c.dataset.channels, "
                         "w: c.width, h: c.height}; }", GRID)
    channels = [int(c) for c in meta["channels"].split(",")]
    tile = side * max(1, -(-48 // side))  # js/tiles.js tileScale: at least 48 px a tile
    cols = max(1, (meta["w"] - 2 * PAD + GAP) // (tile + GAP))
    i = channels.index(channel)
    x, y = PAD + (i % cols) * (tile + GAP) + tile / 2, PAD + (i // cols) * (tile + GAP) + tile / 2
    box = page.locator(GRID).first.bounding_box()
    page.mouse.click(box["x"] + x * box["width"] / meta["w"], box["y"] + y * box["height"] / meta["h"])


SHOWN_JS = """([root, c]) => { const r = document.querySelector(root), cc = r.querySelector('.cnnw-cc');
  return [r.dataset.channel, r.querySelector('.cnnw-x-channel').value, r.querySelector('.cnnw-grid-canvas').dataset.selected,
          r.querySelector('.cnnw-focus-canvas').dataset.channel, cc.dataset.channel,
          cc.querySelector('.cnnw-cc-patches').dataset.n, cc.dataset.source]; }"""


def test_with_the_kernel_frozen_a_grid_click_shows_in_the_explorer_at_once_and_the_newest_selection_wins(lab, page):
    """The page echoes a grid click into the Explorer's view (its channel box and data-channel) and into the top
    examples card, which draws the channel from the layer's channels the kernel sent ahead: all with the kernel
    stopped (SIGSTOP). Once it runs again it takes both clicks in order and ends on the second everywhere (the
    replies to the first never stay on the page), and a channel set later from Python wins over the page's."""
    lab.kernel_run(page, "ex.wait(120)", timeout=150)
    card = f"{ROOT} .cnnw-cc"
    page.wait_for_function("(s) => document.querySelector(s)?.dataset.ahead === 'block1_conv 16'", arg=card,
                           timeout=60_000)
    start = _py(lab, page, "ex.channel")
    meta = _py(lab, page, "ex.activations_panel.tile_meta")
    a, b = [c for c in meta["channels"][2:6] if c != start][:2]
    with lab.frozen_kernel(page):
        for c in (a, b):
            _click_channel(page, c, meta["w"])
            page.wait_for_function(f"([root, c]) => ({SHOWN_JS})([root, c]).slice(0, 5).every((v) => v === String(c))"
                                   " && document.querySelector(root).querySelector('.cnnw-cc-patches').dataset.n === '16'",
                                   arg=[ROOT, c], timeout=10_000)
            shown = page.evaluate(SHOWN_JS, [ROOT, c])
            assert shown == [str(c)] * 5 + ["16", "page"], shown  # drawn in the page: the kernel is stopped
        # from now on, every channel the Explorer, the grid and the card show (the kernel's replies to the first
        # click must never bring it back over the second)
        page.evaluate("""(root) => { const r = document.querySelector(root), seen = window.__echoSeen = [];
          const watch = (el, attr) => new MutationObserver(() => seen.push(el.getAttribute(attr)))
            .observe(el, {attributes: true, attributeFilter: [attr]});
          watch(r, 'data-channel'); watch(r.querySelector('.cnnw-cc'), 'data-channel');
          watch(r.querySelector('.cnnw-grid-canvas'), 'data-selected'); }""", ROOT)
    _until(lab, page, "[ex.channel, ex.activations_panel.selected_channel, ex.examples_panel.channel, "
                      "ex.featurevis_panel.channels]", [b, b, b, [b]])
    lab.kernel_run(page, "ex.wait(120)", timeout=150)
    page.wait_for_timeout(300)  # any reply still on its way
    shown = page.evaluate(SHOWN_JS, [ROOT, b])
    assert shown[:6] == [str(b)] * 5 + ["16"], shown
    seen = page.evaluate("() => window.__echoSeen")
    assert str(a) not in seen, f"the first click's channel came back after the second: {seen}"
    assert _py(lab, page, "[ex.examples_panel.patches_meta['channel'], ex.activations_panel.focus_meta['channel']]") \
        == [b, b]
    # a channel set from Python afterwards wins over what the page set
    lab.kernel_run(page, f"ex.channel = {a}")
    page.wait_for_function(f"([root, c]) => ({SHOWN_JS})([root, c]).slice(0, 5).every((v) => v === String(c))",
                           arg=[ROOT, a], timeout=30_000)
    lab.kernel_run(page, "ex.wait(120)", timeout=150)
    assert page.evaluate(SHOWN_JS, [ROOT, a])[:6] == [str(a)] * 5 + ["16"]
    assert _py(lab, page, "[ex.channel, ex.activations_panel.selected_channel, ex.examples_panel.channel]") == [a] * 3


def test_an_image_chosen_from_python_redraws_the_panels(lab, page):
    lab.kernel_run(page, "ex.wait(120)", timeout=150)
    grid, am = lab.canvas_pixels(page, GRID)["hash"], lab.canvas_pixels(page, AM)["hash"]
    lab.kernel_run(page, "ex.image = 4")
    page.wait_for_function("(s) => document.querySelector(s).dataset.image === '4'", arg=ROOT)
    _changed(lab, page, GRID, grid)
    _changed(lab, page, AM, am)
    assert _py(lab, page, "[ex.activations_panel.image_index, ex.attribution_panel.image_index]") == [4, 4]
    # every heat map and grid says what its colours stand for (js/colorbar.js)
    bars = page.evaluate("""(s) => [...document.querySelector(s).querySelectorAll('.cnnw-colorbar')]
      .filter((b) => !b.hidden).map((b) => [b.dataset.label, b.dataset.lo, b.dataset.hi])""", ROOT)
    labels = [b[0] for b in bars]
    assert "activation value, each tile on its own range" in labels and "|attribution score|" in labels, bars
    focus = next(b for b in bars if b[0].startswith("activation value, channel"))
    meta = _py(lab, page, "ex.activations_panel.focus_meta")
    assert float(focus[1]) == pytest.approx(meta["lo"], rel=5e-3, abs=1e-3), (focus, meta)
    pressed = page.locator(f"{ROOT} .cnnw-x-thumb[aria-pressed='true']")
    assert pressed.count() == 1 and pressed.get_attribute("data-index") == "4"
    # a thumbnail clicked in the strip goes the other way
    page.locator(f"{ROOT} .cnnw-x-thumb[data-index='1']").click()
    _until(lab, page, "[ex.image, ex.activations_panel.image_index, ex.attribution_panel.image_index]", [1, 1, 1])


def test_in_the_sidebar_the_panels_stack_and_fit(lab, page):
    side = "#jp-right-stack .cnnw-explorer"
    lab.wait_for(page, f"{side} .cnnw-grid-canvas", timeout=60)
    page.wait_for_timeout(500)  # a ResizeObserver relayout
    sizes = page.evaluate("""(s) => { const v = document.querySelector(s);
      const area = v.closest('.jupyterlab-sidecar') || v.parentElement;
      const main = v.querySelector('.cnnw-x-main');
      return {width: v.scrollWidth, area: area.clientWidth, direction: getComputedStyle(main).flexDirection,
              names: [...v.querySelectorAll('.cnnw-x-layer .cnnw-x-name')].map((n) => n.textContent)}; }""", side)
    assert sizes["direction"] == "column", sizes
    assert sizes["width"] <= sizes["area"], f"the Explorer is wider than the sidebar: {sizes}"
    assert sizes["names"] == [p.split("/")[-1] for p in _py(lab, page, "[i.path for i in ex.probe.layers]")]
    # in the notebook the layout follows the width it is given: the lists beside the panels from 900 px
    wide = page.evaluate("""(s) => { const v = document.querySelector(s);
      return [v.clientWidth, getComputedStyle(v.querySelector('.cnnw-x-main')).flexDirection]; }""", ROOT)
    assert wide[1] == ("row" if wide[0] >= 900 else "column"), wide
    lab.screenshot(page, "explorer_sidebar")
