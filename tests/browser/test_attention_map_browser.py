"""The AttentionMap view in a real JupyterLab (chromium), on the demo hybrid model: head maps and rollout drawn
over the image, a click on a patch changes the head maps, the head-fusion select recomputes the rollout, and a
model with no attention site shows its message. Console errors fail the tests (the lab harness checks them)."""
from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.timeout(300)

CELLS = [
    "import cnnwidget as cw\nfrom cnnwidget import demo\n"
    "data = demo.shapes(3, seed=1234)\n"
    "amap = cw.AttentionMap(demo.load_hybrid_model(), data.images)\n"
    "amap.wait(120)\namap",
    "plain = cw.AttentionMap(demo.load_model(), data.images)\nplain",
    # a squeeze-excitation gate of 48 channels (as EfficientNet's block*_se_excite), drawn as bars
    "import keras\nkeras.utils.set_random_seed(2)\nx = keras.Input((32, 32, 3))\n"
    "f = keras.layers.Conv2D(48, 3, padding='same', activation='relu')(x)\n"
    "s = keras.layers.Reshape((1, 1, 48))(keras.layers.Dense(48, activation='sigmoid')(\n"
    "    keras.layers.GlobalAveragePooling2D()(f)))\n"
    "g = keras.layers.Multiply(name='se_excite')([f, s])\n"
    "se = keras.Model(x, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(g)))\n"
    "gates = cw.AttentionMap(se, demo.shapes(3, seed=1, size=32).images)\ngates.wait(60)\ngates",
]
GATES = ".jp-Notebook .cnnw-at[data-kind='channel_gate']"
ROOT = ".jp-Notebook .cnnw-at"
HEADS = ".jp-Notebook .cnnw-at-head-map"
QUERY = ".jp-Notebook .cnnw-at-query"
ROLLOUT = ".jp-Notebook .cnnw-at-rollout"
CELL = ".jp-Notebook .jp-CodeCell:has(.cnnw-at-mha) .jp-OutputArea"


@pytest.fixture(scope="module")
def page(lab):
    page = lab.open_notebook(CELLS, name="attention_map_browser")
    lab.run_all(page)
    lab.wait_for(page, HEADS)
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.running === 'false'", arg=ROOT,
                           timeout=120_000)
    with lab.kept(page):
        yield page


def test_heads_and_rollout_are_drawn_over_the_image(lab, page):
    root = page.locator(ROOT).first
    assert root.locator(".cnnw-at-head-map").count() == 4
    hashes = set()
    for i in range(4):
        px = lab.canvas_pixels(page, HEADS, nth=i)
        assert px["non_transparent"] == px["width"] * px["height"] and px["distinct_colors"] > 20, px
        hashes.add(px["hash"])
    assert len(hashes) == 4  # four heads, four different maps
    assert lab.canvas_pixels(page, ROLLOUT)["distinct_colors"] > 20
    assert root.locator(".cnnw-at-layer option").all_inner_texts() == [
        "block1_attention · attention · 4 heads", "block2_attention · attention · 4 heads"]
    assert "rollout · mean over heads" in root.locator(".cnnw-at-rollout-caption").inner_text()
    lab.screenshot(page, "attention_heads", selector=CELL)


def test_a_click_on_a_patch_changes_the_head_maps(lab, page):
    heads = page.locator(".jp-Notebook .cnnw-at-heads").first
    before_query = heads.get_attribute("data-query")
    before = lab.canvas_pixels(page, HEADS, nth=0)["hash"]
    box = page.locator(QUERY).first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.06, box["y"] + box["height"] * 0.06)  # the top-left patch
    page.wait_for_function("([sel, old]) => document.querySelector(sel).dataset.query !== old",
                           arg=[".jp-Notebook .cnnw-at-heads", before_query], timeout=30_000)
    assert heads.get_attribute("data-query") == "0"
    assert lab.kernel_run(page, "print(amap.query)") == "0"
    deadline = time.monotonic() + 10  # the head maps redraw at the next animation frame
    while lab.canvas_pixels(page, HEADS, nth=0)["hash"] == before and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert lab.canvas_pixels(page, HEADS, nth=0)["hash"] != before
    caption = page.locator(".jp-Notebook .cnnw-at-query-caption").first
    assert "patch 0 (row 0, column 0) — click another" in caption.inner_text()  # whole: it wraps, not cut
    assert caption.evaluate("(c) => getComputedStyle(c).whiteSpace !== 'nowrap' && c.scrollWidth <= c.clientWidth")


def test_the_head_fusion_switch_recomputes_the_rollout(lab, page):
    before = lab.canvas_pixels(page, ROLLOUT)["hash"]
    page.locator(".jp-Notebook .cnnw-at-fusion").first.select_option("max")
    page.wait_for_function("(sel) => document.querySelector(sel).dataset.fusion === 'max'", arg=ROLLOUT,
                           timeout=60_000)
    assert lab.kernel_run(page, "print(amap.head_fusion, amap.rollout_meta['head_fusion'])") == "max max"
    assert lab.canvas_pixels(page, ROLLOUT)["hash"] != before
    lab.screenshot(page, "attention_max_fusion", selector=CELL)


def test_a_model_without_attention_shows_the_message(lab, page):
    message = page.locator(".jp-Notebook .cnnw-at-message").nth(1)
    message.wait_for(state="visible", timeout=30_000)
    assert "no attention site" in message.inner_text()
    assert page.locator(".jp-Notebook .cnnw-at-controls").nth(1).is_hidden()


def test_channel_gate_bars_have_a_value_axis_hover_values_a_whole_caption_and_no_map_controls(lab, page):
    root = page.locator(GATES).first
    root.wait_for(state="visible", timeout=60_000)
    bars = root.locator(".cnnw-at-bars")
    page.wait_for_function("(sel) => document.querySelector(sel + ' .cnnw-at-bars').dataset.channels === '48'",
                           arg=GATES, timeout=60_000)
    caption = root.locator(".cnnw-at-bars-caption")
    assert caption.inner_text().startswith("48 channel gates of this image (blue: above the mean")
    assert "black tick: mean over 3 images)" in caption.inner_text()  # whole: wraps, not cut
    assert caption.evaluate("(c) => c.scrollWidth <= c.clientWidth")
    # colour map, opacity, normalization draw nothing for bars: hidden; the layer and image stay
    for name in ("colormap", "opacity", "normalization"):
        assert root.locator(f".cnnw-at-{name}").is_hidden(), name
    assert root.locator(".cnnw-at-layer").is_visible() and root.locator(".cnnw-at-image").is_visible()
    # the value axis: gates are in [0, 1], ticks every 0.25 labelled left of the bars
    assert bars.get_attribute("data-ticks") == "0,0.25,0.5,0.75,1"
    assert lab.canvas_pixels(page, f"{GATES} .cnnw-at-bars")["distinct_colors"] > 3
    # hover over the 11th bar: its layer, channel, gate and mean gate, as numbers
    bars.scroll_into_view_if_needed()
    box = bars.bounding_box()
    width = int(bars.get_attribute("width"))
    left, bw = 34, (width - 34 - 4) / 48
    bars.hover(position={"x": (left + 10.5 * bw) * box["width"] / width, "y": box["height"] * 0.9})
    hover = root.locator(".cnnw-at-bars-hover")
    page.wait_for_function("(sel) => document.querySelector(sel).textContent.includes('channel 10')",
                           arg=f"{GATES} .cnnw-at-bars-hover", timeout=10_000)
    text = hover.inner_text()
    want = lab.kernel_run(page, "import numpy as np\nv = np.frombuffer(gates.gate_values, '<f4')\n"
                                "m = np.frombuffer(gates.gate_mean, '<f4')\nprint(f'{v[10]:.3f} {m[10]:.3f}')")
    gate, mean = want.split()
    assert text == f"se_excite · channel 10 · gate {gate} · mean gate {mean}", text
    lab.screenshot(page, "attention_channel_gates", selector=".jp-Notebook .jp-CodeCell:has(.cnnw-at-channel:not([hidden]))")
